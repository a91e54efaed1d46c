// wsmq JavaScript SDK: one ES module, no dependencies, for browsers and
// Node >= 20. It mirrors the Go SDK (services/gateway/client, sdk.go):
// the same states, backoff, dedupe and close-code rules. README.md in this
// directory documents it; index.d.ts types it.

/** The gateway's close codes (services/gateway/protocol/close.go). */
export const CloseCodes = Object.freeze({
  GoingAway: 1001,
  Internal: 1011,
  Restart: 1012,
  TryAgainLater: 1013,
  Unauthorized: 4001,
  Forbidden: 4003,
  SlowConsumer: 4008,
  RateLimited: 4029,
});

/** Close code the SDK itself uses when its watchdog gives a socket up. */
export const CloseWatchdog = 4000;

/**
 * The action on a close code: the decision table of every wsmq SDK
 * (protocol.ActionFor). Codes not in it (1000, 1006...) retry with backoff.
 */
export function closeAction(code) {
  switch (code) {
    case CloseCodes.Unauthorized:
    case CloseCodes.Forbidden:
      return "stop";
    case CloseCodes.RateLimited:
      return "retry-later";
    case CloseCodes.GoingAway:
    case CloseCodes.Restart:
    case CloseCodes.TryAgainLater:
      return "retry-spread";
  }
  return "retry";
}

/** Base of every error the SDK throws or reports. */
export class WsmqError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "WsmqError";
  }
}

/** Credentials refused (401, close 4001): the client stops for good. */
export class UnauthorizedError extends WsmqError {
  constructor(message = "unauthorized", options) {
    super(message, options);
    this.name = "UnauthorizedError";
  }
}

/** The user may not do this (403, close 4003): the client stops for good. */
export class ForbiddenError extends WsmqError {
  constructor(message = "forbidden", options) {
    super(message, options);
    this.name = "ForbiddenError";
  }
}

/** Too many requests (429, close 4029): retried later, never at once. */
export class RateLimitedError extends WsmqError {
  constructor(message = "rate limited", retryAfter = 0, options) {
    super(message, options);
    this.name = "RateLimitedError";
    /** Milliseconds the gateway asked to wait (0: not said). */
    this.retryAfter = retryAfter;
  }
}

/** The connection closed; code and reason are the close frame's. */
export class CloseError extends WsmqError {
  constructor(code, reason) {
    super(`gateway closed the connection: ${code}${reason ? " " + reason : ""}`);
    this.name = "CloseError";
    this.code = code;
    this.reason = reason || "";
    this.action = closeAction(code);
  }
}

/** A refused command: the gateway's error frame. */
export class GatewayError extends WsmqError {
  constructor(frame) {
    super(`gateway: ${frame.error}${frame.queue ? " (queue " + frame.queue + ")" : ""}: ${frame.message || ""}`);
    this.name = "GatewayError";
    this.code = frame.error;
    this.queue = frame.queue || "";
    this.id = frame.id || "";
  }
}

const stableAfter = 5000; // a connection this old resets the backoff
const defaults = {
  ackMode: "manual",
  minBackoff: 500,
  maxBackoff: 20000,
  restartSpread: 5000,
  dedupeSize: 4096,
  connectTimeout: 10000,
  helloTimeout: 5000,
  pingInterval: 0, // 0: the hello frame's
};
const fallbackHello = { ackMode: "manual", prefetch: 64, visibilityTimeout: 30000, pingInterval: 25000 };

/** Full jitter: uniform in (0, d]. */
function jitter(d) {
  return d <= 0 ? 0 : Math.floor(Math.random() * d) + 1;
}

/** The websocket URL of a gateway base URL (http(s)/ws(s); "/" means /ws). */
export function websocketURL(base) {
  const u = new URL(base, typeof location !== "undefined" ? location.href : undefined);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.pathname === "" || u.pathname === "/") u.pathname = "/ws";
  return u;
}

function httpURL(base, path) {
  const u = new URL(base, typeof location !== "undefined" ? location.href : undefined);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  u.pathname = path;
  u.search = "";
  return u.toString();
}

/**
 * A credentials provider that trades a JWT and/or access token for a
 * single-use connect ticket (POST /v1/ticket) before every attempt, keeps
 * the refreshed JWT the gateway hands back, and maps refusals to the
 * SDK's errors (401 UnauthorizedError stops the client).
 */
