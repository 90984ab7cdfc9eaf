package backend

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	providerPrefix = "providers/"

	maxProviderFields = 32
)

var (
	providerNameRegex  = `(?P<provider>[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)`
	providerFieldRegex = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

	// reservedFieldNames are the response keys of resolve and the path
	// parameters of provider-token writes, which a provider field would shadow.
	reservedFieldNames = map[string]bool{
		"provider": true, "source": true, "org": true, "user": true, "version": true,
		"entity_id": true, "expires_at": true, "env": true, "dotenv": true,
		"on_behalf_of": true, "derivation": true, "credentials": true,
	}
)

type providerField struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	Secret   bool   `json:"secret"`
	// Env are the environment variables the field's value is handed to a
	// runtime in (resolve's env, the runtime read).
	Env []string `json:"env,omitempty"`

	// splitter, for a built-in field whose SDK reads its value in parts,
	// puts each part into one of Env instead.
	splitter *envSplitter
}

// providerEntry describes what a provider's access token consists of.
type providerEntry struct {
	Description string          `json:"description"`
	Fields      []providerField `json:"fields"`
	// EnvConstants are variables with fixed values that the provider's SDK
	// needs for every token, such as the channel qiskit-ibm-runtime takes.
	EnvConstants map[string]string `json:"env_constants,omitempty"`
	// Derivations are the ways short-lived credentials can be derived from
	// a token of the provider (derive.go); built-in providers only, and
	// kept when an operator overrides one.
	Derivations []*derivationMethod `json:"-"`
}

func (p *providerEntry) field(name string) (providerField, bool) {
	for _, f := range p.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return providerField{}, false
}

func (p *providerEntry) toResponseData(name string, builtIn, overridden bool) map[string]interface{} {
	fields := make([]map[string]interface{}, 0, len(p.Fields))
	for _, f := range p.Fields {
		field := map[string]interface{}{"name": f.Name, "required": f.Required, "secret": f.Secret, "env": append([]string{}, f.Env...)}
		if f.splitter != nil {
			field["env_format"] = f.splitter.format
		}
		fields = append(fields, field)
	}
	constants := make(map[string]string, len(p.EnvConstants))
	for k, v := range p.EnvConstants {
		constants[k] = v
	}
	derivations := make([]map[string]interface{}, 0, len(p.Derivations))
	for _, m := range p.Derivations {
		derivations = append(derivations, m.toResponseData())
	}
	return map[string]interface{}{
		"name":          name,
		"description":   p.Description,
		"fields":        fields,
		"env_constants": constants,
		"derivations":   derivations,
		"built_in":      builtIn,
		"overridden":    overridden,
	}
}

// providerFields describe a catalogue entry as toResponseData returns it.
var providerFields = fieldSet{
	"name":          {Type: framework.TypeString, Description: "Name of the provider."},
	"description":   {Type: framework.TypeString, Description: "What the provider is."},
	"fields":        {Type: framework.TypeSlice, Description: `The fields of the provider's access tokens: objects {"name": "<field>", "required": true|false, "secret": true|false, "env": ["<variable the SDK reads it from>", ...]}, and "env_format" where a built-in field's value is split into several variables.`},
	"env_constants": {Type: framework.TypeMap, Description: "Environment variables with fixed values the provider's SDK needs for every token, by name."},
	"derivations":   {Type: framework.TypeSlice, Description: `How short-lived credentials can be derived from a token of the provider, instead of handing out its stored key: objects {"name": "<method>", "description": "...", "fields": [{"name": "<field>", "required": true|false, "secret": true|false}, ...]}. A token write names the method as derivation=<method> with its fields. Empty for providers with static keys only.`},
	"built_in":      {Type: framework.TypeBool, Description: "Whether the provider is in the built-in catalogue."},
	"overridden":    {Type: framework.TypeBool, Description: "Whether an operator's definition replaces the built-in one (always true for an operator-defined provider)."},
}

func required(name string, secret bool, env ...string) providerField {
	return providerField{Name: name, Required: true, Secret: secret, Env: env}
}

