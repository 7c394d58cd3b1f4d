package dbcopy

import "github.com/jackc/pgx/v5/pgtype"

// uuidArray and textArray are a batch's arrays of UUIDs and texts as statement parameters.
// Given a []pgtype.UUID or a []string, pgx boxes every element in an interface to encode it
// (an allocation and a reflective look at each of a batch's 10,000 keys); these hand it
// pointers into the slice instead, which box for free and encode through the same codecs.
type (
	uuidArray []pgtype.UUID
	textArray []string
	textElem  string
)

func (a uuidArray) Dimensions() []pgtype.ArrayDimension {
	return []pgtype.ArrayDimension{{Length: int32(len(a)), LowerBound: 1}}
}
func (a uuidArray) Index(i int) any { return &a[i] }
func (a uuidArray) IndexType() any  { return &pgtype.UUID{} }

func (a textArray) Dimensions() []pgtype.ArrayDimension {
	return []pgtype.ArrayDimension{{Length: int32(len(a)), LowerBound: 1}}
}
func (a textArray) Index(i int) any { return (*textElem)(&a[i]) }
func (a textArray) IndexType() any  { return new(textElem) }

// TextValue makes a text element encodable (pgtype.TextValuer).
func (t *textElem) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*t), Valid: true}, nil
}
