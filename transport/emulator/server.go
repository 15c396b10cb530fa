package emulator

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// server is the HTTP server an emulator runs on, in the background.
type server struct {
	ln     net.Listener
	srv    *http.Server
	served chan struct{}
}

// serve listens on addr and serves h until close.
func serve(addr string, h http.Handler, log *slog.Logger) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}

	s := &server{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		served: make(chan struct{}),
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// url is the server's base URL; "" for a nil server (not started).
func (s *server) url() string {
	if s == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// close stops the server and waits for it; a nil server is a no-op.
func (s *server) close() error {
	if s == nil {
		return nil
	}
	err := s.srv.Close()
	<-s.served
	if err != nil {
		return fmt.Errorf("close server: %w", err)
	}
	return nil
}
