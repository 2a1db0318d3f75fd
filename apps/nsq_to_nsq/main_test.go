package main

import (
	"strings"
	"testing"
)

func TestJSONFilter(t *testing.T) {
	tests := []struct {
		name         string
		field, value string
		whitelist    []string
		in           string
		want         string // "" when dropped
		verdict      int
	}{
		// As captured from NSQ 1.3's nsq_to_nsq.
		{"capture pass", "b", "1", []string{"a"}, `{"a":1,"b":1,"c":3}`, `{"a":1}`, pass},
		{"capture other value", "b", "1", []string{"a"}, `{"a":2,"b":2}`, "", dropValue},
		{"capture not json", "b", "1", []string{"a"}, `notjson`, "", dropNotJSON},
		{"capture string value", "b", "1", []string{"a"}, `{"a":3.5,"b":"1"}`, `{"a":3.5}`, pass},
		{"missing field with value", "b", "1", []string{"a"}, `{"a":1}`, "", dropMissingField},
		{"missing field", "b", "", nil, `{"a":1}`, "", dropMissingField},
		{"field present, any value", "b", "", nil, `{"b":null}`, `{"b":null}`, pass},
		{"numbers compare by value", "b", "1", nil, `{"b":1.0e0}`, `{"b":1.0e0}`, pass},
		{"big integers exactly", "id", "9007199254740993", nil, `{"id":9007199254740992}`, "", dropValue},
		{"non-number flag never equals a number", "b", "x", nil, `{"b":1}`, "", dropValue},
		{"bool never equals", "b", "true", nil, `{"b":true}`, "", dropValue},
		{"array is not an object", "", "", []string{"a"}, `[1,2]`, "", dropNotJSON},
		{"null is not an object", "", "", []string{"a"}, `null`, "", dropNotJSON},
		{"whitelist keeps text", "", "", []string{"z", "a", "a"}, `{"z":"<b>\u00e9","a":12345678901234567890, "q":1}`, `{"a":12345678901234567890,"z":"<b>\u00e9"}`, pass},
		{"whitelist compacts", "", "", []string{"a"}, `{"a": [1, {"x": 2}]}`, `{"a":[1,{"x":2}]}`, pass},
		{"whitelist none present", "", "", []string{"a"}, `{"b":1}`, `{}`, pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newJSONFilter(tt.field, tt.value, tt.whitelist)
			got, verdict := f.apply([]byte(tt.in))
			if verdict != tt.verdict || string(got) != tt.want {
				t.Errorf("apply(%s) = %s, %d; want %s, %d", tt.in, got, verdict, tt.want, tt.verdict)
			}
		})
	}
	if newJSONFilter("", "1", nil) != nil {
		t.Error("a filter without field or whitelist, want nil")
	}
}

func TestValidate(t *testing.T) {
	src := "--nsqd-tcp-address=a:1"
	dst := "--destination-nsqd-tcp-address=b:1"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{src, dst}, "--topic and --channel are required"},
		{[]string{"--topic=t", "--channel=", src, dst}, "--topic and --channel are required"},
		{[]string{"--topic=bad topic", src, dst}, "--topic is invalid"},
		{[]string{"--topic=t", "--destination-topic=b/d", src, dst}, "--destination-topic is invalid"},
		{[]string{"--topic=t", "--channel=c!", src, dst}, "--channel is invalid"},
		{[]string{"--topic=t", dst}, "--nsqd-tcp-address or --lookupd-http-address required"},
		{[]string{"--topic=t", src}, "--destination-nsqd-tcp-address required"},
		{[]string{"--topic=t", "--topic=u#ephemeral", src, dst}, ""},
	}
	for _, tt := range tests {
		var c config
		fs := newFlagSet("nsq_to_nsq", &c)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		got := ""
		if err := c.validate(); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("validate(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]int{"round-robin": modeRoundRobin, "hostpool": modeHostPool, "epsilon-greedy": modeEpsilonGreedy, "other": modeRoundRobin} {
		if got := parseMode(s); got != want {
			t.Errorf("parseMode(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run(t.Context(), "nsq_to_nsq", []string{"--version"}, &stdout, &stderr); code != 0 || stdout.String() != "nsq_to_nsq v1.3.0\n" {
		t.Errorf("--version = %d, %q", code, stdout.String())
	}
	if code := run(t.Context(), "nsq_to_nsq", []string{"--producer-opt=nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad --producer-opt = %d, want 2", code)
	}
	stderr.Reset()
	if code := run(t.Context(), "nsq_to_nsq", []string{"--topic=t"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "required") {
		t.Errorf("missing sources = %d, %q", code, stderr.String())
	}
}
