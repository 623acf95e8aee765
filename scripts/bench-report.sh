#!/usr/bin/env bash
# Turns one run of scripts/bench.sh into the benchmark report:
#
#   scripts/bench-report.sh bench/results/STAMP [BUILD]
#
# writes bench/bench.png (gnuplot: throughput and p99 latency against clients, one line
# per participants/group-commit setting), bench/summary.json (the figures the report
# states) and BENCHMARKS.md at the top of the repository. Every figure comes from the
# JSON files of that run; where a point ran more than once the report states the
# median, and every ratio divides two figures measured in the same tpc-bench run.
# Needs python3 and gnuplot (scripts/install-deps.sh --bench installs them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(cd "${1:?usage: bench-report.sh RESULTS_DIR [BUILD]}" && pwd)"
BUILD="${2:-$ROOT/build}"
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)

python3 - "$OUT" "$ROOT" "${BUILD_TYPE:-unknown}" "$BUILD" <<'PY'
import glob, json, os, re, statistics, sys, time

out, root, build_type, build_rel = sys.argv[1], sys.argv[2], sys.argv[3], os.path.relpath(sys.argv[4], sys.argv[2])
runs = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(path)[:-5]
    try:
        runs[name] = json.load(open(path))
    except ValueError:
        print("bench-report: skipping unreadable %s" % path, file=sys.stderr)
if not runs:
    sys.exit("bench-report: no results in %s" % out)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def group(prefix):
    return [j for n, j in sorted(runs.items()) if n.startswith(prefix) and "results" in j]

def fig(j, *path):
    for k in path:
        j = j.get(k) if isinstance(j, dict) else None
    return j

def share(j, name):
    for p in j["cpu"]["processes"]:
        if p["name"] == name:
            return p["us_per_txn"]
    return 0.0

def kv_share(j):
    return sum(p["us_per_txn"] for p in j["cpu"]["processes"] if p["name"].startswith("kv"))

def point(js):
    """Medians over the repetitions of one point."""
    f = lambda *p: med([fig(j, *p) for j in js])
    return {
        "runs": len(js),
        "throughput": f("results", "throughput"),
        "throughput_median_1s": f("results", "throughput_median_1s"),
        "p50_ms": f("results", "latency_us", "p50") / 1e3,
        "p90_ms": f("results", "latency_us", "p90") / 1e3,
        "p99_ms": f("results", "latency_us", "p99") / 1e3,
        "p999_ms": f("results", "latency_us", "p999") / 1e3,
        "max_ms": f("results", "latency_us", "max") / 1e3,
        "cpu_us_per_txn": f("cpu", "us_per_txn"),
        "cpu_coordinator": med([share(j, "coordinator") for j in js]),
        "cpu_kv": med([kv_share(j) for j in js]),
        "cpu_bench": med([share(j, "tpc-bench") for j in js]),
        "aborted": sum(fig(j, "results", "aborted") for j in js),
        "errors": sum(fig(j, "results", "errors") for j in js),
        "other_cores": f("cpu", "other_cores"),
        "fsync_ops_per_s": f("calibration", "fsync", "ops_per_s"),
        "fsync_mean_us": f("calibration", "fsync", "mean_us"),
        "fsync_p50_us": f("calibration", "fsync", "p50_us"),
        "p50_per_fsync_p50": med([fig(j, "results", "latency_us", "p50") / fig(j, "calibration", "fsync", "p50_us")
                                  for j in js if fig(j, "calibration", "fsync", "p50_us")]),
        "rtt_mean_us": f("calibration", "rtt", "mean_us"),
        "tput_per_fsync": f("ratios", "throughput_per_fsync_rate"),
        "p50_per_fsync": f("ratios", "p50_per_fsync_time"),
    }

# ---- the matrix ----
matrix = {}
for n, j in runs.items():
    if not n.startswith("matrix_") or "results" not in j:
        continue
    gc, p, c = n.split("_")[1:4]
    matrix.setdefault((gc[3:], int(p[1:]), int(c[1:])), []).append(j)
