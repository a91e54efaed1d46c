// Package browsertest drives wsmq's pages in a real headless Chromium for
// tests: it finds the browser and gives the launch options that work on a
// machine with a closed network.
package browsertest

import (
	"errors"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// InstallHint is how to get the browser on Debian.
const InstallHint = "apt-get install -y --no-install-recommends chromium"

// ErrNoChromium is returned by FindChromium when no browser is installed.
var ErrNoChromium = errors.New("chromium not found (install it with `" + InstallHint + "`, or set WSMQ_CHROMIUM)")

// FindChromium returns the browser to drive: $WSMQ_CHROMIUM when set, else
// the first of chromium, chromium-browser, google-chrome found in PATH.
func FindChromium() (string, error) {
	if p := os.Getenv("WSMQ_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", errors.Join(ErrNoChromium, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// AllocatorOptions are the launch options of a headless Chromium at
// execPath with a fresh profile in userDataDir. Background networking,
// component updates and sync are off: the machines this runs on reach no
// outside host, and the browser would otherwise keep trying.
func AllocatorOptions(execPath, userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(userDataDir),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI; the page under test is our own
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1000, 760),
	}
}
