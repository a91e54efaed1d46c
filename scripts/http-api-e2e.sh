#!/usr/bin/env bash
# http-api-e2e.sh: the publisher's HTTP/JSON API end to end with curl, against
# a running publisher. Prints one line per check and ends with
# "N passed, N failed"; exits 1 when a check failed.
#
#   WSMQ_HTTP=http://127.0.0.1:9093 WSMQ_KEY=<send key> WSMQ_ADMIN_KEY=<admin key> scripts/http-api-e2e.sh
#
# WSMQ_ADMIN_KEY empty skips the admin checks. Needs curl and jq.
set -u
base=${WSMQ_HTTP:-http://127.0.0.1:9093}
key=${WSMQ_KEY:-}
admin=${WSMQ_ADMIN_KEY:-}
q="e2e-$$-$RANDOM"
passed=0 failed=0

# req METHOD PATH KEY [BODY]: sets $code (HTTP status) and $body.
req() {
	local out data=""
	local args=(-sS -o - -w '\n%{http_code}' -X "$1" "$base$2")
	[ -n "$3" ] && args+=(-H "Authorization: Bearer $3")
	if [ $# -ge 4 ]; then
		args+=(-H 'Content-Type: application/json' --data-binary @-)
		data=$4
	fi
	# The body goes through stdin: an argument is limited to 128 KiB.
	out=$(printf '%s' "$data" | curl "${args[@]}" 2>&1) || { code=000; body=$out; return; }
	code=${out##*$'\n'}
	body=${out%$'\n'*}
}

# check NAME WANT_STATUS JQ_EXPR: the last answer has the status and the jq
# expression is true of its body.
check() {
	if [ "$code" = "$2" ] && jq -e "$3" >/dev/null 2>&1 <<<"$body"; then
		passed=$((passed + 1)); echo "ok   - $1"
	else
		failed=$((failed + 1)); echo "FAIL - $1: got $code $body"
	fi
}

req POST "/v1/queues/$q/messages" "$key" '{"message":"hello","delaySeconds":0}'
check "send returns an RSMQ id" 200 '.id | test("^[0-9a-z]{10}[A-Za-z0-9]{22}$")'
req POST "/v1/queues/$q/messages" "" '{"message":"hello"}'
check "send without a key is 401 UNAUTHENTICATED" 401 '.code == 16 and (.message | startswith("authorization: missing"))'
req POST "/v1/queues/$q/messages" "wrong-key-0123456789abc" '{"message":"hello"}'
check "send with an unknown key is 401" 401 '.code == 16 and (.message | contains("unknown key"))'
req POST "/v1/queues/bad.name/messages" "$key" '{"message":"hello"}'
check "bad queue name is 400 INVALID_ARGUMENT naming queue" 400 '.code == 3 and (.message | startswith("queue: "))'
req POST "/v1/queues/$q/messages" "$key" '{"message":"hello","delaySecond":5}'
check "unknown field is 400 naming the field" 400 '.code == 3 and .message == "delaySecond: unknown field"'
req POST "/v1/queues/$q/messages" "$key" '{"message":"hello","delaySeconds":-1}'
check "negative delay is 400 naming delay_seconds" 400 '.code == 3 and (.message | startswith("delay_seconds: "))'
req POST "/v1/queues/$q/messages" "$key" '{"message":'
check "broken JSON is 400" 400 '.code == 3 and (.message | startswith("body: invalid JSON"))'
big=$(head -c 5000000 /dev/zero | tr '\0' x)
req POST "/v1/queues/$q/messages" "$key" "{\"message\":\"$big\"}"
check "body over the limit is 413" 413 '.code == 8 and (.message | startswith("body: larger than"))'
req POST "/v1/messages:batch" "$key" "{\"items\":[{\"queue\":\"$q\",\"message\":\"a\"},{\"queue\":\"bad!\",\"message\":\"b\"}]}"
check "batch gives per-item results" 200 '(.results | length) == 2 and .results[0].code == 0 and (.results[0].id | length) == 32 and .results[1].code == 3 and (.results[1].error | startswith("items[1].queue: "))'
req GET "/v1/nothing" "$key"
check "unknown route is 404 NOT_FOUND" 404 '.code == 5'
req GET "/v1/openapi.json" ""
check "the OpenAPI document is served without a key" 200 '.swagger == "2.0" and (.paths | has("/v1/queues/{queue}/messages")) and (.paths | has("/v1/deliveries"))'

# The delivery event stream (server-sent events), when the publisher has it on.
auth=()
[ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
sse=$(curl -sS -N --max-time 2 -D - "${auth[@]}" "$base/v1/deliveries?queuePrefix=$q&after=0" 2>/dev/null)
if grep -q '^HTTP/[0-9.]* 501' <<<"$sse"; then
	echo "skip - delivery event stream off (WSMQ_PUBLISHER_RECEIPTS_STREAM)"
else
	if grep -qi '^content-type: text/event-stream' <<<"$sse" && grep -q '^: watching' <<<"$sse"; then
		passed=$((passed + 1)); echo "ok   - the delivery event stream opens as text/event-stream"
	else
		failed=$((failed + 1)); echo "FAIL - the delivery event stream: got $sse"
	fi
	req GET "/v1/deliveries?after=nonsense" "$key"
	check "a bad stream position is 400 naming after" 400 '.code == 3 and (.message | startswith("after: "))'
fi

if [ -n "$admin" ]; then
	req GET "/v1/admin/queues/$q" "$key"
	check "a send key cannot administer: 403" 403 '.code == 7'
	req GET "/v1/admin/queues/$q" "$admin"
	check "attributes show the two messages" 200 ".queue == \"$q\" and .messages == 2 and .totalSent == 2"
	req GET "/v1/admin/queues?prefix=$q&pageSize=100" "$admin"
	check "list by prefix finds the queue" 200 "(.queues | index(\"$q\")) != null"
	req POST "/v1/admin/queues" "$admin" "{\"queue\":\"$q-dlq\"}"
	check "create the dead-letter queue" 200 '. == {}'
	req POST "/v1/admin/queues" "$admin" "{\"queue\":\"$q-dlq\"}"
	check "create again is 409 ALREADY_EXISTS" 409 '.code == 6'
	req POST "/v1/queues/$q-dlq/messages" "$key" '{"message":"dead"}'
	req POST "/v1/admin/queues/$q/redrive" "$admin" '{}'
	check "redrive moves the dead letter back" 200 '.moved == 1 and .left == 0'
	req POST "/v1/admin/queues/$q/purge" "$admin"
	check "purge removes the three messages" 200 '.removed == 3'
	req DELETE "/v1/admin/queues/$q" "$admin"
	check "delete the queue" 200 '. == {}'
	req DELETE "/v1/admin/queues/$q-dlq" "$admin"
	req GET "/v1/admin/queues/$q" "$admin"
	check "a deleted queue is 404" 404 '.code == 5 and .message == "queue: not found"'
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
