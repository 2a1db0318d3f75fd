package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testFile returns an outFile for topic "ftest" on host "vm" configured by
// args (plus a source and topic), with a clock the test controls.
func testFile(t *testing.T, args ...string) (*outFile, *time.Time) {
	t.Helper()
	c, err := parse(t, append([]string{"--topic=ftest", "--nsqd-tcp-address=x:1"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	logf := func(level slog.Level, format string, args ...any) { t.Logf(level.String()+": "+format, args...) }
	o := newOutFile(c, logf, "ftest", "vm")
	now := time.Date(2026, 11, 23, 11, 16, 59, 0, time.Local)
	o.now = func() time.Time { return now }
	return o, &now
}

// writeAll writes bodies as the topic logger does: rotating first when
// needed.
func writeAll(t *testing.T, o *outFile, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if o.needsRotation() {
			if err := o.rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.write([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return string(b)
}

// listFiles returns the files under dir, relative, sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	slices.Sort(files)
	return files
}

func lines(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%012d", prefix, i)) // 13 bytes + newline with prefix "m"
	}
	return out
}

func TestPlainFileAppends(t *testing.T) {
	dir := t.TempDir()
	o, _ := testFile(t, "--output-dir="+dir)
	writeAll(t, o, "a", "b")
	if err := o.flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ftest.vm.2026-11-23_11.log")
	if got := readFile(t, path); got != "a\nb\n" {
		t.Errorf("after flush: %q", got)
	}
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	// A new session appends to the same file.
	o2, _ := testFile(t, "--output-dir="+dir)
	writeAll(t, o2, "c")
	if err := o2.close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "a\nb\nc\n" {
		t.Errorf("after second session: %q", got)
	}
}

// As captured from NSQ 1.3's nsq_to_file: --rotate-size=60 and 14-byte lines put five lines
// in the first file and the sixth in the next revision.
func TestRotateSize(t *testing.T) {
	dir := t.TempDir()
	o, _ := testFile(t, "--output-dir="+dir, "--rotate-size=60", "--datetime-format=%Y%m%d",
		"--filename-format=<TOPIC>/<HOST>-<PID><REV>.<DATETIME>.log")
	all := lines("m", 0, 6)
	writeAll(t, o, all...)
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	want := []string{
		fmt.Sprintf("ftest/vm-%d-000000.20261123.log", pid),
		fmt.Sprintf("ftest/vm-%d-000001.20261123.log", pid),
	}
	if got := listFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	if got := readFile(t, filepath.Join(dir, want[0])); got != strings.Join(all[:5], "\n")+"\n" {
		t.Errorf("first file %q", got)
	}
	if got := readFile(t, filepath.Join(dir, want[1])); got != all[5]+"\n" {
		t.Errorf("second file %q", got)
	}
}

// An existing file already bigger than --rotate-size is skipped at opening.
func TestRotateSizeSkipsBigFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "ftest.vm-000000.2026-11-23_11.log")
	os.WriteFile(big, bytes.Repeat([]byte("x\n"), 50), 0o666)
	o, _ := testFile(t, "--output-dir="+dir, "--rotate-size=60")
	writeAll(t, o, "new")
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "ftest.vm-000001.2026-11-23_11.log")); got != "new\n" {
		t.Errorf("next revision holds %q", got)
	}
	if got := readFile(t, big); strings.Contains(got, "new") {
		t.Error("the big file was appended to")
	}
}

// With gzip each sync ends a member; the file decompresses as one stream.
func TestGzipMembers(t *testing.T) {
	dir := t.TempDir()
	o, _ := testFile(t, "--output-dir="+dir, "--gzip", "--gzip-level=9")
	writeAll(t, o, "a", "b")
	if err := o.sync(); err != nil {
		t.Fatal(err)
	}
	if err := o.sync(); err != nil { // nothing new: no empty member
		t.Fatal(err)
	}
	writeAll(t, o, "c")
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ftest.vm-000000.2026-11-23_11.log.gz")
	if got := readFile(t, path); got != "a\nb\nc\n" {
		t.Errorf("content %q", got)
	}
	if n := gzipMembers(t, path); n != 2 {
		t.Errorf("%d gzip members, want 2", n)
	}
}

