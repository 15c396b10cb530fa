// Package browsertest starts the headless Chromium that the web keypad's
// tests drive. Only tests import it.
package browsertest

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path is the Chromium the tests run: $DTMFD_CHROMIUM, or Debian's.
func Path() string {
	if p := os.Getenv("DTMFD_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// Start starts a headless Chromium for t and returns its context; new
// tabs are chromedp.NewContext of it. The browser stops when t ends.
// Without a Chromium t fails rather than skips: the keypad is tested
// only in a real browser. Under -short t is skipped.
func Start(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests do not run under -short")
	}
	path := Path()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no Chromium at %s: install it (apt-get install -y chromium) "+
			"or point DTMFD_CHROMIUM at one: %v", path, err)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}
