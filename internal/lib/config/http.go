package config

import (
	"os"
	"strings"
)

// HTTP is the daemon's listener: /metrics, /healthz, /readyz and the S3
// webhooks /hooks/s3/NAME.
type HTTP struct {
	Listen string `yaml:"listen"` // host:port; loopback by default
	// MaxConnections bounds the connections open at once; more wait to be
	// accepted until one closes.
	MaxConnections int `yaml:"max_connections"`
	// WebhookSecret is the shared secret an S3 server must send with each
	// event notification (Authorization: Bearer SECRET, or ?token=SECRET
	// in the URL for servers that cannot add a header). Empty: the
	// webhooks are off (404). Better from DMARCD_HTTP_WEBHOOK_SECRET or
	// webhook_secret_file.
	WebhookSecret     string `yaml:"webhook_secret"`
	WebhookSecretFile string `yaml:"webhook_secret_file"` // read at start and at each reload
}

// MinWebhookSecret is the shortest http.webhook_secret accepted (16
// characters; `openssl rand -hex 32` makes a good one).
const MinWebhookSecret = 16

// readSecret reads webhook_secret_file unless the secret came from the file
// or the environment itself (which then wins).
func (h *HTTP) readSecret(ps *Problems) {
	if h.WebhookSecretFile == "" || h.WebhookSecret != "" {
		return
	}
	b, err := os.ReadFile(h.WebhookSecretFile)
	if err != nil {
		ps.add("http.webhook_secret_file", "%v", err)
		return
	}
	h.WebhookSecret = strings.TrimRight(string(b), "\r\n")
	if h.WebhookSecret == "" {
		ps.add("http.webhook_secret_file", "%s is empty", h.WebhookSecretFile)
	}
}

// validate checks the keys of http other than listen. The secret is
// never quoted in a message.
func (h HTTP) validate(ps *Problems) {
	if h.MaxConnections < 1 || h.MaxConnections > 65536 {
		ps.add("http.max_connections", "%d is not between 1 and 65536", h.MaxConnections)
	}
	s := h.WebhookSecret
	if s == "" {
		return
	}
	if len(s) < MinWebhookSecret {
		ps.add("http.webhook_secret", "too short (%d characters): use at least %d, e.g. the output of `openssl rand -hex 32`",
			len(s), MinWebhookSecret)
	}
	for _, r := range s {
		// RFC 3986 section 2.3 unreserved characters: the secret goes
		// unescaped into a URL query and an Authorization header.
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
			ps.add("http.webhook_secret", "may hold only letters, digits and - . _ ~ (it goes into a URL), e.g. the output of `openssl rand -hex 32`")
			break
		}
	}
}
