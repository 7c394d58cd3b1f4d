package report

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var (
	totalRow  = regexp.MustCompile(`(?s)<tr class="total" data-row="total">(.*?)</tr>`)
	totalCell = regexp.MustCompile(`<td data-field="([a-z_]+)"[^>]*>([^<]*)</td>`)
)

// ReadTotals reads the totals row back from a report this package wrote: data-field → count
// (source, dest or loaded, quarantined, missing, extra). Tools and tests use it to hold a report
// against the database.
func ReadTotals(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	row := totalRow.FindSubmatch(b)
	if row == nil {
		return nil, fmt.Errorf("%s: no totals row", path)
	}
	out := map[string]int64{}
	for _, c := range totalCell.FindAllSubmatch(row[1], -1) {
		text := strings.ReplaceAll(strings.Fields(string(c[2]) + " x")[0], ",", "")
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: total %s = %q", path, c[1], c[2])
		}
		out[string(c[1])] = n
	}
	return out, nil
}
