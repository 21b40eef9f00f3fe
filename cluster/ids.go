package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// producerIDKey holds the next producer id not yet handed out, in decimal.
const producerIDKey = "producer_ids.next"

// AllocateProducerIDBlock durably reserves size consecutive producer ids and
// returns the first. The counter key is advanced with a compare-and-set, so
// no id is handed out twice, by any broker, across restarts (ids of a block
// that was reserved but not used are skipped, never reused). Ids start at 0.
func (s *Store) AllocateProducerIDBlock(ctx context.Context, size int64) (int64, error) {
	const op = "allocate producer id block"
	if size <= 0 {
		return 0, opError(op, fmt.Errorf("block size %d must be positive", size))
	}
	var lastErr error
	for attempt := range maxCASAttempts {
		if attempt > 0 {
			if err := casBackoff(ctx, attempt); err != nil {
				return 0, opError(op, err)
			}
		}
		var next int64
		var rev uint64
		e, err := s.readLatest(ctx, producerIDKey)
		switch {
		case errors.Is(err, errNoKey):
		case err != nil:
			return 0, opError(op, err)
		case e.deleted:
			rev = e.revision
		default:
			next, err = strconv.ParseInt(string(e.value), 10, 64)
			if err != nil || next < 0 {
				return 0, opError(op, fmt.Errorf("corrupt counter %q at %s", e.value, producerIDKey))
			}
			rev = e.revision
		}
		if next > math.MaxInt64-size {
			return 0, opError(op, fmt.Errorf("producer ids exhausted (next %d, size %d)", next, size))
		}
		_, err = s.update(ctx, producerIDKey, []byte(strconv.FormatInt(next+size, 10)), rev)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, ErrConflict) {
			return 0, opError(op, err)
		}
		lastErr = err
	}
	return 0, opError(op, lastErr)
}

// ProducerIDBlockAllocator reserves blocks of producer ids; *Store is one.
type ProducerIDBlockAllocator interface {
	AllocateProducerIDBlock(ctx context.Context, size int64) (first int64, err error)
}

// DefaultProducerIDBlockSize is Kafka's producer id block size.
const DefaultProducerIDBlockSize = 1000

// ProducerIDs hands out producer ids one at a time from blocks reserved with
// an allocator, reserving the next block when one runs out. It is safe for
// concurrent use.
type ProducerIDs struct {
	alloc     ProducerIDBlockAllocator
	blockSize int64

	mu   sync.Mutex
	next int64 // next id to hand out
	end  int64 // end of the current block (exclusive); next==end: empty
}

// NewProducerIDs returns a ProducerIDs reserving blockSize ids at a time
// (DefaultProducerIDBlockSize if blockSize <= 0).
func NewProducerIDs(alloc ProducerIDBlockAllocator, blockSize int64) *ProducerIDs {
	if blockSize <= 0 {
		blockSize = DefaultProducerIDBlockSize
	}
	return &ProducerIDs{alloc: alloc, blockSize: blockSize}
}

// Next returns a producer id never returned before by any ProducerIDs using
// the same store.
func (p *ProducerIDs) Next(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == p.end {
		first, err := p.alloc.AllocateProducerIDBlock(ctx, p.blockSize)
		if err != nil {
			return 0, err
		}
		p.next, p.end = first, first+p.blockSize
	}
	id := p.next
	p.next++
	return id, nil
}
