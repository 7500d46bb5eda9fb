// The web-chat widget as the journeys drive it: an agent on the customer's site, the
// widget's parts, a visitor's message and a team member's reply.

import { assert } from './expect.js';
import { openConsole, workspaceWithNode } from './steps.js';

/** Waits until `check()` is truthy (polling), or fails saying what did not happen. */
export async function until(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The owner creates an agent for `site` on the control plane and pastes its snippet there,
 * then opens the node console and waits until the node lists the agent (the control plane
 * sends it the configuration within seconds). Returns the node console's page.
 */
export async function agentOnCustomerSite(browser, cp, site) {
  const page = await (await browser.context()).newPage();
  await workspaceWithNode(page, cp, 'owner@smile.test', 'Smile Dental');

  await page.getByRole('link', { name: 'New agent' }).click();
  await page.getByLabel('Name', { exact: true }).fill('Ava');
  assert.match(
    await page.getByLabel('Model provider').locator('option:checked').innerText(),
    /Built-in retrieval/,
    'the built-in model is the default',
  );
  await page.getByLabel('Websites allowed to embed the chat (one per line)').fill(site.origin);
  await page.getByRole('button', { name: 'Create agent' }).click();
  const snippet = (await page.locator('#embed-snippet').innerText()).trim();
  assert.match(snippet, /^<script src="http[^"]+\/widget\.js" data-outpost-agent="[^"]+" async><\/script>$/);
  site.paste(snippet);

  await page.getByRole('link', { name: '← Smile Dental' }).click();
  await openConsole(page);
  await page.getByRole('link', { name: 'Agents' }).click();
  await until(async () => {
    if (await page.getByRole('heading', { name: 'Ava' }).count()) return true;
    await page.reload();
    return false;
  }, 'the node to list the new agent');
  assert.match(await page.locator('main').innerText(), new RegExp(site.origin.replace(/[.]/g, '\\.')));
  return { page, nodeOrigin: new URL(snippet.match(/src="([^"]+)"/)[1]).origin };
}

/** The widget's parts on the customer's page (Playwright's locators pierce its open shadow root). */
export function widget(page) {
  const w = page.locator('[data-outpost-widget]');
  return {
    launcher: w.locator('button.launcher'),
    badge: w.locator('.badge'),
    nudge: w.locator('.nudge'),
    panel: page.getByRole('dialog', { name: 'Chat' }),
    close: page.getByRole('button', { name: 'Close chat' }),
    message: page.getByLabel('Your message'),
    send: page.getByRole('button', { name: 'Send', exact: true }),
    entries: (from) => w.locator(`.log li.${from}`),
  };
}

/** Sends `text` from the open widget and waits for the assistant's whole answer. */
export async function visitorSends(page, text) {
  const w = widget(page);
  await w.message.fill(text);
  await w.send.click();
  await w.entries('visitor').filter({ hasText: text }).waitFor();
  // The answer is an agent entry after this message, whole once Send is enabled again
  // (counting agent entries before sending raced with the greeting, which arrives by
  // itself when the chat opens).
  const log = page.locator('[data-outpost-widget] .log li');
  await until(async () => {
    if (!(await w.send.isEnabled())) return false;
    const rows = await log.evaluateAll((els) => els.map((e) => [e.className, e.textContent]));
    const mine = rows.findLastIndex(([c, t]) => c === 'visitor' && t.includes(text));
    return rows.slice(mine + 1).some(([c, t]) => c === 'agent' && t.trim().length > 0);
  }, 'the assistant to answer');
}

/** The team member replies from the node console's inbox (taking the conversation over). */
export async function teamReplies(consolePage, text, button) {
  await consolePage.getByRole('link', { name: 'Inbox', exact: true }).click();
  await consolePage.locator('#inbox-table a').first().click();
  await consolePage.getByRole('heading', { name: /Conversation with/ }).waitFor();
  await consolePage.getByLabel('Your message').fill(text);
  await consolePage.getByRole('button', { name: button, exact: true }).click();
  await consolePage.locator('#transcript-box', { hasText: text }).waitFor();
}

export async function box(locator) {
  const b = await locator.boundingBox();
  assert.ok(b, 'the element is on screen');
  return b;
}

/** A new visitor on `site` who opens the chat: their page and the widget's parts. */
export async function visitorOpensChat(browser, site) {
  const visitor = await (await browser.context()).newPage();
  await visitor.goto(site.url);
  const w = widget(visitor);
  await visitor.getByRole('button', { name: 'Chat with us' }).click();
  await w.panel.waitFor();
  return { visitor, w };
}
