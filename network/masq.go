package network

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// ruleComment is the comment the bridge plugin puts on an id's masquerade
// rules (plugins/pkg/utils.FormatComment).
func ruleComment(network, id string) string {
	return fmt.Sprintf("name: %q id: %q", network, id)
}

// rulePrefix starts the comment of every masquerade rule of a network.
func rulePrefix(network string) string {
	return fmt.Sprintf("name: %q id: ", network)
}

// chainName is the nat chain the bridge plugin creates for an id
// (plugins/pkg/utils.FormatChainName): "CNI-" and 24 hex digits of
// sha512(network+id). That package is not imported for two format strings:
// it would link nftables and conntrack code into the daemon.
func chainName(network, id string) string {
	sum := sha512.Sum512([]byte(network + id))
	return "CNI-" + hex.EncodeToString(sum[:])[:24]
}

// ruleTable is the part of go-iptables the clean-up uses, so that tests
// can run it against a fake nat table.
type ruleTable interface {
	List(table, chain string) ([]string, error)
	ListChains(table string) ([]string, error)
	Delete(table, chain string, rulespec ...string) error
	ClearAndDeleteChain(table, chain string) error
}

var _ ruleTable = (*iptables.IPTables)(nil)

// masq removes masquerade rules that the bridge plugin left behind. The
// plugin deletes an id's rules on DEL only if it finds the id's eth0 in a
// live netns; after a crash, a lost netns or a half-done ADD they stay, and
// each one is a nat chain plus a jump from POSTROUTING.
type masq struct {
	ipt ruleTable
}

// newMasq finds iptables in PATH or, since a non-root user's PATH often
// lacks the sbin directories, where distributions install it. go-iptables
// waits for the xtables lock (--wait) rather than fail when a plugin holds
// it.
func newMasq() (masq, error) {
	path, err := exec.LookPath("iptables")
	if err != nil {
		for _, p := range []string{"/usr/sbin/iptables", "/sbin/iptables"} {
			if _, serr := exec.LookPath(p); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return masq{}, err
	}
	ipt, err := iptables.New(iptables.Path(path))
	if err != nil {
		return masq{}, err
	}
	return masq{ipt: ipt}, nil
}

// sweepID deletes id's masquerade rules: the jumps from POSTROUTING that
// carry its comment and its chain.
func (m masq) sweepID(ctx context.Context, network, id string) error {
	comment := ruleComment(network, id)
	return m.sweep(ctx, func(c string) bool { return c == comment }, []string{chainName(network, id)})
}

// sweepNetwork deletes the masquerade rules of every id of network: the
// jumps from POSTROUTING that carry its comments, and every CNI- chain
// with a rule that does.
func (m masq) sweepNetwork(ctx context.Context, network string) error {
	all, err := m.ipt.ListChains("nat")
	if err != nil {
		return err
	}
	prefix := rulePrefix(network)
	match := func(c string) bool { return strings.HasPrefix(c, prefix) }
	var chains []string
	for _, chain := range all {
		if !strings.HasPrefix(chain, "CNI-") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rules, err := m.ipt.List("nat", chain)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if args, err := splitRule(r); err == nil && len(args) > 1 && args[0] == "-A" && match(flagValue(args, "--comment")) {
				chains = append(chains, chain)
				break
			}
		}
	}
	return m.sweep(ctx, match, chains)
}

// sweep deletes the POSTROUTING rules whose comment matches, then the CNI-
// chains they jump to and chains, each of which must be the plugin's.
// Chains go last: iptables refuses to delete a chain something jumps to.
func (m masq) sweep(ctx context.Context, match func(comment string) bool, chains []string) error {
	rules, err := m.ipt.List("nat", "POSTROUTING")
	if err != nil {
		return err
	}
	var jumps [][]string
	for _, r := range rules {
		args, err := splitRule(r)
		if err != nil {
			return fmt.Errorf("parse %q: %w", r, err)
		}
		if len(args) < 2 || args[0] != "-A" || !match(flagValue(args, "--comment")) {
			continue
		}
		if target := flagValue(args, "-j"); strings.HasPrefix(target, "CNI-") {
			chains = append(chains, target)
		}
		jumps = append(jumps, args[2:])
	}
	var errs []error
	for _, spec := range jumps {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := m.ipt.Delete("nat", "POSTROUTING", spec...); err != nil && !isNotExist(err) {
			errs = append(errs, err)
		}
	}
	slices.Sort(chains)
	for _, chain := range slices.Compact(chains) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := m.ipt.ClearAndDeleteChain("nat", chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isNotExist reports an iptables error for a rule or chain that is already
// gone, which is what a sweep wants.
func isNotExist(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.IsNotExist()
}

// flagValue returns the argument after the first occurrence of flag.
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// splitRule splits one rule as "iptables -S" prints it, which is how
// go-iptables returns rules, into arguments. iptables quotes an argument
// that contains spaces or quotes with double quotes and escapes '"' and '\'
// in it with a backslash.
func splitRule(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case quoted && c == '"':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '"':
			quoted, inArg = true, true
		case c == ' ' || c == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
