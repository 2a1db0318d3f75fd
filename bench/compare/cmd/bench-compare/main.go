// Command bench-compare measures our nsqd against NSQ 1.3.0's nsqd
// (baseline-nsqd) side by side: each scenario runs on both in interleaved
// rounds (ours, baseline, ours, baseline, ...), each run on a fresh process
// with a fresh data directory, loaded by the same raw V2 protocol code. It
// checks that every message arrives exactly once and prints a Markdown table
// of the medians and their ratio.
//
//	bench-compare -ours bin/nsqd -baseline bin/baseline-nsqd [-rounds 3] [-scenarios pub,latency] [-quick]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		ours     = flag.String("ours", "bin/nsqd", "our nsqd binary")
		baseline = flag.String("baseline", "bin/baseline-nsqd", "NSQ 1.3.0 nsqd binary (bench/compare/cmd/baseline-nsqd)")
		rounds   = flag.Int("rounds", 3, "runs of each scenario on each nsqd, interleaved (at least 1; 3 or more to trust)")
		which    = flag.String("scenarios", "all", "comma-separated scenarios: names or numbers ("+scenarioNames()+")")
		duration = flag.Duration("duration", 5*time.Second, "publishing time of each throughput run")
		quick    = flag.Bool("quick", false, "small sizes and 1s runs, for a smoke test")
		topics   = flag.Int("topics", 0, "topics (with a channel each) of the scale scenario (default 2000, -quick 500; NSQ 1.3 needs minutes for 10000)")
		idle     = flag.Int("idle-conns", 0, "idle consumer connections of the scale scenario (default 10000, -quick 500)")
		repl     = flag.Bool("replicated", false, "run the replicated suite instead (issue 15): -ours as a replica set of 3 and --durable, beside JetStream R3 (-nats); -scenarios mpub,pub1,failover")
		natsBin  = flag.String("nats", "bin/nats-server", "nats-server v2.15.3 binary (bench/compare/cmd/nats-server), for -replicated")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: bench-compare -ours BIN -baseline BIN [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *rounds < 1 {
		flag.Usage()
		os.Exit(2)
	}

	cfg := &config{
		duration:    *duration,
		conns:       runtime.GOMAXPROCS(0),
		batch:       200,
		size:        200,
		outstanding: 4,
		rdy:         2500,
		maxMsgs:     4_000_000,
		fanoutMsgs:  600_000,
		fanout:      8,
		memMsgs:     1_000_000,
		latRate:     20_000,
		latRdy:      100,
		topics:      2_000, // NSQ 1.3 rewrites and fsyncs nsqd.dat per create: 10k took > 5 min here
		idleConns:   10_000,
		stall:       20 * time.Second,
	}
	if *quick {
		if !flagSet("duration") {
			cfg.duration = time.Second
		}
		cfg.maxMsgs, cfg.fanoutMsgs, cfg.memMsgs = 200_000, 50_000, 100_000
		cfg.topics, cfg.idleConns = 500, 500
	}
	if *topics > 0 {
		cfg.topics = *topics
	}
	if *idle > 0 {
		cfg.idleConns = *idle
	}
	if *repl {
		for _, bin := range []string{*ours, *natsBin} {
			if _, err := os.Stat(bin); err != nil {
				fmt.Fprintln(os.Stderr, "bench-compare:", err)
				os.Exit(2)
			}
		}
		ctx := trapSignals()
		defer killLive()
		runReplicated(ctx, replBins{nsqd: *ours, nats: *natsBin}, cfg, *rounds, *which)
		return
	}
	selected, err := selectScenarios(*which)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(2)
	}
	for _, bin := range []string{*ours, *baseline} {
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintln(os.Stderr, "bench-compare:", err)
			os.Exit(2)
		}
	}
	if err := raiseFileLimit(cfg.idleConns + 1000); err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(1)
	}

	ctx := trapSignals()
	defer killLive()

	fmt.Fprintf(os.Stderr, "bench-compare: %d round(s), %v per throughput run, %d-byte messages, %d publisher/consumer conns (GOMAXPROCS)\n",
		*rounds, cfg.duration, cfg.size, cfg.conns)
	load0 := loadAvg()
	bins := map[string]string{"ours": *ours, "baseline": *baseline}
	results := map[string]map[string][]runResult{}
	began := time.Now()
	for _, sc := range selected {
		results[sc.name] = map[string][]runResult{}
		for r := 1; r <= *rounds && ctx.Err() == nil; r++ {
			for _, impl := range []string{"ours", "baseline"} {
				if ctx.Err() != nil {
					break
				}
				res := runOnce(ctx, sc, impl, bins[impl], cfg)
				results[sc.name][impl] = append(results[sc.name][impl], res)
				fmt.Fprintf(os.Stderr, "  %-18s round %d %-8s %s\n", sc.name, r, impl, res.describe(sc))
			}
		}
	}
	if ctx.Err() != nil {
		os.Exit(130)
	}
	fmt.Fprintf(os.Stderr, "bench-compare: done in %v\n\n", time.Since(began).Round(time.Second))
	fmt.Printf("Load average (1, 5, 15 min) at start %s, at end %s; %d CPUs.\n", load0, loadAvg(), runtime.NumCPU())
	printTable(os.Stdout, cfg, selected, results, *rounds)
}

