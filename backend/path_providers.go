package backend

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"

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
	}
)

type providerField struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	Secret   bool   `json:"secret"`
}

// providerEntry describes what a provider's access token consists of.
type providerEntry struct {
	Description string          `json:"description"`
	Fields      []providerField `json:"fields"`
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
		fields = append(fields, map[string]interface{}{"name": f.Name, "required": f.Required, "secret": f.Secret})
	}
	return map[string]interface{}{
		"name":        name,
		"description": p.Description,
		"fields":      fields,
		"built_in":    builtIn,
		"overridden":  overridden,
	}
}

// providerFields describe a catalogue entry as toResponseData returns it.
var providerFields = fieldSet{
	"name":        {Type: framework.TypeString, Description: "Name of the provider."},
	"description": {Type: framework.TypeString, Description: "What the provider is."},
	"fields":      {Type: framework.TypeSlice, Description: `The fields of the provider's access tokens: objects {"name": "<field>", "required": true|false, "secret": true|false}.`},
	"built_in":    {Type: framework.TypeBool, Description: "Whether the provider is in the built-in catalogue."},
	"overridden":  {Type: framework.TypeBool, Description: "Whether an operator's definition replaces the built-in one (always true for an operator-defined provider)."},
}

func required(name string, secret bool) providerField {
	return providerField{Name: name, Required: true, Secret: secret}
}

func optional(name string) providerField {
	return providerField{Name: name}
}

// builtinProviders is the default catalogue; operators extend or override it
// at providers/<provider>.
var builtinProviders = map[string]*providerEntry{
	"ibm-quantum": {
		Description: "IBM Quantum Platform: API token and optional instance (hub/group/project or CRN).",
		Fields:      []providerField{required("token", true), optional("instance")},
	},
	"ibm-cloud": {
		Description: "IBM Cloud Quantum: API key and optional service CRN.",
		Fields:      []providerField{required("api_key", true), optional("service_crn")},
	},
	"aws-braket": {
		Description: "Amazon Braket: AWS access key pair and optional region.",
		Fields:      []providerField{required("access_key_id", true), required("secret_access_key", true), optional("region")},
	},
	"azure-quantum": {
		Description: "Azure Quantum: service principal of a workspace and optional location.",
		Fields: []providerField{
			required("tenant_id", false), required("client_id", false), required("client_secret", true),
			required("resource_id", false), optional("location"),
		},
	},
	"dwave": {
		Description: "D-Wave Leap: API token.",
		Fields:      []providerField{required("token", true)},
	},
	"ionq": {
		Description: "IonQ Quantum Cloud: API key.",
		Fields:      []providerField{required("api_key", true)},
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
						"keys": {Type: framework.TypeStringSlice, Description: "Names of the providers, sorted."},
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
	stored, err := req.Storage.List(ctx, providerPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing providers: %w", err)
	}
	names := make([]string, 0, len(builtinProviders)+len(stored))
	for name := range builtinProviders {
		names = append(names, name)
	}
	for _, name := range stored {
		if builtinProviders[name] == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return logical.ListResponse(names), nil
}

func (b *backend) pathProviderRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("provider").(string)
	provider, overridden, err := getProvider(ctx, req.Storage, name)
	if err != nil || provider == nil {
		return nil, err
	}
	return &logical.Response{Data: provider.toResponseData(name, builtinProviders[name] != nil, overridden)}, nil
}

func (b *backend) pathProviderWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("provider").(string)
	description := d.Get("description").(string)
	if msg := checkDescription(description); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	provider, msg := buildProvider(description,
		d.Get("required_fields").([]string), d.Get("optional_fields").([]string), d.Get("secret_fields").([]string))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	entry, err := logical.StorageEntryJSON(providerPrefix+name, provider)
	if err != nil {
		return nil, fmt.Errorf("encoding provider: %w", err)
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing provider: %w", err)
	}
	return &logical.Response{Data: provider.toResponseData(name, builtinProviders[name] != nil, true)}, nil
}

// buildProvider validates a provider definition, returning a message naming
// the offending field when it is invalid.
func buildProvider(description string, requiredFields, optionalFields, secretFields []string) (*providerEntry, string) {
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
	return provider, ""
}

func (b *backend) pathProviderDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("provider").(string)
	_, overridden, err := getProvider(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if builtinProviders[name] != nil && !overridden {
		return logical.ErrorResponse(fmt.Sprintf("provider %q is built in and cannot be deleted; write it to override its fields", name)), nil
	}
	if err := req.Storage.Delete(ctx, providerPrefix+name); err != nil {
		return nil, fmt.Errorf("deleting provider: %w", err)
	}
	return nil, nil
}

// getProvider returns the operator's definition of the provider if there is
// one (overridden is then true), else the built-in one, else nil.
func getProvider(ctx context.Context, s logical.Storage, name string) (provider *providerEntry, overridden bool, err error) {
	entry, err := s.Get(ctx, providerPrefix+name)
	if err != nil {
		return nil, false, fmt.Errorf("reading provider: %w", err)
	}
	if entry == nil {
		return builtinProviders[name], false, nil
	}
	provider = &providerEntry{}
	if err := entry.DecodeJSON(provider); err != nil {
		return nil, false, fmt.Errorf("decoding provider: %w", err)
	}
	return provider, true, nil
}

const pathProvidersListHelpSynopsis = `List the providers whose access tokens the engine stores.`

const pathProvidersListHelpDescription = `
Lists the built-in providers (ibm-quantum, ibm-cloud, aws-braket,
azure-quantum, dwave, ionq) and those an operator added.
`

const pathProviderHelpSynopsis = `Read, define or override a provider of the catalogue.`

const pathProviderHelpDescription = `
A provider entry says which fields its access tokens have: each field's
name, whether it is required, and whether it is secret (reads of stored
tokens show only a hint of secret fields). Writes of provider tokens are
validated against it.

Writing a built-in provider overrides it; deleting the override restores the
built-in definition. Built-in providers themselves cannot be deleted.

  vault write planqk/providers/rigetti description="Rigetti QCS" \
      required_fields=api_key optional_fields=region secret_fields=api_key
`
