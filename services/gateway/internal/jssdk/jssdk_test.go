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

func TestJSClientSurvivesSIGKILLOfItsGatewayBehindAProxy(t *testing.T) { // 3
	h := newHarness(t, 2, []string{"WSMQ_VISIBILITY_TIMEOUT=2"})
	h.withProxy()
	h.runNode("sigkill.test.mjs")
}

func TestJSFiveHundredClientsSpreadTheirReconnectsAfterARestart(t *testing.T) { // 4
	h := newHarness(t, 1, nil, "WSMQ_CONN_RATE=1000000", "WSMQ_MAX_CONNS_PER_USER=1000", "WSMQ_MAX_QUEUES_PER_USER=1000")
	h.runNode("restart.test.mjs")
}

func TestJSSessionOutlivesItsJWTAndStopsOnRevocation(t *testing.T) { // 5
	h := newHarnessAuthEnv(t, 1, []string{"WSMQ_JWT_TTL=2s"}, []string{"WSMQ_REVERIFY_INTERVAL=200ms"})
	h.withProxy()
	h.runNode("expiry.test.mjs")
}

func TestJSWatchdogNoticesABlackHoledNetworkAndTheClientResumes(t *testing.T) { // 6
	h := newHarness(t, 1, []string{"WSMQ_PING_INTERVAL=1s"})
	h.withProxy()
	h.runNode("blackhole.test.mjs")
}

func TestJSCloseCodeMatrix(t *testing.T) { // 8
	newHarness(t, 0, nil).runNode("closecodes.test.mjs") // the control endpoint's /fake/ws only
}

func TestJSAckOfALostConnectionIsNeverSentOnTheNewOne(t *testing.T) { // 9
	h := newHarness(t, 1, nil)
	h.withProxy()
	h.runNode("lostack.test.mjs")
}
