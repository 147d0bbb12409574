package inference

import (
	"testing"
	"time"
)

// SetRemoteHealthInterval shortens the health checks of the remote models
// loaded from now until t ends.
func SetRemoteHealthInterval(t testing.TB, d time.Duration) {
	old := remoteHealthInterval
	remoteHealthInterval = d
	t.Cleanup(func() { remoteHealthInterval = old })
}
