// A consumer of the SDK's types: tsc --strict must accept it (packaging
// test). It is never run.
import {
  WsmqClient, ticketCredentials, closeAction, CloseCodes, UnauthorizedError, RateLimitedError,
  GatewayError, type Message, type ClientState, type CloseAction, type Credentials,
} from "../index.js";

const creds = ticketCredentials({ url: "https://gw.example", token: "jwt", accessToken: "at", onToken: (t: string) => void t });
const client = new WsmqClient({ credentials: creds, ackMode: "manual", minBackoff: 500, maxBackoff: 20000 });
const sub = client.subscribe("5f0c9a0e1b2c3d4e5f601234", async (m: Message) => {
  const body: string = m.message;
  const rc: number = m.rc;
  if (m.signal.aborted) return;
  void body, rc;
}, { ack: "auto" });
const st: string = sub.state;
const off = client.on("disconnected", (e) => {
  const a: CloseAction = e.action;
  const d: number = e.delay;
  void a, d, e.code, e.reason;
});
off();
client.on("closed", (e) => {
  if (e.error instanceof UnauthorizedError) console.log("log in again");
});
client.on("error", (e) => { const g: GatewayError = e.error; void g.code; });
client.connect();
const s: ClientState = client.state;
const n: number = client.stats.duplicates + CloseCodes.RateLimited;
const act: CloseAction = closeAction(4001);
const own = new WsmqClient({ url: "ws://localhost:8080", token: "jwt", credentials: async (): Promise<Credentials> => ({ ticket: "t" }) });
const r = new RateLimitedError("slow down", 1000);
void st, s, n, act, own, r.retryAfter;
sub.unsubscribe();
client.close();
