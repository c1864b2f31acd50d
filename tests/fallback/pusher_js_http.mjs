// Drive one pusher-js client (Node build) over its HTTP fallback transports.
//
// Usage: node pusher_js_http.mjs '<options JSON>'
//   options: {key, httpPort, wsPort, transports, authEndpoint,
//             userAuthEndpoint, authParams}
//   transports: pusher-js's `enabledTransports`, e.g. ["xhr_polling"].
//   wsPort: a port where nothing listens, so a WebSocket can never connect.
//
// stdin and stdout speak the line protocol of tests/interop/node/commands.mjs,
// so the interop harness's PusherJsClient can drive this script. A `connected`
// state record also names the transport in use, and each client-side reopen
// of an xhr_streaming request prints {type: "stream_reopen"}.
//
// pusher-js is only ever pointed at 127.0.0.1 with explicit ports.

import { createRequire } from 'node:module';

import { emit, runCommands } from '../interop/node/commands.mjs';

// pusher-js is installed with the interop tests' Node packages.
const require = createRequire(new URL('../interop/node/package.json', import.meta.url));
const Pusher = require('pusher-js');

const options = JSON.parse(process.argv[2]);

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

runCommands(pusher);
