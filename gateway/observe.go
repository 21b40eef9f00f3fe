package gateway

import "time"

// Observer receives the gateway's request metrics (metrics.Metrics
// implements it). Calls come from many goroutines at once and must be cheap:
// one per request, and one per partition answered with an error.
type Observer interface {
	// Request counts one served request of the API key and its duration,
	// from decoding to the answer being ready (a fetch's long poll included).
	Request(key int16, took time.Duration)
	// ErrorCode counts one non-zero Kafka error code in a Produce (key 0) or
	// Fetch (key 1) answer: a partition's, or the request-wide one.
	ErrorCode(key int16, code int16)
}

// nopObserver is the Observer when Config.Observer is nil.
type nopObserver struct{}

func (nopObserver) Request(int16, time.Duration) {}
func (nopObserver) ErrorCode(int16, int16)       {}
