// Package folders maps a source account's folders onto a destination account: special-use
// automapping across languages and server conventions, an explicit folder map that wins over
// it, include/exclude regexes, hierarchy separator and namespace prefix translation, and IMAP's
// modified UTF-7 names.
//
// Names in this package are UTF-8 as the server shows them (go-imap decodes modified UTF-7 on
// the wire); internal/utf7 is for the places that speak the raw protocol.
package folders

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cutover/cutover/internal/model"
)

// Special-use attributes (RFC 6154), plus a pseudo attribute for INBOX.
const (
	Inbox   = `\Inbox`
	Sent    = `\Sent`
	Drafts  = `\Drafts`
	Trash   = `\Trash`
	Junk    = `\Junk`
	Archive = `\Archive`
)

// specials are the special uses the automapper knows, in the order folders are reported.
var specials = []string{Sent, Drafts, Trash, Junk, Archive}

// canonical is the name a special folder gets on a destination that has none yet: the names
// of Dovecot's default configuration, cPanel and Plesk.
var canonical = map[string]string{Sent: "Sent", Drafts: "Drafts", Trash: "Trash", Junk: "Junk", Archive: "Archive"}

// knownNames are folder names that mean a special use on servers that do not advertise
// SPECIAL-USE (Exchange, older Courier/cPanel, localized clients). Compared case-insensitively
// against a top-level name.
var knownNames = map[string][]string{
	Sent: {"Sent", "Sent Items", "Sent Messages", "Sent Mail", "Sent-Mail", "Gesendet", "Gesendete Elemente",
		"Gesendete Objekte", "Éléments envoyés", "Envoyés", "Messages envoyés", "Elementos enviados", "Enviados",
		"Itens Enviados", "Posta inviata", "Inviati", "Verzonden items", "Verzonden", "Skickat", "Wysłane"},
	Drafts: {"Drafts", "Draft", "Entwürfe", "Brouillons", "Borradores", "Rascunhos", "Bozze", "Concepten", "Utkast"},
	Trash: {"Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin", "Gelöschte Elemente", "Gelöschte Objekte",
		"Papierkorb", "Éléments supprimés", "Corbeille", "Elementos eliminados", "Papelera", "Lixeira",
		"Itens Excluídos", "Cestino", "Posta eliminata", "Verwijderde items", "Prullenbak"},
	Junk: {"Junk", "Junk E-Mail", "Junk Email", "Junk-E-Mail", "Junk Mail", "Spam", "Bulk Mail", "Courrier indésirable",
		"Correo no deseado", "Lixo Eletrônico", "Posta indesiderata", "Ongewenste e-mail"},
	Archive: {"Archive", "Archives", "Archiv", "Archivo", "Arquivo", "Archivio", "Archief"},
}

// Folder is a mailbox as a server lists it.
type Folder struct {
	Name       string // UTF-8, as listed (namespace prefix included)
	Delim      string // hierarchy separator, "" for a flat namespace
	SpecialUse string // from the SPECIAL-USE attributes, "" if none
	NoSelect   bool   // \Noselect or \NonExistent: a hierarchy node without messages
	Subscribed bool
}

// Namespace describes how one server spells folder paths.
type Namespace struct {
	Prefix string // personal namespace prefix, e.g. "INBOX." on Courier-style servers; "" for most
	Delim  string // hierarchy separator
}

// Levels splits a name into its hierarchy levels below the namespace prefix. INBOX is always
// the single level "INBOX".
func (ns Namespace) Levels(name string) []string {
	if strings.EqualFold(name, "INBOX") {
		return []string{"INBOX"}
	}
	name = ns.Strip(name)
	if ns.Delim == "" {
		return []string{name}
	}
	return strings.Split(name, ns.Delim)
}

// Strip removes the namespace prefix from a name.
func (ns Namespace) Strip(name string) string {
	if ns.Prefix != "" && len(name) > len(ns.Prefix) && strings.EqualFold(name[:len(ns.Prefix)], ns.Prefix) {
		return name[len(ns.Prefix):]
	}
	return name
}

// Join builds a name from hierarchy levels: a level containing the separator has it replaced
// by '_' (it would otherwise create a hierarchy the source does not have), and the prefix is
// added except for INBOX. A first level "INBOX" is dropped when the prefix already is
// "INBOX<delim>", so "INBOX/Sub" does not become "INBOX.INBOX.Sub".
func (ns Namespace) Join(levels []string) string {
	if len(levels) == 1 && strings.EqualFold(levels[0], "INBOX") {
		return "INBOX"
	}
	if len(levels) > 1 && strings.EqualFold(levels[0], "INBOX") && strings.EqualFold(ns.Prefix, "INBOX"+ns.Delim) {
		levels = levels[1:]
	}
	out := make([]string, len(levels))
	for i, l := range levels {
		if ns.Delim != "" {
			l = strings.ReplaceAll(l, ns.Delim, "_")
		}
		out[i] = l
	}
	return ns.Prefix + strings.Join(out, ns.Delim)
}

