package deadletter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxLine bounds one line of a dead-letter file. A real record is well
// under a kilobyte; a longer line is reported malformed instead of being
// held in memory whole.
const maxLine = 1 << 20

// maxListed is how many malformed line numbers an error message lists.
const maxListed = 10

// MalformedError reports the lines of a dead-letter file that do not hold
// a record. ReadAll returns it alongside every record it could read, so a
// replay can deliver those and an operator can repair the rest by line
// number.
type MalformedError struct {
	// Lines are the 1-based numbers of the malformed lines, ascending.
	Lines []int

	// Err says what is wrong with the first of them.
	Err error
}

// Error names the malformed lines, at most ten of them, and the first
// line's fault.
func (e *MalformedError) Error() string {
	if len(e.Lines) == 1 {
		return fmt.Sprintf("read dead letters: malformed line %d: %v", e.Lines[0], e.Err)
	}

	nums := make([]string, 0, maxListed+1)
	for _, n := range e.Lines[:min(len(e.Lines), maxListed)] {
		nums = append(nums, strconv.Itoa(n))
	}
	if len(e.Lines) > maxListed {
		nums = append(nums, "...")
	}
	return fmt.Sprintf("read dead letters: %d malformed lines (%s); line %d: %v",
		len(e.Lines), strings.Join(nums, ", "), e.Lines[0], e.Err)
}

// Unwrap returns the first malformed line's fault.
func (e *MalformedError) Unwrap() error { return e.Err }

// ReadAll reads every record from a dead-letter file. Blank lines are
// skipped. It returns all the records it could read even when it also
// returns an error: a *MalformedError for lines that hold no record, a
// read error from r, or both joined.
func ReadAll(r io.Reader) ([]Record, error) {
	var (
		records []Record
		bad     *MalformedError
		readErr error
	)
	br := bufio.NewReaderSize(r, 64<<10)

	for n := 1; ; n++ {
		line, tooLong, err := readLine(br)
		if err != nil && err != io.EOF {
			// The line may be cut short by the failure; it is not
			// the file's fault.
			readErr = fmt.Errorf("read dead letters: %w", err)
			break
		}

		rec, ok, lineErr := decodeLine(line, tooLong)
		switch {
		case lineErr != nil && bad == nil:
			bad = &MalformedError{Lines: []int{n}, Err: lineErr}
		case lineErr != nil:
			bad.Lines = append(bad.Lines, n)
		case ok:
			records = append(records, rec)
		}

		if err == io.EOF {
			break
		}
	}
	return records, joinErrors(bad, readErr)
}

// readLine reads one line, without keeping more than maxLine bytes of it;
// tooLong reports that some were dropped. The error is that of the read
// that ended the line.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= maxLine {
			line = append(line, chunk...)
		} else {
			tooLong = true
		}
		if err != bufio.ErrBufferFull {
			return line, tooLong, err
		}
	}
}

// decodeLine parses one line. ok is false for a blank line, which is not a
// fault: appends after a torn write leave one.
func decodeLine(line []byte, tooLong bool) (r Record, ok bool, err error) {
	line = bytes.TrimSpace(line)
	switch {
	case tooLong:
		return r, false, fmt.Errorf("line longer than %d bytes", maxLine)
	case len(line) == 0:
		return r, false, nil
	}

	if err := json.Unmarshal(line, &r); err != nil {
		return r, false, err
	}
	if r.InteractionID == "" {
		// Also catches null, which Unmarshal accepts into a struct.
		return r, false, errors.New("no interactionId")
	}
	return r, true, nil
}

// joinErrors combines the faults ReadAll found, if any.
func joinErrors(bad *MalformedError, readErr error) error {
	switch {
	case bad == nil:
		return readErr
	case readErr == nil:
		return bad
	}
	return errors.Join(bad, readErr)
}
