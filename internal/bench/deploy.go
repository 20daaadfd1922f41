package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/emberfaas/ember/internal/itest"
)

// DeployResult is deploy → first successful invoke, the way a user sees it
// (`ember deploy` waits for a ready replica, then curl), with the image
// already in the daemon's namespace and with a fresh image to pull from
// the registry on 127.0.0.1.
type DeployResult struct {
	Samples int  `json:"samples"`
	Present Dist `json:"present"`
	Pulled  Dist `json:"pulled"`
	// LayerBytes is the compressed size of the pulled images' one layer
	// (the largest, should they differ).
	LayerBytes int64 `json:"layer_bytes"`
	// Retries counts invokes that failed after deploy had returned.
	Retries int `json:"retries"`
}

func (b *bench) runDeploy(ctx context.Context, rep *Report) error {
	d, err := b.env.startDaemon(ctx, "deploy")
	if err != nil {
		return err
	}
	defer d.teardown()
	res := &DeployResult{Samples: b.sz.deploys}
	rep.Deploy = res
	// Fresh images, one per sample, each with a layer of its own: pushed
	// before anything is timed.
	pulled := make([]string, b.sz.deploys)
	for i := range pulled {
		img, err := b.env.buildEcho(ctx, fmt.Sprintf("deploy sample %d %s", i, randHex(4)))
		if err != nil {
			return err
		}
		// The size the row prints is that of the layers pulled.
		size, err := layerBytes(img)
		if err != nil {
			return err
		}
		res.LayerBytes = max(res.LayerBytes, size)
		pulled[i] = b.env.reg.Ref(fmt.Sprintf("echo-pull:s%d", i))
		if err := itest.Push(ctx, img, pulled[i]); err != nil {
			return err
		}
	}
	c := newClient(2)
	sample := func(name, image string) (time.Duration, error) {
		start := time.Now()
		if err := d.deploy(ctx, name, image, nil); err != nil {
			return 0, err
		}
		retries, err := firstOK(ctx, c, d.fnURL(name, "/"), 30*time.Second)
		took := time.Since(start)
		res.Retries += retries
		if err != nil {
			return 0, err
		}
		if err := d.api.Remove(ctx, name); err != nil {
			return 0, fmt.Errorf("remove %s: %w", name, err)
		}
		return took, nil
	}
	// The first deploy pulls echo into the namespace: not a sample.
	if _, err := sample("first", b.env.echo); err != nil {
		return err
	}
	var present, pull []time.Duration
	stop := b.cpuProfile(ctx, d, "deploy-cpu.pb.gz", 10*time.Second)
	defer func() {
		stop()
		res.Present, res.Pulled = dist(present), dist(pull)
	}()
	for i := range b.sz.deploys {
		b.logf("deploy: %d/%d", i+1, b.sz.deploys)
		t, err := sample(fmt.Sprintf("present-%d", i), b.env.echo)
		if err != nil {
			return err
		}
		present = append(present, t)
		if t, err = sample(fmt.Sprintf("pulled-%d", i), pulled[i]); err != nil {
			return err
		}
		pull = append(pull, t)
	}
	return nil
}

// layerBytes is the compressed size of an image's one layer.
func layerBytes(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	if len(layers) != 1 {
		return 0, fmt.Errorf("image has %d layers, want 1", len(layers))
	}
	return layers[0].Size()
}

// firstOK sends GETs to url until one answers 200, and returns how many
// failed first.
func firstOK(ctx context.Context, c *http.Client, url string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for failed := 0; ; failed++ {
		err := get(ctx, c, url)
		if err == nil {
			return failed, nil
		}
		select {
		case <-ctx.Done():
			return failed, fmt.Errorf("no 200 within %s: %w", timeout, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// targetDeployPresentMs is the goal for deploy → first 200's p50 with the
// image present.
const targetDeployPresentMs = 110

func (r *DeployResult) rows() []Row {
	const s = "3 deploy"
	return []Row{
		{s, fmt.Sprintf("deploy → first 200 p50 / p95, image present (n=%d)", r.Present.N), fmtP50P95(r.Present), "", "",
			atMost(r.Present.P50Ms, targetDeployPresentMs, fmtMs) + " (p50)"},
		{s, fmt.Sprintf("deploy → first 200 p50 / p95, image pulled, %s layer (n=%d; vs present)", fmtBytes(r.LayerBytes), r.Pulled.N),
			fmtP50P95(r.Pulled), fmtP50P95(r.Present), fmtRatio(r.Pulled.P50Ms, r.Present.P50Ms), ""},
	}
}
