// Make one call with the official Node server SDK (npm `pusher`) and print
// its outcome as one JSON line.
//
// Usage: node server_sdk.mjs '<request JSON>'
//   request: {
//     config: {appId, key, secret, port, encryptionMasterKeyBase64?},
//     clockSkewSeconds?: number added to the clock the SDK signs with,
//     call: one of
//       {method: "trigger", channels, event, data, params?}
//       {method: "triggerBatch", batch}
//       {method: "sendToUser", userId, event, data}
//       {method: "terminateUserConnections", userId}
//       {method: "get", path, params?}
//   }
// stdout: {"ok": true, "status": int, "body": <parsed JSON or text>}
//     or  {"ok": false, "error": {"name", "message", "status", "body"}}
//
// The SDK is only ever pointed at 127.0.0.1 on the given port.

import Pusher from 'pusher';

const request = JSON.parse(process.argv[2]);
const { config, call } = request;

if (request.clockSkewSeconds) {
  // The SDK stamps auth_timestamp from Date.now(), so shifting it here is how
  // a test sends a stale or future timestamp through the real signing code.
  const realNow = Date.now;
  Date.now = () => realNow() + request.clockSkewSeconds * 1000;
}

const pusher = new Pusher({
  appId: config.appId,
  key: config.key,
  secret: config.secret,
  host: '127.0.0.1',
  port: String(config.port),
  useTLS: false,
  encryptionMasterKeyBase64: config.encryptionMasterKeyBase64,
  timeout: 10000,
});

function send(call) {
  switch (call.method) {
    case 'trigger':
      return pusher.trigger(call.channels, call.event, call.data, call.params);
    case 'triggerBatch':
      return pusher.triggerBatch(call.batch);
    case 'sendToUser':
      return pusher.sendToUser(call.userId, call.event, call.data);
    case 'terminateUserConnections':
      return pusher.terminateUserConnections(call.userId);
    case 'get':
      return pusher.get({ path: call.path, params: call.params });
    default:
      throw new Error(`unknown method ${JSON.stringify(call.method)}`);
  }
}

function parseBody(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function print(outcome) {
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
}

try {
  const response = await send(call);
  print({ ok: true, status: response.status, body: parseBody(await response.text()) });
} catch (error) {
  print({
    ok: false,
    error: {
      name: error.name ?? null,
      message: error.message ?? String(error),
      status: error.status ?? null,
      body: error.body === undefined ? null : parseBody(error.body),
    },
  });
}
