// Command ackprod produces the values "0", "1", "2", ... to one partition
// with acks=all and the idempotent producer (franz-go's defaults) for a
// while, and writes every value the brokers acknowledged to a file, one a
// line, in the order the acknowledgements arrived. .ci/cluster_smoke.sh
// kills a partition leader while it runs, then checks that every
// acknowledged value can be consumed.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "seed brokers, comma-separated")
	topic := flag.String("topic", "acks", "topic (must exist)")
	partition := flag.Int("partition", 0, "partition to produce to")
	duration := flag.Duration("duration", 10*time.Second, "how long to keep producing")
	rate := flag.Int("rate", 1000, "records per second, at most")
	flushTimeout := flag.Duration("flush-timeout", 20*time.Second, "how long to wait for outstanding records at the end")
	out := flag.String("out", "acked.txt", "file receiving the acknowledged values")
	flag.Parse()
	if err := run(*brokers, *topic, int32(*partition), *duration, *rate, *flushTimeout, *out); err != nil {
		fmt.Fprintln(os.Stderr, "ackprod:", err)
		os.Exit(1)
	}
}

func run(brokers, topic string, partition int32, duration time.Duration, rate int, flushTimeout time.Duration, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	var mu sync.Mutex // guards w and the error tally
	errs := map[string]int{}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	var produced, acked, failed atomic.Int64
	start := time.Now()
	interval := time.Second / time.Duration(max(rate, 1))
	next := start
	for i := 0; time.Since(start) < duration; i++ {
		r := &kgo.Record{Partition: partition, Value: []byte(strconv.Itoa(i))}
		produced.Add(1)
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed.Add(1)
				errs[err.Error()]++
				return
			}
			acked.Add(1)
			w.Write(r.Value)
			w.WriteByte('\n')
			w.Flush() // the smoke test reads the file while we run
		})
		if next = next.Add(interval); time.Until(next) > 0 {
			time.Sleep(time.Until(next))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	flushErr := cl.Flush(ctx)
	if flushErr != nil {
		// Whatever is still outstanding was not acknowledged: drop it
		// (its callbacks report the purge as a failure).
		cl.PurgeTopicsFromClient(topic)
	}
	mu.Lock()
	defer mu.Unlock()
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("ackprod: produced %d, acked %d, failed %d in %s\n", produced.Load(), acked.Load(), failed.Load(), time.Since(start).Round(time.Millisecond))
	for e, n := range errs {
		fmt.Printf("ackprod: %d failed: %s\n", n, e)
	}
	if flushErr != nil {
		fmt.Printf("ackprod: flush: %v\n", flushErr)
	}
	return nil
}
