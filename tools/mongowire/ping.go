package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"
)

// pingServer sends the MongoDB command {ping: 1, $db: "admin"} as an OP_MSG
// to addr and returns nil when the reply has ok: 1. It is the healthcheck of
// the test-only mongo stand-in image (no mongosh there), written against the
// wire protocol so it needs no driver.
func pingServer(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write(opMsg(1, pingDoc())); err != nil {
		return err
	}
	var hdr [16]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if op := binary.LittleEndian.Uint32(hdr[12:]); op != 2013 || n < 16+5+5 || n > 16<<20 {
		return fmt.Errorf("unexpected reply (opcode %d, length %d)", op, n)
	}
	body := make([]byte, n-16)
	if _, err := io.ReadFull(conn, body); err != nil {
		return err
	}
	// flagBits (4), section kind 0 (1), then the reply document.
	if body[4] != 0 {
		return errors.New("unexpected reply section")
	}
	ok, err := okField(body[5:])
	if err != nil {
		return err
	}
	if ok != 1 {
		return fmt.Errorf("ping: ok is %v", ok)
	}
	return nil
}

func opMsg(requestID uint32, doc []byte) []byte {
	msg := make([]byte, 16, 16+5+len(doc))
	msg = append(msg, 0, 0, 0, 0, 0) // flagBits, section kind 0
	msg = append(msg, doc...)
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint32(msg[4:], requestID)
	binary.LittleEndian.PutUint32(msg[12:], 2013) // OP_MSG
	return msg
}

// pingDoc is the BSON document {ping: int32(1), $db: "admin"}.
func pingDoc() []byte {
	doc := []byte{0, 0, 0, 0}
	doc = append(doc, 0x10)
	doc = append(doc, "ping\x00"...)
	doc = binary.LittleEndian.AppendUint32(doc, 1)
	doc = append(doc, 0x02)
	doc = append(doc, "$db\x00"...)
	doc = binary.LittleEndian.AppendUint32(doc, uint32(len("admin")+1))
	doc = append(doc, "admin\x00"...)
	doc = append(doc, 0)
	binary.LittleEndian.PutUint32(doc, uint32(len(doc)))
	return doc
}

// okField reads the top-level "ok" number of a BSON document.
func okField(doc []byte) (float64, error) {
	if len(doc) < 5 || int(binary.LittleEndian.Uint32(doc)) > len(doc) {
		return 0, errors.New("short reply document")
	}
	doc = doc[4:binary.LittleEndian.Uint32(doc)]
	for len(doc) > 1 {
		typ := doc[0]
		doc = doc[1:]
		end := 0
		for end < len(doc) && doc[end] != 0 {
			end++
		}
		if end == len(doc) {
			return 0, errors.New("bad element name")
		}
		name := string(doc[:end])
		doc = doc[end+1:]
		var size int
		switch typ {
		case 0x01, 0x09, 0x11, 0x12: // double, datetime, timestamp, int64
			size = 8
		case 0x10: // int32
			size = 4
		case 0x08: // bool
			size = 1
		case 0x0A: // null
			size = 0
		case 0x02: // string
			if len(doc) < 4 {
				return 0, errors.New("short string")
			}
			size = 4 + int(binary.LittleEndian.Uint32(doc))
		case 0x03, 0x04: // document, array
			if len(doc) < 4 {
				return 0, errors.New("short document")
			}
			size = int(binary.LittleEndian.Uint32(doc))
		default:
			if name == "ok" {
				return 0, fmt.Errorf("ok has BSON type %#x", typ)
			}
			return 0, fmt.Errorf("BSON type %#x before ok", typ)
		}
		if size < 0 || size > len(doc) {
			return 0, errors.New("truncated element")
		}
		if name == "ok" {
			switch typ {
			case 0x01:
				return math.Float64frombits(binary.LittleEndian.Uint64(doc)), nil
			case 0x10:
				return float64(int32(binary.LittleEndian.Uint32(doc))), nil
			case 0x12:
				return float64(int64(binary.LittleEndian.Uint64(doc))), nil
			}
			return 0, fmt.Errorf("ok has BSON type %#x", typ)
		}
		doc = doc[size:]
	}
	return 0, errors.New("no ok field in reply")
}
