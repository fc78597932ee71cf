// Package oauth holds the OAuth 2.0 settings of an IMAP source and gets
// its access tokens: from a file that other tooling keeps fresh, or by the
// refresh-token (RFC 6749 §6), client-credentials (RFC 6749 §4.4) or Google
// service-account flows; and the SASL clients that present them (XOAUTH2,
// OAUTHBEARER of RFC 7628). It imports nothing of the pipeline: the
// configuration (internal/lib/config) and the IMAP source (ingest) both use
// it.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/google"
)

// SASL mechanisms of Config.Mechanism.
const (
	XOAUTH2     = "xoauth2"     // Google's and Microsoft's XOAUTH2
	OAUTHBEARER = "oauthbearer" // RFC 7628
)

// DefaultGoogleMailScope is the scope asked for a Google service account
// when Config.Scopes is empty: full IMAP access to the mailbox.
const DefaultGoogleMailScope = "https://mail.google.com/"

// Config makes an IMAP source log in with an OAuth 2.0 access token
// (SASL XOAUTH2 or OAUTHBEARER, RFC 7628) instead of a password. Exactly one
// way of getting tokens is configured:
//
//   - TokenFile: a file that external tooling keeps fresh, holding the
//     access token (or an oauth2 token as JSON with "access_token"); it is
//     read again at every login.
//   - RefreshToken or RefreshTokenFile, with TokenURL, ClientID and
//     ClientSecret (or ClientSecretFile; public clients may have none): the
//     refresh-token flow of Gmail and Microsoft 365 (RFC 6749 §6).
//   - ClientCredentials, with TokenURL, ClientID and ClientSecret: the
//     client-credentials grant (RFC 6749 §4.4), Microsoft 365 app-only
//     access to a mailbox (scope https://outlook.office365.com/.default).
//   - ServiceAccountFile (Google's JSON key) and Subject: a Google service
//     account with domain-wide delegation acting as Subject, the mailbox's
//     user; Scopes default to https://mail.google.com/.
//
// Access tokens are cached until shortly before they expire.
type Config struct {
	Mechanism string `yaml:"mechanism"` // XOAUTH2 (default) or OAUTHBEARER

	TokenFile string `yaml:"token_file"`

	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	RefreshToken     string   `yaml:"refresh_token"`
	RefreshTokenFile string   `yaml:"refresh_token_file"`
	Scopes           []string `yaml:"scopes"`

	ClientCredentials bool `yaml:"client_credentials"`

	ServiceAccountFile string `yaml:"service_account_file"`
	Subject            string `yaml:"subject"`
}

// Validate reports what is wrong in the configuration, every problem in
// one error, naming the yaml keys; nil when it is usable. It reads no file.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch strings.ToLower(c.Mechanism) {
	case "", XOAUTH2, OAUTHBEARER:
	default:
		bad("mechanism %q: want %q or %q", c.Mechanism, XOAUTH2, OAUTHBEARER)
	}
	var flows []string
	if c.TokenFile != "" {
		flows = append(flows, "token_file")
	}
	if c.RefreshToken != "" || c.RefreshTokenFile != "" {
		flows = append(flows, "refresh_token")
		if c.RefreshToken != "" && c.RefreshTokenFile != "" {
			bad("refresh_token and refresh_token_file are both set: set one")
		}
	}
	if c.ClientCredentials {
		flows = append(flows, "client_credentials")
	}
	if c.ServiceAccountFile != "" {
		flows = append(flows, "service_account_file")
		if c.Subject == "" {
			bad("service_account_file needs subject: the mailbox's user the service account acts as")
		}
	}
	switch len(flows) {
	case 0:
		bad("no token source: set one of token_file, refresh_token (or refresh_token_file), client_credentials or service_account_file")
	case 1:
	default:
		bad("%s are all set: set one way to get tokens", strings.Join(flows, ", "))
	}
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		bad("client_secret and client_secret_file are both set: set one")
	}
	if len(flows) == 1 && (flows[0] == "refresh_token" || flows[0] == "client_credentials") {
		if c.TokenURL == "" {
			bad("%s needs token_url", flows[0])
		}
		if c.ClientID == "" {
			bad("%s needs client_id", flows[0])
		}
		if flows[0] == "client_credentials" && c.ClientSecret == "" && c.ClientSecretFile == "" {
			bad("client_credentials needs client_secret or client_secret_file")
		}
	}
	return errors.Join(errs...)
}

