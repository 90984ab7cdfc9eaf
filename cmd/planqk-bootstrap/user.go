package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
)

// maxPasswordBytes bounds what is read as a password, so that a stream
// piped in by mistake is refused rather than sent to Vault.
const maxPasswordBytes = 1024

// errPasswordArgument refuses the old form "user <name> <password>". It
// never repeats the argument.
var errPasswordArgument = errors.New("a password is not taken on the command line, where " +
	"every local user can read it (ps, /proc) and the shell keeps it in its history: " +
	`pipe it on standard input (printf '%s\n' "$PASSWORD" | planqk-bootstrap user NAME) ` +
	"or use -password-file PATH")

// runUser is the user command: user [-password-file PATH]
// [-reset-password | -existing-entity] <name>.
func runUser(ctx context.Context, b steps, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("user", flag.ContinueOnError)
	// Parse errors are not printed: they would repeat a mistyped argument,
	// which may be a password.
	flags.SetOutput(io.Discard)
	passwordFile := flags.String("password-file", "", "file holding the password on one line")
	resetPassword := flags.Bool("reset-password", false, "replace the password of an existing login")
	existingEntity := flags.Bool("existing-entity", false, "give an existing entity without a login one")
	// The flag may come before or after the name.
	var positional []string
	for rest := args; ; {
		if err := flags.Parse(rest); err != nil {
			return errUsage
		}
		if flags.NArg() == 0 {
			break
		}
		positional = append(positional, flags.Arg(0))
		rest = flags.Args()[1:]
	}
	switch {
	case *resetPassword && *existingEntity:
		return errUsage
	case len(positional) == 2:
		return errPasswordArgument
	case len(positional) != 1:
		return errUsage
	}
	name := positional[0]
	// Checked before asking for a password, and again by the bootstrap.
	if err := bootstrap.CheckLoginName(name); err != nil {
		return err
	}

	password, err := readPassword(name, *passwordFile, stdin, stderr)
	if err != nil {
		return err
	}
	user := b.User
	switch {
	case *resetPassword:
		user = b.ResetPassword
	case *existingEntity:
		user = b.AdoptEntity
	}
	id, err := user(ctx, name, password)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

// readPassword returns the user's password: the one line of passwordFile if
// one is given, else what is typed at the terminal without echo, else the
// one line on stdin.
func readPassword(name, passwordFile string, stdin io.Reader, stderr io.Writer) (string, error) {
	if passwordFile != "" {
		f, err := os.Open(passwordFile)
		if err != nil {
			return "", fmt.Errorf("reading the password file: %w", err)
		}
		defer f.Close()
		return passwordLine(f, "the password file")
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Password for %s (empty keeps an existing login as it is): ", name)
		password, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(password), nil
	}
	return passwordLine(stdin, "standard input")
}

// passwordLine reads r to its end: one line, whose newline ("\n" or
// "\r\n") is not part of the password. Empty input is an empty password.
func passwordLine(r io.Reader, source string) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPasswordBytes+3))
	if err != nil {
		return "", fmt.Errorf("reading the password from %s: %w", source, err)
	}
	line := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	switch {
	case len(line) > maxPasswordBytes:
		return "", fmt.Errorf("the password from %s is longer than %d bytes", source, maxPasswordBytes)
	case strings.ContainsAny(line, "\r\n"):
		return "", fmt.Errorf("%s holds more than one line: give the password alone on one line", source)
	}
	return line, nil
}
