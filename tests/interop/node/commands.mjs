// The line protocol shared by the pusher-js drivers of the tests
// (client.mjs here, and tests/fallback/pusher_js_http.mjs).
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
// stdout: one JSON record per line; a failed command prints
//   {type: "command_error", op, error}.

import readline from 'node:readline';

// Print one record as one JSON line on stdout.
export function emit(record) {
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

// Read commands from stdin and run them on `pusher` until stdin closes.
export function runCommands(pusher) {
  function requireChannel(name) {
    const channel = pusher.channel(name);
    if (!channel) {
      throw new Error(`no channel named ${name} is subscribed`);
    }
    return channel;
  }

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
    const channel = requireChannel(name);
    if (!channel.members) {
      throw new Error(`${name} is not a presence channel`);
    }
    emit({ type: 'members', channel: name, ...membersSnapshot(channel.members) });
  }

  // `subscriptionCount` is what pusher-js last stored from a
  // `pusher_internal:subscription_count` event. pusher-js 8.6.0 leaves it
  // undefined before the first one, reported here as null.
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
}
