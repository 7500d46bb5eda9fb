// An AI key, as an owner adds it in Chromium (issue 5): checked with the provider (a local
// fake speaking OpenAI's answer for `GET /v1/models`), refused in words when wrong, sealed to
// the node, shown only by its last characters, and removed from the node.

import test from 'node:test';
import http from 'node:http';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText, openConsole, workspaceWithNode } from './lib/steps.js';
import { until } from './lib/widget.js';

const GOOD = 'sk-test-browser-key-77aa';

/** OpenAI's models endpoint: 200 for the good key, OpenAI's 401 body for any other. */
async function fakeOpenAi() {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      if (req.headers.authorization === `Bearer ${GOOD}`) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', owned_by: 'openai' }] }));
        return;
      }
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' } }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${server.address().port}/v1`, close: () => new Promise((r) => server.close(r)) };
}

test('an owner adds an AI key: a wrong one is refused, the right one reaches the node masked, then is removed', async (t) => {
  const openai = await fakeOpenAi();
  t.after(() => openai.close());
  await journey(
    t,
    async ({ browser, cp }) => {
      const owner = await (await browser.context()).newPage();
      await workspaceWithNode(owner, cp, 'owner@keys.test', 'Keys Dental');
      const workspaceUrl = owner.url();
      await owner.getByRole('link', { name: 'Keys and channel credentials' }).click();
      await owner.getByRole('heading', { name: 'Keys and channel credentials' }).waitFor();

      // A wrong key: refused in words, nothing kept, the field not filled back in.
      browser.expect(/status of 400 \(Bad Request\)/);
      await owner.getByLabel('Kind').selectOption('openai_api_key');
      await owner.getByLabel('Value').fill('sk-wrong-0000');
      await owner.getByRole('button', { name: 'Check and send to my node' }).click();
      assert.match(await owner.getByRole('alert').innerText(), /rejected it.*Nothing was saved/);
      assert.match(await mainText(owner), /No key yet/);
      assert.equal(await owner.getByLabel('Value').inputValue(), '');

      // The right key: accepted, and only its last characters are ever shown.
      await owner.getByLabel('Kind').selectOption('openai_api_key');
      await owner.getByLabel('Value').fill(GOOD);
      await owner.getByRole('button', { name: 'Check and send to my node' }).click();
      await owner.getByRole('status').filter({ hasText: 'OpenAI API key accepted and sealed to your node' }).waitFor();
      assert.match(new URL(owner.url()).search, /^\?added=openai_api_key$/, 'a page that a reload does not send again');
      const row = owner.locator('#secrets tr', { hasText: 'OpenAI API key' });
      assert.match(await row.innerText(), /…77aa/);
      await until(async () => {
        await owner.reload();
        return /delivered to your node/.test(await row.innerText());
      }, 'the node to store the key');
      assert.ok(!(await owner.content()).includes(GOOD), 'the key is not on the page');

      // The node console has it, from the control plane, masked the same way.
      await owner.goto(workspaceUrl);
      await openConsole(owner);
      const consoleBase = new URL(owner.url()).origin;
      await owner.getByRole('link', { name: 'Settings' }).click();
      const keyRow = owner.locator('tr', { hasText: 'OpenAI API key' });
      assert.match(await keyRow.innerText(), /…77aa.*delivered by the control plane/s);
      assert.ok(!(await owner.content()).includes(GOOD), 'the key is not on the node page');

      // Removed on the control plane: gone from the node too.
      await owner.goto(workspaceUrl);
      await owner.getByRole('link', { name: 'Keys and channel credentials' }).click();
      await row.getByRole('button', { name: 'Remove' }).click();
      await until(async () => {
        await owner.goto(`${consoleBase}/settings`);
        return /not set/.test(await keyRow.innerText());
      }, 'the node to remove the key');
    },
    {
      cpEnv: {
        OUTPOST_ALLOW_LOCAL_PROVIDERS: 'true',
        OUTPOST_OPENAI_BASE_URL: openai.base,
        OUTPOST_NODE_OPENAI_BASE_URL: openai.base,
      },
    },
  );
});