func optional(name string, secret bool, env ...string) providerField {
	return providerField{Name: name, Secret: secret, Env: env}
}

// builtinProviders is the default catalogue; operators extend or override it
// at providers/<provider>. Each variable is the one the provider's SDK
// reads, as its source says (repository, file, where). Fields were only
// ever added, never renamed, so tokens stored by earlier versions keep
// their meaning.
var builtinProviders = map[string]*providerEntry{
	// qiskit-ibm-runtime (Qiskit/qiskit-ibm-runtime, 0.49):
	// qiskit_ibm_runtime/accounts/management.py, AccountManager._from_env_variables
	// reads QISKIT_IBM_TOKEN, QISKIT_IBM_URL and QISKIT_IBM_INSTANCE, and
	// AccountManager.get takes the channel from QISKIT_IBM_CHANNEL when the
	// caller names none (default "ibm_quantum_platform"); the channels are
	// accounts/account.py's ChannelType. The IBM Quantum Platform and IBM
	// Cloud both take an IBM Cloud API key as the token and a service CRN as
	// the instance; they differ in the channel, a constant of each provider.
	// url (QISKIT_IBM_URL, optional since qiskit-ibm-runtime 0.24) was added
	// for private or regional endpoints.
	"ibm-quantum": {
		Description: "IBM Quantum Platform: API key and optional instance (service CRN) and API URL.",
		Fields: []providerField{
			required("token", true, "QISKIT_IBM_TOKEN"),
			optional("instance", false, "QISKIT_IBM_INSTANCE"),
			optional("url", false, "QISKIT_IBM_URL"),
		},
		EnvConstants: map[string]string{"QISKIT_IBM_CHANNEL": "ibm_quantum_platform"},
		Derivations:  []*derivationMethod{ibmServiceIDKeyMethod},
	},
	"ibm-cloud": {
		Description: "IBM Cloud Quantum: API key and optional service CRN and API URL.",
		Fields: []providerField{
			required("api_key", true, "QISKIT_IBM_TOKEN"),
			optional("service_crn", false, "QISKIT_IBM_INSTANCE"),
			optional("url", false, "QISKIT_IBM_URL"),
		},
		EnvConstants: map[string]string{"QISKIT_IBM_CHANNEL": "ibm_cloud"},
		Derivations:  []*derivationMethod{ibmServiceIDKeyMethod},
	},
	// botocore (boto/botocore): botocore/credentials.py, EnvProvider reads
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or
	// AWS_SECURITY_TOKEN); botocore/configprovider.py,
	// BOTOCORE_DEFAUT_SESSION_VARIABLES takes the region from
	// AWS_DEFAULT_REGION. The Braket SDK (amazon-braket/amazon-braket-sdk-python):
	// src/braket/aws/aws_session.py, AwsSession.__init__ creates its boto3
	// session with region_name=os.environ.get("AWS_REGION"), so the region
	// feeds both. session_token was added for temporary credentials.
	"aws-braket": {
		Description: "Amazon Braket: AWS access key pair, optional session token and region.",
		Fields: []providerField{
			required("access_key_id", true, "AWS_ACCESS_KEY_ID"),
			required("secret_access_key", true, "AWS_SECRET_ACCESS_KEY"),
			optional("region", false, "AWS_REGION", "AWS_DEFAULT_REGION"),
			optional("session_token", true, "AWS_SESSION_TOKEN"),
		},
		Derivations: []*derivationMethod{awsAssumeRoleMethod, awsFederationTokenMethod},
	},
	// azure-quantum (microsoft/azure-quantum-python):
	// azure-quantum/azure/quantum/_workspace_connection_params.py,
	// WorkspaceConnectionParams.default_from_env_vars reads
	// AZURE_QUANTUM_SUBSCRIPTION_ID, AZURE_QUANTUM_WORKSPACE_RG,
	// AZURE_QUANTUM_WORKSPACE_NAME and AZURE_QUANTUM_WORKSPACE_LOCATION
	// (names in azure/quantum/_constants.py, EnvironmentVariables) - never a
	// resource id, so the stored resource_id is split into those three. Its
	// credential defaults to azure-identity's DefaultAzureCredential, whose
	// EnvironmentCredential (Azure/azure-sdk-for-python:
	// sdk/identity/azure-identity/azure/identity/_credentials/environment.py)
	// reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
	"azure-quantum": {
		Description: "Azure Quantum: service principal, workspace resource id and optional location.",
		Fields: []providerField{
			required("tenant_id", false, "AZURE_TENANT_ID"),
			required("client_id", false, "AZURE_CLIENT_ID"),
			required("client_secret", true, "AZURE_CLIENT_SECRET"),
			{
				Name: "resource_id", Required: true,
				Env:      []string{"AZURE_QUANTUM_SUBSCRIPTION_ID", "AZURE_QUANTUM_WORKSPACE_RG", "AZURE_QUANTUM_WORKSPACE_NAME"},
				splitter: azureWorkspaceSplitter,
			},
			optional("location", false, "AZURE_QUANTUM_WORKSPACE_LOCATION"),
		},
	},
	// dwave-cloud-client (dwavesystems/dwave-cloud-client):
	// dwave/cloud/config/loaders.py, ENV_OPTION_MAP maps DWAVE_API_TOKEN,
	// DWAVE_API_ENDPOINT and DWAVE_API_REGION to its token, endpoint and
	// region options. endpoint and region were added; the client treats
	// them as alternatives (MUTUALLY_EXCLUSIVE_OPTIONS).
	"dwave": {
		Description: "D-Wave Leap: API token and optional solver API endpoint or region.",
		Fields: []providerField{
			required("token", true, "DWAVE_API_TOKEN"),
			optional("endpoint", false, "DWAVE_API_ENDPOINT"),
			optional("region", false, "DWAVE_API_REGION"),
		},
	},
	// qiskit-ionq (qiskit-community/qiskit-ionq): qiskit_ionq/helpers.py,
	// resolve_credentials reads QISKIT_IONQ_API_TOKEN, then IONQ_API_KEY,
	// then IONQ_API_TOKEN; IONQ_API_KEY is the name IonQ documents and its
	// other SDKs read too.
	"ionq": {
		Description: "IonQ Quantum Cloud: API key.",
		Fields:      []providerField{required("api_key", true, "IONQ_API_KEY")},
	},
}

