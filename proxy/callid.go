package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
)

// callIDs makes X-Call-Id values: UUID-shaped (version 4, as OpenFaaS's
// gateway sends), from a random prefix drawn once per process and a
// counter. A call ID names a call in logs; it is unique, not secret, so
// it need not cost a read of the system's random source per call.
type callIDs struct {
	prefix [8]byte
	n      atomic.Uint64
}

func newCallIDs() *callIDs {
	var b [16]byte
	rand.Read(b[:])
	g := &callIDs{}
	copy(g.prefix[:], b[:8])
	g.n.Store(binary.BigEndian.Uint64(b[8:]))
	return g
}

// callIDLen is the length of a call ID.
const callIDLen = 36

// append appends a new call ID to dst.
func (g *callIDs) append(dst []byte) []byte {
	var b [16]byte
	copy(b[:8], g.prefix[:])
	binary.BigEndian.PutUint64(b[8:], g.n.Add(1))
	b[6] = b[6]&0x0f | 0x40
	// The variant takes the counter's two top bits: it repeats after 2^62
	// calls.
	b[8] = b[8]&0x3f | 0x80
	var out [callIDLen]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return append(dst, out[:]...)
}
