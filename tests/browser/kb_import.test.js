// Website import into the node's knowledge base (issue 19): the owner gives the address
// of their site, watches the import's progress row (it polls itself), and finds the
// site's text in the knowledge base. The site is a local server, reached because the
// control plane (and so its node) allows local addresses, as the providers' fakes are.

import test from 'node:test';
import http from 'node:http';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { openConsole, workspaceWithNode } from './lib/steps.js';

async function ownersSite() {
  const pages = {
    '/': '<h1>Smile Dental</h1><p>Family dentistry in the old town.</p><a href="/visit">Visit us</a> <a href="/private">Staff</a>',
    '/visit': '<h1>Visit us</h1><h2>Parking</h2><p>Free parking behind the clinic on Mill Lane.</p>',
    '/private': '<p>Staff rota.</p>',
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/robots.txt') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('User-agent: *\nDisallow: /private\n');
      return;
    }
    const body = pages[req.url];
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>Smile Dental</title></head><body>${body}</body></html>`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test('an owner imports their website into the knowledge base and sees its progress', async (t) => {
  const site = await ownersSite();
  t.after(() => site.close());
  await journey(
    t,
    async ({ browser, cp }) => {
      const page = await (await browser.context()).newPage();
      await workspaceWithNode(page, cp, 'owner@smile.test', 'Smile Dental');
      await openConsole(page);
      await page.getByRole('link', { name: 'Knowledge base' }).click();
      await page.getByLabel('Address of a page or of a sitemap.xml').fill(site.url);
      await page.getByLabel('Import again').selectOption({ label: 'Only when I ask' });
      await page.getByRole('button', { name: 'Import', exact: true }).click();
      // The row updates itself (htmx) until the import is done: no reload here.
      const row = page.locator('#kb-site-list tbody tr').first();
      await row.getByText('Imported 2 pages').waitFor({ timeout: 30_000 });
      await row.getByText('1 note(s)').click();
      assert.match(await row.innerText(), /\/private: not allowed by robots\.txt/);

      await page.getByLabel('Words to look for').fill('parking');
      await page.getByRole('button', { name: 'Search' }).click();
      assert.match(await page.locator('#kb-hits').innerText(), /Free parking behind the clinic on Mill Lane\./);
    },
    { cpEnv: { OUTPOST_ALLOW_LOCAL_PROVIDERS: 'true' } },
  );
});
