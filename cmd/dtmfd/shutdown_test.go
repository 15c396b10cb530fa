package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/simulator"
)

// TestShutdownOnSIGTERM stops dtmfd as Kubernetes does, with calls open
// mid-menu and writes held up by a slow platform, and checks what the
// platform and the load balancer see: readiness turns first, new
// simulator input is refused, the voice stream ends with a normal close,
// every decision is delivered before dtmfd exits, and it exits 0. The
// signal goes to the whole test process, so this test does not run in
// parallel.
func TestShutdownOnSIGTERM(t *testing.T) {
	p := newProxied(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	const simToken = "simulator-token"
	settings := map[string]string{
		"CXONE_CLIENT_ID":       testID,
		"CXONE_CLIENT_SECRET":   testSecret,
		"CXONE_BASE_URL":        p.url,
		"DTMFD_ADDR":            fmt.Sprintf("127.0.0.1:%d", port),
		"DTMFD_INPUT_TIMEOUT":   "5s",
		"DTMFD_WRITERS":         "1",
		"DTMFD_SHUTDOWN_GRACE":  "30s",
		"DTMFD_DEAD_LETTERS":    filepath.Join(t.TempDir(), "dead.jsonl"),
		"DTMFD_SIMULATOR":       "on",
		"DTMFD_SIMULATOR_TOKEN": simToken,
		"DTMFD_LOG_FORMAT":      "json",
	}
	logs := &capturedLogs{t: t}
	exit := make(chan int, 1)
	go func() { exit <- run(nil, io.Discard, logs, func(k string) string { return settings[k] }) }()
	t.Cleanup(testClient.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			logs.dump()
		}
	})
	signalled := false
	t.Cleanup(func() {
		if !signalled && probe(base, "/health") == http.StatusOK {
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
			<-exit
		}
	})
	waitWithin(t, "dtmfd to be ready", 20*time.Second, func() bool {
		return probe(base, "/readyz") == http.StatusOK
	})

	// Five calls decide now and their writes queue behind the slow
	// platform; three stop mid-menu and are open when the signal comes.
	p.emu.DelayWrites(300 * time.Millisecond)
	want := map[string]string{}
	for i := range 5 {
		id := fmt.Sprintf("done-%d", i)
		pressKeys(p.emu, id, "2A1")
		want[id] = `ivr_selection=["2","A","1"] ivr_status=completed`
	}
	for i := range 3 {
		id := fmt.Sprintf("open-%d", i)
		pressKeys(p.emu, id, "3B")
		want[id] = "ivr_status=timeout_fallback"
	}
	waitWithin(t, "the calls to be under way", 10*time.Second, func() bool {
		return metricSum(t, base, "dtmfd_calls_ended_total") == 5 &&
			metricSum(t, base, "dtmfd_calls_open") == 3 && p.emu.WriteRequests() >= 1
	})

	signalled = true
	must(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	waitWithin(t, "readiness to turn", 10*time.Second, func() bool {
		code, body := curl{path: "/readyz"}.do(t, base)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down")
	})
	if n := len(p.emu.Writes()); n == len(want) {
		t.Error("readiness turned only after every write was delivered; it must turn first")
	}
	checkInputRefused(t, base, simToken)

	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("dtmfd exited %d after SIGTERM, want 0", code)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("dtmfd did not exit after SIGTERM")
	}
	checkDelivered(t, p.emu, want)
	waitWithin(t, "the platform to see the stream close", 5*time.Second, func() bool {
		return len(closeCodes(p.emuLogs)) > 0
	})
	if codes := closeCodes(p.emuLogs); len(codes) != 1 || codes[0] != 1000 {
		t.Errorf("the platform saw the stream close with %v, want one normal close (1000)", codes)
	}
}

