// The operator console, as Outpost staff use it in Chromium (issue 7): made an operator by the
// real binary's CLI, they find a workspace, see its metadata and none of its content, suspend
// it with a reason the owner reads, and resume it; the widget on the customer's site stops
// answering meanwhile and answers again after.

import test from 'node:test';
import { spawnSync } from 'node:child_process';
import { cpBinary, journey, signIn } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { customerSite } from './lib/site.js';
import { mainText } from './lib/steps.js';
import { agentOnCustomerSite, until, visitorOpensChat, visitorSends } from './lib/widget.js';

/** `control-plane operator add` against the running control plane's data directory. */
function makeOperator(cp, email) {
  const env = { ...process.env };
  delete env.DATABASE_URL; // the control plane's own SQLite database in its data directory
  const out = spawnSync(cpBinary(), ['operator', 'add', '--email', email, '--data-dir', cp.dataDir], {
    encoding: 'utf8',
    env,
  });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, new RegExp(`${email} is now an operator`));
}

test('an operator suspends a workspace with a reason and resumes it; the widget follows', async (t) => {
  const site = await customerSite();
  t.after(() => site.close());
  await journey(t, async ({ browser, cp }) => {
    const { page: owner } = await agentOnCustomerSite(browser, cp, site);
    const { visitor, w } = await visitorOpensChat(browser, site);
    const secret = 'My card ends 4242 and I live at 9 Rose Lane';
    await visitorSends(visitor, secret);

    makeOperator(cp, 'ops@outpost.test');
    const ops = await (await browser.context()).newPage();
    await signIn(ops, cp, 'ops@outpost.test');
    await ops.getByRole('link', { name: 'Operator console' }).click();
    await ops.getByLabel('Find by address').fill('smile');
    await ops.getByRole('button', { name: 'Search' }).click();
    await ops.getByRole('link', { name: 'Smile Dental' }).click();
    await ops.getByRole('heading', { name: 'Smile Dental', level: 1 }).waitFor();
    assert.equal(await ops.locator('#node-state').innerText(), 'healthy');
    // Not a bare 4242: the page's workspace and node UUIDs may hold it (about 1 run in 1,000).
    assert.doesNotMatch(await ops.content(), /Rose Lane|card ends 4242/, 'no customer content in the operator console');

    await ops.locator('#suspensions').getByLabel(/^Reason/).fill('Abuse report 2291: phishing links sent from this agent');
    await ops.getByRole('button', { name: 'Suspend' }).click();
    await ops.locator('#suspensions', { hasText: 'Abuse report 2291' }).waitFor();
    await until(async () => {
      await ops.reload();
      return (await ops.locator('#node-state').innerText()) === 'suspended';
    }, 'the node to acknowledge the suspension');

    // The owner reads why, on the workspace page and by email.
    await owner.goto(`${cp.ui}/workspaces`);
    await owner.getByRole('link', { name: 'Smile Dental' }).click();
    assert.match(await owner.locator('#suspended').innerText(), /phishing links/);
    await cp.outboxFind('owner@smile.test', 'phishing');

    // The widget keeps the visitor's message but does not answer it.
    await w.message.fill('Are you open tomorrow?');
    await w.send.click();
    await w.entries('system').last().waitFor();
    const agentAnswers = await w.entries('agent').count();

    await ops.getByRole('button', { name: 'Resume' }).click();
    // The answer to the form first (a reload while it is still loading detaches the page).
    await ops.getByRole('button', { name: 'Suspend' }).waitFor();
    await until(async () => {
      await ops.reload();
      return (await ops.locator('#node-state').innerText()) === 'healthy';
    }, 'the node to resume');
    await visitorSends(visitor, 'Hello again, are you open tomorrow?');
    assert.ok((await w.entries('agent').count()) > agentAnswers, 'answered again');
    assert.match(await mainText(ops), /lifted|Lifted/);
  });
});
