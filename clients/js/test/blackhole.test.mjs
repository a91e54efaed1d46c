// Acceptance 6: the network black-holed (a proxy that stops forwarding):
// the watchdog notices within its bound (three ping intervals); back
// online, the client resumes and nothing is lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, ticketCredentials, CloseWatchdog } from "../index.js";
import { GATEWAY, ctl, eventually, login, next } from "./harness.mjs";

test("the watchdog gives a black-holed connection up within its bound, and the client resumes", async () => {
  const sess = await login("hole");
  const got = [];
  const client = new WsmqClient({
    credentials: ticketCredentials({ url: GATEWAY, token: sess.token, accessToken: sess.accessToken, timeout: 2000 }),
    minBackoff: 100,
    maxBackoff: 1000,
    connectTimeout: 2000,
  });
  const sub = client.subscribe(sess.userId, (m) => got.push(m.message));
  const connected = next(client, "connected");
  client.connect();
  const { hello } = await connected;
  const ping = hello.pingInterval;
  assert.equal(ping, 1000, "the gateway's WSMQ_PING_INTERVAL");
  await eventually("subscribed", () => sub.state === "subscribed");

  const down = next(client, "disconnected");
  await ctl("/proxy", { mode: "blackhole" });
  const t0 = Date.now();
  const { code } = await down;
  const took = Date.now() - t0;
  assert.equal(code, CloseWatchdog);
  console.log(`watchdog gave the socket up ${took} ms after the black hole (ping ${ping} ms, bound ${3 * ping} ms)`);
  // The last frame came at most one interval before the black hole.
  assert.ok(took >= 2 * ping - 100 && took <= 3 * ping + 2000, `gave up after ${took} ms`);

  await ctl("/send", { queue: sess.userId, prefix: "during-" });
  await ctl("/proxy", { mode: "forward" });
  await eventually("connected again", () => client.state === "connected" && client.stats.connects >= 2);
  await ctl("/send", { queue: sess.userId, prefix: "after-" });
  try {
    await eventually("both messages", () => got.includes("during-0") && got.includes("after-0"), 45000);
  } finally {
    client.close();
  }
});
