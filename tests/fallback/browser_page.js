// The test page's script: one pusher-js web-build client whose WebSocket port
// is closed, so it can only connect over its HTTP fallback transports.
//
// The page's URL fragment contains the options as JSON: {key, httpPort, wsPort}.
// Records go to window.report(record), which the Playwright driver exposes,
// in the shapes that tests/fallback/pusher_js_http.mjs prints. The driver
// calls window.runCommand({op, ...}) with subscribe and disconnect commands.

(function () {
  const options = JSON.parse(decodeURIComponent(window.location.hash.slice(1)));

  // pusher-js's own log goes to the console, which the driver copies to stderr.
  Pusher.log = function (message) {
    console.log('pusher-js: ' + message);
  };

  function report(record) {
    window.report(JSON.parse(JSON.stringify(record)));
  }

  const pusher = new Pusher(options.key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: options.wsPort,
    wssPort: options.wsPort,
    httpHost: '127.0.0.1',
    httpPort: options.httpPort,
    httpsPort: options.httpPort,
    forceTLS: false,
    disableStats: true,
  });

  pusher.connection.bind('state_change', function ({ previous, current }) {
    const record = { type: 'state', previous, current };
    if (current === 'connected') {
      record.socket_id = pusher.connection.socket_id;
      // pusher-js 8.6.0 internals: the Connection wraps a TransportConnection.
      const transport = pusher.connection.connection && pusher.connection.connection.transport;
      record.transport = transport ? transport.name : null;
    }
    report(record);
  });
  pusher.connection.bind('error', function (error) {
    report({ type: 'error', error: { type: error && error.type, data: error && error.data } });
  });

  function subscribe({ channel: name }) {
    const channel = pusher.subscribe(name);
    channel.bind_global(function (event, data) {
      report({ type: 'event', channel: name, event, data });
    });
  }

  const commands = {
    subscribe,
    disconnect: () => pusher.disconnect(),
  };

  window.runCommand = function (command) {
    const run = commands[command.op];
    if (!run) {
      throw new Error('unknown op ' + JSON.stringify(command.op));
    }
    run(command);
  };
})();