// trapSignals makes SIGINT/SIGTERM kill the server processes, which ends
// the runs, and cancel the returned context; a second signal exits at once.
func trapSignals() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "bench-compare: interrupted, stopping")
		cancel()
		killLive()
		<-sigs
		killLive()
		os.Exit(130)
	}()
	return ctx
}

// loadAvg is the 1, 5 and 15 minute load averages, to judge the noise.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func scenarioNames() string {
	var names []string
	for _, sc := range scenarios {
		names = append(names, sc.name)
	}
	return strings.Join(names, ", ") + "; 1-8, pub, sub, disk, mem, scale, all"
}

func selectScenarios(list string) ([]scenario, error) {
	want := map[string]bool{}
	for w := range strings.SplitSeq(list, ",") {
		if w = strings.TrimSpace(w); w != "" {
			want[w] = true
		}
	}
	var out []scenario
	for _, sc := range scenarios {
		if want["all"] || want[sc.name] || slices.ContainsFunc(sc.aliases, func(a string) bool { return want[a] }) {
			out = append(out, sc)
		}
	}
	for w := range want {
		known := w == "all"
		for _, sc := range scenarios {
			known = known || w == sc.name || slices.Contains(sc.aliases, w)
		}
		if !known {
			return nil, fmt.Errorf("unknown scenario %q (want %s)", w, scenarioNames())
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no scenario selected")
	}
	return out, nil
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit. Using
// syscall.Setrlimit (not just the runtime's own raise) makes the nsqd
// children inherit it; both need ~idleConns descriptors.
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < uint64(need) {
		return fmt.Errorf("RLIMIT_NOFILE hard limit %d is below the %d the idle-connection scenario needs", lim.Max, need)
	}
	return nil
}

// runResult is one run of one scenario on one nsqd.
type runResult struct {
	metrics map[string]float64
	err     error
	elapsed time.Duration
}

func (r runResult) describe(sc scenario) string {
	if r.err != nil {
		kind := "FAILED"
		if isInvalid(r.err) {
			kind = "INVALID"
		}
		return fmt.Sprintf("%s: %v", kind, r.err)
	}
	var parts []string
	for _, m := range sc.metrics {
		parts = append(parts, m.key+"="+m.format(r.metrics[m.key]))
	}
	// The load generator's own CPU per message, to see it is not the limit.
	for _, k := range slices.Sorted(maps.Keys(r.metrics)) {
		if strings.HasPrefix(k, "gen_") {
			parts = append(parts, k+"="+fmtInt(r.metrics[k]))
		}
	}
	return strings.Join(parts, " ") + fmt.Sprintf("  (%v)", r.elapsed.Round(100*time.Millisecond))
}

func runOnce(ctx context.Context, sc scenario, impl, bin string, cfg *config) runResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	s, err := startServer(ctx, impl, bin, sc.memQueue(cfg))
	if err != nil {
		return runResult{err: err}
	}
	defer s.stop()
	m, err := sc.run(ctx, s, cfg)
	if err == nil {
		err = s.alive()
	} else if aerr := s.alive(); aerr != nil && !isInvalid(err) {
		err = fmt.Errorf("%v; %v", err, aerr)
	}
	return runResult{metrics: m, err: err, elapsed: time.Since(start)}
}

