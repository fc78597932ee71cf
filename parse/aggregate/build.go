package aggregate

import (
	"bytes"

	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dmarcd/dmarcd/parse"
)

// The builder is the semantic half of both decoders: it turns a stream of
// XML events (start element, character data, end element) into a Header and
// Records. The tokenizers (the encoding/xml reference and the fast scanner)
// only do XML; everything the standards digest §6.3–§6.5 asks of values
// happens here, once, so the two decoders can differ only in XML handling.

// kind is what an open element inside <feedback> means.
type kind uint8

const (
	kIgnore kind = iota // unknown or extension element: ignored with its subtree
	kFeedback
	kVersion
	kMeta
	kOrgName
	kEmail
	kExtra
	kReportID
	kDateRange
	kBegin
	kEnd
	kError
	kGenerator
	kPolicy
	kPDomain
	kADKIM
	kASPF
	kP
	kSP
	kNP
	kPct
	kFo
	kTesting
	kDiscovery
	kRecord
	kRow
	kSourceIP
	kCount
	kPolicyEval
	kDisposition
	kEvalDKIM
	kEvalSPF
	kReason
	kReasonType
	kReasonComment
	kIdentifiers
	kEnvTo
	kEnvFrom
	kHeaderFrom
	kAuth
	kDKIM
	kDKIMDomain
	kDKIMSelector
	kDKIMResult
	kDKIMHuman
	kSPF
	kSPFDomain
	kSPFScope
	kSPFResult
	kSPFHuman
	kCount_ // number of kinds
)

// isLeaf marks the kinds whose character data is a value.
var isLeaf = func() (t [kCount_]bool) {
	for _, k := range []kind{kVersion, kOrgName, kEmail, kExtra, kReportID, kBegin, kEnd, kError, kGenerator,
		kPDomain, kADKIM, kASPF, kP, kSP, kNP, kPct, kFo, kTesting, kDiscovery,
		kSourceIP, kCount, kDisposition, kEvalDKIM, kEvalSPF, kReasonType, kReasonComment,
		kEnvTo, kEnvFrom, kHeaderFrom,
		kDKIMDomain, kDKIMSelector, kDKIMResult, kDKIMHuman, kSPFDomain, kSPFScope, kSPFResult, kSPFHuman} {
		t[k] = true
	}
	return
}()

// child returns the kind of an element with the given local name under parent.
// Elements are matched by local name in any namespace (digest §1.7, §6.3 item 20).
func (b *builder) child(parent kind, local []byte) kind {
	switch parent {
	case kFeedback:
		switch string(local) {
		case "record":
			return kRecord
		case "report_metadata":
			if !b.hdrFinal {
				return kMeta
			}
		case "policy_published":
			// Multiple policy_published: the first wins (RFC 9990 §3.1: one
			// policy per report).
			if !b.hdrFinal && !b.policySeen {
				return kPolicy
			}
		case "version":
			if !b.hdrFinal {
				return kVersion
			}
		}
	case kMeta:
		switch string(local) {
		case "org_name":
			return kOrgName
		case "email":
			return kEmail
		case "extra_contact_info":
			return kExtra
		case "report_id":
			return kReportID
		case "date_range":
			return kDateRange
		case "error":
			return kError
		case "generator":
			return kGenerator
		}
	case kDateRange:
		switch string(local) {
		case "begin":
			return kBegin
		case "end":
			return kEnd
		}
	case kPolicy:
		switch string(local) {
		case "domain":
			return kPDomain
		case "adkim":
			return kADKIM
		case "aspf":
			return kASPF
		case "p":
			return kP
		case "sp":
			return kSP
		case "np":
			return kNP
		case "pct":
			return kPct
		case "fo":
			return kFo
		case "testing":
			return kTesting
		case "discovery_method":
			return kDiscovery
		}
	case kRecord:
		switch string(local) {
		case "row":
			return kRow
		case "identifiers", "identities":
			// "identities" is a misspelling parsedmarc accepts
			// (parsedmarc _parse_report_record: `if "identities" in record`).
			return kIdentifiers
		case "auth_results":
			return kAuth
		}
	case kRow:
		switch string(local) {
		case "source_ip":
			return kSourceIP
		case "count":
			return kCount
		case "policy_evaluated":
			return kPolicyEval
		}
	case kPolicyEval:
		switch string(local) {
		case "disposition":
			return kDisposition
		case "dkim":
			return kEvalDKIM
		case "spf":
			return kEvalSPF
		case "reason":
			return kReason
		}
	case kReason:
		switch string(local) {
		case "type":
			return kReasonType
		case "comment":
			return kReasonComment
		}
	case kIdentifiers:
		switch string(local) {
		case "envelope_to":
			return kEnvTo
		case "envelope_from":
			return kEnvFrom
		case "header_from":
			return kHeaderFrom
		}
	case kAuth:
		switch string(local) {
		case "dkim":
			return kDKIM
		case "spf":
			return kSPF
		}
	case kDKIM:
		switch string(local) {
		case "domain":
			return kDKIMDomain
		case "selector":
			return kDKIMSelector
		case "result":
			return kDKIMResult
		case "human_result":
			return kDKIMHuman
		}
	case kSPF:
		switch string(local) {
		case "domain":
			return kSPFDomain
		case "scope":
			return kSPFScope
		case "result":
			return kSPFResult
		case "human_result":
			return kSPFHuman
		}
	}
	return kIgnore
}

