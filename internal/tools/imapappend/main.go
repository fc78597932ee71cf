// Command imapappend puts mails into an IMAP mailbox, for benchmarks
// (scripts/bench-daemon.sh) and local experiments with `dmarcd serve`:
//
//	imapappend [-mailbox INBOX] [-conns 4] FILE|DIR...   APPEND each file (DIR: its *.eml)
//	imapappend -count [-mailbox INBOX]                   print how many mails the mailbox holds
//
// The server and login come from the environment that scripts/dovecot.sh
// start prints (DMARCD_TEST_IMAP_ADDR, DMARCD_TEST_IMAP_USER,
// DMARCD_TEST_IMAP_PASSWORD); plain IMAP, for loopback test servers only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imapappend:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("imapappend", flag.ContinueOnError)
	mailbox := fs.String("mailbox", "INBOX", "mailbox to append to or count")
	conns := fs.Int("conns", 4, "connections appending at once")
	count := fs.Bool("count", false, "print the number of mails in the mailbox and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr, user, pass := os.Getenv("DMARCD_TEST_IMAP_ADDR"), os.Getenv("DMARCD_TEST_IMAP_USER"), os.Getenv("DMARCD_TEST_IMAP_PASSWORD")
	if addr == "" || user == "" || pass == "" {
		return errors.New("set DMARCD_TEST_IMAP_ADDR, DMARCD_TEST_IMAP_USER and DMARCD_TEST_IMAP_PASSWORD (scripts/dovecot.sh start prints them)")
	}
	login := func() (*imapclient.Client, error) {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			return nil, err
		}
		if err := c.Login(user, pass).Wait(); err != nil {
			c.Close()
			return nil, fmt.Errorf("login %s@%s: %w", user, addr, err)
		}
		return c, nil
	}
	if *count {
		c, err := login()
		if err != nil {
			return err
		}
		defer c.Close()
		st, err := c.Status(*mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return fmt.Errorf("STATUS %s: %w", *mailbox, err)
		}
		fmt.Println(*st.NumMessages)
		return c.Logout().Wait()
	}

	var files []string
	for _, a := range fs.Args() {
		st, err := os.Stat(a)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		m, err := filepath.Glob(filepath.Join(a, "*.eml"))
		if err != nil {
			return err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return errors.New("no files to append: give files or folders holding *.eml")
	}
	work := make(chan string)
	errs := make(chan error, *conns)
	var wg sync.WaitGroup
	for range max(*conns, 1) {
		c, err := login()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for f := range work {
				if err := appendFile(c, *mailbox, f); err != nil {
					errs <- err
					for range work { // drain, so that the sender ends
					}
					return
				}
			}
			c.Logout().Wait()
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("appended %d mails to %s\n", len(files), *mailbox)
	return nil
}

func appendFile(c *imapclient.Client, mailbox, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// IMAP wants CRLF line ends (RFC 3501 section 2.3.1 and 4.3).
	if !strings.Contains(string(b), "\r\n") {
		b = []byte(strings.ReplaceAll(string(b), "\n", "\r\n"))
	}
	cmd := c.Append(mailbox, int64(len(b)), nil)
	if _, err := cmd.Write(b); err != nil {
		return fmt.Errorf("APPEND %s: %w", file, err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("APPEND %s: %w", file, err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("APPEND %s: %w", file, err)
	}
	return nil
}
