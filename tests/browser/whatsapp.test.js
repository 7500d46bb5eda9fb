// WhatsApp in Chromium (issue 19, part 3): the owner adds the WhatsApp credentials on the
// control plane (checked at a fake Graph API written here, speaking Meta's wire format);
// a customer's photo arrives in a webhook signed with this file's own HMAC (node:crypto,
// not the node's code) and is shown in the inbox from the node's no-sniff route; the
// customer wrote more than 24 hours ago (Meta delivered the webhook late), so the reply
// box offers the approved templates: staff pick one with an image header, a body variable
// and a URL-button variable, are told in the form what is wrong with a bad link, and send
// it; the fake Graph API records exactly the body Meta documents, once, reload or not. A
// follow-up added on the contact's page with the same template goes out the same way when
// due, the contact's first name filled in by the node.

import test from 'node:test';
import crypto from 'node:crypto';
import http from 'node:http';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { openConsole, workspaceWithNode } from './lib/steps.js';
import { until } from './lib/widget.js';

const TOKEN = 'EAAG-browser-canary-access';
const APP_SECRET = 'browser-canary-app-secret-31';
const PHONE_ID = '1098765';
const WABA = '880001';
const CUSTOMER = '15557654321';
const MEDIA_ID = '7700112233';
// A 2×2 PNG: what the customer sent.
const PHOTO = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==',
  'base64',
);

/** The approved templates, as `GET /{waba}/message_templates` lists them. */
const TEMPLATES = {
  data: [
    {
      name: 'order_update',
      language: 'en_US',
      status: 'APPROVED',
      category: 'UTILITY',
      id: '31',
      parameter_format: 'POSITIONAL',
      components: [
        { type: 'HEADER', format: 'IMAGE', example: { header_handle: ['4::aW1hZ2UvcG5n:ARb'] } },
        { type: 'BODY', text: 'Hi {{1}}, your order has shipped.', example: { body_text: [['Bea']] } },
        {
          type: 'BUTTONS',
          buttons: [{ type: 'URL', text: 'Track it', url: 'https://shop.example/track/{{1}}', example: ['https://shop.example/track/A-1'] }],
        },
      ],
    },
  ],
  paging: { cursors: { before: 'MAZDZD', after: 'MjQZD' } },
};

/**
 * A fake Graph API: checks the bearer token as Meta does, answers the control plane's
 * phone-number check, the media lookup and download, the template list, and records the
 * messages the node sends.
 */
