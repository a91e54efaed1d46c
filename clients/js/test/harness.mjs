// Helpers of the SDK's acceptance tests. The Go test (services/gateway/
// internal/jssdk) starts the real stack and a control endpoint, WSMQ_CTL,
// that sends messages, kills or restarts gateways, revokes credentials and
// black-holes the network; WSMQ_GATEWAY is the gateway (or proxy) URL.
import assert from "node:assert/strict";

export const CTL = process.env.WSMQ_CTL;
export const GATEWAY = process.env.WSMQ_GATEWAY;
assert.ok(CTL && GATEWAY, "run these tests through go test ./services/gateway/internal/jssdk");

/** Waits bound every step that waits for the stack. */
export const WAIT = 30000;

/** Calls a control operation. */
export async function ctl(path, body = {}) {
  const res = await fetch(CTL + path, { method: "POST", body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`ctl ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Creates user name and logs in: {userId, token, accessToken, password}. */
export function login(name) {
  return ctl("/user", { name, login: true });
}

/** Messages in queue (visible and hidden). */
export async function queueLength(queue) {
  return (await ctl("/attrs", { queue })).msgs;
}

/** Polls cond (sync or async) until it holds, like testenv.Eventually. */
export async function eventually(what, cond, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20)); // polling interval, not synchronisation
  }
}

/** Resolves with the first detail of client's event that satisfies pred. */
export function next(client, event, pred = () => true, timeout = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeout} ms waiting for event ${event}`));
    }, timeout);
    timer.unref?.(); // a waiter that lost a race keeps no test process alive
    const off = client.on(event, (d) => {
      if (!pred(d)) return;
      clearTimeout(timer);
      off();
      resolve(d);
    });
  });
}

/** A handler recording bodies in call order and calls per body. */
export function recorder() {
  const r = {
    bodies: [],
    calls: new Map(),
    handle: (m) => {
      r.bodies.push(m.message);
      r.calls.set(m.message, (r.calls.get(m.message) || 0) + 1);
    },
  };
  return r;
}
