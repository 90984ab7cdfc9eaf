package main

import (
	"fmt"
	"net/http"
	"strings"
)

// problem is what went wrong, in words for the person: never a stack
// trace, a raw Vault response or JSON.
type problem struct {
	// Status is the HTTP status the portal answers with.
	Status  int
	Message string
	// Detail is Vault's or the engine's own wording, when it adds to Message.
	Detail string
	// sessionEnded means the Vault token is gone (expired or revoked):
	// the person is sent to sign in again instead of seeing a page.
	sessionEnded bool
}

// action is what the person tried, for the words of a problem.
type action struct {
	// failed opens the message of a refused request: "Vault did not
	// create the token", followed by the engine's reason.
	failed string
	// refusal is what a 403 means here: "You need to be owner or
	// maintainer of acme to change its provider access tokens."
	refusal string
}

// explain turns an error from Vault into a problem for the action.
func explain(err error, act action) *problem {
	messages := vaultMessages(err)
	engine := sentences(messages)
	switch status := statusOf(err); {
	case status == 0:
		return &problem{Status: http.StatusBadGateway, Message: "Vault could not be reached. Try again in a moment; if it keeps happening, tell your operator."}
	case status == http.StatusBadRequest:
		if engine == "" {
			return &problem{Status: http.StatusBadRequest, Message: act.failed + "."}
		}
		return &problem{Status: http.StatusBadRequest, Message: act.failed + ": " + engine}
	case status == http.StatusForbidden:
		prob := &problem{Status: http.StatusForbidden, Message: act.refusal}
		if engine != "" && !onlyPermissionDenied(messages) {
			prob.Detail = "Vault says: " + engine
		}
		return prob
	case status == http.StatusNotFound:
		return &problem{Status: http.StatusNotFound, Message: act.failed + ": it was not found, and may have been deleted in the meantime."}
	case status == http.StatusTooManyRequests:
		return &problem{Status: http.StatusServiceUnavailable, Message: "Vault is limiting requests right now. Try again in a moment."}
	case status >= 500:
		return &problem{Status: http.StatusBadGateway, Message: fmt.Sprintf("%s: Vault could not complete the request (it answered %d). Try again later; if it keeps happening, tell your operator.", act.failed, status)}
	default:
		prob := &problem{Status: http.StatusBadGateway, Message: fmt.Sprintf("%s (Vault answered %d).", act.failed, status)}
		if engine != "" {
			prob.Detail = "Vault says: " + engine
		}
		return prob
	}
}

// onlyPermissionDenied reports whether Vault said nothing but its ACL
// refusal, which the refusal sentence already puts in words.
func onlyPermissionDenied(messages []string) bool {
	for _, m := range messages {
		if m != "permission denied" {
			return false
		}
	}
	return true
}

// sentences joins messages, each ending in a stop. They are kept as the
// engine wrote them: they start with field names ("ttl ...").
func sentences(messages []string) string {
	out := make([]string, 0, len(messages))
	for _, m := range messages {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !strings.HasSuffix(m, ".") && !strings.HasSuffix(m, "!") && !strings.HasSuffix(m, "?") {
			m += "."
		}
		out = append(out, m)
	}
	return strings.Join(out, " ")
}

// vaultProblem explains err for the session's person; a 403 whose cause is
// that the session's Vault token is gone ends the session instead.
func (p *portal) vaultProblem(r *http.Request, sess *session, err error, act action) *problem {
	prob := explain(err, act)
	if prob.Status == http.StatusForbidden && !p.tokenValid(r.Context(), sess) {
		p.sessions.remove(sess.id)
		return &problem{Status: http.StatusUnauthorized, sessionEnded: true}
	}
	if prob.Status >= 500 {
		p.log.Warn("Vault request failed", "user", sess.user, "path", r.URL.Path, "error", vaultErrorForLog(err))
	}
	return prob
}

// What a 403 means, per kind of action.
const (
	refusalOwnTokens         = "Vault refused: your account may not manage personal access tokens here. Ask your operator for the planqk-user policy."
	refusalOwnProviderTokens = "Vault refused: your account may not manage provider access tokens here. Ask your operator for the planqk-user policy."
)

func refusalOrgRead(org string) string {
	return fmt.Sprintf("You need to be a member of %s to see its provider access tokens.", org)
}

func refusalOrgWrite(org string) string {
	return fmt.Sprintf("You need to be owner or maintainer of %s to change its provider access tokens.", org)
}
