package replication

import (
	"errors"
	"os"
	"syscall"
)

// datasync writes f's data to disk, and its metadata only where needed to
// read the data back (the size of a preallocated file does not change).
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// preallocate reserves size bytes for f, reading as zeros; where the file
// system cannot, the file is extended sparse.
func preallocate(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}
