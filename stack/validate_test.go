package stack

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emberfaas/ember/function"
)

// A stack is checked with the daemon's own validation: whatever the
// daemon would refuse stops the stack with an error naming the file, the
// function and what was wrong, and no deployment is returned.
func TestDeploymentsValidateSpec(t *testing.T) {
	const head = "provider:\n  name: openfaas\nfunctions:\n  x:\n    image: x:1\n"
	for _, tc := range []struct {
		name, fn string // fn is the rest of function x
		envFile  string
		want     string // the message after `FILE: function "x": `
	}{
		{"cpu NaN", "    limits:\n      cpu: NaN\n", "", `limits.cpu "NaN": not a quantity such as 500m or 0.5`},
		{"cpu .inf", "    limits:\n      cpu: .inf\n", "", `limits.cpu ".inf": not a quantity such as 500m or 0.5`},
		{"cpu 1e30", "    requests:\n      cpu: 1e30\n", "", `requests.cpu "1e30": above the limit of 1024 cores`},
		{"memory 1Ti", "    limits:\n      memory: 1Ti\n", "", `limits.memory "1Ti": not below the limit of 1Ti`},
		{"memory 9e18", "    limits:\n      memory: 9e18\n", "", `limits.memory "9e18": not below the limit of 1Ti`},
		{"env key newline", "    environment:\n      \"A\\nB\": v\n", "", `environment variable name "A\nB" must not contain`},
		{"env value NUL", "    environment:\n      K: \"a\\0b\"\n", "", `environment variable K: value contains a NUL byte`},
		{"env file key newline", "    environment_file: [env.yml]\n", "environment:\n  \"A\\rB\": v\n", `environment variable name "A\rB"`},
		{"bad label", "    labels:\n      com.openfaas.scale.max: lots\n", "", `label com.openfaas.scale.max="lots" is not a non-negative integer`},
		{"bad scale target", "    labels:\n      com.openfaas.scale.target: \"0\"\n", "", `label com.openfaas.scale.target="0" is not a positive integer`},
		{"bad scale factor", "    labels:\n      com.openfaas.scale.factor: \"200\"\n", "", `label com.openfaas.scale.factor="200" is not a percentage from 1 to 100`},
		{"fprocess NUL", "    fprocess: \"cat\\0\"\n", "", `envProcess "cat\x00" contains a NUL byte`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "stack.yml")
			writeFile(t, path, head+tc.fn)
			if tc.envFile != "" {
				writeFile(t, filepath.Join(dir, "env.yml"), tc.envFile)
			}
			s := load(t, path, nil)
			ds, err := s.Deployments("")
			if len(ds) != 0 {
				t.Errorf("%d deployments returned with the error", len(ds))
			}
			if want := path + `: function "x": ` + tc.want; err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error:\n got %v\nwant %s...", err, want)
			}
			var se *Error
			if !errors.As(err, &se) || !errors.Is(err, function.ErrInvalid) {
				t.Errorf("error %v: want a *stack.Error matching function.ErrInvalid", err)
			}
		})
	}
}
