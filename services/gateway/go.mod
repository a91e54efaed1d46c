module github.com/wsmq/wsmq/services/gateway

go 1.26.0

replace (
	github.com/wsmq/wsmq/gen => ../../gen
	github.com/wsmq/wsmq/pkg => ../../pkg
)
