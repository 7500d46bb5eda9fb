// The journey of issue 13, clicked through as a business owner, a visitor on the owner's
// website and a front-desk member would, in Chromium against the real binaries.

import test from 'node:test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { journey, signIn } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { customerSite } from './lib/site.js';
import { mainText, openConsole, workspaceWithNode } from './lib/steps.js';
import { readZip } from './lib/zip.js';

/** Reloads `page` until `check()` holds (for what arrives by a background job). */
async function reloadUntil(page, what, check, secs = 30) {
  const deadline = Date.now() + secs * 1000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
    await page.reload();
  }
}

/**
 * The page fits its device's width: nothing scrolls sideways. (On a phone the browser
 * widens the layout to fit wide content, so compare with the screen, not innerWidth.)
 */
async function fitsWidth(page) {
  const [content, screen] = await page.evaluate(() => [document.documentElement.scrollWidth, window.screen.width]);
  return content <= screen + 1;
}

test('an owner sets up, a visitor is answered by the agent and the team, data is exported, sessions end', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const site = await customerSite();
    t.after(() => site.close());

    // --- The owner: sign in, create the workspace, watch provisioning.
    const owner = await (await browser.context()).newPage();
    await workspaceWithNode(owner, cp, 'owner@smile.test', 'Smile Dental');
    const workspaceUrl = owner.url();

    // --- An agent, allowed on the owner's website; its snippet goes on the site.
    await owner.getByRole('link', { name: 'New agent' }).click();
    await owner.getByLabel('Name', { exact: true }).fill('Ava');
    await owner.getByLabel('Greeting').fill('Hello! How can we help?');
    await owner.getByLabel('Websites allowed to embed the chat (one per line)').fill(site.origin);
    await owner.getByRole('button', { name: 'Create agent' }).click();
    const snippet = (await owner.locator('#embed-snippet').innerText()).trim();
    assert.match(snippet, /^<script src="http:\/\/smile-dental\.localhost:\d+\/widget\.js" data-outpost-agent="[0-9a-f-]{36}" async><\/script>$/);
    site.paste(snippet);

    // --- The node console: a knowledge-base document for the agent to answer from.
    await owner.goto(workspaceUrl);
    await openConsole(owner);
    const consoleBase = new URL(owner.url()).origin;
    await owner.getByRole('link', { name: 'Knowledge base' }).click();
    await owner.getByLabel('File', { exact: true }).setInputFiles({
      name: 'prices.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('Prices\n\nA check-up costs 60 euros. Teeth whitening costs 250 euros.\n'),
    });
    await owner.getByRole('button', { name: 'Upload' }).click();
    await owner.getByRole('heading', { name: 'prices.txt', level: 1 }).waitFor();
    await owner.getByText('Document added: your agents answer from it now.').waitFor();
    await owner.getByRole('link', { name: 'Agents' }).click();
    await reloadUntil(owner, 'the agent to reach the node', async () =>
      (await owner.getByRole('heading', { name: 'Ava' }).count()) > 0,
    );

    // --- A visitor on the owner's website (another origin) chats with the agent.
    const visitor = await (await browser.context()).newPage();
    await visitor.goto(site.url);
    await visitor.getByRole('button', { name: 'Chat with us' }).click();
    const chat = visitor.getByRole('dialog', { name: 'Chat' });
    await chat.getByText('Hello! How can we help?').waitFor();
    await chat.getByRole('textbox', { name: 'Your message' }).fill('How much does a check-up cost?');
    await chat.getByRole('button', { name: 'Send' }).click();
    await chat.locator('li.agent', { hasText: '60 euros' }).waitFor();

    // ... then asks for a person.
    await chat.getByRole('textbox', { name: 'Your message' }).fill('Can I talk to a person please?');
    await chat.getByRole('button', { name: 'Send' }).click();
    await chat.locator('li.agent').nth(2).waitFor();

    // --- The team sees that someone waits: a count in the navigation and the title.
    await owner.getByRole('link', { name: /^Inbox/ }).click();
    await reloadUntil(owner, 'the waiting count', async () => (await owner.locator('#waiting-count').count()) > 0);
    assert.match(await owner.title(), /^\(1\) /);
    assert.match(await owner.locator('#waiting-count').innerText(), /^1/);
    // ... and by email, which says how many wait and nothing of what they wrote.
    await cp.outboxFind('owner@smile.test', 'waiting', 30);
    const email = cp.outboxTo('owner@smile.test').find((m) => m.includes('A customer is waiting'));
    assert.ok(email, 'the owner is emailed that a customer waits');
    assert.doesNotMatch(email, /talk to a person please|check-up/);
    await owner.getByRole('link', { name: /^Web visitor/ }).first().click();
    assert.equal(await owner.locator('#conversation-status').innerText(), 'Waiting for the team');
    assert.doesNotMatch(await mainText(owner), /taken this conversation over/);

    // Take over, reply; the visitor sees the reply in the widget.
    await owner.getByRole('button', { name: 'Take over', exact: true }).click();
    assert.equal(await owner.locator('#conversation-status').innerText(), 'Taken over');
    assert.equal(await owner.locator('#waiting-count').count(), 0, 'nobody waits any more');
    await owner.getByLabel('Your message').fill('Hi, this is Maria from the front desk. How can I help?');
    await owner.getByRole('button', { name: 'Send', exact: true }).click();
    await chat.locator('li.human', { hasText: 'Maria from the front desk' }).waitFor({ timeout: 20_000 });

    // Hand back: the assistant answers again.
    await owner.getByRole('button', { name: 'Hand back to the assistant' }).click();
    assert.equal(await owner.locator('#conversation-status').innerText(), 'Assistant');
    await chat.getByRole('textbox', { name: 'Your message' }).fill('And teeth whitening?');
    await chat.getByRole('button', { name: 'Send' }).click();
    await chat.locator('li.agent', { hasText: '250 euros' }).waitFor();

    // --- The contact: edit it.
    await owner.locator('h1 a').click();
    await owner.getByLabel('Name', { exact: true }).fill('Jane Doe');
    await owner.getByLabel('Stage').selectOption('qualified');
    await owner.getByRole('button', { name: 'Save', exact: true }).click();
    await owner.getByRole('heading', { name: 'Jane Doe', level: 1 }).waitFor();
    assert.equal(await owner.getByRole('status').first().innerText(), 'Saved.');

    // --- Export everything, download it, check it against its manifest.
    await owner.getByRole('link', { name: 'Exports' }).click();
    await owner.getByRole('button', { name: 'Export workspace data' }).click();
    const downloadLink = owner.getByRole('link', { name: 'Download' }).first();
    await downloadLink.waitFor({ timeout: 60_000 });
    const [download] = await Promise.all([owner.waitForEvent('download'), downloadLink.click()]);
    const zipPath = await download.path();
    const files = readZip(fs.readFileSync(zipPath));
    const manifest = JSON.parse(files.get('manifest.json').toString('utf8'));
    assert.ok(manifest.files.length >= 5, JSON.stringify(manifest));
    for (const f of manifest.files) {
      const body = files.get(f.name);
      assert.ok(body, `${f.name} is in the zip`);
      assert.equal(crypto.createHash('sha256').update(body).digest('hex'), f.sha256, f.name);
      assert.equal(body.length, f.bytes, f.name);
    }
    const everything = [...files.values()].map((b) => b.toString('utf8')).join('\n');
    assert.match(everything, /Maria from the front desk/);
    assert.match(everything, /Jane Doe/);

    // --- Retention: a preview says what would go, and saves nothing by itself.
    await owner.getByRole('link', { name: 'Settings' }).click();
    await owner.getByRole('link', { name: /retention/i }).first().click();
    await owner.getByRole('button', { name: 'Preview' }).click();
    await owner.getByRole('button', { name: 'Save these periods' }).waitFor();

    // --- The same person on a phone: every page fits its width.
    const phone = await (await browser.context({ phone: true, storageState: await owner.context().storageState() })).newPage();
    for (const path of ['/', '/inbox', '/contacts', '/kb', '/agents', '/exports', '/settings', '/settings/retention']) {
      await phone.goto(`${consoleBase}${path}`);
      assert.ok(await fitsWidth(phone), `console ${path} fits a phone`);
    }
    await phone.getByRole('link', { name: 'Contacts' }).click();
    await phone.getByRole('link', { name: 'Jane Doe' }).click();
    assert.ok(await fitsWidth(phone), 'a contact page fits a phone');
    await phone.goto(workspaceUrl);
    assert.ok(await fitsWidth(phone), 'the workspace page fits a phone');
    await phone.context().close();

    // --- Console sign-out.
    await owner.getByRole('button', { name: 'Sign out' }).click();
    await owner.getByRole('heading', { name: 'Signed out' }).waitFor();
    browser.expect(/status of 401 \(Unauthorized\)/);
    await owner.goto(`${consoleBase}/inbox`);
    assert.match(await mainText(owner), /Sign-in required/);

    // --- Signing out of Outpost ends the console session too (a shared front desk).
    await owner.goto(workspaceUrl);
    await openConsole(owner);
    const cpTab = await owner.context().newPage();
    await cpTab.goto(workspaceUrl);
    await cpTab.getByRole('button', { name: 'Sign out' }).click();
    await cpTab.getByRole('heading', { name: 'Sign in to Outpost' }).waitFor();
    await reloadUntil(owner, 'the console session to end', async () => /Sign-in required/.test(await mainText(owner)));

    // --- Deleting asks for the workspace's address; a wrong one sends nothing. (The
    // visitor leaves first: a widget whose node is gone can only fail to connect.)
    await visitor.close();
    await signIn(cpTab, cp, 'owner@smile.test');
    await cpTab.goto(workspaceUrl);
    const confirmDelete = cpTab.locator('#confirm-delete');
    await confirmDelete.fill('smile');
    await cpTab.getByRole('button', { name: 'Delete workspace and destroy its node now' }).click();
    assert.equal(await confirmDelete.evaluate((i) => i.validity.patternMismatch), true);
    assert.equal(cpTab.url(), workspaceUrl, 'the browser did not send the form');
    await confirmDelete.fill('smile-dental');
    await cpTab.getByRole('button', { name: 'Delete workspace and destroy its node now' }).click();
    await cpTab.locator('#node-state', { hasText: 'destroyed' }).waitFor({ timeout: 60_000 });
    await cpTab.reload();
    assert.match(await mainText(cpTab), /its exports with it: there is nothing left to download/);
    await cp.outboxFind('owner@smile.test', 'deleted', 30);
  });
});
