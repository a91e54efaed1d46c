module github.com/wsmq/wsmq/tools

go 1.26.0

replace (
	github.com/wsmq/wsmq/gen => ../gen
	github.com/wsmq/wsmq/pkg => ../pkg
	github.com/wsmq/wsmq/services/publisher => ../services/publisher
)