export function ticketCredentials({ url, token = "", accessToken = "", fetch: fetchFn, onToken, timeout = 10000 } = {}) {
  const doFetch = fetchFn || globalThis.fetch;
  const base = url || (typeof location !== "undefined" ? location.origin : "");
  if (!base) throw new TypeError("ticketCredentials: url is required outside a browser");
  let jwt = token;
  const provider = async () => {
    const headers = {};
    if (jwt) headers["x-token"] = jwt;
    if (accessToken) headers["x-access-token"] = accessToken;
    // Bounded: a black-holed network must not hang the client's attempt.
    const res = await doFetch(httpURL(base, "/v1/ticket"), { method: "POST", headers, signal: AbortSignal.timeout(timeout) });
    let body = {};
    try {
      body = await res.json();
    } catch {
      // a proxy's non-JSON error page
    }
    if (res.status === 401) throw new UnauthorizedError(body.message || "ticket refused");
    if (res.status === 403) throw new ForbiddenError(body.message || "ticket refused");
    if (res.status === 429) {
      const s = Number(res.headers.get("retry-after"));
      throw new RateLimitedError(body.message || "ticket rate limited", Number.isFinite(s) ? s * 1000 : 0);
    }
    if (!res.ok || !body.success) throw new WsmqError(`ticket: ${res.status} ${body.message || ""}`);
    if (body.token) provider.updateToken(body.token, body.tokenExpiresAt);
    return { url: base, ticket: body.ticket };
  };
  provider.updateToken = (t, expiresAt) => {
    if (!t || t === jwt) return;
    jwt = t;
    if (onToken) onToken(t, expiresAt);
  };
  provider.token = () => jwt;
  return provider;
}

/** A bounded set of ids forgetting the oldest first. */
class IdSet {
  constructor(max) {
    this.max = max;
    this.ids = new Set();
  }
  has(id) {
    return this.ids.has(id);
  }
  add(id) {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    if (this.ids.size > this.max) this.ids.delete(this.ids.values().next().value);
  }
}

/** One socket of a client: its messages' acks go on it alone. */
class Session {
  constructor(ws, ackMode) {
    this.ws = ws;
    this.ackMode = ackMode;
    this.hello = null;
    this.open = false; // hello received and not ended
    this.ended = false;
    this.began = 0;
    this.idle = 0;
    this.timer = null;
    this.abort = new AbortController();
  }
  send(text) {
    if (this.ended || this.ws.readyState !== 1) return false;
    this.ws.send(text);
    return true;
  }
}

/** One registered queue. */
class Subscription {
  constructor(client, queue, handler, ack) {
    this.client = client;
    this.queue = queue;
    this.handler = handler;
    this.ack = ack;
    this.state = "pending";
    this.error = null;
    this.seen = new IdSet(client.options.dedupeSize);
    this.buffer = [];
    this.running = false;
    this.retry = null;
    this.attempt = 0;
  }
  /** Ends the subscription: the gateway stops delivering its queue. */
  unsubscribe() {
    const c = this.client;
    if (c.subs.get(this.queue) !== this) return;
    c.subs.delete(this.queue);
    clearTimeout(this.retry);
    this.buffer = [];
    if (c.session && c.session.open) c.session.send("/unsubscribe/" + this.queue);
    c._subState(this, "unsubscribed", null);
  }
}

/**
 * The reconnecting wsmq client. States: disconnected -> connecting ->
 * connected, and closed (for good: close() or a terminal error).
 */
export class WsmqClient {
  constructor(options = {}) {
    this.options = { ...defaults, ...options };
    const o = this.options;
    o.maxBackoff = Math.max(o.maxBackoff, o.minBackoff);
    if (!o.credentials && !o.url) throw new TypeError("WsmqClient: credentials or url is required");
    this.WS = o.WebSocket || globalThis.WebSocket;
    if (!this.WS) {
      throw new TypeError("WsmqClient: no global WebSocket: pass options.WebSocket (Node 20: --experimental-websocket, or the ws package)");
    }
    this.state = "disconnected";
    this.subs = new Map();
    this.session = null;
    this.listeners = new Map();
    this.attempt = 0;
    this.reconnect = null; // the pending reconnect timer
    this.started = false;
    this.token = ""; // the latest JWT of a token frame (used without a provider)
    this.stats = { connects: 0, handled: 0, failed: 0, duplicates: 0, droppedAcks: 0, unknownAcks: 0, attempts: 0 };
    this._hooks = null;
  }

