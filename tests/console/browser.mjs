// Drive one headless browser page for the console tests: Chromium through
// playwright-core, or Firefox through puppeteer-core over WebDriver BiDi,
// because playwright-core's BiDi client needs commands that Firefox ESR lacks.
//
// Usage: node browser.mjs '<options JSON>'
//   options: {nodeModules, browser: "chromium" | "firefox", executablePath,
//             userDataDir, origin}
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

const DEFAULT_TIMEOUT = 5000;
const VIEWPORT = { width: 1280, height: 900 };
const pageErrors = [];

function isAllowed(address) {
  const url = new URL(address);
  return url.origin === options.origin || ['data:', 'about:'].includes(url.protocol);
}

// Chromium through playwright-core.
async function openChromium() {
  const { chromium } = require('playwright-core');
  const context = await chromium.launchPersistentContext(options.userDataDir, {
    executablePath: options.executablePath,
    headless: true,
    viewport: VIEWPORT,
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
  await context.route('**/*', (route) =>
    isAllowed(route.request().url()) ? route.continue() : route.abort('blockedbyclient'),
  );
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  const visible = (selector) => page.locator(selector).filter({ visible: true });
  return {
    goto: async (url, timeout) => {
      const response = await page.goto(url, { timeout });
      return response ? response.status() : null;
    },
    fill: (selector, value, timeout) => page.locator(selector).fill(value, { timeout }),
    select: (selector, value, timeout) =>
      page.locator(selector).selectOption(value, { timeout }),
    click: (selector, timeout) => page.locator(selector).click({ timeout }),
    submit: async (selector, timeout) => {
      const [response] = await Promise.all([
        page.waitForNavigation({ timeout }),
        page.locator(selector).click({ timeout }),
      ]);
      return { status: response ? response.status() : null, url: page.url() };
    },
    remove: (selector, timeout) =>
      page.locator(selector).evaluate((node) => node.remove(), null, { timeout }),
    waitText: (selector, text, timeout) =>
      visible(selector).filter({ hasText: text }).first().waitFor({ state: 'visible', timeout }),
    count: (selector) => visible(selector).count(),
    text: (selector, timeout) => page.locator(selector).innerText({ timeout }),
    screenshot: (path, timeout) => page.screenshot({ path, fullPage: true, timeout }),
    reset: async (timeout) => {
      await context.clearCookies();
      await page.goto('about:blank', { timeout });
    },
    close: () => context.close(),
  };
}

// Firefox through puppeteer-core. Each reset opens a new browser context,
// which starts without cookies.
const FIREFOX_PREFS = {
  // Send every request that leaves loopback to a closed local port, so the
  // browser reaches no other host even where a request slips past the check
  // below. Firefox never sends loopback addresses through a proxy.
  'network.proxy.type': 1,
  'network.proxy.share_proxy_settings': false,
  'network.proxy.http': '127.0.0.1',
  'network.proxy.http_port': 9,
  'network.proxy.ssl': '127.0.0.1',
  'network.proxy.ssl_port': 9,
  'network.proxy.socks': '127.0.0.1',
  'network.proxy.socks_port': 9,
  'network.proxy.socks_remote_dns': true,
  'network.trr.mode': 5,
  'network.dns.disablePrefetch': true,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
};

async function openFirefox() {
  const puppeteer = require('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: options.executablePath,
    headless: true,
    userDataDir: options.userDataDir,
    defaultViewport: VIEWPORT,
    extraPrefsFirefox: FIREFOX_PREFS,
  });
  let context = null;
  let page = null;

  async function openPage() {
    context = await browser.createBrowserContext();
    page = await context.newPage();
    await page.setRequestInterception(true);
    page.on('request', (request) =>
      isAllowed(request.url()) ? request.continue() : request.abort('blockedbyclient'),
    );
    page.on('pageerror', (error) => pageErrors.push(String(error)));
  }

  // Playwright's rule: visible means a non-empty box and not visibility: hidden.
  function visibleMatches(selector, text) {
    return [...document.querySelectorAll(selector)].filter((node) => {
      const box = node.getBoundingClientRect();
      const isVisible =
        box.width > 0 && box.height > 0 && getComputedStyle(node).visibility !== 'hidden';
      return isVisible && (text === null || node.textContent.includes(text));
    }).length;
  }

  // An expression that counts the visible matches in the page.
  function matchesExpression(selector, text) {
    return `(${visibleMatches})(${JSON.stringify(selector)}, ${JSON.stringify(text)})`;
  }

  await openPage();
  return {
    goto: async (url, timeout) => {
      const response = await page.goto(url, { timeout });
      return response ? response.status() : null;
    },
    fill: (selector, value, timeout) =>
      page.locator(selector).setTimeout(timeout).fill(value),
    select: async (selector, value, timeout) => {
      await page.waitForSelector(selector, { timeout });
      await page.select(selector, value);
    },
    click: (selector, timeout) => page.locator(selector).setTimeout(timeout).click(),
    submit: async (selector, timeout) => {
      const [response] = await Promise.all([
        page.waitForNavigation({ timeout }),
        page.locator(selector).setTimeout(timeout).click(),
      ]);
      return { status: response ? response.status() : null, url: page.url() };
    },
    remove: async (selector, timeout) => {
      await page.waitForSelector(selector, { timeout });
      await page.$eval(selector, (node) => node.remove());
    },
    waitText: (selector, text, timeout) =>
      page.waitForFunction(`${matchesExpression(selector, text)} > 0`, {
        timeout,
        polling: 100,
      }),
    count: (selector) => page.evaluate(matchesExpression(selector, null)),
    text: async (selector, timeout) => {
      await page.waitForSelector(selector, { timeout });
      return page.$eval(selector, (node) => node.innerText);
    },
    screenshot: (path) => page.screenshot({ path, fullPage: true }),
    reset: async () => {
      await context.close();
      await openPage();
    },
    close: () => browser.close(),
  };
}

const driver = options.browser === 'firefox' ? await openFirefox() : await openChromium();

async function run(command) {
  const timeout = command.timeout || DEFAULT_TIMEOUT;
  switch (command.op) {
    case 'goto':
      return { status: await driver.goto(command.url, timeout) };
    case 'fill':
      await driver.fill(command.selector, command.value, timeout);
      return {};
    case 'select':
      await driver.select(command.selector, command.value, timeout);
      return {};
    case 'click':
      await driver.click(command.selector, timeout);
      return {};
    case 'submit':
      return driver.submit(command.selector, timeout);
    case 'remove':
      await driver.remove(command.selector, timeout);
      return {};
    case 'wait_text':
      await driver.waitText(command.selector, command.text, timeout);
      return {};
    case 'count':
      return { count: await driver.count(command.selector) };
    case 'text':
      return { text: await driver.text(command.selector, timeout) };
    case 'screenshot':
      await driver.screenshot(command.path, timeout);
      return {};
    case 'reset':
      pageErrors.length = 0;
      await driver.reset(timeout);
      return {};
    case 'errors':
      return { errors: pageErrors };
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
await driver.close();
process.exit(0);
