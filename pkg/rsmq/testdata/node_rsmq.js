// Runs one Node rsmq 0.12.4 operation for node_compat_test.go and prints
// its result as JSON: {"result": ...} or {"error": "<rsmq error name>"}.
// Usage: node node_rsmq.js <port> <ns> <realtime 0|1> <operation> <json options>
const RedisSMQ = require("rsmq");
const [port, ns, realtime, op, opts] = process.argv.slice(2);
const rsmq = new RedisSMQ({ host: "127.0.0.1", port: Number(port), ns, realtime: realtime === "1" });
const done = (err, result) => {
  console.log(JSON.stringify(err ? { error: err.name, message: err.message } : { result }));
  rsmq.quit();
};
if (op === "listQueues") {
  rsmq.listQueues(done);
} else {
  rsmq[op](JSON.parse(opts), done);
}
