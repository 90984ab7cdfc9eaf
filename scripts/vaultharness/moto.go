package vaultharness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Moto is a moto_server - moto's standalone stand-in of AWS's APIs (STS,
// IAM, S3, ...) - listening on 127.0.0.1, for the derived-credentials
// tests and the bench. moto accepts any signature and keeps what it was
// asked in its state, which /moto-api/data.json shows.
type Moto struct {
	URL string

	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// StartMoto starts bin (scripts/ensure-moto.sh finds it) on a free port,
// its log in dir/moto.log, and waits until it answers. A port taken in the
// meantime is retried on another.
func StartMoto(ctx context.Context, bin, dir string) (*Moto, error) {
	if bin == "" {
		return nil, errors.New("no moto_server: set MOTO_SERVER_BIN (scripts/ensure-moto.sh prints it, or the command that installs it)")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		m, err := startMotoOn(ctx, bin, dir, port)
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startMotoOn(ctx context.Context, bin, dir string, port int) (*Moto, error) {
	log, err := os.OpenFile(filepath.Join(dir, "moto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a shim (pyenv) and the Python process it
	// starts stop together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting moto_server: %w", err)
	}
	m := &Moto{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan error, 1), log: log}
	go func() { m.done <- cmd.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/moto-api/data.json", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case err := <-m.done:
			log.Close()
			return nil, fmt.Errorf("moto_server exited before answering (see %s): %v", log.Name(), err)
		case <-ctx.Done():
			m.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("moto_server did not answer on %s within 30s (see %s)", m.URL, log.Name())
		}
	}
}

// Stop ends moto_server and waits for it.
func (m *Moto) Stop() {
	if m == nil || m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
	m.log.Close()
}
