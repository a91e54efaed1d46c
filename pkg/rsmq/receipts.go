package rsmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Delivery receipts stream (wsmq's extension; Node rsmq neither writes nor
// reads it).
//
// A queue has receipts on when its hash holds "wsmq:receipts" = cap (set by
// a send of a Client with Options.ReceiptsCap). Then the scripts that change
// a message's state append one entry to the namespace's Redis stream
// "<ns>:wsmq:receipts" (XADD MAXLEN ~ cap), in the same script as the
// change: "in_flight" with rc (every receive, so a redelivery shows as rc
// 2, 3, ...), "delivered" / "acknowledged" with rc (the receipt delete of an
// auto or manual delivery), "dead_lettered" with the reason, "expired".
// Entry fields: q (queue), id, s (state), rc (when known), r (reason).
// The stream id is the position: a reader resumes after the last one it
// handled. With receipts off the receive and the receipt delete read one
// more field of a hash they read anyway: no further Redis call.
//
// The scripts derive the stream key and the queue name from the status key
// prefix they are passed already ("<ns>:wsmq:status:<queue>:"), so their
// arguments are unchanged; a queue name holds no ':' so the split is exact.

// receiptsSuffix is the receipts stream's key after the namespace prefix.
const receiptsSuffix = "wsmq:receipts"

// luaReceipt defines receipt(stPrefix, cap, id, word, rc, reason): XADD of
// one state change to the receipts stream of stPrefix's namespace.
const luaReceipt = `
local function receipt(stPrefix, cap, id, word, rc, reason)
	local qname = string.match(stPrefix, '([^:]+):$')
	if not qname then return end
	local key = string.sub(stPrefix, 1, #stPrefix - #qname - 13) .. '` + receiptsSuffix + `'
	local args = {key, 'MAXLEN', '~', math.floor(cap), '*', 'q', qname, 'id', id, 's', word}
	if rc and rc > 0 then
		args[#args + 1] = 'rc'
		args[#args + 1] = rc
	end
	if reason then
		args[#args + 1] = 'r'
		args[#args + 1] = reason
	end
	redis.pcall('XADD', unpack(args))
end
`

// ReceiptsKey is the key of the namespace's receipts stream.
func (c *Client) ReceiptsKey() string { return c.prefix + receiptsSuffix }

// Delivery is one entry of the receipts stream: a message's change of state.
type Delivery struct {
	// Position is the stream id, "<ms>-<seq>": resume after it.
	Position string
	// TimeMS is the change's Redis time, unix ms (the position's first part).
	TimeMS int64
	Queue  string
	ID     string
	// Status is StatusInFlight, StatusDelivered, StatusAcknowledged,
	// StatusDeadLettered or StatusExpired.
	Status Status
	// RC is the receive count (0 when the change does not know it).
	RC int64
	// Reason says why a message was dead-lettered.
	Reason string
}

// Errors of StartDeliveries and ReadDeliveries.
var (
	// ErrPositionTrimmed: entries after the position were trimmed off the
	// stream (its cap), so reading on from it would skip some.
	ErrPositionTrimmed = errors.New("rsmq: receipts after this position were trimmed")
	// ErrPositionAhead: the position is past the stream's last entry (the
	// stream was deleted or Redis lost it); reading on could skip entries.
	ErrPositionAhead = errors.New("rsmq: position is past the end of the receipts stream")
)

// Position is a parsed stream id.
type Position struct{ MS, Seq uint64 }

// ParsePosition parses "<ms>-<seq>" or "<ms>" (seq 0).
func ParsePosition(s string) (Position, error) {
	ms, seq, hasSeq := strings.Cut(s, "-")
	var p Position
	var err error
	if p.MS, err = strconv.ParseUint(ms, 10, 64); err != nil || ms == "" || ms[0] == '+' {
		return Position{}, fmt.Errorf("rsmq: position %q: want <ms>-<seq>", s)
	}
	if hasSeq {
		if p.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil || seq == "" || seq[0] == '+' {
			return Position{}, fmt.Errorf("rsmq: position %q: want <ms>-<seq>", s)
		}
	}
	return p, nil
}

// String is "<ms>-<seq>".
func (p Position) String() string {
	return strconv.FormatUint(p.MS, 10) + "-" + strconv.FormatUint(p.Seq, 10)
}

// Less orders positions as Redis orders stream ids.
func (p Position) Less(q Position) bool { return p.MS < q.MS || p.MS == q.MS && p.Seq < q.Seq }

// StartDeliveries returns the position to read on from. after "" is the
// stream's end (only changes from now on); "0" is its beginning (whatever
// is still kept); anything else is a position a reader handled last, which
// must still be safe to resume from: ErrPositionTrimmed when entries after
// it were trimmed, ErrPositionAhead when it is past the stream's last id.
// One XINFO STREAM.
func (c *Client) StartDeliveries(ctx context.Context, after string) (string, error) {
	var from Position
	if after != "" && after != "0" {
		var err error
		if from, err = ParsePosition(after); err != nil {
			return "", err
		}
	}
	info, err := c.rdb.XInfoStream(ctx, c.ReceiptsKey()).Result()
	if err != nil && strings.Contains(err.Error(), "no such key") {
		if after == "" || after == "0" || from == (Position{}) {
			return "0-0", nil
		}
		return "", fmt.Errorf("%w (%s; the stream is empty)", ErrPositionAhead, after)
	}
	if err != nil {
		return "", fmt.Errorf("rsmq: receipts stream: %w", err)
	}
	switch after {
	case "":
		return info.LastGeneratedID, nil
	case "0":
		return "0-0", nil
	}
	if last, err := ParsePosition(info.LastGeneratedID); err == nil && last.Less(from) {
		return "", fmt.Errorf("%w (%s > last %s)", ErrPositionAhead, after, info.LastGeneratedID)
	}
	if trimmedPast(info, from) {
		return "", fmt.Errorf("%w (%s is before the oldest kept %s)", ErrPositionTrimmed, after, info.FirstEntry.ID)
	}
	return from.String(), nil
}

// ReadDeliveries returns up to count entries after position after (a
// position of StartDeliveries or of a Delivery; "0-0" reads whatever is
// kept, unchecked), waiting up to block for
// the first one (nil, nil when none came). An entry that is not of the
// receipts form is returned with an empty Queue. When entries were
// returned, one XINFO STREAM checks that none after `after` was trimmed
// before the read (ErrPositionTrimmed: the reader fell a cap behind).
// rdb, when not nil, runs the reads instead of the Client's: a blocking
// read holds a connection for up to block.
func (c *Client) ReadDeliveries(ctx context.Context, rdb redis.UniversalClient, after string, count int64, block time.Duration) ([]Delivery, error) {
	if rdb == nil {
		rdb = c.rdb
	}
	res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{c.ReceiptsKey()}, ID: after, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rsmq: read receipts after %s: %w", after, err)
	}
	var out []Delivery
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, toDelivery(m))
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	from, _ := ParsePosition(after)
	if from == (Position{}) {
		return out, nil
	}
	info, err := rdb.XInfoStream(ctx, c.ReceiptsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("rsmq: receipts stream: %w", err)
	}
	if trimmedPast(info, from) {
		return nil, fmt.Errorf("%w (%s is before the oldest kept %s)", ErrPositionTrimmed, after, info.FirstEntry.ID)
	}
	return out, nil
}

// trimmedPast reports whether entries after from may have been trimmed:
// the stream lost entries (added more than it holds; wsmq never XDELs, and
// Redis 7.0 does not record trims in max-deleted-entry-id) and from is
// before its oldest entry. Trimming removes the oldest first, so a
// position still at or after the oldest entry lost nothing after it. (When
// from's own entry was the last one trimmed this says "trimmed" though
// nothing after it was: the reader is then a whole cap behind anyway.)
func trimmedPast(info *redis.XInfoStream, from Position) bool {
	if info.EntriesAdded <= info.Length {
		return false
	}
	first, err := ParsePosition(info.FirstEntry.ID)
	return err != nil || from.Less(first)
}

func toDelivery(m redis.XMessage) Delivery {
	d := Delivery{Position: m.ID}
	if p, err := ParsePosition(m.ID); err == nil {
		d.TimeMS = int64(p.MS)
	}
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	d.Queue, d.ID, d.Status, d.Reason = str("q"), str("id"), Status(str("s")), str("r")
	d.RC, _ = strconv.ParseInt(str("rc"), 10, 64)
	return d
}
