// Drive one headless Chromium page for the console tests, through playwright-core.
//
// Usage: node browser.mjs '<options JSON>'
//   options: {nodeModules, executablePath, userDataDir, origin}
//   The browser may load only pages of `origin` (http://127.0.0.1:port);
//   every other request is aborted.
//
// stdin: one JSON command per line, {"id": n, "op": ..., ...}:
//   goto {url}                      -> {status}
//   fill {selector, value}
//   select {selector, value}
//   click {selector}
//   submit {selector}               click, wait for the navigation -> {status, url}
//   remove {selector}               delete the element from the page
//   wait_text {selector, text}      wait for a visible match that contains text
//   count {selector}                visible matches -> {count}
//   text {selector}                 -> {text}
//   screenshot {path}
//   reset {}                        clear cookies and page errors, open a blank page
//   errors {}                       uncaught page errors since reset -> {errors}
//   exit {}
// stdout: one JSON line per command, {"id": n, "ok": true, ...} or
// {"id": n, "ok": false, "error": message}. Every wait times out after
// `timeout` milliseconds (default 5000).

import { createRequire } from 'node:module';
import readline from 'node:readline';

const options = JSON.parse(process.argv[2]);
const require = createRequire(`${options.nodeModules}/`);
const { chromium } = require('playwright-core');

const DEFAULT_TIMEOUT = 5000;

const context = await chromium.launchPersistentContext(options.userDataDir, {
  executablePath: options.executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
await context.route('**/*', (route) => {
  const url = new URL(route.request().url());
  if (url.origin === options.origin || ['data:', 'about:'].includes(url.protocol)) {
    return route.continue();
  }
  return route.abort('blockedbyclient');
});
const page = context.pages()[0] || (await context.newPage());
const consoleErrors = [];
page.on('pageerror', (error) => consoleErrors.push(String(error)));

async function run(command) {
  const timeout = command.timeout || DEFAULT_TIMEOUT;
  switch (command.op) {
    case 'goto': {
      const response = await page.goto(command.url, { timeout });
      return { status: response ? response.status() : null };
    }
    case 'fill':
      await page.locator(command.selector).fill(command.value, { timeout });
      return {};
    case 'select':
      await page.locator(command.selector).selectOption(command.value, { timeout });
      return {};
    case 'click':
      await page.locator(command.selector).click({ timeout });
      return {};
    case 'submit': {
      const [response] = await Promise.all([
        page.waitForNavigation({ timeout }),
        page.locator(command.selector).click({ timeout }),
      ]);
      return { status: response ? response.status() : null, url: page.url() };
    }
    case 'remove':
      await page.locator(command.selector).evaluate((node) => node.remove(), null, { timeout });
      return {};
    case 'wait_text':
      await page
        .locator(command.selector)
        .filter({ hasText: command.text, visible: true })
        .first()
        .waitFor({ state: 'visible', timeout });
      return {};
    case 'count':
      return { count: await page.locator(command.selector).filter({ visible: true }).count() };
    case 'text':
      return { text: await page.locator(command.selector).innerText({ timeout }) };
    case 'screenshot':
      await page.screenshot({ path: command.path, fullPage: true, timeout });
      return {};
    case 'reset':
      await context.clearCookies();
      consoleErrors.length = 0;
      await page.goto('about:blank', { timeout });
      return {};
    case 'errors':
      return { errors: consoleErrors };
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.op === 'exit') break;
  try {
    const result = await run(command);
    process.stdout.write(`${JSON.stringify({ id: command.id, ok: true, ...result })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ id: command.id, ok: false, error: String(error) })}\n`);
  }
}
await context.close();
process.exit(0);
