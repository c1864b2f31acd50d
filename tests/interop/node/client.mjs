// Drive one pusher-js client for the interop tests.
//
// Usage: node client.mjs '<options JSON>'
//   options: {port, key, authEndpoint, userAuthEndpoint, authParams,
//             customUserAuthenticator?, tls?}
//   tls: true connects with wss:// only (pusher-js's forceTLS); the CA of a
//   test certificate comes from NODE_EXTRA_CA_CERTS.
//   authParams are sent as extra form fields to both auth endpoints, so the
//   test's endpoint can tell which user this client is.
//   customUserAuthenticator: true replaces pusher-js's built-in user
//   authentication request with a `userAuthentication.customHandler` that
//   posts the same form with fetch() and reports each call.
//
// stdin: one JSON command per line, {"op": ..., ...}:
//   subscribe {channel, bind?: [event names whose metadata to report]}
//   unsubscribe {channel}
//   trigger {channel, event, data}   (client event)
//   members {channel}                (presence roster snapshot)
//   channel_state {channel}          (subscribed, subscriptionCount)
//   signin {}
//   disconnect {}
//   exit {}
// stdout: one JSON record per line, for every state change, connection error,
// protocol frame, channel event, user event, watchlist event and command result.
//
// pusher-js is only ever pointed at 127.0.0.1 on the given port.

import readline from 'node:readline';
import Pusher from 'pusher-js';

const options = JSON.parse(process.argv[2]);

// Print one record as one JSON line on stdout.
function emit(record) {
  process.stdout.write(`${JSON.stringify(toPlain(record))}\n`);
}

// Copy a value into plain JSON-ready data: Error objects become plain
// objects, and a reference back to an enclosing object (socket error events
// contain such cycles) becomes the string '[cycle]'. Objects shared between
// branches, like a presence member's info, are copied in each place.
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

// pusher-js passes presence `pusher:subscription_succeeded` handlers its
// Members object, so the record carries a snapshot of its contents.
function eventData(channel, eventName, data) {
  if (eventName === 'pusher:subscription_succeeded' && channel.members) {
    return membersSnapshot(channel.members);
  }
  return data;
}

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
  forceTLS: options.tls ?? false,
  // With forceTLS, pusher-js's "ws" transport connects to wss://.
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

function subscribe({ channel: name, bind = [] }) {
  const channel = pusher.subscribe(name);
  // bind_global callbacks get no metadata, so events named in `bind` are
  // reported through their own handler instead, with metadata.
  const explicit = new Set(bind);
  channel.bind_global((event, data) => {
    if (!explicit.has(event)) {
      emit({ type: 'event', channel: name, event, data: eventData(channel, event, data) });
    }
  });
  for (const event of explicit) {
    channel.bind(event, (data, metadata) => {
      emit({ type: 'event', channel: name, event, data, metadata: metadata ?? null });
    });
  }
}

function members({ channel: name }) {
  const channel = pusher.channel(name);
  if (!channel || !channel.members) {
    throw new Error(`no presence channel named ${name} is subscribed`);
  }
  emit({ type: 'members', channel: name, ...membersSnapshot(channel.members) });
}

// `subscriptionCount` is what pusher-js last stored from a
// `pusher_internal:subscription_count` event. pusher-js 8.6.0 leaves it
// undefined before the first one, reported here as null.
function channelState({ channel: name }) {
  const channel = pusher.channel(name);
  if (!channel) {
    throw new Error(`no channel named ${name} is subscribed`);
  }
  emit({
    type: 'channel_state',
    channel: name,
    subscribed: channel.subscribed,
    subscriptionCount: channel.subscriptionCount ?? null,
  });
}

function trigger({ channel: name, event, data }) {
  const channel = pusher.channel(name);
  if (!channel) {
    throw new Error(`no channel named ${name} is subscribed`);
  }
  const sent = channel.trigger(event, data);
  emit({ type: 'triggered', channel: name, event, sent });
}

function exit() {
  pusher.disconnect();
  // Let the close frame and the last records reach their pipes first.
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
