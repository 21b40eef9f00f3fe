package history_test

import (
	"errors"
	"fmt"

	"github.com/fluxo-broker/fluxo/testkit/history"
)

func Example() {
	h := history.New()

	// A producer: one acknowledged send, and one whose ack was lost.
	id := h.Invoke(1, history.Op{Kind: history.Send, Topic: "orders", Partition: 0, Value: "v1"})
	h.Ok(id, history.Result{Offset: 0})
	id = h.Invoke(1, history.Op{Kind: history.Send, Topic: "orders", Partition: 0, Value: "v2"})
	h.Info(id, errors.New("request timed out"))

	// A consumer polling under assignment epoch 1.
	id = h.Invoke(2, history.Op{Kind: history.Poll, Topic: "orders", Partition: 0, Epoch: 1})
	h.Ok(id, history.Result{Records: []history.Record{{Offset: 0, Value: "v1"}}})

	// After healing, a fresh consumer drains the partition: the broker
	// lost the acknowledged v1 and kept v2 in its place.
	h.Drain("orders", 0, []history.Record{{Offset: 0, Value: "v2"}})

	rep := history.Check(h)
	fmt.Println("failures:", rep.Failures())
	fmt.Println("lost:", rep.Counts[history.Lost])
	fmt.Println("inconsistent-offsets:", rep.Counts[history.InconsistentOffsets])
	// Output:
	// failures: 2
	// lost: 1
	// inconsistent-offsets: 1
}
