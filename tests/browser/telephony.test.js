// Telephony as an owner and a team member meet it in Chromium (issue 16): the Twilio
// credential added on the control plane (checked by a fake Twilio written here), the node
// console's Settings → Phone numbers listing the account's numbers and assigning one to an
// agent (the fake records the webhook addresses the node sets), the voice settings kept
// across a reload, then a call signed by this test (Twilio's scheme, HMAC-SHA1 over the URL
// and the sorted parameters, written here with node's crypto) that appears in the inbox,
// where "Take this call" sends Twilio the redirect to the staff number.

import test from 'node:test';
import crypto from 'node:crypto';
import http from 'node:http';
import { journey } from './lib/harness.js';
import { assert } from './lib/expect.js';
import { mainText, openConsole, workspaceWithNode } from './lib/steps.js';
import { until } from './lib/widget.js';

const SID = 'ACb0000000000000000000000000000b01';
const TOKEN = 'browser-canary-twilio-token-5e1f';
const PN = 'PNb0000000000000000000000000000b01';
const NUMBER = '+15005550006';
const CALLER = '+14155550142';
const STAFF = '+14155550100';
const CALL = 'CAb0000000000000000000000000000b01';

/** Reads a request's form body. */
function form(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(body))));
  });
}

/**
 * Twilio's REST API for one account with one number: the account lookup the CP checks the
 * credential with, the numbers list and update, and call updates. Every call must carry the
 * account's basic credentials; what the node sends is recorded.
 */
