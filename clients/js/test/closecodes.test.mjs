// Acceptance 8: the close-code matrix: each code leads to its one action,
// against a websocket that sends a hello and closes with the code (the
// codes a real gateway sends are covered end to end by the other tests:
// 4001 expiry.test.mjs, 1001 restart.test.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, closeAction, CloseCodes, UnauthorizedError, ForbiddenError } from "../index.js";
import { CTL, next } from "./harness.mjs";

const opts = { minBackoff: 100, maxBackoff: 1000, restartSpread: 3000 };
const matrix = [
  [1000, "retry"],
  [CloseCodes.GoingAway, "retry-spread"],
  [CloseCodes.Internal, "retry"],
  [CloseCodes.Restart, "retry-spread"],
  [CloseCodes.TryAgainLater, "retry-spread"],
  [CloseCodes.Unauthorized, "stop"],
  [CloseCodes.Forbidden, "stop"],
  [CloseCodes.SlowConsumer, "retry"],
  [CloseCodes.RateLimited, "retry-later"],
  [4999, "retry"],
];

test("closeAction is the protocol's table", () => {
  for (const [code, action] of matrix) assert.equal(closeAction(code), action, `code ${code}`);
});

for (const [code, action] of matrix) {
  test(`close ${code} -> ${action}`, async () => {
    const client = new WsmqClient({ ...opts, credentials: () => ({ url: `${CTL}/fake/ws?code=${code}` }) });
    const ended = Promise.race([next(client, "disconnected"), next(client, "closed")]);
    client.connect();
    const e = await ended;
    try {
      assert.equal(e.code, code);
      if (action === "stop") {
        assert.equal(client.state, "closed");
        assert.ok(e.error instanceof (code === CloseCodes.Forbidden ? ForbiddenError : UnauthorizedError), String(e.error));
        assert.equal(client.stats.attempts, 1, "no retry");
        return;
      }
      assert.equal(client.state, "disconnected");
      assert.equal(e.action, action);
      const [lo, hi] = { retry: [1, opts.minBackoff], "retry-spread": [1, opts.restartSpread], "retry-later": [opts.maxBackoff, 2 * opts.maxBackoff] }[action];
      assert.ok(e.delay >= lo && e.delay <= hi, `delay ${e.delay} not in [${lo}, ${hi}]`);
    } finally {
      client.close();
    }
  });
}
