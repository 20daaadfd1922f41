package function

import "context"

// PullProgress is an image pull's state so far: each layer's bytes
// fetched, as containerd's content store reports them.
type PullProgress struct {
	Image  string          `json:"image"`
	Layers []LayerProgress `json:"layers"`
}

// LayerProgress is one layer of a pull. Done equals Total once the layer
// is in the content store.
type LayerProgress struct {
	Digest string `json:"digest"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
}

// Bytes returns the bytes fetched and to fetch, all layers together.
func (p PullProgress) Bytes() (done, total int64) {
	for _, l := range p.Layers {
		done += l.Done
		total += l.Total
	}
	return done, total
}

type pullProgressKey struct{}

// WithPullProgress returns a context under which a pull reports its
// progress to report, from one goroutine, until the pull returns. It
// travels in the context because a deploy reaches the pull through the
// controller, which has no business with it.
func WithPullProgress(ctx context.Context, report func(PullProgress)) context.Context {
	return context.WithValue(ctx, pullProgressKey{}, report)
}

// PullProgressFrom returns the report function of WithPullProgress, nil
// when nobody asked.
func PullProgressFrom(ctx context.Context) func(PullProgress) {
	f, _ := ctx.Value(pullProgressKey{}).(func(PullProgress))
	return f
}
