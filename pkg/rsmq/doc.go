// Package rsmq is a Go implementation of RSMQ, the Redis simple message
// queue, byte-compatible with the Node rsmq 0.12.4 package: same keys, same
// message ids, same script effects, same realtime channel (see RSMQ.md).
// Node apps using rsmq or rsmq-worker can share queues with it.
//
// Every operation is one round trip: validation happens in Go, then one Lua
// script (EVALSHA with EVAL fallback) or one MULTI/pipeline does the work,
// reading "now" from Redis TIME inside the script.
//
// # Message ids
//
// An id is 10 chars of lowercase base 36 of Redis time in µs followed by 22
// random chars of [A-Za-z0-9] (crypto/rand). To build it before its one
// round trip, a Client estimates Redis time from the local monotonic clock
// and an offset measured by one TIME call on the first send and re-measured
// from the TIME every send script returns (error: about half a round trip).
// Prefixes never repeat or decrease within a Client, so ids of one Client
// sort in send order. The message's score always comes from Redis TIME in
// the script, so visibility does not depend on the estimate; only Sent
// (decoded from the id) may be off by the estimate's error.
//
// # Retries
//
// go-redis retries a command after a dropped connection or a read timeout,
// so a command may run twice on the server. What that does per operation:
//   - SendMessage, SendBatch: safe. The id is fixed before the first attempt
//     and the send script does nothing when the id is already in the queue,
//     so the message, totalsent and the realtime notification happen once.
//     (A retry that arrives after a consumer already received and deleted
//     the message would store it again: at-least-once, not exactly-once.)
//   - ReceiveMessage, ReceiveMessages, ReceiveFromQueues: a retry after a
//     lost reply receives more messages: the first attempt's messages are
//     hidden and their rc and totalrecv raised, but the caller never sees
//     them. They come back after their vt with rc raised: at-least-once, and
//     a dead-letter count may be reached one receive early per lost reply.
//     Options.ReceiveClient, a client with retries off, avoids the second
//     run; the caller's next pull then recovers (one lost reply still hides
//     its messages for their vt).
//   - ReturnByReceipts: safe; a retry finds the messages visible already.
//   - PopMessage: not safe. A lost reply loses the popped message (it is
//     deleted but never returned): use ReceiveMessages and DeleteByReceiptsMulti
//     when messages must not be lost.
//   - DeleteMessage, DeleteByReceiptsMulti: the effect happens once, but a
//     retried call reports false/0 for what its first attempt deleted.
//   - ChangeMessageVisibility, ChangeVisibilityByReceipts: a retry sets the same vt from a
//     slightly later now. CreateQueue retried after a lost reply returns
//     ErrQueueExists for the queue it created.
//
// # Foreign and corrupt data
//
// Receives and receipt deletes never fail a whole call for one bad item: a
// message whose id, rc or fr is not in the RSMQ format is rejected
// (ReceiveResult.Rejected; moved to the dead-letter queue when there is
// one), a queue whose keys have the wrong type fails alone (ErrCorrupt),
// and DeleteByReceiptsMulti skips a bad receipt or queue alone.
//
// # Round trips
//
// One per call: CreateQueue, DeleteQueue, ListQueues, GetQueueAttributes,
// SetQueueAttributes, SendMessage, SendBatch (all items pipelined),
// ReceiveMessage, ReceiveMessages, PopMessage, DeleteMessage,
// ChangeMessageVisibility, the receipt calls (one script for all receipts)
// and NextVisible (one pipeline). A Client's first send adds one TIME call; a
// script not yet cached by Redis adds one EVAL (SendBatch: one SCRIPT LOAD
// and one more pipeline).
//
// # Differences from Node rsmq
//
// Same stored effects; Node's two round trips (TIME + attributes, then the
// write) become one script reading TIME itself. Message.Sent is whole
// milliseconds (Node: a fraction). The realtime PUBLISH happens inside the
// send script. ReceiveMessages, receipts, dead-lettering and NextVisible are
// extensions over the same format; a dead-letter queue is created with the
// source queue's vt, delay and maxsize, and a moved body is not checked
// against an existing dead-letter queue's smaller maxsize.
//
// # Expiry and delivery status (wsmq extensions)
//
// A message sent with SendItem.TTL has one more hash field, "<id>:exp"
// (expiry, unix ms); receive drops it once expired, in the same script
// (ReceiveResult.Expired): to the dead-letter queue, or deleted when the
// queue hash's "wsmq:expired" is "delete". Node rsmq reads and deletes such
// messages as any other; its delete leaves "<id>:exp" behind (see
// expiry.go and SweepExpiryOrphans), and a Node consumer receives a
// message even after it expired. A queue whose hash has "wsmq:status"
// (seconds) records each message's final state in
// "<ns>:wsmq:status:<queue>:<id>" for that long (see status.go, GetStatus).
// A queue whose hash has "wsmq:receipts" (a length cap) appends every
// change of a message's state to the stream "<ns>:wsmq:receipts" (see
// receipts.go, ReadDeliveries). Node rsmq ignores both fields; a message a
// Node consumer receives or deletes leaves no status and no receipt.
//
// The layout puts two keys of one queue (with different hash slots) in one
// script, so the Client does not work on Redis Cluster.
package rsmq
