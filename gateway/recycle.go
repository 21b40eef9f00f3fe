package gateway

import "context"

// bodyRecycle is a produce frame's permission to hand its body back to
// bufpool once the handler returns. The decoded request aliases the body
// (record batches are not copied) and a partition actor reads the batch when
// it gets to it, so only the handler knows when nothing refers to the body
// any more: every partition it sent a batch to has answered. A body whose
// batch may still sit in a mailbox (a timeout, acks=0) is left to the
// collector.
type bodyRecycle struct{ ok bool }

type bodyRecycleKey struct{}

func withBodyRecycle(ctx context.Context, r *bodyRecycle) context.Context {
	return context.WithValue(ctx, bodyRecycleKey{}, r)
}

// allowRecycle lets the request's body go back to the pool after the handler
// returns. Called by the handler's goroutine only.
func allowRecycle(ctx context.Context) {
	if r, ok := ctx.Value(bodyRecycleKey{}).(*bodyRecycle); ok {
		r.ok = true
	}
}