  /** Listens to an event; returns a function removing the listener. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
  }

  _emit(event, detail) {
    for (const fn of [...(this.listeners.get(event) || [])]) {
      try {
        fn(detail);
      } catch (e) {
        // a listener's exception is its own: reported, never breaking the client
        if (typeof globalThis.reportError === "function") globalThis.reportError(e);
        else console.error(e);
      }
    }
  }

  _setState(state, detail = {}) {
    const previous = this.state;
    this.state = state;
    this._emit("state", { state, previous, ...detail });
    this._emit(state, detail);
  }

  /** Starts connecting (idempotent); the client then reconnects by itself. */
  connect() {
    if (this.started || this.state === "closed") return;
    this.started = true;
    this._installHooks();
    this._attempt();
  }

  /** Closes the client for good: no reconnect, state closed. */
  close() {
    if (this.state === "closed") return;
    this.closing = true;
    clearTimeout(this.reconnect);
    this.reconnect = null;
    this._removeHooks();
    const s = this.session;
    if (s) this._endSession(s, 1000, "client closed");
    for (const sub of this.subs.values()) clearTimeout(sub.retry);
    this._setState("closed", { code: 1000, reason: "client closed", error: null });
  }

  /**
   * Registers handler for queue, subscribed on every connection. Messages
   * of a queue reach handler one at a time, in delivery order. ack:
   * "manual" (default) acks when the handler completes without throwing;
   * "auto" acks on receipt, before the handler. (With the client option
   * ackMode "auto" the gateway itself deletes on delivery: no ack is sent.)
   */
  subscribe(queue, handler, { ack = "manual" } = {}) {
    if (!queue || typeof handler !== "function") throw new TypeError("subscribe: a queue name and a handler are required");
    if (ack !== "manual" && ack !== "auto") throw new TypeError('subscribe: ack is "manual" or "auto"');
    const old = this.subs.get(queue);
    if (old) {
      old.handler = handler;
      old.ack = ack;
      return old;
    }
    const sub = new Subscription(this, queue, handler, ack);
    this.subs.set(queue, sub);
    if (this.session && this.session.open) this._sendSubscribe(this.session, sub);
    return sub;
  }

  _subState(sub, state, error) {
    sub.state = state;
    sub.error = error;
    this._emit("subscription", { queue: sub.queue, state, error });
  }

  async _attempt() {
    this.reconnect = null;
    if (this.state === "closed") return;
    this._setState("connecting", {});
    this.stats.attempts++;
    let creds;
    try {
      const provider = this.options.credentials;
      creds = provider
        ? await provider({ attempt: this.attempt })
        : { url: this.options.url, token: this.token || this.options.token, accessToken: this.options.accessToken };
    } catch (error) {
      if (this.state === "closed") return;
      if (error instanceof UnauthorizedError || error instanceof ForbiddenError) return this._stop(0, error.message, error);
      const wait = error instanceof RateLimitedError ? Math.max(error.retryAfter, this._later()) : this._backoff();
      return this._scheduleReconnect(wait, { error, action: error instanceof RateLimitedError ? "retry-later" : "retry" });
    }
    if (this.state === "closed") return;
    let ws;
    try {
      const u = websocketURL(creds.url || this.options.url);
      if (creds.ticket) u.searchParams.set("ticket", creds.ticket);
      u.searchParams.set("ack", this.options.ackMode);
      const protocols = [];
      if (!creds.ticket && (creds.token || creds.accessToken)) {
        protocols.push("wsmq.v1");
        if (creds.token) protocols.push("wsmq.token." + creds.token);
        if (creds.accessToken) protocols.push("wsmq.access-token." + creds.accessToken);
      }
      ws = protocols.length ? new this.WS(u.toString(), protocols) : new this.WS(u.toString());
    } catch (error) {
      return this._scheduleReconnect(this._backoff(), { error, action: "retry" });
    }
    const s = new Session(ws, this.options.ackMode);
    this.session = s;
    // No open, or no hello, in time: the attempt failed.
    s.timer = setTimeout(() => this._endSession(s, CloseWatchdog, "connect timeout"), this.options.connectTimeout);
    ws.onopen = () => {
      if (s.ended) return;
      clearTimeout(s.timer);
      s.timer = setTimeout(() => this._onHello(s, null), this.options.helloTimeout);
    };
    ws.onmessage = (e) => this._onFrame(s, e.data);
    ws.onclose = (e) => this._endSession(s, e.code, e.reason);
    ws.onerror = () => {}; // a close event follows
  }