async function fakeGraph() {
  const sent = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://graph');
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      json(401, { error: { message: 'Invalid OAuth access token.', type: 'OAuthException', code: 190 } });
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const base = `http://127.0.0.1:${server.address().port}`;
      if (req.method === 'GET' && url.pathname === `/v21.0/${PHONE_ID}` && url.searchParams.get('fields') === 'id') {
        json(200, { id: PHONE_ID });
      } else if (req.method === 'GET' && url.pathname === `/v21.0/${MEDIA_ID}`) {
        json(200, {
          messaging_product: 'whatsapp',
          url: `${base}/whatsapp_business/attachments/?mid=${MEDIA_ID}`,
          mime_type: 'image/png',
          sha256: crypto.createHash('sha256').update(PHOTO).digest('hex'),
          file_size: PHOTO.length,
          id: MEDIA_ID,
        });
      } else if (req.method === 'GET' && url.pathname === '/whatsapp_business/attachments/') {
        res.writeHead(200, { 'content-type': 'image/png' });
        res.end(PHOTO);
      } else if (req.method === 'GET' && url.pathname === `/v21.0/${WABA}/message_templates`) {
        json(200, TEMPLATES);
      } else if (req.method === 'POST' && url.pathname === `/v21.0/${PHONE_ID}/messages`) {
        sent.push(JSON.parse(body));
        json(200, { messaging_product: 'whatsapp', contacts: [{ input: CUSTOMER, wa_id: CUSTOMER }], messages: [{ id: `wamid.OUT-${sent.length}` }] });
      } else {
        json(404, { error: { message: 'Unknown path', code: 100 } });
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}/v21.0`,
    sent,
    templatesSent: () => sent.filter((m) => m.type === 'template'),
    close: () => new Promise((r) => server.close(r)),
  };
}

/** The webhook Meta posts for a photo the customer sent at `writtenAt` (unix seconds). */
function photoWebhook(writtenAt) {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: WABA,
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: PHONE_ID },
              contacts: [{ profile: { name: 'Bea Lopez' }, wa_id: CUSTOMER }],
              messages: [
                {
                  from: CUSTOMER,
                  id: 'wamid.IN-photo-1',
                  timestamp: String(writtenAt),
                  type: 'image',
                  image: { id: MEDIA_ID, mime_type: 'image/png', sha256: crypto.createHash('sha256').update(PHOTO).digest('base64'), caption: 'Is this the right part?' },
                },
              ],
            },
          },
        ],
      },
    ],
  });
}

/** POSTs `body` to the node's webhook as Meta does, signed with the app secret. */
function postWebhook(consoleBase, body) {
  const target = new URL('/channels/whatsapp/webhook', consoleBase);
  const signature = `sha256=${crypto.createHmac('sha256', APP_SECRET).update(body).digest('hex')}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: { host: target.host, 'content-type': 'application/json', 'x-hub-signature-256': signature },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('a customer photo is shown in the inbox, and past 24 hours staff send a template with an image header and a button, as a reply and as a follow-up', async (t) => {
  const graph = await fakeGraph();
  t.after(() => graph.close());
  await journey(
    t,
    async ({ browser, cp }) => {
      const page = await (await browser.context()).newPage();
      await workspaceWithNode(page, cp, 'owner@parts.test', 'Parts Shop');
      const workspaceUrl = page.url();
      await page.getByRole('link', { name: 'New agent' }).click();
      await page.getByLabel('Name', { exact: true }).fill('Ava');
      await page.getByLabel('whatsapp').check();
      await page.getByRole('button', { name: 'Create agent' }).click();
      await page.locator('#embed-snippet').waitFor();

      // The owner adds the WhatsApp credentials; the control plane checks the token.
      await page.goto(workspaceUrl);
      await page.getByRole('link', { name: 'Keys and channel credentials' }).click();
      await page.getByLabel('Kind').selectOption('whatsapp_access_token');
      await page.getByLabel('Value').fill(TOKEN);
      await page.getByLabel(/^Phone number id/).fill(PHONE_ID);
      await page.getByRole('button', { name: 'Check and send to my node' }).click();
      await page.getByRole('status').waitFor();
      await page.getByLabel('Kind').selectOption('whatsapp_app_secret');
      await page.getByLabel('Value').fill(APP_SECRET);
      await page.getByRole('button', { name: 'Check and send to my node' }).click();
      await page.getByRole('status').filter({ hasText: 'WhatsApp app secret' }).waitFor();
      assert.ok(!(await page.content()).includes(TOKEN), 'the token is not on the page');

      await page.goto(workspaceUrl);
      await openConsole(page);
      const consoleBase = new URL(page.url()).origin;

      // Meta delivers, late, a photo the customer sent 25 hours ago; refused until the
      // node has the app secret to check the signature with.
      const webhook = photoWebhook(Math.floor(Date.now() / 1000) - 25 * 3600);
      await until(async () => (await postWebhook(consoleBase, webhook)) === 200, 'the node to accept the signed webhook', 60_000);

      await page.getByRole('link', { name: 'Inbox' }).click();
      await page.getByRole('heading', { name: 'Inbox', level: 1 }).waitFor();
      await until(async () => {
        await page.reload();
        return (await page.getByRole('link', { name: 'Bea Lopez' }).count()) > 0;
      }, 'the conversation in the inbox');
      await page.getByRole('link', { name: 'Bea Lopez' }).click();
      const photo = page.locator('img.media');
      await photo.waitFor();
      await until(() => photo.evaluate((img) => img.complete && img.naturalWidth > 0), 'the photo to load');
      assert.equal(await photo.evaluate((img) => img.naturalWidth), 2);
      assert.match(await page.locator('main').innerText(), /Is this the right part\?/);

      // Past the 24-hour window the reply box offers the approved templates (the node
      // lists them once a webhook has named the business account).
      const conversationUrl = page.url();
      await until(async () => {
        await page.goto(conversationUrl);
        return (await page.getByLabel('Template').count()) > 0;
      }, 'the approved templates', 120_000);
      await page.getByLabel('Template').selectOption('order_update:en_US');
      await page.getByRole('button', { name: 'Choose' }).click();

      // A link WhatsApp could not fetch safely: said in the form, nothing sent.
      browser.expect(/status of 400 \(Bad Request\)/);
      await page.getByLabel('Link of the image shown above the message (https)').fill('http://cdn.shop.example/offer.png');
      await page.getByLabel('Variable 1').fill('Bea');
      await page.getByLabel(/^Button link/).fill('A-1001');
      await page.getByRole('button', { name: 'Send template' }).click();
      const alert = page.getByRole('alert');
      assert.match(await alert.innerText(), /The image link cannot be used\. The address must use https\. Nothing was sent\./);
      assert.equal(await page.getByLabel('Variable 1').inputValue(), 'Bea', 'what was typed is kept');
      assert.equal(graph.templatesSent().length, 0);

      await page.getByLabel('Link of the image shown above the message (https)').fill('https://cdn.shop.example/offer.png');
      await page.getByRole('button', { name: 'Send template' }).click();
      await page.locator('#template-error').waitFor({ state: 'detached' });
      await until(() => graph.templatesSent().length > 0, 'the template at the Graph API');
      assert.deepEqual(graph.templatesSent()[0], {
        messaging_product: 'whatsapp',
        recipient_type: 'individual',
        to: CUSTOMER,
        type: 'template',
        template: {
          name: 'order_update',
          language: { code: 'en_US' },
          components: [
            { type: 'header', parameters: [{ type: 'image', image: { link: 'https://cdn.shop.example/offer.png' } }] },
            { type: 'body', parameters: [{ type: 'text', text: 'Bea' }] },
            { type: 'button', sub_type: 'url', index: '0', parameters: [{ type: 'text', text: 'A-1001' }] },
          ],
        },
      });
      assert.match(await page.locator('main').innerText(), /Hi Bea, your order has shipped\./);

      // A reload does not send it again.
      await page.reload();
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(graph.templatesSent().length, 1);
      assert.equal(graph.sent.filter((m) => m.type === 'text').length, 0, 'no free text past the window');

      // A follow-up on the contact's page carries the template too: due past the window,
      // the node sends it with the contact's first name filled in.
      await page.getByRole('link', { name: 'Bea Lopez' }).click();
      await page.getByRole('heading', { name: 'Follow-ups' }).waitFor();
      await page.getByLabel(/^WhatsApp template for a message due/).selectOption('order_update:en_US');
      await page.getByRole('button', { name: 'Choose template' }).click();
      const due = new Date(Date.now() - 60_000).toISOString().slice(0, 16);
      await page.getByLabel('Due (UTC)').fill(due);
      await page.getByLabel('Text', { exact: true }).fill('Your order is on its way.');
      await page.getByLabel('Link of the image shown above the message (https)').fill('https://cdn.shop.example/parcel.png');
      await page.getByLabel('Template variable 1').fill('{{contact.first_name}}');
      await page.getByLabel(/^Button link/).fill('A-1002');
      await page.getByRole('button', { name: 'Add follow-up' }).click();
      await page.getByRole('status').filter({ hasText: 'Follow-up added.' }).waitFor();
      await until(() => graph.templatesSent().length > 1, 'the follow-up at the Graph API (the follow-up loop runs every 30 s)', 90_000);
      assert.deepEqual(graph.templatesSent()[1].template.components, [
        { type: 'header', parameters: [{ type: 'image', image: { link: 'https://cdn.shop.example/parcel.png' } }] },
        { type: 'body', parameters: [{ type: 'text', text: 'Bea' }] },
        { type: 'button', sub_type: 'url', index: '0', parameters: [{ type: 'text', text: 'A-1002' }] },
      ]);
      await until(async () => {
        await page.reload();
        return /sent/.test(await page.locator('#followups').innerText());
      }, 'the follow-up marked sent');
    },
    {
      cpEnv: {
        OUTPOST_ALLOW_LOCAL_PROVIDERS: 'true',
        OUTPOST_GRAPH_BASE_URL: graph.base,
        OUTPOST_NODE_GRAPH_BASE_URL: graph.base,
      },
    },
  );
});