async function fakeTwilio() {
  const number = {
    sid: PN,
    phone_number: NUMBER,
    friendly_name: 'Front desk',
    voice_url: 'https://demo.twilio.com/welcome/voice/',
    sms_url: '',
  };
  const updates = [];
  const callUpdates = [];
  const basic = `Basic ${Buffer.from(`${SID}:${TOKEN}`).toString('base64')}`;
  const account = `/2010-04-01/Accounts/${SID}`;
  const server = http.createServer(async (req, res) => {
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== basic) {
      json(401, { code: 20003, message: 'Authenticate', status: 401 });
      return;
    }
    const url = new URL(req.url, 'http://twilio.test');
    if (req.method === 'GET' && url.pathname === `${account}.json`) {
      json(200, { sid: SID, friendly_name: 'Smile Dental', status: 'active' });
    } else if (req.method === 'GET' && url.pathname === `${account}/IncomingPhoneNumbers.json`) {
      json(200, { incoming_phone_numbers: [number], page: 0, page_size: 100 });
    } else if (req.method === 'POST' && url.pathname === `${account}/IncomingPhoneNumbers/${PN}.json`) {
      const f = await form(req);
      updates.push(f);
      number.voice_url = f.VoiceUrl;
      number.sms_url = f.SmsUrl;
      json(200, number);
    } else if (req.method === 'POST' && url.pathname === `${account}/Calls/${CALL}.json`) {
      callUpdates.push(await form(req));
      json(200, { sid: CALL, status: 'in-progress' });
    } else {
      json(404, { code: 20404, message: 'The requested resource was not found', status: 404 });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    number,
    updates,
    callUpdates,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** `X-Twilio-Signature`: base64 HMAC-SHA1 under the auth token of the URL + sorted name+value. */
function twilioSignature(url, params) {
  const data = Object.keys(params)
    .sort()
    .reduce((acc, k) => acc + k + params[k], url);
  return crypto.createHmac('sha1', TOKEN).update(data).digest('base64');
}

/** Posts a webhook as Twilio does to `url` (a `*.localhost` name, reached on 127.0.0.1). */
function twilioPosts(url, params) {
  const u = new URL(url);
  const body = new URLSearchParams(params).toString();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: u.port,
        path: u.pathname + u.search,
        method: 'POST',
        headers: {
          host: u.host,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          'x-twilio-signature': twilioSignature(url, params),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('an owner connects Twilio, assigns a number and sets calls up; a live call is taken from the inbox', async (t) => {
  const twilio = await fakeTwilio();
  t.after(() => twilio.close());
  await journey(
    t,
    async ({ browser, cp }) => {
      const owner = await (await browser.context()).newPage();
      await workspaceWithNode(owner, cp, 'owner@calls.test', 'Calls Dental');
      const workspaceUrl = owner.url();

      await owner.getByRole('link', { name: 'New agent' }).click();
      await owner.getByLabel('Name', { exact: true }).fill('Ava');
      await owner.getByRole('button', { name: 'Create agent' }).click();
      await owner.locator('#embed-snippet').waitFor();

      // The Twilio credential: the auth token with its Account SID, checked at the fake.
      await owner.goto(workspaceUrl);
      await owner.getByRole('link', { name: 'Keys and channel credentials' }).click();
      await owner.getByLabel('Kind').selectOption('twilio_auth_token');
      await owner.getByLabel('Value').fill(TOKEN);
      await owner.getByLabel(/^Account SID/).fill(SID);
      await owner.getByRole('button', { name: 'Check and send to my node' }).click();
      await owner.getByRole('status').filter({ hasText: 'accepted and sealed to your node' }).waitFor();

      // The node console: Settings → Phone numbers lists the account's number.
      await owner.goto(workspaceUrl);
      await openConsole(owner);
      const consoleBase = new URL(owner.url()).origin;
      await owner.getByRole('link', { name: 'Settings' }).click();
      await owner.getByRole('link', { name: 'choose which number each agent answers' }).click();
      await owner.getByRole('heading', { name: 'Phone numbers', level: 1 }).waitFor();
      await until(async () => {
        if (await owner.getByText(NUMBER).count()) return true;
        await owner.reload();
        return false;
      }, 'the node to receive the Twilio credential and list the numbers');
      const row = owner.locator('tr', { hasText: NUMBER });
      assert.match(await row.innerText(), /Front desk.*not assigned/s);

      // Assigned to Ava: the fake was told the node's own addresses.
      await row.getByLabel(`Agent for ${NUMBER}`).selectOption({ label: 'Ava' });
      await row.getByRole('button', { name: 'Assign' }).click();
      await owner.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
      assert.match(await row.innerText(), /Ava/);
      assert.equal(twilio.updates.length, 1);
      assert.equal(twilio.updates[0].VoiceUrl, `${consoleBase}/channels/twilio/voice`);
      assert.equal(twilio.updates[0].SmsUrl, `${consoleBase}/channels/twilio/sms`);

      // Voice settings, kept after a reload.
      await owner.getByRole('link', { name: 'Settings' }).click();
      await owner.getByLabel('Staff number (international format)').fill(STAFF);
      await owner.getByLabel(/^Voice \(/).fill('Polly.Joanna');
      await owner.getByLabel('Tell callers the call may be recorded').check();
      await owner.locator('form[action="/settings/voice"]').getByRole('button', { name: 'Save' }).click();
      await owner.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
      await owner.reload();
      assert.equal(await owner.getByLabel('Staff number (international format)').inputValue(), STAFF);
      assert.equal(await owner.getByLabel(/^Voice \(/).inputValue(), 'Polly.Joanna');
      assert.ok(await owner.getByLabel('Tell callers the call may be recorded').isChecked());

      // A call comes in, signed by this test, to the address the node gave Twilio.
      const call = { AccountSid: SID, CallSid: CALL, CallStatus: 'ringing', Direction: 'inbound', From: CALLER, To: NUMBER };
      const answered = await twilioPosts(twilio.number.voice_url, call);
      assert.equal(answered.status, 200, answered.text);
      assert.match(answered.text, /This call may be recorded\./);
      assert.match(answered.text, /<Gather input="speech"/);

      // The inbox shows it; the team member takes the live call.
      await owner.getByRole('link', { name: 'Inbox', exact: true }).click();
      await owner.locator('#inbox-table a').first().click();
      await owner.getByRole('heading', { name: /Conversation with/ }).waitFor();
      assert.match(await owner.locator('#calls').innerText(), /In progress/);
      await owner.getByRole('button', { name: 'Take this call' }).click();
      await owner.locator('#call-taken').waitFor();
      assert.equal(twilio.callUpdates.length, 1, 'one redirect sent to Twilio');
      const twiml = twilio.callUpdates[0].Twiml;
      // When the staff number does not answer, Twilio asks the node's /voice/dialed,
      // which offers the voicemail.
      assert.match(
        twiml,
        /^<Response><Say[^>]*>.+<\/Say><Dial timeout="25" method="POST" action="http:\/\/[^"]+\/channels\/twilio\/voice\/dialed">\+14155550100<\/Dial><\/Response>$/,
      );
      const text = await mainText(owner);
      assert.match(text, /A call cannot be handed back to the assistant/);
      assert.match(text, /A team member took the call/);
      assert.equal(await owner.getByRole('button', { name: 'Take this call' }).count(), 0);
      assert.equal(await owner.getByRole('button', { name: /Hand back/ }).count(), 0);

      // Reloading sends nothing again.
      await owner.reload();
      await owner.locator('#call-taken').waitFor();
      assert.equal(twilio.callUpdates.length, 1);
    },
    {
      cpEnv: {
        OUTPOST_ALLOW_LOCAL_PROVIDERS: 'true',
        OUTPOST_TWILIO_API_BASE: twilio.base,
        OUTPOST_NODE_TWILIO_API_BASE: twilio.base,
      },
    },
  );
});
