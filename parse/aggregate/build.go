package aggregate

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// The builder is the semantic half of both decoders: it turns a stream of
// XML events (start element, character data, end element) into a Header and
// Records. The tokenizers (the encoding/xml reference and the fast scanner)
// only do XML; everything docs/standards.md §6.3–§6.5 asks of values
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

// kindName is the element name of each leaf kind, for messages.
var kindName = [kCount_]string{kVersion: "version", kOrgName: "org_name", kEmail: "email",
	kExtra: "extra_contact_info", kReportID: "report_id", kBegin: "begin", kEnd: "end", kError: "error",
	kGenerator: "generator", kPDomain: "domain", kADKIM: "adkim", kASPF: "aspf", kP: "p", kSP: "sp",
	kNP: "np", kPct: "pct", kFo: "fo", kTesting: "testing", kDiscovery: "discovery_method",
	kSourceIP: "source_ip", kCount: "count", kDisposition: "disposition", kEvalDKIM: "dkim",
	kEvalSPF: "spf", kReasonType: "type", kReasonComment: "comment", kEnvTo: "envelope_to",
	kEnvFrom: "envelope_from", kHeaderFrom: "header_from", kDKIMDomain: "domain",
	kDKIMSelector: "selector", kDKIMResult: "result", kDKIMHuman: "human_result",
	kSPFDomain: "domain", kSPFScope: "scope", kSPFResult: "result", kSPFHuman: "human_result"}

// child returns the kind of an element with the given local name under parent.
// Elements are matched by local name in any namespace (docs/standards.md §1.7,
// §6.3 item 20); a misspelt container name by the rule of names.go.
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
		case "identifiers":
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
	// Not a name parent takes here: perhaps a misspelt container (names.go).
	return b.nearChild(parent, local)
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

	// off is the number of input bytes consumed up to the end of the token
	// being handed over: the tokenizer sets it before each call. The byte
	// limits of regions (before <feedback>, an unknown element, the header)
	// are checked against it at every token.
	off      int64
	fbOff    int64      // off after the <feedback> start tag
	ignDepth int        // len(stack) with the outermost unknown element on top; 0 if none is open
	ignOff   int64      // off after its start tag
	ignName  string     // its name, cut short, for messages
	sum      uint64     // messages in the records so far
	checkAt  int64      // bound has work only when off passes this (see rebound)
	okDomain [16]string // domains checkDomain accepted, by length: a report names a few, again and again

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
	renamed []Rename // misspelt containers read as their near name (names.go)
}

func newBuilder(lim Limits) *builder {
	b := &builder{lim: lim, stack: make([]kind, 0, 16)}
	b.rebound()
	return b
}