points = {k: point(v) for k, v in sorted(matrix.items(), key=lambda kv: (kv[0][0] != "on", kv[0][1], kv[0][2]))}

series = {}
for (gc, p, c), pt in points.items():
    series.setdefault((gc, p), []).append((c, pt))
for (gc, p), rows in series.items():
    with open(os.path.join(out, "series_gc-%s_p%d.dat" % (gc, p)), "w") as f:
        f.write("# clients throughput p99_ms\n")
        for c, pt in sorted(rows):
            f.write("%d %.1f %.3f\n" % (c, pt["throughput"], pt["p99_ms"]))

# ---- headline, 1 client, memory ----
head = group("headline_c256_")
one = group("headline_c1_")
hp = point(head) if head else None
op = point(one) if one else None
mem = {n: runs[n]["memtest"] for n in ("memtest_p0", "memtest_p2") if n in runs and "memtest" in runs[n]}

every_fsync = [fig(j, "calibration", "fsync", "ops_per_s") for j in runs.values()]
every_fsync = [x for x in every_fsync if x]
every_fsync_us = [x for x in (fig(j, "calibration", "fsync", "mean_us") for j in runs.values()) if x]
every_rtt = [x for x in (fig(j, "calibration", "rtt", "mean_us") for j in runs.values()) if x]
any_run = next(iter(runs.values()))
machine = any_run["machine"]
commands = open(os.path.join(out, "commands.txt")).read().strip().splitlines() \
    if os.path.exists(os.path.join(out, "commands.txt")) else []

summary = {"results_dir": os.path.relpath(out, root), "build_type": build_type,
           "machine": machine, "fsync_ops_per_s_median": med(every_fsync),
           "fsync_mean_us_median": med(every_fsync_us), "rtt_mean_us_median": med(every_rtt),
           "headline_256": hp, "one_client": op, "memtest": mem,
           "matrix": [dict(group_commit=k[0], participants=k[1], clients=k[2], **v)
                      for k, v in points.items()]}

# ---- BENCHMARKS.md ----
def num(x, fmt="%.0f"):
    return "—" if x is None else fmt % x

def verdict(ok):
    return "met" if ok else "**not met**"

