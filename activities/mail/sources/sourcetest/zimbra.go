package sourcetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ZimbraOptions shape a generated Zimbra export.
type ZimbraOptions struct {
	Batch int  // messages per "Name!N" directory (Zimbra uses 500); 0 = 500
	Tags  bool // carry the keyword as a Zimbra tag instead of dropping it
	// PathWithSubject writes messages' Path as "/Folder/<subject>" (some Zimbra versions)
	// instead of "/Folder/".
	PathWithSubject bool
}

// WriteZimbra writes msgs as Zimbra's "?fmt=tgz" export: folder items, then for each message
// a ".meta" JSON entry followed by its ".eml", folders split into "Name!N" batches.
func WriteZimbra(path string, msgs []Message, o ZimbraOptions) error {
	if o.Batch == 0 {
		o.Batch = 500
	}
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte, mtime time.Time) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644, ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	zpath := func(folder string) string {
		if folder == "INBOX" {
			return "/Inbox"
		}
		return "/" + folder
	}
	// Folder items (metadata only), as Zimbra lists them first.
	ids := map[string]int{}
	for i, f := range Folders(msgs) {
		ids[f] = 257 + i
		meta, _ := json.Marshal(map[string]any{"id": ids[f], "type": 1, "parent_id": 1, "folder_id": 1, "date": 0,
			"size": 0, "unread": 0, "flags": 0, "imap_id": ids[f], "mod_metadata": 1, "change_date": 0, "mod_content": 1,
			"name": f, "Path": zpath(f), "Ver": 10})
		if err := add(strings.TrimPrefix(zpath(f), "/")+".meta", meta, time.Unix(0, 0)); err != nil {
			return err
		}
	}
	// A contact and an appointment: items that are not mail.
	for _, x := range []struct {
		typ  int
		name string
	}{{6, "Contacts/0000000400-Jane.vcf"}, {11, "Calendar/0000000401-Meeting.appt"}} {
		meta, _ := json.Marshal(map[string]any{"id": 400 + x.typ, "type": x.typ, "Path": "/" + strings.Split(x.name, "/")[0], "Ver": 10})
		if err := add(x.name+".meta", meta, time.Unix(0, 0)); err != nil {
			return err
		}
		if err := add(x.name, []byte("BEGIN:VCARD\r\nEND:VCARD\r\n"), time.Unix(0, 0)); err != nil {
			return err
		}
	}
	count := map[string]int{}
	for i, m := range msgs {
		id := 1000 + i
		count[m.Folder]++
		dir := strings.TrimPrefix(zpath(m.Folder), "/")
		if n := count[m.Folder] / o.Batch; n > 0 {
			dir += "!" + strconv.Itoa(n)
		}
		var fl, tags string
		unread := 1
		for _, f := range m.Flags {
			switch f {
			case `\Seen`:
				unread = 0
			case `\Answered`:
				fl += "r"
			case `\Flagged`:
				fl += "f"
			case `\Draft`:
				fl += "d"
			case `\Deleted`:
				fl += "x"
			case Keyword:
				if o.Tags {
					tags = Keyword
				}
			}
		}
		if unread == 1 {
			fl += "u"
		}
		p := zpath(m.Folder) + "/"
		if o.PathWithSubject {
			p += "Subject / with slash " + strconv.Itoa(i)
		}
		meta, _ := json.Marshal(map[string]any{"id": id, "type": 5, "parent_id": -id, "folder_id": ids[m.Folder],
			"date": m.Date.Unix(), "size": len(m.Raw), "unread": unread, "flags": 0, "FlagStr": fl, "TagNames": tags,
			"Path": p, "imap_id": id, "mod_metadata": 1, "change_date": m.Date.Unix(), "mod_content": 1, "Ver": 10})
		name := fmt.Sprintf("%s/%010d-Corpus %d.eml", dir, id, i)
		if err := add(name+".meta", meta, m.Date); err != nil {
			return err
		}
		if err := add(name, m.Raw, m.Date); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}
