package nsqlookupd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

func frameIdentify(body string) string {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	return "IDENTIFY\n" + string(hdr[:]) + body
}

// FuzzLookupCommand feeds a byte stream, as it would follow the "  V1" magic,
// to a V1 connection: command lines, IDENTIFY bodies and all. Whatever the
// bytes, the connection must not panic, must answer with well-formed
// responses (the last one an E_ error if a command failed), must not answer
// more than it was asked, and must leave no registration behind.
func FuzzLookupCommand(f *testing.F) {
	id := frameIdentify(`{"broadcast_address":"127.0.0.1","hostname":"vm","http_port":4151,"tcp_port":4150,"version":"1.3.0"}`)
	for _, s := range []string{
		"PING\n",
		"  PING  \r\n",
		"\n",
		"FOO\n",
		"REGISTER t\n",
		id,
		id + "REGISTER t c\nREGISTER t#ephemeral c#ephemeral\nPING\nUNREGISTER t c\nUNREGISTER t\n",
		id + "REGISTER\n",
		id + "REGISTER bad*t\n",
		id + "REGISTER t b*d\n",
		id + "REGISTER  c\n",
		id + "IDENTIFY\n",
		id + "UNREGISTER t#ephemeral\n",
		"IDENTIFY\n\xff\xff\xff\xff",
		"IDENTIFY\n\x7f\xff\xff\xff{}",
		"IDENTIFY\n\x00\x00\x00\x02{}",
		"IDENTIFY\n\x00\x00",
		frameIdentify(`{"broadcast_address":"a","tcp_port":1,"http_port":2}`),
		frameIdentify(`{"tcp_port":"1"}`),
		"REGISTER " + strings.Repeat("x", 2000) + "\nPING\n",
	} {
		f.Add([]byte(s))
	}
	identity := []byte(`{"identity":true}`)
	f.Fuzz(func(t *testing.T, stream []byte) {
		l := &NSQLookupd{
			db:               newRegistrationDB(time.Minute, time.Minute),
			logger:           slog.New(slog.DiscardHandler),
			identifyResponse: identity,
		}
		var out bytes.Buffer
		err := l.newLookupConn("127.0.0.1:1", bytes.NewReader(stream), &out).serve()

		perr, _ := errors.AsType[*protocol.Error](err)
		if perr == nil && !errors.Is(err, io.EOF) {
			t.Fatalf("serve() = %v, want io.EOF or a protocol error", err)
		}
		var responses []string
		for b := out.Bytes(); len(b) > 0; {
			if len(b) < 4 || uint32(len(b)-4) < binary.BigEndian.Uint32(b) {
				t.Fatalf("malformed response stream %q", out.Bytes())
			}
			n := binary.BigEndian.Uint32(b)
			responses = append(responses, string(b[4:4+n]))
			b = b[4+n:]
		}
		if max := bytes.Count(stream, []byte{'\n'}); len(responses) > max {
			t.Fatalf("%d responses to %d lines", len(responses), max)
		}
		for i, r := range responses {
			last := i == len(responses)-1
			switch {
			case r == "OK" || r == string(identity):
			case last && perr != nil && r == perr.Error() && strings.HasPrefix(r, "E_") && perr.Fatal:
				if len(r) > maxLineLength+100 {
					t.Fatalf("error response of %d bytes", len(r))
				}
			default:
				t.Fatalf("response %d of %d = %.100q (serve error %v)", i, len(responses), r, err)
			}
		}
		if perr != nil && (len(responses) == 0 || responses[len(responses)-1] != perr.Error()) {
			t.Fatalf("protocol error %q was not sent", perr.Error())
		}
		if d := l.db.debug(); len(d) != 0 {
			t.Fatalf("registrations left after the connection ended: %v", d)
		}
		for _, name := range l.db.topicNames() {
			if !protocol.IsValidTopicName(name) || protocol.IsEphemeral(name) {
				t.Fatalf("topic key %q left behind", name)
			}
			for _, ch := range l.db.channelNames(name) {
				if !protocol.IsValidChannelName(ch) || protocol.IsEphemeral(ch) {
					t.Fatalf("channel key %q:%q left behind", name, ch)
				}
			}
		}
	})
}

// topicChannel is the parameter parser behind REGISTER and UNREGISTER.
func TestTopicChannel(t *testing.T) {
	tests := []struct {
		params         []string
		topic, channel string
		err            string
	}{
		{nil, "", "", "E_INVALID REGISTER insufficient number of params"},
		{[]string{"t"}, "t", "", ""},
		{[]string{"t", "c"}, "t", "c", ""},
		{[]string{"t", ""}, "t", "", ""},
		{[]string{"t", "c", "x"}, "t", "c", ""},
		{[]string{"t#ephemeral", "c#ephemeral"}, "t#ephemeral", "c#ephemeral", ""},
		{[]string{""}, "", "", "E_BAD_TOPIC REGISTER topic name '' is not valid"},
		{[]string{"a:b", "c"}, "", "", "E_BAD_TOPIC REGISTER topic name 'a:b' is not valid"},
		{[]string{"t", "c*"}, "", "", "E_BAD_CHANNEL REGISTER channel name 'c*' is not valid"},
		{[]string{strings.Repeat("t", 65)}, "", "", "E_BAD_TOPIC REGISTER topic name '" + strings.Repeat("t", 65) + "' is not valid"},
	}
	for _, tc := range tests {
		var params [][]byte
		for _, p := range tc.params {
			params = append(params, []byte(p))
		}
		topic, channel, err := topicChannel("REGISTER", params)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if topic != tc.topic || channel != tc.channel || gotErr != tc.err {
			t.Errorf("topicChannel(%q) = %q, %q, %q, want %q, %q, %q", tc.params, topic, channel, gotErr, tc.topic, tc.channel, tc.err)
		}
	}
}
