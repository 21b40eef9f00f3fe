package gateway

import (
	"context"
	"sync"
)

// produceGate orders the produce requests of one connection: each waits for
// the previous one to hand its batches to the partitions before handing over
// its own, so pipelined batches to a partition are appended in the order the
// client sent them, while their fsync waits still overlap.
type produceGate struct {
	prev <-chan struct{}
	done chan struct{}
	once sync.Once
}

type produceGateKey struct{}

// nextProduceGate chains a gate after the connection's last one. Called by
// the connection actor, in request order.
func (c *conn) nextProduceGate() *produceGate {
	g := &produceGate{prev: c.lastProduce, done: make(chan struct{})}
	c.lastProduce = g.done
	return g
}

func withProduceGate(ctx context.Context, g *produceGate) context.Context {
	return context.WithValue(ctx, produceGateKey{}, g)
}

// produceGateFrom returns the request's gate, or an open one (tests calling
// a handler directly).
func produceGateFrom(ctx context.Context) *produceGate {
	if g, ok := ctx.Value(produceGateKey{}).(*produceGate); ok {
		return g
	}
	return &produceGate{done: make(chan struct{})}
}

// waitTurn blocks until the previous produce request has submitted.
func (g *produceGate) waitTurn(ctx context.Context) {
	if g.prev == nil {
		return
	}
	select {
	case <-g.prev:
	case <-ctx.Done():
	}
}

// submitted lets the next produce request go; safe to call twice.
func (g *produceGate) submitted() { g.once.Do(func() { close(g.done) }) }
