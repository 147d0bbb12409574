package study

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/store"
)

// ErrRule wraps every invalid routing rule.
var ErrRule = errors.New("study: invalid routing rule")

// Rule is a compiled routing rule: the series it takes, the models to run
// on them, at what priority, after how much silence, with the results
// going where.
type Rule struct {
	Name              string
	Modalities        []string // upper case
	BodyParts         []string // upper case
	SOPClasses        []string
	SeriesDescription *regexp.Regexp
	CalledAEs         []string // upper case
	CallingAEs        []string // upper case
	MinImages         int
	MaxImages         int // 0: no maximum
	Models            []string
	Priority          inference.Priority
	Quiet             time.Duration // 0: the assembler's default
	Destinations      []string      // nil: the default destinations
}

// DefaultRules route what the reference models read: DX/CR chest
// radiographs to chest X-ray triage, head CT to hemorrhage detection.
func DefaultRules() []Rule {
	return []Rule{
		{Name: "chest-radiograph", Modalities: []string{"DX", "CR"}, BodyParts: []string{"CHEST"}, Models: []string{"cxr-triage"}, Priority: inference.Routine},
		{Name: "head-ct", Modalities: []string{"CT"}, BodyParts: []string{"HEAD", "BRAIN"}, Models: []string{"ct-ich"}, Priority: inference.Routine},
	}
}

// Compile checks and compiles the config file's routes.
func Compile(routes []config.Route) ([]Rule, error) {
	var out []Rule
	var errs []error
	names := map[string]bool{}
	for i, r := range routes {
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%w: routes[%d] %s: %s", ErrRule, i, r.Name, fmt.Sprintf(format, a...)))
		}
		if r.Name == "" {
			bad("no name")
		} else if names[r.Name] {
			bad("name used twice")
		}
		names[r.Name] = true
		rule := Rule{
			Name:         r.Name,
			Modalities:   upper(r.Match.Modality),
			BodyParts:    upper(r.Match.BodyPart),
			SOPClasses:   r.Match.SOPClass,
			CalledAEs:    upper(r.Match.CalledAE),
			CallingAEs:   upper(r.Match.CallingAE),
			MinImages:    r.Match.MinImages,
			MaxImages:    r.Match.MaxImages,
			Models:       r.Models,
			Priority:     inference.Routine,
			Destinations: r.Destinations,
		}
		if r.Match.SeriesDescription != "" {
			re, err := regexp.Compile(r.Match.SeriesDescription)
			if err != nil {
				bad("series_description: %v", err)
			}
			rule.SeriesDescription = re
		}
		if r.Match.MinImages < 0 || r.Match.MaxImages < 0 || (r.Match.MaxImages > 0 && r.Match.MaxImages < r.Match.MinImages) {
			bad("min_images %d, max_images %d", r.Match.MinImages, r.Match.MaxImages)
		}
		if len(r.Models) == 0 {
			bad("no models")
		}
		if r.Priority != "" {
			p, err := inference.ParsePriority(r.Priority)
			if err != nil {
				bad("priority: %v", err)
			}
			rule.Priority = p
		}
		if r.Quiet != "" {
			d, err := time.ParseDuration(r.Quiet)
			if err != nil || d <= 0 {
				bad("quiet %q: want a positive duration", r.Quiet)
			}
			rule.Quiet = d
		}
		out = append(out, rule)
	}
	return out, errors.Join(errs...)
}

func upper(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = strings.ToUpper(strings.TrimSpace(s))
	}
	return out
}

// Series is what routing sees of one series: its attributes, and the
// instances stored so far.
type Series struct {
	UID         string
	Modality    string
	BodyPart    string
	Description string
	Instances   []store.Instance
}

// groupSeries splits a study's instances by series, the series in the
// order of their first instance, each series' instances in their order.
func groupSeries(ins []store.Instance) []Series {
	var out []Series
	at := map[string]int{}
	for _, in := range ins {
		i, ok := at[in.SeriesInstanceUID]
		if !ok {
			i = len(out)
			at[in.SeriesInstanceUID] = i
			out = append(out, Series{UID: in.SeriesInstanceUID, Modality: in.Modality, BodyPart: in.BodyPartExamined, Description: in.SeriesDescription})
		}
		out[i].Instances = append(out[i].Instances, in)
	}
	return out
}

// RequestPriority is the highest C-STORE request priority of ins on the
// inference scale: HIGH is High, LOW is Low, MEDIUM (or none, as STOW-RS
// has) is Routine. A study sent HIGH reads HIGH from the first queue on.
func RequestPriority(ins []store.Instance) inference.Priority {
	if len(ins) == 0 {
		return inference.Routine
	}
	p := inference.Low
	for _, in := range ins {
		switch in.RequestPriority {
		case "HIGH":
			p = max(p, inference.High)
		case "LOW":
		default:
			p = max(p, inference.Routine)
		}
	}
	return p
}

// Routed is one rule's share of a study: the series it took.
type Routed struct {
	Rule   *Rule
	Series []*Series
}

// Route gives each series of a study's instances to the first rule that
// takes it. It returns the rules that took any, in the order they first
// did, and for each series none took a line saying why (no patient data:
// the series UID is hashed).
func Route(rules []Rule, ins []store.Instance) (routed []Routed, unrouted []string) {
	series := groupSeries(ins)
	for i := range series {
		s := &series[i]
		var why []string
		var hit *Rule
		for k := range rules {
			r := &rules[k]
			ok, reason := r.Matches(s)
			if ok {
				hit = r
				break
			}
			why = append(why, r.Name+": "+reason)
		}
		if hit == nil {
			unrouted = append(unrouted, "series "+dcm.UIDRef(s.UID)+" ("+s.Modality+") matched no route: "+strings.Join(why, "; "))
			continue
		}
		k := slices.IndexFunc(routed, func(r Routed) bool { return r.Rule == hit })
		if k < 0 {
			k = len(routed)
			routed = append(routed, Routed{Rule: hit})
		}
		routed[k].Series = append(routed[k].Series, s)
	}
	return routed, unrouted
}

// Matches reports whether the rule takes the series, and if not, why
// (for the record of an unmatched study).
func (r *Rule) Matches(s *Series) (bool, string) {
	in := func(list []string, v string) bool {
		return len(list) == 0 || slices.Contains(list, strings.ToUpper(strings.TrimSpace(v)))
	}
	switch {
	case !in(r.Modalities, s.Modality):
		return false, "modality " + s.Modality
	case !in(r.BodyParts, s.BodyPart):
		return false, "body part " + s.BodyPart
	case r.SeriesDescription != nil && !r.SeriesDescription.MatchString(s.Description):
		return false, "series description"
	case len(s.Instances) < r.MinImages:
		return false, fmt.Sprintf("%d images, fewer than %d", len(s.Instances), r.MinImages)
	case r.MaxImages > 0 && len(s.Instances) > r.MaxImages:
		return false, fmt.Sprintf("%d images, more than %d", len(s.Instances), r.MaxImages)
	}
	for _, in := range s.Instances {
		switch {
		case len(r.SOPClasses) > 0 && !slices.Contains(r.SOPClasses, in.SOPClassUID):
			return false, "SOP class " + in.SOPClassUID
		case len(r.CalledAEs) > 0 && !slices.Contains(r.CalledAEs, strings.ToUpper(in.CalledAE)):
			return false, "called AE " + in.CalledAE
		case len(r.CallingAEs) > 0 && !slices.Contains(r.CallingAEs, strings.ToUpper(in.CallingAE)):
			return false, "calling AE " + in.CallingAE
		}
	}
	return true, ""
}
