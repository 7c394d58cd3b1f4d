package cli

// CommandPaths lists every registered command ("email approve", "vault put", …).
func CommandPaths() []string {
	out := make([]string, len(commands))
	for i, c := range commands {
		out[i] = c.path
	}
	return out
}