// start handles a start element. space is the resolved namespace; the
// builder reads it only for the <feedback> element.
func (b *builder) start(local []byte, space string) error {
	if err := b.bound(); err != nil {
		return err
	}
	b.depth++
	if b.depth > b.lim.MaxDepth {
		return parse.Errorf(parse.TooLarge, "element nesting deeper than %d", b.lim.MaxDepth)
	}
	if b.state != fbIn {
		if b.state == fbBefore && string(local) == "feedback" {
			// The first feedback element, wherever it is (IKEA's unclosed
			// xs:schema wrapper, docs/standards.md §6.3 item 19).
			b.state = fbIn
			b.fbOff = b.off
			b.rebound()
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
	if k == kIgnore && b.ignDepth == 0 {
		b.ignDepth, b.ignOff = len(b.stack), b.off
		b.ignName = string(local[:min(len(local), 64)])
		b.rebound()
	}
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
		if len(b.rsns) >= b.lim.MaxResults {
			return b.tooMany("override reasons")
		}
		b.reason = Reason{}
	case kDKIM:
		if len(b.dkims) >= b.lim.MaxResults {
			return b.tooMany("DKIM results")
		}
		b.dkim = DKIMResult{}
	case kSPF:
		if len(b.spfs) >= b.lim.MaxResults {
			return b.tooMany("SPF results")
		}
		b.spf = SPFResult{}
	}
	return nil
}

func (b *builder) tooMany(what string) error {
	return parse.Errorf(parse.TooLarge, "record %d: more than %d %s (limit MaxResults)", b.nrec-1, b.lim.MaxResults, what)
}

// bound checks the byte limits of the region the decoder is in, at b.off:
// everything before <feedback> and each unknown element are bounded by
// MaxUnknownBytes, the stretch from <feedback> to the complete header by
// MaxHeaderBytes. Tokenizers call it (through start, end, chars and skip)
// at every token, so reading stops within one token of the limit.
func (b *builder) bound() error {
	if b.off <= b.checkAt {
		return nil
	}
	return b.boundSlow()
}

// rebound sets checkAt, the offset up to which no region limit can be
// passed, after the regions changed.
func (b *builder) rebound() {
	at := int64(math.MaxInt64)
	switch b.state {
	case fbBefore:
		at = int64(b.lim.MaxUnknownBytes)
	case fbIn:
		if b.ignDepth > 0 {
			at = b.ignOff + int64(b.lim.MaxUnknownBytes)
		}
		if !b.hdrFinal {
			at = min(at, b.fbOff+int64(b.lim.MaxHeaderBytes))
		}
	}
	b.checkAt = at
}

func (b *builder) boundSlow() error {
	switch b.state {
	case fbBefore:
		if b.off > int64(b.lim.MaxUnknownBytes) {
			return parse.Errorf(parse.NotAReport, "no <feedback> element in the first %d bytes (limit MaxUnknownBytes): not an aggregate report", b.lim.MaxUnknownBytes)
		}
	case fbIn:
		if b.ignDepth > 0 && b.off-b.ignOff > int64(b.lim.MaxUnknownBytes) {
			return parse.Errorf(parse.TooLarge, "unknown element <%s> longer than %d bytes (limit MaxUnknownBytes)", valid.Printable(b.ignName), b.lim.MaxUnknownBytes)
		}
		if !b.hdrFinal && b.off-b.fbOff > int64(b.lim.MaxHeaderBytes) {
			return parse.Errorf(parse.TooLarge, "report header (report_metadata and policy_published) not complete within %d bytes of <feedback> (limit MaxHeaderBytes)", b.lim.MaxHeaderBytes)
		}
	}
	return nil
}

// skip is a token the builder has no use for (comment, processing
// instruction): only the region limits apply.
func (b *builder) skip() error { return b.bound() }

// chars handles character data: kept as the value of a leaf element, up to
// MaxValueBytes, and otherwise dropped.
func (b *builder) chars(p []byte) error {
	if err := b.bound(); err != nil {
		return err
	}
	if b.want {
		if len(b.val)+len(p) > b.lim.MaxValueBytes {
			return parse.Errorf(parse.TooLarge, "value of <%s> longer than %d bytes (limit MaxValueBytes)",
				kindName[b.stack[len(b.stack)-1]], b.lim.MaxValueBytes)
		}
		b.val = append(b.val, p...)
	}
	return nil
}

// end handles an end element.
func (b *builder) end() error {
	if err := b.bound(); err != nil {
		return err
	}
	b.depth--
	if b.state != fbIn {
		return nil
	}
	n := len(b.stack) - 1
	k := b.stack[n]
	b.stack = b.stack[:n]
	if n < b.ignDepth {
		b.ignDepth = 0
		b.rebound()
	}
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
		b.rebound()
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
		return b.finishRecord()
	case kReason:
		// An override reason with an empty type is dropped (docs/standards.md
		// §6.3 item 24).
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

// lower returns v lower-cased (enumerations: docs/standards.md §6.3 item 25;
// unknown values are kept, lower-cased).
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
func (b *builder) finishRecord() error {
	r := b.rec
	b.rec = nil
	var invalid []string
	raw := r.SourceIP
	if ip, err := netip.ParseAddr(raw); err != nil || ip.Zone() != "" {
		invalid = append(invalid, "source_ip "+valid.Quote(raw, quoteMax)+": not an IP address")
		r.SourceIP = valid.Truncate(raw, quoteMax)
	} else {
		// RFC 9990 §3.1.1.8; docs/standards.md §6.4 item 35: canonical form,
		// IPv4-mapped unmapped.
		var tmp [48]byte
		out := ip.Unmap().AppendTo(tmp[:0])
		if string(out) != raw {
			r.SourceIP = string(out)
		}
	}
	invalid, err := b.checkCount(r, invalid)
	if err != nil {
		return err
	}
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
	invalid = b.checkRecordValues(r, invalid)
	r.Invalid = strings.Join(invalid, "; ")
	b.queue = append(b.queue, r)
	if b.hdrFinal {
		b.ready = true
	}
	return nil
}

// quoteMax is how much of a hostile value an error message repeats.
const quoteMax = 64

// checkCount sets the record's count. A count that is not a non-negative
// integer sets the record aside (docs/standards.md §6.4 item 36); a count over
// MaxCount, or one that makes the report's total overflow, is a forgery that
// would falsify every sum the report enters, and ends the report
// (invalid_value).
func (b *builder) checkCount(r *Record, invalid []string) ([]string, error) {
	n, ok := parseCount(b.count)
	if !ok && isDigits(b.count) {
		return invalid, parse.Errorf(parse.InvalidValue, "record %d: count %s is more than %d messages (limit MaxCount)", r.Index, valid.Quote(string(b.count), quoteMax), b.lim.MaxCount)
	}
	if !ok {
		return append(invalid, "count "+valid.Quote(string(b.count), quoteMax)+": not a non-negative integer"), nil
	}
	if n > b.lim.MaxCount {
		return invalid, parse.Errorf(parse.InvalidValue, "record %d: count %d is more than %d messages (limit MaxCount)", r.Index, n, b.lim.MaxCount)
	}
	sum, ok := valid.AddCount(b.sum, n)
	if !ok {
		return invalid, parse.Errorf(parse.InvalidValue, "record %d: count %d makes the report's message total overflow", r.Index, n)
	}
	b.sum, r.Count = sum, n
	return invalid, nil
}

// maxSelectorBytes bounds a DKIM selector: a sequence of DNS labels
// (RFC 6376 §3.1), so no longer than a domain name.
const maxSelectorBytes = valid.MaxDomainLen

// checkRecordValues sets a record aside (returns invalid with the reasons
// added) when a domain it names is outside DNS syntax: header_from,
// envelope_from and envelope_to (RFC 9990 §3.1.1.10), each DKIM d= and SPF
// domain. Values are checked after normalisation (lower case, one trailing
// dot dropped, U-labels to A-labels: RFC 7489 §6.6.1), so what real
// reporters write passes; empty values are absent, and an SPF
// domain may be an IP address (a HELO identity). A bad value is not kept: the
// reason quotes it, cut short.
func (b *builder) checkRecordValues(r *Record, invalid []string) []string {
	bad := func(what string, err error) {
		invalid = append(invalid, what+": "+err.Error())
	}
	if r.HeaderFrom == "" {
		// Absent: alignment finds nothing to pass, as before these checks.
	} else if err := b.checkDomain(r.HeaderFrom); err != nil {
		bad("header_from", err)
		r.HeaderFrom = ""
	}
	for _, e := range []struct {
		what string
		v    *Opt
	}{{"envelope_from", &r.EnvelopeFrom}, {"envelope_to", &r.EnvelopeTo}} {
		if e.v.Value == "" {
			continue
		}
		d := e.v.Value
		if i := strings.LastIndexByte(d, '@'); i >= 0 {
			d = d[i+1:] // a full address where the domain belongs
		}
		if err := b.checkDomain(d); err != nil {
			bad(e.what, err)
			*e.v = Opt{}
		}
	}
	for i := range r.DKIM {
		d := &r.DKIM[i]
		if d.Domain != "" {
			if err := b.checkDomain(d.Domain); err != nil {
				bad(fmt.Sprintf("dkim %d domain", i), err)
				d.Domain = ""
			}
		}
		if len(d.Selector) > maxSelectorBytes || !printable(d.Selector) {
			invalid = append(invalid, fmt.Sprintf("dkim %d selector %s: not printable text of at most %d bytes", i, valid.Quote(d.Selector, quoteMax), maxSelectorBytes))
			d.Selector = ""
		}
	}
	for i := range r.SPF {
		s := &r.SPF[i]
		if s.Domain == "" {
			continue
		}
		err := b.checkDomain(s.Domain)
		if err != nil {
			if _, ipErr := netip.ParseAddr(strings.Trim(s.Domain, "[]")); ipErr == nil {
				continue // a HELO identity that is an address literal
			}
		}
		if err != nil {
			bad(fmt.Sprintf("spf %d domain", i), err)
			s.Domain = ""
		}
	}
	return invalid
}

// checkDomain checks a domain as a report writes it (any case, a trailing
// dot, U-labels) with valid.Domain after normalisation.
func checkDomain(d string) error { return valid.Domain(align.Normalize(d)) }

// checkDomain is checkDomain remembering the domains it accepted.
func (b *builder) checkDomain(d string) error {
	slot := &b.okDomain[len(d)&(len(b.okDomain)-1)]
	if *slot == d {
		return nil
	}
	if err := checkDomain(d); err != nil {
		return err
	}
	*slot = d
	return nil
}

// printable reports whether s holds no control character (C0, DEL, C1), no
// bidirectional control and no invalid UTF-8: text a report names itself or
// its selectors with, which logs, terminals and labels show.
func printable(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r >= 0x80 && r < 0xa0,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return false
		}
		i += size
	}
	return true
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

// isDigits reports whether v is a run of decimal digits: a count too large
// for parseCount rather than no count.
func isDigits(v []byte) bool {
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(v) > 0
}

// parseEpoch parses seconds since the epoch (RFC 7489 App. C, RFC 9990
// §3.1.1.4). Surrounding whitespace is already trimmed; a fractional part
// ("1538204542.0") is truncated (docs/standards.md §6.5 item 41).
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
	b.rebound()
	b.ready = true
	h := &b.hdr
	h.Schema = SchemaRFC7489
	if b.ns9990 {
		h.Schema = SchemaRFC9990
	}
	// docs/standards.md §6.4: policy_published/domain is the one field a
	// report cannot be stored without; begin and end make up its identity.
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
			b.hdrErr = parse.Errorf(parse.MissingField, "report_metadata/date_range/%s %s: not seconds since the epoch", f.name, valid.Quote(string(f.raw), quoteMax))
			return
		}
		*f.dst = time.Unix(n, 0).UTC()
	}
	if err := b.checkHeader(h); err != nil {
		b.hdrErr = parse.Wrap(parse.InvalidValue, err, "report %s", valid.Quote(h.ReportID, quoteMax))
	}
}

