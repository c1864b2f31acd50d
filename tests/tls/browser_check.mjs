// Run async functions in pages of one headless Chromium and print the results.
//
// Usage: node browser_check.mjs '<options JSON>'
//   options: {userDataDir, steps: [{pageUrl, script, argument}], ignoreHttpsErrors?}
//   Each step opens pageUrl, a page on 127.0.0.1, in a new tab and runs
//   script there: the source of an async function of one argument, called
//   with argument. What it returns must be JSON-ready.
//   ignoreHttpsErrors: accept the test's certificate, whose CA Chromium does
//     not know.
// stdout: one JSON line per step, {result} or {error}, in order, then
//   {type: "blocked_request", url} for any request not to 127.0.0.1.
//
// Chromium is Debian's /usr/bin/chromium, and requests to any host other than
// 127.0.0.1 are aborted before they leave the browser.

import { createRequire } from 'node:module';

// playwright-core is installed with the interop tests' Node packages.
const require = createRequire(new URL('../interop/node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const options = JSON.parse(process.argv[2]);

function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

const context = await chromium.launchPersistentContext(options.userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: options.ignoreHttpsErrors ?? false,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const blocked = [];
await context.route(
  (url) => url.hostname !== '127.0.0.1',
  (route) => {
    blocked.push(route.request().url());
    return route.abort();
  },
);

for (const step of options.steps) {
  try {
    const page = await context.newPage();
    page.on('console', (message) => process.stderr.write(`page: ${message.text()}\n`));
    await page.goto(step.pageUrl);
    // The function comes as source text, so it is rebuilt inside the page.
    const result = await page.evaluate(
      ([source, argument]) => (0, eval)(`(${source})`)(argument),
      [step.script, step.argument ?? null],
    );
    await page.close();
    emit({ result });
  } catch (error) {
    emit({ error: { name: error.name, message: error.message } });
  }
}
for (const url of blocked) {
  emit({ type: 'blocked_request', url });
}
await context.close();
