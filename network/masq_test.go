package network

import (
	"crypto/sha512"
	"encoding/hex"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// chainName is the nat chain the bridge plugin creates for an id
// (plugins/pkg/utils.FormatChainName): "CNI-" and 24 hex digits of
// sha512(network+id).
func chainName(network, id string) string {
	sum := sha512.Sum512([]byte(network + id))
	return "CNI-" + hex.EncodeToString(sum[:])[:24]
}

func TestSplitRule(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"-N CNI-4f1a", []string{"-N", "CNI-4f1a"}},
		{
			`-A POSTROUTING -s 10.231.7.2/32 -m comment --comment "name: \"ember-test\" id: \"fn-a-1\"" -j CNI-4f1a`,
			[]string{"-A", "POSTROUTING", "-s", "10.231.7.2/32", "-m", "comment", "--comment", `name: "ember-test" id: "fn-a-1"`, "-j", "CNI-4f1a"},
		},
		{
			`-A CNI-4f1a ! -d 224.0.0.0/4 -m comment --comment "name: \"n\" id: \"x\"" -j MASQUERADE`,
			[]string{"-A", "CNI-4f1a", "!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", `name: "n" id: "x"`, "-j", "MASQUERADE"},
		},
		{`-A X --comment "back\\slash"`, []string{"-A", "X", "--comment", `back\slash`}},
		{`-A X --comment ""`, []string{"-A", "X", "--comment", ""}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := splitRule(tt.line)
		if err != nil {
			t.Errorf("splitRule(%q): %v", tt.line, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitRule(%q) (-want +got):\n%s", tt.line, diff)
		}
	}
	if _, err := splitRule(`-A X --comment "open`); err == nil {
		t.Error("splitRule accepted an unterminated quote")
	}
}

func TestRuleComment(t *testing.T) {
	if got, want := ruleComment("ember-ns1", "fn-a-1"), `name: "ember-ns1" id: "fn-a-1"`; got != want {
		t.Errorf("ruleComment = %q, want %q", got, want)
	}
	if got, want := rulePrefix("ember-ns1"), `name: "ember-ns1" id: `; got != want {
		t.Errorf("rulePrefix = %q, want %q", got, want)
	}
	if got := chainName("ember-ns1", "fn-a-1"); len(got) != 28 {
		t.Errorf("chainName = %q, want 28 characters", got)
	}
}
