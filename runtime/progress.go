package runtime

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/remotes"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/emberfaas/ember/function"
)

// progressEvery is how often a pull's progress is read and reported.
const progressEvery = 250 * time.Millisecond

// pullWatch follows one pull's layers as nerdctl and ctr do: the image
// handler learns each layer's descriptor as its manifest is read, and the
// content store's active ingests say how far each download is.
type pullWatch struct {
	image  string
	cs     content.Store
	report func(function.PullProgress)

	mu     sync.Mutex // guards below
	layers []ocispec.Descriptor
}

// handler records the layers the pull will fetch.
func (w *pullWatch) handler() images.HandlerFunc {
	return func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsLayerType(desc.MediaType) {
			w.mu.Lock()
			if !slices.ContainsFunc(w.layers, func(d ocispec.Descriptor) bool { return d.Digest == desc.Digest }) {
				w.layers = append(w.layers, desc)
			}
			w.mu.Unlock()
		}
		return nil, nil
	}
}

// run reports progress every progressEvery until stop is closed, then
// once more, so the last report shows the pull's end.
func (w *pullWatch) run(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			w.tick(ctx)
			return
		case <-t.C:
			w.tick(ctx)
		}
	}
}

func (w *pullWatch) tick(ctx context.Context) {
	w.mu.Lock()
	layers := slices.Clone(w.layers)
	w.mu.Unlock()
	if len(layers) == 0 {
		return // the manifest is not read yet
	}
	active := map[string]content.Status{}
	if sts, err := w.cs.ListStatuses(ctx); err == nil {
		for _, st := range sts {
			active[st.Ref] = st
		}
	}
	p := function.PullProgress{Image: w.image, Layers: make([]function.LayerProgress, 0, len(layers))}
	for _, d := range layers {
		l := function.LayerProgress{Digest: d.Digest.String(), Total: d.Size}
		if st, ok := active[remotes.MakeRefKey(ctx, d)]; ok {
			l.Done = st.Offset
		} else if _, err := w.cs.Info(ctx, d.Digest); err == nil {
			l.Done = d.Size
		}
		p.Layers = append(p.Layers, l)
	}
	w.report(p)
}
