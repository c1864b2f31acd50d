// Drive one pusher-js 8 client for the differential connection tests.
//
// Usage: node pusher_js_driver.mjs '<options JSON>'
//   options: {nodeModules, key, port, authEndpoint, userAuthEndpoint,
//             authParams, activityTimeout, pongTimeout, unavailableTimeout}
//   nodeModules is the folder that contains pusher-js (tests/interop/node).
//
// stdin: one JSON command per line, {"op": ...}:
//   connect {}  subscribe {channel}  signin {}  disconnect {}  exit {}
// stdout: one JSON record per line:
//   {type: "state", previous, current}     every connection state_change
//   {type: "connecting_in", delay}         seconds until the next attempt
//   {type: "error", error}                 every connection error event
//   {type: "subscription", channel, event} pusher:subscription_succeeded/_error
//   {type: "signin", event}                pusher:signin_success
//   {type: "command_error", op, message}   a command that threw
//
// pusher-js only ever connects to 127.0.0.1 on the given port.

import { createRequire } from 'node:module';
import readline from 'node:readline';

const options = JSON.parse(process.argv[2]);
const require = createRequire(`${options.nodeModules}/`);
const Pusher = require('pusher-js');

function emit(record) {
  process.stdout.write(`${JSON.stringify(record, plainErrors)}\n`);
}

// Error objects have no enumerable fields, and socket errors refer back to
// their socket, so keep only what identifies the error.
function plainErrors(key, value) {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, code: value.code };
  }
  if (key === 'target' || key === 'currentTarget') {
    return undefined;
  }
  return value;
}

Pusher.log = (message) => process.stderr.write(`pusher-js: ${message}\n`);

// pusher-js 8.6.0 connects inside its constructor once the runtime is ready,
// before any listener can be bound. With its static `isReady` flag cleared it
// waits for connect(), so the recorded sequence starts with
// initialized -> connecting, as it does for a Python client that connects
// explicitly. The flag lives on the core class: the Node export is a subclass
// that adds encryption, and the constructor reads the core class's flag.
let coreClass = Pusher;
while (!Object.hasOwn(coreClass, 'isReady')) {
  coreClass = Object.getPrototypeOf(coreClass);
}
coreClass.isReady = false;

const pusher = new Pusher(options.key, {
  cluster: 'mt1',
  wsHost: '127.0.0.1',
  wsPort: options.port,
  forceTLS: false,
  enabledTransports: ['ws'],
  disableStats: true,
  activityTimeout: options.activityTimeout,
  pongTimeout: options.pongTimeout,
  unavailableTimeout: options.unavailableTimeout,
  channelAuthorization: {
    endpoint: options.authEndpoint,
    transport: 'ajax',
    params: options.authParams,
  },
  userAuthentication: {
    endpoint: options.userAuthEndpoint,
    transport: 'ajax',
    params: options.authParams,
  },
});

pusher.connection.bind('state_change', ({ previous, current }) => {
  emit({ type: 'state', previous, current });
});
pusher.connection.bind('connecting_in', (delay) => emit({ type: 'connecting_in', delay }));
pusher.connection.bind('error', (error) => emit({ type: 'error', error }));
pusher.connection.bind('message', (message) => {
  if (message.event === 'pusher:signin_success') {
    emit({ type: 'signin', event: message.event });
  }
});

function subscribe({ channel: name }) {
  const channel = pusher.subscribe(name);
  for (const event of ['pusher:subscription_succeeded', 'pusher:subscription_error']) {
    channel.bind(event, () => emit({ type: 'subscription', channel: name, event }));
  }
}

function exit() {
  pusher.disconnect();
  // Let the close frame and the last records reach their pipes first.
  setTimeout(() => process.exit(0), 50);
}

const commands = {
  connect: () => pusher.connect(),
  subscribe,
  signin: () => pusher.signin(),
  disconnect: () => pusher.disconnect(),
  exit,
};

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim() === '') {
    return;
  }
  let command = null;
  try {
    command = JSON.parse(line);
    const run = commands[command.op];
    if (!run) {
      throw new Error(`unknown op ${JSON.stringify(command.op)}`);
    }
    run(command);
  } catch (error) {
    emit({ type: 'command_error', op: command?.op ?? null, message: String(error) });
  }
});
// stdin closes when the test process exits, so exit too instead of outliving it.
input.on('close', exit);
