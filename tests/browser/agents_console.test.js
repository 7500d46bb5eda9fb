// The node console's Agents page (issue 13): "Try it here", where staff chat with their
// agent as a visitor would (kept as a test, not counted), and the hint for an owner whose
// website is not among the agent's allowed websites.

import test from 'node:test';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { customerSite } from './lib/site.js';
import { openConsole, workspaceWithNode } from './lib/steps.js';

test('"Try it here" conversations are marked as tests and kept out of the counts', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const page = await (await browser.context()).newPage();
    await workspaceWithNode(page, cp, 'owner@smile.test', 'Smile Dental');
    const workspaceUrl = page.url();
    await page.getByRole('link', { name: 'New agent' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Ava');
    await page.getByRole('button', { name: 'Create agent' }).click();
    await page.locator('#embed-snippet').waitFor();

    await page.goto(workspaceUrl);
    await openConsole(page);
    const console = page.url();
    await page.getByRole('link', { name: 'Agents' }).click();
    for (let i = 0; (await page.getByRole('link', { name: 'Try it here' }).count()) === 0; i++) {
      assert.ok(i < 60, 'the agent reaches the node');
      await new Promise((r) => setTimeout(r, 500));
      await page.reload();
    }
    await page.getByRole('link', { name: 'Try it here' }).click();
    await page.getByRole('button', { name: 'Chat with us' }).click();
    const chat = page.getByRole('dialog', { name: 'Chat' });
    await chat.getByRole('textbox', { name: 'Your message' }).fill('Do you open on Saturdays?');
    await chat.getByRole('button', { name: 'Send' }).click();
    await chat.locator('li.agent').last().waitFor();

    // The inbox keeps it, marked as a test.
    await page.goto(new URL('/inbox', console).toString());
    await page.getByRole('cell', { name: 'Test (Try it here)' }).waitFor();

    // Two more reports reach the control plane after the chat: still no usage counted.
    await page.goto(workspaceUrl);
    const seq = async () => Number((await page.locator('#node-status').innerText()).match(/\(#(\d+)\)/)?.[1] ?? 0);
    const after = (await seq()) + 2;
    for (let i = 0; (await seq()) < after; i++) {
      assert.ok(i < 60, 'reports keep coming');
      await new Promise((r) => setTimeout(r, 500));
      await page.reload();
    }
    assert.equal(await page.getByRole('heading', { name: 'Messages per hour' }).count(), 0);
  });
});

test('a website that is not allowed is listed on the Agents page with a hint', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const site = await customerSite();
    t.after(() => site.close());
    const page = await (await browser.context()).newPage();
    await workspaceWithNode(page, cp, 'owner@smile.test', 'Smile Dental');
    const workspaceUrl = page.url();
    // The owner lists another address than the site they paste the snippet on.
    await page.getByRole('link', { name: 'New agent' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Ava');
    await page.getByLabel('Websites allowed to embed the chat (one per line)').fill('https://www.smile.example');
    await page.getByRole('button', { name: 'Create agent' }).click();
    site.paste(await page.locator('#embed-snippet').innerText());

    await page.goto(workspaceUrl);
    await openConsole(page);
    await page.getByRole('link', { name: 'Agents' }).click();
    for (let i = 0; (await page.getByRole('heading', { name: 'Ava' }).count()) === 0; i++) {
      assert.ok(i < 60, 'the agent reaches the node');
      await new Promise((r) => setTimeout(r, 500));
      await page.reload();
    }

    // The visitor's chat cannot start there: the browser refuses it (CORS).
    browser.expect(/CORS policy|status of 403|net::ERR_FAILED/);
    const visitor = await (await browser.context()).newPage();
    await visitor.goto(site.url);
    await visitor.getByRole('button', { name: 'Chat with us' }).click();
    await visitor.getByRole('dialog', { name: 'Chat' }).getByText('The chat is unreachable').waitFor();

    await page.reload();
    const hint = page.locator('.refused-origins');
    await hint.waitFor();
    assert.match(await hint.innerText(), new RegExp(site.origin.replace(/[.:/]/g, '\\$&')));
    assert.match(await hint.innerText(), /add it to the agent's websites/);
  });
});
