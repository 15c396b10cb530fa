// Package deadletter records variable writes that were given up on, one JSON
// object a line in an append-only file, so that no decision is lost without
// a trace and an operator, or a later replay, can deliver it again.
//
// Dead letters are rare, so each record is synced to disk before Append
// returns: durability matters more here than throughput. The file holds
// what callers chose in the IVR, so it is created readable by its owner
// only.
//
// The service always holds a File; when no path is configured it uses a
// default one. A nil *File is not a way to switch dead letters off: its
// Append returns an error, so a caller wired without a file still logs the
// lost write in full instead of dropping it.
package deadletter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dtmfd/dtmfd/transport/variables"
)

// Record is one write given up on: what was to be written where, and why
// it was abandoned.
type Record struct {
	// InteractionID is the call the variables belong to.
	InteractionID string `json:"interactionId"`

	// Variables are the values that were never accepted.
	Variables []variables.Variable `json:"variables"`

	// DecidedAt is when the call reached the decision.
	DecidedAt time.Time `json:"decidedAt"`

	// FailedAt is when the writer gave up.
	FailedAt time.Time `json:"failedAt"`

	// Attempts is how many requests were made.
	Attempts int `json:"attempts"`

	// Status is the HTTP status of the last attempt, omitted when it got
	// no reply.
	Status int `json:"status,omitempty"`

	// Error describes the last failure. It is written to disk as is, so
	// it must not hold a token or other secret; the messages of
	// variables.Error never do.
	Error string `json:"error"`
}

// File appends Records to a dead-letter file. It is safe for concurrent
// use: each record lands as one whole line.
type File struct {
	mu sync.Mutex
	f  *os.File

	// torn is set while the file does not end in a newline, after a
	// crash or a short write, so the next record starts a line of its
	// own instead of corrupting itself too.
	torn bool
}

// Open opens the dead-letter file at path for appending, creating it with
// mode 0600, and its parent directory with mode 0700, if missing. An
// existing file keeps its contents and its mode.
func Open(path string) (*File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open dead letters: %w", err)
	}

	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open dead letters: %w", err)
	}

	torn, err := endsMidLine(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open dead letters: %w", err)
	}
	syncDir(dir)
	return &File{f: f, torn: torn}, nil
}

// endsMidLine reports whether f is non-empty and lacks a final newline.
func endsMidLine(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return false, err
	}

	last := make([]byte, 1)
	if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
		return false, err
	}
	return last[0] != '\n', nil
}

// syncDir makes a newly created file's directory entry durable. Some file
// systems cannot sync a directory; the file's own syncs still hold its
// data, so a failure here is not worth failing Open for.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// Append writes r as one line and syncs the file. An error means r may not
// be on disk; the caller should log r in full so that it is not lost.
func (f *File) Append(r Record) error {
	if f == nil {
		return errors.New("append dead letter: no dead-letter file")
	}

	line, err := encode(r)
	if err != nil {
		return fmt.Errorf("append dead letter: %w", err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()

	if f.torn {
		line = append([]byte{'\n'}, line...)
	}
	n, err := f.f.Write(line)
	if n > 0 {
		f.torn = line[n-1] != '\n'
	}
	if err != nil {
		return fmt.Errorf("append dead letter: %w", err)
	}

	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("sync dead letters: %w", err)
	}
	return nil
}

// Close closes the file. Appends after Close fail.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Close()
}

// encode renders r as one JSON line ending in a newline. HTML characters
// are left unescaped so that an operator reading the file sees the values
// as written.
func encode(r Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
