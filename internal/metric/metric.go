// Package metric holds what every package's Prometheus collectors share.
package metric

import "github.com/prometheus/client_golang/prometheus"

// Register registers the collectors on reg, stopping at the first error;
// a nil reg registers nothing (the collectors still work, unscraped, as
// tests want them).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
