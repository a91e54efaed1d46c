package wsconn

import "time"

// Defaults of Options, exported for the gateway's config package.
const (
	DefaultConnBuffer   = 256
	DefaultMaxSubs      = 32
	DefaultWriteTimeout = 10 * time.Second
	DefaultPingInterval = 25 * time.Second
	DefaultReadLimit    = 4096
	DefaultCallTimeout  = 5 * time.Second
)
