package web

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

//go:embed assets
var assets embed.FS

const (
	// heartbeat is how often an idle event stream sends a comment, so
	// proxies keep it open and a vanished browser is noticed.
	heartbeat = 20 * time.Second
	// writeWait bounds one write to a page.
	writeWait = 10 * time.Second
)

// pageHeaders keep the page to its own origin, and keep a token given in
// its address out of the Referer of anything it loads.
var pageHeaders = map[string]string{
	"Content-Type":  "text/html; charset=utf-8",
	"Cache-Control": "no-store",
	"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; " +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	"Referrer-Policy":        "no-referrer",
	"X-Content-Type-Options": "nosniff",
}

// Handler serves the keypad: the page at "/", its scripts and styles under
// "/assets/", the event stream at "/events" and the flow's graph as JSON at
// "/flow". With a token set, all but the assets need it; the assets are
// the same static files for everyone and hold no data.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", serveAssets())
	mux.Handle("GET /{$}", h.auth(http.HandlerFunc(h.servePage)))
	mux.Handle("GET /events", h.auth(http.HandlerFunc(h.serveEvents)))
	mux.Handle("GET /flow", h.auth(http.HandlerFunc(h.serveFlow)))
	return mux
}

// auth refuses a request without the token, when one is set.
func (h *Hub) auth(next http.Handler) http.Handler {
	if h.opts.Token == "" {
		return next
	}
	want := []byte(h.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, want) {
			// The path only: the query may hold the wrong token.
			h.log.Warn("web request refused: missing or wrong token",
				"remote", r.RemoteAddr, "path", r.URL.Path)
			h.opts.Metrics.Event(metrics.TypeSimulator, metrics.OutcomeUnauthorized)
			w.Header().Set("WWW-Authenticate", `Bearer realm="dtmfd"`)
			http.Error(w, "missing or wrong token: open the page as /?token=...", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries the token as a bearer header or,
// failing that, as the "token" query parameter.
func authorized(r *http.Request, want []byte) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		got = r.URL.Query().Get("token")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1
}

func serveAssets() http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "/assets/index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

func (h *Hub) servePage(w http.ResponseWriter, r *http.Request) {
	page, err := fs.ReadFile(assets, "assets/index.html")
	if err != nil {
		h.log.Error("web page missing from the binary", "error", err)
		http.Error(w, "page missing", http.StatusInternalServerError)
		return
	}
	for k, v := range pageHeaders {
		w.Header().Set(k, v)
	}
	_, _ = w.Write(page)
}

func (h *Hub) serveFlow(w http.ResponseWriter, r *http.Request) {
	body, err := h.flowJSON()
	if err != nil {
		h.log.Warn("web flow not encoded", "error", err)
		http.Error(w, "flow not encoded", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// serveEvents streams a snapshot and then every event to one page, until
// the page goes away, falls behind, or the Hub closes.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	sub, snap, ok := h.subscribe(r.RemoteAddr)
	if !ok {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.unsubscribe(sub)

	s := newStream(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	h.log.Debug("web page connected", "remote", r.RemoteAddr)
	err := s.send(append([]byte("retry: 2000\n"), snap...))
	if err == nil {
		err = h.pump(r, s, sub)
	}
	h.log.Debug("web page disconnected", "remote", r.RemoteAddr, "reason", err)
}

// pump copies events to the page until it ends; the error says why.
func (h *Hub) pump(r *http.Request, s *stream, sub *subscriber) error {
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()

	for {
		var frame []byte
		select {
		case <-r.Context().Done():
			return r.Context().Err()
		case <-h.done:
			return errClosed
		case <-sub.kicked:
			return errKicked
		case frame = <-sub.ch:
		case <-tick.C:
			frame = []byte(": keepalive\n\n")
		}
		if err := s.send(frame); err != nil {
			return err
		}
	}
}

var (
	errClosed = errors.New("hub closed")
	errKicked = errors.New("page fell behind")
)

// stream writes event frames to one page.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// newStream lifts the server's read timeout from the connection: when it
// passed, the server would cancel the request and end a stream meant to
// stay open. The server's write timeout is replaced on every send.
func newStream(w http.ResponseWriter) *stream {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	return &stream{w: w, rc: rc}
}

// send writes one frame, within writeWait, so a page that stopped reading
// ends its stream rather than holding it forever.
func (s *stream) send(frame []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := s.w.Write(frame); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

// encode frames msg as one server-sent event. JSON holds no raw newline,
// so the data fits on one line.
func encode(event string, msg any) ([]byte, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", event, err)
	}
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", event, data), nil
}
