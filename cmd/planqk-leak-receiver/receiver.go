package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
)

// GitHub's secret-scanning partner protocol, as GitHub documents it: a
// POST of a JSON array of alerts, signed with ECDSA P-256 / SHA-256 over
// the raw body, the signature base64 DER in Github-Public-Key-Signature
// and the key's id in Github-Public-Key-Identifier.
const (
	headerKeyID     = "Github-Public-Key-Identifier"
	headerSignature = "Github-Public-Key-Signature"

	// maxBodyBytes bounds a batch: GitHub may send many matches at once.
	maxBodyBytes = 4 << 20
	// maxAlerts bounds the alerts of one batch.
	maxAlerts = 5000
	// maxSignatureBytes bounds the base64 signature (a DER P-256
	// signature is at most 72 bytes).
	maxSignatureBytes = 256
)

// keyIDPattern is what a key id may look like: GitHub's are hex SHA-256
// digests (64 characters); the set and the bound leave room for another
// scheme without letting a sender put control characters or kilobytes
// into a lookup or a log line.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:+/=-]{1,128}$`)

// alert is one match GitHub found.
type alert struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// feedback is GitHub's feedback format: token_raw or token_hash, never both.
type feedback struct {
	TokenRaw  string `json:"token_raw,omitempty"`
	TokenHash string `json:"token_hash,omitempty"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

var errNotAlerts = errors.New("the body is not a JSON array of alerts with a token each")

// parseAlerts reads GitHub's body: a JSON array of objects with a
// non-empty string token. Unknown keys are ignored (GitHub may add some).
func parseAlerts(body []byte) ([]alert, error) {
	decoder := json.NewDecoder(bytes.NewReader(body))
	var alerts []alert
	if err := decoder.Decode(&alerts); err != nil || alerts == nil {
		return nil, errNotAlerts
	}
	if _, err := decoder.Token(); err != io.EOF {
		return nil, errNotAlerts
	}
	if len(alerts) == 0 || len(alerts) > maxAlerts {
		return nil, fmt.Errorf("a batch holds 1 to %d alerts", maxAlerts)
	}
	for _, a := range alerts {
		if a.Token == "" {
			return nil, errNotAlerts
		}
	}
	return alerts, nil
}

// verifySignature checks the body's signature with the key.
func verifySignature(key *ecdsa.PublicKey, body []byte, signature string) bool {
	if len(signature) > maxSignatureBytes {
		return false
	}
	der, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return false
	}
	digest := sha256.Sum256(body)
	return ecdsa.VerifyASN1(key, digest[:], der)
}

// receiver answers GitHub's secret-scanning alerts: it verifies the
// signature, has the engine revoke the tokens by value and answers
// GitHub's feedback.
type receiver struct {
	keys *keySet
	// revoke asks the engine to revoke the alerts' tokens and returns one
	// engine label per alert, in order.
	revoke func(ctx context.Context, alerts []alert) ([]string, error)
	// feedbackHash answers token_hash (SHA-256) instead of token_raw.
	feedbackHash bool
	log          *slog.Logger
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST GitHub's secret-scanning alerts here", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		http.Error(w, "the body is too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	keyID, signature := r.Header.Get(headerKeyID), r.Header.Get(headerSignature)
	if keyID != "" && !keyIDPattern.MatchString(keyID) {
		// Refused before any lookup (no key-set load for it) and logged by
		// its length only: the header is whatever the sender chose.
		rc.log.Warn("refused a malformed key id; nothing revoked", "key_id_bytes", len(keyID), "remote", r.RemoteAddr)
		http.Error(w, "the "+headerKeyID+" header is not a key id", http.StatusBadRequest)
		return
	}
	if keyID == "" || signature == "" {
		rc.refuse(w, r, keyID, "missing signature headers")
		return
	}
	key, err := rc.keys.key(r.Context(), keyID)
	if err != nil {
		// Logged without the body; the key id is public.
		rc.log.Error("loading GitHub's keys failed", "key_id", keyID, "error", err)
	}
	if key == nil {
		rc.refuse(w, r, keyID, "unknown key id")
		return
	}
	if !verifySignature(key, body, signature) {
		rc.refuse(w, r, keyID, "bad signature")
		return
	}
	alerts, err := parseAlerts(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	labels, err := rc.revoke(r.Context(), alerts)
	if err != nil {
		// The error is the engine's or the transport's, which never
		// repeat a token; GitHub retries a failed delivery.
		rc.log.Error("revoking the alerts' tokens failed", "alerts", len(alerts), "error", err)
		http.Error(w, "the tokens could not be checked now; try again", http.StatusBadGateway)
		return
	}
	answer := make([]feedback, len(alerts))
	counts := map[string]int{}
	for i, a := range alerts {
		counts[labels[i]]++
		answer[i] = feedback{TokenType: a.Type, Label: githubLabel(labels[i])}
		if rc.feedbackHash {
			sum := sha256.Sum256([]byte(a.Token))
			answer[i].TokenHash = hex.EncodeToString(sum[:])
		} else {
			answer[i].TokenRaw = a.Token
		}
	}
	rc.log.Info("secret-scanning alerts handled", "key_id", keyID, "alerts", len(alerts),
		"revoked", counts["true_positive"], "inactive", counts["inactive"], "false_positive", counts["false_positive"])
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

func (rc *receiver) refuse(w http.ResponseWriter, r *http.Request, keyID, reason string) {
	rc.log.Warn("refused an unsigned or wrongly signed request; nothing revoked", "reason", reason, "key_id", keyID, "remote", r.RemoteAddr)
	http.Error(w, "the request is not signed by a known GitHub key", http.StatusUnauthorized)
}

// githubLabel maps the engine's label to the two GitHub accepts: a token
// that was issued but is no longer active (revoked, expired) is still a
// real PlanQK token, a true positive.
func githubLabel(engine string) string {
	if engine == "false_positive" {
		return "false_positive"
	}
	return "true_positive"
}
