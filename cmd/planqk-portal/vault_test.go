package main

import "testing"

func TestValidSegment(t *testing.T) {
	for _, ok := range []string{"mia", "alice@example.com", "ibm-quantum", "laptop.2", "_x", "a"} {
		if !validSegment(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", ".", "..", "a..b", ".hidden", "a/b", "a?b", "a#b", "a%2Fb", "a b", "ü", string(make([]byte, 129))} {
		if validSegment(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOpenAPIRequestFields(t *testing.T) {
	doc := map[string]interface{}{
		"paths": map[string]interface{}{
			"/users/{user}/tokens/{name}": map[string]interface{}{
				"post": map[string]interface{}{"requestBody": map[string]interface{}{"content": map[string]interface{}{
					"application/json": map[string]interface{}{"schema": map[string]interface{}{"$ref": "#/components/schemas/Create"}},
				}}},
			},
		},
		"components": map[string]interface{}{"schemas": map[string]interface{}{
			"Create": map[string]interface{}{"properties": map[string]interface{}{"ttl": map[string]interface{}{}, "scopes": map[string]interface{}{}}},
		}},
	}
	fields := openAPIRequestFields(doc)
	if !fields["scopes"] || !fields["ttl"] || fields["description"] {
		t.Fatalf("%v", fields)
	}
	if len(openAPIRequestFields(map[string]interface{}{})) != 0 {
		t.Fatal("fields from an empty document")
	}
}
