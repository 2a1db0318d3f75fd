package main

import (
	"testing"
	"time"
)

func TestStrftime(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	ts := time.Date(2026, time.November, 3, 9, 5, 7, 0, loc)
	pm := time.Date(2026, time.November, 3, 21, 5, 7, 0, loc)
	midnight := time.Date(2026, time.November, 3, 0, 5, 7, 0, loc)
	tests := []struct {
		format string
		t      time.Time
		want   string
	}{
		{"%Y-%m-%d_%H", ts, "2026-11-03_09"},
		{"%Y%m%d", ts, "20261103"},
		{"%y %I:%M:%S %p", ts, "26 09:05:07 AM"},
		{"%I %p", pm, "09 PM"},
		{"%I %p", midnight, "12 AM"},
		{"%B %b %A %a", ts, "November Nov Tuesday Tue"},
		{"%Z %z", ts, "CET +0100"},
		{"100%%", ts, "100%"},
		{"%q%", ts, "%q%"},
		{"", ts, ""},
		// Literal text is never taken for a Go layout element.
		{"2006-Jan-MST-%Y", ts, "2006-Jan-MST-2026"},
	}
	for _, tt := range tests {
		if got := strftime(tt.format, tt.t); got != tt.want {
			t.Errorf("strftime(%q) = %q, want %q", tt.format, got, tt.want)
		}
	}
}

func TestExpandFilename(t *testing.T) {
	got := expandFilename("<TOPIC>/<HOST>-<PID><REV>.<DATETIME>.log", "ftest", "id-vm", 16290)
	if want := "ftest/id-vm-16290<REV>.<DATETIME>.log"; got != want {
		t.Errorf("expandFilename = %q, want %q", got, want)
	}
}

func TestHostIdentifier(t *testing.T) {
	tests := []struct{ identifier, hostname, want string }{
		{"", "vm.example.com", "vm"},
		{"", "vm", "vm"},
		{"id-<SHORT_HOST>", "vm.example.com", "id-vm"},
		{"<HOSTNAME>_x", "vm.example.com", "vm.example.com_x"},
		{"fixed", "vm", "fixed"},
	}
	for _, tt := range tests {
		if got := hostIdentifier(tt.identifier, tt.hostname); got != tt.want {
			t.Errorf("hostIdentifier(%q, %q) = %q, want %q", tt.identifier, tt.hostname, got, tt.want)
		}
	}
}

func TestRevision(t *testing.T) {
	for rev, want := range map[int]string{0: "-000000", 42: "-000042", 1234567: "-1234567"} {
		if got := revision(rev); got != want {
			t.Errorf("revision(%d) = %q, want %q", rev, got, want)
		}
	}
}
