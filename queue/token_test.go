package queue

import "testing"

// A key outside the default namespace has a dot, which NATS takes as a
// token separator in subjects and refuses in consumer names.
func TestTokens(t *testing.T) {
	for key, want := range map[string]string{"echo": "echo", "echo.staging": "echo_staging", "a-b.c-d": "a-b_c-d"} {
		if got := token(key); got != want || keyOf(got) != key {
			t.Errorf("token(%q) = %q (back: %q), want %q", key, got, keyOf(got), want)
		}
	}
	if got := subject("echo"); got != "ember.calls.echo" {
		t.Errorf("subject of the default namespace's echo = %q: changed from before namespaces", got)
	}
	if got := consumerName("echo.staging"); got != "fn-echo_staging" {
		t.Errorf("consumerName = %q", got)
	}
}