L = []
w = L.append
w("# tpc benchmarks")
w("")
w("Generated by `make bench` (`scripts/bench.sh`, then `scripts/bench-report.sh %s`) on %s."
  % (os.path.relpath(out, root), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
w("Do not edit by hand: run `make bench` again. Raw JSON of every run: `%s/` (not committed)."
  % os.path.relpath(out, root))
w("")
w("The machine is shared and noisy, so every figure below is a **median** over the runs of")
w("its point, and every ratio divides two figures **measured in the same tpc-bench run**:")
w("each run first measures this machine's 4 KiB write+fdatasync rate in its own data folder")
w("(`--calibrate`), then the load. Compare ratios across machines, not raw rates.")
w("")
# ---- the comparison with the baseline (scripts/bench.sh, issue 13) ----
cmp = {}
for n, j in runs.items():
    if n.startswith("cmp_") and "results" in j:
        side, c = n.split("_")[1:3]
        cmp.setdefault((side, int(c[1:])), []).append(j)
base_rev = open(os.path.join(out, "baseline.txt")).read().split() \
    if os.path.exists(os.path.join(out, "baseline.txt")) else None

def cmp_point(js):
    pt = point(js)
    f = lambda *p: med([fig(j, *p) for j in js])
    pt["syncs_per_txn"] = f("counters", "syncs_per_txn")
    pt["coord_syncs_per_txn"] = f("counters", "coordinator_syncs_per_txn")
    pt["kv_syncs_per_txn"] = f("counters", "kv_syncs_per_txn")
    pt["syscalls_per_txn"] = f("counters", "syscalls_per_txn")
    pt["fdatasync_per_txn"] = f("counters", "fdatasync_per_txn")
    return pt

cmp_points = {k: cmp_point(v) for k, v in sorted(cmp.items(), key=lambda kv: (kv[0][1], kv[0][0] != "new"))}
summary["compare"] = {"baseline": base_rev, "points": [dict(build=k[0], clients=k[1], **v)
                                                      for k, v in cmp_points.items()]}
# A comparison-only run (BENCH_MATRIX=0) keeps the matrix figures of the last full run.
sum_path = os.path.join(root, "bench", "summary.json")
matrix_run = any(not n.startswith("cmp_") for n in runs)
if not matrix_run and os.path.exists(sum_path):
    kept_summary = json.load(open(sum_path))
    kept_summary["compare"] = summary["compare"]
    summary = kept_summary
json.dump(summary, open(sum_path, "w"), indent=1)
for side in ("new", "base"):
    rows = sorted((c, pt) for (sd, c), pt in cmp_points.items() if sd == side)
    if rows:
        with open(os.path.join(out, "compare_%s.dat" % side), "w") as f:
            f.write("# clients throughput p50_ms p99_ms cpu_us syscalls syncs\n")
            for c, pt in rows:
                f.write("%d %.1f %.3f %.3f %.1f %s %s\n" % (
                    c, pt["throughput"], pt["p50_ms"], pt["p99_ms"], pt["cpu_us_per_txn"] or 0,
                    num(pt["syscalls_per_txn"], "%.1f").replace("—", "NaN"),
                    num(pt["syncs_per_txn"], "%.2f").replace("—", "NaN")))

if cmp_points:
    any_cmp = next(iter(cmp.values()))[0]
    w("<!-- latency:begin -->")
    w("## Latency near the disk: this code beside the baseline")
    w("")
    w("Made by `%smake bench` on %s (raw runs: `%s/`, not committed)."
      % ("" if any(not n.startswith("cmp_") for n in runs) else "BENCH_MATRIX=0 ",
         time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.path.relpath(out, root)))
    w("")
    w("`tpc-bench --spawn --calibrate --syscalls --participants 2 --clients C --duration %gs`, for"
      % any_cmp["params"]["duration_s"])
    w("*this code* (`%s`) and for the baseline %s (built from a git worktree with the same"
      % (build_rel, "`%s` (%s)" % (base_rev[0], base_rev[1][:12]) if base_rev else "(none)"))
    w("flags, its servers run by the same tpc-bench with `--bin-dir`), interleaved point by point")
    w("in one sitting. Each row: %s. *p50 ÷ fsync p50* divides by the median 4 KiB"
      % ("one run" if all(v["runs"] == 1 for v in cmp_points.values()) else "the median of its runs"))
    w("write+fdatasync of the same run. *CPU* is every process's (servers and tpc-bench) per")
    w("committed transaction. *Device syncs* are the servers' own counters (the coordinator's")
    w("`tpc_log_syncs_total`, each tpc-kv's `--stats-file`: every fdatasync of an LMDB commit or")
    w("mdb_env_sync, and every meta page written with O_DSYNC); a build without them shows —.")
    w("*fdatasync* and *syscalls* are counted by the kernel (`perf stat`) over the servers' processes.")
    w("")
    w("| build | clients | txn/s | p50 ms | p50 ÷ fsync p50 | p99 ms | CPU µs/txn | device syncs/txn | fdatasync/txn | syscalls/txn | fsync ops/s (same run) | fsync p50 µs | other cores |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (side, c), pt in cmp_points.items():
        w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            "this code" if side == "new" else "baseline", c, num(pt["throughput"]),
            num(pt["p50_ms"], "%.2f"), num(pt["p50_per_fsync_p50"], "%.1f"), num(pt["p99_ms"], "%.2f"),
            num(pt["cpu_us_per_txn"], "%.0f"), num(pt["syncs_per_txn"], "%.2f"),
            num(pt["fdatasync_per_txn"], "%.2f"), num(pt["syscalls_per_txn"], "%.0f"),
            num(pt["fsync_ops_per_s"]), num(pt["fsync_p50_us"], "%.0f"), num(pt["other_cores"], "%.2f")))
    w("")
    w("![throughput, p50 latency and system calls against clients, this code and the baseline](bench/latency.png)")
    w("")
    w("The issue's targets, for this code (each a ratio to the same run's calibration):")
    w("")
    w("| target | measured | verdict |")
    w("| --- | --- | --- |")
    one, ten, top = cmp_points.get(("new", 1)), cmp_points.get(("new", 10)), cmp_points.get(("new", 256))
    if one:
        w("| 1 client: p50 ≤ 5 × fsync p50 | %s × (p50 %s ms, fsync p50 %s µs) | %s |"
          % (num(one["p50_per_fsync_p50"], "%.1f"), num(one["p50_ms"], "%.2f"),
             num(one["fsync_p50_us"], "%.0f"), verdict((one["p50_per_fsync_p50"] or 99) <= 5)))
        w("| 1 client: CPU ≤ 300 µs per transaction | %s µs | %s |"
          % (num(one["cpu_us_per_txn"], "%.0f"), verdict((one["cpu_us_per_txn"] or 1e9) <= 300)))
    if ten:
        w("| 10 clients: throughput ≥ 0.8 × fsync rate | %s × (%s txn/s, fsync %s ops/s) | %s |"
          % (num(ten["tput_per_fsync"], "%.2f"), num(ten["throughput"]), num(ten["fsync_ops_per_s"]),
             verdict((ten["tput_per_fsync"] or 0) >= 0.8)))
    if top:
        w("| 256 clients: CPU ≤ 35 µs per transaction | %s µs | %s |"
          % (num(top["cpu_us_per_txn"], "%.1f"), verdict((top["cpu_us_per_txn"] or 1e9) <= 35)))
        w("| 256 clients: throughput ≥ 30,000/s (fsync rate ≥ 5,000/s) | %s txn/s (fsync %s ops/s) | %s |"
          % (num(top["throughput"]), num(top["fsync_ops_per_s"]),
             "fsync rate below 5,000/s: not applicable" if (top["fsync_ops_per_s"] or 0) < 5000
             else verdict(top["throughput"] >= 30000)))
        w("| 256 clients: p99 ≤ 15 ms | %s ms | %s |" % (num(top["p99_ms"], "%.2f"), verdict(top["p99_ms"] <= 15)))
    w("")
    w("<!-- latency:end -->")
    w("")

if hp:
    w("## Headline: the issue's targets")
    w("")
if hp:
    cmd = "tpc-bench --spawn --calibrate --participants 2 --clients 256 --duration %gs" \
        % head[0]["params"]["duration_s"]
    plural = lambda n: "%d run%s" % (n, "" if n == 1 else "s")
    w("`%s`: %s; the same with `--clients 1` for the latency row: %s."
      % (cmd, plural(hp["runs"]), plural(op["runs"] if op else 0)))
    w("")
    w("| target | measured (median) | same-run reference | verdict |")
    w("| --- | --- | --- | --- |")
    w("| throughput ≥ 25,000 txn/s | %s txn/s | | %s |" % ("{:,.0f}".format(hp["throughput"]), verdict(hp["throughput"] >= 25000)))
    w("| throughput ≥ 5 × fsync rate | %s × | fsync %s ops/s | %s |"
      % (num(hp["tput_per_fsync"], "%.2f"), num(hp["fsync_ops_per_s"]), verdict((hp["tput_per_fsync"] or 0) >= 5)))
    if op:
        w("| 1 client: p50 ≤ 4 × fsync time | p50 %s ms = %s × mean fsync (%s × median fsync) | fsync mean %s µs, median %s µs | %s |"
          % (num(op["p50_ms"], "%.3f"), num(op["p50_per_fsync"], "%.2f"), num(op["p50_per_fsync_p50"], "%.2f"),
             num(op["fsync_mean_us"], "%.0f"), num(op["fsync_p50_us"], "%.0f"),
             verdict((op["p50_per_fsync"] or 99) <= 4)))
    w("| p99 at 256 clients ≤ 20 ms | %s ms | p50 %s ms | %s |"
      % (num(hp["p99_ms"], "%.2f"), num(hp["p50_ms"], "%.2f"), verdict(hp["p99_ms"] <= 20)))
    w("| CPU per transaction ≤ 60 µs (all processes) | %s µs | coordinator %s, tpc-kv (all) %s, tpc-bench %s | %s |"
      % (num(hp["cpu_us_per_txn"], "%.1f"), num(hp["cpu_coordinator"], "%.1f"), num(hp["cpu_kv"], "%.1f"),
         num(hp["cpu_bench"], "%.1f"), verdict(hp["cpu_us_per_txn"] <= 60)))
    if "memtest_p0" in mem:
        m = mem["memtest_p0"]
        w("| coordinator memory ≤ 2 KiB per open transaction | %s bytes | %d open, VmRSS %d → %d KiB | %s |"
          % (num(m["bytes_per_txn"]), m["open_txns"], m["rss_before_kib"], m["rss_after_kib"],
             verdict(m["bytes_per_txn"] <= 2048)))
    w("")
    w("Errors in these runs: %d (256 clients), %d (1 client); aborts: %d, %d. Other work used a"
      % (hp["errors"], op["errors"] if op else 0, hp["aborted"], op["aborted"] if op else 0))
    w("median %s of the %d cores during the 256-client windows (see *Machine*)."
      % (num(hp["other_cores"], "%.2f"), machine["cores"]))
    w("")
    w("Each 256-client run (throughput, ÷ its own fsync rate, p99, CPU per transaction):")
    w("")
    for j in head:
        w("- %s txn/s, %.2f × (fsync %.0f ops/s), p99 %.1f ms, %.1f µs CPU, other work %.2f cores"
          % ("{:,.0f}".format(j["results"]["throughput"]), j["ratios"]["throughput_per_fsync_rate"],
             j["calibration"]["fsync"]["ops_per_s"], j["results"]["latency_us"]["p99"] / 1e3,
             j["cpu"]["us_per_txn"], j["cpu"].get("other_cores", 0)))
    w("")

w("## Machine")
w("")
w("| | |")
w("| --- | --- |")
w("| CPU | %s |" % machine["cpu_model"])
w("| cores | %d |" % machine["cores"])
w("| kernel | %s |" % machine["kernel"])
w("| filesystem of the run folders | %s |" % machine["filesystem"])
w("| build | CMake %s |" % build_type)
if every_fsync:
    w("| write+fdatasync, 4 KiB (median of %d runs, min–max) | %s ops/s, %s–%s; mean %s µs |"
      % (len(every_fsync), num(med(every_fsync)), num(min(every_fsync)), num(max(every_fsync)),
         num(med(every_fsync_us), "%.0f")))
if every_rtt:
    w("| loopback TCP round trip (median of %d runs) | %s µs |" % (len(every_rtt), num(med(every_rtt), "%.1f")))
loads = [fig(j, "machine", "loadavg_1m") for j in runs.values()]
loads = [x for x in loads if x is not None and x >= 0]
others = [x for x in (fig(j, "cpu", "other_cores") for j in runs.values()) if x is not None]
if loads:
    w("| load average when runs started (median, max) | %.2f, %.2f |" % (med(loads), max(loads)))
if others:
    w("| cores used by other work during the windows (median, max) | %.2f, %.2f of %d |"
      % (med(others), max(others), machine["cores"]))
w("")

if points:
    w("## Throughput and p99 latency against clients")
    w("")
    w("![throughput and p99 latency against clients](bench/bench.png)")
    w("")
    w("Group commit *on* is the servers' default; *off* is `--group-commit 1` on the coordinator")
    w("and every tpc-kv (one forced write per record). Each point: %s."
      % ("one run" if all(v["runs"] == 1 for v in points.values()) else "the median of its runs"))
    w("")
if points:
    w("## Every point")
    w("")
    w("*Other cores* is CPU the rest of the machine used during the window (other people's work on")
    w("a shared machine): a point measured while it was high is a point measured on less machine.")
    w("")
    w("| group commit | participants | clients | txn/s | ÷ fsync rate | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | CPU µs/txn | coord / kv / bench µs | aborts | errors | fsync ops/s | other cores |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for (gc, p, c), pt in points.items():
        w("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %d | %d | %s | %s |" % (
            gc, p, c, num(pt["throughput"]), num(pt["tput_per_fsync"], "%.2f"),
            num(pt["p50_ms"], "%.2f"), num(pt["p90_ms"], "%.2f"), num(pt["p99_ms"], "%.2f"),
            num(pt["p999_ms"], "%.2f"), num(pt["max_ms"], "%.2f"), num(pt["cpu_us_per_txn"], "%.1f"),
            num(pt["cpu_coordinator"], "%.1f"), num(pt["cpu_kv"], "%.1f"), num(pt["cpu_bench"], "%.1f"),
            pt["aborted"], pt["errors"], num(pt["fsync_ops_per_s"]), num(pt["other_cores"], "%.2f")))
    w("")
if mem:
    w("## Coordinator memory per open transaction")
    w("")
    w("| open transactions | participants joined each | VmRSS before → after | bytes per open transaction | failed |")
    w("| ---: | ---: | --- | ---: | ---: |")
    for n, m in sorted(mem.items()):
        w("| %d | %d | %d → %d KiB | %s | %d |" % (m["open_txns"], m["participants"], m["rss_before_kib"],
                                               m["rss_after_kib"], num(m["bytes_per_txn"]), m["failed"]))
    w("")
w("## How these figures were made")
w("")
w("`make bench` builds `build/` and runs `scripts/bench.sh build`; this report comes from")
w("`scripts/bench.sh %s` (a CMake %s build), which ran, in this order:" % (build_rel, build_type))
w("")
w("```")
for c in commands:
    w(c)
w("```")
w("")
w("Each run starts its own `tpc-coordinator` and tpc-kv services on free 127.0.0.1 ports in")
w("a fresh folder under `--dir`, measures for the duration after the warmup (transactions")
w("completing inside the window count), and stops and removes them. Latency is from Begin")
w("sent to the commit outcome received, from a log-linear histogram (≤ 0.8 % bucket width).")
w("CPU per transaction is the user+system time of the coordinator and tpc-kv processes")
w("(`/proc/PID/stat`) and of tpc-bench itself (`getrusage`) over the window, divided by the")
w("committed transactions. The memory test opens N transactions on one connection and")
w("divides the coordinator's VmRSS growth by N.")
# Sections other scripts write between <!-- NAME:begin --> and <!-- NAME:end -->
# (bench-tls.sh, bench-etcd.sh, the PostgreSQL one) are kept. A comparison-only run
# (BENCH_MATRIX=0) replaces just its own section and keeps the rest of the file.
bm_path = os.path.join(root, "BENCHMARKS.md")
bm_old = open(bm_path).read() if os.path.exists(bm_path) else ""
marked = re.compile(r"<!-- ([\w-]+):begin -->\n.*?<!-- \1:end -->\n", re.S)
bm_new = "\n".join(L) + "\n"
if any(not n.startswith("cmp_") for n in runs) or not bm_old:
    have = {m.group(1) for m in marked.finditer(bm_new)}
    kept = [m.group(0) for m in marked.finditer(bm_old) if m.group(1) not in have]
    bm_text = bm_new + "".join("\n" + k for k in kept)
else:
    sec = next((m.group(0) for m in marked.finditer(bm_new) if m.group(1) == "latency"), "")
    cur = next((m for m in marked.finditer(bm_old) if m.group(1) == "latency"), None)
    if cur:
        bm_text = bm_old[:cur.start()] + sec + bm_old[cur.end():]
    else:
        at = bm_old.find("\n## ")
        at = len(bm_old) if at < 0 else at + 1
        bm_text = bm_old[:at] + sec + "\n" + bm_old[at:]
open(bm_path, "w").write(bm_text)
print("bench-report: wrote BENCHMARKS.md, bench/summary.json")
PY

# ---- the plots ----
# png_terminal W H: gnuplot's PNG terminal line (cairo when this gnuplot has it).
png_terminal() {
    if gnuplot -e "set terminal pngcairo" >/dev/null 2>&1; then
        echo "set terminal pngcairo size $1,$2 font ',11'"
    else
        echo "set terminal png size $1,$2"
    fi
}
# bench/latency.png: the comparison with the baseline (when it ran).
if [ -e "$OUT/compare_new.dat" ] && command -v gnuplot >/dev/null 2>&1; then
    {
        png_terminal 1500 480
        echo "set output '$ROOT/bench/latency.png'"
        echo "set multiplot layout 1,3 title 'tpc-bench --participants 2: this code beside the baseline'"
        echo "set logscale x 2; set xlabel 'clients'; set grid; set key top left"
        for col in "2:committed transactions / s" "3:p50 latency (ms)" "6:system calls per transaction (servers)"; do
            n=${col%%:*}; echo "set ylabel '${col#*:}'; set yrange [0:*]"
            line="plot '$OUT/compare_new.dat' using 1:$n with linespoints lw 2 pt 7 lc rgb '#0072b2' title 'this code'"
            [ -e "$OUT/compare_base.dat" ] &&
                line="$line, '$OUT/compare_base.dat' using 1:$n with linespoints lw 2 dt 2 pt 5 lc rgb '#d55e00' title 'baseline'"
            echo "$line"
        done
        echo "unset multiplot"
    } >"$OUT/latency.gp"
    gnuplot "$OUT/latency.gp" && cp "$ROOT/bench/latency.png" "$OUT/latency.png" &&
        echo "bench-report: wrote bench/latency.png"
fi
ls "$OUT"/series_*.dat >/dev/null 2>&1 || exit 0 # no matrix in this run (BENCH_MATRIX=0)
GP="$OUT/plot.gp"
{
    png_terminal 1400 560
    echo "set output '$ROOT/bench/bench.png'"
    echo "set multiplot layout 1,2 title 'tpc-bench: closed-loop clients, begin + one put per participant + commit'"
    echo "set logscale x 2; set xlabel 'clients'; set grid; set key top left"
    echo "set ylabel 'committed transactions / s'; set yrange [0:*]"
    plot="plot"
    for f in "$OUT"/series_gc-on_p*.dat "$OUT"/series_gc-off_p*.dat; do
        [ -e "$f" ] || continue
        t=$(basename "$f" .dat | sed 's/series_gc-\(.*\)_p\(.*\)/P=\2, group commit \1/')
        dt=1; case "$f" in *gc-off*) dt=2 ;; esac
        p=${f##*_p}; p=${p%.dat}
        color=$(echo "#0072b2 #e69f00 #009e73 #cc79a7 #56b4e9 #d55e00" | cut -d' ' -f$(( (p - 1) % 6 + 1 )))
        plot="$plot '$f' using 1:2 with linespoints dt $dt lw 2 pt $((p + 4)) lc rgb '$color' title '$t',"
    done
    echo "${plot%,}"
    echo "set logscale y; set ylabel 'p99 latency (ms)'; set yrange [*:*]; set key top left"
    echo "${plot%,}" | sed 's/using 1:2/using 1:3/g'
    echo "unset multiplot"
} >"$GP"
if command -v gnuplot >/dev/null 2>&1; then
    gnuplot "$GP" && cp "$ROOT/bench/bench.png" "$OUT/bench.png"
    echo "bench-report: wrote bench/bench.png"
else
    echo "bench-report: gnuplot not found (scripts/install-deps.sh --bench); no plot" >&2
fi
