package backend

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Environment variables. A runtime hands a provider token to the provider's
// SDK through the environment variables that SDK reads; the catalogue says
// which variables each field feeds (a field may feed several, a field may
// feed none) and which fixed values the SDK needs for every token of the
// provider. Built-in providers carry the names their SDKs read, each cited
// from the SDK's source where it is declared (path_providers.go);
// operator-defined providers declare their own.

const (
	maxEnvNameLength     = 128
	maxEnvConstantLength = 1024
	maxEnvVarsPerField   = 8
)

var envNameRegex = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedEnvNames and reservedEnvPrefixes are variables no provider field
// may feed. Whoever writes a provider token (an organization's maintainers)
// chooses the values, and a runtime's programs must not take from them
// anything but credentials: not where programs, libraries, interpreter
// start-up code, shell start-up code, proxies or trusted certificates come
// from, and not the variables of the engine itself (PLANQK_*) or of the
// Vault Agent that runs the job (VAULT_*). Names are compared in upper
// case, as Windows does.
var (
	reservedEnvNames = map[string]bool{
		// Process identity and the shell.
		"PATH": true, "HOME": true, "SHELL": true, "USER": true, "LOGNAME": true,
		"PWD": true, "OLDPWD": true, "TMPDIR": true, "IFS": true, "ENV": true,
		"BASH_ENV": true, "CDPATH": true, "PS1": true, "PS2": true, "PS4": true,
		"SHELLOPTS": true, "BASHOPTS": true, "PROMPT_COMMAND": true,
		// Interpreters' code loading.
		"NODE_OPTIONS": true, "NODE_PATH": true, "PERL5LIB": true, "PERL5OPT": true,
		"PERLLIB": true, "RUBYOPT": true, "RUBYLIB": true, "JAVA_TOOL_OPTIONS": true,
		"_JAVA_OPTIONS": true, "JDK_JAVA_OPTIONS": true, "CLASSPATH": true,
		"GCONV_PATH": true, "HOSTALIASES": true, "LOCALDOMAIN": true, "RES_OPTIONS": true,
		// Where network traffic goes and whom it trusts.
		"HTTP_PROXY": true, "HTTPS_PROXY": true, "ALL_PROXY": true, "NO_PROXY": true,
		"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "REQUESTS_CA_BUNDLE": true,
		"CURL_CA_BUNDLE": true,
	}
	reservedEnvPrefixes = []string{
		"LD_", "DYLD_", "BASH_FUNC_", "PYTHON", "GIT_", "MALLOC_", "GLIBC_",
		"PLANQK_", "VAULT_",
	}
)

// checkEnvName returns a message when name may not be a provider's
// environment variable.
func checkEnvName(name string) string {
	if len(name) > maxEnvNameLength || !envNameRegex.MatchString(name) {
		return fmt.Sprintf("environment variable %q is not a valid name: use at most %d letters, digits and '_', not starting with a digit", truncateForMessage(name), maxEnvNameLength)
	}
	upper := strings.ToUpper(name)
	if reservedEnvNames[upper] {
		return fmt.Sprintf("environment variable %q is reserved: a provider token must not change how a runtime's programs run", name)
	}
	for _, prefix := range reservedEnvPrefixes {
		if strings.HasPrefix(upper, prefix) {
			return fmt.Sprintf("environment variables starting with %s are reserved: a provider token must not change how a runtime's programs run, nor set the engine's or Vault's own variables", prefix)
		}
	}
	return ""
}

