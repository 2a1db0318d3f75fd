package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// outFile is the current output file of one topic: it opens files by name
// and revision, writes bodies (through gzip with --gzip), syncs, rotates and
// moves finished files from the work dir to the output dir. It is owned by
// one topicLogger goroutine.
type outFile struct {
	cfg    *config
	logf   logFunc
	tag    string // "[topic/channel]", NSQ's log prefix of the topic's lines
	format string // --filename-format with <TOPIC>, <HOST> and <PID> replaced
	now    func() time.Time

	nowSec  int64  // second of the cached name
	nowName string // format with <DATETIME> for nowSec

	name string // format with <DATETIME> of the last opening; "" before the first
	rev  int    // revision of the last opening

	// The open file; f is nil when no file is open.
	f        *os.File
	rel      string // its path relative to the work dir
	openName string // its name before <REV> was replaced
	openRev  int
	openedAt time.Time
	bw       *bufio.Writer
	gz       *gzip.Writer // writes into bw; nil without --gzip
	gzData   bool         // the current gzip member has data
	gzDone   bool         // the file has at least one finished gzip member
	size     int64        // size at opening plus uncompressed bytes written since
}

func newOutFile(cfg *config, logf logFunc, topic, host string) *outFile {
	return &outFile{
		cfg:    cfg,
		logf:   logf,
		tag:    fmt.Sprintf("[%s/%s]", topic, cfg.channel),
		format: expandFilename(cfg.filenameFormat, topic, host, os.Getpid()),
		now:    time.Now,
	}
}

// isOpen reports whether a file is open.
func (o *outFile) isOpen() bool { return o.f != nil }

// currentName returns the file name for now, before <REV> is replaced. The
// <DATETIME> text is computed at most once a second.
func (o *outFile) currentName() string {
	t := o.now()
	if sec := t.Unix(); sec != o.nowSec || o.nowName == "" {
		o.nowSec = sec
		o.nowName = strings.ReplaceAll(o.format, "<DATETIME>", strftime(o.cfg.datetimeFormat, t))
	}
	return o.nowName
}

// needsRotation reports whether the next write must go to another file: none
// is open, the name changed (<DATETIME> rolled over), --rotate-interval has
// passed since it was opened, or it is bigger than --rotate-size.
func (o *outFile) needsRotation() bool {
	if o.f == nil {
		return true
	}
	if o.currentName() != o.name {
		return true
	}
	if o.cfg.rotateInterval > 0 {
		if d := o.now().Sub(o.openedAt); d > o.cfg.rotateInterval {
			o.logf(slog.LevelInfo, "%s %s since last open, need rotation", o.tag, d)
			return true
		}
	}
	if o.cfg.rotateSize > 0 && o.size > o.cfg.rotateSize {
		o.logf(slog.LevelInfo, "%s %s currently %d bytes (> %d), rotating...", o.tag, o.path(o.cfg.workDir, o.rel), o.size, o.cfg.rotateSize)
		return true
	}
	return false
}

// rotate closes the current file, if any, and opens the next: revision 0 of
// a new name, or the next revision of the same name. Revisions that exist
// (with O_EXCL), that are already in the output dir, or that are already
// bigger than --rotate-size are skipped.
func (o *outFile) rotate() error {
	if err := o.close(); err != nil {
		return err
	}
	name := o.currentName()
	if name != o.name {
		o.rev = 0
	} else {
		o.rev++
	}
	o.name = name
	flags := os.O_WRONLY | os.O_CREATE
	if o.cfg.gzip || o.cfg.rotateInterval > 0 {
		flags |= os.O_EXCL
	} else {
		flags |= os.O_APPEND
	}
	for ; ; o.rev++ {
		rel := strings.ReplaceAll(name, "<REV>", revision(o.rev))
		path := o.path(o.cfg.workDir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o770); err != nil {
			return fmt.Errorf("%s unable to create directory for %s: %w", o.tag, path, err)
		}
		if o.cfg.workDir != o.cfg.outputDir {
			out := o.path(o.cfg.outputDir, rel)
			if err := os.MkdirAll(filepath.Dir(out), 0o770); err != nil {
				return fmt.Errorf("%s unable to create directory for %s: %w", o.tag, out, err)
			}
			if _, err := os.Lstat(out); err == nil {
				o.logf(slog.LevelWarn, "%s %s already exists, skipping", o.tag, out)
				continue
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s unable to stat %s: %w", o.tag, out, err)
			}
		}
		f, err := os.OpenFile(path, flags, 0o666)
		if errors.Is(err, fs.ErrExist) {
			o.logf(slog.LevelWarn, "%s %s already exists, skipping", o.tag, path)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s unable to open %s: %w", o.tag, path, err)
		}
		o.logf(slog.LevelInfo, "%s opening %s", o.tag, path)
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("%s unable to stat %s: %w", o.tag, path, err)
		}
		if o.cfg.rotateSize > 0 && fi.Size() > o.cfg.rotateSize {
			o.logf(slog.LevelInfo, "%s %s currently %d bytes (> %d), rotating...", o.tag, path, fi.Size(), o.cfg.rotateSize)
			f.Close()
			continue
		}
		o.f, o.rel, o.openName, o.openRev = f, rel, name, o.rev
		o.openedAt = o.now()
		o.size = fi.Size()
		if o.bw == nil {
			o.bw = bufio.NewWriterSize(f, 64<<10)
		} else {
			o.bw.Reset(f)
		}
		if o.cfg.gzip {
			if o.gz == nil {
				o.gz, _ = gzip.NewWriterLevel(o.bw, o.cfg.gzipLevel) // the level was validated
			} else {
				o.gz.Reset(o.bw)
			}
			o.gzData, o.gzDone = false, false
		}
		return nil
	}
}