// printTable writes the medians as a Markdown table.
func printTable(w io.Writer, cfg *config, selected []scenario, results map[string]map[string][]runResult, rounds int) {
	labels := strings.NewReplacer(
		"{mem}", fmtCount(cfg.memMsgs),
		"{topics}", fmtCount(int64(cfg.topics)),
		"{conns}", fmtCount(int64(cfg.idleConns)),
		"{rate}", fmtCount(int64(cfg.latRate)),
	)
	fmt.Fprintf(w, "Medians of %d interleaved round(s). ratio = ours / baseline: for throughput (msgs/s) higher is better;\n", rounds)
	fmt.Fprintf(w, "for latency, memory, time and CPU per message lower is better. spread = (max-min)/median over the rounds.\n\n")
	fmt.Fprintln(w, "| scenario | ours | baseline | ratio | target | met | spread ours / base |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|---|")
	var problems []string
	for _, sc := range selected {
		for _, m := range sc.metrics {
			ov, ospread, oerr := summarize(results[sc.name]["ours"], m.key)
			bv, bspread, berr := summarize(results[sc.name]["baseline"], m.key)
			cell := func(v float64, err string) string {
				if err != "" {
					return err
				}
				return m.format(v)
			}
			ratio, target, met := "-", "", ""
			if m.target > 0 {
				if m.higher {
					target = fmt.Sprintf("≥ %.1f", m.target)
				} else {
					target = fmt.Sprintf("≤ %.1f", m.target)
				}
			}
			if oerr == "" && berr == "" && bv > 0 {
				r := ov / bv
				ratio = fmt.Sprintf("%.2f", r)
				if m.target > 0 {
					met = "no"
					if (m.higher && r >= m.target) || (!m.higher && r <= m.target) {
						met = "yes"
					}
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s / %s |\n",
				labels.Replace(m.label), cell(ov, oerr), cell(bv, berr), ratio, target, met, ospread, bspread)
		}
		for _, impl := range []string{"ours", "baseline"} {
			for i, r := range results[sc.name][impl] {
				if r.err != nil {
					problems = append(problems, fmt.Sprintf("%s, %s, round %d: %s", sc.name, impl, i+1, r.describe(sc)))
				}
			}
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(w, "\nRuns that did not count:")
		for _, p := range problems {
			fmt.Fprintln(w, "- "+p)
		}
	}
}

// summarize returns the median of a metric over the runs, its spread, or
// INVALID/FAILED when any run did not count.
func summarize(rs []runResult, key string) (median float64, spread, errCell string) {
	var vs []float64
	bad, invalid := 0, false
	for _, r := range rs {
		if r.err != nil {
			bad++
			invalid = invalid || isInvalid(r.err)
			continue
		}
		vs = append(vs, r.metrics[key])
	}
	if bad > 0 {
		kind := "FAILED"
		if invalid {
			kind = "INVALID"
		}
		return 0, "-", fmt.Sprintf("%s (%d/%d)", kind, bad, len(rs))
	}
	if len(vs) == 0 {
		return 0, "-", "no runs"
	}
	median = medianOf(vs)
	spread = "-"
	if len(vs) > 1 && median != 0 {
		spread = fmt.Sprintf("%.0f%%", 100*(slices.Max(vs)-slices.Min(vs))/math.Abs(median))
	}
	return median, spread, ""
}

func medianOf(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// fmtCount writes 1000000 as 1M, 20000 as 20k.
func fmtCount(n int64) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk", n/1e3)
	}
	return fmt.Sprint(n)
}

func fmtMicros(v float64) string  { return fmt.Sprintf("%.0f", v) }
func fmtMiB(v float64) string     { return fmt.Sprintf("%.1f", v/(1<<20)) }
func fmtKiB(v float64) string     { return fmt.Sprintf("%.1f", v/(1<<10)) }
func fmtInt(v float64) string     { return fmt.Sprintf("%.0f", v) }
func fmtSeconds(v float64) string { return fmt.Sprintf("%.2f", v) }
func fmtPercent(v float64) string { return fmt.Sprintf("%.1f", v) }
