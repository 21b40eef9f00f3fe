package gateway

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one decoded request. A nil response with a nil error
// means no answer is sent (produce with acks=0). An error closes the
// connection: it is for malformed requests, never for per-partition errors,
// which go in the response as Kafka error codes.
type handlerFunc func(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error)

// apiHandler is one Kafka API key and the versions we serve of it.
type apiHandler struct {
	key        int16
	minVersion int16
	maxVersion int16
	serve      handlerFunc
}

// handlers is the registry of served APIs. Each API key has its own file
// (NN_name.go) that registers itself in init, opening with a comment of the
// versions served and what is deliberately skipped. ApiVersions is derived
// from this table, so what we advertise is exactly what we serve.
var handlers = map[int16]apiHandler{}

func register(key, minVersion, maxVersion int16, serve handlerFunc) {
	if _, dup := handlers[key]; dup {
		panic("gateway: API key registered twice: " + kmsg.NameForKey(key))
	}
	handlers[key] = apiHandler{key: key, minVersion: minVersion, maxVersion: maxVersion, serve: serve}
}

// servedAPIs lists the registry sorted by key.
func servedAPIs() []apiHandler {
	out := make([]apiHandler, 0, len(handlers))
	for _, h := range handlers {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}