// SASLMechanism returns the SASL mechanism, lower case: XOAUTH2 when unset.
func (c *Config) SASLMechanism() string {
	if m := strings.ToLower(c.Mechanism); m != "" {
		return m
	}
	return XOAUTH2
}

// ErrRejected marks a token request the authorization server refused for
// good (invalid_grant, invalid_client...): like a rejected password.
var ErrRejected = errors.New("oauth: token request rejected")

// ErrConfig marks a setting that cannot work (Validate fails, a secret
// file is unreadable or empty, a service-account key does not parse):
// retrying cannot help until the configuration changes.
var ErrConfig = errors.New("oauth: bad configuration")

// configError is an ErrConfig with its own message.
type configError struct{ msg string }

func (e *configError) Error() string        { return e.msg }
func (e *configError) Is(target error) bool { return target == ErrConfig }

func configErr(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// Tokens gets access tokens for a Config. It is safe for concurrent use.
type Tokens struct {
	cfg     Config
	mu      sync.Mutex
	ts      oauth2.TokenSource // nil for a token file, or until first used
	refresh string             // latest refresh token (servers may rotate it)
	cached  bool               // the last token came from ts's cache
	last    string             // the last access token returned
}

// NewTokens returns the token getter of cfg; nothing is read or asked
// before the first Token.
func NewTokens(cfg Config) *Tokens { return &Tokens{cfg: cfg} }

// Token returns an access token: read from the token file, or from the
// token source, which refreshes it when it is about to expire. fresh is
// false when the token was cached from an earlier login: a server that
// rejects it may accept a new one. ctx bounds a token request (the oauth2
// library's own context has no deadline).
func (o *Tokens) Token(ctx context.Context) (tok string, fresh bool, err error) {
	if err := o.cfg.Validate(); err != nil {
		return "", false, configErr("oauth: %v", err)
	}
	if o.cfg.TokenFile != "" {
		tok, err := readTokenFile(o.cfg.TokenFile)
		return tok, true, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ts == nil {
		if o.ts, err = o.source(); err != nil {
			return "", false, err
		}
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	ts := o.ts
	go func() {
		tok, err := ts.Token()
		ch <- result{tok, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	if r.err != nil {
		return "", false, tokenError(r.err)
	}
	if r.tok.AccessToken == "" {
		return "", false, errors.New("oauth: the token endpoint returned no access_token")
	}
	if r.tok.RefreshToken != "" {
		o.refresh = r.tok.RefreshToken
	}
	fresh = r.tok.AccessToken != o.last
	o.last = r.tok.AccessToken
	return r.tok.AccessToken, fresh, nil
}

// Forget drops the cached access token: the next token call asks the
// authorization server for a new one.
func (o *Tokens) Forget() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ts = nil
	o.last = ""
}

// tokenError tells a refused token request (the grant or client is bad:
// stop) from a temporary failure (endpoint down, 5xx: retry).
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		switch re.ErrorCode {
		case "invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope",
			"unsupported_grant_type", "invalid_request", "access_denied":
			return fmt.Errorf("%w: %v", ErrRejected, err)
		}
		if re.ErrorCode == "" && (re.Response.StatusCode == 400 || re.Response.StatusCode == 401) {
			return fmt.Errorf("%w: %v", ErrRejected, err)
		}
	}
	return fmt.Errorf("oauth: getting an access token: %w", err)
}

// source builds the token source of the refresh-token, client-credentials
// or service-account flow. The requests it makes are not bound to a
// connection's context: a token outlives it.
func (o *Tokens) source() (oauth2.TokenSource, error) {
	c := &o.cfg
	ctx := context.Background()
	secret := c.ClientSecret
	if c.ClientSecretFile != "" {
		s, err := readSecretFile(c.ClientSecretFile, "client_secret_file")
		if err != nil {
			return nil, err
		}
		secret = s
	}
	switch {
	case c.ServiceAccountFile != "":
		b, err := os.ReadFile(c.ServiceAccountFile)
		if err != nil {
			return nil, configErr("oauth service_account_file: %v", err)
		}
		scopes := c.Scopes
		if len(scopes) == 0 {
			scopes = []string{DefaultGoogleMailScope}
		}
		jc, err := google.JWTConfigFromJSON(b, scopes...)
		if err != nil {
			return nil, configErr("oauth service_account_file %s: %v", c.ServiceAccountFile, err)
		}
		jc.Subject = c.Subject
		if c.TokenURL != "" {
			jc.TokenURL = c.TokenURL
		}
		return jc.TokenSource(ctx), nil
	case c.ClientCredentials:
		cc := &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: secret, TokenURL: c.TokenURL, Scopes: c.Scopes}
		return cc.TokenSource(ctx), nil
	default:
		refresh := o.refresh
		if refresh == "" {
			refresh = c.RefreshToken
		}
		if refresh == "" && c.RefreshTokenFile != "" {
			s, err := readSecretFile(c.RefreshTokenFile, "refresh_token_file")
			if err != nil {
				return nil, err
			}
			refresh = s
		}
		oc := &oauth2.Config{ClientID: c.ClientID, ClientSecret: secret,
			Endpoint: oauth2.Endpoint{TokenURL: c.TokenURL}, Scopes: c.Scopes}
		return oc.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh, Expiry: time.Unix(1, 0)}), nil
	}
}

