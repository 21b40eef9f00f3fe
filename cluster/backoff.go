package cluster

import (
	"context"
	"math/rand/v2"
	"time"
)

// casBackoff sleeps a short jittered time before CAS retry number attempt
// (1-based), growing to a few milliseconds.
func casBackoff(ctx context.Context, attempt int) error {
	max := time.Duration(min(attempt, 8)) * 250 * time.Microsecond
	d := time.Duration(rand.Int64N(int64(max) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
