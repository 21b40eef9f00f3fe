// Package testkit helps tests, ours and users', put Fluxo under faults: inject
// panics into actors, start brokers on temporary directories, and simulate
// crashes that drop unsynced data. Production code never imports it.
package testkit

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// PanicInjector is a receive middleware that panics inside a chosen actor when
// it receives a chosen message, as if the actor had a bug. Arm it, and the
// next matching message (up to the armed count) panics before the actor sees
// it; the supervisor then restarts the actor.
type PanicInjector struct {
	mu       sync.Mutex
	rules    []*panicRule
	injected atomic.Int64
}

type panicRule struct {
	actorSuffix string
	match       func(msg any) bool
	remaining   int
}

// PanicValue is what an injected panic panics with.
type PanicValue struct{ Actor string }

func (p PanicValue) String() string { return "testkit: injected panic in " + p.Actor }

// Arm makes the next times messages matching match, received by an actor
// whose id ends with actorSuffix ("" for any), panic.
func (p *PanicInjector) Arm(actorSuffix string, times int, match func(msg any) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &panicRule{actorSuffix: actorSuffix, match: match, remaining: times})
}

// Disarm removes every rule.
func (p *PanicInjector) Disarm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Injected counts the panics injected so far.
func (p *PanicInjector) Injected() int64 { return p.injected.Load() }

// Middleware is the receive middleware to install on the actors (for a
// broker: fluxo.WithActorMiddleware(inj.Middleware)).
func (p *PanicInjector) Middleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		if p.shouldPanic(c.Self().Id, env.Message) {
			p.injected.Add(1)
			panic(PanicValue{Actor: c.Self().Id})
		}
		next(c, env)
	}
}

func (p *PanicInjector) shouldPanic(id string, msg any) bool {
	switch msg.(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return false // lifecycle messages are not requests
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if r.remaining <= 0 || !strings.HasSuffix(id, r.actorSuffix) || (r.match != nil && !r.match(msg)) {
			continue
		}
		r.remaining--
		if r.remaining == 0 {
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
		}
		return true
	}
	return false
}

// MessageOf matches messages of the same type as example.
func MessageOf[T any]() func(any) bool {
	return func(m any) bool { _, ok := m.(T); return ok }
}
