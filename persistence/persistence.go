// Package persistence stores a node's data: record bytes in per-partition
// segment files, and everything else (batch index events, timestamp index,
// partition checkpoints, actor journals and snapshots) in one Pebble DB.
//
// It knows nothing about actors or the Kafka protocol beyond the v2 record
// batch format it stores. All file I/O goes through Pebble's vfs.FS so tests
// can simulate a crash that drops unsynced data (vfs.NewCrashableMem +
// CrashClone).
//
// Layout under Options.Dir:
//
//	log/<topic>-<partition>/<base offset, 20 digits>.seg   record batches
//	pebble/                                                 the node's Pebble DB
//
// Segment files hold Kafka v2 record batches back to back, exactly as
// received except base offset and partition leader epoch (rewritten in place,
// outside the CRC). Each is preallocated to SegmentBytes (fallocate mode 0 on
// Linux, so fdatasync needs no size update); the valid end is found by
// scanning batches: a zero or invalid header, a CRC mismatch or a base offset
// other than the next expected one ends the data. A segment rolls when the
// next batch would not fit; truncation and recovery zero the cut tail.
//
// Pebble keys are binary: a kind byte, then for partitions a big-endian
// uint16 topic length, the topic and a big-endian uint32 partition, for actors
// a uint16 length and the actor name; offsets and sequences are big-endian
// uint64 so keys sort numerically:
//
//	0x01 evt   <partition><base offset>          -> BatchAppended
//	0x02 ts    <partition><max ts ^ 1<<63><base> -> base offset (uint64); only
//	           when a batch raises the running max, so the index is monotonic
//	           in timestamp and offset alike
//	0x03 state <partition>                       -> PartitionCheckpoint
//	0x04 jrnl  <actor><seq>                      -> JournalEvent (seq 0 holds
//	           the sequence deleted up to, so numbers are never reused)
//	0x05 snap  <actor>                           -> Snapshot
//
// Durability: Append writes the batch and, in one Pebble batch without sync,
// its event, time key and the checkpoint. Sync joins the group commit of
// each segment written since the previous Sync (sync.go): a Sync arriving
// while the segment's fdatasync runs is served by the next one, and segments
// of different partitions sync concurrently; a failed sync fails the log for
// good. Truncate and AdvanceStart sync their segment
// changes first and then commit the index with a sync. Recovery
// (OpenPartition) checks the last event against its segment, drops events
// the segments do not back, re-creates events for valid batches past it and
// cuts the torn tail; it reads only the tail.
//
// Segments().MaxTimestamp is the log's running max timestamp at the end of
// the segment (an upper bound of the segment's own, and monotonic).
//
// The contract the partition actor relies on is the Log interface below.
package persistence

