// The web-chat widget on a customer's own website, as visitors meet it in Chromium (issue 13):
// a reply from the team while the chat is closed must be noticed (an unread badge and a nudge
// on the launcher), and on a phone the chat takes the whole screen with a close button a
// finger can hit.

import test from 'node:test';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { customerSite } from './lib/site.js';
import { agentOnCustomerSite, box, teamReplies, until, visitorSends, widget } from './lib/widget.js';

test('a reply that arrives while the chat is closed shows an unread badge and a nudge', async (t) => {
  const site = await customerSite();
  try {
    await journey(t, async ({ browser, cp }) => {
      const { page: console_, nodeOrigin } = await agentOnCustomerSite(browser, cp, site);

      const visitor = await (await browser.context()).newPage();
      const toNode = [];
      visitor.on('request', (r) => {
        if (new URL(r.url()).origin === nodeOrigin) toNode.push(`${r.method()} ${new URL(r.url()).pathname}`);
      });
      await visitor.goto(site.url);
      const w = widget(visitor);
      await w.launcher.waitFor();
      // A mere page view asks the node for the script and nothing else.
      await visitor.waitForTimeout(1500);
      assert.deepEqual(toNode, ['GET /widget.js'], 'a page view sends nothing but the script request');
      assert.equal(await w.badge.isVisible(), false);

      await visitor.getByRole('button', { name: 'Chat with us' }).click();
      await w.panel.waitFor();
      assert.equal(await w.launcher.getAttribute('aria-expanded'), 'true');
      const closeBox = await box(w.close);
      assert.ok(closeBox.width >= 44 && closeBox.height >= 44, `desktop close button ${closeBox.width}×${closeBox.height}`);
      await visitorSends(visitor, 'Can I book a check-up on Friday?');
      await w.close.click();
      await w.panel.waitFor({ state: 'hidden' });
      assert.equal(await w.launcher.getAttribute('aria-expanded'), 'false');
      // The assistant's answer was read while the chat was open: nothing is unread.
      assert.equal(await w.badge.isVisible(), false);
      assert.equal(await w.nudge.isVisible(), false);

      await teamReplies(console_, 'Hello, this is Maria from the front desk: Friday 10:00 is free.', 'Take over and send');

      // The visitor does nothing; the closed widget notices the reply by itself.
      await w.badge.filter({ hasText: /^1$/ }).waitFor({ timeout: 30_000 });
      assert.equal(await w.badge.getAttribute('aria-label'), '1 unread message');
      assert.equal(await visitor.getByRole('button', { name: 'Chat with us (1 unread)', exact: true }).count(), 1);
      const nudge = visitor.getByRole('button', { name: 'New reply from the team', exact: true });
      await nudge.waitFor();
      assert.equal(await w.nudge.getAttribute('role'), 'status');
      assert.equal(await w.panel.isVisible(), false, 'the panel stayed closed');

      await visitor.getByRole('button', { name: /Chat with us/ }).click();
      await w.panel.waitFor();
      await w.entries('human').filter({ hasText: 'Friday 10:00 is free' }).waitFor();
      assert.match(await w.entries('human').last().innerText(), /^Team\n/);
      assert.equal(await w.badge.isVisible(), false, 'opening the chat clears the badge');
      assert.equal(await w.nudge.isVisible(), false, 'opening the chat clears the nudge');
      assert.equal(await w.launcher.getAttribute('aria-label'), null);
      assert.equal(await visitor.getByRole('button', { name: 'Chat with us', exact: true }).count(), 1);

      // Another reply while the visitor is on another page of the site: the next page
      // shows it as unread, and the nudge opens the chat.
      await w.close.click();
      await w.panel.waitFor({ state: 'hidden' });
      await teamReplies(console_, 'See you on Friday!', 'Send');
      await visitor.reload();
      await w.badge.filter({ hasText: /^1$/ }).waitFor({ timeout: 30_000 });
      await nudge.click();
      await w.panel.waitFor();
      await w.entries('human').filter({ hasText: 'See you on Friday!' }).waitFor();
      assert.equal(await w.entries('human').count(), 2);
      assert.equal(await w.badge.isVisible(), false);
      assert.equal(await w.nudge.isVisible(), false);
      assert.equal(await w.message.evaluate((e) => e.getRootNode().activeElement === e), true, 'focus is in the message box');
    });
  } finally {
    await site.close();
  }
});

