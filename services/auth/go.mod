module github.com/wsmq/wsmq/services/auth

go 1.26.0

replace (
	github.com/wsmq/wsmq/gen => ../../gen
	github.com/wsmq/wsmq/pkg => ../../pkg
)

require (
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/wsmq/wsmq/gen v0.0.0-00010101000000-000000000000 // indirect
	github.com/wsmq/wsmq/pkg v0.0.0-00010101000000-000000000000 // indirect
	go.mongodb.org/mongo-driver/v2 v2.10.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/term v0.48.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