// path joins dir and rel keeping dir as given ("./out" stays "./out/x"), as
// NSQ's log lines show.
func (o *outFile) path(dir, rel string) string {
	if dir == "" {
		return rel
	}
	return strings.TrimSuffix(dir, string(filepath.Separator)) + string(filepath.Separator) + rel
}

// write appends body and a newline to the open file.
func (o *outFile) write(body []byte) error {
	var w io.Writer = o.bw
	if o.gz != nil {
		w = o.gz
		o.gzData = true
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("%s writing message to disk: %w", o.tag, err)
	}
	if _, err := w.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("%s writing message to disk: %w", o.tag, err)
	}
	o.size += int64(len(body)) + 1
	return nil
}

// flush hands buffered bytes to the file, so readers see them, without
// syncing. With gzip only whole compressed blocks are handed over.
func (o *outFile) flush() error {
	if o.f == nil {
		return nil
	}
	if err := o.bw.Flush(); err != nil {
		return fmt.Errorf("%s writing to disk: %w", o.tag, err)
	}
	return nil
}

// sync makes everything written so far durable: with gzip it ends the
// current gzip member (the file stays one valid stream of members), then
// flushes and fsyncs.
func (o *outFile) sync() error {
	if o.f == nil {
		return nil
	}
	if o.gz != nil && o.gzData {
		if err := o.finishMember(); err != nil {
			return err
		}
		o.gz.Reset(o.bw)
	}
	if err := o.bw.Flush(); err != nil {
		return fmt.Errorf("%s writing to disk: %w", o.tag, err)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("%s syncing %s: %w", o.tag, o.f.Name(), err)
	}
	return nil
}

func (o *outFile) finishMember() error {
	if err := o.gz.Close(); err != nil {
		return fmt.Errorf("%s finishing gzip member: %w", o.tag, err)
	}
	o.gzData, o.gzDone = false, true
	return nil
}

// close syncs and closes the open file, if any, and moves it to the output
// dir when a work dir is used. A gzip file always holds at least one member,
// so even an empty one decompresses.
func (o *outFile) close() error {
	if o.f == nil {
		return nil
	}
	f := o.f
	o.f = nil
	var err error
	if o.gz != nil && (o.gzData || !o.gzDone) {
		err = o.finishMember()
	}
	if err == nil {
		if err = o.bw.Flush(); err != nil {
			err = fmt.Errorf("%s writing to disk: %w", o.tag, err)
		}
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("%s syncing %s: %w", o.tag, f.Name(), err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s closing %s: %w", o.tag, f.Name(), cerr)
	}
	o.bw.Reset(nil)
	if err != nil {
		return err
	}
	if o.cfg.workDir != o.cfg.outputDir {
		return o.move()
	}
	return nil
}

// move moves the closed file from the work dir to the same relative path
// in the output dir without ever replacing a file there: when the name is
// taken, the next free revision is used.
func (o *outFile) move() error {
	src := o.path(o.cfg.workDir, o.rel)
	dst := o.path(o.cfg.outputDir, o.rel)
	o.logf(slog.LevelInfo, "%s moving finished file %s to %s", o.tag, src, dst)
	for rev := o.openRev + 1; ; rev++ {
		if err := os.MkdirAll(filepath.Dir(dst), 0o770); err != nil {
			return fmt.Errorf("%s unable to create directory for %s: %w", o.tag, dst, err)
		}
		err := linkOrCopy(src, dst)
		if err == nil {
			if err := os.Remove(src); err != nil {
				return fmt.Errorf("%s removing %s after moving it: %w", o.tag, src, err)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(o.openName, "<REV>") {
			return fmt.Errorf("%s unable to move file from %s to %s: %w", o.tag, src, dst, err)
		}
		dst = o.path(o.cfg.outputDir, strings.ReplaceAll(o.openName, "<REV>", revision(rev)))
		o.logf(slog.LevelInfo, "%s destination exists, moving %s to %s instead", o.tag, src, dst)
	}
}

// linkOrCopy creates dst with src's content, failing with fs.ErrExist if
// dst exists: a hard link, or a copy when the two are on different file
// systems.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
