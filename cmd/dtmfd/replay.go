package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/deadletter"
	"github.com/dtmfd/dtmfd/transport/variables"
)

const replayUsage = `usage: dtmfd deadletter replay [-out FILE] [settings] DEAD-LETTER-FILE

Delivers every record of a dead-letter file to the platform, through the
same token source, client and retry policy as the service, with the
service's settings (environment or flags; see dtmfd -h). Records that
still fail are written to DEAD-LETTER-FILE.failed, or to -out, as a
dead-letter file of their own. Exit status 0 when all were delivered,
1 otherwise, 2 for a usage or settings error.`

// replayed is what became of one dead-letter record.
type replayed struct {
	rec      deadletter.Record
	attempts int
	reason   string
	err      error
}

// deadletterCommand runs "dtmfd deadletter replay".
func deadletterCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) < 2 || args[0] != "replay" || strings.HasPrefix(args[len(args)-1], "-") {
		fmt.Fprintln(stderr, replayUsage)
		return 2
	}
	file := args[len(args)-1]
	out, settings, err := cutOutFlag(args[1 : len(args)-1])
	if err != nil {
		fmt.Fprintln(stderr, "dtmfd deadletter replay:", err)
		return 2
	}
	if out == "" {
		out = file + ".failed"
	}
	cfg, err := parseConfig(settings, getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "dtmfd deadletter replay:", err)
		return 2
	}
	if cfg.local() || (cfg.CXone.enabled() && cfg.CXone.local(cfg.ClientID)) {
		fmt.Fprintln(stderr, "dtmfd deadletter replay: no platform credentials: set CXONE_CLIENT_ID "+
			"and CXONE_CLIENT_SECRET (local mode has no platform to replay to)")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return replayFile(ctx, cfg, file, out, stdout, stderr)
}

// cutOutFlag takes -out (or --out) and its value from args and returns
// the rest, which are the service's settings.
func cutOutFlag(args []string) (out string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || name != "out" {
			rest = append(rest, args[i])
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return "", nil, errors.New("-out needs a file name")
			}
			i++
			value = args[i]
		}
		out = value
	}
	return out, rest, nil
}

// replayFile delivers the records of file and writes those that fail to
// out; it returns the exit status.
func replayFile(ctx context.Context, cfg *config, file, out string, stdout, stderr io.Writer) int {
	recs, readErr := readDeadLetterFile(file)
	if readErr != nil && recs == nil {
		fmt.Fprintln(stderr, "dtmfd deadletter replay:", readErr)
		return 1
	}
	if readErr != nil {
		fmt.Fprintf(stderr, "dtmfd deadletter replay: %v; delivering the readable records\n", readErr)
	}

	sink, closeSink, err := replaySink(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "dtmfd deadletter replay:", err)
		return 2
	}
	defer closeSink()

	results := replayAll(ctx, sink, cfg, recs)
	failed := reportReplay(stdout, file, results)
	if err := writeStillFailing(out, failed); err != nil {
		fmt.Fprintln(stderr, "dtmfd deadletter replay:", err)
		return 1
	}
	if len(failed) > 0 {
		fmt.Fprintf(stdout, "records that failed again are in %s\n", out)
	}
	if len(failed) > 0 || readErr != nil {
		return 1
	}
	return 0
}

func readDeadLetterFile(file string) ([]deadletter.Record, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return deadletter.ReadAll(f)
}

// replaySink builds the sink the service writes decisions through, for
// the configured profile. Its log lines go to stderr at Warn.
func replaySink(cfg *config, stderr io.Writer) (actors.Sink, func(), error) {
	hc, err := platformClient(cfg.CAFile)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a := &app{cfg: cfg, log: log}
	sink, err := a.platformSink(hc)
	if err != nil {
		return nil, nil, err
	}
	return sink, a.closeAll, nil
}

// replayAll delivers the records, DTMFD_WRITERS at a time, and returns
// what became of each, in file order.
func replayAll(ctx context.Context, sink actors.Sink, cfg *config, recs []deadletter.Record) []replayed {
	results := make([]replayed, len(recs))
	var g errgroup.Group
	g.SetLimit(cfg.Writers)
	for i, rec := range recs {
		g.Go(func() error {
			results[i] = replayOne(ctx, sink, cfg.WriteDeadline, rec)
			return nil
		})
	}
	g.Wait()
	return results
}

// replayOne writes one record, retrying as the sink's policy says, for at
// most deadline.
func replayOne(ctx context.Context, sink actors.Sink, deadline time.Duration,
	rec deadletter.Record) replayed {
	r := replayed{rec: rec}
	vars := make([]ivrspec.Variable, len(rec.Variables))
	for i, v := range rec.Variables {
		vars[i] = ivrspec.Variable{Name: v.Name, Value: v.Value}
	}

	giveUp := time.Now().Add(deadline)
	for {
		if ctx.Err() != nil {
			r.reason, r.err = "interrupted", ctx.Err()
			return r
		}
		r.attempts++
		r.err = sink.Write(ctx, rec.InteractionID, vars)
		if r.err == nil {
			return r
		}

		v := sink.Retry(r.err, r.attempts)
		r.reason = v.Reason
		if !v.Retry {
			return r
		}
		if time.Now().Add(v.After).After(giveUp) {
			r.reason = "still failing when DTMFD_WRITE_DEADLINE ran out: " + v.Reason
			return r
		}
		if !waitOrDone(ctx, v.After) {
			r.reason, r.err = "interrupted", ctx.Err()
			return r
		}
	}
}

func waitOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reportReplay prints the summary and each failure, and returns the failed
// records as they go back on file.
func reportReplay(w io.Writer, file string, results []replayed) []deadletter.Record {
	var failed []deadletter.Record
	for _, r := range results {
		if r.err == nil {
			continue
		}
		rec := r.rec
		rec.Attempts += r.attempts
		rec.FailedAt = time.Now().UTC()
		rec.Error = r.err.Error()
		rec.Status = 0
		var e *variables.Error
		if errors.As(r.err, &e) {
			rec.Status = e.Status
		}
		failed = append(failed, rec)
	}

	fmt.Fprintf(w, "%s: %d records, %d delivered, %d failed\n",
		file, len(results), len(results)-len(failed), len(failed))
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(w, "  failed %s: %v (%s; %d attempts)\n",
				r.rec.InteractionID, r.err, r.reason, r.attempts)
		}
	}
	return failed
}

// writeStillFailing replaces out with the records that failed, or removes a
// stale out when none did. The file is written whole before it replaces
// the old one, so an interrupted replay leaves no half file.
func writeStillFailing(out string, failed []deadletter.Record) error {
	if len(failed) == 0 {
		if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove stale %s: %w", out, err)
		}
		return nil
	}

	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp")
	os.Remove(tmp)
	f, err := deadletter.Open(tmp)
	if err != nil {
		return fmt.Errorf("write failed records: %w", err)
	}
	for _, rec := range failed {
		if err := f.Append(rec); err != nil {
			f.Close()
			return fmt.Errorf("write failed records: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write failed records: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("write failed records: %w", err)
	}
	return nil
}
