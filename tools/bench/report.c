/*
 * report.c - tpc-bench's output: a summary for people on stdout, and one JSON object
 * (--json, --json-file) holding every parameter and figure, for scripts/bench.sh.
 *
 * Derived figures are computed here only, so both outputs agree: CPU per transaction
 * (every accounted process's user+system time over the CPU window, divided by the
 * commit rate over the measured window), each process's share of it, and the ratios
 * to the calibration of the same run.
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define JSON_DEPTH 8

/* ---- derived figures ---- */

static double proc_cpu(const struct bench_proc *p)
{
	double d = p->cpu_b - p->cpu_a;
	return d > 0 ? d : 0;
}

static double total_cpu(const struct bench *b)
{
	double t = 0;
	for (uint32_t i = 0; i < b->nprocs; i++)
		t += proc_cpu(&b->procs[i]);
	return t;
}

/* CPU seconds per second of window, divided by commits per second of window. */
static double us_per_txn(const struct bench *b, double cpu_s)
{
	const struct load_result *r = &b->load;
	if (r->cpu_window_s <= 0 || r->throughput <= 0)
		return 0;
	return cpu_s / r->cpu_window_s / r->throughput * 1e6;
}

double report_cpu_us_per_txn(const struct bench *b)
{
	return us_per_txn(b, total_cpu(b));
}

/* A count over the CPU window, per committed transaction. */
static double per_txn(const struct bench *b, uint64_t n)
{
	const struct load_result *r = &b->load;
	if (r->cpu_window_s <= 0 || r->throughput <= 0)
		return 0;
	return (double)n / r->cpu_window_s / r->throughput;
}

