package enrich

// Authentication of report mails on arrival (docs/readiness.md, "Trusting
// the reports"). Anyone can mail a report to a published rua address; the
// DKIM signatures of the mail that carried it, checked now (selectors rotate
// and old keys are withdrawn, so later is too late), and the DMARC policy of
// its From domain say whether it can be trusted.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"

	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/extract"
)

// Results of the authentication of a report's mail, stored in the
// auth_result column of the report tables. The words are a contract.
const (
	// AuthPass: a DKIM signature of the mail verifies and its d= is aligned
	// (relaxed) with the From domain.
	AuthPass = "pass"
	// AuthFail: the mail is not what it claims: it has signatures and none
	// verifies for good (bad body hash or signature, key revoked or
	// absent), or its From domain publishes p=quarantine or p=reject and no
	// aligned signature passes.
	AuthFail = "fail"
	// AuthUnverified: nothing can be said: a bare file (no mail), a mail
	// without signature from a domain without enforcing policy, a signature
	// not aligned with From, or a DNS failure. DNS trouble never makes a
	// report fail.
	AuthUnverified = "unverified"
)

// Auth is the verdict on the mail that carried a report.
type Auth struct {
	Result string // AuthPass, AuthFail or AuthUnverified
	// Detail says why, shortly: "dkim=pass d=google.com s=20230601".
	Detail string
	// From is the mail's From domain, "" when there is none.
	From string
}

// DefaultAuthTimeout bounds one DNS lookup of a verification.
const DefaultAuthTimeout = 2 * time.Second

// LookupTXT returns the TXT strings of name: the DNS behind a Verifier. A
// name that does not exist is an error that is or wraps a *net.DNSError with
// IsNotFound (as net.Resolver.LookupTXT and dnscheck.Resolver.LookupTXT
// return); a name without TXT records is no records and no error; any other
// error is taken for a temporary failure.
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// Limits of one verification.
const (
	maxSignatures  = 5       // DKIM signatures verified per mail; more are ignored
	maxHeaderBytes = 1 << 20 // a header block larger than this is not verified
	maxDetail      = 400     // bytes of Auth.Detail
	// A signature made longer ago than staleAge whose key cannot be found
	// or does not match says nothing: its selector may have been rotated
	// since (a backlog ingested late). Only a body that does not match its
	// signed hash still fails it.
	staleAge = 72 * time.Hour
)

// Cache lifetimes of TXT answers. Positive answers are kept an hour (a
// verification happens on arrival, so a key withdrawn since is still known),
// absent names a few minutes, and temporary failures briefly so that a
// backlog processed during a DNS outage does not wait for each of its mails.
const (
	cacheTTL        = time.Hour
	cacheMissTTL    = 10 * time.Minute
	cacheTempTTL    = 30 * time.Second
	cacheMaxEntries = 10000
	// After breakerTimeouts lookups in a row timed out, lookups fail at once
	// for breakerPause: the resolver is unresponsive.
	breakerTimeouts = 3
	breakerPause    = 30 * time.Second
)

// Verifier authenticates report mails. It is safe for concurrent use.
type Verifier struct {
	lookup  LookupTXT
	timeout time.Duration
	now     func() time.Time

	mu        sync.Mutex
	cache     map[string]txtEntry
	timeouts  int       // consecutive lookups that timed out
	lastTimer time.Time // when the last of them did
}

type txtEntry struct {
	txts    []string
	err     error
	expires time.Time
}

// NewVerifier returns a Verifier that looks names up with lookup, each lookup
// bounded by timeout (DefaultAuthTimeout when 0), answers cached.
func NewVerifier(lookup LookupTXT, timeout time.Duration) *Verifier {
	if timeout <= 0 {
		timeout = DefaultAuthTimeout
	}
	return &Verifier{lookup: lookup, timeout: timeout, now: time.Now, cache: map[string]txtEntry{}}
}

