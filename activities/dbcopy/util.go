package dbcopy

import (
	"encoding/json"
	"net/url"
)

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with values that always marshal
	}
	return b
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

func userWithPassword(user, pw string) *url.Userinfo { return url.UserPassword(user, pw) }
