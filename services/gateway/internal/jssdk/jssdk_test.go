package jssdk_test

import "testing"

// Each test starts its own stack and runs one Node test file against it
// (clients/js/test); the numbers are the acceptance items.

func TestJSSeedFlowLogsInSubscribesReceivesAndAcks(t *testing.T) { // 1
	newHarness(t, 1, nil).runNode("seed.test.mjs")
}

func TestJSThousandMessagesInOrderExactlyOnceInBothAckModes(t *testing.T) { // 2
	newHarness(t, 1, nil).runNode("thousand.test.mjs")
}
