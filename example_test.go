package fluxo_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors/group"
)

// A broker embedded in a Go program: create a topic, produce, fetch.
func ExampleStart() {
	dir, _ := os.MkdirTemp("", "fluxo-example-")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	broker, err := fluxo.Start(ctx, fluxo.WithDataDir(dir), fluxo.WithLogger(quiet()))
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	if _, err := broker.CreateTopic(ctx, "greetings", 1); err != nil {
		log.Fatal(err)
	}
	if _, err := broker.Produce(ctx, "greetings", 0,
		fluxo.Record{Key: []byte("pt"), Value: []byte("olá")},
		fluxo.Record{Key: []byte("es"), Value: []byte("hola")},
	); err != nil {
		log.Fatal(err)
	}
	res, err := broker.Fetch(ctx, "greetings", 0, 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.Records {
		fmt.Printf("%d %s=%s\n", r.Offset, r.Key, r.Value)
	}
	// Output:
	// 0 pt=olá
	// 1 es=hola
}

// A client in another process reaching a broker over protoactor remote.
func ExampleDial() {
	dir, _ := os.MkdirTemp("", "fluxo-example-")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Stands in for `fluxo serve --remote-listen 127.0.0.1:9093`.
	broker, err := fluxo.Start(ctx, fluxo.WithDataDir(dir), fluxo.WithRemoteListen("127.0.0.1:0"), fluxo.WithLogger(quiet()))
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	client, err := fluxo.Dial(ctx, broker.RemoteAddress())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	if _, err := client.CreateTopic(ctx, "events", 1); err != nil {
		log.Fatal(err)
	}
	off, err := client.Produce(ctx, "events", 0, fluxo.Record{Value: []byte("hello over remote")})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Fetch(ctx, "events", 0, off)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res.Records[0].Value), res.HighWatermark)
	// Output: hello over remote 1
}

// A consumer group's lag, from the Go API: here a simple commit through
// Kafka's OffsetCommit would do the same; the Node API commits directly.
func ExampleBroker_GroupLag() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "fluxo-example-*")
	defer os.RemoveAll(dir)
	b, err := fluxo.Start(ctx, fluxo.WithDataDir(dir), fluxo.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	b.CreateTopic(ctx, "orders", 1)
	for i := 0; i < 10; i++ {
		b.Produce(ctx, "orders", 0, fluxo.Record{Value: []byte("order")})
	}
	b.Node().CommitOffsets(ctx, "billing", &group.Commit{Generation: -1,
		Offsets: []group.CommitOffset{{TopicPartition: group.TopicPartition{Topic: "orders", Partition: 0}, Offset: 4, LeaderEpoch: -1}}})
	lags, _ := b.GroupLag("billing")
	for _, l := range lags {
		fmt.Printf("%s/%d committed %d of %d: lag %d\n", l.Topic, l.Partition, l.Committed, l.HighWatermark, l.Lag)
	}
	// Output: orders/0 committed 4 of 10: lag 6
}
