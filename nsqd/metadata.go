package nsqd

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nsqclone/nsq/internal/diskq"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/internal/version"
)

// metadata is nsqd.dat, in NSQ's JSON shape.
type metadata struct {
	Topics  []topicMetadata `json:"topics"`
	Version string          `json:"version"`
}

type topicMetadata struct {
	Name     string            `json:"name"`
	Paused   bool              `json:"paused"`
	Channels []channelMetadata `json:"channels"`
	// Config holds the topic's limit overrides (not in NSQ, which ignores
	// the field); absent when there are none.
	Config *Limits `json:"config,omitempty"`
}

type channelMetadata struct {
	Name   string  `json:"name"`
	Paused bool    `json:"paused"`
	Config *Limits `json:"config,omitempty"` // as topicMetadata.Config
}

func (n *NSQD) metadataFile() string { return filepath.Join(n.dataPath(), "nsqd.dat") }

// loadMetadata recreates the topics and channels of nsqd.dat. A missing file
// is a fresh start; an unparsable one is an error.
func (n *NSQD) loadMetadata() error {
	fn := n.metadataFile()
	data, err := os.ReadFile(fn)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read metadata from %s - %w", fn, err)
	}
	var m metadata
	if err := json.Unmarshal(data, &m); err != nil {
		// NSQ refuses to start. The messages are safe in the disk queues, so
		// keep the damaged file for inspection and rebuild the list of topics
		// and channels from the disk queues' metadata files.
		bad := fn + ".bad"
		os.Rename(fn, bad)
		m = n.metadataFromDiskQueues()
		err = fmt.Errorf("%s was damaged (kept as %s; %d topics recovered from disk queues, paused states lost): %w", fn, bad, len(m.Topics), err)
		n.logger.Error("NSQ: failed to parse metadata", "file", fn, "err", err)
		n.health.found(healthMetadata, err)
	}
	for _, tm := range m.Topics {
		if !protocol.IsValidTopicName(tm.Name) {
			n.logger.Warn("NSQ: skipping creation of invalid topic", "topic", tm.Name)
			continue
		}
		t, err := n.getTopic(tm.Name, false)
		if err != nil {
			return err
		}
		if tm.Paused {
			t.Pause()
		}
		for _, cm := range tm.Channels {
			if !protocol.IsValidChannelName(cm.Name) {
				n.logger.Warn("NSQ: skipping creation of invalid channel", "topic", tm.Name, "channel", cm.Name)
				continue
			}
			c, err := t.GetChannel(cm.Name)
			if err != nil {
				return err
			}
			if cm.Paused {
				c.Pause()
			}
			if cm.Config != nil && n.keepOverrides(tm.Name) {
				t.setOverrides(cm.Name, *cm.Config)
			}
		}
		if tm.Config != nil && n.keepOverrides(tm.Name) {
			t.setOverrides("", *tm.Config)
		}
		t.loadDeferred()
	}
	return nil
}

// keepOverrides reports whether the limit overrides of nsqd.dat apply: not
// on a replica, whose overrides are the set's and come from its log (the
// nsqd.dat of a replica records them for reading, as on every replica).
func (n *NSQD) keepOverrides(topic string) bool {
	return n.opts.ReplicationAddress == ""
}

// metadataFromDiskQueues lists the topics and channels that have a disk
// queue ("<topic>.diskqueue.meta.dat", "<topic>:<channel>.diskqueue.meta.dat").
func (n *NSQD) metadataFromDiskQueues() metadata {
	const suffix = ".diskqueue.meta.dat"
	names, _ := filepath.Glob(filepath.Join(n.dataPath(), "*"+suffix))
	byTopic := map[string]*topicMetadata{}
	var order []string
	topic := func(name string) *topicMetadata {
		if tm, ok := byTopic[name]; ok {
			return tm
		}
		byTopic[name] = &topicMetadata{Name: name}
		order = append(order, name)
		return byTopic[name]
	}
	for _, fn := range names {
		base := strings.TrimSuffix(filepath.Base(fn), suffix)
		t, c, isChannel := strings.Cut(base, ":")
		tm := topic(t)
		if isChannel {
			tm.Channels = append(tm.Channels, channelMetadata{Name: c})
		}
	}
	m := metadata{Version: version.Binary}
	for _, name := range order {
		m.Topics = append(m.Topics, *byTopic[name])
	}
	return m
}

// PersistMetadata rewrites nsqd.dat now (temp file, fsync, rename). A
// failure sets the metadata health condition (and the sync loop retries);
// a success clears it.
func (n *NSQD) PersistMetadata() error {
	n.persistMu.Lock()
	defer n.persistMu.Unlock()
	if err := n.writeMetadataLocked(); err != nil {
		n.health.fail(healthMetadata, err)
		return err
	}
	n.health.clear(healthMetadata)
	return nil
}

func (n *NSQD) writeMetadataLocked() error {
	m := metadata{Topics: []topicMetadata{}, Version: version.Binary}
	for _, t := range n.topicList() {
		if t.ephemeral {
			continue
		}
		tm := topicMetadata{Name: t.name, Paused: t.IsPaused()}
		tm.Config = t.overridesOf(nil)
		for _, c := range t.channelList() {
			if c.ephemeral {
				continue
			}
			tm.Channels = append(tm.Channels, channelMetadata{Name: c.name, Paused: c.IsPaused(), Config: t.overridesOf(c)})
		}
		m.Topics = append(m.Topics, tm)
	}
	data, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	fn := n.metadataFile()
	tmp := fmt.Sprintf("%s.%d.tmp", fn, rand.Int())
	if err := writeFileSync(tmp, data, 0o600); err != nil {
		return fmt.Errorf("persist metadata: %w", err)
	}
	if err := os.Rename(tmp, fn); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("persist metadata: %w", err)
	}
	if n.opts.Durable {
		if err := diskq.SyncDir(n.dataPath()); err != nil {
			return fmt.Errorf("persist metadata: %w", err)
		}
	}
	return nil
}

func writeFileSync(fn string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(fn, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// dirLock holds an exclusive flock on the data directory, so that two nsqd
// never share it.
type dirLock struct{ f *os.File }

func lockDir(path string) (*dirLock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot flock directory %s - %w (possibly in use by another instance of nsqd)", path, err)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) unlock() error {
	if l == nil {
		return nil
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return l.f.Close()
}