func pathProviders(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "providers/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "providers",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathProvidersList,
					Responses: okResponse("The catalogue: built-in providers and those an operator added.", fieldSet{
						"keys":     {Type: framework.TypeStringSlice, Description: "Names of the providers, sorted."},
						"key_info": {Type: framework.TypeMap, Description: "For each provider, what reading providers/<provider> returns."},
					}),
				},
			},
			HelpSynopsis:    pathProvidersListHelpSynopsis,
			HelpDescription: pathProvidersListHelpDescription,
		},
		{
			Pattern: "providers/" + providerNameRegex + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "provider",
			},
			Fields: map[string]*framework.FieldSchema{
				"provider": {
					Type:        framework.TypeString,
					Description: "Name of the provider.",
					Required:    true,
				},
				"description": {
					Type:        framework.TypeString,
					Description: "What the provider is.",
				},
				"required_fields": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Fields a provider token must have.",
				},
				"optional_fields": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Fields a provider token may have.",
				},
				"secret_fields": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Which of the fields hold secrets: reads show only a hint of them; resolve returns them.",
				},
				"env": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Environment variables the provider's SDK reads each field from, as field:VARIABLE entries (a field may feed several variables).",
				},
				"env_constants": {
					Type:        framework.TypeKVPairs,
					Description: "Environment variables with fixed values the provider's SDK needs for every token, as VARIABLE=value pairs. Never a secret: every user and the auditor can read the catalogue, which is not seal-wrapped; a shared credential belongs in an organization's provider token.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathProviderRead,
					Responses: okResponse("The provider's entry in the catalogue.", providerFields).or(http.StatusNotFound, "No provider of this name is in the catalogue."),
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathProviderWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   okResponse("The provider's entry as stored.", providerFields),
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathProviderDelete,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   noContentResponse("The operator's definition is deleted (a built-in provider's own definition applies again), or there was none."),
				},
			},
			HelpSynopsis:    pathProviderHelpSynopsis,
			HelpDescription: pathProviderHelpDescription,
		},
	}
}

