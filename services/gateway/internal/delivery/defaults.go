package delivery

import "time"

// Defaults of Config, exported for the gateway's config package.
const (
	DefaultVisibilityTimeout = 30 // seconds
	DefaultPrefetch          = 64
	DefaultMaxReceiveCount   = 10
	DefaultWorkers           = 32
	DefaultSweepInterval     = 5 * time.Second
	DefaultHotSweepInterval  = time.Second
	DefaultCallTimeout       = 5 * time.Second
)
