package imaging

// Recipe is a model's preprocessing, as its manifest declares it: from an
// instance's modality values to one float32 tensor per frame, laid out
// channels × height × width.
type Recipe struct {
	// Size is the output height and width.
	Size [2]int `yaml:"size" json:"size"`
	// Resize is "letterbox" (aspect-preserving, padded with zeros after
	// windowing) or "stretch".
	Resize string `yaml:"resize" json:"resize"`
	// Channels: one per output channel, each a VOI window.
	Channels []Channel `yaml:"channels" json:"channels"`
	// Normalize, when set, maps each channel's windowed value v in [0,1]
	// to (v-Mean[c])/Std[c].
	Normalize *Normalize `yaml:"normalize,omitempty" json:"normalize,omitempty"`
}

// Channel is one output channel.
type Channel struct {
	// Window in modality units (after rescale). Nil: the instance's own
	// first VOI window (WindowCenter/WindowWidth), or else the frame's
	// value range.
	Window *Window `yaml:"window,omitempty" json:"window,omitempty"`
}

// Window is a linear VOI window (PS3.3 C.11.2.1.2).
type Window struct {
	Center float64 `yaml:"center" json:"center"`
	Width  float64 `yaml:"width" json:"width"`
}

// Normalize holds per-channel mean and standard deviation.
type Normalize struct {
	Mean []float64 `yaml:"mean" json:"mean"`
	Std  []float64 `yaml:"std" json:"std"`
}
