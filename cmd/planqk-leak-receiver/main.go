// Command planqk-leak-receiver is the endpoint GitHub's secret scanning
// sends leaked PlanQK PATs to (GitHub's secret-scanning partner program):
// it verifies GitHub's signature, has the engine revoke the tokens by
// value (leaks/revoke) with its own Vault token, and answers GitHub's
// feedback. The engine tells each owner.
//
// It is its own service rather than part of the portal: the portal acts
// only as the signed-in user, whereas this endpoint is public, unsigned-in,
// and acts with a scanner token (policy planqk-scanner) that may revoke
// anyone's token by value and learn nothing else.
//
//	VAULT_ADDR=https://vault:8200 VAULT_TOKEN=<planqk-scanner token> \
//	  planqk-leak-receiver -listen :8443 -mount planqk
//
// Flags: -keys (GitHub's key set URL, default
// https://api.github.com/meta/public_keys/secret_scanning, or a file),
// -vault-token-file (read at each batch; else VAULT_TOKEN), -feedback-hash
// (answer token_hash instead of token_raw). GITHUB_TOKEN, when set, is
// sent with key-set requests against GitHub's rate limit. Serve it behind
// TLS (a reverse proxy) at the URL registered with GitHub.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
)

const defaultKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "planqk-leak-receiver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flags := flag.NewFlagSet("planqk-leak-receiver", flag.ContinueOnError)
	listen := flags.String("listen", "127.0.0.1:8443", "address to listen on")
	path := flags.String("path", "/", "URL path of the endpoint")
	mount := flags.String("mount", "planqk", "the engine's mount path")
	keysSource := flags.String("keys", defaultKeysURL, "GitHub's secret-scanning key set: an http(s) URL or a file in the same format")
	keysRefresh := flags.Duration("keys-refresh", time.Hour, "load the key set again this often, so that a key GitHub withdrew stops being accepted (0: only when an unknown key id asks)")
	refresh := flags.Duration("keys-min-interval", time.Minute, "the least time after a load of the key set before an unknown key id loads it again (after a failed load: the lesser of this and 5s)")
	tokenFile := flags.String("vault-token-file", "", "file holding the receiver's Vault token (planqk-scanner); else VAULT_TOKEN")
	feedbackHash := flags.Bool("feedback-hash", false, "answer GitHub token_hash (SHA-256) instead of token_raw")
	if err := flags.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	config := api.DefaultConfig() // VAULT_ADDR, VAULT_CACERT...
	if config.Error != nil {
		return config.Error
	}
	client, err := api.NewClient(config)
	if err != nil {
		return err
	}
	if *tokenFile == "" && client.Token() == "" {
		return errors.New("no Vault token: set VAULT_TOKEN or -vault-token-file (a token with the planqk-scanner policy)")
	}
	keys := &keySet{source: *keysSource, client: cleanhttp.DefaultClient(), githubToken: os.Getenv("GITHUB_TOKEN"), minInterval: *refresh}
	keys.client.Timeout = 10 * time.Second
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := keys.load(ctx); err != nil {
		// Not fatal: the keys are loaded again at the first alert.
		log.Error("loading GitHub's keys failed; trying again at the first alert", "error", err)
	}
	go keys.refreshEvery(ctx, *keysRefresh, log)
	engine := &engineRevoker{client: client, mount: *mount, tokenFile: *tokenFile}
	mux := http.NewServeMux()
	mux.Handle(*path, &receiver{keys: keys, revoke: engine.revoke, feedbackHash: *feedbackHash, log: log})
	server := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("listening for GitHub's secret-scanning alerts", "addr", listener.Addr().String(), "path", *path, "mount", *mount, "keys", *keysSource)
	if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
