// Command hostilegen writes the attacks of internal/testkit/hostile to a folder,
// one file each, for scripts/bench-hostile.sh and for trying them by hand:
//
//	hostilegen [-size bench|test] [-mail] [-only NAME,...] DIR   write DIR/NAME.EXT per attack
//	hostilegen -list                                           print NAME, kind, sizes, want, what
//	hostilegen -stdin NAME [-size ...]                         write one attack to standard output
//	hostilegen -good ID                                        write a good report (id ID) to standard output
//
// Files are streamed from the generators: a 500 MB org_name becomes a
// 510 KB gzip without ever being in memory. An attack meant for standard
// input (stdin-endless) is not written to DIR: pipe `hostilegen -stdin NAME`
// into `dmarcd ingest -` (size 0 never ends).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmarcd/dmarcd/internal/testkit/hostile"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hostilegen:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("hostilegen", flag.ContinueOnError)
	size := fs.String("size", "bench", "bench (up to 64 MiB of input, default limits) or test (the tests' sizes)")
	list := fs.Bool("list", false, "list the attacks and exit")
	mail := fs.Bool("mail", false, "write every attack as a mail (bare files become attachments), as IMAP carries them")
	only := fs.String("only", "", "comma-separated attack names (default: all)")
	one := fs.String("stdin", "", "write this attack to standard output")
	good := fs.String("good", "", "write a good aggregate report with this report id to standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sizeOf := func(a hostile.Attack) (int64, error) {
		switch *size {
		case "bench":
			return a.BenchSize, nil
		case "test":
			return a.TestSize, nil
		}
		return 0, fmt.Errorf("-size %q: want bench or test", *size)
	}
	if *list {
		w := bufio.NewWriter(stdout)
		for _, a := range hostile.All() {
			pending := ""
			if a.Pending != "" {
				pending = " PENDING: " + a.Pending
			}
			fmt.Fprintf(w, "%-26s %-9s test=%-10d bench=%-10d want=%s %s  %s%s\n", a.Name, a.Kind, a.TestSize,
				a.BenchSize, a.Want.Status, strings.Join(a.Want.Codes, "|"), a.What, pending)
		}
		return w.Flush()
	}
	if *good != "" {
		_, err := stdout.Write(hostile.GoodReport(*good))
		return err
	}
	if *one != "" {
		a, ok := hostile.Find(*one)
		if !ok {
			return fmt.Errorf("no attack named %q (see -list)", *one)
		}
		n, err := sizeOf(a)
		if err != nil {
			return err
		}
		return a.Write(stdout, n)
	}
	if fs.NArg() != 1 {
		return errors.New("usage: hostilegen [-size bench|test] [-mail] [-only NAME,...] DIR | -list | -stdin NAME")
	}
	dir := fs.Arg(0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	for _, a := range hostile.All() {
		if len(want) > 0 && !want[a.Name] {
			continue
		}
		n, err := sizeOf(a)
		if err != nil {
			return err
		}
		if err := writeFile(dir, a, n, *mail); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes one attack to dir, through a temporary name so that a
// half-written file is never taken for the attack.
func writeFile(dir string, a hostile.Attack, n int64, mail bool) error {
	name := a.Name + a.Ext
	if a.Stdin {
		return nil
	}
	if mail {
		name = a.Name + ".eml"
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if mail {
		err = a.AsMail(f, n)
	} else {
		err = a.Write(f, n)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", a.Name, err)
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
