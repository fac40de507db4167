package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

var allMetrics = []string{"publish_confirmed_1", "publish_confirmed_16", "consume_full_stack", "command_path", "command_path_inprocess",
	"latency_p99_ms", "allocs_per_message", "peer_watermill_publish", "peer_watermill_consume", "peer_python_publish", "rss_mib"}

// pair is one metric's two runs in a round.
type pair struct {
	name               string
	base, proj         func(ctx context.Context) (float64, error)
	prepBase, prepProj func(ctx context.Context) error // untimed, before each run
	// joint, when set, measures both sides in one run instead (latency).
	joint func(ctx context.Context, projectFirst bool) (base, proj float64, err error)
}

// runAll declares the topology, warms up, runs the interleaved rounds and
// the memory run.
func runAll(ctx context.Context, e *env, out io.Writer) (*report, error) {
	want := func(name string) bool {
		only := splitList(e.o.only)
		return len(only) == 0 || contains(only, name)
	}
	rep := &report{}
	rc, err := e.dialRaw()
	if err != nil {
		return nil, err
	}
	defer rc.close()

	var pairs []pair
	var closers []func()
	type namedStack struct {
		name string
		st   *stack
	}
	var stacks []namedStack
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		closers = nil
	}
	defer closeAll()
	const prompt, response = "agent.thread.prompt", "agent.thread.response"
	t := e.topo()
	// declare declares each {exchange, queue, binding key}.
	declare := func(decls ...[3]string) error {
		for _, d := range decls {
			if err := e.declare(d[0], d[1], d[2]); err != nil {
				return err
			}
		}
		return nil
	}
	// openStackAt opens the project stack of metric name on exchange xb, on
	// the broker at url; it is closed with the rest, and its counters are
	// reported under name (unless name is empty).
	openStackAt := func(name, url, xb string, recordPublished bool) (*stack, error) {
		st, err := e.openStackAt(ctx, url, xb, recordPublished)
		if err != nil {
			return nil, err
		}
		closers = append(closers, st.close)
		if name != "" {
			stacks = append(stacks, namedStack{name, st})
		}
		return st, nil
	}
	openStack := func(name, xb string, recordPublished bool) (*stack, error) {
		return openStackAt(name, e.rabbitURL, xb, recordPublished)
	}
	// taps are an ack tap for each side of a consuming metric, and a raw
	// connection pair through the baseline's.
	taps := func() (raw, proj *ackTap, rcTap *rawConns, err error) {
		if raw, err = newAckTap(e.rabbitURL); err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, raw.close)
		if proj, err = newAckTap(e.rabbitURL); err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, proj.close)
		if rcTap, err = dialRawAt(raw.url(e.rabbitURL)); err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, rcTap.close)
		return raw, proj, rcTap, nil
	}
	// purged empties q after fn, a publishing run into it.
	purged := func(q string, fn func(ctx context.Context) (float64, error)) func(ctx context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			v, err := fn(ctx)
			if perr := e.purge(q); err == nil {
				err = perr
			}
			return v, err
		}
	}
	n := e.o.messages

	// Publishing: each side publishes to its own exchange, bound to a
	// durable queue that nobody consumes and that is purged after each run.
	if want("publish_confirmed_1") || want("publish_confirmed_16") {
		xr, qr, xb, qb := t.pubRaw, t.pubRawSink, t.pubBB, t.pubBBSink
		if err := declare([3]string{xr, qr, "#"}, [3]string{xb, qb, "#"}); err != nil {
			return nil, err
		}
		conn, pub, err := e.newProjectPublisher(ctx, xb)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = pub.Close(); _ = conn.Close() })
		st, err := openStack("", xb, false)
		if err != nil {
			return nil, err
		}
		if e.o.warmup > 0 {
			if _, err := purged(qr, func(ctx context.Context) (float64, error) { return e.rawPublish1(ctx, rc, xr, e.o.warmup) })(ctx); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
			if _, err := purged(qb, func(ctx context.Context) (float64, error) { return e.projectPublish1(ctx, pub, e.o.warmup) })(ctx); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
		if want("publish_confirmed_1") {
			rep.metrics = append(rep.metrics, &metric{name: "publish_confirmed_1", unit: "msg/s", target: "≥ 0.85", line: true})
			pairs = append(pairs, pair{name: "publish_confirmed_1",
				base: purged(qr, func(ctx context.Context) (float64, error) { return e.rawPublish1(ctx, rc, xr, e.o.duration) }),
				proj: purged(qb, func(ctx context.Context) (float64, error) { return e.projectPublish1(ctx, pub, e.o.duration) }),
			})
		}
		if want("publish_confirmed_16") {
			rep.metrics = append(rep.metrics, &metric{name: "publish_confirmed_16", unit: "msg/s", target: "≥ 0.85", line: true})
			pairs = append(pairs, pair{name: "publish_confirmed_16",
				base: purged(qr, func(ctx context.Context) (float64, error) { return e.rawPublish16(ctx, rc, xr, e.o.duration) }),
				proj: purged(qb, func(ctx context.Context) (float64, error) { return e.projectPublish16(ctx, st.b, e.o.duration) }),
			})
		}
	}

	// Consuming: each side consumes a queue prefilled (untimed) with the
	// same number of distinct prompt envelopes, timed by its ack tap.
	if want("consume_full_stack") {
		xr, qr, xb, qb := t.consRaw, t.consRawQ, t.consBB, t.consBBQ
		if err := declare([3]string{xr, qr, prompt}, [3]string{xb, qb, prompt}); err != nil {
			return nil, err
		}
		rawTap, projTap, rcTap, err := taps()
		if err != nil {
			return nil, err
		}
		st, err := openStackAt("consume_full_stack", projTap.url(e.rabbitURL), xb, false)
		if err != nil {
			return nil, err
		}
		rep.metrics = append(rep.metrics, &metric{name: "consume_full_stack", unit: "msg/s", target: "≥ 0.70", line: true})
		pairs = append(pairs, pair{name: "consume_full_stack",
			prepBase: func(ctx context.Context) error { return e.prefill(ctx, rc.pub, xr, qr, n) },
			prepProj: func(ctx context.Context) error { return e.prefill(ctx, rc.pub, xb, qb, n) },
			base:     func(ctx context.Context) (float64, error) { return e.rawConsume(ctx, rcTap.sub, rawTap, qr, n) },
			proj:     func(ctx context.Context) (float64, error) { return e.projectConsume(ctx, st, n, projTap, false) },
		})
	}

	// The command path: commands prefilled as above; responses go to a
	// durable queue bound to agent.thread.response, purged after each run.
	// The project is cmd/command-processor in a child process (processor.go).
	if want("command_path") || want("command_path_inprocess") {
		xr, qr, sr := t.cmdRaw, t.cmdRawQ, t.cmdRawSink
		if err := declare([3]string{xr, qr, prompt}, [3]string{xr, sr, response}); err != nil {
			return nil, err
		}
		rawTap, projTap, rcTap, err := taps()
		if err != nil {
			return nil, err
		}
		base := purged(sr, func(ctx context.Context) (float64, error) { return e.rawCommand(ctx, rcTap, rawTap, qr, xr, n) })
		prepBase := func(ctx context.Context) error { return e.prefill(ctx, rc.pub, xr, qr, n) }
		if want("command_path") {
			xp, qp, sp := t.procBB, t.procBBQ, t.procBBSink
			if err := declare([3]string{xp, qp, prompt}, [3]string{xp, sp, response}); err != nil {
				return nil, err
			}
			e.trackService(xp, qp)
			proc, err := e.buildProcessor(ctx)
			if err != nil {
				return nil, err
			}
			closers = append(closers, func() {
				cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := proc.close(cctx); err != nil {
					fmt.Fprintln(out, "command_path: cannot delete the processor's Redis keys:", err)
				}
			})
			rep.metrics = append(rep.metrics, &metric{name: "command_path", unit: "msg/s", target: "≥ 0.60", line: true})
			pairs = append(pairs, pair{name: "command_path", base: base, prepBase: prepBase,
				prepProj: func(ctx context.Context) error { return proc.prefill(ctx, rc.pub, xp, qp, n) },
				proj:     purged(sp, func(ctx context.Context) (float64, error) { return proc.run(ctx, projTap, xp, qp, n) }),
			})
		}
		// The diagnostic: the same processor and middleware, built in this
		// process as cmd/command-processor builds them before issue 19,
		// without the Recoverer, metrics, tracing and timeout.
		if want("command_path_inprocess") {
			xb, qb, sb := t.cmdBB, t.cmdBBQ, t.cmdBBSink
			if err := declare([3]string{xb, qb, prompt}, [3]string{xb, sb, response}); err != nil {
				return nil, err
			}
			inTap, err := newAckTap(e.rabbitURL)
			if err != nil {
				return nil, err
			}
			closers = append(closers, inTap.close)
			st, err := openStackAt("command_path_inprocess", inTap.url(e.rabbitURL), xb, true)
			if err != nil {
				return nil, err
			}
			rep.metrics = append(rep.metrics, &metric{name: "command_path_inprocess", unit: "msg/s", target: "(info)"})
			pairs = append(pairs, pair{name: "command_path_inprocess", base: base, prepBase: prepBase,
				prepProj: func(ctx context.Context) error { return e.prefill(ctx, rc.pub, xb, qb, n) },
				proj:     purged(sb, func(ctx context.Context) (float64, error) { return e.projectCommand(ctx, st, n, inTap) }),
			})
		}
	}

	// Latency at a steady rate, publisher and consumer running together.
	if want("latency_p99_ms") {
		xr, qr, xb, qb := t.latRaw, t.latRawQ, t.latBB, t.latBBQ
		if err := declare([3]string{xr, qr, prompt}, [3]string{xb, qb, prompt}); err != nil {
			return nil, err
		}
		st, err := openStack("latency_p99_ms", xb, false)
		if err != nil {
			return nil, err
		}
		conn, pub, err := e.newProjectPublisher(ctx, xb)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = pub.Close(); _ = conn.Close() })
		rig, err := e.newLatencyRig(ctx, rc, xr, qr, st, pub)
		if err != nil {
			return nil, err
		}
		closers = append(closers, rig.close)
		rate, d := e.o.latencyRate, e.o.latencyDuration
		if e.o.warmup > 0 {
			if _, _, err := rig.round(ctx, rate, e.o.warmup, false); err != nil {
				return nil, fmt.Errorf("latency warm-up: %w", err)
			}
		}
		p99 := &metric{name: "latency_p99_ms", unit: "ms", target: "≤ 1.5", line: true}
		p50 := &metric{name: "latency_p50_ms", unit: "ms", target: "(info)"}
		rep.metrics = append(rep.metrics, p99, p50)
		pairs = append(pairs, pair{name: "latency_p99_ms",
			joint: func(ctx context.Context, projectFirst bool) (float64, float64, error) {
				raw, proj, err := rig.round(ctx, rate, d, projectFirst)
				if err != nil {
					return 0, 0, err
				}
				if len(raw) == 0 || len(proj) == 0 {
					return 0, 0, fmt.Errorf("no latency samples (baseline %d, project %d)", len(raw), len(proj))
				}
				e.describeLatency(out, "baseline", raw)
				e.describeLatency(out, "project", proj)
				p50.add(ms(percentile(raw, 50)), ms(percentile(proj, 50)))
				return ms(percentile(raw, 99)), ms(percentile(proj, 99)), nil
			},
		})
	}

	// Allocations per consumed message, in this process (allocs.go).
	if want("allocs_per_message") {
		xr, qr, xb, qb := t.allocRaw, t.allocRawQ, t.allocBB, t.allocBBQ
		if err := declare([3]string{xr, qr, prompt}, [3]string{xb, qb, prompt}); err != nil {
			return nil, err
		}
		st, err := openStack("allocs_per_message", xb, false)
		if err != nil {
			return nil, err
		}
		objects := &metric{name: "allocs_objects_per_message", unit: "objects/msg", target: "(info)", line: true}
		rep.metrics = append(rep.metrics, &metric{name: "allocs_per_message", unit: "KiB/msg", target: "≤ 2.0", line: true}, objects)
		pairs = append(pairs, pair{name: "allocs_per_message",
			joint: func(ctx context.Context, projectFirst bool) (float64, float64, error) {
				raw, proj, err := e.allocRound(ctx, rc, st, xr, qr, xb, qb, projectFirst)
				if err != nil {
					return 0, 0, err
				}
				objects.add(raw.objects, proj.objects)
				return raw.kib, proj.kib, nil
			},
		})
	}

	// The peers (peers.go): the project first, so that the ratio says how
	// many times faster it is.
	if want("peer_watermill_publish") || want("peer_python_publish") {
		xb, sb := t.pubBB, t.pubBBSink
		if err := declare([3]string{xb, sb, "#"}, [3]string{t.wmPub, t.wmPubSink, "#"}, [3]string{t.pyPub, t.pyPubSink, "#"}); err != nil {
			return nil, err
		}
		conn, pub, err := e.newProjectPublisher(ctx, xb)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = pub.Close(); _ = conn.Close() })
		proj := purged(sb, func(ctx context.Context) (float64, error) { return e.projectPublish1(ctx, pub, e.o.duration) })
		if want("peer_watermill_publish") {
			rep.metrics = append(rep.metrics, &metric{name: "peer_watermill_publish", unit: "msg/s", target: "≥ 2.0", line: true})
			pairs = append(pairs, pair{name: "peer_watermill_publish", proj: proj,
				base: purged(t.wmPubSink, func(ctx context.Context) (float64, error) { return e.watermillPublish(ctx, t.wmPub, e.o.duration) }),
			})
		}
		if want("peer_python_publish") {
			if why := pythonPeer(); why != "" {
				rep.skipped = append(rep.skipped, "peer_python_publish skipped: "+why)
			} else {
				rep.metrics = append(rep.metrics, &metric{name: "peer_python_publish", unit: "msg/s", target: "(info)", line: true})
				pairs = append(pairs, pair{name: "peer_python_publish", proj: proj,
					base: purged(t.pyPubSink, func(ctx context.Context) (float64, error) { return e.pythonPublish(ctx, t.pyPub, e.o.duration) }),
				})
			}
		}
	}
	if want("peer_watermill_consume") {
		xw, qw, xb, qb := t.wmCons, t.wmConsQ, t.bareBB, t.bareBBQ
		if err := declare([3]string{xw, qw, prompt}, [3]string{xb, qb, prompt}); err != nil {
			return nil, err
		}
		wmTap, projTap, _, err := taps()
		if err != nil {
			return nil, err
		}
		st, err := openStackAt("", projTap.url(e.rabbitURL), xb, false)
		if err != nil {
			return nil, err
		}
		rep.metrics = append(rep.metrics, &metric{name: "peer_watermill_consume", unit: "msg/s", target: "≥ 1.0", line: true})
		pairs = append(pairs, pair{name: "peer_watermill_consume",
			prepBase: func(ctx context.Context) error { return e.prefill(ctx, rc.pub, xw, qw, n) },
			prepProj: func(ctx context.Context) error { return e.prefill(ctx, rc.pub, xb, qb, n) },
			base:     func(ctx context.Context) (float64, error) { return e.watermillConsume(ctx, wmTap, qw, n) },
			proj:     func(ctx context.Context) (float64, error) { return e.projectConsume(ctx, st, n, projTap, true) },
		})
	}

	procs := findCPUProcs()
	timed := func(name, what string, prep func(ctx context.Context) error, fn func(ctx context.Context) (float64, error)) (float64, error) {
		if prep != nil {
			if err := prep(ctx); err != nil {
				return 0, err
			}
		}
		s := procs.snap()
		v, err := fn(ctx)
		if e.o.verbose && err == nil {
			var msgs float64
			if rep.metric(name).unit == "msg/s" {
				msgs = v * time.Since(s.at).Seconds()
			}
			fmt.Fprintf(out, "  %-30s %10.2f  cpu: %s\n", name+" "+what, v, procs.since(s, msgs))
		}
		return v, err
	}
	for r := 1; r <= e.o.rounds; r++ {
		projectFirst := r%2 == 0
		for _, p := range pairs {
			if p.joint != nil {
				s := procs.snap()
				base, proj, err := p.joint(ctx, projectFirst)
				if err != nil {
					return nil, fmt.Errorf("%s round %d: %w", p.name, r, err)
				}
				if e.o.verbose {
					fmt.Fprintf(out, "  %-30s cpu: %s\n", p.name+" (both)", procs.since(s, 0))
				}
				m := rep.metric(p.name)
				m.add(base, proj)
				fmt.Fprintln(out, roundLine(p.name, r, projectFirst, base, proj, m.unit))
				continue
			}
			first, second := p.base, p.proj
			fprep, sprep := p.prepBase, p.prepProj
			fname, sname := "baseline", "project"
			if projectFirst {
				first, second = p.proj, p.base
				fprep, sprep = sprep, fprep
				fname, sname = sname, fname
			}
			a, err := timed(p.name, fname, fprep, first)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", p.name, r, err)
			}
			b, err := timed(p.name, sname, sprep, second)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", p.name, r, err)
			}
			base, proj := a, b
			if projectFirst {
				base, proj = b, a
			}
			m := rep.metric(p.name)
			m.add(base, proj)
			fmt.Fprintln(out, roundLine(p.name, r, projectFirst, base, proj, m.unit))
		}
	}
	closeAll()
	for _, ns := range stacks {
		if want(ns.name) {
			rep.info = append(rep.info, ns.st.summary(ns.name))
		}
	}
	if m := rep.metric("publish_confirmed_16"); m != nil {
		if one := rep.metric("publish_confirmed_1"); one != nil {
			rep.info = append(rep.info, fmt.Sprintf("publish_confirmed_16 against the raw pipelined baseline (256 in flight, one goroutine): project %s / raw %s = %.3f",
				format(median(m.proj), "msg/s"), format(median(one.base), "msg/s"), median(m.proj)/median(one.base)))
		}
	}

	// The project's side of peer_watermill_publish is publish_confirmed_1's
	// path, so the raw pipelined publisher bounds it: the raw rate over the
	// Watermill peer's is the highest ratio the project could show here.
	if m := rep.metric("peer_watermill_publish"); m != nil {
		if one := rep.metric("publish_confirmed_1"); one != nil && median(m.base) > 0 {
			rep.info = append(rep.info, fmt.Sprintf("peer_watermill_publish ceiling: raw pipelined %s / watermill-amqp %s = %.3f (the ratio if the project published as fast as raw)",
				format(median(one.base), "msg/s"), format(median(m.base), "msg/s"), median(one.base)/median(m.base)))
		}
	}

	if want("rss_mib") {
		start := time.Now()
		rs, err := e.runRSS(ctx)
		if err != nil {
			return nil, fmt.Errorf("rss: %w", err)
		}
		rep.rss = rs
		fmt.Fprintf(out, "rss run done in %s\n", time.Since(start).Round(time.Second))
	}
	return rep, nil
}

// describeLatency prints the spread of one latency run with -v.
func (e *env) describeLatency(out io.Writer, who string, v []time.Duration) {
	if !e.o.verbose {
		return
	}
	fmt.Fprintf(out, "  latency %-8s n=%d p50=%.2fms p90=%.2fms p99=%.2fms p99.9=%.2fms max=%.2fms\n", who, len(v),
		ms(percentile(v, 50)), ms(percentile(v, 90)), ms(percentile(v, 99)), ms(percentile(v, 99.9)), ms(percentile(v, 100)))
}
