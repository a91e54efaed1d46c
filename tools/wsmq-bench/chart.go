package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writeCharts draws latency percentiles per scenario and delivered msgs/s
// per connection count, side by side, into base+".png" and base+".svg".
func writeCharts(r *Report, base string) ([]string, error) {
	lat, err := latencyPlot(r)
	if err != nil {
		return nil, err
	}
	thr, err := throughputPlot(r)
	if err != nil {
		return nil, err
	}
	width, height := 12*vg.Inch, 4.5*vg.Inch
	var files []string
	for _, ext := range []string{".png", ".svg"} {
		var c draw.Canvas
		var save func(string) error
		switch ext {
		case ".png":
			img := vgimg.New(width, height)
			c = draw.New(img)
			save = func(name string) error { return saveTo(name, vgimg.PngCanvas{Canvas: img}) }
		case ".svg":
			svg := vgsvg.New(width, height)
			c = draw.New(svg)
			save = func(name string) error { return saveTo(name, svg) }
		}
		tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 4, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2}
		plots := [][]*plot.Plot{{lat, thr}}
		canvases := plot.Align(plots, tiles, c)
		lat.Draw(canvases[0][0])
		thr.Draw(canvases[0][1])
		name := base + ext
		if err := save(name); err != nil {
			return files, err
		}
		files = append(files, filepath.Clean(name))
	}
	return files, nil
}

func latencyPlot(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("publish → receive latency (%s run)", r.Mode)
	p.Y.Label.Text = "ms"
	var names []string
	var p50, p90, p99 plotter.Values
	for _, res := range r.Results {
		if res.Latency == nil {
			continue
		}
		names = append(names, shortName(res))
		p50 = append(p50, res.Latency.P50)
		p90 = append(p90, res.Latency.P90)
		p99 = append(p99, res.Latency.P99)
	}
	if len(names) == 0 {
		p.Title.Text += ": no latency figures"
		return p, nil
	}
	w := vg.Points(14)
	colors := []color.Color{color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}, color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff}, color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff}}
	for i, s := range []struct {
		name string
		v    plotter.Values
	}{{"p50", p50}, {"p90", p90}, {"p99", p99}} {
		bars, err := plotter.NewBarChart(s.v, w)
		if err != nil {
			return nil, err
		}
		bars.Color = colors[i]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(i-1) * w
		p.Add(bars)
		p.Legend.Add(s.name, bars)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 9
	p.X.Tick.Label.XAlign = draw.XRight
	top := 10.0
	for _, v := range p99 {
		top = max(top, v)
	}
	p.Y.Min, p.Y.Max = 0, top*1.45 // room for the legend above the bars
	target := plotter.NewFunction(func(float64) float64 { return 10 })
	target.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	target.Color = color.Gray{Y: 0x60}
	p.Add(target)
	p.Legend.Add("p99 target (fanout 1k)", target)
	return p, nil
}

// shortName labels a bar: "fanout 1k", "fanout 10k @20k/s", "ack 1k".
func shortName(r Result) string {
	n := fmt.Sprint(r.Clients)
	if r.Clients%1000 == 0 {
		n = fmt.Sprintf("%dk", r.Clients/1000)
	}
	s := r.Scenario + " " + n
	if r.RatePerSec > 0 {
		s += fmt.Sprintf(" @%gk/s", r.RatePerSec/1000)
	}
	return s
}

func throughputPlot(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "delivered msgs/s vs connections"
	p.X.Label.Text = "websocket clients"
	p.Y.Label.Text = "msgs/s"
	p.Y.Min = 0
	series := map[string]plotter.XYs{}
	for _, res := range r.Results {
		if res.MsgsPerSec == 0 || res.Clients == 0 || res.Error != "" {
			continue
		}
		key := res.Scenario
		if res.RatePerSec > 0 {
			key += fmt.Sprintf(" paced %gk/s", res.RatePerSec/1000)
		}
		series[key] = append(series[key], plotter.XY{X: float64(res.Clients), Y: res.MsgsPerSec})
	}
	shapes := map[string]draw.GlyphDrawer{"fanout": draw.CircleGlyph{}, "ack": draw.TriangleGlyph{}, "burst": draw.SquareGlyph{}}
	colors := map[string]color.Color{"fanout": color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}, "ack": color.RGBA{R: 0x55, G: 0xa8, B: 0x68, A: 0xff}, "burst": color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff}}
	maxX := 0.0
	for _, name := range sortedKeys(series) {
		xy := series[name]
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		base, _, paced := strings.Cut(name, " ")
		if c, ok := colors[base]; ok {
			line.Color, points.Color = c, c
		}
		if s, ok := shapes[base]; ok {
			points.Shape = s
		}
		if paced {
			line.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			points.Shape = draw.RingGlyph{}
		}
		points.Radius = vg.Points(4)
		p.Add(line, points)
		p.Legend.Add(name, line, points)
		for _, v := range xy {
			maxX = max(maxX, v.X)
		}
	}
	target := plotter.NewFunction(func(float64) float64 { return 20000 })
	target.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	target.Color = color.Gray{Y: 0x60}
	p.Add(target)
	p.Legend.Add("fanout 1k target", target)
	p.Legend.Top = true
	p.Legend.Left = true
	p.X.Min = 0
	p.X.Max = max(maxX*1.1, 1100)
	p.Y.Max = max(p.Y.Max*1.3, 26000)
	return p, nil
}