// Filter is the operator's selection of source folders: include and exclude regexes on their
// names, special uses left out (Trash, Junk), and regex renames.
type Filter struct {
	include, exclude []*regexp.Regexp
	skipUses         []string
	renames          []rename
}

type rename struct {
	re *regexp.Regexp
	to string
}

// Rename is one regex rename rule (model.FolderRename).
type Rename = model.FolderRename

// SkipSpecialUse leaves out the source folders of these special uses (spec names: trash, junk,
// sent, drafts, archive), advertised by the server or implied by a well-known name.
func (f *Filter) SkipSpecialUse(names []string) error {
	for _, n := range names {
		use, ok := model.SpecialUseNames[strings.ToLower(n)]
		if !ok {
			return fmt.Errorf("skip special use %q: want trash, junk, sent, drafts or archive", n)
		}
		f.skipUses = append(f.skipUses, use)
	}
	return nil
}

// AddRenames compiles rename rules, applied in order; the first that matches a folder wins.
func (f *Filter) AddRenames(rules []Rename) error {
	for _, r := range rules {
		re, err := regexp.Compile(r.Match)
		if err != nil {
			return fmt.Errorf("rename regex %q: %w", r.Match, err)
		}
		if strings.TrimSpace(r.To) == "" {
			return fmt.Errorf("rename %q: empty destination", r.Match)
		}
		f.renames = append(f.renames, rename{re: re, to: r.To})
	}
	return nil
}

// renamed is the destination path ('/' between levels) of the first rule matching path.
func (f *Filter) renamed(path string) (string, bool) {
	if f == nil {
		return "", false
	}
	for _, r := range f.renames {
		if m := r.re.FindStringSubmatchIndex(path); m != nil {
			out := string(r.re.ExpandString(nil, r.to, path, m))
			return strings.Trim(out, "/"), out != ""
		}
	}
	return "", false
}

// skips reports whether a folder's special use is left out.
func (f *Filter) skips(use string) bool {
	return f != nil && use != "" && slices.Contains(f.skipUses, use)
}

// NewFilter compiles include and exclude regexes; an empty include list selects all.
func NewFilter(include, exclude []string) (*Filter, error) {
	f := &Filter{}
	for _, p := range include {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("include regex %q: %w", p, err)
		}
		f.include = append(f.include, re)
	}
	for _, p := range exclude {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("exclude regex %q: %w", p, err)
		}
		f.exclude = append(f.exclude, re)
	}
	return f, nil
}

// Match reports whether a source folder is selected.
func (f *Filter) Match(name string) bool {
	if f == nil {
		return true
	}
	if len(f.include) > 0 && !slices.ContainsFunc(f.include, func(re *regexp.Regexp) bool { return re.MatchString(name) }) {
		return false
	}
	return !slices.ContainsFunc(f.exclude, func(re *regexp.Regexp) bool { return re.MatchString(name) })
}

// Mapping is where one source folder goes.
type Mapping struct {
	Source     Folder
	Dest       string // destination name (UTF-8, destination prefix and separator)
	SpecialUse string // Inbox, Sent, ... or ""
	Exists     bool   // the destination folder is already listed
	By         string // "map" (folder_map_json), "rename" (a regex rename), "special-use", "name", "path"
}

// Mapper turns source folders into destination names.
type Mapper struct {
	SrcNS, DestNS Namespace
	FolderMap     map[string]string // source name → destination name; wins over automap
	Filter        *Filter
	dest          []Folder
	destByName    map[string]Folder
	destSpecial   map[string]string // special use → destination name
}

// NewMapper prepares mapping onto the destination's current folders.
func NewMapper(src, dest Namespace, folderMap map[string]string, filter *Filter, destFolders []Folder) *Mapper {
	m := &Mapper{SrcNS: src, DestNS: dest, FolderMap: folderMap, Filter: filter, dest: destFolders,
		destByName: map[string]Folder{}, destSpecial: map[string]string{}}
	for _, f := range destFolders {
		m.destByName[key(f.Name)] = f
	}
	// Advertised special use first, then well-known names, so a server's own Sent wins over a
	// stray "Sent Items".
	for _, f := range destFolders {
		if f.SpecialUse != "" && !f.NoSelect {
			if _, ok := m.destSpecial[f.SpecialUse]; !ok {
				m.destSpecial[f.SpecialUse] = f.Name
			}
		}
	}
	for _, f := range destFolders {
		if f.NoSelect {
			continue
		}
		if use := UseByName(dest, f.Name); use != "" {
			if _, ok := m.destSpecial[use]; !ok {
				m.destSpecial[use] = f.Name
			}
		}
	}
	return m
}

