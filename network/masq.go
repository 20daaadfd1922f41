package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
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

// iptables removes masquerade rules that the bridge plugin left behind. The
// plugin deletes an id's rules on DEL only if it finds the id's eth0 in a
// live netns; after a crash, a lost netns or a half-done ADD they stay, and
// each one is a nat chain plus a jump from POSTROUTING.
type iptables struct {
	path string
}

// sweep deletes every nat rule whose comment matches, and the CNI- chains
// those rules live in or jump to.
func (t iptables) sweep(ctx context.Context, match func(comment string) bool) error {
	out, err := t.run(ctx, "-t", "nat", "-S")
	if err != nil {
		return err
	}
	var jumps [][]string
	var chains []string
	for line := range strings.Lines(string(out)) {
		args, err := splitRule(strings.TrimSpace(line))
		if err != nil {
			return fmt.Errorf("parse %q: %w", line, err)
		}
		if len(args) < 2 || args[0] != "-A" || !match(flagValue(args, "--comment")) {
			continue
		}
		// Only CNI- chains are ever deleted whole: those are the plugin's.
		if chain := args[1]; strings.HasPrefix(chain, "CNI-") {
			chains = append(chains, chain)
			continue
		}
		if target := flagValue(args, "-j"); strings.HasPrefix(target, "CNI-") {
			chains = append(chains, target)
		}
		jumps = append(jumps, args)
	}
	var errs []error
	for _, args := range jumps {
		del := append([]string{"-t", "nat", "-D"}, args[1:]...)
		if _, err := t.run(ctx, del...); err != nil {
			errs = append(errs, err)
		}
	}
	slices.Sort(chains)
	for _, chain := range slices.Compact(chains) {
		if _, err := t.run(ctx, "-t", "nat", "-F", chain); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := t.run(ctx, "-t", "nat", "-X", chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lookIptables finds iptables in PATH or, since a non-root user's PATH often
// lacks the sbin directories, where distributions install it.
func lookIptables() (string, error) {
	path, err := exec.LookPath("iptables")
	if err == nil {
		return path, nil
	}
	for _, p := range []string{"/usr/sbin/iptables", "/sbin/iptables"} {
		if _, serr := exec.LookPath(p); serr == nil {
			return p, nil
		}
	}
	return "", err
}

func (t iptables) run(ctx context.Context, args ...string) ([]byte, error) {
	// -w: wait for the xtables lock rather than fail when a plugin holds it.
	cmd := exec.CommandContext(ctx, t.path, append([]string{"-w"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// flagValue returns the argument after the first occurrence of flag.
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// splitRule splits one line of "iptables -S" into arguments. iptables quotes
// an argument that contains spaces or quotes with double quotes and escapes
// '"' and '\' in it with a backslash.
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
