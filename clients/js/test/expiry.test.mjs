// Acceptance 5: a long session across JWT expiry (a 2 s JWT), then
// revocation: reconnects stop with an unauthorized state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, ticketCredentials, UnauthorizedError, CloseCodes } from "../index.js";
import { GATEWAY, ctl, eventually, login, next } from "./harness.mjs";

test("a session outlives its JWT, then stops for good on revocation", async () => {
  const sess = await login("rev"); // the auth service's JWT TTL is 2 s here
  const short = sess.token;
  const refreshed = [];
  const creds = ticketCredentials({ url: GATEWAY, token: short, accessToken: sess.accessToken, onToken: (t) => refreshed.push(t) });
  const got = [];
  const client = new WsmqClient({ credentials: creds, minBackoff: 20, maxBackoff: 200 });
  client.subscribe(sess.userId, (m) => got.push(m.message));
  const connected = next(client, "connected");
  client.connect();
  try {
    await connected;
    await session(client, creds, sess, short, got, refreshed);
  } finally {
    client.close();
  }
});

async function session(client, creds, sess, short, got, refreshed) {
  // The JWT expires on the live connection; the gateway re-verifies it with
  // the access token and hands a fresh one over (a token frame).
  const { token } = await next(client, "token", (e) => e.token !== short);
  assert.equal(creds.token(), token, "the provider keeps the refreshed JWT");
  assert.ok(refreshed.includes(token));
  await ctl("/send", { queue: sess.userId, prefix: "after-expiry-" });
  await eventually("message after expiry", () => got.includes("after-expiry-0"));
  assert.equal(client.stats.connects, 1, "the connection outlived its JWT");

  // A reconnect trades the refreshed JWT for a ticket.
  await ctl("/proxy", { mode: "cut" });
  await eventually("reconnected", () => client.stats.connects === 2);
  await ctl("/send", { queue: sess.userId, prefix: "after-reconnect-" });
  await eventually("message after the reconnect", () => got.includes("after-reconnect-0"));

  const closed = next(client, "closed");
  await ctl("/revoke", { accessToken: sess.accessToken });
  const { code, error } = await closed;
  assert.equal(code, CloseCodes.Unauthorized);
  assert.ok(error instanceof UnauthorizedError, String(error));
  assert.equal(client.state, "closed");
  const attempts = client.stats.attempts;
  assert.equal(attempts, 2, "no attempt with revoked credentials");
  // And the provider, asked again, refuses as unauthorized too.
  await assert.rejects(creds(), UnauthorizedError);
}
