package model

import "github.com/google/uuid"

// IsCredentialsRef reports whether s has the form of a vault reference: the UUID
// `cutover vault put` prints. Anything else in a credentials_ref may be the secret itself,
// pasted there by mistake.
func IsCredentialsRef(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}

// NotACredentialsRef ends the message refusing a value that is no vault reference. It never
// repeats the value: an operator may have pasted the secret itself.
const NotACredentialsRef = "is not a vault reference (the id `cutover vault put` prints); the value is not shown, " +
	"in case it is a secret: store secrets with `cutover vault put`"