  _onHello(s, hello) {
    if (s.ended || s.open) return;
    s.hello = hello || { ...fallbackHello, ackMode: this.options.ackMode };
    // The connection's ack mode is what the gateway says it is: acks go
    // out only when it expects them.
    if (s.hello.ackMode === "manual" || s.hello.ackMode === "auto") s.ackMode = s.hello.ackMode;
    s.open = true;
    s.began = Date.now();
    this.stats.connects++;
    this._setState("connected", { hello: s.hello });
    for (const sub of this.subs.values()) this._sendSubscribe(s, sub);
    this._armWatchdog(s);
  }

  _pingInterval(s) {
    return this.options.pingInterval || s.hello.pingInterval || 25000;
  }

  // The watchdog: every frame re-arms it; each interval without one sends
  // /ping; the third silent interval gives the socket up. It counts ticks,
  // not wall time, so a throttled background tab's late timers never
  // condemn a live socket: the pong answering the tick's /ping comes first.
  _armWatchdog(s) {
    clearTimeout(s.timer);
    if (s.ended) return;
    s.timer = setTimeout(() => {
      if (s.ended) return;
      s.idle++;
      if (s.idle >= 3) return this._endSession(s, CloseWatchdog, "watchdog: no frame within three ping intervals");
      s.send("/ping");
      this._armWatchdog(s);
    }, this._pingInterval(s));
  }

  /** Checks the connection now (page visible again, back online). */
  _probe() {
    const s = this.session;
    if (s && s.open && !s.ended) {
      s.idle = Math.max(s.idle, 1);
      s.send("/ping");
      this._armWatchdog(s);
    } else if (this.reconnect && this.state === "disconnected" && this._lastAction === "retry") {
      clearTimeout(this.reconnect);
      this._attempt();
    }
  }

  _onFrame(s, data) {
    if (s.ended) return;
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (!f || typeof f !== "object") return;
    if (!s.open) {
      if (f.event === "hello") return this._onHello(s, f);
      this._onHello(s, null); // an older gateway: no hello
    }
    s.idle = 0;
    this._armWatchdog(s);
    switch (f.event) {
      case undefined:
        return this._onMessage(s, f);
      case "pong":
      case "hello":
        return;
      case "token":
        this.options.credentials?.updateToken?.(f.token, f.expiresAt);
        this.token = f.token;
        return this._emit("token", { token: f.token, expiresAt: f.expiresAt });
      case "subscribed": {
        const sub = this.subs.get(f.queue);
        if (sub) {
          sub.attempt = 0;
          this._subState(sub, "subscribed", null);
        }
        return;
      }
      case "unsubscribed":
        return;
      case "error":
        return this._onError(s, f);
    }
  }

  _onError(s, f) {
    const error = new GatewayError(f);
    if (f.error === "unknown_id") this.stats.unknownAcks++;
    const sub = f.queue ? this.subs.get(f.queue) : null;
    if (sub && sub.state === "subscribing") {
      if (f.error === "unavailable" || f.error === "rate") {
        clearTimeout(sub.retry);
        sub.retry = setTimeout(() => s.open && !s.ended && this._sendSubscribe(s, sub), this._delay(sub.attempt++));
      } else {
        this._subState(sub, "failed", error);
      }
    }
    this._emit("error", { error });
  }

  _sendSubscribe(s, sub) {
    this._subState(sub, "subscribing", null);
    s.send("/subscribe/" + sub.queue);
  }

  _onMessage(s, m) {
    const sub = this.subs.get(m.queue);
    if (!sub) return; // not ours (any more): it comes back after the visibility timeout
    sub.buffer.push({ s, m });
    if (!sub.running) this._drain(sub);
  }

