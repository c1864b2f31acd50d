// Drive one pusher-js client for the interop tests.
//
// Usage: node client.mjs '<options JSON>'
//   options: {port, key, authEndpoint, userAuthEndpoint, authParams,
//             customUserAuthenticator?, forceTLS?}
//   forceTLS: true connects with wss:// to the same port; the certificate
//   must be trusted through NODE_EXTRA_CA_CERTS.
//   authParams are sent as extra form fields to both auth endpoints, so the
//   test's endpoint can tell which user this client is.
//   customUserAuthenticator: true replaces pusher-js's built-in user
//   authentication request with a `userAuthentication.customHandler` that
//   posts the same form with fetch() and reports each call.
//
// stdin and stdout speak the line protocol of commands.mjs. stdout also
// carries every state change, connection error, protocol frame, user event
// and watchlist event.
//
// pusher-js is only ever pointed at 127.0.0.1 on the given port.

import Pusher from 'pusher-js';

import { emit, runCommands } from './commands.mjs';

const options = JSON.parse(process.argv[2]);

Pusher.log = (message) => process.stderr.write(`pusher-js: ${message}\n`);

// A user authenticator of the app's own, passed as pusher-js's `customHandler`
// option. It posts the socket id and authParams to the user auth endpoint and
// passes the endpoint's JSON reply to pusher-js.
async function authenticateUser({ socketId }, callback) {
  emit({ type: 'user_authenticator_called', socket_id: socketId });
  try {
    const form = new URLSearchParams({ socket_id: socketId, ...options.authParams });
    const response = await fetch(options.userAuthEndpoint, { method: 'POST', body: form });
    const body = await response.json();
    if (!response.ok) {
      throw new Error(
        `user auth endpoint failed with status ${response.status}: ${JSON.stringify(body)}`,
      );
    }
    callback(null, body);
  } catch (error) {
    callback(error, null);
  }
}

const userAuthentication = options.customUserAuthenticator
  ? { customHandler: authenticateUser }
  : {
      endpoint: options.userAuthEndpoint,
      transport: 'ajax',
      params: options.authParams ?? {},
    };

const pusher = new Pusher(options.key, {
  cluster: 'mt1',
  wsHost: '127.0.0.1',
  wsPort: options.port,
  wssPort: options.port,
  forceTLS: options.forceTLS ?? false,
  enabledTransports: ['ws'],
  disableStats: true,
  channelAuthorization: {
    endpoint: options.authEndpoint,
    transport: 'ajax',
    params: options.authParams ?? {},
  },
  userAuthentication,
});

pusher.connection.bind('state_change', ({ previous, current }) => {
  const record = { type: 'state', previous, current };
  if (current === 'connected') {
    record.socket_id = pusher.connection.socket_id;
  }
  emit(record);
});
pusher.connection.bind('error', (error) => emit({ type: 'error', error }));
pusher.connection.bind('message', (message) => emit({ type: 'message', ...message }));
pusher.user.bind_global((event, data) => emit({ type: 'user_event', event, data }));
pusher.user.watchlist.bind_global((event, data) =>
  emit({ type: 'watchlist_event', event, data }),
);

runCommands(pusher);
