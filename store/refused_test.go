package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse"
)

func TestRefusedKeepsOnlyTheInputsOwnFaults(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want parse.Code
	}{
		{"nil", nil, ""},
		{"query too long", &clickhouse.Exception{Code: 62, Message: "Syntax error: failed at position 44: 'aaaa. Max query size exceeded"}, parse.StoreRefused},
		{"other syntax error", &clickhouse.Exception{Code: 62, Message: "Syntax error: failed at position 1"}, ""},
		{"cannot parse text", fmt.Errorf("report x: %w", &clickhouse.Exception{Code: 6, Message: "Cannot parse input"}), parse.StoreRefused},
		{"datetime", &clickhouse.Exception{Code: 41, Message: "Cannot parse datetime"}, parse.StoreRefused},
		{"type mismatch", &clickhouse.Exception{Code: 53, Message: "Type mismatch"}, parse.StoreRefused},
		{"string too large", &clickhouse.Exception{Code: 131, Message: "Too large string size"}, parse.StoreRefused},
		{"memory limit", &clickhouse.Exception{Code: 241, Message: "Memory limit (for query) exceeded"}, ""},
		{"timeout", &clickhouse.Exception{Code: 159, Message: "Timeout exceeded"}, ""},
		{"socket timeout", &clickhouse.Exception{Code: 209, Message: "Timeout exceeded while reading from socket"}, ""},
		{"network", &clickhouse.Exception{Code: 210, Message: "Connection refused"}, ""},
		{"too many parts", &clickhouse.Exception{Code: 252, Message: "Too many parts (300)"}, ""},
		{"readonly", &clickhouse.Exception{Code: 164, Message: "Cannot execute query in readonly mode"}, ""},
		{"unknown table", &clickhouse.Exception{Code: 60, Message: "Table dmarc.x doesn't exist"}, ""},
		{"auth", &clickhouse.Exception{Code: 516, Message: "Authentication failed"}, ""},
		{"driver: enum element", fmt.Errorf("column x: %w", &column.Error{ColumnType: "Enum8", Err: errors.New(`unknown element "x"`)}), parse.StoreRefused},
		{"driver: conversion", &column.ColumnConverterError{Op: "Append", To: "UInt8", From: "string"}, parse.StoreRefused},
		{"connection", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, ""},
		{"parser's code kept", fmt.Errorf("reading record 3: %w", parse.Errorf(parse.XMLSyntax, "bad")), parse.XMLSyntax},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := refused(c.err)
			if got := parse.CodeOf(err); got != c.want {
				t.Errorf("code %q, want %q (err %v)", got, c.want, err)
			}
			if c.err == nil && err != nil {
				t.Errorf("refused(nil) = %v", err)
			}
			if c.err != nil && !errors.Is(err, c.err) {
				t.Errorf("refused(%v) lost its cause: %v", c.err, err)
			}
		})
	}
}

func TestARefusalsTextIsEscapedAndBounded(t *testing.T) {
	hostile := "\x1b]0;owned\x07" + strings.Repeat("\u202eA", 100000)
	err := refused(&clickhouse.Exception{Code: 6, Message: "Cannot parse input: " + hostile})
	msg := err.Error()
	if len(msg) > maxRefusalText+200 {
		t.Errorf("message is %d bytes, want at most about %d", len(msg), maxRefusalText)
	}
	if strings.ContainsAny(msg, "\x1b\x07\u202e") {
		t.Errorf("message carries control characters: %q", msg[:80])
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 6 {
		t.Errorf("the exception is not reachable with errors.As: %v", err)
	}
}

// A policy domain of 300 KiB (a forged report; the parser now refuses it,
// but the store must not depend on that) makes the query that looks for the
// report longer than ClickHouse's max_query_size: on main it ended `error`
// and was retried forever.
func TestAReportThatClickHouseRefusesEndsStoreRefused(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	begin := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	domain := strings.Repeat("a", 300<<10) + ".example"
	_, err := s.WriteAggregate(ctx, header("evil.example", "r-huge", domain, begin), meta, genRows(3, domain))
	if parse.CodeOf(err) != parse.StoreRefused {
		t.Fatalf("WriteAggregate with a 300 KiB policy domain: %v (code %q), want code %s", err, parse.CodeOf(err), parse.StoreRefused)
	}
	if len(err.Error()) > 4<<10 {
		t.Errorf("error message is %d bytes: it repeats the hostile value", len(err.Error()))
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 0 {
		t.Errorf("%d records stored of the refused report", n)
	}

	// The good report behind it is stored.
	res := write(t, s, header("good.example", "r-good", "example.com", begin), genRows(3, "example.com"))
	if res.Status != StatusStored {
		t.Errorf("good report after the refused one: %s", res.Status)
	}
}

func TestAStoppedServerStaysARetryableError(t *testing.T) {
	dsn := testenv.ClickHouse(t)
	p := newProxy(t, hostOf(t, dsn))
	s, err := Open(context.Background(), strings.Replace(dsn, hostOf(t, dsn), p.addr(), 1), Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p.stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	_, err = s.WriteAggregate(ctx, header("org.example", "r1", "example.com", begin), meta, genRows(3, "example.com"))
	if err == nil {
		t.Fatal("WriteAggregate through a stopped server succeeded")
	}
	if c := parse.CodeOf(err); c != "" {
		t.Errorf("a stopped server's error has code %q, want none (a retry may succeed): %v", c, err)
	}
}

// hostOf is the host:port of a clickhouse:// DSN.
func hostOf(t testing.TB, dsn string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(dsn, "clickhouse://")
	if !ok {
		t.Fatalf("DSN %s: not clickhouse://", dsn)
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// proxy forwards TCP connections to a server until stopped: stopping it is
// the server going away, for the client.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// stop closes the listener and every forwarded connection.
func (p *proxy) stop() {
	p.ln.Close()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
