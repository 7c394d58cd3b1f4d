package jobspec

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cutover/cutover/internal/model"
)

// Filters choose what of every mailbox the job migrates, the knobs imapsync and MigrationWiz
// operators know (README "What a job migrates"):
//
//   - max_message_size: larger messages are quarantined, never tried (imapsync --maxsize).
//   - include / exclude: regexes on source folder names (imapsync --include / --exclude;
//     MigrationWiz's folder filter).
//   - rename: regex renames of folder paths, '/' between levels (imapsync --regextrans2;
//     MigrationWiz's FolderMapping="^Inbox/Old->Archive/Old").
//   - since / before: INTERNALDATE window (imapsync --search SENTSINCE/SENTBEFORE, --maxage /
//     --minage; MigrationWiz's date filter, earliest and latest date).
//   - skip_special_use: folders of these special uses are left out, whatever their name on the
//     source (imapsync has only --exclude by name; MigrationWiz its folder filter by name).
//
// A mailbox's own include and exclude add to the job's; its own since and before replace them.
type Filters struct {
	MaxMessageSize ByteSize             `json:"max_message_size,omitempty" yaml:"max_message_size,omitempty"`
	Include        []string             `json:"include,omitempty" yaml:"include,omitempty"`
	Exclude        []string             `json:"exclude,omitempty" yaml:"exclude,omitempty"`
	Rename         []model.FolderRename `json:"rename,omitempty" yaml:"rename,omitempty"`
	Since          *time.Time           `json:"since,omitempty" yaml:"since,omitempty"`
	Before         *time.Time           `json:"before,omitempty" yaml:"before,omitempty"`
	SkipSpecialUse []string             `json:"skip_special_use,omitempty" yaml:"skip_special_use,omitempty"`
}

// Selection is what of one mailbox a pass migrates: the job's filters with the mailbox's own.
type Selection struct {
	Include, Exclude []string
	Since, Before    *time.Time
	MaxMessageSize   int64
	Renames          []model.FolderRename
	SkipSpecialUse   []string
}

// Selection returns a mailbox's selection: its include and exclude added to the job's, its
// own date window (if any) replacing the job's.
func (s Spec) Selection(m Mailbox) Selection {
	f := s.Filters
	out := Selection{Since: f.Since, Before: f.Before, MaxMessageSize: int64(f.MaxMessageSize), Renames: f.Rename,
		SkipSpecialUse: f.SkipSpecialUse}
	if len(f.Include)+len(m.Include) > 0 {
		out.Include = append(append([]string(nil), f.Include...), m.Include...)
	}
	if len(f.Exclude)+len(m.Exclude) > 0 {
		out.Exclude = append(append([]string(nil), f.Exclude...), m.Exclude...)
	}
	if m.Since != nil || m.Before != nil {
		out.Since, out.Before = m.Since, m.Before
	}
	return out
}

func (f Filters) validate(p *problems) {
	if f.MaxMessageSize < 0 {
		p.add("filters.max_message_size", "must not be negative")
	}
	for name, list := range map[string][]string{"include": f.Include, "exclude": f.Exclude} {
		if len(list) > maxIncludeExcludeEntries {
			p.addMap("filters."+name, fmt.Sprintf("%d entries: at most %d", len(list), maxIncludeExcludeEntries))
		}
		for i, re := range list {
			if _, err := regexp.Compile(re); err != nil {
				p.addMap(fmt.Sprintf("filters.%s[%d]", name, i), fmt.Sprintf("%q is not a regular expression: %v", re, err))
			}
		}
	}
	for i, r := range f.Rename {
		if _, err := regexp.Compile(r.Match); err != nil {
			p.add(fmt.Sprintf("filters.rename[%d].match", i), fmt.Sprintf("%q is not a regular expression: %v", r.Match, err))
		}
		if strings.TrimSpace(r.To) == "" {
			p.add(fmt.Sprintf("filters.rename[%d].to", i), "required: the destination path ('/' between levels, $1 for groups)")
		}
	}
	if f.Since != nil && f.Before != nil && !f.Since.Before(*f.Before) {
		p.add("filters.since", "must be before filters.before")
	}
	for i, u := range f.SkipSpecialUse {
		if _, ok := model.SpecialUseNames[strings.ToLower(u)]; !ok {
			p.add(fmt.Sprintf("filters.skip_special_use[%d]", i), fmt.Sprintf("%q: want trash, junk, sent, drafts or archive", u))
		}
	}
}

// ByteSize is a size in bytes, written as a number or with a unit: "25MB", "512 KiB", "1.5GB"
// (KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024).
type ByteSize int64

var sizeUnits = map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}

var sizeRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$`)

// ParseByteSize reads a size as ByteSize documents it.
func ParseByteSize(s string) (ByteSize, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q: want a size such as 25MB or 26214400", s)
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (B, KB, MB, GB, KiB, MiB, GiB)", s, m[2])
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil || n*unit > 1<<62 {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return ByteSize(n * unit), nil
}

// UnmarshalJSON accepts a number of bytes or a string with a unit. It is a method of the
// workflow input too: the number it marshals to reads back unchanged.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var n int64
	if err := json.Unmarshal(data, &n); err == nil {
		*b = ByteSize(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("size: want a number of bytes or a string such as \"25MB\"")
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalYAML accepts what UnmarshalJSON does.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
