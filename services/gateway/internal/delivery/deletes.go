package delivery

import (
	"context"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// deleteBatch is the most receipts one deleter sends in one call.
const deleteBatch = 512

type deletion struct {
	queue string
	r     rsmq.Receipt
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
	byQueue := make(map[string][]rsmq.Receipt)
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
		byQueue[d.queue] = append(byQueue[d.queue], d.r)
		n := 1
	drain:
		for n < deleteBatch {
			select {
			case d := <-e.deletes:
				byQueue[d.queue] = append(byQueue[d.queue], d.r)
				n++
			default:
				break drain
			}
		}
		batches = batches[:0]
		for q, rs := range byQueue {
			batches = append(batches, rsmq.QueueReceipts{Queue: q, Receipts: rs})
			delete(byQueue, q)
		}
		e.deleteReceipts(batches, n)
	}
}

func (e *Engine) deleteReceipts(batches []rsmq.QueueReceipts, n int) {
	var err error
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CallTimeout)
		_, err = e.q.DeleteByReceiptsMulti(ctx, batches)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond) // back off before retrying Redis
	}
	e.log.Warn("delete failed; the messages will be delivered again after the visibility timeout",
		"queues", len(batches), "count", n, "err", err)
}
