package ingest

// SetSpoolBeforeOpen makes the spool source call f with each file's path
// between its listing and its open, until the returned func is called:
// tests swap the file there, deterministically.
func SetSpoolBeforeOpen(f func(path string)) (restore func()) {
	old := spoolBeforeOpen
	spoolBeforeOpen = f
	return func() { spoolBeforeOpen = old }
}
