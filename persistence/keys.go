package persistence

import (
	"encoding/binary"
	"math"
)

// Key type prefixes of the Pebble keyspace. See the package comment.
const (
	kindEvent    byte = 0x01 // evt/<partition>/<base offset>
	kindTime     byte = 0x02 // ts/<partition>/<max timestamp><base offset>
	kindState    byte = 0x03 // state/<partition>
	kindJournal  byte = 0x04 // jrnl/<actor>/<seq>
	kindSnapshot byte = 0x05 // snap/<actor>
)

// partitionPrefix is kind | uint16 len(topic) | topic | uint32 partition.
func partitionPrefix(kind byte, id PartitionID) []byte {
	b := make([]byte, 0, 1+2+len(id.Topic)+4+16)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id.Topic)))
	b = append(b, id.Topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(id.Partition))
	return b
}

func eventKey(id PartitionID, base int64) []byte {
	return binary.BigEndian.AppendUint64(partitionPrefix(kindEvent, id), uint64(base))
}

// offsetOfEventKey returns the base offset encoded at the end of an event key.
func offsetOfEventKey(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[len(k)-8:]))
}

// sortableTS maps a signed timestamp to an unsigned value with the same order.
func sortableTS(ts int64) uint64 { return uint64(ts) ^ (1 << 63) }

func timeKey(id PartitionID, ts, base int64) []byte {
	b := binary.BigEndian.AppendUint64(partitionPrefix(kindTime, id), sortableTS(ts))
	return binary.BigEndian.AppendUint64(b, uint64(base))
}

// timeKeyFloor is the smallest time key with timestamp ts.
func timeKeyFloor(id PartitionID, ts int64) []byte {
	if ts == math.MaxInt64 {
		return prefixEnd(partitionPrefix(kindTime, id))
	}
	return binary.BigEndian.AppendUint64(partitionPrefix(kindTime, id), sortableTS(ts))
}

// decodeTimeKey returns the timestamp and base offset of a time key.
func decodeTimeKey(k []byte) (ts, base int64) {
	n := len(k)
	return int64(binary.BigEndian.Uint64(k[n-16:]) ^ (1 << 63)), int64(binary.BigEndian.Uint64(k[n-8:]))
}

func stateKey(id PartitionID) []byte { return partitionPrefix(kindState, id) }

func actorPrefix(kind byte, actor string) []byte {
	b := make([]byte, 0, 1+2+len(actor)+8)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(actor)))
	return append(b, actor...)
}

func journalKey(actor string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(actorPrefix(kindJournal, actor), seq)
}

func seqOfJournalKey(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }

func snapshotKey(actor string) []byte { return actorPrefix(kindSnapshot, actor) }

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}
