package tokenfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSaveWritesAnOwnerOnlyFileThatLoadReadsBack(t *testing.T) {
	dir := t.TempDir()
	path, err := Path(getenv(map[string]string{"XDG_CONFIG_HOME": dir}))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "wsmq", "tokens.json"); path != want {
		t.Fatalf("Path = %s, want %s", path, want)
	}
	s := Session{Gateway: "http://g", UserName: "u", UserID: "id1", Token: "t", AccessToken: "a", ExpiresAt: 42}
	if err := Save(path, s); err != nil {
		t.Fatal(err)
	}
	s.Token = "t2" // overwrite keeps the modes
	if err := Save(path, s); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
	got, err := Load(path)
	if err != nil || got != s {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, s)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tokens-*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestLoadWithoutAFileIsNotLoggedIn(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "tokens.json"))
	if !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Load of a missing file: %v, want ErrNotLoggedIn", err)
	}
}

func TestPathFallsBackToHomeConfig(t *testing.T) {
	p, err := Path(getenv(map[string]string{"HOME": "/home/x"}))
	if err != nil || p != "/home/x/.config/wsmq/tokens.json" {
		t.Fatalf("Path = %q, %v", p, err)
	}
	if _, err := Path(getenv(map[string]string{})); err == nil {
		t.Fatal("Path without HOME and XDG_CONFIG_HOME: no error")
	}
}

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