// truncateForMessage keeps a message short when it names an invalid input.
func truncateForMessage(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// envSplitter turns one field's value into the several variables its SDK
// reads the parts from; built-in providers only.
type envSplitter struct {
	// format shows where each variable's value sits in the field's value.
	format string
	split  func(value string) ([]string, bool)
}

// azureWorkspaceResourceID is an Azure Quantum workspace's resource id as
// the Azure portal shows it. The azure-quantum SDK takes it only as a
// constructor argument (Workspace(resource_id=...)), not from the
// environment, where it reads the parts instead (see azure-quantum below).
var azureWorkspaceResourceID = regexp.MustCompile(`(?i)^/subscriptions/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/resourceGroups/([^\s/]+)/providers/Microsoft\.Quantum/Workspaces/([^\s/]+)$`)

var azureWorkspaceSplitter = &envSplitter{
	format: "/subscriptions/{AZURE_QUANTUM_SUBSCRIPTION_ID}/resourceGroups/{AZURE_QUANTUM_WORKSPACE_RG}/providers/Microsoft.Quantum/Workspaces/{AZURE_QUANTUM_WORKSPACE_NAME}",
	split: func(value string) ([]string, bool) {
		m := azureWorkspaceResourceID.FindStringSubmatch(value)
		if m == nil {
			return nil, false
		}
		return m[1:], true
	},
}

// environment returns the variables a token of the provider with values
// sets, and warnings naming what had to be left out. Constants are set
// whenever the token is. Warnings name fields and variables, never values.
func (p *providerEntry) environment(provider string, values map[string]string) (map[string]string, []string) {
	env := make(map[string]string)
	var warnings []string
	set := func(field, name, value string) {
		if strings.IndexByte(value, 0) >= 0 {
			// An environment variable cannot hold NUL; writes refuse it
			// since v0.2.0, but a token stored earlier may have one.
			warnings = append(warnings, fmt.Sprintf("provider %q: field %s contains NUL, which no environment variable can hold: %s left out", provider, field, name))
			return
		}
		env[name] = value
	}
	for _, f := range p.Fields {
		value, ok := values[f.Name]
		if !ok || len(f.Env) == 0 {
			continue
		}
		if f.splitter == nil {
			for _, name := range f.Env {
				set(f.Name, name, value)
			}
			continue
		}
		parts, ok := f.splitter.split(value)
		if !ok || len(parts) != len(f.Env) {
			warnings = append(warnings, fmt.Sprintf("provider %q: field %s is not of the form %s: %s left out", provider, f.Name, f.splitter.format, strings.Join(f.Env, ", ")))
			continue
		}
		for i, name := range f.Env {
			set(f.Name, name, parts[i])
		}
	}
	for name, value := range p.EnvConstants {
		env[name] = value
	}
	return env, warnings
}

// parseEnvMappings validates an operator's env parameter - entries
// "field:VARIABLE", a field may be named several times - and constants
// (VARIABLE -> value) against the provider's fields, and sets each field's
// variables. A variable may be fed by one field or constant only.
func (p *providerEntry) parseEnvMappings(mappings []string, constants map[string]string) string {
	fed := make(map[string]string) // variable -> what feeds it
	for _, mapping := range mappings {
		field, name, ok := strings.Cut(mapping, ":")
		field, name = strings.TrimSpace(field), strings.TrimSpace(name)
		if !ok || field == "" || name == "" {
			return fmt.Sprintf("env: %q is not of the form field:VARIABLE", truncateForMessage(mapping))
		}
		index := -1
		for i := range p.Fields {
			if p.Fields[i].Name == field {
				index = i
			}
		}
		if index < 0 {
			return fmt.Sprintf("env: %q is not one of the required or optional fields", truncateForMessage(field))
		}
		if msg := checkEnvName(name); msg != "" {
			return "env: " + msg
		}
		if previous, taken := fed[name]; taken {
			return fmt.Sprintf("env: %s is fed by both %s and %s", name, previous, field)
		}
		if len(p.Fields[index].Env) == maxEnvVarsPerField {
			return fmt.Sprintf("env: field %s may feed at most %d variables", field, maxEnvVarsPerField)
		}
		fed[name] = field
		p.Fields[index].Env = append(p.Fields[index].Env, name)
	}
	for name, value := range constants {
		if msg := checkEnvName(name); msg != "" {
			return "env_constants: " + msg
		}
		if field, taken := fed[name]; taken {
			return fmt.Sprintf("env_constants: %s is fed by field %s already", name, field)
		}
		switch {
		case !utf8.ValidString(value) || strings.ContainsRune(value, utf8.RuneError):
			return fmt.Sprintf("env_constants: the value of %s must be valid UTF-8", name)
		case strings.IndexByte(value, 0) >= 0:
			return fmt.Sprintf("env_constants: the value of %s must not contain NUL", name)
		case len(value) > maxEnvConstantLength:
			return fmt.Sprintf("env_constants: the value of %s must be at most %d bytes", name, maxEnvConstantLength)
		}
		if p.EnvConstants == nil {
			p.EnvConstants = make(map[string]string, len(constants))
		}
		p.EnvConstants[name] = value
	}
	return ""
}

// fieldsWithoutEnv names the fields that feed no variable.
func (p *providerEntry) fieldsWithoutEnv() []string {
	var names []string
	for _, f := range p.Fields {
		if len(f.Env) == 0 {
			names = append(names, f.Name)
		}
	}
	return names
}