import (
	"errors"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// PartitionID names one partition of one topic.
type PartitionID struct {
	Topic     string
	Partition int32
}

// SyncPolicy says when appended data becomes durable.
type SyncPolicy int

const (
	// SyncAlways fdatasyncs segments before Sync reports success, with group
	// commit: the Syncs that arrive while a segment's fdatasync runs share the
	// next one, and partitions sync concurrently. The default.
	SyncAlways SyncPolicy = iota
	// SyncNever leaves flushing to the OS: Sync reports success at once. For
	// benchmarks, and for replicated clusters where replication is durability.
	SyncNever
)

// Options configure a Store. The zero value of each field takes the default
// named in its comment.
type Options struct {
	// Dir is the data directory. Required.
	Dir string
	// FS is the file system for everything, segments and Pebble alike.
	// Default vfs.Default.
	FS vfs.FS
	// Sync is the durability policy. Default SyncAlways.
	Sync SyncPolicy
	// SegmentBytes is the size at which a segment rolls, and the size
	// preallocated for it. Default 128 MiB.
	SegmentBytes int64
	// Logger receives recovery and retention notes. Default slog.Default().
	Logger *slog.Logger
}

// Errors with meaning to callers. Wrapped errors keep them visible to errors.Is.
var (
	// ErrOffsetOutOfRange: the offset is below the log start or past the log end.
	ErrOffsetOutOfRange = errors.New("persistence: offset out of range")
	// ErrCorruptBatch: a batch failed its CRC32C or header checks on append.
	ErrCorruptBatch = errors.New("persistence: corrupt record batch")
	// ErrClosed: the log or store is closed.
	ErrClosed = errors.New("persistence: closed")
	// ErrNotFound: no such partition, snapshot or timestamp.
	ErrNotFound = errors.New("persistence: not found")
)

// SegmentInfo describes one segment file, for retention decisions.
type SegmentInfo struct {
	BaseOffset   int64 // first offset the segment may hold
	NextOffset   int64 // one past its last offset (== BaseOffset when empty)
	Bytes        int64 // bytes of batches written (not the preallocated size)
	MaxTimestamp int64 // largest batch max timestamp, -1 when empty
	Active       bool  // the segment appends go to
}

// Log is the log store of one partition.
//
// Append, Truncate, AdvanceStart and Close are called from one goroutine (the
// partition actor). Read, FindBatch, OffsetForTimestamp, Segments and the
// accessors are safe from any goroutine concurrently with them: fetches read
// segments outside the actor's mailbox.
type Log interface {
	// Append checks the single v2 batch's CRC32C and header (ErrCorruptBatch),
	// rewrites its base offset and partition leader epoch in place, writes it to
	// the active segment (rolling when full), and records its BatchAppended event
	// and the checkpoint cp in Pebble in one batch, without a sync of its own.
	// cp is the caller's state after this batch (see ApplyBatch). The returned
	// event is what was recorded. Durability comes from Sync.
	Append(batch []byte, baseOffset int64, leaderEpoch int32, cp *fluxopb.PartitionCheckpoint) (*fluxopb.BatchAppended, error)

	// AppendChecked is Append for a batch whose CRC32C and header the caller
	// has already checked (recordbatch.Check): the partition core checks
	// every batch before deciding on it, and checksumming it again here was
	// a second pass over every byte produced.
	AppendChecked(batch recordbatch.Checked, baseOffset int64, leaderEpoch int32, cp *fluxopb.PartitionCheckpoint) (*fluxopb.BatchAppended, error)

	// Sync calls done, from another goroutine, once everything appended before
	// the call is durable under the store's SyncPolicy, or with the error that
	// prevented it. Rounds are shared across partitions (group commit).
	Sync(done func(error))

	// Read returns whole batches starting with the one that holds offset, up to
	// maxBytes (but always at least one batch, as KIP-74 requires), never
	// including a batch whose last offset is >= upTo. An offset below the log
	// start or past the log end is ErrOffsetOutOfRange; offset == upTo or
	// == log end returns no bytes and no error. The slice comes from
	// internal/bufpool: a caller that knows when it is done with it may Put it
	// back.
	Read(offset int64, maxBytes int, upTo int64) ([]byte, error)

	// FindBatch returns the event of the batch holding offset.
	FindBatch(offset int64) (*fluxopb.BatchAppended, error)

	// OffsetForTimestamp returns the first batch whose max timestamp is >= ts
	// (its base offset and max timestamp), or ErrNotFound.
	OffsetForTimestamp(ts int64) (offset int64, timestamp int64, err error)

	// Truncate removes every batch whose base offset is >= endOffset; a batch
	// straddling endOffset goes too. It returns the checkpoint rebuilt for the
	// remaining log (producer state and epochs included).
	Truncate(endOffset int64) (*fluxopb.PartitionCheckpoint, error)

	// AdvanceStart raises the log start offset to offset (<= log end), records it,
	// and deletes the segments that lie wholly below it (rolling the active
	// segment first when all of it is below). It returns the new checkpoint.
	AdvanceStart(offset int64) (*fluxopb.PartitionCheckpoint, error)

	// Checkpoint is the state recovered at open, or the last one written.
	Checkpoint() *fluxopb.PartitionCheckpoint

	LogStart() int64
	LogEnd() int64
	// Size is the bytes held in segments.
	Size() int64
	Segments() []SegmentInfo

	// Close syncs and closes the segment files. The Store stays open.
	Close() error
}

// The Store type (store.go) is the node's storage:
//
//	func Open(opts Options) (*Store, error)
//	func (s *Store) OpenPartition(id PartitionID) (Log, error) // recovers the tail
//	func (s *Store) DeletePartition(id PartitionID) error     // segments + keys
//	func (s *Store) Partitions() ([]PartitionID, error)       // found on disk
//	func (s *Store) Journal() *Journal
//	func (s *Store) Close() error
