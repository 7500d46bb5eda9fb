// A team, as an owner builds it in Chromium (issue 7): an invitation by email, a colleague who
// joins with the role they were given and gets that role's rights in the node console, a
// role change, a removal that ends their console session, and the audit log that records it.

import test from 'node:test';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText, openConsole, workspaceWithNode } from './lib/steps.js';
import { until } from './lib/widget.js';

/** The node console's navigation, as link names. */
async function consoleNav(page) {
  return (await page.locator('nav a').allInnerTexts()).map((s) => s.trim());
}

test('an owner invites a colleague, changes their role and removes them; the console follows', async (t) => {
  await journey(t, async ({ browser, cp }) => {
    const owner = await (await browser.context()).newPage();
    await workspaceWithNode(owner, cp, 'owner@team.test', 'Team Dental');
    const workspaceUrl = owner.url();

    await owner.getByRole('link', { name: 'Members' }).click();
    await owner.getByRole('heading', { name: 'Members of Team Dental' }).waitFor();
    await owner.getByLabel('Email').fill('desk@team.test');
    await owner.getByLabel('Role', { exact: true }).selectOption('member');
    await owner.getByRole('button', { name: 'Send invitation' }).click();
    await owner.getByRole('status').filter({ hasText: 'Invitation sent' }).waitFor();
    await owner.locator('#invitations', { hasText: 'desk@team.test' }).waitFor();
    // Reloading the page does not send the form again.
    assert.equal(new URL(owner.url()).pathname.endsWith('/members'), true, owner.url());

    // The colleague follows the emailed link in their own browser.
    const desk = await (await browser.context()).newPage();
    const link = await cp.outboxFind('desk@team.test', '/invitations/accept');
    await desk.goto(link);
    await desk.getByRole('heading', { name: 'Join Team Dental' }).waitFor();
    assert.match(await desk.locator('main').innerText(), /as member/);
    await desk.getByRole('button', { name: 'Accept and sign in' }).click();
    // Straight to the workspace they joined.
    await desk.getByRole('heading', { name: 'Team Dental', level: 1 }).waitFor();
    assert.match(await mainText(desk), /Your role\s+member/);
    assert.equal(await desk.getByRole('link', { name: 'Audit log' }).count(), 0, 'members see no audit log');

    // In the node console a member has the inbox and contacts, not the settings.
    await openConsole(desk);
    let nav = await consoleNav(desk);
    assert.ok(nav.some((n) => n.startsWith('Inbox')), nav.join(', '));
    assert.ok(!nav.includes('Knowledge base') && !nav.includes('Exports'), nav.join(', '));
    const deskConsole = new URL(desk.url()).origin;

    // The owner makes them an admin; they are told, and the console gets the admin's pages.
    await owner.reload();
    await owner.getByLabel('Role of desk@team.test').selectOption('admin');
    await owner.getByRole('button', { name: 'Change role' }).click();
    await owner.locator('#members tr', { hasText: 'desk@team.test' }).filter({ hasText: 'admin' }).waitFor();
    await cp.outboxFind('desk@team.test', 'admin');
    await desk.goto(workspaceUrl);
    await openConsole(desk);
    nav = await consoleNav(desk);
    assert.ok(nav.includes('Knowledge base') && nav.includes('Exports'), nav.join(', '));

    // Removed: the workspace is gone for them, and the node ends their console session.
    await owner.getByRole('button', { name: 'Remove' }).click();
    await owner.locator('#members', { hasText: 'desk@team.test' }).waitFor({ state: 'detached' });
    browser.expect(/status of (401 \(Unauthorized\)|404 \(Not Found\))/);
    await until(async () => {
      await desk.goto(`${deskConsole}/`);
      return /Sign-in required/.test(await mainText(desk));
    }, 'the node to end the removed member\'s console session');
    await desk.goto(workspaceUrl);
    assert.equal(await desk.getByRole('button', { name: 'Open node console' }).count(), 0);
    await desk.goto(`${cp.ui}/workspaces`);
    assert.doesNotMatch(await mainText(desk), /Team Dental/, 'no longer among their workspaces');

    // The audit log says who did what, and to whom only by address.
    await owner.goto(workspaceUrl);
    await owner.getByRole('link', { name: 'Audit log' }).click();
    const audit = await owner.locator('#audit').innerText();
    for (const action of ['member.invited', 'member.role_changed', 'member.removed']) {
      assert.match(audit, new RegExp(action.replace('.', '\\.')), `${action} in the audit log`);
    }
  });
});