// Verify reads a whole message (RFC 5322) from r and authenticates it.
func (v *Verifier) Verify(ctx context.Context, r io.Reader) Auth {
	a := v.verify(ctx, r)
	if len(a.Detail) > maxDetail {
		a.Detail = a.Detail[:maxDetail]
	}
	return a
}

func (v *Verifier) verify(ctx context.Context, r io.Reader) Auth {
	br := bufio.NewReaderSize(r, 64<<10)
	hdr, err := readHeaderBlock(br)
	if err != nil {
		return Auth{Result: AuthUnverified, Detail: "not verified: " + err.Error()}
	}
	from, date := fromAndDate(hdr)
	sigs := signatures(hdr)
	ctx, cancel := context.WithTimeout(ctx, 3*v.timeout)
	defer cancel()
	lookup := v.lookupFunc(ctx)

	var parts []string
	aligned, passes, permanent, temporary := -1, 0, 0, 0
	if len(sigs) > 0 {
		verifs, err := dkim.VerifyWithOptions(io.MultiReader(bytes.NewReader(hdr), br),
			&dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: maxSignatures})
		if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
			// Reading the message failed (too large, cut short): say nothing.
			return Auth{Result: AuthUnverified, Detail: "dkim not verified: " + strings.TrimPrefix(err.Error(), "dkim: "), From: from}
		}
		for i, vf := range verifs {
			s := sig{d: vf.Domain}
			if i < len(sigs) {
				s = sigs[i]
			}
			res, reason := dkimResult(vf.Err)
			signed := vf.Time
			if signed.IsZero() {
				signed = date
			}
			if res != authres.ResultPass && res != authres.ResultTempError && cannotTell(vf.Err, signed, v.now()) {
				res = authres.ResultNeutral
				if age := v.now().Sub(signed); !signed.IsZero() && age > staleAge {
					reason += fmt.Sprintf("; signed %s ago, its key may have been rotated since", age.Round(time.Hour))
				}
			}
			switch res {
			case authres.ResultPass:
				passes++
				if aligned < 0 && from != "" && align.Aligned(vf.Domain, from, align.Relaxed) {
					aligned = len(parts)
				}
			case authres.ResultTempError, authres.ResultNeutral:
				temporary++ // it might have passed
			default:
				permanent++
			}
			parts = append(parts, formatSig(res, s, reason))
		}
	}
	if aligned >= 0 {
		// The aligned pass first: it is the reason.
		parts[0], parts[aligned] = parts[aligned], parts[0]
		return Auth{Result: AuthPass, Detail: strings.Join(parts, "; "), From: from}
	}
	if from == "" {
		parts = append(parts, "no From domain")
		return Auth{Result: AuthUnverified, Detail: strings.Join(nonEmpty(parts, "no DKIM signature"), "; ")}
	}
	if len(sigs) == 0 {
		parts = append(parts, "no DKIM signature")
	}
	pol, polNote := v.policy(from, lookup)
	parts = append(parts, "from="+from+" "+polNote)
	detail := strings.Join(parts, "; ")
	switch {
	case temporary > 0:
		// A signature that could not be checked might have passed.
	case pol == dmarc.PolicyQuarantine || pol == dmarc.PolicyReject:
		return Auth{Result: AuthFail, Detail: detail, From: from}
	case permanent > 0 && passes == 0:
		// Signatures, all failing for good: forged or altered.
		return Auth{Result: AuthFail, Detail: detail, From: from}
	}
	return Auth{Result: AuthUnverified, Detail: detail, From: from}
}

// policy returns the DMARC policy that applies to mail from domain (RFC 7489
// §6.6.3: the domain's record, else its Organizational Domain's, whose sp
// applies to subdomains) and a note for the detail.
func (v *Verifier) policy(domain string, lookup func(string) ([]string, error)) (dmarc.Policy, string) {
	opts := &dmarc.LookupOptions{LookupTXT: lookup}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	at := domain
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := align.OrgDomain(domain); org != "" && org != domain {
			at = org
			rec, err = dmarc.LookupWithOptions(org, opts)
			if err == nil && rec.SubdomainPolicy != "" {
				rec.Policy = rec.SubdomainPolicy
			}
		}
	}
	switch {
	case err == nil:
		note := "dmarc p=" + string(rec.Policy)
		if at != domain {
			note += " (of " + at + ")"
		}
		return rec.Policy, note
	case errors.Is(err, dmarc.ErrNoPolicy):
		return "", "has no DMARC policy"
	case dmarc.IsTempFail(err):
		return "", "dmarc=temperror"
	}
	return "", "dmarc record unusable: " + strings.TrimPrefix(err.Error(), "dmarc: ")
}