test('on a phone the chat is full screen and its close button is at least 44 px', async (t) => {
  const site = await customerSite();
  try {
    await journey(t, async ({ browser, cp }) => {
      await agentOnCustomerSite(browser, cp, site);

      const phone = await (await browser.context({ phone: true })).newPage();
      await phone.goto(site.url);
      const w = widget(phone);
      await phone.getByRole('button', { name: 'Chat with us' }).click();
      await w.panel.waitFor();

      const vp = phone.viewportSize();
      const panel = await box(w.panel);
      assert.ok(
        Math.abs(panel.x) < 1 && Math.abs(panel.y) < 1 &&
          Math.abs(panel.width - vp.width) < 1 && Math.abs(panel.height - vp.height) < 1,
        `the panel covers the ${vp.width}×${vp.height} screen: ${JSON.stringify(panel)}`,
      );
      const close = await box(w.close);
      assert.ok(close.width >= 44 && close.height >= 44, `close button ${close.width}×${close.height}`);
      // The launcher steps aside so it covers no part of the chat.
      assert.equal(await w.launcher.isVisible(), false);

      await visitorSends(phone, 'Do you treat children?');
      const send = await box(w.send);
      assert.ok(send.y + send.height <= vp.height, 'the send button is on screen');

      await w.close.click();
      await w.panel.waitFor({ state: 'hidden' });
      await w.launcher.waitFor();
      assert.equal(await w.launcher.getAttribute('aria-expanded'), 'false');
      assert.equal(await w.launcher.evaluate((e) => e.getRootNode().activeElement === e), true, 'focus returns to the launcher');
    });
  } finally {
    await site.close();
  }
});

test('a visitor books an appointment with the quick replies and the team sees it in the calendar', async (t) => {
  const site = await customerSite();
  try {
    await journey(t, async ({ browser, cp }) => {
      const { page: console_ } = await agentOnCustomerSite(browser, cp, site);

      // The owner sets hours and a service on the node's Appointments page.
      await console_.getByRole('link', { name: 'Appointments', exact: true }).click();
      await console_.getByLabel('Time zone (IANA name, such as Europe/Paris)').fill('Europe/Paris');
      await console_.getByLabel('Minutes between start times').fill('60');
      for (const day of ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']) {
        await console_.getByLabel(day, { exact: true }).fill('00:00-24:00');
      }
      await console_.getByRole('button', { name: 'Save hours' }).click();
      await console_.getByText('Saved.').waitFor();
      await console_.locator('#service_name').fill('Check-up');
      await console_.getByLabel('Price (as customers should read it, optional)').fill('€60');
      await console_.getByRole('button', { name: 'Add service' }).click();
      await console_.getByText('Check-up — 30 min — €60').waitFor();

      const visitor = await (await browser.context()).newPage();
      await visitor.goto(site.url);
      const w = widget(visitor);
      await visitor.getByRole('button', { name: 'Chat with us' }).click();
      await w.panel.waitFor();
      const replies = visitor.getByRole('group', { name: 'Suggested replies' }).getByRole('button');

      await visitorSends(visitor, 'Hello, I would like to book an appointment');
      assert.match(await w.entries('agent').last().innerText(), /Which day would you like for Check-up \(30 min, €60\)\?/);
      // The second day offered, never today: today's first time is the first one past
      // the notice, and an hour turning while the visitor answers would make it too soon.
      await replies.nth(1).waitFor();
      const day = (await replies.nth(1).innerText()).trim();
      await replies.nth(1).click();
      await w.entries('visitor').filter({ hasText: day }).waitFor();
      await until(async () => /Which time \(Paris time\)\?/.test(await w.entries('agent').last().innerText()), 'the times');
      await replies.first().waitFor();
      const time = (await replies.first().innerText()).trim();
      assert.match(time, /^\d\d:\d\d$/);
      await replies.first().click();
      await until(async () => /What name should I book under\?/.test(await w.entries('agent').last().innerText()), 'the name question');
      assert.equal(await replies.count(), 0, 'no buttons for a free answer');

      await visitorSends(visitor, 'Ada Lovelace, ada@example.com');
      assert.match(await w.entries('agent').last().innerText(), new RegExp(`${day} ${time} \\(Paris time\\) for Ada Lovelace\\. Shall I book it\\?`));
      await replies.filter({ hasText: 'Yes, book it' }).click();
      await until(async () => /Booked: Check-up on/.test(await w.entries('agent').last().innerText()), 'the confirmation');
      const confirmation = await w.entries('agent').last().innerText();
      assert.match(confirmation, new RegExp(`Booked: Check-up on ${day} ${time} \\(Paris time\\)\\.`));
      assert.match(confirmation, /Cancel: http\S+\/appointments\/[0-9a-f-]{36}\/cancel\?purpose=cancel&expires=\d+&sig=/);

      // The team sees it in the week's calendar (this week or the next).
      await console_.getByRole('link', { name: 'Appointments', exact: true }).click();
      if (!(await console_.getByText(`${time} Check-up — Ada Lovelace`).count())) {
        await console_.getByRole('link', { name: 'Next week →' }).click();
      }
      await console_.getByText(`${time} Check-up — Ada Lovelace`).waitFor();
    });
  } finally {
    await site.close();
  }
});
