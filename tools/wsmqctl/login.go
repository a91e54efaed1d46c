package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/tools/wsmqctl/internal/tokenfile"
)

// httpTimeout bounds one HTTP call to the gateway.
const httpTimeout = 15 * time.Second

const loginHelp = `Usage: wsmqctl login [--user NAME] [--print]

Logs in through the gateway (POST /v1/authenticate) and prints your user id,
which is also the name of your own queue. The tokens are stored in
$XDG_CONFIG_HOME/wsmq/tokens.json (~/.config/wsmq/tokens.json; mode 0600)
for 'wsmqctl listen', unless --print, which prints them as JSON instead.

The password is never taken from argv: it is WSMQ_PASSWORD when set, else
the first line of stdin when stdin is not a terminal, else prompted for.

  echo demo | wsmqctl login --user demo`

func (c *cli) login(ctx context.Context, args []string) error {
	fs := c.newFlagSet("login", loginHelp)
	user := fs.String("user", c.getenv("WSMQ_USER"), "user `name` (env WSMQ_USER)")
	printOnly := fs.Bool("print", false, "print the tokens as JSON instead of storing them")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.nargs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *user == "" {
		return usagef("--user NAME is required (or set WSMQ_USER)")
	}
	u, err := c.g.gatewayURL("")
	if err != nil {
		return err
	}
	password, err := c.password("Password: ", false)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, httpTimeout)
	defer cancel()
	ans, err := client.Login(ctx, u.String(), *user, password)
	var se *client.StatusError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("login refused (HTTP %d): %s", se.StatusCode, se.Message)
	case err != nil:
		return fmt.Errorf("cannot log in at the gateway: %w", err)
	}
	if *printOnly {
		return json.NewEncoder(c.stdout).Encode(map[string]any{
			"userId": ans.UserID, "token": ans.Token, "accessToken": ans.AccessToken, "expiresAt": ans.ExpiresAt,
		})
	}
	path, err := tokenfile.Path(c.getenv)
	if err != nil {
		return err
	}
	err = tokenfile.Save(path, tokenfile.Session{
		Gateway: c.g.gateway, UserName: *user, UserID: ans.UserID,
		Token: ans.Token, AccessToken: ans.AccessToken, ExpiresAt: ans.ExpiresAt,
	})
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(c.stdout, ans.UserID)
	_, _ = fmt.Fprintf(c.stderr, "wsmqctl: logged in as %s; tokens stored in %s\n", *user, path)
	return nil
}

// password reads a secret: WSMQ_PASSWORD when set, else the first line of
// stdin when it is not a terminal, else a prompt without echo (twice when
// confirm).
func (c *cli) password(prompt string, confirm bool) (string, error) {
	if p := c.getenv("WSMQ_PASSWORD"); p != "" {
		return p, nil
	}
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a, err := readHidden(f, c.stderr, prompt)
		if err != nil {
			return "", err
		}
		if confirm {
			b, err := readHidden(f, c.stderr, "Repeat: ")
			if err != nil {
				return "", err
			}
			if a != b {
				return "", errors.New("passwords do not match")
			}
		}
		if a == "" {
			return "", errors.New("empty password")
		}
		return a, nil
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password: set WSMQ_PASSWORD, pipe it on stdin, or run on a terminal to be prompted")
	}
	return line, nil
}

func readHidden(f *os.File, out io.Writer, prompt string) (string, error) {
	_, _ = fmt.Fprint(out, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	_, _ = fmt.Fprintln(out)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}
