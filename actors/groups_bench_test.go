package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/fluxo-broker/fluxo/actors/group"
	"github.com/fluxo-broker/fluxo/testkit"
)

// BenchmarkGroupCommits: offset commits (each journaled and fsynced before
// its answer) from G groups at once; ns/op is per commit.
func BenchmarkGroupCommits(b *testing.B) {
	for _, groups := range []int{1, 8} {
		b.Run(fmt.Sprintf("groups-%d", groups), func(b *testing.B) {
			br := testkit.StartBroker(b)
			ctx := context.Background()
			if _, err := br.CreateTopic(ctx, "t", 1); err != nil {
				b.Fatal(err)
			}
			n := br.Node()
			tp := group.TopicPartition{Topic: "t", Partition: 0}
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := 0; g < groups; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < b.N; i += groups {
						res, err := n.CommitOffsets(ctx, fmt.Sprint("g", g), &group.Commit{Generation: -1,
							Offsets: []group.CommitOffset{{TopicPartition: tp, Offset: int64(i), LeaderEpoch: -1}}})
						if err != nil || res.Errs[0] != nil {
							b.Error(err, res)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
