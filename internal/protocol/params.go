package protocol

import "bytes"

// SplitParams splits a command line (without its trailing newline) on single
// spaces, appending the fields to dst[:0]. No trimming: two spaces yield an
// empty field, as in NSQ. The fields alias line.
func SplitParams(line []byte, dst [][]byte) [][]byte {
	dst = dst[:0]
	for {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}

// TrimLine strips the trailing "\n" and one optional "\r" before it.
func TrimLine(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'})
}

// ParseDigits parses a non-empty run of ASCII decimal digits (no sign) as
// NSQ's ByteToBase10 does; ok is false on any other byte or on overflow.
func ParseDigits(b []byte) (n uint64, ok bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
