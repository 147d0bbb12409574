package gateway

import (
	"fmt"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/delivery"
	"github.com/radgate/radgate/worklist"
)

// hl7Sinks are the worklist's HL7 v2.5 senders to the RIS, one per
// worklist_hl7_to destination, each checked to be mllp://HOST:PORT so
// that a typo stops the start. They send as application "RADGATE" at
// facility ae_title.
func (g *Gateway) hl7Sinks(cfg *config.Config) ([]worklist.Sink, error) {
	var sinks []worklist.Sink
	for _, d := range cfg.WorklistHL7To {
		if _, err := delivery.ParseMLLP(d); err != nil {
			return nil, fmt.Errorf("gateway: worklist_hl7_to: %w", err)
		}
		s := worklist.NewHL7Sink(d, "RADGATE", cfg.AETitle)
		s.Phantoms = g.trainedOnPhantoms
		sinks = append(sinks, s)
	}
	return sinks, nil
}

// trainedOnPhantoms says whether the loaded model name@version learnt from
// synthetic phantoms only (false when it is not loaded).
func (g *Gateway) trainedOnPhantoms(model, version string) bool {
	if g.engine == nil {
		return false
	}
	l, ok := g.engine.Lookup(model + "@" + version)
	return ok && l.TrainedOnPhantoms
}