// cannotTell reports whether a signature's failure says nothing about the
// mail now: an expired signature, or one signed more than staleAge ago
// whose key is missing, revoked or does not match.
func cannotTell(err error, signed, now time.Time) bool {
	msg := err.Error()
	if strings.Contains(msg, "signature has expired") {
		return true
	}
	if strings.Contains(msg, "body hash did not verify") || signed.IsZero() {
		return false
	}
	return now.Sub(signed) > staleAge
}

// dkimResult names the outcome of one signature (RFC 8601 §2.7.1 words)
// and its reason.
func dkimResult(err error) (authres.ResultValue, string) {
	switch {
	case err == nil:
		return authres.ResultPass, ""
	case dkim.IsTempFail(err):
		return authres.ResultTempError, strings.TrimPrefix(err.Error(), "dkim: ")
	case dkim.IsPermFail(err):
		return authres.ResultPermError, strings.TrimPrefix(err.Error(), "dkim: ")
	}
	return authres.ResultFail, strings.TrimPrefix(err.Error(), "dkim: ")
}

func formatSig(res authres.ResultValue, s sig, reason string) string {
	out := "dkim=" + string(res) + " d=" + s.d
	if s.s != "" {
		out += " s=" + s.s
	}
	if reason != "" {
		out += " (" + reason + ")"
	}
	return out
}

func nonEmpty(l []string, alt string) []string {
	if len(l) == 0 {
		return []string{alt}
	}
	return l
}

// sig is what the detail shows of a DKIM-Signature field.
type sig struct{ d, s string }

// signatures returns d= and s= of the first maxSignatures DKIM-Signature
// fields, in header order (dkim.Verify's order).
func signatures(hdr []byte) []sig {
	var out []sig
	for _, f := range headerFields(hdr) {
		name, value, _ := strings.Cut(f, ":")
		if !strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			continue
		}
		var s sig
		for _, tag := range strings.Split(value, ";") {
			k, v, _ := strings.Cut(tag, "=")
			v = strings.Join(strings.Fields(v), "")
			switch strings.TrimSpace(k) {
			case "d":
				s.d = strings.ToLower(v)
			case "s":
				s.s = v
			}
		}
		out = append(out, s)
		if len(out) == maxSignatures {
			break
		}
	}
	return out
}

// headerFields splits a header block into fields, continuation lines joined.
func headerFields(hdr []byte) []string {
	var fields []string
	for _, line := range strings.Split(string(hdr), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += line
			continue
		}
		fields = append(fields, line)
	}
	return fields
}

// fromAndDate returns the normalised domain of the first From address and
// the Date of the header (zero when absent or unparsable).
func fromAndDate(hdr []byte) (string, time.Time) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
	if err != nil {
		return "", time.Time{}
	}
	mh := mail.Header{Header: message.Header{Header: h}}
	date, _ := mh.Date()
	addr := ""
	if l, err := mh.AddressList("From"); err == nil && len(l) > 0 {
		addr = l[0].Address
	} else {
		addr = strings.Trim(strings.TrimSpace(h.Get("From")), "<>")
		if i := strings.LastIndexByte(addr, '<'); i >= 0 {
			addr = strings.Trim(addr[i:], "<> ")
		}
	}
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", date
	}
	return align.Normalize(addr[i+1:]), date
}

