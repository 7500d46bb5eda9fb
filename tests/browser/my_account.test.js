// The account's own pages, as a person uses them in Chromium (issues 6 and 20): what the
// control plane knows about them (on the page and as JSON), changing the address through a
// link sent to the new one, and closing the account, refused while they alone own a
// workspace.

import test from 'node:test';
import { journey, signIn } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText } from './lib/steps.js';

test('a person reads what Outpost knows about them, changes their address, and cannot close the account while they alone own a workspace', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const me = await (await browser.context()).newPage();
    await signIn(me, cp, 'sam@old.test');
    await me.getByRole('heading', { name: 'Your workspaces' }).waitFor();
    await me.getByLabel('Business name').fill('Sam Bakery');
    await me.getByRole('button', { name: 'Create workspace' }).click();
    await me.getByRole('heading', { name: 'Sam Bakery', level: 1 }).waitFor();

    // What the control plane knows: the page, and the same as a JSON download.
    await me.getByRole('link', { name: 'Your data' }).click();
    const shown = await me.locator('#my-data').innerText();
    assert.match(shown, /sam@old\.test/);
    assert.match(shown, /Sam Bakery/);
    const [download] = await Promise.all([
      me.waitForEvent('download'),
      me.getByRole('link', { name: 'Download as JSON' }).click(),
    ]);
    const json = JSON.parse(await (await download.createReadStream()).toArray().then((c) => Buffer.concat(c).toString('utf8')));
    assert.equal(json.account.email, 'sam@old.test', JSON.stringify(json.account));

    // A new address: nothing changes until the link sent to it is opened.
    await me.getByRole('link', { name: 'Email address' }).click();
    await me.getByLabel('New address').fill('sam@new.test');
    await me.getByRole('button', { name: 'Send confirmation link' }).click();
    await me.locator('#sent', { hasText: 'sam@new.test' }).waitFor();
    assert.match(await mainText(me), /uses sam@old\.test/);
    const link = await cp.outboxFind('sam@new.test', '/account/email/confirm');
    await me.goto(link);
    await me.getByRole('button', { name: 'Use this address for my Outpost account' }).click();
    await me.locator('#done', { hasText: 'sam@new.test' }).waitFor();
    await cp.outboxFind('sam@old.test', 'sam@new.test');

    // Closing: refused while Sam alone owns a workspace that exists, and nothing is lost.
    browser.expect(/status of 409 \(Conflict\)/);
    await me.getByRole('link', { name: 'Go to your workspaces' }).click();
    assert.match(await me.locator('header').innerText(), /sam@new\.test/, 'still signed in, with the new address');
    await me.getByRole('link', { name: 'Your data' }).click();
    await me.getByLabel('Type your email address to confirm').fill('sam@new.test');
    await me.getByRole('button', { name: 'Close my account' }).click();
    assert.match(await me.locator('#close-account').innerText(), /only owner/);
    await me.goto(`${cp.ui}/workspaces`);
    assert.match(await mainText(me), /Sam Bakery/);
  });
});
