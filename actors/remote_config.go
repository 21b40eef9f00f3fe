package actors

import (
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// remoteMaxMessageBytes bounds one gRPC message under protoactor remote. A
// replica fetch answer carries up to replicaFetchMaxBytes of records and
// the endpoint writer batches several messages into one gRPC message, so
// the limit must be well above gRPC's 4 MiB default: a message over it is
// refused, the connection dropped, and the fetch re-sent only after its
// timeout.
const remoteMaxMessageBytes = 64 << 20

// RemoteConfig is the protoactor remote configuration of a node's (or a Go
// client's) endpoint on host:port.
func RemoteConfig(host string, port int) *remote.Config {
	return remote.Configure(host, port,
		remote.WithServerOptions(
			grpc.MaxRecvMsgSize(remoteMaxMessageBytes),
			grpc.MaxSendMsgSize(remoteMaxMessageBytes),
		),
		remote.WithDialOptions(
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(
				grpc.MaxCallRecvMsgSize(remoteMaxMessageBytes),
				grpc.MaxCallSendMsgSize(remoteMaxMessageBytes),
			),
		),
	)
}