// readHeaderBlock reads the header block of a message, the blank line that
// ends it included, without an mbox "From " line. A header larger than
// maxHeaderBytes, or a stream that ends inside the header, is an error.
func readHeaderBlock(br *bufio.Reader) ([]byte, error) {
	var b bytes.Buffer
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, errors.New("header line too long")
		}
		if len(line) > 0 && first && bytes.HasPrefix(line, []byte("From ")) && err == nil {
			first = false
			continue
		}
		first = false
		if b.Len()+len(line) > maxHeaderBytes {
			return nil, errors.New("header larger than 1 MiB")
		}
		b.Write(line)
		if err != nil {
			if err == io.EOF {
				return nil, errors.New("message ends inside its header")
			}
			return nil, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			if b.Len() == len(line) {
				return nil, errors.New("message has no header")
			}
			return b.Bytes(), nil
		}
	}
}

// lookupFunc returns the TXT lookup go-msgauth calls: cached, bounded by the
// verifier's timeout, its errors in the form go-msgauth classifies (a
// *net.DNSError that is temporary, or not found).
func (v *Verifier) lookupFunc(ctx context.Context) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if txts, err, ok := v.cached(name); ok {
			return txts, err
		}
		if err := v.breakerOpen(name); err != nil {
			return nil, err
		}
		lctx, cancel := context.WithTimeout(ctx, v.timeout)
		txts, err := v.lookup(lctx, name)
		timedOut := err != nil && lctx.Err() != nil
		cancel()
		err = classifyDNS(name, err)
		if ctx.Err() != nil {
			return txts, err // the caller gave up: nothing learnt about the name
		}
		v.store(name, txts, err, timedOut)
		return txts, err
	}
}

func (v *Verifier) cached(name string) ([]string, error, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.cache[name]
	if !ok || !v.now().Before(e.expires) {
		return nil, nil, false
	}
	return e.txts, e.err, true
}

func (v *Verifier) breakerOpen(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.timeouts >= breakerTimeouts && v.now().Sub(v.lastTimer) < breakerPause {
		return &net.DNSError{Err: "resolver unresponsive (recent lookups timed out)", Name: name, IsTemporary: true, IsTimeout: true}
	}
	return nil
}

func (v *Verifier) store(name string, txts []string, err error, timedOut bool) {
	now := v.now()
	ttl := cacheTTL
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		ttl = cacheMissTTL
	case err != nil:
		ttl = cacheTempTTL
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if timedOut {
		v.timeouts++
		v.lastTimer = now
	} else {
		v.timeouts = 0
	}
	if len(v.cache) >= cacheMaxEntries {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= cacheMaxEntries {
			clear(v.cache)
		}
	}
	v.cache[name] = txtEntry{txts: txts, err: err, expires: now.Add(ttl)}
}

// classifyDNS turns a lookup error into what go-msgauth understands: a
// *net.DNSError, not found for NXDOMAIN, temporary for anything else (a
// DNS failure must never make a report fail).
func classifyDNS(name string, err error) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return &net.DNSError{Err: "no such domain", Name: name, IsNotFound: true}
	}
	timeout := errors.Is(err, context.DeadlineExceeded)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		timeout = true
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true, IsTimeout: timeout}
}

// MailTee authenticates an input's mail while the pipeline reads it: it
// is written every byte of the input (an io.TeeReader), decides from the
// first line whether the input is a mail, and if so streams it to a
// verification running beside the extraction (Verifier.Tee). The message is never copied:
// the DKIM body hash is computed as the bytes pass.
type MailTee struct {
	v       *Verifier
	max     int64 // more bytes than this: not verified (extract refuses such a mail too)
	n       int64
	state   teeState
	head    []byte // bytes seen while undecided, at most maxFirstLine
	pw      *io.PipeWriter
	done    chan Auth
	cancel  context.CancelFunc
	started bool
	ctx     context.Context // of the verification; canceled by Close
	res     *Auth
}

type teeState int

const (
	teeUndecided teeState = iota
	teeMail
	teeNotMail
	teeStopped // the verification has all it takes, or the mail is too large
)

// maxFirstLine is how far the first line of a mail may go before its colon.
const maxFirstLine = 1000

