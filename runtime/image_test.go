package runtime

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// fakeHelper is a docker credential helper: "get" reads a server on stdin
// and answers with its credentials, or docker's not-found message.
const fakeHelper = `#!/bin/sh
[ "$1" = get ] || exit 1
read server
case "$server" in
private.example) echo '{"ServerURL":"private.example","Username":"helper-user","Secret":"helper-secret"}' ;;
token.example) echo '{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-token"}' ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
`

func TestRegistryCredentials(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-fake"), []byte(fakeHelper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	auth := base64.StdEncoding.EncodeToString([]byte("user:pa:ss"))
	auths := `"auths":{"registry.example:5000":{"auth":"` + auth + `"},` +
		`"https://index.docker.io/v1/":{"username":"hub","password":"pw"},` +
		`"http://legacy.example":{"username":"old","password":"scheme"}}`

	type creds struct{ user, secret string }
	for name, tc := range map[string]struct {
		config string // "" for no file
		want   map[string]creds
	}{
		"auths": {"{" + auths + "}", map[string]creds{
			"registry.example:5000": {"user", "pa:ss"},
			"registry-1.docker.io":  {"hub", "pw"},
			"docker.io":             {"hub", "pw"},
			"legacy.example":        {"old", "scheme"},
			"other.example":         {},
		}},
		"credHelpers beside auths": {`{` + auths + `,"credHelpers":{"private.example":"fake","token.example":"fake","registry.example:5000":"fake"}}`, map[string]creds{
			"private.example":       {"helper-user", "helper-secret"},
			"token.example":         {"", "refresh-token"}, // an identity token: containerd's refresh token
			"registry.example:5000": {},                    // a host's helper is all there is, as for docker
			"registry-1.docker.io":  {"hub", "pw"},
		}},
		"credsStore for every registry": {`{"credsStore":"fake"}`, map[string]creds{
			"private.example": {"helper-user", "helper-secret"},
			"other.example":   {},
		}},
		"no file": {"", map[string]creds{"registry.example:5000": {}}},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.json")
			if tc.config != "" {
				if err := os.WriteFile(p, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			get := keychainCreds(configKeychain{path: p})
			for host, want := range tc.want {
				user, secret, err := get(host)
				if err != nil {
					t.Errorf("%s: %v", host, err)
					continue
				}
				if got := (creds{user, secret}); got != want {
					t.Errorf("%s: got %+v, want %+v", host, got, want)
				}
			}
		})
	}
}

func TestRegistryCredentialsErrors(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for name, config := range map[string]string{
		"malformed file": `{"auths":`,
		"missing helper": `{"credHelpers":{"private.example":"absent"}}`,
		"malformed auth": `{"auths":{"private.example":{"auth":"%%%"}}}`,
	} {
		p := filepath.Join(t.TempDir(), "config.json")
		os.WriteFile(p, []byte(config), 0o600)
		if u, s, err := keychainCreds(configKeychain{path: p})("private.example"); err == nil {
			t.Errorf("%s: no error, got %q %q", name, u, s)
		}
	}
}