// Feedback states.
const (
	fbBefore = iota // no <feedback> start seen yet
	fbIn
	fbDone // </feedback> seen: stop reading
)

// errEOF is what a tokenizer returns when its input ends (cleanly or within
// a token); the builder turns it into NotAReport or Truncated.
var errEOF = &parse.Error{Code: parse.Truncated, Msg: "unexpected end of input"}

// builder assembles Header and Records from XML events.
type builder struct {
	lim   Limits
	depth int    // open elements, whole document
	state int    // fbBefore, fbIn, fbDone
	stack []kind // open elements inside feedback; stack[0] is kFeedback
	want  bool   // top of stack is a leaf: character data is kept in val
	val   []byte

	hdr        Header
	ns9990     bool
	metaDone   bool
	policyDone bool
	policySeen bool
	hdrFinal   bool
	hdrErr     error
	beginRaw   []byte
	endRaw     []byte
	beginSet   bool
	endSet     bool

	nrec   int
	rec    *Record
	reason Reason
	dkim   DKIMResult
	spf    SPFResult
	dkims  []DKIMResult
	spfs   []SPFResult
	rsns   []Reason
	count  []byte
	cntSet bool

	queue []*Record
	qhead int
	ready bool // a record was queued or the header finalised: the driver may yield

	recSlab    []Record
	dkimSlab   []DKIMResult
	spfSlab    []SPFResult
	reasonSlab []Reason

	in      interner
	scratch []byte
}

func newBuilder(lim Limits) *builder {
	return &builder{lim: lim, stack: make([]kind, 0, 16)}
}

// start handles a start element. space is the resolved namespace; the
// builder reads it only for the <feedback> element.
func (b *builder) start(local []byte, space string) error {
	b.depth++
	if b.depth > b.lim.MaxDepth {
		return parse.Errorf(parse.TooLarge, "element nesting deeper than %d", b.lim.MaxDepth)
	}
	if b.state != fbIn {
		if b.state == fbBefore && string(local) == "feedback" {
			// The first feedback element, wherever it is (IKEA's unclosed
			// xs:schema wrapper, digest §6.3 item 19).
			b.state = fbIn
			b.ns9990 = space == Namespace9990
			b.stack = append(b.stack[:0], kFeedback)
		}
		return nil
	}
	parent := b.stack[len(b.stack)-1]
	k := kIgnore
	if parent != kIgnore && !isLeaf[parent] {
		k = b.child(parent, local)
	}
	b.stack = append(b.stack, k)
	b.want = isLeaf[k]
	if b.want {
		b.val = b.val[:0]
		return nil
	}
	switch k {
	case kRecord:
		if !b.hdrFinal && b.metaDone && b.policyDone {
			b.finalize()
			if b.hdrErr != nil {
				return b.hdrErr
			}
		}
		if b.nrec >= b.lim.MaxRecords {
			return parse.Errorf(parse.TooLarge, "more than %d records", b.lim.MaxRecords)
		}
		b.rec = b.newRecord()
		b.rec.Index = b.nrec
		b.nrec++
		b.dkims, b.spfs, b.rsns = b.dkims[:0], b.spfs[:0], b.rsns[:0]
		b.count, b.cntSet = b.count[:0], false
	case kPolicy:
		b.policySeen = true
	case kReason:
		b.reason = Reason{}
	case kDKIM:
		b.dkim = DKIMResult{}
	case kSPF:
		b.spf = SPFResult{}
	}
	return nil
}

