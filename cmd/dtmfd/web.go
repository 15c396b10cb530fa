package main

import (
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/web"
)

// webHub builds the web keypad on the app's current flow, where the
// simulator is served, behind the simulator's token; nil otherwise. The
// hub must be closed before the HTTP server shuts down, which otherwise
// waits for the open pages' event streams until its deadline.
//
// Against the built-in emulator, the keypad's feed shows the writes the
// emulator received, through emulatorWrites; otherwise, the writes the
// writer delivered or gave up on.
func (a *app) webHub() *web.Hub {
	if !a.cfg.simulatorOn() {
		return nil
	}
	return web.New(web.Options{
		Flow:     a.flow.Load,
		Token:    a.cfg.SimulatorToken,
		Logger:   a.log.With("component", "web"),
		Metrics:  a.metrics,
		Received: a.usesEmulator(),
	})
}

// usesEmulator reports whether decisions are written to the built-in
// emulator of the tutorial's platform.
func (a *app) usesEmulator() bool {
	return a.cfg.local() && !a.cfg.CXone.enabled()
}

// emulatorWrites returns the emulator's hook for the writes it accepted:
// it hands them to the keypad's feed. Nil without a keypad.
func (a *app) emulatorWrites() func(emulator.Write) {
	hub := a.hub
	if hub == nil {
		return nil
	}
	return func(w emulator.Write) {
		vars := make([]ivrspec.Variable, len(w.Variables))
		for i, v := range w.Variables {
			vars[i] = ivrspec.Variable{Name: v.Name, Value: v.Value}
		}
		hub.OnReceived(w.InteractionID, vars, w.At)
	}
}

// keypadURL is where the web keypad is served: on the simulator's own
// address when it has one.
func (a *app) keypadURL() string {
	addr := a.Addr()
	if a.simListener != nil {
		addr = a.simListener.Addr().String()
	}
	return "http://" + hostPort(addr) + "/"
}

// logKeypad says where to open the web keypad and where to send keys with
// curl. With a token it says where the token goes, never what it is.
func (a *app) logKeypad() {
	if a.hub == nil {
		return
	}
	url := a.keypadURL()
	curl := "curl -d '{\"callId\":\"call-1\",\"digits\":\"2A1\"}' "
	if a.cfg.SimulatorToken == "" {
		a.log.Info("open the web keypad at "+url, "url", url)
	} else {
		a.log.Info("open the web keypad at "+url+"?token=TOKEN, where TOKEN is "+
			"the simulator token (DTMFD_SIMULATOR_TOKEN)", "url", url)
		curl += "-H \"Authorization: Bearer $DTMFD_SIMULATOR_TOKEN\" "
	}
	if a.emu == nil {
		a.log.Info("or try: " + curl + url + "simulator")
		return
	}
	a.log.Info("or try: " + curl + url + "simulator && curl http://" + hostPort(a.Addr()) +
		"/emulator/writes")
}
