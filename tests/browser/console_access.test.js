// The two blockers of issue 13, as a person meets them in Chromium: opening the node
// console from the control plane, and posting any form of the console. Both passed the
// HTTP-level e2e suite and failed in a real browser.

import test from 'node:test';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText, openConsole, workspaceWithNode } from './lib/steps.js';

test('"Open node console" signs in on the node, and its forms are accepted', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const page = await (await browser.context()).newPage();
    await workspaceWithNode(page, cp, 'owner@smile.test', 'Smile Dental');

    // Blocker 2: the handoff's SameSite=Strict cookie must survive the trip from the
    // control plane's site to the node's.
    await openConsole(page);
    assert.match(await mainText(page), /Smile Dental/);
    assert.doesNotMatch(await mainText(page), /Sign-in required/);
    assert.doesNotMatch(page.url(), /token=/, 'the token is gone from the address bar');

    // Blocker 1: a form post from the console's own page (Chrome sends `Origin: null`
    // under `Referrer-Policy: no-referrer`).
    await page.getByRole('link', { name: 'Knowledge base' }).click();
    await page.getByLabel('File', { exact: true }).setInputFiles({
      name: 'opening-hours.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('We are open Monday to Friday, 9:00 to 17:00.\n'),
    });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByRole('heading', { name: 'opening-hours.txt', level: 1 }).waitFor();
    assert.doesNotMatch(await mainText(page), /Request refused/);
    assert.match(await mainText(page), /We are open Monday to Friday/);

    // Sign out is a form too.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Signed out' }).waitFor();
    browser.expect(/status of 401 \(Unauthorized\)/);
    await page.goto(new URL('/inbox', page.url()).toString());
    assert.match(await mainText(page), /Sign-in required/);
  });
});
