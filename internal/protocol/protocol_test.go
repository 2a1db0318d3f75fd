package protocol

import (
	"bytes"
	"strings"
	"testing"
)

func TestIsValidName(t *testing.T) {
	cases := []struct {
		name string
		want bool
	}{
		{"a-b_c.d", true}, {".", true}, {"..", true},
		{strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), false},
		{strings.Repeat("a", 54) + "#ephemeral", true},
		{strings.Repeat("a", 55) + "#ephemeral", false},
		{"#ephemeral", false}, {"a#ephemeral#ephemeral", false},
		{"", false}, {"ü", false}, {"a*", false}, {"a b", false}, {"a:b", false},
	}
	for _, c := range cases {
		if got := IsValidName(c.name); got != c.want {
			t.Errorf("IsValidName(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSplitParams(t *testing.T) {
	cases := []struct {
		line string
		want []string
	}{
		{"PUB t", []string{"PUB", "t"}},
		{"PUB  t", []string{"PUB", "", "t"}},
		{"NOP", []string{"NOP"}},
		{"", []string{""}},
		{"SUB t c ", []string{"SUB", "t", "c", ""}},
	}
	for _, c := range cases {
		got := SplitParams([]byte(c.line), nil)
		var gs []string
		for _, g := range got {
			gs = append(gs, string(g))
		}
		if strings.Join(gs, "|") != strings.Join(c.want, "|") || len(gs) != len(c.want) {
			t.Errorf("SplitParams(%q) = %q, want %q", c.line, gs, c.want)
		}
	}
}

func TestParseDigits(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "2500": 2500, "18446744073709551": 18446744073709551} {
		if got, ok := ParseDigits([]byte(in)); !ok || got != want {
			t.Errorf("ParseDigits(%q) = %d, %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "+1", "1a", " 1", "99999999999999999999"} {
		if _, ok := ParseDigits([]byte(in)); ok {
			t.Errorf("ParseDigits(%q) ok, want failure", in)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	got := AppendFrame(nil, FrameTypeResponse, OK)
	want := []byte{0, 0, 0, 6, 0, 0, 0, 0, 'O', 'K'}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendFrame(OK) = %x, want %x", got, want)
	}
	var buf bytes.Buffer
	WriteFrame(&buf, FrameTypeResponse, OK)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteFrame(OK) = %x, want %x", buf.Bytes(), want)
	}
}

func TestTrimLine(t *testing.T) {
	for in, want := range map[string]string{"NOP\n": "NOP", "NOP\r\n": "NOP", "NOP\r\r\n": "NOP\r", "NOP": "NOP"} {
		if got := string(TrimLine([]byte(in))); got != want {
			t.Errorf("TrimLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSplitParams(f *testing.F) {
	for _, s := range []string{"PUB t", "SUB a b", "  ", "REQ 0123456789abcdef 100"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		params := SplitParams(line, nil)
		if got := bytes.Join(params, []byte{' '}); !bytes.Equal(got, line) {
			t.Fatalf("join(SplitParams(%q)) = %q", line, got)
		}
		for _, p := range params {
			IsValidName(string(p))
			ParseDigits(p)
		}
	})
}
