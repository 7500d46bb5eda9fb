// Issue 19 part 4, as an owner meets it in Chromium: the node console's Integrations
// page makes an API token that is shown once and works on the node's API, revokes it,
// and refuses a webhook endpoint on a private network in words.

import test from 'node:test';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText, openConsole, workspaceWithNode } from './lib/steps.js';

/** The node's API at the console's port on 127.0.0.1 (the `.localhost` name is Chrome's). */
async function api(page, path, token) {
  const url = new URL(path, page.url());
  url.hostname = '127.0.0.1';
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return fetch(url, { headers });
}

test('an API token is made, shown once, works, and stops when revoked', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const page = await (await browser.context()).newPage();
    await workspaceWithNode(page, cp, 'owner@integrations.test', 'Integration Dental');
    await openConsole(page);
    await page.getByRole('link', { name: 'Integrations' }).click();
    await page.getByRole('heading', { name: 'Integrations', level: 1 }).waitFor();

    await page.getByLabel('Name').fill('CRM sync');
    await page.getByRole('checkbox', { name: /conversations:read/ }).check();
    await page.getByLabel('Expires').selectOption('30');
    await page.getByRole('button', { name: 'Make token' }).click();
    const token = (await page.locator('#new-token').innerText()).trim();
    assert.match(token, /^onat_/);

    let r = await api(page, '/api/v1/conversations', token);
    assert.equal(r.status, 200);
    r = await api(page, '/api/v1/contacts', token);
    assert.equal(r.status, 403, 'only the scope it was given');

    await page.getByRole('link', { name: 'Integrations' }).click();
    assert.doesNotMatch(await mainText(page), new RegExp(token), 'shown once');
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.locator('#tokens', { hasText: 'revoked' }).waitFor();
    r = await api(page, '/api/v1/conversations', token);
    assert.equal(r.status, 401);
    assert.equal((await r.json()).code, 'token_revoked');

    // A webhook endpoint on a private network is refused with the reason.
    browser.expect(/status of 400 \(Bad Request\)/);
    await page.getByLabel('Endpoint URL').fill('https://10.1.2.3/hook');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page.getByText(/private network/).first().waitFor();
  });
});
