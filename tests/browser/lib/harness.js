// Browser-test harness: starts the real `control-plane` binary (which spawns real nodes) on
// 127.0.0.1 with ephemeral ports and a fresh data dir, and drives Debian's chromium through
// playwright-core as a person would: typing, clicking, following links. Nothing here sets an
// `Origin` header or a cookie by hand; what the browser does with `Referrer-Policy` and
// `SameSite` is what the test sees.
//
// Every page is watched: an uncaught page error, a console error or a CSP violation fails
// the test. On failure a full-page screenshot of every open page is kept under
// `tests/browser/artifacts/`.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const artifactsDir = path.join(repoRoot, 'tests/browser/artifacts');

/** The control-plane binary under test: `OUTPOST_CP_BIN`, or the debug build. */
export function cpBinary() {
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target');
  const bin = process.env.OUTPOST_CP_BIN || path.join(targetDir, 'debug', 'control-plane');
  if (!fs.existsSync(bin)) {
    throw new Error(`${bin} not found: build it first (cargo build -p control-plane)`);
  }
  return bin;
}

/** The chromium executable: `CHROMIUM`, or Debian's. */
export function chromiumPath() {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const found = candidates.find((c) => c && fs.existsSync(c));
  if (!found) throw new Error('chromium not found: apt-get install chromium, or set CHROMIUM');
  return found;
}

/** A file-name-safe form of a test's name. */
function slug(name) {
  return name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
}

/** The control plane's environment: ours, without a database URL (SQLite in its data dir). */
function cpEnv(extra) {
  const env = { ...process.env, RUST_LOG: 'info', ...extra };
  delete env.DATABASE_URL;
  return env;
}

