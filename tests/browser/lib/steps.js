// Steps a person takes, shared by the journeys: each clicks and types through the real
// pages and waits for what a person would wait for.

import { expect } from './expect.js';
import { signIn } from './harness.js';

/** Signs in, creates a workspace named `name`, and waits until its node is healthy. */
export async function workspaceWithNode(page, cp, email, name) {
  await signIn(page, cp, email);
  await page.getByRole('heading', { name: 'Your workspaces' }).waitFor();
  await page.getByLabel('Business name').fill(name);
  await page.getByRole('button', { name: 'Create workspace' }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  // The status card refreshes itself (htmx) through every provisioning step.
  await page.locator('#node-state', { hasText: 'healthy' }).waitFor({ timeout: 120_000 });
  return new URL(page.url()).pathname.split('/').pop();
}

/** Clicks "Open node console" on the workspace page; returns the console's page. */
export async function openConsole(page) {
  await page.getByRole('button', { name: 'Open node console' }).click();
  await page.locator('#node-id').waitFor();
  expect(new URL(page.url()).hostname.endsWith('.localhost'), `console on the node's host: ${page.url()}`);
  return page;
}

/** The text of the page's main element. */
export async function mainText(page) {
  return (await page.locator('main').innerText()).trim();
}