func (b *backend) pathProvidersList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	catalogue, err := b.catalogue(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	names := sortedKeys(catalogue)
	keyInfo := make(map[string]interface{}, len(names))
	for _, name := range names {
		keyInfo[name] = catalogueResponseData(catalogue, name)
	}
	return logical.ListResponseWithInfo(names, keyInfo), nil
}

func (b *backend) pathProviderRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("provider").(string)
	catalogue, err := b.catalogue(ctx, req.Storage)
	if err != nil || catalogue[name] == nil {
		return nil, err
	}
	return &logical.Response{Data: catalogueResponseData(catalogue, name)}, nil
}

// catalogueResponseData is what a read of the catalogue's provider shows;
// an operator's definition replaces the built-in entry, so an entry that is
// not the built-in one is overridden (or added).
func catalogueResponseData(catalogue map[string]*providerEntry, name string) map[string]interface{} {
	builtIn := builtinProviders[name]
	return catalogue[name].toResponseData(name, builtIn != nil, catalogue[name] != builtIn)
}

func (b *backend) pathProviderWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("provider").(string)
	description := d.Get("description").(string)
	if msg := checkDescription(description); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	provider, msg := buildProvider(description,
		d.Get("required_fields").([]string), d.Get("optional_fields").([]string), d.Get("secret_fields").([]string),
		d.Get("env").([]string), d.Get("env_constants").(map[string]string))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if builtIn := builtinProviders[name]; builtIn != nil {
		provider.Derivations = builtIn.Derivations
	}

	entry, err := logical.StorageEntryJSON(providerPrefix+name, provider)
	if err != nil {
		return nil, fmt.Errorf("encoding provider: %w", err)
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing provider: %w", err)
	}
	b.providers.remove(catalogueKey)
	resp := &logical.Response{Data: provider.toResponseData(name, builtinProviders[name] != nil, true)}
	if missing := provider.fieldsWithoutEnv(); len(missing) > 0 {
		resp.AddWarning(fmt.Sprintf("fields without an environment variable are left out of resolve's env and of the runtime read: %s (declare them with env=field:VARIABLE)", strings.Join(missing, ", ")))
	}
	return resp, nil
}

// buildProvider validates a provider definition, returning a message naming
// the offending field when it is invalid.
func buildProvider(description string, requiredFields, optionalFields, secretFields, env []string, envConstants map[string]string) (*providerEntry, string) {
	if len(requiredFields) == 0 {
		return nil, "required_fields must name at least one field"
	}
	if len(requiredFields)+len(optionalFields) > maxProviderFields {
		return nil, fmt.Sprintf("a provider may have at most %d fields", maxProviderFields)
	}
	provider := &providerEntry{Description: description}
	seen := make(map[string]bool)
	add := func(param, name string, isRequired bool) string {
		switch {
		case !providerFieldRegex.MatchString(name):
			return fmt.Sprintf("%s: field name %q is invalid: use lower-case letters, digits and '_', starting with a letter", param, name)
		case reservedFieldNames[name]:
			return fmt.Sprintf("%s: field name %q is reserved", param, name)
		case seen[name]:
			return fmt.Sprintf("%s: field %q is listed twice", param, name)
		}
		seen[name] = true
		provider.Fields = append(provider.Fields, providerField{Name: name, Required: isRequired})
		return ""
	}
	for _, name := range requiredFields {
		if msg := add("required_fields", name, true); msg != "" {
			return nil, msg
		}
	}
	for _, name := range optionalFields {
		if msg := add("optional_fields", name, false); msg != "" {
			return nil, msg
		}
	}
	for _, name := range secretFields {
		if !seen[name] {
			return nil, fmt.Sprintf("secret_fields: %q is not one of the required or optional fields", name)
		}
		for i := range provider.Fields {
			if provider.Fields[i].Name == name {
				provider.Fields[i].Secret = true
			}
		}
	}
	if msg := provider.parseEnvMappings(env, envConstants); msg != "" {
		return nil, msg
	}
	return provider, ""
}

