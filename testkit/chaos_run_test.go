package testkit_test

import (
	"flag"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo/testkit"
)

var (
	chaosSeed     = flag.Uint64("chaos.seed", 0, "seed of the chaos schedule (0: derived from the clock, printed)")
	chaosDuration = flag.Duration("chaos.duration", 30*time.Second, "how long TestClusterChaos injects faults (task chaos: 2m; task soak: longer)")
)

// TestClusterChaos runs the chaos scheduler (testkit.RunChaos) on a
// 3-broker cluster for -chaos.duration and fails on any checker finding,
// printing the seed (rerun with -chaos.seed to replay the schedule) and
// the offending operations.
func TestClusterChaos(t *testing.T) {
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rep := testkit.RunChaos(t, testkit.ChaosConfig{Seed: seed, Duration: *chaosDuration})
	t.Logf("\n%s", rep.Table())
	if rep.Acked == 0 {
		t.Fatalf("seed %d: nothing was acknowledged", seed)
	}
	if rep.Failures() > 0 {
		t.Fatalf("seed %d: %d checker findings (replay with -chaos.seed=%d)", seed, rep.Failures(), seed)
	}
}
