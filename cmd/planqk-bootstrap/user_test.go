package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// userRecorder stands in for the bootstrapper: it records the users it is
// asked to create. The user command calls no other step.
type userRecorder struct {
	steps
	users     []string
	passwords []string
	resets    []string
	adopted   []string
}

func (r *userRecorder) AdoptEntity(_ context.Context, name, password string) (string, error) {
	r.adopted = append(r.adopted, name)
	r.passwords = append(r.passwords, password)
	return "entity-" + name, nil
}

func (r *userRecorder) User(_ context.Context, name, password string) (string, error) {
	r.users = append(r.users, name)
	r.passwords = append(r.passwords, password)
	return "entity-" + name, nil
}

func (r *userRecorder) ResetPassword(_ context.Context, name, password string) (string, error) {
	r.resets = append(r.resets, name)
	r.passwords = append(r.passwords, password)
	return "entity-" + name, nil
}

// Only -reset-password replaces an existing login's password; without it
// the command asks for a login to be created or kept.
func TestUser_resetsAPasswordOnlyWhenTold(t *testing.T) {
	recorder, _, err := runUserCommand(t, "pw\n", "user", "mia")
	if err != nil || len(recorder.users) != 1 || len(recorder.resets) != 0 {
		t.Fatalf("user mia: users %v, resets %v, %v", recorder.users, recorder.resets, err)
	}
	for _, args := range [][]string{{"user", "-reset-password", "mia"}, {"user", "mia", "-reset-password"}} {
		recorder, _, err = runUserCommand(t, "pw\n", args...)
		if err != nil || len(recorder.users) != 0 || fmt.Sprint(recorder.resets) != "[mia]" {
			t.Fatalf("%v: users %v, resets %v, %v", args, recorder.users, recorder.resets, err)
		}
	}
	// -existing-entity gives an existing entity a login; never with a reset.
	recorder, _, err = runUserCommand(t, "pw\n", "user", "-existing-entity", "mia")
	if err != nil || len(recorder.users)+len(recorder.resets) != 0 || fmt.Sprint(recorder.adopted) != "[mia]" {
		t.Fatalf("user -existing-entity mia: users %v, resets %v, adopted %v, %v", recorder.users, recorder.resets, recorder.adopted, err)
	}
	if _, _, err = runUserCommand(t, "pw\n", "user", "-existing-entity", "-reset-password", "mia"); !errors.Is(err, errUsage) {
		t.Fatalf("both flags: %v", err)
	}
	// A capital letter is refused before a password is asked for.
	recorder, _, err = runUserCommand(t, "pw\n", "user", "Mia")
	if err == nil || len(recorder.users)+len(recorder.resets) != 0 {
		t.Fatalf("user Mia: users %v, resets %v, %v", recorder.users, recorder.resets, err)
	}
}

func runUserCommand(t *testing.T, stdin string, args ...string) (*userRecorder, string, error) {
	t.Helper()
	recorder := &userRecorder{}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), recorder, args, strings.NewReader(stdin), &stdout, &stderr)
	return recorder, stdout.String(), err
}

func TestUser_readsThePasswordFromStdin(t *testing.T) {
	for stdin, want := range map[string]string{
		"s3cret pw\n":   "s3cret pw",
		"s3cret pw":     "s3cret pw",
		"s3cret pw\r\n": "s3cret pw",
		" lead/trail ":  " lead/trail ",
		"":              "", // keeps an existing login
		"\n":            "",
	} {
		recorder, stdout, err := runUserCommand(t, stdin, "user", "alice.s")
		if err != nil {
			t.Fatalf("stdin %q: %v", stdin, err)
		}
		if len(recorder.passwords) != 1 || recorder.passwords[0] != want || recorder.users[0] != "alice.s" {
			t.Errorf("stdin %q: User got %q %q, want the password %q", stdin, recorder.users, recorder.passwords, want)
		}
		if stdout != "entity-alice.s\n" {
			t.Errorf("stdin %q: printed %q, want the entity id", stdin, stdout)
		}
	}
}

func TestUser_readsThePasswordFromAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"user", "-password-file", file, "mia"},
		{"user", "-password-file=" + file, "mia"},
		{"user", "mia", "-password-file", file},
	} {
		recorder, _, err := runUserCommand(t, "not-this-one\n", args...)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if len(recorder.passwords) != 1 || recorder.passwords[0] != "from-the-file" {
			t.Errorf("%q: User got %q, want the file's password", args, recorder.passwords)
		}
	}

	if _, _, err := runUserCommand(t, "", "user", "-password-file", filepath.Join(t.TempDir(), "missing"), "mia"); err == nil {
		t.Error("a missing password file was accepted")
	}
}

func TestUser_refusesAPasswordOnTheCommandLine(t *testing.T) {
	const password = "hunter2-on-argv"
	for _, args := range [][]string{
		{"user", "mia", password},
		{"user", "-password-file", "/dev/null", "mia", password},
	} {
		recorder, _, err := runUserCommand(t, "", args...)
		if !errors.Is(err, errPasswordArgument) {
			t.Fatalf("%q: err = %v, want the refusal of a password argument", args, err)
		}
		for _, hint := range []string{"ps", "standard input", "-password-file"} {
			if !strings.Contains(err.Error(), hint) {
				t.Errorf("the refusal does not mention %q: %v", hint, err)
			}
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("the refusal repeats the password: %v", err)
		}
		if len(recorder.users) != 0 {
			t.Errorf("%q: a user was created", args)
		}
	}
}

func TestUser_refusesBadInputBeforeCreatingAnything(t *testing.T) {
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"pw\n", []string{"user", "acme+"}, "invalid user name"},
		{"pw\n", []string{"user", ""}, "invalid user name"},
		{"pw\n", []string{"user", "alice@example.com"}, "userpass"},
		{"pw\nsecond line\n", []string{"user", "mia"}, "more than one line"},
		{"a\rb\n", []string{"user", "mia"}, "more than one line"},
		{strings.Repeat("p", maxPasswordBytes+1), []string{"user", "mia"}, "longer than"},
		{"pw\n", []string{"user"}, errUsage.Error()},
		{"pw\n", []string{"user", "-unknown-flag", "mia"}, errUsage.Error()},
	} {
		recorder, _, err := runUserCommand(t, c.stdin, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%q with stdin %q: err = %v, want %q", c.args, c.stdin, err, c.want)
		}
		if len(recorder.users) != 0 {
			t.Errorf("%q: a user was created", c.args)
		}
		if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "second line") {
			t.Errorf("the error repeats the input: %v", err)
		}
	}
}
