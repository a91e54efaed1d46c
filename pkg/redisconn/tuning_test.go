package redisconn_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/redisconn"
)

func TestApplyTunesSingleAndFailoverClientsAlike(t *testing.T) {
	for _, tu := range []redisconn.Tuning{
		{},
		{PoolSize: 7, DialTimeout: time.Second, IOTimeout: 2 * time.Second, MaxRetries: -1, FailFast: true, CtxDeadlines: true},
	} {
		var o redis.Options
		var f redis.FailoverOptions
		redisconn.Apply(&o, tu)
		redisconn.ApplyFailover(&f, tu)
		if o.PoolSize != f.PoolSize || o.DialTimeout != f.DialTimeout || o.ReadTimeout != f.ReadTimeout ||
			o.WriteTimeout != f.WriteTimeout || o.MaxRetries != f.MaxRetries || o.DialerRetries != f.DialerRetries ||
			o.DialerRetryTimeout != f.DialerRetryTimeout || o.PoolTimeout != f.PoolTimeout || o.ContextTimeoutEnabled != f.ContextTimeoutEnabled {
			t.Fatalf("%+v: single %+v, failover %+v", tu, o, f)
		}
		wantIO := redisconn.DefaultIOTimeout
		if tu.IOTimeout != 0 {
			wantIO = tu.IOTimeout
		}
		if o.ReadTimeout != wantIO || o.WriteTimeout != wantIO {
			t.Fatalf("%+v: read/write timeouts %v/%v, want %v", tu, o.ReadTimeout, o.WriteTimeout, wantIO)
		}
		if tu.FailFast && (o.DialerRetries != 2 || o.PoolTimeout != tu.DialTimeout+tu.IOTimeout) {
			t.Fatalf("fail-fast not applied: %+v", o)
		}
	}
}
