// Package reverify holds the sizes of the gateway's periodic re-verify of
// live sockets against the auth service's VerifyBatch: the gateway uses
// them, and the auth service's scale test measures VerifyBatch with them,
// so the figure it reports is the gateway's real load.
package reverify

const (
	// Batch is the credentials per VerifyBatch call (the auth service
	// takes at most 1000): 100k sockets are 200 calls.
	Batch = 500
	// InFlight is the VerifyBatch calls one gateway has open at once.
	InFlight = 4
)
