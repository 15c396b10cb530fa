package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dtmfd/dtmfd/actors"
)

// The targets dtmfd is held to on a 2-core machine.
const (
	targetIngressShare = 0.70
	targetVsPool       = 1.0
	targetVsTutorial   = 3.0
	targetP99Decision  = 2 * time.Millisecond
	targetResident     = 1536.0 // bytes per open call
	targetHeapReturn   = 1.10   // settled heap over start heap
)

// row is one line of the table: a measure, one cell per design column,
// the target and whether it was met.
type row struct {
	measure string
	cells   [3]string // actor, tutorial, pool
	target  string
	verdict string
}

var columns = []string{
	"measure", "dtmfd (actors)", "(a) tutorial", "(b) mutex+pool", "target", "result",
}

// print writes the header lines and the table, as Markdown.
func (b *bench) print(w io.Writer) {
	h := b.host
	fmt.Fprintf(w, "dtmfbench %s: %d CPUs (%s), %s, GOMAXPROCS %d, %s, "+
		"load average %s at start, %s at end\n\n",
		h.date, h.cpus, h.model, h.goVersion, goMaxProcs(), gcLine(h.gc), h.loadStart, h.loadEnd)

	rows := b.rows()
	table := [][]string{columns, nil}
	for _, r := range rows {
		line := append([]string{r.measure}, r.cells[:]...)
		table = append(table, append(line, r.target, r.verdict))
	}
	writeMarkdown(w, table)
}

// gcLine says how the collector ran, and where that came from.
func gcLine(gc actors.GCSettings) string {
	from := "dtmfd's default"
	if gc.PercentFromEnv {
		from = "from the environment"
	}
	limit := "no memory limit"
	if gc.MemoryLimit != math.MaxInt64 {
		limit = "memory limit " + mib(uint64(gc.MemoryLimit))
	}
	return fmt.Sprintf("GOGC %d (%s), %s", gc.Percent, from, limit)
}

func (b *bench) rows() []row {
	var rows []row
	rows = append(rows, b.ingressRows()...)
	rows = append(rows, b.e2eRows()...)
	rows = append(rows, b.latencyRows()...)
	rows = append(rows, b.memoryRows()...)
	return rows
}

func (b *bench) ingressRows() []row {
	if len(b.ceiling) == 0 || len(b.ingress) == 0 {
		return nil
	}
	ceiling, ceilingCPU := fastest(b.ceiling)
	ingress, ingressCPU := medians(b.ingress)
	share := ingress / ceiling
	return []row{
		{
			measure: fmt.Sprintf("ceiling: bare client, %s frames, best of %d (frames/s)",
				commas(float64(b.c.ceilingFrames)), len(b.ceiling)),
			cells: [3]string{
				fmt.Sprintf("%s (%s CPU/frame)", commas(ceiling), us(ceilingCPU)), "", "",
			},
		},
		{
			measure: fmt.Sprintf("ingress: stream client + engine, %s keys, median of %d (keys/s)",
				commas(float64(b.c.ingressKeys)), len(b.ingress)),
			cells: [3]string{fmt.Sprintf("%s = %.0f%% of ceiling (%s CPU/key)",
				commas(ingress), 100*share, us(ingressCPU)), "", ""},
			target: fmt.Sprintf(">= %.0f%% of ceiling", 100*targetIngressShare),
			verdict: verdict(share >= targetIngressShare,
				fmt.Sprintf("%+.0f pts", 100*(share-targetIngressShare))),
		},
	}
}

func (b *bench) e2eRows() []row {
	var rows []row
	sizes := slices.Sorted(maps.Keys(b.e2e))
	for _, calls := range sizes {
		runs := b.e2e[calls]
		r := row{measure: fmt.Sprintf("end to end: %s calls%s, median of %d (calls/s)",
			commas(float64(calls)), b.delayNote(), b.repsFor(calls))}
		rates := map[string]float64{}
		for i, name := range []string{"actor", "tutorial", "pool"} {
			if len(runs[name]) == 0 {
				continue
			}
			rate, cpu := medians(runs[name])
			rates[name] = rate
			r.cells[i] = fmt.Sprintf("%s (%s CPU/call)", commas(rate), us(cpu))
		}
		rows = append(rows, r)

		actor, okA := rates["actor"]
		tut, okT := rates["tutorial"]
		pool, okP := rates["pool"]
		if okA && okT && okP {
			judged := calls == slices.Min(sizes)
			rows = append(rows, b.ratioRow(calls, judged, actor/tut, actor/pool))
		}
	}
	return rows
}

// delayNote names the platform delay the emulator was told to add.
func (b *bench) delayNote() string {
	if b.c.writeDelay <= 0 {
		return ""
	}
	return fmt.Sprintf(", writes answered after %v", b.c.writeDelay)
}