func (b *backend) pathProviderDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("provider").(string)
	catalogue, err := b.catalogue(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if builtIn := builtinProviders[name]; builtIn != nil && catalogue[name] == builtIn {
		return logical.ErrorResponse(fmt.Sprintf("provider %q is built in and cannot be deleted; write it to override its fields", name)), nil
	}
	if err := req.Storage.Delete(ctx, providerPrefix+name); err != nil {
		return nil, fmt.Errorf("deleting provider: %w", err)
	}
	b.providers.remove(catalogueKey)
	return nil, nil
}

// getStoredProvider returns the operator's definition of the provider, or
// nil when there is none.
func getStoredProvider(ctx context.Context, s logical.Storage, name string) (*providerEntry, error) {
	entry, err := s.Get(ctx, providerPrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading provider: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	provider := &providerEntry{}
	if err := entry.DecodeJSON(provider); err != nil {
		return nil, fmt.Errorf("decoding provider: %w", err)
	}
	return provider, nil
}

// catalogueKey is the one key of the catalogue cache.
const catalogueKey = "catalogue"

// catalogue returns every provider's definition by name: the built-in ones
// with the operator's added and overriding ones. It is cached whole, so
// that resolve and the runtime read pay nothing for it; writes on this node
// and Invalidate for other nodes' writes drop it.
func (b *backend) catalogue(ctx context.Context, s logical.Storage) (map[string]*providerEntry, error) {
	if cached, ok := b.providers.get(catalogueKey); ok {
		return cached, nil
	}
	generation := b.providers.begin()
	stored, err := s.List(ctx, providerPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing providers: %w", err)
	}
	merged := make(map[string]*providerEntry, len(builtinProviders)+len(stored))
	for name, provider := range builtinProviders {
		merged[name] = provider
	}
	for _, name := range stored {
		provider, err := getStoredProvider(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if provider != nil {
			if builtIn := builtinProviders[name]; builtIn != nil {
				provider.Derivations = builtIn.Derivations
			}
			merged[name] = provider
		}
	}
	b.providers.fill(catalogueKey, merged, generation)
	return merged, nil
}

const pathProvidersListHelpSynopsis = `List the providers whose access tokens the engine stores.`

const pathProvidersListHelpDescription = `
Lists the built-in providers (ibm-quantum, ibm-cloud, aws-braket,
azure-quantum, dwave, ionq) and those an operator added.
`

const pathProviderHelpSynopsis = `Read, define or override a provider of the catalogue.`

const pathProviderHelpDescription = `
A provider entry says which fields its access tokens have: each field's
name, whether it is required, whether it is secret (reads of stored tokens
show only a hint of secret fields), and the environment variables its
provider's SDK reads the value from. Writes of provider tokens are
validated against it; resolve's env and the runtime read
(users/<user>/runtime/<role>) hand the values to runtimes under those
variables, with the provider's env_constants.

env lists field:VARIABLE entries; a field may feed several variables.
Variable names are POSIX names (letters, digits, '_', not starting with a
digit). Names that change how a runtime's programs run (PATH, HOME, LD_*,
DYLD_*, PYTHON*, NODE_OPTIONS, proxies, CA bundles, shell start-up) and the
engine's and Vault's own (PLANQK_*, VAULT_*) are refused: whoever writes a
provider token chooses the values.

Writing a built-in provider overrides it; deleting the override restores the
built-in definition. Built-in providers themselves cannot be deleted.

  vault write planqk/providers/rigetti description="Rigetti QCS" \
      required_fields=api_key optional_fields=region secret_fields=api_key

  # Azure Quantum with a workspace connection string (an API key) instead
  # of a service principal; azure-quantum reads AZURE_QUANTUM_CONNECTION_STRING.
  vault write planqk/providers/azure-quantum-key description="Azure Quantum (connection string)" \
      required_fields=connection_string secret_fields=connection_string \
      env=connection_string:AZURE_QUANTUM_CONNECTION_STRING
`