// probe returns the status of GET path on the dtmfd at base, or 0 when
// it does not answer.
func probe(base, path string) int {
	resp, err := testClient.Get(base + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkInputRefused posts a key to the simulator of a draining dtmfd: it
// must be refused with 503 and a JSON error.
func checkInputRefused(t *testing.T, base, token string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/simulator",
		strings.NewReader(`{"callId":"too-late","digit":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 503 || body.Error == "" {
		t.Errorf("POST /simulator while draining = %d %+v (%v), want 503 with a JSON error",
			resp.StatusCode, body, err)
	}
}

// checkDelivered asserts that the platform holds exactly one write per
// call, with the values in want.
func checkDelivered(t *testing.T, emu *emulator.Emulator, want map[string]string) {
	t.Helper()
	got := map[string][]string{}
	for _, w := range emu.Writes() {
		parts := make([]string, len(w.Variables))
		for i, v := range w.Variables {
			parts[i] = v.Name + "=" + v.Value
		}
		got[w.InteractionID] = append(got[w.InteractionID], strings.Join(parts, " "))
	}
	for id, vars := range want {
		if g := got[id]; len(g) != 1 || g[0] != vars {
			t.Errorf("%s: the platform holds %q at exit, want [%s]", id, g, vars)
		}
		delete(got, id)
	}
	if len(got) > 0 {
		t.Errorf("writes for calls never made: %v", got)
	}
}

// metricSum sums the samples of the family name on the dtmfd at base.
func metricSum(t *testing.T, base, name string) float64 {
	t.Helper()
	families, err := scrapeURL(base)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, m := range families[name].GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

// closeCodes returns the close code of each stream the emulator saw end,
// from its "stream disconnected" log lines.
func closeCodes(emuLogs *capturedLogs) []int {
	var codes []int
	for _, line := range emuLogs.all() {
		var rec struct {
			Msg  string
			Code int
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "stream disconnected" {
			codes = append(codes, rec.Code)
		}
	}
	return codes
}

// TestShutdownClosesStuckConnections stops dtmfd while a client holds a
// request half sent. Shutdown waits for it only so long: when dtmfd exits,
// the connection is closed, not left open until the client gives up.
func TestShutdownClosesStuckConnections(t *testing.T) {
	t.Parallel()
	s, logs := startLocalService(t, nil)
	waitWithin(t, "dtmfd to be ready", 10*time.Second, func() bool {
		return probe("http://"+s.app.Addr(), "/readyz") == http.StatusOK
	})

	conn, err := net.Dial("tcp", s.app.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /simulator HTTP/1.1\r\nHost: dtmfd\r\n"+
		"Content-Length: 100\r\n\r\n{\"callId\":")
	must(t, err)

	s.shutdown(t)
	if logs.count("http server did not close in time; closing its connections") != 1 {
		t.Error("shutdown did not report the connection it had to close")
	}
	must(t, conn.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Error("the half-sent request's connection is still open after dtmfd exited")
	}
}

// pipeListener is a net.Listener of in-memory connections, so that an
// HTTP server runs inside a synctest bubble, where its timeouts pass in
// virtual time.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial returns the client end of a new connection to the server.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// serverUnderTest is dtmfd's HTTP server on in-memory connections, with
// handlers that report when their reads and writes fail.
type serverUnderTest struct {
	l *pipeListener
	// failed receives the time a handler's read or write failed, from
	// the start of the test.
	failed chan time.Duration
}

func startServerUnderTest(t *testing.T, start time.Time) *serverUnderTest {
	s := &serverUnderTest{l: newPipeListener(), failed: make(chan time.Duration, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			s.failed <- time.Since(start)
		}
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				s.failed <- time.Since(start)
				return
			}
		}
	})
	mux.Handle("/simulator", &simulator.Handler{
		Ingest: func(string, byte, time.Time) error { return nil }})

	a := &app{log: slog.New(slog.DiscardHandler)}
	srv := a.newServer(mux)
	go srv.Serve(s.l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// TestHTTPServerLimits checks what a slow, stalled or greedy client meets:
// it is cut off after the server's timeouts, and an oversized request is
// refused with a status that says so. Time is virtual.
func TestHTTPServerLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// send writes the client's side; then the client reads until
		// the connection ends.
		send string
		// read is whether the client reads the reply as it comes.
		read bool
		// wantCut, when set, is when the server ends the connection;
		// wantFailed, when the handler's read or write fails.
		wantCut, wantFailed time.Duration
		// wantReply starts the reply the client reads.
		wantReply string
		// wantBody is in the reply's body.
		wantBody string
	}{
		{name: "headers sent too slowly", send: "GET /health HTTP/1.1\r\nHost: dtmfd\r\n",
			read: true, wantCut: 5 * time.Second},
		{name: "body sent too slowly",
			send: "POST /upload HTTP/1.1\r\nHost: dtmfd\r\nContent-Length: 100\r\n\r\nten bytes.",
			read: true, wantFailed: 10 * time.Second},
		{name: "reply never read", send: "GET /download HTTP/1.1\r\nHost: dtmfd\r\n\r\n",
			wantFailed: 15 * time.Second},
		{name: "idle keep-alive connection", send: "GET /health HTTP/1.1\r\nHost: dtmfd\r\n\r\n",
			read: true, wantCut: 60 * time.Second, wantReply: "HTTP/1.1 200 OK"},
		{name: "headers too large",
			send: "GET /health HTTP/1.1\r\nHost: dtmfd\r\nX-Pad: " + strings.Repeat("x", 20<<10) + "\r\n\r\n",
			read: true, wantReply: "HTTP/1.1 431 "},
		{name: "simulator body too large",
			send: "POST /simulator HTTP/1.1\r\nHost: dtmfd\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n" +
				`{"callId":"` + strings.Repeat("x", 4980) + `",}`,
			read: true, wantReply: "HTTP/1.1 413 ", wantBody: `{"error":"body over 4096 bytes"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				srv := startServerUnderTest(t, start)
				conn := srv.l.dial()
				defer conn.Close()

				go io.WriteString(conn, tt.send)
				if !tt.read {
					synctest.Wait()
					time.Sleep(tt.wantFailed + time.Second)
				}
				reply, _ := io.ReadAll(bufio.NewReader(conn))
				cut := time.Since(start)

				if tt.wantCut > 0 && cut != tt.wantCut {
					t.Errorf("connection ended after %v, want %v", cut, tt.wantCut)
				}
				if tt.wantFailed > 0 {
					select {
					case at := <-srv.failed:
						if at != tt.wantFailed {
							t.Errorf("handler cut off after %v, want %v", at, tt.wantFailed)
						}
					default:
						t.Error("the handler was never cut off")
					}
				}
				if !strings.HasPrefix(string(reply), tt.wantReply) {
					t.Errorf("reply %.80q, want it to start %q", reply, tt.wantReply)
				}
				if !strings.Contains(string(reply), tt.wantBody) {
					t.Errorf("reply %.300q, want its body to hold %s", reply, tt.wantBody)
				}
			})
		})
	}
}
