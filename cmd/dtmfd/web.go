package main

import (
	"github.com/dtmfd/dtmfd/transport/web"
)

// webHub builds the web keypad on the app's current flow, where the
// simulator is served, behind the simulator's token; nil otherwise. The
// hub must be closed before the HTTP server shuts down, which otherwise
// waits for the open pages' event streams until its deadline.
func (a *app) webHub() *web.Hub {
	if !a.cfg.simulatorOn() {
		return nil
	}
	return web.New(web.Options{
		Flow:   a.flow.Load,
		Token:  a.cfg.SimulatorToken,
		Logger: a.log.With("component", "web"),
	})
}
