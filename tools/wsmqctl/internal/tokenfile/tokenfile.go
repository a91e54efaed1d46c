// Package tokenfile stores wsmqctl's login session (the gateway's tokens)
// in a file only its owner can read: $XDG_CONFIG_HOME/wsmq/tokens.json
// (mode 0600, directory 0700). The password is never part of it.
package tokenfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotLoggedIn is returned by Load when no session is stored.
var ErrNotLoggedIn = errors.New("not logged in")

// Session is one login as the gateway answered it.
type Session struct {
	Gateway     string `json:"gateway"`
	UserName    string `json:"userName"`
	UserID      string `json:"userId"`
	Token       string `json:"token"`
	AccessToken string `json:"accessToken"`
	ExpiresAt   int64  `json:"expiresAt"` // of Token, Unix milliseconds
}

// Path returns the session file's path: $XDG_CONFIG_HOME/wsmq/tokens.json,
// or $HOME/.config/wsmq/tokens.json when XDG_CONFIG_HOME is unset.
func Path(getenv func(string) string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: cannot place tokens.json")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "wsmq", "tokens.json"), nil
}

// Load reads the session at path; ErrNotLoggedIn when the file is missing.
func Load(path string) (Session, error) {
	var s Session
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("%w (no %s)", ErrNotLoggedIn, path)
	}
	if err != nil {
		return s, fmt.Errorf("read session: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read session %s: %w", path, err)
	}
	if s.Token == "" && s.AccessToken == "" {
		return s, fmt.Errorf("%w (%s holds no tokens)", ErrNotLoggedIn, path)
	}
	return s, nil
}

// Save writes s to path atomically (a 0600 temp file renamed over it),
// creating the directory with mode 0700 when missing.
func Save(path string, s Session) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tokens-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, 0o600)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save session: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}
