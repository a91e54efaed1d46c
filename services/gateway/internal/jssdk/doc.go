// Package jssdk holds the acceptance tests of the JavaScript SDK
// (clients/js): Go tests that start the real stack (gatewaytest), a
// control endpoint the Node tests drive it through (send, kill, restart,
// revoke, black-hole the network), and run clients/js/test/*.test.mjs with
// Node's built-in test runner. The package has no non-test code; it lives
// in the gateway module because the stack helpers are internal to it.
package jssdk