// key folds INBOX's case; other names are case-sensitive in IMAP.
func key(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// UseByName returns the special use a top-level folder's name implies, or "".
func UseByName(ns Namespace, name string) string {
	levels := ns.Levels(name)
	if len(levels) != 1 {
		return ""
	}
	if strings.EqualFold(levels[0], "INBOX") {
		return Inbox
	}
	for _, use := range specials {
		for _, n := range knownNames[use] {
			if strings.EqualFold(n, levels[0]) {
				return use
			}
		}
	}
	return ""
}

// SpecialUseOf is a source folder's special use: advertised, else implied by its name.
func SpecialUseOf(ns Namespace, f Folder) string {
	if strings.EqualFold(f.Name, "INBOX") {
		return Inbox
	}
	if f.SpecialUse != "" {
		return f.SpecialUse
	}
	return UseByName(ns, f.Name)
}

// Map returns the mappings of the selected, selectable source folders, sorted by source
// name. Several source folders may land in one destination folder (two Sent folders).
func (m *Mapper) Map(source []Folder) []Mapping {
	var out []Mapping
	for _, f := range source {
		if f.NoSelect || !m.Filter.Match(f.Name) || m.Filter.skips(SpecialUseOf(m.SrcNS, f)) {
			continue
		}
		out = append(out, m.One(f))
	}
	slices.SortFunc(out, func(a, b Mapping) int { return strings.Compare(a.Source.Name, b.Source.Name) })
	return out
}

// One maps a single source folder.
func (m *Mapper) One(f Folder) Mapping {
	mp := Mapping{Source: f, SpecialUse: SpecialUseOf(m.SrcNS, f)}
	if dest, ok := m.explicit(f.Name); ok {
		mp.Dest, mp.By = dest, "map"
	} else if dest, ok := m.Filter.renamed(strings.Join(m.SrcNS.Levels(f.Name), "/")); ok {
		mp.Dest, mp.By = m.DestNS.Join(strings.Split(dest, "/")), "rename"
	} else if mp.SpecialUse == Inbox {
		mp.Dest, mp.By = "INBOX", "special-use"
	} else if mp.SpecialUse != "" {
		mp.By = "special-use"
		if d, ok := m.destSpecial[mp.SpecialUse]; ok {
			mp.Dest = d
		} else {
			mp.Dest = m.DestNS.Join([]string{canonical[mp.SpecialUse]})
		}
	} else {
		mp.Dest, mp.By = m.DestNS.Join(m.SrcNS.Levels(f.Name)), "path"
	}
	if mp.SpecialUse == "" {
		// A folder mapped by name onto a destination special folder reports that use.
		if d, ok := m.destByName[key(mp.Dest)]; ok && d.SpecialUse != "" {
			mp.SpecialUse = d.SpecialUse
		} else {
			mp.SpecialUse = UseByName(m.DestNS, mp.Dest)
		}
	}
	_, mp.Exists = m.destByName[key(mp.Dest)]
	return mp
}

// explicit looks the folder up in the folder map, by its full name or its name below the
// namespace prefix. A destination name without the destination prefix gets it, and '/' in a
// destination name is read as the hierarchy separator, so {"Sent Items":"Sent"} and
// {"Old/2019":"Archive/2019"} work whatever the destination's conventions.
func (m *Mapper) explicit(name string) (string, bool) {
	if len(m.FolderMap) == 0 {
		return "", false
	}
	dest, ok := m.FolderMap[name]
	if !ok {
		dest, ok = m.FolderMap[m.SrcNS.Strip(name)]
	}
	if !ok {
		for k, v := range m.FolderMap {
			if strings.EqualFold(k, "INBOX") && strings.EqualFold(name, "INBOX") {
				dest, ok = v, true
				break
			}
		}
	}
	if !ok {
		return "", false
	}
	if _, exists := m.destByName[key(dest)]; exists {
		return dest, true
	}
	var levels []string
	if m.DestNS.Delim != "/" && strings.Contains(dest, "/") {
		levels = strings.Split(dest, "/")
	} else {
		levels = m.DestNS.Levels(dest)
	}
	return m.DestNS.Join(levels), true
}

// Parents returns the hierarchy nodes above a destination name, outermost first, that must
// exist before it on servers that do not create them implicitly.
func (ns Namespace) Parents(name string) []string {
	levels := ns.Levels(name)
	var out []string
	for i := 1; i < len(levels); i++ {
		out = append(out, ns.Join(levels[:i]))
	}
	return out
}
