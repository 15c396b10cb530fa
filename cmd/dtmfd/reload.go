package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// reloadSettle is how long the watcher waits after a file event before it
// reads the file, so the several events of one update (a ConfigMap swaps
// a directory symlink in steps) cause one reload.
const reloadSettle = 200 * time.Millisecond

// notifyReload returns the channel SIGHUP arrives on, registered before
// the watcher starts so that no signal is missed, and the func that
// unregisters it. It is registered whether or not an IVR file is set: a
// SIGHUP nobody asked for otherwise kills the process.
func notifyReload() (hup chan os.Signal, stop func()) {
	hup = make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// watchIVRFile starts watching the IVR file's directory, not the file,
// because Kubernetes updates a mounted ConfigMap by swapping a symlink
// there. It runs before dtmfd reports ready, so a change made once it is
// ready is never missed. It returns the watcher's events (nil when there
// is no file, or it cannot be watched and only SIGHUP reloads) and the
// func that stops the watch.
func (a *app) watchIVRFile() (events chan fsnotify.Event, stop func()) {
	if a.cfg.IVR == "" {
		return nil, func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(a.cfg.IVR)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		a.log.Warn("IVR file not watched; reload with SIGHUP", "path", a.cfg.IVR, "error", err)
		return nil, func() {}
	}
	return w.Events, func() { w.Close() }
}

// watchIVR reloads the IVR definition when events from watchIVRFile say
// its file changed or a signal arrives on hup, until ctx ends. With no
// file set it only answers signals.
func (a *app) watchIVR(ctx context.Context, hup chan os.Signal, events chan fsnotify.Event) {
	if a.cfg.IVR == "" {
		a.ignoreReloads(ctx, hup)
		return
	}

	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.reloadIVR("SIGHUP")
		case _, ok := <-events:
			if !ok {
				// The watch was stopped: only signals reload now.
				events = nil
				continue
			}
			settle.Reset(reloadSettle)
		case <-settle.C:
			a.reloadIVR("file change")
		}
	}
}

// ignoreReloads answers each signal on hup with a log line until ctx
// ends: the built-in flow has no file to read again.
func (a *app) ignoreReloads(ctx context.Context, hup chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.log.Info("SIGHUP: nothing to reload; the built-in IVR flow runs (set DTMFD_IVR to load a file)")
		}
	}
}

// reloadIVR loads the definition again. A valid one applies to calls that
// start from now on; calls in progress finish on the version they began
// with. An invalid one is rejected with every problem logged, and the
// running version stays.
func (a *app) reloadIVR(trigger string) {
	data, err := os.ReadFile(a.cfg.IVR)
	if err != nil {
		a.metrics.IVRReloaded("rejected")
		a.log.Error("IVR reload failed; keeping the running version", "path", a.cfg.IVR,
			"trigger", trigger, "error", err)
		return
	}
	if bytes.Equal(data, a.ivrSource) {
		a.log.Debug("IVR file unchanged", "path", a.cfg.IVR, "trigger", trigger)
		return
	}

	flow, err := ivrspec.Parse(a.cfg.IVR, data, ivrspec.Options{DefaultTimeout: a.cfg.InputTimeout})
	if err != nil {
		a.metrics.IVRReloaded("rejected")
		problems := problemList(err)
		a.log.Error("IVR reload rejected; keeping the running version", "path", a.cfg.IVR,
			"trigger", trigger, "count", len(problems), "problems", problems)
		return
	}
	a.ivrSource = data
	a.flow.Store(flow)
	a.metrics.IVRReloaded("applied")
	a.log.Info("IVR reloaded; new calls use it", "path", a.cfg.IVR, "trigger", trigger,
		"nodes", len(flow.Order))
}

// problemList is every problem a failed load reports, one string each
// ("file:line:col: msg"), so a log pipeline receives them as a list.
func problemList(err error) []string {
	var le *ivrspec.LoadError
	if !errors.As(err, &le) || len(le.Problems) == 0 {
		return []string{err.Error()}
	}
	out := make([]string, len(le.Problems))
	for i, p := range le.Problems {
		out[i] = p.String()
	}
	return out
}
