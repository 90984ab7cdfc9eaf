// Command planqk-portal serves the PlanQK "Access Tokens" settings pages:
// personal access tokens, the person's own provider access tokens and
// their organizations' provider access tokens. It acts strictly as the
// signed-in person against Vault: the PlanQK engine and Vault's ACL
// policies stay the only authority over what anyone may do.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "planqk-portal:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := parseConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "planqk-portal", Level: hclog.LevelFromString(cfg.LogLevel)})
	p, err := newPortal(cfg, logger)
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return p.serve(ctx, listener)
}

// serve runs the portal on listener until ctx ends, then revokes the
// Vault tokens of the sessions it held: they end with the process.
func (p *portal) serve(ctx context.Context, listener net.Listener) error {
	server := &http.Server{
		Handler:           p.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          p.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	if p.cfg.tls() {
		cert, err := tls.LoadX509KeyPair(p.cfg.TLSCert, p.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("loading -tls-cert and -tls-key: %w", err)
		}
		server.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		listener = tls.NewListener(listener, server.TLSConfig)
	}
	if p.cfg.plainHTTPOutsideLoopback() {
		p.log.Warn("WARNING: serving plain HTTP to browsers outside this machine. Passwords and session " +
			"cookies would cross the network unencrypted, and browsers refuse the portal's Secure cookies " +
			"over plain HTTP, so sign-in will not work. Use -tls-cert and -tls-key, or a TLS-terminating " +
			"proxy with -public-url https://...")
	}
	p.log.Info("serving", "url", p.cfg.PublicURL, "listen", listener.Addr().String(), "vault", p.cfg.VaultAddr,
		"mount", p.cfg.Mount, "sign_in", p.cfg.AuthMethods)

	janitorCtx, stopJanitor := context.WithCancel(context.Background())
	defer stopJanitor()
	go p.revokeExpired(janitorCtx, time.Minute)

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	p.log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := server.Shutdown(shutdownCtx)
	p.revokeSessions(shutdownCtx, p.sessions.drain())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