static double lat_us(const struct bench *b, double pct)
{
	return (double)hist_percentile(&b->load.lat, pct) / 1e3;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static uint64_t errors(const struct load_result *r)
{
	return r->err_begin + r->err_put + r->err_commit;
}

/* ---- human ---- */

static void human_params(const struct bench *b)
{
	const struct bench_config *c = &b->cfg;

	printf("tpc-bench: %u client%s on %u thread%s, %u participant%s per transaction, ",
	       c->clients, c->clients == 1 ? "" : "s", c->threads, c->threads == 1 ? "" : "s",
	       c->participants, c->participants == 1 ? "" : "s");
	if (c->group_commit)
		printf("group commit %u%s\n", c->group_commit, c->group_commit == 1 ? " (off)" : "");
	else
		printf("group commit at the servers' default\n");
	printf("  services: coordinator %s", c->coordinator);
	for (uint32_t i = 0; i < c->participants; i++)
		printf(", kv%u %s", i + 1, c->kv[i]);
	printf("%s\n", c->spawn ? " (spawned)" : "");
	if (b->run_dir[0])
		printf("  run folder: %s (%s)\n", b->run_dir, b->machine.fs_type);
	printf("  machine: %s, %ld cores, %s, load average %.2f\n", b->machine.cpu_model,
	       b->machine.cores, b->machine.kernel, b->machine.loadavg_1m);
}

static void human_calibration(const struct calibration *c)
{
	printf("calibration (same run, same folder):\n");
	printf("  write+fdatasync %u B: %.0f ops/s, mean %.1f us (p50 %.1f, p99 %.1f), "
	       "%" PRIu64 " in %.1f s\n", c->fsync_block, c->fsync_ops_per_s, c->fsync_mean_us,
	       c->fsync_p50_us, c->fsync_p99_us, c->fsync_n, c->fsync_secs);
	printf("  loopback TCP round trip: mean %.1f us (p50 %.1f, p99 %.1f), %" PRIu64
	       " round trips\n", c->rtt_mean_us, c->rtt_p50_us, c->rtt_p99_us, c->rtt_n);
}

/* Cores busy with work other than this benchmark's processes during the window. */
static double other_cores(const struct bench *b, double ours)
{
	double w = b->load.cpu_window_s, busy = b->busy_b - b->busy_a;
	if (w <= 0 || busy <= 0)
		return 0;
	return busy - ours > 0 ? (busy - ours) / w : 0;
}

static void human_cpu(const struct bench *b)
{
	double total = total_cpu(b);

	printf("  CPU per transaction (all processes): %.1f us; other work on the machine "
	       "meanwhile: %.2f of %ld cores\n", us_per_txn(b, total), other_cores(b, total),
	       b->machine.cores);
	for (uint32_t i = 0; i < b->nprocs; i++) {
		const struct bench_proc *p = &b->procs[i];
		double cpu = proc_cpu(p);
		printf("    %-12s %5.2f cores  %7.1f us/txn  %3.0f%%\n", p->name,
		       b->load.cpu_window_s > 0 ? cpu / b->load.cpu_window_s : 0,
		       us_per_txn(b, cpu), total > 0 ? 100.0 * cpu / total : 0);
	}
}

static void human_counters(const struct bench *b)
{
	const struct server_counters *sc = &b->counters;

	if (sc->syncs_ok)
		printf("  device syncs per transaction (servers' counters): %.2f (coordinator "
		       "%.2f, tpc-kv %.2f)\n", per_txn(b, sc->coord_syncs + sc->kv_syncs),
		       per_txn(b, sc->coord_syncs), per_txn(b, sc->kv_syncs));
	if (sc->syscalls_ok)
		printf("  system calls per transaction (servers, perf): %.1f; fdatasync %.2f, "
		       "fsync %.2f\n", per_txn(b, sc->syscalls), per_txn(b, sc->fdatasyncs),
		       per_txn(b, sc->fsyncs));
}

static void human_load(const struct bench *b)
{
	const struct load_result *r = &b->load;

	printf("measured %.2f s after %.1f s of warmup%s:\n", r->window_s,
	       (double)b->cfg.warmup_ms / 1e3, r->interrupted ? " (INTERRUPTED)" : "");
	printf("  throughput: %.0f committed/s (median of 1 s samples %.0f)\n", r->throughput,
	       r->throughput_median_1s);
	printf("  committed %" PRIu64 ", aborted %" PRIu64 ", errors %" PRIu64
	       " (begin %" PRIu64 ", put %" PRIu64 ", commit %" PRIu64 ")%s\n",
	       r->committed, r->aborted, errors(r), r->err_begin, r->err_put, r->err_commit,
	       r->unfinished ? ", some never finished" : "");
	printf("  latency of committed transactions (ms): p50 %.3f  p90 %.3f  p99 %.3f  "
	       "p99.9 %.3f  max %.3f  mean %.3f\n", lat_us(b, 50) / 1e3, lat_us(b, 90) / 1e3,
	       lat_us(b, 99) / 1e3, lat_us(b, 99.9) / 1e3, (double)r->lat.max / 1e6,
	       hist_mean(&r->lat) / 1e6);
	human_cpu(b);
	human_counters(b);
	if (b->cal.done)
		printf("  ratios to this run's calibration: throughput / fsync rate = %.2f; "
		       "p50 latency / fsync time = %.2f\n",
		       ratio(r->throughput, b->cal.fsync_ops_per_s),
		       ratio(lat_us(b, 50), b->cal.fsync_mean_us));
}

static void human_memtest(const struct memtest_result *m)
{
	printf("coordinator memory: VmRSS %" PRIu64 " KiB -> %" PRIu64 " KiB with %" PRIu64
	       " open transactions (%u participant%s joined each, %" PRIu64 " failed): "
	       "%.0f bytes per open transaction\n", m->rss_before_kib, m->rss_after_kib,
	       m->open_txns, m->participants, m->participants == 1 ? "" : "s", m->failed,
	       m->bytes_per_txn);
}

void report_human(const struct bench *b)
{
	human_params(b);
	if (b->cal.done)
		human_calibration(&b->cal);
	if (b->load.done)
		human_load(b);
	if (b->mem.done)
		human_memtest(&b->mem);
	fflush(stdout);
}

/* ---- JSON ---- */

struct jw {
	FILE *f;
	int depth;
	int count[JSON_DEPTH];
};

static void jw_key(struct jw *w, const char *key)
{
	if (w->count[w->depth]++)
		fputc(',', w->f);
	if (key)
		fprintf(w->f, "\"%s\":", key);
}

static void jw_escaped(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void jw_open(struct jw *w, const char *key, char bracket)
{
	jw_key(w, key);
	fputc(bracket, w->f);
	w->count[++w->depth] = 0;
}

static void jw_close(struct jw *w, char bracket)
{
	fputc(bracket, w->f);
	w->depth--;
}

static void jw_str(struct jw *w, const char *key, const char *v)
{
	jw_key(w, key);
	jw_escaped(w->f, v ? v : "");
}

static void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	fprintf(w->f, "%" PRIu64, v);
}

static void jw_num(struct jw *w, const char *key, double v)
{
	jw_key(w, key);
	if (isfinite(v))
		fprintf(w->f, "%.3f", v);
	else
		fputs("null", w->f);
}

static void json_params(struct jw *w, const struct bench *b)
{
	const struct bench_config *c = &b->cfg;

	jw_open(w, "params", '{');
	jw_str(w, "mode", c->memtest ? "memtest" : "load");
	jw_u64(w, "spawn", (uint64_t)c->spawn);
	jw_u64(w, "clients", c->clients);
	jw_u64(w, "participants", c->participants);
	jw_u64(w, "threads", c->threads);
	jw_u64(w, "group_commit", c->group_commit);
	jw_u64(w, "txns", c->txns);
	jw_num(w, "duration_s", c->txns ? 0 : (double)c->duration_ms / 1e3);
	jw_num(w, "warmup_s", (double)c->warmup_ms / 1e3);
	jw_u64(w, "value_size", c->value_size);
	jw_u64(w, "key_space", c->key_space);
	jw_u64(w, "txn_keys", (uint64_t)c->txn_keys);
	jw_str(w, "coordinator", c->coordinator);
	jw_open(w, "kv", '[');
	for (uint32_t i = 0; i < c->participants && i < c->nkv; i++)
		jw_str(w, NULL, c->kv[i]);
	jw_close(w, ']');
	jw_str(w, "run_dir", b->run_dir);
	jw_str(w, "command", b->argv_line);
	jw_close(w, '}');
}

static void json_machine(struct jw *w, const struct machine_info *m)
{
	jw_open(w, "machine", '{');
	jw_str(w, "cpu_model", m->cpu_model);
	jw_u64(w, "cores", (uint64_t)m->cores);
	jw_str(w, "kernel", m->kernel);
	jw_str(w, "filesystem", m->fs_type);
	jw_num(w, "loadavg_1m", m->loadavg_1m);
	jw_close(w, '}');
}

static void json_calibration(struct jw *w, const struct calibration *c)
{
	jw_open(w, "calibration", '{');
	jw_open(w, "fsync", '{');
	jw_u64(w, "block_bytes", c->fsync_block);
	jw_num(w, "seconds", c->fsync_secs);
	jw_u64(w, "ops", c->fsync_n);
	jw_num(w, "ops_per_s", c->fsync_ops_per_s);
	jw_num(w, "mean_us", c->fsync_mean_us);
	jw_num(w, "p50_us", c->fsync_p50_us);
	jw_num(w, "p99_us", c->fsync_p99_us);
	jw_close(w, '}');
	jw_open(w, "rtt", '{');
	jw_u64(w, "round_trips", c->rtt_n);
	jw_num(w, "mean_us", c->rtt_mean_us);
	jw_num(w, "p50_us", c->rtt_p50_us);
	jw_num(w, "p99_us", c->rtt_p99_us);
	jw_close(w, '}');
	jw_close(w, '}');
}

static void json_latency(struct jw *w, const struct bench *b)
{
	jw_open(w, "latency_us", '{');
	jw_num(w, "min", b->load.lat.count ? (double)b->load.lat.min / 1e3 : 0);
	jw_num(w, "mean", hist_mean(&b->load.lat) / 1e3);
	jw_num(w, "p50", lat_us(b, 50));
	jw_num(w, "p90", lat_us(b, 90));
	jw_num(w, "p99", lat_us(b, 99));
	jw_num(w, "p999", lat_us(b, 99.9));
	jw_num(w, "max", (double)b->load.lat.max / 1e3);
	jw_close(w, '}');
}

static void json_cpu(struct jw *w, const struct bench *b)
{
	double total = total_cpu(b);

	jw_open(w, "cpu", '{');
	jw_num(w, "window_s", b->load.cpu_window_s);
	jw_num(w, "us_per_txn", us_per_txn(b, total));
	jw_num(w, "machine_busy_cores", b->load.cpu_window_s > 0 ?
		(b->busy_b - b->busy_a) / b->load.cpu_window_s : 0);
	jw_num(w, "other_cores", other_cores(b, total));
	jw_open(w, "processes", '[');
	for (uint32_t i = 0; i < b->nprocs; i++) {
		const struct bench_proc *p = &b->procs[i];
		double cpu = proc_cpu(p);
		jw_open(w, NULL, '{');
		jw_str(w, "name", p->name);
		jw_u64(w, "pid", (uint64_t)(p->pid ? p->pid : 0));
		jw_num(w, "cpu_s", cpu);
		jw_num(w, "cores", b->load.cpu_window_s > 0 ? cpu / b->load.cpu_window_s : 0);
		jw_num(w, "us_per_txn", us_per_txn(b, cpu));
		jw_num(w, "share", total > 0 ? cpu / total : 0);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_close(w, '}');
}

/* Present only when counted: a missing key means "not counted", never zero. */
static void json_counters(struct jw *w, const struct bench *b)
{
	const struct server_counters *sc = &b->counters;

	jw_open(w, "counters", '{');
	if (sc->syncs_ok) {
		jw_u64(w, "coordinator_syncs", sc->coord_syncs);
		jw_u64(w, "kv_syncs", sc->kv_syncs);
		jw_num(w, "syncs_per_txn", per_txn(b, sc->coord_syncs + sc->kv_syncs));
		jw_num(w, "coordinator_syncs_per_txn", per_txn(b, sc->coord_syncs));
		jw_num(w, "kv_syncs_per_txn", per_txn(b, sc->kv_syncs));
	}
	if (sc->syscalls_ok) {
		jw_u64(w, "syscalls", sc->syscalls);
		jw_num(w, "syscalls_per_txn", per_txn(b, sc->syscalls));
		jw_num(w, "fdatasync_per_txn", per_txn(b, sc->fdatasyncs));
		jw_num(w, "fsync_per_txn", per_txn(b, sc->fsyncs));
	}
	jw_close(w, '}');
}

static void json_load(struct jw *w, const struct bench *b)
{
	const struct load_result *r = &b->load;

	jw_open(w, "results", '{');
	jw_u64(w, "interrupted", (uint64_t)r->interrupted);
	jw_num(w, "window_s", r->window_s);
	jw_u64(w, "committed", r->committed);
	jw_u64(w, "aborted", r->aborted);
	jw_u64(w, "errors", errors(r));
	jw_u64(w, "errors_begin", r->err_begin);
	jw_u64(w, "errors_put", r->err_put);
	jw_u64(w, "errors_commit", r->err_commit);
	jw_u64(w, "unfinished", r->unfinished);
	jw_num(w, "throughput", r->throughput);
	jw_num(w, "throughput_median_1s", r->throughput_median_1s);
	json_latency(w, b);
	jw_close(w, '}');
	json_cpu(w, b);
	json_counters(w, b);
	if (b->cal.done) {
		jw_open(w, "ratios", '{');
		jw_num(w, "throughput_per_fsync_rate", ratio(r->throughput, b->cal.fsync_ops_per_s));
		jw_num(w, "p50_per_fsync_time", ratio(lat_us(b, 50), b->cal.fsync_mean_us));
		jw_num(w, "p99_per_fsync_time", ratio(lat_us(b, 99), b->cal.fsync_mean_us));
		jw_close(w, '}');
	}
}

static void json_memtest(struct jw *w, const struct memtest_result *m)
{
	jw_open(w, "memtest", '{');
	jw_u64(w, "open_txns", m->open_txns);
	jw_u64(w, "participants", m->participants);
	jw_u64(w, "failed", m->failed);
	jw_u64(w, "rss_before_kib", m->rss_before_kib);
	jw_u64(w, "rss_after_kib", m->rss_after_kib);
	jw_num(w, "bytes_per_txn", m->bytes_per_txn);
	jw_close(w, '}');
}

int report_json(const struct bench *b, const char *path)
{
	int to_stdout = strcmp(path, "-") == 0;
	FILE *f = to_stdout ? stdout : fopen(path, "w");
	struct jw w = { .f = f };

	if (!f)
		return -errno;
	jw_open(&w, NULL, '{');
	jw_str(&w, "tool", "tpc-bench");
	json_params(&w, b);
	json_machine(&w, &b->machine);
	if (b->cal.done)
		json_calibration(&w, &b->cal);
	if (b->load.done)
		json_load(&w, b);
	if (b->mem.done)
		json_memtest(&w, &b->mem);
	jw_close(&w, '}');
	fputc('\n', f);
	if (to_stdout)
		return fflush(f) ? -errno : 0;
	return fclose(f) ? -errno : 0;
}
