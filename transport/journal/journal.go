// Package journal keeps decisions on disk until the platform has accepted
// them, so a crash (SIGKILL, an OOM kill, a lost node) loses none: a
// restarted dtmfd delivers whatever the journal still holds.
//
// It is a bbolt database: one bucket, keyed by decision id, holding the
// write as JSON. Records are added with DB.Batch, which folds the
// decisions of many calls arriving together into one fsynced transaction,
// so the cost per decision stays well under a millisecond under load.
//
// Delivery across a crash is at least once: a write the platform accepted
// just before the crash, but that was not yet removed, is sent again on
// restart. Values are stored as they will be written, sensitive ones
// included; the file is created with mode 0600.
package journal

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

var bucket = []byte("pending")

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	db *bolt.DB
}

// record is the stored form of a write.
type record struct {
	ID            string     `json:"id"`
	InteractionID string     `json:"interactionId"`
	Variables     []variable `json:"variables"`
	DigitAt       time.Time  `json:"digitAt"`
	DecidedAt     time.Time  `json:"decidedAt"`
}

type variable struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

// Open opens or creates the journal at path.
func Open(path string) (*Journal, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return &Journal{db: db}, nil
}

// Record stores w durably. It returns once w is on disk.
func (j *Journal) Record(w *actors.Write) error {
	rec := record{
		ID:            w.ID,
		InteractionID: w.InteractionID,
		Variables:     make([]variable, len(w.Variables)),
		DigitAt:       w.DigitAt,
		DecidedAt:     w.DecidedAt,
	}
	for i, v := range w.Variables {
		rec.Variables[i] = variable(v)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("record decision: %w", err)
	}
	err = j.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(w.ID), data)
	})
	if err != nil {
		return fmt.Errorf("record decision: %w", err)
	}
	return nil
}

// Remove drops delivered decisions.
func (j *Journal) Remove(ids []string) error {
	err := j.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove decisions: %w", err)
	}
	return nil
}

// Pending returns every decision still held, oldest first. A record that
// cannot be read is returned as an error alongside the good ones, and
// stays in the journal for an operator to inspect.
func (j *Journal) Pending() ([]*actors.Write, error) {
	var out []*actors.Write
	var bad []string
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil || rec.InteractionID == "" {
				bad = append(bad, string(k))
				return nil
			}
			w := &actors.Write{
				ID:            rec.ID,
				InteractionID: rec.InteractionID,
				Variables:     make([]ivrspec.Variable, len(rec.Variables)),
				DigitAt:       rec.DigitAt,
				DecidedAt:     rec.DecidedAt,
			}
			for i, v := range rec.Variables {
				w.Variables[i] = ivrspec.Variable(v)
			}
			out = append(out, w)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	slices.SortStableFunc(out, func(a, b *actors.Write) int { return a.DecidedAt.Compare(b.DecidedAt) })
	if len(bad) > 0 {
		return out, fmt.Errorf("read journal: %d unreadable records kept: %v", len(bad), bad)
	}
	return out, nil
}

// Close closes the file.
func (j *Journal) Close() error {
	return j.db.Close()
}
