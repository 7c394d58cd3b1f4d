package dbcopy

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// snapshotValue makes a source value JSON-safe for migration_errors.source_data: long values
// are clipped, invalid UTF-8 and NUL bytes (which jsonb rejects) are escaped, blobs are base64.
func snapshotValue(v any) any {
	const maxLen = 2048
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) || strings.IndexByte(x, 0) >= 0 {
			if len(x) > maxLen {
				x = x[:maxLen]
			}
			return map[string]string{"escaped": strconv.QuoteToASCII(x)}
		}
		if len(x) > maxLen {
			return x[:maxLen] + fmt.Sprintf("…(%d bytes)", len(x))
		}
		return x
	case []byte:
		if len(x) > maxLen {
			x = x[:maxLen]
		}
		return map[string]string{"base64": base64.StdEncoding.EncodeToString(x)}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	default:
		return x
	}
}

// canon renders a value of target type typ canonically for the content hash, the same way
// whether it came from the transformation (source side) or from pgx decoding the target.
func canon(typ string, v any) string {
	if v == nil {
		return "\x00"
	}
	switch typ {
	case "smallint", "integer", "bigint":
		switch x := v.(type) {
		case int64:
			return strconv.FormatInt(x, 10)
		case int32:
			return strconv.FormatInt(int64(x), 10)
		case int16:
			return strconv.FormatInt(int64(x), 10)
		}
	case "real":
		switch x := v.(type) {
		case float64:
			return strconv.FormatFloat(float64(float32(x)), 'g', -1, 32)
		case float32:
			return strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
	case "double precision":
		if x, ok := v.(float64); ok {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	case "numeric":
		var s string
		switch x := v.(type) {
		case pgtype.Numeric:
			dv, _ := x.Value()
			s, _ = dv.(string)
		case string:
			s = x
		}
		if r, ok := new(big.Rat).SetString(s); ok {
			return r.RatString()
		}
		return s
	case "boolean":
		if x, ok := v.(bool); ok {
			return strconv.FormatBool(x)
		}
	case "json", "jsonb":
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			s = string(x)
		}
		var d any
		if err := json.Unmarshal([]byte(s), &d); err == nil {
			b, _ := json.Marshal(d)
			return string(b)
		}
		return s
	case "timestamptz", "timestamp":
		if x, ok := v.(time.Time); ok {
			return x.UTC().Format(time.RFC3339Nano)
		}
	case "date":
		if x, ok := v.(time.Time); ok {
			return x.Format("2006-01-02")
		}
	case "uuid":
		switch x := v.(type) {
		case [16]byte:
			return uuid.UUID(x).String()
		case uuid.UUID:
			return x.String()
		case string:
			return strings.ToLower(x)
		}
	case "bytea":
		if x, ok := v.([]byte); ok {
			return hex.EncodeToString(x)
		}
	}
	if b, ok := v.([]byte); ok {
		return string(bytes.Clone(b))
	}
	return fmt.Sprint(v)
}
