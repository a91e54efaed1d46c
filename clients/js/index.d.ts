// Types of the wsmq JavaScript SDK (index.js). Hand-written; CI checks them
// against test/consumer.ts with tsc --strict.

export declare const CloseCodes: Readonly<{
  GoingAway: 1001;
  Internal: 1011;
  Restart: 1012;
  TryAgainLater: 1013;
  Unauthorized: 4001;
  Forbidden: 4003;
  SlowConsumer: 4008;
  RateLimited: 4029;
}>;

/** The close code the SDK uses when its watchdog gives a socket up. */
export declare const CloseWatchdog: 4000;

export type CloseAction = "retry" | "retry-spread" | "retry-later" | "stop";

/** The action on a close code (the table shared with the Go SDK). */
export declare function closeAction(code: number): CloseAction;

/** The websocket URL of a gateway base URL ("/" means /ws). */
export declare function websocketURL(base: string): URL;

export declare class WsmqError extends Error {
  constructor(message: string, options?: { cause?: unknown });
}
export declare class UnauthorizedError extends WsmqError {
  constructor(message?: string, options?: { cause?: unknown });
}
export declare class ForbiddenError extends WsmqError {
  constructor(message?: string, options?: { cause?: unknown });
}
export declare class RateLimitedError extends WsmqError {
  constructor(message?: string, retryAfter?: number, options?: { cause?: unknown });
  /** Milliseconds the gateway asked to wait (0: not said). */
  readonly retryAfter: number;
}
export declare class CloseError extends WsmqError {
  constructor(code: number, reason?: string);
  readonly code: number;
  readonly reason: string;
  readonly action: CloseAction;
}
export declare class GatewayError extends WsmqError {
  constructor(frame: { error: string; queue?: string; id?: string; message?: string });
  /** One of bad_request, forbidden, unknown_id, limit, rate, unavailable. */
  readonly code: string;
  readonly queue: string;
  readonly id: string;
}

/** What one connect attempt uses: a ticket, or credentials sent as subprotocols. */
export interface Credentials {
  /** Gateway base URL (http(s):// or ws(s)://); default options.url. */
  url?: string;
  ticket?: string;
  token?: string;
  accessToken?: string;
}

/**
 * Called before every connect attempt. Throwing UnauthorizedError or
 * ForbiddenError stops the client for good; RateLimitedError waits at least
 * its retryAfter; anything else is retried with backoff.
 */
export interface CredentialsProvider {
  (info: { attempt: number }): Credentials | Promise<Credentials>;
  /** Called with every fresh JWT the gateway hands over (token frames). */
  updateToken?(token: string, expiresAt?: number): void;
}

export interface TicketCredentialsOptions {
  /** Gateway base URL; default location.origin in browsers. */
  url?: string;
  token?: string;
  accessToken?: string;
  fetch?: typeof fetch;
  /** Milliseconds the ticket request may take (default 10000). */
  timeout?: number;
  /** Called when the JWT was refreshed (ticket answer or token frame). */
  onToken?(token: string, expiresAt?: number): void;
}

export interface TicketCredentials extends CredentialsProvider {
  (info?: { attempt: number }): Promise<Credentials>;
  updateToken(token: string, expiresAt?: number): void;
  /** The latest JWT. */
  token(): string;
}

/** A provider trading the credentials for a connect ticket (POST /v1/ticket) on every attempt. */
export declare function ticketCredentials(options?: TicketCredentialsOptions): TicketCredentials;

export type AckMode = "manual" | "auto";

/** Constructor of a WHATWG WebSocket (global one, or e.g. the ws package's). */
export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: { data: any }) => any) | null;
  onclose: ((ev: { code: number; reason: string }) => any) | null;
  onerror: ((ev: any) => any) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface WsmqClientOptions {
  /** Gateway base URL, when the provider does not name one. */
  url?: string;
  credentials?: CredentialsProvider;
  /** Without a provider: sent as subprotocols. */
  token?: string;
  accessToken?: string;
  /** The connection's ack mode: "manual" (default, the SDK acks) or "auto" (the gateway deletes on delivery). */
  ackMode?: AckMode;
  WebSocket?: WebSocketConstructor;
  /** Milliseconds; defaults 500, 20000, 5000. */
  minBackoff?: number;
  maxBackoff?: number;
  restartSpread?: number;
  /** Handled ids remembered per queue (default 4096). */
  dedupeSize?: number;
  /** Milliseconds; defaults 10000 and 5000. */
  connectTimeout?: number;
  helloTimeout?: number;
  /** Milliseconds between /ping when idle; default the hello frame's. */
  pingInterval?: number;
  /** online/offline and visibilitychange hooks in browsers (default true). */
  browserHooks?: boolean;
}

export type ClientState = "disconnected" | "connecting" | "connected" | "closed";
export type SubscriptionState = "pending" | "subscribing" | "subscribed" | "failed" | "unsubscribed";

export interface Hello {
  event: "hello";
  ackMode: AckMode;
  prefetch: number;
  visibilityTimeout: number;
  pingInterval: number;
}

export interface Message {
  queue: string;
  id: string;
  message: string;
  /** Receive count: 1 on the first delivery. */
  rc: number;
  /** Unix ms. */
  sent: number;
  /** Aborted when the connection that delivered the message closes. */
  signal: AbortSignal;
}

export type Handler = (message: Message) => void | Promise<void>;

export interface Subscription {
  readonly queue: string;
  readonly state: SubscriptionState;
  readonly error: GatewayError | null;
  unsubscribe(): void;
}

export interface StateEvent {
  state: ClientState;
  previous: ClientState;
  code?: number;
  reason?: string;
  action?: CloseAction;
  /** Milliseconds until the next attempt (disconnected). */
  delay?: number;
  error?: Error | null;
  hello?: Hello;
}

export interface ClientEvents {
  state: StateEvent;
  connecting: StateEvent;
  connected: { hello: Hello };
  disconnected: { code: number; reason: string; action: CloseAction; delay: number; error: Error };
  closed: { code: number; reason: string; error: Error | null };
  token: { token: string; expiresAt: number };
  error: { error: GatewayError };
  subscription: { queue: string; state: SubscriptionState; error: GatewayError | null };
  handlerError: { queue: string; id: string; error: unknown };
}

export interface Stats {
  attempts: number;
  connects: number;
  handled: number;
  failed: number;
  duplicates: number;
  droppedAcks: number;
  unknownAcks: number;
}

export declare class WsmqClient {
  constructor(options: WsmqClientOptions);
  readonly state: ClientState;
  readonly stats: Readonly<Stats>;
  on<K extends keyof ClientEvents>(event: K, fn: (detail: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(event: K, fn: (detail: ClientEvents[K]) => void): void;
  connect(): void;
  close(): void;
  subscribe(queue: string, handler: Handler, options?: { ack?: AckMode }): Subscription;
}
