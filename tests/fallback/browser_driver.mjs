// Open the test page in headless Chromium and relay its pusher-js records.
//
// Usage: node browser_driver.mjs '<options JSON>'
//   options: {pageUrl, userDataDir}
//   pageUrl: the test page on 127.0.0.1, its options in the fragment.
//   userDataDir: a fresh, empty profile directory.
//
// stdin: one JSON command per line, passed to the page's window.runCommand,
//   except {"op": "exit"}, which disconnects and closes the browser.
// stdout: one JSON record per line: the page's records, plus
//   {type: "page_error"} for uncaught page errors and
//   {type: "blocked_request", url} for any request not to 127.0.0.1.
//
// Chromium is Debian's /usr/bin/chromium. The browser only ever loads pages
// from 127.0.0.1, and requests to any other host are aborted.

import { createRequire } from 'node:module';
import readline from 'node:readline';

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

// Only loopback: abort any request to another host before it leaves the browser.
await context.route(
  (url) => url.hostname !== '127.0.0.1',
  (route) => {
    emit({ type: 'blocked_request', url: route.request().url() });
    return route.abort();
  },
);

const page = context.pages()[0] ?? (await context.newPage());
await page.exposeFunction('report', (record) => emit(record));
page.on('pageerror', (error) => emit({ type: 'page_error', message: error.message }));
page.on('console', (message) => process.stderr.write(`page: ${message.text()}\n`));
await page.goto(options.pageUrl);

let closing = false;

async function exit() {
  if (closing) {
    return;
  }
  closing = true;
  try {
    await page.evaluate(() => window.runCommand({ op: 'disconnect' }));
  } catch (error) {
    process.stderr.write(`disconnect failed: ${error.message}\n`);
  }
  await context.close();
  process.exit(0);
}

const input = readline.createInterface({ input: process.stdin });
input.on('line', async (line) => {
  if (line.trim() === '') {
    return;
  }
  let command;
  try {
    command = JSON.parse(line);
    if (command.op === 'exit') {
      await exit();
      return;
    }
    await page.evaluate((pageCommand) => window.runCommand(pageCommand), command);
  } catch (error) {
    emit({
      type: 'command_error',
      op: command?.op ?? null,
      error: { name: error.name, message: error.message },
    });
  }
});
// stdin closes when the test process exits, so exit too instead of outliving it.
input.on('close', exit);
