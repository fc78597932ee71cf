package ingest_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/oauth"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// oauthServer is an authorization server for the tests on loopback: a
// token endpoint (RFC 6749, refresh-token and client-credentials grants)
// and the introspection endpoint (RFC 7662) Dovecot's oauth2 passdb asks.
type oauthServer struct {
	*httptest.Server
	user string

	mu      sync.Mutex
	active  map[string]bool // access tokens that introspect as active
	refresh string          // the refresh token the token endpoint accepts
	issued  int             // access tokens issued

	down           atomic.Int32 // introspection answers 500 to this many more requests
	introspections atomic.Int32
	tokenRequests  atomic.Int32
}

func newOAuthServer(t *testing.T, user string) *oauthServer {
	s := &oauthServer{user: user, active: map[string]bool{}, refresh: "refresh-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		s.introspections.Add(1)
		if s.down.Add(-1) >= 0 {
			http.Error(w, "token store down", http.StatusInternalServerError)
			return
		}
		s.down.Store(0)
		tok := r.PostFormValue("token")
		s.mu.Lock()
		ok := s.active[tok]
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			fmt.Fprint(w, `{"active": false}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": true, "username": s.user, "scope": "imap"})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		s.tokenRequests.Add(1)
		r.ParseForm()
		id, secret, basic := r.BasicAuth()
		if !basic {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		w.Header().Set("Content-Type", "application/json")
		s.mu.Lock()
		defer s.mu.Unlock()
		fail := func(code string) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error": %q}`, code)
		}
		if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" && (id != "dmarcd" || secret != "client-secret") {
			fail("invalid_client")
			return
		}
		switch r.PostForm.Get("grant_type") {
		case "refresh_token":
			if r.PostForm.Get("refresh_token") != s.refresh {
				fail("invalid_grant")
				return
			}
		case "client_credentials":
		case "urn:ietf:params:oauth:grant-type:jwt-bearer": // a Google service account (RFC 7523)
			var claims struct{ Iss, Sub, Scope string }
			parts := strings.Split(r.PostForm.Get("assertion"), ".")
			if len(parts) != 3 {
				fail("invalid_grant")
				return
			}
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			if json.Unmarshal(b, &claims) != nil || claims.Iss != "dmarcd@project.iam.gserviceaccount.com" ||
				claims.Sub != s.user+"@example.com" || claims.Scope != oauth.DefaultGoogleMailScope {
				fail("invalid_grant")
				return
			}
		default:
			fail("unsupported_grant_type")
			return
		}
		s.issued++
		tok := fmt.Sprintf("access-%d", s.issued)
		s.active[tok] = true
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// grant makes tok an active access token.
func (s *oauthServer) grant(tok string) {
	s.mu.Lock()
	s.active[tok] = true
	s.mu.Unlock()
}

// serviceAccountFile writes a Google service account key (JSON) whose
// token_uri is tokenURL.
func serviceAccountFile(t *testing.T, tokenURL string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "project", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "dmarcd@project.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURL,
	})
	return writeFile(t, "service-account.json", string(b))
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func oauthSource(addr, user string, oc *oauth.Config) *ingest.IMAPSource {
	return ingest.NewIMAPSource(ingest.IMAPConfig{Name: "oauth", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, OAuth: oc, PollInterval: time.Second},
		ingest.New(failingStore{}, ingest.Options{Source: "imap"}), testLogger())
}

