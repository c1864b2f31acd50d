// Drive one pusher-js client (Node build) over its HTTP fallback transports.
//
// Usage: node pusher_js_http.mjs '<options JSON>'
//   options: {key, httpPort, wsPort, transports, authEndpoint,
//             userAuthEndpoint, authParams}
//   transports: pusher-js's `enabledTransports`, e.g. ["xhr_polling"].
//   wsPort: a port where nothing listens, so a WebSocket can never connect.
//
// stdin and stdout speak the line protocol of tests/interop/node/client.mjs,
// so the interop harness's PusherJsClient can drive this script:
// stdin: one JSON command per line: subscribe {channel}, unsubscribe
//   {channel}, trigger {channel, event, data}, members {channel},
//   channel_state {channel}, signin {}, disconnect {}, exit {}.
// stdout: one JSON record per line. A `connected` state record also names
//   the transport in use, and each client-side reopen of an xhr_streaming
//   request prints {type: "stream_reopen"}.
//
// pusher-js is only ever pointed at 127.0.0.1 with explicit ports.

import { createRequire } from 'node:module';
import readline from 'node:readline';

// pusher-js is installed with the interop tests' Node packages.
const require = createRequire(new URL('../interop/node/package.json', import.meta.url));
const Pusher = require('pusher-js');

const options = JSON.parse(process.argv[2]);

function emit(record) {
  process.stdout.write(`${JSON.stringify(toPlain(record))}\n`);
}

// Copy a value into JSON-ready data: Error objects become plain objects and
// a reference back to an enclosing object becomes the string '[cycle]'.
function toPlain(value, enclosing = new Set()) {
  if (value instanceof Error) {
    value = { name: value.name, message: value.message, ...value };
  }
  if (typeof value !== 'object' || value === null) {
    return value;
  }
  if (enclosing.has(value)) {
    return '[cycle]';
  }
  enclosing.add(value);
  const copy = Array.isArray(value)
    ? value.map((item) => toPlain(item, enclosing))
    : Object.fromEntries(
        Object.entries(value).map(([key, item]) => [key, toPlain(item, enclosing)]),
      );
  enclosing.delete(value);
  return copy;
}

function membersSnapshot(members) {
  return { count: members.count, me: members.me, members: members.members };
}

Pusher.log = (message) => process.stderr.write(`pusher-js: ${message}\n`);

const pusher = new Pusher(options.key, {
  cluster: 'mt1',
  wsHost: '127.0.0.1',
  wsPort: options.wsPort,
  wssPort: options.wsPort,
  httpHost: '127.0.0.1',
  httpPort: options.httpPort,
  httpsPort: options.httpPort,
  forceTLS: false,
  enabledTransports: options.transports,
  disableStats: true,
  channelAuthorization: {
    endpoint: options.authEndpoint,
    transport: 'ajax',
    params: options.authParams ?? {},
  },
  userAuthentication: {
    endpoint: options.userAuthEndpoint,
    transport: 'ajax',
    params: options.authParams ?? {},
  },
});

// The transport in use, from pusher-js 8.6.0's internals: the connection
// manager's Connection wraps a TransportConnection, whose `socket` is the
// HTTPSocket of the HTTP transports.
function currentTransport() {
  return pusher.connection.connection?.transport ?? null;
}

// Report every client-side stream reopen (pusher-js calls the socket's
// `reconnect()` once it has read past 262 144 characters of one response).
function watchReopens() {
  const socket = currentTransport()?.socket;
  if (!socket || socket.reopenWatched || typeof socket.reconnect !== 'function') {
    return;
  }
  socket.reopenWatched = true;
  const reconnect = socket.reconnect.bind(socket);
  socket.reconnect = () => {
    emit({ type: 'stream_reopen', position: socket.stream?.position ?? null });
    reconnect();
  };
}

pusher.connection.bind('state_change', ({ previous, current }) => {
  const record = { type: 'state', previous, current };
  if (current === 'connected') {
    record.socket_id = pusher.connection.socket_id;
    record.transport = currentTransport()?.name ?? null;
    if (record.transport === 'xhr_streaming') {
      watchReopens();
    }
  }
  emit(record);
});
pusher.connection.bind('error', (error) => emit({ type: 'error', error }));
pusher.connection.bind('message', (message) => emit({ type: 'message', ...message }));

function subscribe({ channel: name }) {
  const channel = pusher.subscribe(name);
  channel.bind_global((event, data) => {
    const reported =
      event === 'pusher:subscription_succeeded' && channel.members
        ? membersSnapshot(channel.members)
        : data;
    emit({ type: 'event', channel: name, event, data: reported });
  });
}

function requireChannel(name) {
  const channel = pusher.channel(name);
  if (!channel) {
    throw new Error(`no channel named ${name} is subscribed`);
  }
  return channel;
}

function members({ channel: name }) {
  const channel = requireChannel(name);
  if (!channel.members) {
    throw new Error(`${name} is not a presence channel`);
  }
  emit({ type: 'members', channel: name, ...membersSnapshot(channel.members) });
}

function channelState({ channel: name }) {
  const channel = requireChannel(name);
  emit({
    type: 'channel_state',
    channel: name,
    subscribed: channel.subscribed,
    subscriptionCount: channel.subscriptionCount ?? null,
  });
}

function trigger({ channel: name, event, data }) {
  const sent = requireChannel(name).trigger(event, data);
  emit({ type: 'triggered', channel: name, event, sent });
}

function exit() {
  pusher.disconnect();
  // Let the last records reach the pipe first.
  setTimeout(() => process.exit(0), 50);
}

const commands = {
  subscribe,
  unsubscribe: ({ channel }) => pusher.unsubscribe(channel),
  trigger,
  members,
  channel_state: channelState,
  signin: () => pusher.signin(),
  disconnect: () => pusher.disconnect(),
  exit,
};

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim() === '') {
    return;
  }
  let command;
  try {
    command = JSON.parse(line);
    const run = commands[command.op];
    if (!run) {
      throw new Error(`unknown op ${JSON.stringify(command.op)}`);
    }
    run(command);
  } catch (error) {
    emit({ type: 'command_error', op: command?.op ?? null, error });
  }
});
// stdin closes when the test process exits, so exit too instead of outliving it.
input.on('close', exit);