/** A running control plane with its own data dir (nodes are its children). */
export class ControlPlane {
  static async start({ env = {}, reportInterval = 1 } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-browser-'));
    const cp = new ControlPlane(dir);
    const log = fs.openSync(cp.logPath, 'a');
    cp.child = spawn(
      cpBinary(),
      [
        'serve',
        '--data-dir', cp.dataDir,
        '--listen', '127.0.0.1:0',
        '--gateway-listen', '127.0.0.1:0',
        '--report-interval-secs', String(reportInterval),
        '--node-max-backoff-secs', '2',
      ],
      {
        env: cpEnv(env),
        stdio: ['ignore', 'pipe', log],
      },
    );
    cp.ui = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`control plane did not start:\n${cp.log()}`)), 120_000);
      cp.child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`control plane exited with ${code}:\n${cp.log()}`));
      });
      const lines = readline.createInterface({ input: cp.child.stdout });
      lines.on('line', (line) => {
        const m = line.trim().match(/^UI:\s+(\S+)/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
    });
    return cp;
  }

  constructor(dir) {
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.logPath = path.join(dir, 'cp.log');
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * The first word containing `needle` in the newest dev-outbox email to `email` that has
   * one, waiting for it up to `secs`.
   */
  async outboxFind(email, needle, secs = 20) {
    const deadline = Date.now() + secs * 1000;
    for (;;) {
      const found = this.#outboxScan(email, needle);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no email to ${email} containing ${needle}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Every dev-outbox email to `email`, oldest first. */
  outboxTo(email) {
    const dir = path.join(this.dataDir, 'outbox');
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .sort()
      .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
      .filter((text) => text.includes(`To: ${email}`));
  }

  #outboxScan(email, needle) {
    for (const text of this.outboxTo(email).reverse()) {
      const word = text.split(/\s+/).find((w) => w.includes(needle));
      if (word) return word;
    }
    return null;
  }

  async stop() {
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (this.child.exitCode === null) this.child.kill('SIGKILL');
    }
    // Nodes are separate processes: end any the control plane left behind.
    const nodes = path.join(this.dataDir, 'nodes');
    if (fs.existsSync(nodes)) {
      for (const n of fs.readdirSync(nodes)) {
        const pidFile = path.join(nodes, n, 'pid');
        if (!fs.existsSync(pidFile)) continue;
        try {
          process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (!process.env.OUTPOST_KEEP_TEST_DIRS) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A browser whose every page reports errors into `problems`. */
export class Browser {
  static async launch() {
    const browser = await chromium.launch({
      executablePath: chromiumPath(),
      headless: true,
      // Root in CI containers has no user namespace for the sandbox.
      args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
    });
    return new Browser(browser);
  }

  constructor(browser) {
    this.browser = browser;
    this.contexts = [];
    this.problems = [];
    // Messages a test expects (e.g. a deliberately refused request): [RegExp].
    this.expected = [];
  }

  /**
   * A fresh profile at desktop or phone size (390×844), or one that starts with
   * another profile's cookies (`storageState` of a context: the same person on a phone).
   */
  async context({ phone = false, storageState } = {}) {
    const size = phone
      ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true }
      : { viewport: { width: 1280, height: 900 } };
    const ctx = await this.browser.newContext({ ...size, storageState });
    ctx.on('page', (page) => this.watch(page));
    this.contexts.push(ctx);
    return ctx;
  }

  watch(page) {
    const where = () => page.url();
    page.on('pageerror', (e) => this.#problem(`page error on ${where()}: ${e.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const source = msg.location()?.url;
      const about = source && source !== where() ? ` (${source})` : '';
      this.#problem(`console error on ${where()}: ${msg.text()}${about}`);
    });
  }

  /** Lets messages matching `re` pass for the rest of the test (a refusal it provokes). */
  expect(re) {
    this.expected.push(re);
  }

  #problem(text) {
    if (this.expected.some((re) => re.test(text))) return;
    this.problems.push(text);
  }

  /** Screenshots of every open page, named after the test. */
  async keepScreenshots(testName) {
    fs.mkdirSync(artifactsDir, { recursive: true });
    const base = slug(testName);
    let i = 0;
    for (const ctx of this.contexts) {
      for (const page of ctx.pages()) {
        const file = path.join(artifactsDir, `${base}-${i++}.png`);
        try {
          await page.screenshot({ path: file, fullPage: true });
          console.error(`screenshot: ${file} (${page.url()})`);
        } catch (e) {
          console.error(`no screenshot of ${page.url()}: ${e.message}`);
        }
      }
    }
  }

  async close() {
    await this.browser.close();
  }
}

/**
 * Runs `body({ browser, cp })` with a fresh control plane and browser; fails on any page
 * problem, and keeps screenshots and the control-plane log when it fails.
 */
export async function journey(t, body, { cpEnv = {} } = {}) {
  const cp = await ControlPlane.start({ env: cpEnv });
  const browser = await Browser.launch();
  let failed = true;
  try {
    await body({ browser, cp });
    if (browser.problems.length) {
      throw new Error(`the pages reported problems:\n  ${browser.problems.join('\n  ')}`);
    }
    failed = false;
  } finally {
    if (failed) {
      await browser.keepScreenshots(t.name);
      const logFile = path.join(artifactsDir, `${slug(t.name)}-cp.log`);
      fs.mkdirSync(artifactsDir, { recursive: true });
      fs.writeFileSync(logFile, cp.log());
      console.error(`control-plane log: ${logFile}`);
    }
    await browser.close();
    await cp.stop();
  }
}

/** Signs `email` in on the control plane by the emailed link, in `page`. */
export async function signIn(page, cp, email) {
  await page.goto(`${cp.ui}/signin`);
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Email me a sign-in link' }).click();
  await page.getByText('We sent a sign-in link to').waitFor();
  const link = await cp.outboxFind(email, '/auth/verify?token=');
  await page.goto(link);
  // The extra click that keeps link scanners from spending the link.
  await page.getByRole('button', { name: 'Sign in to Outpost' }).click();
}
