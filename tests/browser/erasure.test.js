// Erasing a contact, as an owner does it in Chromium when a customer asks (invariant 4,
// "erasure is real"): the contact and their conversation leave the console, the erasure is
// recorded without their details, and the visitor's widget starts afresh with nothing of
// what they wrote.

import test from 'node:test';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { customerSite } from './lib/site.js';
import { mainText } from './lib/steps.js';
import { agentOnCustomerSite, until, visitorOpensChat, visitorSends } from './lib/widget.js';

test('an owner erases a contact: gone from the console, recorded, and the widget starts afresh', async (t) => {
  const site = await customerSite();
  t.after(() => site.close());
  await journey(t, async ({ browser, cp }) => {
    const { page: owner } = await agentOnCustomerSite(browser, cp, site);

    const { visitor, w } = await visitorOpensChat(browser, site);
    const words = 'Please erase me, I am Jane Roe from 12 Elm Street';
    await visitorSends(visitor, words);
    // A returning visitor sees their conversation (what erasure must end).
    await visitor.reload();
    await visitor.getByRole('button', { name: 'Chat with us' }).click();
    await w.entries('visitor').filter({ hasText: 'Elm Street' }).waitFor();

    // The owner finds the contact and their conversation.
    await owner.getByRole('link', { name: 'Contacts' }).click();
    await owner.locator('#contacts-table a').first().click();
    await owner.getByRole('heading', { name: 'Erase this contact' }).waitFor();
    assert.match(await mainText(owner), /Elm Street/, 'the contact page shows the conversation');
    const contactUrl = owner.url();

    // A wrong confirmation word is refused by the form itself; "erase" erases.
    await owner.getByLabel('Type erase to confirm').fill('delete');
    await owner.getByRole('button', { name: 'Erase contact' }).click();
    assert.equal(owner.url(), contactUrl, 'the browser did not send the form');
    await owner.getByLabel('Type erase to confirm').fill('erase');
    await owner.getByRole('button', { name: 'Erase contact' }).click();
    await owner.getByRole('heading', { name: 'Erasures', level: 1 }).waitFor();
    assert.equal(await owner.getByRole('status').first().innerText(), 'Contact erased.');
    const record = await owner.locator('#erasures tr').nth(1).innerText();
    assert.match(record, /web/);
    assert.doesNotMatch(record, /Jane|Elm/, 'the record keeps no details');

    // Nothing of it is left in the console.
    await owner.getByRole('link', { name: 'Contacts' }).click();
    await owner.locator('#contacts-empty').waitFor();
    await owner.getByRole('link', { name: /^Inbox/ }).click();
    assert.doesNotMatch(await mainText(owner), /Elm Street|Web visitor/);
    browser.expect(/status of 404 \(Not Found\)/);
    await owner.goto(contactUrl);
    assert.doesNotMatch(await mainText(owner), /Elm Street/);

    // The visitor comes back: the chat does not show what they wrote, and they can start again.
    await visitor.reload();
    await visitor.getByRole('button', { name: 'Chat with us' }).click();
    await w.panel.waitFor();
    await visitor.waitForTimeout(1500);
    assert.equal(await w.entries('visitor').filter({ hasText: 'Elm Street' }).count(), 0);
    await visitorSends(visitor, 'Hello again, what are your opening hours?');
    await until(async () => {
      await owner.getByRole('link', { name: 'Contacts' }).click();
      return (await owner.locator('#contacts-table a').count()) === 1;
    }, 'the new conversation to make a new contact');
  });
});
