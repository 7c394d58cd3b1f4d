package jobspec

import (
	"net"
	"strings"

	"github.com/cutover/cutover/internal/model"
)

// WithDefaults returns the spec with every optional field filled; the receiver is not modified.
func (s Spec) WithDefaults() Spec {
	s.Domain = strings.ToLower(strings.TrimSpace(s.Domain))
	s.Source = s.Source.withDefaults()
	s.Destination = s.Destination.withDefaults()
	mbs := make([]Mailbox, len(s.Mailboxes))
	for i, m := range s.Mailboxes {
		m.Email = strings.ToLower(strings.TrimSpace(m.Email))
		if m.SourceType == "" {
			m.SourceType = defaultSourceType
		}
		mbs[i] = m
	}
	if s.Mailboxes != nil {
		s.Mailboxes = mbs
	}
	if s.DNS != nil {
		d := s.DNS.withDefaults(s)
		s.DNS = &d
	}
	sc := &s.Schedule
	if sc.PresyncInterval == 0 && sc.PresyncAt == "" {
		sc.PresyncInterval = Duration(DefaultPresyncInterval)
	}
	if sc.Timezone == "" {
		sc.Timezone = "UTC"
	}
	if sc.PresyncMode == "" {
		sc.PresyncMode = model.ModeMirror
	}
	if sc.FinalSyncDelay == 0 {
		sc.FinalSyncDelay = Duration(DefaultFinalSyncDelay)
	}
	if sc.FinalSyncRounds == 0 {
		sc.FinalSyncRounds = DefaultFinalSyncRounds
	}
	if sc.Soak == 0 {
		sc.Soak = Duration(DefaultSoak)
	}
	if sc.PostSyncInterval == 0 {
		sc.PostSyncInterval = Duration(DefaultPostSyncInterval)
	}
	if s.Concurrency.Mailboxes == 0 {
		s.Concurrency.Mailboxes = DefaultMailboxes
	}
	if s.Retry.MaxAttempts == 0 {
		s.Retry.MaxAttempts = DefaultRetryMaxAttempts
	}
	if s.Retry.MaxInterval == 0 {
		s.Retry.MaxInterval = Duration(DefaultRetryMaxInterval)
	}
	s.Gate = s.Gate.WithDefaults()
	return s
}

func (e Endpoint) withDefaults() Endpoint {
	if e.Security == "" {
		e.Security = defaultSecurity
	}
	if e.Auth == "" {
		e.Auth = defaultAuth
	}
	if e.Host != "" {
		e.Host = withPort(e.Host, e.Security)
	}
	return e
}

// withPort appends the default port of the security mode when host has none.
func withPort(host, security string) string {
	host = strings.TrimSpace(host)
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := defaultTLSPort
	if security != "tls" {
		port = defaultPlainPort
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}
