// Command dashlayout draws the layout of every Grafana dashboard, for the
// documentation (make dashboard-pictures); run it from the repository root:
//
//	dashlayout [-dir dashboards/grafana] [-out docs/img]
//
// Each DIR/NAME.json becomes OUT/dashboard-NAME.svg (dashboards.LayoutSVG).
// dashboards/layout_test.go fails when a picture is not what this command
// writes for the dashboard as it is.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmarcd/dmarcd/dashboards"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dashlayout:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("dashlayout", flag.ContinueOnError)
	dir := fs.String("dir", "dashboards/grafana", "folder of the dashboards' JSON files")
	out := fs.String("out", "docs/img", "folder to write the pictures to (created if missing)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	files, err := filepath.Glob(filepath.Join(*dir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("no dashboards (*.json) in " + *dir)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		svg, err := dashboards.LayoutSVG(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		name := "dashboard-" + strings.TrimSuffix(filepath.Base(f), ".json") + ".svg"
		if err := os.WriteFile(filepath.Join(*out, name), svg, 0o644); err != nil {
			return err
		}
		fmt.Println(filepath.Join(*out, name))
	}
	return nil
}
