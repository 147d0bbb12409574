package imaging

// Header returns a copy of the instance's attributes without its pixel
// data, for callers that keep what an image was (its UIDs, geometry)
// after its frames are no longer needed — a long series is never held
// decoded. Frame fails on a header.
func (im *Image) Header() *Image {
	h := *im
	h.frames = nil
	return &h
}
