package testkit

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// brokerFaults are the faults a Cluster injects into one broker through its
// actors' receive middleware: isolation drops the broker's replication
// traffic (fetches it receives and answers it gets), and a pause holds a
// partition actor's messages until resumed.
type brokerFaults struct {
	isolated atomic.Bool
	mu       sync.Mutex
	paused   map[string]chan struct{} // actor id suffix -> closed on resume
}

func newBrokerFaults() *brokerFaults {
	return &brokerFaults{paused: map[string]chan struct{}{}}
}

func (f *brokerFaults) middleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		switch env.Message.(type) {
		case *fluxopb.ReplicaFetchRequest, *fluxopb.ReplicaFetchResponse:
			if f.isolated.Load() {
				return
			}
		case actor.SystemMessage, actor.AutoReceiveMessage:
			next(c, env)
			return
		}
		if gate := f.gate(c.Self().Id); gate != nil {
			<-gate
		}
		next(c, env)
	}
}

func (f *brokerFaults) gate(id string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	for suffix, ch := range f.paused {
		if strings.HasSuffix(id, suffix) {
			return ch
		}
	}
	return nil
}

func (f *brokerFaults) pause(suffix string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paused[suffix]; !ok {
		f.paused[suffix] = make(chan struct{})
	}
}

func (f *brokerFaults) resume(suffix string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.paused[suffix]; ok {
		close(ch)
		delete(f.paused, suffix)
	}
}

func (f *brokerFaults) resumeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for suffix, ch := range f.paused {
		close(ch)
		delete(f.paused, suffix)
	}
}
