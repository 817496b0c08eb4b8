package policy

import "testing"

func TestTrailerRoundTrip(t *testing.T) {
	e := &Embedded{Off: 8192, Len: 4096, ConfOff: 12288, ConfLen: 10}
	e.Sum[0] = 7
	size := uint64(12288 + 10 + TrailerLen)
	got, ok, err := ParseTrailer(e.Trailer(), size)
	if !ok || err != nil || got.Off != 8192 || got.Len != 4096 || got.ConfLen != 10 || got.Sum[0] != 7 {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	if _, ok, err := ParseTrailer(e.Trailer(), size+1); !ok || err == nil {
		t.Errorf("a trailer that does not fit the size was accepted")
	}
	if _, ok, _ := ParseTrailer(make([]byte, TrailerLen), size); ok {
		t.Errorf("zeros taken for a trailer")
	}
}

func FuzzTrailer(f *testing.F) {
	f.Add((&Embedded{Off: 4096, Len: 1, ConfOff: 4097, ConfLen: 0}).Trailer(), uint64(4097+TrailerLen))
	f.Fuzz(func(t *testing.T, b []byte, size uint64) {
		e, ok, err := ParseTrailer(b, size)
		if ok && err == nil && (e.Off+e.Len > size || e.ConfOff+e.ConfLen+TrailerLen != size) {
			t.Fatalf("accepted a trailer outside the file: %+v size %d", e, size)
		}
	})
}
