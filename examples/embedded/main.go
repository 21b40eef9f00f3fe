// Command embedded runs a Fluxo broker inside a Go program, writes a few
// records and reads them back: the embeddable API end to end.
//
//	go run ./examples/embedded
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/fluxo-broker/fluxo"
)

func main() {
	dir, err := os.MkdirTemp("", "fluxo-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	broker, err := fluxo.Start(ctx, fluxo.WithDataDir(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	if _, err := broker.CreateTopic(ctx, "greetings", 2); err != nil {
		log.Fatal(err)
	}
	offset, err := broker.Produce(ctx, "greetings", 0,
		fluxo.Record{Key: []byte("pt"), Value: []byte("olá")},
		fluxo.Record{Key: []byte("es"), Value: []byte("hola")},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("written at offset", offset)

	res, err := broker.Fetch(ctx, "greetings", 0, 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.Records {
		fmt.Printf("%d %s=%s\n", r.Offset, r.Key, r.Value)
	}
}
