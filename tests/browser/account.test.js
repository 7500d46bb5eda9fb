// Issue 20, part 2, as a person meets it in Chromium: the Sessions page lists another
// device and "End all other sessions" signs it out; a token made on the API tokens page
// is shown once, works, and stops working when its Revoke button is clicked.

import test from 'node:test';
import { journey, signIn } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText } from './lib/steps.js';

test('sessions are listed and ended; a token is shown once and revoked', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const desk = await (await browser.context()).newPage();
    await signIn(desk, cp, 'owner@smile.test');
    await desk.getByRole('heading', { name: 'Your workspaces' }).waitFor();
    const phone = await (await browser.context({ phone: true })).newPage();
    await signIn(phone, cp, 'owner@smile.test');
    await phone.getByRole('heading', { name: 'Your workspaces' }).waitFor();

    await desk.getByRole('link', { name: 'Sessions' }).click();
    await desk.getByRole('heading', { name: 'Where you are signed in' }).waitFor();
    const sessions = await mainText(desk);
    assert.match(sessions, /Chrome on Linux/);
    assert.match(sessions, /\(this browser\)/);
    assert.match(sessions, /127\.0\.0\.0\/24/);
    assert.doesNotMatch(sessions, /127\.0\.0\.1/, 'never the full address');
    await desk.getByRole('button', { name: 'End all other sessions' }).click();
    await desk.getByText('1 other session ended.').waitFor();
    await phone.reload();
    await phone.getByRole('heading', { name: 'Sign in to Outpost' }).waitFor();

    await desk.getByRole('link', { name: 'API tokens' }).click();
    await desk.getByLabel('Token name').fill('deploy script');
    await desk.getByLabel('Expires after').selectOption('30');
    await desk.getByLabel('Read-only (GET requests only)').check();
    await desk.getByRole('button', { name: 'Create token' }).click();
    const token = (await desk.locator('#new-token').innerText()).trim();
    assert.match(token, /^op_/);
    const call = (method) =>
      fetch(`${cp.ui}/api/v1/workspaces`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: method === 'POST' ? '{"name":"Nope"}' : undefined,
      });
    assert.equal((await call('GET')).status, 200);
    const write = await call('POST');
    assert.equal(write.status, 403);
    assert.equal((await write.json()).code, 'token_read_only');

    await desk.goto(`${cp.ui}/account/tokens`);
    assert.doesNotMatch(await mainText(desk), new RegExp(token), 'shown once');
    assert.match(await mainText(desk), /read-only/);
    await desk.getByRole('button', { name: 'Revoke' }).click();
    await desk.getByText('No tokens yet.').waitFor();
    const after = await call('GET');
    assert.equal(after.status, 401);
    assert.equal((await after.json()).code, 'token_revoked');
  });
});
