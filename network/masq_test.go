package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

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
	if got := chainName("ember-ns1", "fn-a-1"); len(got) != 28 || !strings.HasPrefix(got, "CNI-") {
		t.Errorf("chainName = %q, want CNI- and 24 hex digits", got)
	}
}

// fakeNAT is a nat table that answers like iptables does through
// go-iptables: rules come back as "iptables -S" prints them, a rule is
// deleted only by its exact spec, and a chain that a rule jumps to cannot
// be deleted.
type fakeNAT struct {
	chains []string              // in listing order, built-in ones first
	rules  map[string][][]string // chain → rule specs
}

var _ ruleTable = (*fakeNAT)(nil)

var builtinChains = []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}

func newFakeNAT() *fakeNAT {
	return &fakeNAT{chains: slices.Clone(builtinChains), rules: map[string][][]string{}}
}

// add appends a rule to chain, creating the chain if needed.
func (f *fakeNAT) add(chain string, spec ...string) {
	if !slices.Contains(f.chains, chain) {
		f.chains = append(f.chains, chain)
	}
	f.rules[chain] = append(f.rules[chain], spec)
}

// masquerade adds the rules the bridge plugin makes for id.
func (f *fakeNAT) masquerade(network, id, ip string) {
	chain, comment := chainName(network, id), ruleComment(network, id)
	f.add(chain, "-d", "10.231.7.0/24", "-m", "comment", "--comment", comment, "-j", "ACCEPT")
	f.add(chain, "!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", comment, "-j", "MASQUERADE")
	f.add("POSTROUTING", "-s", ip+"/32", "-m", "comment", "--comment", comment, "-j", chain)
}

func (f *fakeNAT) check(table, chain string) error {
	if table != "nat" {
		return fmt.Errorf("table %s: not faked", table)
	}
	if !slices.Contains(f.chains, chain) {
		return fmt.Errorf("chain %s: no chain/target/match by that name", chain)
	}
	return nil
}

func (f *fakeNAT) List(table, chain string) ([]string, error) {
	if err := f.check(table, chain); err != nil {
		return nil, err
	}
	head := "-N " + chain
	if slices.Contains(builtinChains, chain) {
		head = "-P " + chain + " ACCEPT"
	}
	lines := []string{head}
	for _, spec := range f.rules[chain] {
		lines = append(lines, "-A "+chain+" "+quoteRule(spec))
	}
	return lines, nil
}

func (f *fakeNAT) ListChains(table string) ([]string, error) {
	if table != "nat" {
		return nil, fmt.Errorf("table %s: not faked", table)
	}
	return slices.Clone(f.chains), nil
}

func (f *fakeNAT) Delete(table, chain string, spec ...string) error {
	if err := f.check(table, chain); err != nil {
		return err
	}
	i := slices.IndexFunc(f.rules[chain], func(r []string) bool { return slices.Equal(r, spec) })
	if i < 0 {
		return fmt.Errorf("delete %q from %s: bad rule", spec, chain)
	}
	f.rules[chain] = slices.Delete(f.rules[chain], i, i+1)
	return nil
}

func (f *fakeNAT) ClearAndDeleteChain(table, chain string) error {
	if !slices.Contains(f.chains, chain) {
		return nil
	}
	if err := f.check(table, chain); err != nil {
		return err
	}
	for from, rules := range f.rules {
		for _, r := range rules {
			if from != chain && flagValue(r, "-j") == chain {
				return fmt.Errorf("delete chain %s: too many links", chain)
			}
		}
	}
	delete(f.rules, chain)
	f.chains = slices.DeleteFunc(f.chains, func(c string) bool { return c == chain })
	return nil
}

// dump is the whole table as "iptables -t nat -S" prints it.
func (f *fakeNAT) dump(t *testing.T) []string {
	t.Helper()
	var all []string
	for _, c := range f.chains {
		lines, err := f.List("nat", c)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, lines...)
	}
	return all
}

// quoteRule joins spec as iptables prints it.
func quoteRule(spec []string) string {
	out := make([]string, len(spec))
	for i, a := range spec {
		if a == "" || strings.ContainsAny(a, " \"\\") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func TestSweep(t *testing.T) {
	const net, other = "ember-test", "ember-other"
	setup := func() (*fakeNAT, masq) {
		f := newFakeNAT()
		f.add("POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE")
		f.masquerade(net, "fn-a-1", "10.231.7.2")
		f.masquerade(net, "fn-b-1", "10.231.7.3")
		f.masquerade(other, "fn-a-1", "10.231.8.2") // the same id elsewhere
		// A half-done ADD: the chain, but no jump to it yet.
		f.add(chainName(net, "fn-c-1"), "-d", "10.231.7.0/24", "-m", "comment", "--comment", ruleComment(net, "fn-c-1"), "-j", "ACCEPT")
		return f, masq{ipt: f}
	}
	// mentions reports whether any rule or chain of the table is id's in
	// network.
	mentions := func(t *testing.T, f *fakeNAT, network, id string) bool {
		for _, l := range f.dump(t) {
			if strings.Contains(l, chainName(network, id)) || strings.Contains(l, quoteRule([]string{ruleComment(network, id)})) {
				return true
			}
		}
		return false
	}

	t.Run("one id", func(t *testing.T) {
		f, m := setup()
		for range 2 { // a repeat finds nothing and succeeds
			if err := m.sweepID(t.Context(), net, "fn-a-1"); err != nil {
				t.Fatal(err)
			}
		}
		if mentions(t, f, net, "fn-a-1") {
			t.Errorf("fn-a-1's rules left:\n%s", strings.Join(f.dump(t), "\n"))
		}
		for _, k := range [][2]string{{net, "fn-b-1"}, {net, "fn-c-1"}, {other, "fn-a-1"}} {
			if !mentions(t, f, k[0], k[1]) {
				t.Errorf("%s of %s swept too:\n%s", k[1], k[0], strings.Join(f.dump(t), "\n"))
			}
		}
		if err := m.sweepID(t.Context(), net, "fn-c-1"); err != nil {
			t.Fatal(err)
		}
		if mentions(t, f, net, "fn-c-1") {
			t.Errorf("fn-c-1's chain without a jump left:\n%s", strings.Join(f.dump(t), "\n"))
		}
	})

	t.Run("a network", func(t *testing.T) {
		f, m := setup()
		want := newFakeNAT()
		want.add("POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE")
		want.masquerade(other, "fn-a-1", "10.231.8.2")
		for range 2 {
			if err := m.sweepNetwork(t.Context(), net); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(want.dump(t), f.dump(t)); diff != "" {
			t.Errorf("nat table after sweeping %s (-want +got):\n%s", net, diff)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		f, m := setup()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := m.sweepID(ctx, net, "fn-a-1"); !errors.Is(err, context.Canceled) {
			t.Errorf("sweepID = %v, want context.Canceled", err)
		}
		if !mentions(t, f, net, "fn-a-1") {
			t.Error("a cancelled sweep deleted rules")
		}
	})
}