// maxIdentityBytes bounds report_id, org_name and email, the values that
// name a report and its reporter (real ones are under 100 bytes).
const maxIdentityBytes = 1024

// checkHeader checks the values that make up the report's identity and
// place: a bad one sets the whole report aside. The policy domain must be a
// DNS name after normalisation; the date range must lie between 1970 and a
// week from now with end not before begin; report_id, org_name and email must
// be printable text of at most maxIdentityBytes.
func (b *builder) checkHeader(h *Header) error {
	if err := checkDomain(h.Domain); err != nil {
		return fmt.Errorf("policy_published/domain: %w", err)
	}
	if err := dateWindow(h.Begin, h.End, b.lim.now()); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{
		{"report_metadata/report_id", h.ReportID}, {"report_metadata/org_name", h.OrgName}, {"report_metadata/email", h.Email}} {
		if len(f.v) > maxIdentityBytes || !printable(f.v) {
			return fmt.Errorf("%s %s: not printable text of at most %d bytes", f.name, valid.Quote(f.v, quoteMax), maxIdentityBytes)
		}
	}
	return nil
}

// dateWindow is valid.Window for report_metadata/date_range, except that
// dates from 1970 (the epoch: parseEpoch reads no sign) to valid.Earliest
// are accepted: RFC 9990's own sample report (Appendix B) is dated
// 1979-08-07, and ClickHouse's DateTime stores such a date exactly. What the
// window is for still holds: no date past ClickHouse's 2106, none more than a
// week ahead, end not before begin (docs/standards.md §6.5 item 39).
func dateWindow(begin, end, now time.Time) error {
	const what = "report_metadata/date_range"
	if end.Before(begin) {
		return valid.Window(what, begin, end, now) // says end is before begin, or what else is wrong
	}
	return valid.Window(what, later(begin, valid.Earliest), later(end, valid.Earliest), now)
}

func later(t, u time.Time) time.Time {
	if t.Before(u) {
		return u
	}
	return t
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
