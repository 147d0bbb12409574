package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/audit"
)

// keysRecheck is how often the key file is read again for a rotation.
const keysRecheck = 2 * time.Second

// watchKeys reloads blob_key_file every keysRecheck until ctx ends, so
// that radgate keys rotate takes effect without a restart.
func (g *Gateway) watchKeys(ctx context.Context) error {
	if g.keys == nil {
		return nil
	}
	tick := time.NewTicker(keysRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			g.ReloadKeys()
		}
	}
}

// ReloadKeys re-reads blob_key_file now (radgate serve does it on SIGHUP;
// a rotation is also noticed within seconds without one). A new current
// key-encryption key is logged and audited as a Software Configuration
// change; a file radgate must refuse (store.KeyFile.Reload) leaves the
// keys in use, said once until the file is mended and shown by
// radgate_store_keys_reload_failing.
func (g *Gateway) ReloadKeys() {
	if g.keys == nil {
		return
	}
	rotated, err := g.keys.Reload()
	if err != nil {
		if !g.keysFailing.Swap(true) {
			g.log.Error("store: blob_key_file reload refused; new instances are sealed under the keys in use", "err", err)
		}
		return
	}
	if g.keysFailing.Swap(false) {
		g.log.Info("store: blob_key_file readable again")
	}
	if rotated {
		kek := g.keys.Current()
		g.log.Info("store: blob_key_file rotated; new instances are sealed under its new key", "kek", kek)
		g.record(audit.ConfigurationChanged(audit.AppEvent{App: g.self(), Config: g.cfg.BlobKeyFile}, "kek:"+kek))
	}
}

// keysMetric is radgate_store_keys_reload_failing.
func (g *Gateway) keysMetric() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "radgate_store_keys_reload_failing",
		Help: "1 while blob_key_file cannot be reloaded (unreadable, open to others, or lacking a key in use); new instances are then sealed under the keys read before.",
	}, func() float64 {
		if g.keysFailing.Load() {
			return 1
		}
		return 0
	})
}
