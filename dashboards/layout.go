package dashboards

import (
	"bytes"
	"cmp"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Grafana lays panels out on a grid of 24 columns; a grid unit of height is
// about 30 px there. The pictures use 40 px per column and 24 px per grid
// row, which keeps a 24-column dashboard under 1000 px wide.
const (
	gridColumns = 24
	colWidth    = 40 // px per grid column
	rowHeight   = 24 // px per grid row
	panelGap    = 4  // px between neighbouring panels
	margin      = 16 // px around the picture
	headerH     = 56 // px above the grid: dashboard title and variables
	legendH     = 36 // px below the grid: the legend
	charWidth   = 7  // estimated px per character at font-size 12
	textPad     = 8  // px between a panel's border and its text
)

// gridDashboard is the part of a Grafana dashboard's JSON that the picture
// shows.
type gridDashboard struct {
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []gridPanel `json:"panels"`
}

// gridPanel is a panel, or a row with the panels it holds when collapsed.
type gridPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	GridPos struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
	Links       []json.RawMessage `json:"links"`
	FieldConfig struct {
		Defaults struct {
			Links []json.RawMessage `json:"links"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels []gridPanel `json:"panels"`
}

// placedPanel is a panel where the picture draws it, in grid units.
type placedPanel struct {
	title, typ string
	links      int  // panel links and data links
	inRow      bool // held by a collapsed row
	x, y, w, h int
}

// placePanels returns the panels of d in drawing order (top to bottom, left
// to right) at their grid positions. A collapsed row keeps its panels in the
// JSON; they are drawn below the row, as if it were expanded, and the panels
// after the row move down to make room, as Grafana moves them.
func placePanels(d gridDashboard) []placedPanel {
	top := slices.Clone(d.Panels)
	slices.SortStableFunc(top, func(a, b gridPanel) int {
		return cmp.Or(cmp.Compare(a.GridPos.Y, b.GridPos.Y), cmp.Compare(a.GridPos.X, b.GridPos.X))
	})
	var l []placedPanel
	shift := 0
	for _, p := range top {
		pp := place(p, p.GridPos.Y+shift)
		l = append(l, pp)
		if len(p.Panels) == 0 {
			continue
		}
		inner := slices.Clone(p.Panels)
		slices.SortStableFunc(inner, func(a, b gridPanel) int {
			return cmp.Or(cmp.Compare(a.GridPos.Y, b.GridPos.Y), cmp.Compare(a.GridPos.X, b.GridPos.X))
		})
		first, last := inner[0].GridPos.Y, inner[0].GridPos.Y
		for _, c := range inner {
			last = max(last, c.GridPos.Y+c.GridPos.H)
		}
		for _, c := range inner {
			cp := place(c, pp.y+pp.h+c.GridPos.Y-first)
			cp.inRow = true
			l = append(l, cp)
		}
		shift += last - first
	}
	return l
}

// place returns p drawn with its top at grid row y.
func place(p gridPanel, y int) placedPanel {
	return placedPanel{
		title: p.Title, typ: p.Type,
		links: len(p.Links) + len(p.FieldConfig.Defaults.Links),
		x:     p.GridPos.X, y: y, w: p.GridPos.W, h: p.GridPos.H,
	}
}

// panelStyle is the fill and border colour of a kind of panel.
type panelStyle struct{ label, fill, stroke string }

var (
	statStyle   = panelStyle{"stat", "#dbeafe", "#3b82f6"}
	tableStyle  = panelStyle{"table", "#dcfce7", "#22c55e"}
	seriesStyle = panelStyle{"time series / bar chart", "#fef3c7", "#f59e0b"}
	otherStyle  = panelStyle{"other", "#f3f4f6", "#9ca3af"}
	rowStyle    = panelStyle{"row", "#e5e7eb", "#6b7280"}
	legend      = []panelStyle{statStyle, tableStyle, seriesStyle, otherStyle, rowStyle}
)

func styleOf(typ string) panelStyle {
	switch typ {
	case "stat":
		return statStyle
	case "table":
		return tableStyle
	case "timeseries", "barchart", "graph":
		return seriesStyle
	case "row":
		return rowStyle
	}
	return otherStyle
}

// LayoutSVG draws the layout of a Grafana dashboard (its JSON model) as a
// self-contained SVG: the title and template variables of the dashboard,
// then every panel as a rectangle at its grid position, coloured by type,
// with its title and type, and a legend. The same JSON gives the same bytes.
//
// Each panel is a <g class="panel"> holding a <title> with the panel's full
// title, one <rect> and its <text> lines; docs/img holds the pictures of
// dashboards/grafana (go run ./internal/tools/dashlayout).
func LayoutSVG(dashboardJSON []byte) ([]byte, error) {
	var d gridDashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	panels := placePanels(d)
	cols, rows := gridColumns, 0
	for _, p := range panels {
		if p.typ != "row" && (p.w <= 0 || p.h <= 0) {
			return nil, fmt.Errorf("panel %q: gridPos has no size (w=%d, h=%d)", p.title, p.w, p.h)
		}
		cols, rows = max(cols, p.x+p.w), max(rows, p.y+max(p.h, 1))
	}
	width := 2*margin + cols*colWidth
	gridTop := margin + headerH
	height := gridTop + rows*rowHeight + legendH + margin

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, "<title>Layout of the Grafana dashboard %s</title>\n", escape(d.Title))
	fmt.Fprintf(&b, `<rect class="background" x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)

	// Header: the dashboard's title, then its template variables.
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="18" font-weight="bold" fill="#111827">%s</text>`+"\n",
		margin, margin+18, escape(d.Title))
	vars := "no template variables"
	if len(d.Templating.List) > 0 {
		var names []string
		for _, v := range d.Templating.List {
			names = append(names, "$"+v.Name)
		}
		vars = "variables: " + strings.Join(names, ", ")
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#4b5563">%s</text>`+"\n",
		margin, margin+40, escape(vars))

	for _, p := range panels {
		writePanel(&b, p, gridTop)
	}

	// Legend, below the grid.
	x, y := margin, gridTop+rows*rowHeight+20
	for _, s := range legend {
		fmt.Fprintf(&b, `<rect class="legend" x="%d" y="%d" width="14" height="14" fill="%s" stroke="%s"/>`+"\n",
			x, y-11, s.fill, s.stroke)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#374151">%s</text>`+"\n", x+20, y, escape(s.label))
		x += 20 + utf8.RuneCountInString(s.label)*6 + 20 // about 6 px a character, then a gap
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

// writePanel writes panel p as a <g class="panel"> in a grid whose top is at
// gridTop px. A row is a thin band across the whole grid.
func writePanel(b *bytes.Buffer, p placedPanel, gridTop int) {
	s := styleOf(p.typ)
	x, w, h := p.x, p.w, p.h
	if p.typ == "row" {
		x, w, h = 0, gridColumns, max(h, 1)
	}
	rx := margin + x*colWidth + panelGap/2
	ry := gridTop + p.y*rowHeight + panelGap/2
	rw, rh := w*colWidth-panelGap, h*rowHeight-panelGap
	dash := ""
	if p.inRow {
		dash = ` stroke-dasharray="4 2"`
	}

	b.WriteString(`<g class="panel">` + "\n")
	fmt.Fprintf(b, "<title>%s</title>\n", escape(p.title))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="%s" stroke="%s"%s/>`+"\n",
		rx, ry, rw, rh, s.fill, s.stroke, dash)
	if p.typ == "row" {
		// One line: the title in bold, centred vertically in the band.
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" font-weight="bold" fill="#111827">%s</text>`+"\n",
			rx+textPad, ry+rh/2+4, escape(fit(p.title, rw-2*textPad)))
	} else {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" fill="#111827">%s</text>`+"\n",
			rx+textPad, ry+18, escape(fit(p.title, rw-2*textPad)))
		kind := p.typ
		switch {
		case p.links == 1:
			kind += " · 1 link"
		case p.links > 1:
			kind += fmt.Sprintf(" · %d links", p.links)
		}
		if p.inRow {
			kind += " · in a collapsed row"
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#4b5563">%s</text>`+"\n",
			rx+textPad, ry+34, escape(fit(kind, (rw-2*textPad)*12/10)))
	}
	b.WriteString("</g>\n")
}

// fit returns s cut to fit px at font-size 12 (charWidth px a character),
// ending in "…" when cut.
func fit(s string, px int) string {
	n := max(px/charWidth, 1)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:n-1]), " ") + "…"
}

// escape returns s with the XML special characters (& < > " ') escaped.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // writes to a strings.Builder: no error
	return b.String()
}