// Tee returns a MailTee verifying with v the mail written to it, at most
// max bytes of it (extract.DefaultMaxMessageBytes when max <= 0). Close it when the input is done.
func (v *Verifier) Tee(ctx context.Context, max int64) *MailTee {
	if max <= 0 {
		max = extract.DefaultMaxMessageBytes
	}
	ctx, cancel := context.WithCancel(ctx)
	return &MailTee{v: v, max: max, done: make(chan Auth, 1), ctx: ctx, cancel: cancel}
}

// Write never fails: authentication must not disturb ingestion.
func (t *MailTee) Write(p []byte) (int, error) {
	n := len(p)
	if t.state == teeUndecided {
		t.head = append(t.head, p...)
		switch looksLikeMailStart(t.head) {
		case 0:
			if len(t.head) > maxFirstLine {
				t.state, t.head = teeNotMail, nil
			}
			return n, nil
		case -1:
			t.state, t.head = teeNotMail, nil
			return n, nil
		}
		t.state = teeMail
		t.start()
		p, t.head = t.head, nil
	}
	if t.state != teeMail {
		return n, nil
	}
	t.n += int64(len(p))
	if t.n > t.max {
		t.pw.CloseWithError(errors.New("mail larger than the message size limit"))
		t.state = teeStopped
		return n, nil
	}
	if _, err := t.pw.Write(p); err != nil {
		t.state = teeStopped
	}
	return n, nil
}

// looksLikeMailStart says from the first bytes whether a stream is a mail:
// 1 for a first line "Name:" (RFC 5322 §2.2 field name) or an mbox "From ",
// -1 for anything else, 0 when more bytes are needed.
func looksLikeMailStart(b []byte) int {
	if bytes.HasPrefix(b, []byte("From ")) {
		return 1
	}
	for i, c := range b {
		switch {
		case c == ':' && i > 0:
			return 1
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return -1
		}
	}
	return 0
}

func (t *MailTee) start() {
	pr, pw := io.Pipe()
	t.pw = pw
	t.started = true
	go func() {
		a := t.v.Verify(t.ctx, pr)
		// Whatever the verification did not read is not wanted.
		pr.CloseWithError(errVerified)
		t.done <- a
	}()
}

var errVerified = errors.New("verification done")

// Result ends the input (every byte of a mail has passed when extract
// delivers a payload from it) and returns the verdict, once computed.
func (t *MailTee) Result() Auth {
	if t.res != nil {
		return *t.res
	}
	var a Auth
	if t.started {
		t.pw.Close()
		a = <-t.done
		t.started = false
		t.state = teeStopped
	} else {
		a = Auth{Result: AuthUnverified, Detail: "the input is not a mail (the report's mail is inside an archive)"}
	}
	t.res = &a
	return a
}

// HasResult reports whether Result was called.
func (t *MailTee) HasResult() bool { return t.res != nil }

// Close abandons a verification whose result was not asked for.
func (t *MailTee) Close() {
	if t.started {
		t.cancel()
		t.pw.CloseWithError(errors.New("verification abandoned"))
		<-t.done
		t.started = false
	}
	t.cancel()
}

// ReporterAuth checks an aggregate report against the mail that carried
// it: a pass authenticates the From domain, so it stands only when the
// report's own contact address (report_metadata/email) belongs to the same
// organization; otherwise anyone with a signing domain could pass for any
// reporter. Such a report is unverified, not failed.
func ReporterAuth(a Auth, email string) Auth {
	if a.Result != AuthPass {
		return a
	}
	domain := ""
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		domain = align.Normalize(strings.Trim(email[i+1:], "<> "))
	}
	if domain != "" && align.Aligned(domain, a.From, align.Relaxed) {
		return a
	}
	if domain == "" {
		domain = "(none)"
	}
	a.Result = AuthUnverified
	a.Detail = "report email domain " + domain + " is not of the From domain " + a.From + "; " + a.Detail
	if len(a.Detail) > maxDetail {
		a.Detail = a.Detail[:maxDetail]
	}
	return a
}