func readSecretFile(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", configErr("oauth %s: %v", key, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", configErr("oauth %s %s is empty", key, path)
	}
	return s, nil
}

// readTokenFile reads an access token: the whole file trimmed, or the
// "access_token" of a JSON object (an oauth2.Token as tools write it). An
// unreadable or empty file is a temporary failure: the tooling that writes
// it may be about to.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("oauth token_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, "{") {
		var t struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal([]byte(s), &t); err != nil {
			return "", fmt.Errorf("oauth token_file %s: %v", path, err)
		}
		s = t.AccessToken
	}
	if s == "" {
		return "", fmt.Errorf("oauth token_file %s holds no token", path)
	}
	return s, nil
}

// xoauth2Client is the SASL XOAUTH2 client of Google and Microsoft: the
// initial response is "user=" user ^A "auth=Bearer " token ^A ^A. On
// failure the server sends a JSON error as a challenge, to which the client
// answers; the server then ends with NO. Google documents an empty answer,
// but imapclient sends an empty response as "=", which Dovecot refuses as
// bad base64 (BAD, with no response code); ^A, as OAUTHBEARER answers (RFC
// 7628 §3.2.3), is taken by both.
type xoauth2Client struct {
	user, token string
	challenge   []byte // the server's error, if any
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	c.challenge = challenge
	return []byte{0x01}, nil
}

// oauthBearerClient wraps go-sasl's OAUTHBEARER client: on an error
// challenge it answers with the ^A that RFC 7628 §3.2.3 asks for, so that
// the server ends the exchange with its NO (and its response code), instead
// of leaving the command unanswered.
type oauthBearerClient struct {
	sasl.Client
	challenge []byte
}

func (c *oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	c.challenge = challenge
	return []byte{0x01}, nil
}

// SASLClient returns the SASL client logging user in with token to the
// server at address (host:port), and a function returning the server's
// error challenge (JSON) if it sent one.
func (c *Config) SASLClient(user, token, address string) (sasl.Client, func() []byte) {
	if c.SASLMechanism() == OAUTHBEARER {
		host, port, _ := net.SplitHostPort(address)
		p, _ := strconv.Atoi(port)
		cl := &oauthBearerClient{Client: sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: user, Token: token, Host: host, Port: p})}
		return cl, func() []byte { return cl.challenge }
	}
	cl := &xoauth2Client{user: user, token: token}
	return cl, func() []byte { return cl.challenge }
}
