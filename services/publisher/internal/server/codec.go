package server

import (
	"errors"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
)

// Codec returns the server's gRPC codec: the standard proto codec, except
// that a SendRequest (alone or in a batch) whose strings are not valid UTF-8
// is still decoded, so the handler can answer INVALID_ARGUMENT naming the
// field. The standard codec rejects such a request before any handler runs,
// and gRPC answers INTERNAL.
func Codec() encoding.CodecV2 {
	return lenientCodec{encoding.GetCodecV2("proto")}
}

type lenientCodec struct{ encoding.CodecV2 }

// Unmarshal decodes strictly first; only a failed publisher request is
// decoded again without the UTF-8 check.
func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	buf := data.Materialize()
	switch m := v.(type) {
	case *publisherv1.SendRequest:
		if decodeSendRequest(buf, m) == nil {
			return nil
		}
	case *publisherv1.SendBatchRequest:
		if decodeSendBatchRequest(buf, m) == nil {
			return nil
		}
	}
	return err
}

var errWire = errors.New("malformed protobuf")

// decodeSendRequest decodes fields 1 (queue), 2 (message) and 3
// (delay_seconds) of a SendRequest, skipping unknown fields.
func decodeSendRequest(b []byte, m *publisherv1.SendRequest) error {
	m.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errWire
			}
			m.Queue, b = string(v), b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errWire
			}
			m.Message, b = string(v), b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errWire
			}
			m.DelaySeconds, b = int64(v), b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errWire
			}
			b = b[n:]
		}
	}
	return nil
}

// decodeSendBatchRequest decodes the repeated field 1 (items).
func decodeSendBatchRequest(b []byte, m *publisherv1.SendBatchRequest) error {
	m.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errWire
			}
			item := &publisherv1.SendRequest{}
			if err := decodeSendRequest(v, item); err != nil {
				return err
			}
			m.Items, b = append(m.Items, item), b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
	}
	return nil
}