// chars handles character data.
func (b *builder) chars(p []byte) {
	if b.want {
		b.val = append(b.val, p...)
	}
}

// end handles an end element.
func (b *builder) end() error {
	b.depth--
	if b.state != fbIn {
		return nil
	}
	n := len(b.stack) - 1
	k := b.stack[n]
	b.stack = b.stack[:n]
	if n > 0 {
		b.want = isLeaf[b.stack[n-1]]
	} else {
		b.want = false
	}
	if isLeaf[k] {
		b.leaf(k, b.val)
		return nil
	}
	switch k {
	case kFeedback:
		b.state = fbDone
		if !b.hdrFinal {
			b.finalize()
		}
		b.ready = true
		return b.hdrErr
	case kMeta, kPolicy:
		if k == kMeta {
			b.metaDone = true
		} else {
			b.policyDone = true
		}
		if !b.hdrFinal && b.metaDone && b.policyDone && b.nrec > 0 {
			b.finalize()
			return b.hdrErr
		}
	case kRecord:
		b.finishRecord()
	case kReason:
		// An override reason with an empty type is dropped (digest §6.3 item 24).
		if b.reason.Type != "" {
			b.rsns = append(b.rsns, b.reason)
		}
	case kDKIM:
		b.dkims = append(b.dkims, b.dkim)
	case kSPF:
		b.spfs = append(b.spfs, b.spf)
	}
	return nil
}

// eof turns the end of input into the right error.
func (b *builder) eof() error {
	if b.state == fbBefore {
		return parse.Errorf(parse.NotAReport, "no <feedback> element: not an aggregate report")
	}
	return parse.Errorf(parse.Truncated, "document ends before </feedback>")
}

