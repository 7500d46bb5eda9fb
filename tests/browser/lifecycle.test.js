// The end of a workspace, as an owner goes through it in Chromium (issue 6): rename, cancel
// (channels stop, the node stays for exports), reactivate, cancel again, then destroy the
// node now; the page shows the node's signed destruction receipt and the node process is gone.

import test from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText, workspaceWithNode } from './lib/steps.js';
import { until } from './lib/widget.js';

/** Whether the process with `pid` still runs. */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('an owner renames, cancels, reactivates and destroys a workspace, and gets the receipt', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const owner = await (await browser.context()).newPage();
    await workspaceWithNode(owner, cp, 'owner@end.test', 'Old Name Bakery');
    const slug = (await owner.locator('dd code').first().innerText()).trim();
    const nodes = path.join(cp.dataDir, 'nodes');
    const pid = Number(fs.readFileSync(path.join(nodes, fs.readdirSync(nodes)[0], 'pid'), 'utf8').trim());
    assert.ok(alive(pid), 'the node runs');

    await owner.getByLabel('Name', { exact: true }).fill('New Name Bakery');
    await owner.getByRole('button', { name: 'Rename workspace' }).click();
    await owner.getByRole('heading', { name: 'New Name Bakery', level: 1 }).waitFor();
    assert.equal((await owner.locator('dd code').first().innerText()).trim(), slug, 'the address stays');

    // Cancelling needs the box ticked; then the node stays for exports.
    await owner.getByRole('button', { name: 'Cancel workspace' }).click();
    assert.equal(await owner.locator('#export-window').count(), 0, 'the browser did not send the form unticked');
    await owner.getByLabel('I understand that my channels stop now').check();
    await owner.getByRole('button', { name: 'Cancel workspace' }).click();
    await owner.locator('#export-window').waitFor();
    await cp.outboxFind('owner@end.test', 'cancelled');

    await owner.getByRole('button', { name: 'Reactivate' }).click();
    await owner.locator('#cancel-workspace').waitFor();
    assert.equal(await owner.locator('#export-window').count(), 0);

    // Destroy now: the address must be typed; then the receipt.
    await owner.getByLabel(/^Type the address/).fill('not-the-address');
    await owner.getByRole('button', { name: 'Delete workspace and destroy its node now' }).click();
    assert.equal(await owner.locator('#receipt').count(), 0, 'the browser did not send a wrong address');
    await owner.getByLabel(/^Type the address/).fill(slug);
    await owner.getByRole('button', { name: 'Delete workspace and destroy its node now' }).click();
    // The answer to the form first (a reload while it is still loading detaches the page).
    await owner.locator('#delete-now').waitFor({ state: 'detached' });
    await until(async () => {
      await owner.reload();
      return (await owner.locator('#receipt').count()) > 0;
    }, 'the signed destruction receipt', 60_000);
    assert.match(await owner.locator('#receipt').innerText(), /destroyed|erased/i);
    assert.doesNotMatch(await mainText(owner), /Open node console/);
    await until(async () => !alive(pid), 'the node process to end');
    const [download] = await Promise.all([
      owner.waitForEvent('download'),
      owner.getByRole('link', { name: 'Download the signed receipt' }).click(),
    ]);
    assert.ok(download.suggestedFilename().length > 0);
  });
});