// TestIMAPOAuthLogsInWithAGoodToken: Dovecot's oauth2 passdb accepts a
// token the introspection endpoint calls active, by XOAUTH2 and by
// OAUTHBEARER, from a token file (read again at every login), from the
// refresh-token flow (the access token cached between logins) and from the
// client-credentials flow; a refresh token the authorization server refuses
// is a rejected credential, found before any login.
func TestIMAPOAuthLogsInWithAGoodToken(t *testing.T) {
	as := newOAuthServer(t, "dmarc")
	d := testenv.StartDovecot(t, testenv.DovecotOptions{OAuth2IntrospectionURL: as.URL + "/introspect"})
	c := imapTestClient(t, d.Addr, d.User, d.Password)
	as.grant("file-token-1")
	as.grant("file-token-2")
	tokenFile := writeFile(t, "token", "file-token-1\n")
	refresh := func(mech string) *oauth.Config {
		return &oauth.Config{Mechanism: mech, TokenURL: as.URL + "/token", ClientID: "dmarcd",
			ClientSecret: "client-secret", RefreshToken: "refresh-1", Scopes: []string{"imap"}}
	}
	for _, tc := range []struct {
		name string
		oc   *oauth.Config
	}{
		{"xoauth2_token_file", &oauth.Config{Mechanism: oauth.XOAUTH2, TokenFile: tokenFile}},
		{"oauthbearer_token_file", &oauth.Config{Mechanism: oauth.OAUTHBEARER, TokenFile: tokenFile}},
		{"xoauth2_refresh_token", refresh(oauth.XOAUTH2)},
		{"oauthbearer_refresh_token_file", &oauth.Config{Mechanism: oauth.OAUTHBEARER,
			TokenURL: as.URL + "/token", ClientID: "dmarcd", ClientSecretFile: writeFile(t, "secret", "client-secret\n"),
			RefreshTokenFile: writeFile(t, "refresh", "refresh-1\n")}},
		{"oauthbearer_service_account", &oauth.Config{Mechanism: oauth.OAUTHBEARER,
			ServiceAccountFile: serviceAccountFile(t, as.URL+"/token"), Subject: "dmarc@example.com"}},
		{"xoauth2_client_credentials", &oauth.Config{TokenURL: as.URL + "/token", ClientID: "dmarcd",
			ClientSecret: "client-secret", ClientCredentials: true, Scopes: []string{"https://outlook.office365.com/.default"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(tokenFile, []byte("file-token-1\n"), 0o600)
			before := as.tokenRequests.Load()
			src := oauthSource(d.Addr, d.User, tc.oc)
			for round := 1; round <= 2; round++ {
				appendMails(t, c, "INBOX", newsletter)
				n := 0
				if err := src.Once(context.Background(), func(ingest.Outcome) { n++ }); err != nil {
					t.Fatalf("round %d: Once: %v", round, err)
				}
				if n != 1 {
					t.Errorf("round %d: %d mails processed, want 1", round, n)
				}
				// The next login reads the token file again.
				os.WriteFile(tokenFile, []byte(`{"access_token": "file-token-2", "token_type": "Bearer"}`), 0o600)
			}
			if n := count(t, c, "INBOX"); n != 0 {
				t.Errorf("INBOX holds %d mails, want 0", n)
			}
			want := int32(0)
			if tc.oc.TokenFile == "" {
				want = 1 // the second login reuses the first token
			}
			if got := as.tokenRequests.Load() - before; got != want {
				t.Errorf("%d token requests for two logins, want %d", got, want)
			}
		})
	}

	t.Run("refused_refresh_token", func(t *testing.T) {
		oc := refresh(oauth.XOAUTH2)
		oc.RefreshToken = "revoked"
		before := as.introspections.Load()
		err := oauthSource(d.Addr, d.User, oc).Once(context.Background(), nil)
		if !errors.Is(err, ingest.ErrIMAPAuth) || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("Once returned %v, want ErrIMAPAuth saying invalid_grant", err)
		}
		if n := as.introspections.Load() - before; n != 0 {
			t.Errorf("%d introspections: the login was tried with no token", n)
		}
	})
}

// TestIMAPOAuthRejectedTokenStopsRun: a token the introspection endpoint
// calls inactive makes Dovecot answer NO [AUTHENTICATIONFAILED]; Once and
// Run return ErrIMAPAuth, by XOAUTH2 and by OAUTHBEARER. Each mechanism
// has a Dovecot of its own, as Dovecot delays the next login from an
// address after a failed one.
func TestIMAPOAuthRejectedTokenStopsRun(t *testing.T) {
	for _, mech := range []string{oauth.XOAUTH2, oauth.OAUTHBEARER} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			as := newOAuthServer(t, "dmarc")
			d := testenv.StartDovecot(t, testenv.DovecotOptions{OAuth2IntrospectionURL: as.URL + "/introspect"})
			src := oauthSource(d.Addr, d.User, &oauth.Config{Mechanism: mech,
				TokenFile: writeFile(t, "token", "not-a-token")})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err := src.Run(ctx)
			if !errors.Is(err, ingest.ErrIMAPAuth) {
				t.Fatalf("Run returned %v after %v, want ErrIMAPAuth", err, time.Since(start))
			}
			t.Logf("Run gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if !strings.Contains(err.Error(), "AUTHENTICATE "+strings.ToUpper(mech)) || !strings.Contains(err.Error(), d.User) {
				t.Errorf("error %q does not name the mechanism and the user", err)
			}
			if n := as.introspections.Load(); n != 1 {
				t.Errorf("%d introspections, want 1: Run must not retry a rejected token", n)
			}
		})
	}
}