func (b *builder) leaf(k kind, raw []byte) {
	v := bytes.TrimSpace(raw)
	h := &b.hdr
	switch k {
	case kVersion:
		h.Version = string(v)
	case kOrgName:
		h.OrgName = string(v)
	case kEmail:
		h.Email = string(v)
	case kExtra:
		h.ExtraContactInfo = string(v)
	case kReportID:
		h.ReportID = string(v)
	case kBegin:
		b.beginRaw, b.beginSet = append(b.beginRaw[:0], v...), true
	case kEnd:
		b.endRaw, b.endSet = append(b.endRaw[:0], v...), true
	case kError:
		if len(v) > 0 {
			h.Errors = append(h.Errors, string(v))
		}
	case kGenerator:
		h.Generator = string(v)
		b.ns9990 = true
	case kPDomain:
		h.Domain = b.domain(v)
	case kADKIM:
		h.ADKIM = Opt{b.lower(v), true}
	case kASPF:
		h.ASPF = Opt{b.lower(v), true}
	case kP:
		h.P = Opt{b.lower(v), true}
	case kSP:
		h.SP = Opt{b.lower(v), true}
	case kNP:
		h.NP = Opt{b.lower(v), true}
		b.ns9990 = true
	case kPct:
		h.Pct = Opt{string(v), true}
	case kFo:
		h.Fo = Opt{string(v), true}
	case kTesting:
		h.Testing = Opt{b.lower(v), true}
		b.ns9990 = true
	case kDiscovery:
		h.DiscoveryMethod = Opt{b.lower(v), true}
		b.ns9990 = true

	case kSourceIP:
		b.rec.SourceIP = string(v)
	case kCount:
		b.count, b.cntSet = append(b.count[:0], v...), true
	case kDisposition:
		b.rec.Disposition = b.lower(v)
	case kEvalDKIM:
		b.rec.EvalDKIM = b.lower(v)
	case kEvalSPF:
		b.rec.EvalSPF = b.lower(v)
	case kReasonType:
		b.reason.Type = b.lower(v)
	case kReasonComment:
		b.reason.Comment = b.in.get(v)
	case kEnvTo:
		b.rec.EnvelopeTo = Opt{b.in.get(v), true}
	case kEnvFrom:
		b.rec.EnvelopeFrom = Opt{b.in.get(v), true}
	case kHeaderFrom:
		b.rec.HeaderFrom = b.domain(v)
	case kDKIMDomain:
		b.dkim.Domain = b.in.get(v)
	case kDKIMSelector:
		b.dkim.Selector = b.in.get(v)
	case kDKIMResult:
		b.dkim.Result = b.lower(v)
	case kDKIMHuman:
		b.dkim.HumanResult = b.in.get(v)
	case kSPFDomain:
		b.spf.Domain = b.in.get(v)
	case kSPFScope:
		b.spf.Scope = b.lower(v)
	case kSPFResult:
		b.spf.Result = b.lower(v)
	case kSPFHuman:
		b.spf.HumanResult = b.in.get(v)
	}
}

// lower returns v lower-cased (enumerations: digest §6.3 item 25; unknown
// values are kept, lower-cased).
func (b *builder) lower(v []byte) string {
	switch string(v) { // the usual values, already lower-case
	case "pass":
		return "pass"
	case "fail":
		return "fail"
	case "none":
		return "none"
	}
	b.scratch = lowerASCII(b.scratch[:0], v)
	return b.in.get(b.scratch)
}

// domain returns v lower-cased without one trailing dot.
func (b *builder) domain(v []byte) string {
	b.scratch = lowerASCII(b.scratch[:0], v)
	s := b.scratch
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return b.in.get(s)
}

