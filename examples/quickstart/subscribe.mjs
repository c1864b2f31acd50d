// Subscribe with pusher-js to one channel of each type and print what arrives.
// Run: npm install && node subscribe.mjs   (Clarion and backend.py serve running)
// QUICKSTART_CLARION_PORT and QUICKSTART_AUTH_PORT change the two ports.
import Pusher from "pusher-js";

const clarionPort = Number(process.env.QUICKSTART_CLARION_PORT ?? 6001);
const authPort = Number(process.env.QUICKSTART_AUTH_PORT ?? 8001);

const channels = [
  "quickstart",
  "private-quickstart",
  "presence-quickstart",
  "private-encrypted-quickstart",
];

const pusher = new Pusher("app-key", {
  cluster: "mt1", // pusher-js requires one; Clarion ignores it
  wsHost: "127.0.0.1",
  wsPort: clarionPort,
  forceTLS: false,
  enabledTransports: ["ws", "wss"],
  channelAuthorization: {
    endpoint: `http://127.0.0.1:${authPort}/pusher/auth`,
    transport: "ajax",
    params: { user_id: "quickstart-user" },
  },
});

pusher.connection.bind("state_change", ({ current }) => console.log(`connection: ${current}`));

let received = 0;
for (const name of channels) {
  const channel = pusher.subscribe(name);
  channel.bind("pusher:subscription_succeeded", () => console.log(`subscribed: ${name}`));
  channel.bind("pusher:subscription_error", (error) => console.log(`refused: ${name}`, error));
  channel.bind("greeting", (data) => {
    console.log(`${name}: ${JSON.stringify(data)}`);
    received += 1;
    if (received === channels.length) {
      pusher.disconnect();
    }
  });
}
