package model

// FolderRename is one regex rename rule of folder paths: a source folder whose path matches
// Match goes to the destination path To, in which $1, ${name}... are Match's groups. Paths use
// '/' between levels whatever a server's separator, and name INBOX "INBOX".
type FolderRename struct {
	Match string `json:"match" yaml:"match"`
	To    string `json:"to" yaml:"to"`
}

// SpecialUseNames are the special uses (RFC 6154) a job may leave out, by the names a spec
// gives them.
var SpecialUseNames = map[string]string{"trash": `\Trash`, "junk": `\Junk`, "sent": `\Sent`, "drafts": `\Drafts`,
	"archive": `\Archive`}