  async _drain(sub) {
    sub.running = true;
    try {
      while (sub.buffer.length) {
        const { s, m } = sub.buffer.shift();
        if (s.ended || this.subs.get(sub.queue) !== sub) continue; // it comes back with its connection
        if (sub.seen.has(m.id)) {
          this.stats.duplicates++;
          this._ack(s, m.id);
          continue;
        }
        if (sub.ack === "auto") this._ack(s, m.id);
        const message = { queue: m.queue, id: m.id, message: m.message, rc: m.rc, sent: m.sent, signal: s.abort.signal };
        try {
          await sub.handler(message);
        } catch (error) {
          this.stats.failed++;
          this._emit("handlerError", { queue: m.queue, id: m.id, error });
          continue; // redelivered after the visibility timeout
        }
        sub.seen.add(m.id);
        this.stats.handled++;
        if (sub.ack === "manual") this._ack(s, m.id);
      }
    } finally {
      sub.running = false;
    }
  }

  // Acks go on the connection that delivered the message, never on a later
  // one: once it has ended the ack is dropped and the message comes back.
  _ack(s, id) {
    if (s.ackMode !== "manual") return;
    if (!s.send("/ack/" + id)) this.stats.droppedAcks++;
  }

  _endSession(s, code, reason) {
    if (s.ended) return;
    s.ended = true;
    s.open = false;
    clearTimeout(s.timer);
    s.abort.abort();
    const ws = s.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    if (ws.readyState === 0 || ws.readyState === 1) {
      try {
        // A socket the client gives up (watchdog) may never finish its
        // closing handshake: the client does not wait for it.
        ws.close(code === CloseWatchdog ? 4000 : 1000);
      } catch {
        // already closing
      }
    }
    if (this.session === s) this.session = null;
    for (const sub of this.subs.values()) {
      clearTimeout(sub.retry);
      if (sub.state === "subscribed" || sub.state === "subscribing") this._subState(sub, "pending", null);
    }
    if (this.state === "closed" || this.closing) return;
    const lived = s.began ? Date.now() - s.began : 0;
    if (lived >= stableAfter) this.attempt = 0;
    const action = code === CloseWatchdog ? "retry" : closeAction(code);
    if (action === "stop") {
      const error = code === CloseCodes.Forbidden ? new ForbiddenError(reason || "forbidden") : new UnauthorizedError(reason || "unauthorized");
      return this._stop(code, reason, error);
    }
    const wait = action === "retry-spread" ? jitter(this.options.restartSpread) : action === "retry-later" ? this._later() : this._backoff();
    this._scheduleReconnect(wait, { code, reason, action, error: new CloseError(code, reason) });
  }

  _stop(code, reason, error) {
    clearTimeout(this.reconnect);
    this._removeHooks();
    this._setState("closed", { code, reason, error });
  }

  _scheduleReconnect(wait, detail) {
    this._lastAction = detail.action;
    this._setState("disconnected", { ...detail, code: detail.code ?? 0, reason: detail.reason ?? "", delay: wait });
    if (this.state !== "disconnected") return; // a listener closed the client
    clearTimeout(this.reconnect);
    this.reconnect = setTimeout(() => this._attempt(), wait);
  }

  /** Full-jitter exponential backoff of the next attempt. */
  _backoff() {
    return this._delay(this.attempt++);
  }

  _delay(n) {
    const o = this.options;
    return jitter(Math.min(o.maxBackoff, o.minBackoff * 2 ** Math.min(n, 30)));
  }

  _later() {
    return this.options.maxBackoff + jitter(this.options.maxBackoff);
  }

  // Browsers: back online or the page visible again checks the connection
  // at once (or skips the backoff wait); offline checks it too.
  _installHooks() {
    if (this.options.browserHooks === false || typeof globalThis.addEventListener !== "function") return;
    const probe = () => this._probe();
    const visible = () => {
      if (globalThis.document?.visibilityState === "visible") this._probe();
    };
    globalThis.addEventListener("online", probe);
    globalThis.addEventListener("offline", probe);
    globalThis.document?.addEventListener?.("visibilitychange", visible);
    this._hooks = { probe, visible };
  }

  _removeHooks() {
    const h = this._hooks;
    if (!h) return;
    this._hooks = null;
    globalThis.removeEventListener("online", h.probe);
    globalThis.removeEventListener("offline", h.probe);
    globalThis.document?.removeEventListener?.("visibilitychange", h.visible);
  }
}
