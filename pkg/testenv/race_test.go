//go:build race

package testenv_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wsmq/wsmq/pkg/testenv"
)

// racyChild, set in the environment, makes TestDataRaceInAChildProcessFailsTheTest
// play the test that starts the racy program.
const racyChild = "WSMQ_TESTENV_RACY_CHILD"

// TestDataRaceInAChildProcessFailsTheTest builds testdata/racy (a program
// with a data race) through Build, runs it through StartProcess in a test of
// its own (this test binary run again), and checks that test failed because
// of the race: Build built it with -race and the harness read the report.
func TestDataRaceInAChildProcessFailsTheTest(t *testing.T) {
	if os.Getenv(racyChild) == "1" {
		bin := testenv.Build(t, "github.com/wsmq/wsmq/pkg/testenv/testdata/racy")
		p := testenv.StartProcess(t, "racy", bin, nil)
		<-p.Done() // the program races once and exits; the cleanup checks its output
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDataRaceInAChildProcessFailsTheTest$", "-test.count=1")
	cmd.Env = append(os.Environ(), racyChild+"=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("the test running a racy program passed (err %v); output:\n%s", err, out)
	}
	for _, want := range []string{"racy reported a data race", "WARNING: DATA RACE", "testdata/racy/main.go"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output of the failed test does not contain %q:\n%s", want, out)
		}
	}
}
