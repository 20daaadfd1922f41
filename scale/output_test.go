package scale

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewOutput(t *testing.T) {
	for _, tc := range []struct {
		name       string
		prev, tail []string
		want       []string
	}{
		{"first run", nil, []string{"a", "b"}, []string{"a", "b"}},
		{"same lines again", []string{"panic"}, []string{"panic", "panic"}, []string{"panic"}},
		{"third run", []string{"panic", "panic"}, []string{"panic", "panic", "panic"}, []string{"panic"}},
		{"nothing new", []string{"a"}, []string{"a"}, []string{}},
		{"window slid", []string{"1", "2", "3"}, []string{"3", "x", "y"}, []string{"x", "y"}},
		{"longest overlap", []string{"x", "a"}, []string{"x", "a", "a"}, []string{"a"}},
		{"log rotated", []string{"old"}, []string{"new"}, []string{"new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, newOutput(tc.prev, tc.tail)); diff != "" {
				t.Errorf("newOutput(%q, %q) (-want +got):\n%s", tc.prev, tc.tail, diff)
			}
		})
	}
}
