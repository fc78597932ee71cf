package ingest

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// openSpoolFile opens the file of the spool folder at path for reading,
// safely whatever was put there after it was listed: it never follows a
// symbolic link (O_NOFOLLOW), never blocks on a FIFO or a device
// (O_NONBLOCK, cleared once the descriptor is known to be a regular file),
// and returns the file only when the descriptor's fstat(2) says it is a
// regular file, the very one listed (same device and inode, size and
// modification time). Otherwise it returns an error wrapping
// errSpoolNotRegular (a symbolic link, a FIFO, a device, a folder) or
// errSpoolChanged (another file, or this one written to, since listed).
func openSpoolFile(path string, listed fs.FileInfo) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err == syscall.ELOOP {
		return nil, fmt.Errorf("%w: a symbolic link", errSpoolNotRegular)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, fmt.Errorf("%w: file type %#o", errSpoolNotRegular, st.Mode&syscall.S_IFMT)
	}
	if ls, ok := listed.Sys().(*syscall.Stat_t); ok && (ls.Dev != st.Dev || ls.Ino != st.Ino) {
		syscall.Close(fd)
		return nil, fmt.Errorf("%w: another file (inode %d, listed %d)", errSpoolChanged, st.Ino, ls.Ino)
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != listed.Size() || !fi.ModTime().Equal(listed.ModTime()) {
		f.Close()
		return nil, fmt.Errorf("%w: written to since listed", errSpoolChanged)
	}
	return f, nil
}
