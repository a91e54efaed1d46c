package delivery

import (
	"context"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// Batching and retrying of deletes.
const (
	// deleteBatch is the most receipts one deleter sends in one call.
	deleteBatch = 512
	// deleteAttempts is how often a batch is tried before it is given up
	// (its messages are then redelivered after their visibility timeout).
	deleteAttempts = 3
	// deleteBackoff is the wait after the first failed attempt; the n-th
	// failure waits n times as long.
	deleteBackoff = 100 * time.Millisecond
)

// deletion is one message to delete, by the receipt of its delivery.
type deletion struct {
	queue string
	r     rsmq.Receipt
	acked bool // a manual ack (recorded as acknowledged), not an auto confirm
}

// deleteGroup is the receipts of one call's batch: one queue, one kind.
type deleteGroup struct {
	queue string
	acked bool
}

// queueDelete hands a deletion to the deleters. After Stop (a connection
// outliving the shutdown deadline) it is dropped: the message reappears
// after its visibility timeout, so nothing is lost, at worst redelivered.
func (e *Engine) queueDelete(d deletion) {
	select {
	case e.deletes <- d:
	case <-e.delStop:
	}
}

// deleter batches deletions: whatever is waiting, across queues, goes to
// Redis in one call. On Stop it sends what is queued, then exits.
func (e *Engine) deleter() {
	defer e.delWG.Done()
	byQueue := make(map[deleteGroup][]rsmq.Receipt)
	var batches []rsmq.QueueReceipts
	for {
		var d deletion
		select {
		case d = <-e.deletes:
		case <-e.delStop:
			select {
			case d = <-e.deletes:
			default:
				return
			}
		}
		byQueue[deleteGroup{d.queue, d.acked}] = append(byQueue[deleteGroup{d.queue, d.acked}], d.r)
		n := 1
	drain:
		for n < deleteBatch {
			select {
			case d := <-e.deletes:
				g := deleteGroup{d.queue, d.acked}
				byQueue[g] = append(byQueue[g], d.r)
				n++
			default:
				break drain
			}
		}
		batches = batches[:0]
		for g, rs := range byQueue {
			batches = append(batches, rsmq.QueueReceipts{Queue: g.queue, Receipts: rs, Acked: g.acked})
			delete(byQueue, g)
		}
		e.deleteReceipts(batches, n)
	}
}

// deleteReceipts sends one batch of deletions, retried with backoff.
func (e *Engine) deleteReceipts(batches []rsmq.QueueReceipts, n int) {
	var err error
	for attempt := range deleteAttempts {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CallTimeout)
		var skipped []rsmq.SkippedReceipt
		_, skipped, err = e.q.DeleteByReceiptsMulti(ctx, batches)
		cancel()
		if err == nil {
			// A bad receipt or broken queue fails alone; retrying it
			// would fail the same way.
			for _, sk := range skipped {
				e.warn.Warn("delete skipped", "queue", sk.Queue, "id", sk.Receipt.ID, "err", sk.Err)
			}
			return
		}
		time.Sleep(time.Duration(attempt+1) * deleteBackoff) // back off before retrying Redis
	}
	e.warn.Warn("delete failed; the messages will be delivered again after the visibility timeout",
		"queues", len(batches), "count", n, "err", err)
}
