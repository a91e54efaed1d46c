//go:build !race

package testenv

// raceEnabled reports whether the test binary was built with -race; Build
// then builds the binaries it runs with -race too.
const raceEnabled = false
