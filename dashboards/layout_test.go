package dashboards

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// layoutDashboards returns the dashboards of grafana/ by name (file name
// without .json) with their JSON.
func layoutDashboards(t *testing.T) (names []string, jsons [][]byte) {
	t.Helper()
	for _, d := range loadDashboards(t) {
		names = append(names, strings.TrimSuffix(d.file, ".json"))
		jsons = append(jsons, d.raw)
	}
	return names, jsons
}

func TestLayoutPicturesAreUpToDate(t *testing.T) {
	names, jsons := layoutDashboards(t)
	for i, name := range names {
		want, err := LayoutSVG(jsons[i])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pic := filepath.Join("..", "docs", "img", "dashboard-"+name+".svg")
		got, err := os.ReadFile(pic)
		switch {
		case err != nil:
			t.Errorf("%v: run `go run ./internal/tools/dashlayout` (make dashboard-pictures) at the repository root", err)
		case !bytes.Equal(got, want):
			t.Errorf("%s is out of date: run `go run ./internal/tools/dashlayout` (make dashboard-pictures) at the repository root", pic)
		}
	}
}

// layoutEdgeCases is a dashboard with what grafana/ lacks: XML special
// characters, a title too long for its panel, data links, other panel types
// and a collapsed row holding panels.
const layoutEdgeCases = `{
  "title": "Tom & Jerry's <\"test\">",
  "templating": {"list": [{"name": "domain"}, {"name": "a&b"}]},
  "panels": [
    {"type": "stat", "title": "A < B & \"C\" 'D'", "gridPos": {"x": 0, "y": 0, "w": 4, "h": 4},
     "links": [{"title": "l", "url": "/"}]},
    {"type": "piechart", "title": "A very long title that cannot fit in four columns at all",
     "gridPos": {"x": 4, "y": 0, "w": 4, "h": 4},
     "fieldConfig": {"defaults": {"links": [{"title": "a", "url": "/"}, {"title": "b", "url": "/"}]}}},
    {"type": "row", "title": "Details", "collapsed": true, "gridPos": {"x": 0, "y": 4, "w": 24, "h": 1},
     "panels": [
       {"type": "table", "title": "Inside", "gridPos": {"x": 0, "y": 5, "w": 12, "h": 6}},
       {"type": "timeseries", "title": "Inside too", "gridPos": {"x": 12, "y": 5, "w": 12, "h": 6}}
     ]},
    {"type": "row", "title": "More", "collapsed": false, "gridPos": {"x": 0, "y": 5, "w": 24, "h": 1}, "panels": []},
    {"type": "barchart", "title": "After", "gridPos": {"x": 0, "y": 6, "w": 24, "h": 5}}
  ]
}`

// svgPanel is a <g class="panel"> of a picture.
type svgPanel struct {
	title string
	texts []string
	rects [][4]int // x, y, width, height
}

// parseLayoutSVG decodes every token of svg and returns its panels and the
// width and height of its viewBox.
func parseLayoutSVG(svg []byte) (panels []svgPanel, w, h int, err error) {
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var cur *svgPanel
	var path []string // names of the open elements
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return panels, w, h, nil
		}
		if err != nil {
			return nil, 0, 0, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			path = append(path, tok.Name.Local)
			switch {
			case tok.Name.Local == "svg":
				f := strings.Fields(attr["viewBox"])
				if len(f) == 4 {
					w, _ = strconv.Atoi(f[2])
					h, _ = strconv.Atoi(f[3])
				}
			case tok.Name.Local == "g" && attr["class"] == "panel":
				panels = append(panels, svgPanel{})
				cur = &panels[len(panels)-1]
			case tok.Name.Local == "rect" && cur != nil:
				var r [4]int
				for i, k := range []string{"x", "y", "width", "height"} {
					if r[i], err = strconv.Atoi(attr[k]); err != nil {
						return nil, 0, 0, err
					}
				}
				cur.rects = append(cur.rects, r)
			}
		case xml.EndElement:
			path = path[:len(path)-1]
			if tok.Name.Local == "g" {
				cur = nil
			}
		case xml.CharData:
			if cur == nil || len(path) == 0 {
				continue
			}
			switch path[len(path)-1] {
			case "title":
				cur.title += string(tok)
			case "text":
				cur.texts = append(cur.texts, string(tok))
			}
		}
	}
}