// repsFor is how many runs the end-to-end figure for calls is the median
// of.
func (b *bench) repsFor(calls int) int {
	if calls == slices.Min(b.c.e2eCalls) {
		return b.c.reps
	}
	return 1
}

func (b *bench) ratioRow(calls int, judged bool, vsTut, vsPool float64) row {
	r := row{
		measure: fmt.Sprintf("end to end: %s calls, actors vs each design", commas(float64(calls))),
		cells:   [3]string{"", fmt.Sprintf("%.2fx", vsTut), fmt.Sprintf("%.2fx", vsPool)},
	}
	if !judged {
		return r
	}
	r.target = fmt.Sprintf(">= %.0fx (a), >= %.0fx (b)", targetVsTutorial, targetVsPool)
	met := vsTut >= targetVsTutorial && vsPool >= targetVsPool
	r.verdict = verdict(met, fmt.Sprintf("(a) %+.0f%%, (b) %+.0f%%",
		100*(vsTut/targetVsTutorial-1), 100*(vsPool/targetVsPool-1)))
	return r
}

func (b *bench) latencyRows() []row {
	l := b.latency
	if l == nil {
		return nil
	}
	at := fmt.Sprintf(" at %s keys/s%s", commas(l.rate), b.delayNote())
	if l.runs > 1 {
		at += fmt.Sprintf(", run with the median p99 of %d", l.runs)
	}
	p99 := l.toDecision.p99
	return []row{
		{
			measure: "digit to decision p50 / p99 / p99.9" + at,
			cells:   [3]string{trio(l.toDecision), "", ""},
			target:  "p99 < " + ms(targetP99Decision),
			verdict: verdict(p99 < targetP99Decision,
				fmt.Sprintf("%+.0f%%", 100*(float64(p99)/float64(targetP99Decision)-1))),
		},
		{
			measure: "decision to accepted write p50 / p99 / p99.9" + at,
			cells:   [3]string{trio(l.toWrite), "", ""},
		},
	}
}

func (b *bench) memoryRows() []row {
	if len(b.memory) == 0 {
		return nil
	}
	n := commas(float64(b.c.memoryCalls))
	heap := row{measure: fmt.Sprintf("heap per open call, %s calls mid-menu", n)}
	rss := row{measure: fmt.Sprintf("resident per open call, %s calls mid-menu", n)}
	ended := row{measure: "heap right after the last write / at start"}
	settled := row{measure: fmt.Sprintf(
		"heap once ended calls are forgotten (%v after) / at start", memorySettle)}
	for i, name := range []string{"actor", "tutorial", "pool"} {
		m, ok := b.memory[name]
		if !ok {
			continue
		}
		h, r := m.perCall()
		heap.cells[i] = bytesPer(h)
		rss.cells[i] = bytesPer(r)
		ended.cells[i] = heapRatio(m.Ended.Heap, m.Start.Heap)
		settled.cells[i] = heapRatio(m.Settled.Heap, m.Start.Heap)
	}

	if m, ok := b.memory["actor"]; ok {
		_, r := m.perCall()
		rss.target = fmt.Sprintf("<= %.1f KiB", targetResident/1024)
		rss.verdict = verdict(r <= targetResident, fmt.Sprintf("%+.0f%%", 100*(r/targetResident-1)))
		ratio := float64(m.Settled.Heap) / float64(m.Start.Heap)
		settled.target = fmt.Sprintf("<= %.2f", targetHeapReturn)
		settled.verdict = verdict(ratio <= targetHeapReturn,
			fmt.Sprintf("%+.0f%% of start", 100*(ratio-1)))
	}
	return []row{heap, rss, ended, settled}
}

func verdict(met bool, by string) string {
	if met {
		return "met (" + by + ")"
	}
	return "MISSED (" + by + ")"
}

func trio(p percentiles) string {
	return fmt.Sprintf("%s / %s / %s", ms(p.p50), ms(p.p99), ms(p.p999))
}

func heapRatio(now, start uint64) string {
	return fmt.Sprintf("%.2f (%s / %s)", float64(now)/float64(start), mib(now), mib(start))
}

// writeMarkdown writes rows as a Markdown table with padded columns; a
// nil row is the header rule.
func writeMarkdown(w io.Writer, rows [][]string) {
	widths := make([]int, len(columns))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var sb strings.Builder
		sb.WriteString("|")
		for i, width := range widths {
			if r == nil {
				sb.WriteString(strings.Repeat("-", width+2) + "|")
				continue
			}
			c := r[i]
			sb.WriteString(" " + c + strings.Repeat(" ", width-utf8.RuneCountInString(c)) + " |")
		}
		fmt.Fprintln(w, sb.String())
	}
}

// commas formats v rounded to an integer with thousands separators.
func commas(v float64) string {
	s := fmt.Sprintf("%d", int64(math.Round(v)))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func mib(b uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func bytesPer(b float64) string {
	return fmt.Sprintf("%s B (%.2f KiB)", commas(b), b/1024)
}
