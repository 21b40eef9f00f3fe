// Package bufpool recycles the large byte slices of the read path and of
// produce requests: a fetch reads up to a partition's max bytes from a
// segment, and a produce frame carries up to a batch per partition; at
// hundreds of MB/s allocating (and zeroing, and faulting in) those slices
// costs more than the read itself.
//
// Slices come in power-of-two classes from 4 KiB to 16 MiB. Get returns a
// slice of the asked length whose contents are undefined; Put hands one back
// once nothing refers to it any more. Putting is optional (an unreturned slice
// is simply collected), so only the code that knows a slice's whole lifetime
// (the gateway, after writing an answer) returns it.
package bufpool

import (
	"math/bits"
	"sync"
	"unsafe"
)

const (
	minShift = 12 // 4 KiB
	maxShift = 24 // 16 MiB
)

// pools hold the first byte of each free slice: the class gives the
// capacity back, and a *byte goes into an interface without allocating
// (a *[]byte made at Put would cost an allocation per Put).
var pools [maxShift - minShift + 1]sync.Pool

// class is the index of the smallest class holding n bytes, or -1 if n is
// larger than every class.
func class(n int) int {
	if n <= 1<<minShift {
		return 0
	}
	s := bits.Len(uint(n - 1))
	if s > maxShift {
		return -1
	}
	return s - minShift
}

// Get returns a slice of length n, pooled when n fits a class.
func Get(n int) []byte {
	c := class(n)
	if c < 0 {
		return make([]byte, n)
	}
	if p, ok := pools[c].Get().(*byte); ok {
		return unsafe.Slice(p, 1<<(c+minShift))[:n]
	}
	return make([]byte, n, 1<<(c+minShift))
}

// Put returns b to its class. Slices not made by Get (a capacity that is not
// exactly a class size) are ignored, so a caller may Put whatever it got.
func Put(b []byte) {
	c := cap(b)
	if c < 1<<minShift || c > 1<<maxShift || c&(c-1) != 0 {
		return
	}
	pools[bits.Len(uint(c))-1-minShift].Put(unsafe.SliceData(b))
}