func gzipMembers(t *testing.T, path string) int {
	t.Helper()
	b, _ := os.ReadFile(path)
	br := bytes.NewReader(b)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		zr.Multistream(false)
		if _, err := io.Copy(io.Discard, zr); err != nil {
			t.Fatal(err)
		}
		n++
		if err := zr.Reset(br); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// A gzip file closed without messages is still a valid (empty) gzip file,
// and an existing revision is never overwritten (O_EXCL).
func TestGzipEmptyAndExclusive(t *testing.T) {
	dir := t.TempDir()
	taken := filepath.Join(dir, "ftest.vm-000000.2026-11-23_11.log.gz")
	os.WriteFile(taken, []byte("not mine"), 0o666)
	o, _ := testFile(t, "--output-dir="+dir, "--gzip")
	if err := o.rotate(); err != nil {
		t.Fatal(err)
	}
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "ftest.vm-000001.2026-11-23_11.log.gz")); got != "" {
		t.Errorf("empty file content %q", got)
	}
	if b, _ := os.ReadFile(taken); string(b) != "not mine" {
		t.Errorf("existing file changed to %q", b)
	}
}

// Finished files move from the work dir to the output dir, never replacing
// a file: revisions present in the output dir are skipped when opening, and
// a name taken meanwhile makes the move use the next free revision.
func TestWorkDirMove(t *testing.T) {
	work, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(out, "ftest.vm-000000.2026-11-23_11.log"), []byte("old\n"), 0o666)
	o, _ := testFile(t, "--output-dir="+out, "--work-dir="+work)
	writeAll(t, o, "a")
	if err := o.flush(); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, work); !slices.Equal(got, []string{"ftest.vm-000001.2026-11-23_11.log"}) {
		t.Fatalf("work dir holds %q", got)
	}
	// Someone takes revision 1 in the output dir before we finish.
	os.WriteFile(filepath.Join(out, "ftest.vm-000001.2026-11-23_11.log"), []byte("other\n"), 0o666)
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, work); len(got) != 0 {
		t.Errorf("work dir still holds %q", got)
	}
	want := map[string]string{
		"ftest.vm-000000.2026-11-23_11.log": "old\n",
		"ftest.vm-000001.2026-11-23_11.log": "other\n",
		"ftest.vm-000002.2026-11-23_11.log": "a\n",
	}
	for name, content := range want {
		if got := readFile(t, filepath.Join(out, name)); got != content {
			t.Errorf("%s holds %q, want %q", name, got, content)
		}
	}
}

// A new <DATETIME> opens a new name at revision 0; --rotate-interval
// rotates to the next revision of the same name.
func TestRotateByTime(t *testing.T) {
	dir := t.TempDir()
	o, now := testFile(t, "--output-dir="+dir, "--rotate-interval=10m")
	writeAll(t, o, "a")
	*now = now.Add(5 * time.Minute)
	if o.needsRotation() {
		t.Fatal("rotation due after 5m of a 10m interval")
	}
	*now = now.Add(6 * time.Minute)
	writeAll(t, o, "b")
	*now = now.Add(time.Hour)
	writeAll(t, o, "c")
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ftest.vm-000000.2026-11-23_11.log",
		"ftest.vm-000000.2026-11-23_12.log",
		"ftest.vm-000001.2026-11-23_11.log",
	}
	if got := listFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	for i, body := range []string{"a\n", "c\n", "b\n"} {
		if got := readFile(t, filepath.Join(dir, want[i])); got != body {
			t.Errorf("%s holds %q, want %q", want[i], got, body)
		}
	}
}
