package gateway

import (
	"fmt"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/delivery"
	"github.com/radgate/radgate/worklist"
)

// upsSinks are the worklist's senders to external UPS-RS worklist
// managers, one per worklist_ups_to URL, registered with the outbox as
// "ups+URL" (so that they are not taken for STOW-RS destinations).
func upsSinks(cfg *config.Config, dcfg *delivery.Config) ([]worklist.Sink, error) {
	var sinks []worklist.Sink
	for _, u := range cfg.WorklistUPSTo {
		s, err := delivery.NewUPSSender(u)
		if err != nil {
			return nil, fmt.Errorf("gateway: worklist_ups_to: %w", err)
		}
		if dcfg.Senders == nil {
			dcfg.Senders = map[string]delivery.Sender{}
		}
		dest := "ups+" + u
		dcfg.Senders[dest] = s
		sinks = append(sinks, worklist.UPSSink{Destination: dest})
	}
	return sinks, nil
}
