package source

import "strings"

// quoteSQLite quotes an identifier for SQLite with backticks. Not with double quotes: SQLite
// reads a double-quoted name that matches no column as a string literal (its "DQS"
// compatibility rule, on in this build), so a column missing from the source — dropped or
// renamed by the legacy application in the middle of a migration, or hostile — would be read
// as its own name in every row, and a missing key would order and page by a constant. A
// backticked name is an identifier or an error.
func quoteSQLite(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