// allPanels returns the titles of the panels in l, rows and the panels that
// collapsed rows hold included.
func allPanels(l []gridPanel) []string {
	var titles []string
	for _, p := range l {
		titles = append(titles, p.Title)
		titles = append(titles, allPanels(p.Panels)...)
	}
	return titles
}

func TestLayoutSVGShowsEveryPanel(t *testing.T) {
	names, jsons := layoutDashboards(t)
	names, jsons = append(names, "edge cases"), append(jsons, []byte(layoutEdgeCases))
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			svg, err := LayoutSVG(jsons[i])
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := LayoutSVG(jsons[i]); !bytes.Equal(again, svg) {
				t.Fatal("two pictures of the same dashboard differ")
			}
			panels, w, h, err := parseLayoutSVG(svg)
			if err != nil {
				t.Fatalf("not XML: %v", err)
			}
			var d gridDashboard
			if err := json.Unmarshal(jsons[i], &d); err != nil {
				t.Fatal(err)
			}
			want := allPanels(d.Panels)
			var got []string
			for _, p := range panels {
				got = append(got, p.title)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("panels drawn %q, want %q", got, want)
			}
			for j, p := range panels {
				if len(p.rects) != 1 {
					t.Errorf("panel %q: %d rects, want 1", p.title, len(p.rects))
					continue
				}
				if len(p.texts) == 0 {
					t.Errorf("panel %q: no text", p.title)
				} else if s := p.texts[0]; s != p.title && !(strings.HasSuffix(s, "…") && strings.HasPrefix(p.title, strings.TrimSuffix(s, "…"))) {
					t.Errorf("panel %q: text %q, want the title or its start and …", p.title, s)
				}
				r := p.rects[0]
				if r[0] < 0 || r[1] < 0 || r[2] <= 0 || r[3] <= 0 || r[0]+r[2] > w || r[1]+r[3] > h {
					t.Errorf("panel %q: rect %v outside the %dx%d picture", p.title, r, w, h)
				}
				for _, q := range panels[:j] {
					if len(q.rects) == 1 && overlap(r, q.rects[0]) {
						t.Errorf("rects of panels %q %v and %q %v overlap", q.title, q.rects[0], p.title, r)
					}
				}
			}
		})
	}
	// The special characters of the edge cases are escaped.
	svg, _ := LayoutSVG([]byte(layoutEdgeCases))
	for _, s := range []string{`A < B`, `& "C"`, `Jerry's`, `<"test">`, `a&b`} {
		if bytes.Contains(svg, []byte(s)) {
			t.Errorf("edge cases: %q is not escaped", s)
		}
	}
}

// TestLayoutPanelsFitTheGrid checks the layout of grafana/ itself: every
// panel within Grafana's 24 columns and no two panels on the same cells.
func TestLayoutPanelsFitTheGrid(t *testing.T) {
	names, jsons := layoutDashboards(t)
	for i, name := range names {
		var d gridDashboard
		if err := json.Unmarshal(jsons[i], &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		placed := placePanels(d)
		for j, p := range placed {
			if p.x < 0 || p.y < 0 || p.w <= 0 || p.h <= 0 || p.x+p.w > gridColumns {
				t.Errorf("%s: panel %q at x=%d y=%d w=%d h=%d is not within the %d columns",
					name, p.title, p.x, p.y, p.w, p.h, gridColumns)
			}
			for _, q := range placed[:j] {
				if overlap([4]int{p.x, p.y, p.w, p.h}, [4]int{q.x, q.y, q.w, q.h}) {
					t.Errorf("%s: panels %q (x=%d y=%d w=%d h=%d) and %q (x=%d y=%d w=%d h=%d) overlap",
						name, q.title, q.x, q.y, q.w, q.h, p.title, p.x, p.y, p.w, p.h)
				}
			}
		}
	}
}

// overlap tells whether two rectangles (x, y, width, height) share an area.
func overlap(a, b [4]int) bool {
	return a[0] < b[0]+b[2] && b[0] < a[0]+a[2] && a[1] < b[1]+b[3] && b[1] < a[1]+a[3]
}
