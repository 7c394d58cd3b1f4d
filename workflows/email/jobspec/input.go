package jobspec

import (
	"bytes"
	"encoding/json"
	"slices"
)

// Redacted replaces every secret's value in RedactedInput.
const Redacted = "[redacted]"

// UnmarshalJSON decodes a spec as any JSON decoder would (unknown fields ignored), and
// remembers what Parse would refuse: a secret (password, token, ...) anywhere, or a field the
// spec does not have. A spec reaching the workflow without the cutover CLI (the temporal CLI,
// an SDK client) is refused with these same words (InputError), before anything runs.
func (s *Spec) UnmarshalJSON(b []byte) error {
	type plain Spec // no UnmarshalJSON: no recursion
	var p plain
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return err
	}
	probs := findSecrets(tree, "")
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		if len(probs) == 0 {
			probs = []string{"JSON: " + err.Error()}
		}
		p = plain{}
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
	}
	*s = Spec(p)
	s.input = nil
	// A pasted secret in a reference field is no input problem (Validate refuses it, with the
	// CLI's words) but its run must still be purged: keep the redacted input for it.
	if clean := redactedOnly(tree); len(probs) > 0 || !clean {
		s.input = &inputCheck{problems: probs, secretsRedacted: clean, redacted: redact(tree)}
	}
	return nil
}

// inputCheck is what UnmarshalJSON found wrong with the JSON a spec came from. It never holds
// a secret: redacted is the input with every secret's value replaced by Redacted.
type inputCheck struct {
	problems        []string
	secretsRedacted bool // every secret's value is already Redacted (or there is none)
	redacted        []byte
}

// InputError is the refusal of a spec decoded from JSON that Parse would refuse: a secret, an
// unknown field. nil when the spec came from Parse, from Go, or from clean JSON.
func (s Spec) InputError() error {
	if s.input == nil || len(s.input.problems) == 0 {
		return nil
	}
	return &ProblemsError{Problems: slices.Clone(s.input.problems)}
}

// RedactedInput returns the JSON the spec was decoded from with every secret's value replaced
// by Redacted, and whether the input held a secret that was not redacted yet (nil, false when
// the input had neither a problem nor a secret).
func (s Spec) RedactedInput() (input []byte, hadSecret bool) {
	if s.input == nil {
		return nil, false
	}
	return s.input.redacted, !s.input.secretsRedacted
}

// redact copies a decoded JSON document with every secret key's value replaced.
func redact(tree any) []byte {
	b, err := json.Marshal(redactTree(tree))
	if err != nil {
		return nil
	}
	return b
}

func redactTree(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if secretKey.MatchString(k) || pastedSecret(k, x) {
				out[k] = Redacted
				continue
			}
			out[k] = redactTree(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = redactTree(x)
		}
		return out
	}
	return v
}

// redactedOnly reports whether every secret key's value is Redacted.
func redactedOnly(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if secretKey.MatchString(k) {
				if x != Redacted {
					return false
				}
				continue
			}
			if pastedSecret(k, x) {
				return false
			}
			if !redactedOnly(x) {
				return false
			}
		}
	case []any:
		for _, x := range t {
			if !redactedOnly(x) {
				return false
			}
		}
	}
	return true
}