// lowerASCII appends v lower-cased to dst. Non-ASCII text is lower-cased
// with Unicode rules.
func lowerASCII(dst, v []byte) []byte {
	for _, c := range v {
		if c >= utf8.RuneSelf {
			return append(dst, bytes.ToLower(v)...)
		}
	}
	for _, c := range v {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func (b *builder) newRecord() *Record {
	if len(b.recSlab) == 0 {
		b.recSlab = make([]Record, 64)
	}
	r := &b.recSlab[0]
	b.recSlab = b.recSlab[1:]
	return r
}

// finishRecord completes the current record and queues it.
func (b *builder) finishRecord() {
	r := b.rec
	b.rec = nil
	var invalid []string
	raw := r.SourceIP
	if ip, err := netip.ParseAddr(raw); err != nil || ip.Zone() != "" {
		invalid = append(invalid, "source_ip "+strconv.Quote(raw)+": not an IP address")
	} else {
		// RFC 9990 §3.1.1.8; digest §6.4 item 35: canonical form, IPv4-mapped unmapped.
		var tmp [48]byte
		out := ip.Unmap().AppendTo(tmp[:0])
		if string(out) != raw {
			r.SourceIP = string(out)
		}
	}
	if n, ok := parseCount(b.count); ok {
		r.Count = n
	} else {
		invalid = append(invalid, "count "+strconv.Quote(string(b.count))+": not a non-negative integer")
	}
	r.Invalid = strings.Join(invalid, "; ")
	if len(b.dkims) > 0 {
		b.dkimSlab = slabGrow(b.dkimSlab, len(b.dkims))
		r.DKIM = b.dkimSlab[:len(b.dkims):len(b.dkims)]
		copy(r.DKIM, b.dkims)
		b.dkimSlab = b.dkimSlab[len(b.dkims):]
	}
	if len(b.spfs) > 0 {
		b.spfSlab = slabGrow(b.spfSlab, len(b.spfs))
		r.SPF = b.spfSlab[:len(b.spfs):len(b.spfs)]
		copy(r.SPF, b.spfs)
		b.spfSlab = b.spfSlab[len(b.spfs):]
	}
	if len(b.rsns) > 0 {
		b.reasonSlab = slabGrow(b.reasonSlab, len(b.rsns))
		r.Reasons = b.reasonSlab[:len(b.rsns):len(b.rsns)]
		copy(r.Reasons, b.rsns)
		b.reasonSlab = b.reasonSlab[len(b.rsns):]
	}
	b.queue = append(b.queue, r)
	if b.hdrFinal {
		b.ready = true
	}
}

// slabGrow returns s if it has room for n more elements, else a new slab.
func slabGrow[T any](s []T, n int) []T {
	if len(s) >= n {
		return s
	}
	return make([]T, max(n, 256))
}

// parseCount parses a row count: decimal digits only.
func parseCount(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseEpoch parses seconds since the epoch (RFC 7489 App. C, RFC 9990
// §3.1.1.4). Surrounding whitespace is already trimmed; a fractional part
// ("1538204542.0") is truncated (digest §6.5 item 41).
func parseEpoch(v []byte) (int64, bool) {
	i := bytes.IndexByte(v, '.')
	if i >= 0 {
		for _, c := range v[i+1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		v = v[:i]
	}
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// finalize completes the header: schema, required fields, times.
func (b *builder) finalize() {
	b.hdrFinal = true
	b.ready = true
	h := &b.hdr
	h.Schema = SchemaRFC7489
	if b.ns9990 {
		h.Schema = SchemaRFC9990
	}
	// Digest §6.4: policy_published/domain is the one field a report cannot
	// be stored without; begin and end make up its identity.
	switch {
	case !b.policySeen:
		b.hdrErr = parse.Errorf(parse.MissingField, "no policy_published element")
		return
	case h.Domain == "":
		b.hdrErr = parse.Errorf(parse.MissingField, "policy_published/domain missing or empty")
		return
	}
	for _, f := range []struct {
		name string
		raw  []byte
		set  bool
		dst  *time.Time
	}{{"begin", b.beginRaw, b.beginSet, &h.Begin}, {"end", b.endRaw, b.endSet, &h.End}} {
		if !f.set {
			b.hdrErr = parse.Errorf(parse.MissingField, "report_metadata/date_range/%s missing", f.name)
			return
		}
		n, ok := parseEpoch(f.raw)
		if !ok {
			b.hdrErr = parse.Errorf(parse.MissingField, "report_metadata/date_range/%s %q: not seconds since the epoch", f.name, f.raw)
			return
		}
		*f.dst = time.Unix(n, 0).UTC()
	}
}

// next pops a queued record, if the header is final.
func (b *builder) next() (*Record, bool) {
	if !b.hdrFinal || b.qhead >= len(b.queue) {
		return nil, false
	}
	r := b.queue[b.qhead]
	b.queue[b.qhead] = nil
	b.qhead++
	if b.qhead == len(b.queue) {
		b.queue, b.qhead = b.queue[:0], 0
	}
	return r, true
}

// interner shares the strings of values that repeat from record to record
// (domains, selectors, enumerations), so a report of 100,000 records does not
// allocate each of them 100,000 times. It is a direct-mapped cache.
type interner struct {
	tab [1024]string
}

func (in *interner) get(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if len(v) > 64 {
		return string(v)
	}
	h := uint32(2166136261)
	for _, c := range v {
		h = (h ^ uint32(c)) * 16777619
	}
	h &= uint32(len(in.tab) - 1)
	if s := in.tab[h]; s == string(v) {
		return s
	}
	s := string(v)
	in.tab[h] = s
	return s
}