// TestIMAPOAuthRevokedCachedTokenIsRenewed: when the server refuses an
// access token cached from an earlier login (revoked before it expired),
// the failure is temporary: the source drops the token, and the next login
// gets a new one from the refresh token.
func TestIMAPOAuthRevokedCachedTokenIsRenewed(t *testing.T) {
	t.Parallel()
	as := newOAuthServer(t, "dmarc")
	d := testenv.StartDovecot(t, testenv.DovecotOptions{OAuth2IntrospectionURL: as.URL + "/introspect"})
	src := oauthSource(d.Addr, d.User, &oauth.Config{TokenURL: as.URL + "/token", ClientID: "dmarcd",
		ClientSecret: "client-secret", RefreshToken: "refresh-1"})
	if err := src.Once(context.Background(), nil); err != nil {
		t.Fatalf("first Once: %v", err)
	}
	as.mu.Lock()
	delete(as.active, "access-1")
	as.mu.Unlock()
	err := src.Once(context.Background(), nil)
	if err == nil || errors.Is(err, ingest.ErrIMAPAuth) || !strings.Contains(err.Error(), "cached access token") {
		t.Fatalf("Once with the cached token revoked returned %v, want a temporary failure", err)
	}
	if err := src.Once(context.Background(), nil); err != nil {
		t.Fatalf("Once after that: %v, want a login with a new token", err)
	}
	if n := as.tokenRequests.Load(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

// TestIMAPOAuthTokenCheckDownIsRetried: while the introspection endpoint
// answers 500, Dovecot answers NO [UNAVAILABLE]: Run logs a temporary
// failure, backs off and retries, and once the endpoint is healthy again
// ingests the mail. (Dovecot delays each login after a failed one by about
// 4.5 s, so the endpoint fails once only.)
func TestIMAPOAuthTokenCheckDownIsRetried(t *testing.T) {
	for _, mech := range []string{oauth.XOAUTH2, oauth.OAUTHBEARER} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			as := newOAuthServer(t, "dmarc")
			d := testenv.StartDovecot(t, testenv.DovecotOptions{OAuth2IntrospectionURL: as.URL + "/introspect"})
			c := imapTestClient(t, d.Addr, d.User, d.Password)
			appendMails(t, c, "INBOX", newsletter)
			as.grant("good")
			logs := &logRecorder{}
			src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "oauth", Address: d.Addr, TLS: ingest.IMAPTLSNone,
				Username: d.User, OAuth: &oauth.Config{Mechanism: mech, TokenFile: writeFile(t, "token", "good")}},
				ingest.New(failingStore{}, ingest.Options{Source: "imap"}), slog.New(logs))

			as.down.Store(1)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx) }()
			took := waitUntil(t, "mail ingested once the token check is back", 20*time.Second, func() bool {
				select {
				case err := <-done:
					t.Fatalf("Run returned %v while the token check was down, want it to retry", err)
				default:
				}
				return count(t, c, dovecotInvalid) == 1
			})
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
			if n := as.introspections.Load(); n != 2 {
				t.Errorf("%d introspections, want 2 (one failed, one good)", n)
			}
			if !logs.has(slog.LevelWarn, "temporary failure: imap: NO [UNAVAILABLE]") {
				t.Errorf("no warning of a temporary failure (NO [UNAVAILABLE]) logged; log:\n%s", logs)
			}
			t.Logf("mail ingested %v after Run started", took.Round(time.Millisecond))
		})
	}
}

// logRecorder is a slog.Handler keeping every record as text.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// has reports whether a record at level holds s.
func (l *logRecorder) has(level slog.Level, s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.HasPrefix(line, level.String()+" ") && strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
