package api_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSecrets(t *testing.T) {
	s := newServer(t, false)
	steps := []struct {
		method, path, body string
		wantCode           int
		wantBody           string // substring
		want               map[string]string
	}{
		{"GET", "/system/secrets", "", http.StatusOK, "[]", map[string]string{}},
		{"POST", "/system/secrets", `{"name":"db","value":"pw1"}`, http.StatusCreated, "", map[string]string{"db": "pw1"}},
		{"POST", "/system/secrets", `{"name":"db","value":"again"}`, http.StatusConflict, "already exists", map[string]string{"db": "pw1"}},
		{"GET", "/system/secrets", "", http.StatusOK, `[{"name":"db","namespace":"openfaas-fn"}]`, nil},
		// faas-cli --from-file sends rawValue (base64 in JSON); it wins over value.
		{"PUT", "/system/secrets", `{"name":"db","value":"ignored","rawValue":"cmF3AGJ5dGVz"}`, http.StatusOK, "", map[string]string{"db": "raw\x00bytes"}},
		{"PUT", "/system/secrets", `{"name":"nope","value":"x"}`, http.StatusNotFound, "", nil},
		{"POST", "/system/secrets?namespace=other", `{"name":"x","value":"v"}`, http.StatusNotFound, "", nil},
		{"POST", "/system/secrets", `{"name":"x","value":"v","namespace":"other"}`, http.StatusNotFound, "", nil},
		{"POST", "/system/secrets", `{"name":"Bad_Name","value":"v"}`, http.StatusBadRequest, "", nil},
		{"POST", "/system/secrets", `{"name":`, http.StatusBadRequest, "", nil},
		{"GET", "/system/secrets?namespace=other", "", http.StatusNotFound, "", nil},
		{"DELETE", "/system/secrets", `{"name":"db"}`, http.StatusOK, "", map[string]string{}},
		{"DELETE", "/system/secrets", `{"name":"db"}`, http.StatusNotFound, "unable to find secret: db", nil},
	}
	for _, st := range steps {
		var body any
		if st.body != "" {
			body = st.body
		}
		r := s.call(t, st.method, st.path, body)
		if r.code != st.wantCode || !strings.Contains(r.body, st.wantBody) {
			t.Errorf("%s %s %s = %d %q, want %d containing %q", st.method, st.path, st.body, r.code, r.body, st.wantCode, st.wantBody)
		}
		if st.want != nil {
			if diff := cmp.Diff(st.want, s.secrets.snapshot()); diff != "" {
				t.Errorf("after %s %s: secrets (-want +got):\n%s", st.method, st.body, diff)
			}
		}
	}
}

// Every update and deletion is re-projected into running replicas; a
// failed projection is reported, not hidden behind a 200.
func TestSecretsReachReplicas(t *testing.T) {
	s := newServer(t, false)
	s.call(t, "POST", "/system/secrets", `{"name":"db","value":"pw1"}`)
	s.call(t, "PUT", "/system/secrets", `{"name":"db","value":"pw2"}`)
	s.call(t, "PUT", "/system/secrets", `{"name":"ghost","value":"x"}`)
	s.call(t, "DELETE", "/system/secrets", `{"name":"db"}`)
	if diff := cmp.Diff([]string{"db", "db"}, s.proj.names()); diff != "" {
		t.Errorf("refreshed (-want +got):\n%s", diff)
	}
	s.call(t, "POST", "/system/secrets", `{"name":"db","value":"pw1"}`)
	s.proj.mu.Lock()
	s.proj.err = errors.New("disk full")
	s.proj.mu.Unlock()
	r := s.call(t, "PUT", "/system/secrets", `{"name":"db","value":"pw3"}`)
	if r.code != http.StatusInternalServerError || !strings.Contains(r.body, "may still see the old one: disk full") {
		t.Errorf("failed projection = %d %q", r.code, r.body)
	}
}
