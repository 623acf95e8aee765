/*
 * load.c - tpc-bench's closed-loop load: C clients, each an independent loop of
 * begin -> one Put to each of P tpc-kv services -> commit, spread over T event-loop
 * threads. A thread owns one event_base, one tpc_client and one kvclient per
 * participant; its clients pipeline their requests over those connections.
 *
 * The measured window is [t0, t1): t0 = start + warmup; t1 = t0 + duration, or, with
 * --txns N, the completion of the N-th transaction that completed after t0. A
 * transaction counts (throughput, latency, aborts, errors) when it completes inside the
 * window; those in flight at t1 finish but count nowhere. The main thread meanwhile
 * sleeps in sigtimedwait() (SIGINT/SIGTERM are blocked in every thread), takes the CPU
 * snapshots at the window's edges, prints a progress line each second and samples the
 * per-second commit rate.
 *
 * Threads share only struct load_shared (atomics, and read-only configuration) and
 * their own struct live counters (atomics read by the main thread); everything else of
 * a thread is its own until pthread_join().
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "kvclient.h"
#include "tls.h"
#include "tpc/client.h"
#include "tpc/libevent.h"
#include "util.h"

#define NS_PER_S 1000000000ull
#define TICK_MS 10
#define ERROR_BACKOFF_MS 10
#define KEY_MAX 48

enum result { RES_COMMITTED, RES_ABORTED, RES_ERR_BEGIN, RES_ERR_PUT, RES_ERR_COMMIT };

struct load_shared {
	const struct bench_config *cfg;
	uint64_t start_ns, t0_ns;
	_Atomic uint64_t t1_ns;        /* UINT64_MAX until known (--txns) */
	_Atomic int stop;              /* start no new transaction */
	_Atomic uint64_t tickets;      /* --txns: completions inside the window so far */
	char *value;                   /* cfg->value_size bytes, read-only */
	uint64_t nonce;                /* makes --txn-keys unique across runs */
};

/* Every completion, for the progress line (the main thread reads them). */
struct live {
	_Atomic uint64_t committed, aborted, errors, lat_sum_ns;
};

struct lthread;

struct slot {
	struct lthread *th;
	uint32_t client;
	int busy;                      /* a transaction or its error backoff is pending */
	int pending, put_failed;
	uint64_t seq, start_ns;
	tpc_txid txid;
};

struct lthread {
	struct load_shared *sh;
	unsigned index;
	pthread_t tid;
	int running;
	struct event_base *base;
	struct event *tick;
	tpc_client *client;
	struct kvc *kv[BENCH_MAX_PARTS];
	struct slot *slots;
	uint32_t nslots, busy;
	int closing;
	uint64_t drain_deadline_ns;
	struct live live;
	/* the measured window: this thread's only, read after the join */
	uint64_t committed, aborted, err_begin, err_put, err_commit, unfinished;
	struct hist lat;
};

static void slot_begin(struct slot *s);

/* ---- the window ---- */

static int should_stop(struct load_shared *sh, uint64_t now)
{
	if (atomic_load_explicit(&sh->stop, memory_order_relaxed))
		return 1;
	if (sh->cfg->txns)
		return atomic_load_explicit(&sh->tickets, memory_order_relaxed) >= sh->cfg->txns;
	return now >= atomic_load_explicit(&sh->t1_ns, memory_order_relaxed);
}

/* Does a completion at @p now count? With --txns, it takes one of the N tickets. */
static int in_window(struct load_shared *sh, uint64_t now)
{
	if (now < sh->t0_ns)
		return 0;
	if (!sh->cfg->txns)
		return now < atomic_load(&sh->t1_ns);
	if (atomic_load(&sh->stop))
		return 0; /* interrupted */
	uint64_t t = atomic_fetch_add(&sh->tickets, 1);
	if (t + 1 == sh->cfg->txns) {
		atomic_store(&sh->t1_ns, now);
		atomic_store(&sh->stop, 1);
	}
	return t < sh->cfg->txns;
}

static void count_live(struct lthread *th, enum result r, uint64_t lat)
{
	if (r == RES_COMMITTED) {
		atomic_fetch_add_explicit(&th->live.committed, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&th->live.lat_sum_ns, lat, memory_order_relaxed);
	} else if (r == RES_ABORTED) {
		atomic_fetch_add_explicit(&th->live.aborted, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&th->live.errors, 1, memory_order_relaxed);
	}
}

static void count_measured(struct lthread *th, enum result r, uint64_t lat)
{
	switch (r) {
	case RES_COMMITTED:
		th->committed++;
		hist_record(&th->lat, lat);
		break;
	case RES_ABORTED: th->aborted++; break;
	case RES_ERR_BEGIN: th->err_begin++; break;
	case RES_ERR_PUT: th->err_put++; break;
	case RES_ERR_COMMIT: th->err_commit++; break;
	}
}

/* ---- one client's loop ---- */

static void slot_idle(struct slot *s)
{
	if (s->busy) {
		s->busy = 0;
		s->th->busy--;
	}
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
	slot_begin(arg);
}

static void complete(struct slot *s, enum result r)
{
	struct lthread *th = s->th;
	uint64_t now = tpc_now_ns(), lat = now - s->start_ns;

	if (th->closing) {
		slot_idle(s);
		return;
	}
	count_live(th, r, lat);
	if (in_window(th->sh, now))
		count_measured(th, r, lat);
	if (r >= RES_ERR_BEGIN) { /* a service may be down: do not spin */
		struct timeval tv = { 0, ERROR_BACKOFF_MS * 1000 };
		if (event_base_once(th->base, -1, EV_TIMEOUT, on_backoff, s, &tv) == 0)
			return;
	}
	slot_begin(s);
}

static void on_outcome(void *arg, int err, tpc_txid txid, tpc_outcome o, const char *reason)
{
	if (err || o == TPC_OUTCOME_UNKNOWN)
		complete(arg, RES_ERR_COMMIT);
	else
		complete(arg, o == TPC_OUTCOME_COMMITTED ? RES_COMMITTED : RES_ABORTED);
}

static void on_aborted(void *arg, int err, tpc_txid txid, tpc_outcome o, const char *reason)
{
	complete(arg, RES_ERR_PUT);
}

static void decide(struct slot *s)
{
	struct lthread *th = s->th;
	int rc;

	if (th->closing) {
		complete(s, RES_ERR_PUT);
		return;
	}
	if (s->put_failed)
		rc = tpc_client_abort_async(th->client, s->txid, "a put failed", on_aborted, s);
	else
		rc = tpc_client_commit_async(th->client, s->txid, on_outcome, s);
	if (rc)
		complete(s, s->put_failed ? RES_ERR_PUT : RES_ERR_COMMIT);
}

static void on_put(void *arg, int err, uint64_t txid)
{
	struct slot *s = arg;

	if (err)
		s->put_failed = 1;
	if (--s->pending == 0)
		decide(s);
}

/* The token is valid during this call: every Put is packed before it returns. */
static void on_begin(void *arg, int err, tpc_txid txid, tpc_begin_result res,
		     const uint8_t *token)
{
	struct slot *s = arg;
	struct lthread *th = s->th;
	char key[KEY_MAX];

	if (err || res != TPC_BEGIN_STARTED || th->closing) {
		complete(s, RES_ERR_BEGIN);
		return;
	}
	s->txid = txid;
	uint64_t n = th->sh->cfg->key_space ? s->seq % th->sh->cfg->key_space : s->seq;
	int klen = snprintf(key, sizeof(key), "c%" PRIu32 "-%" PRIu64, s->client, n);
	s->pending = 1; /* held until every put is issued */
	for (uint32_t p = 0; p < th->sh->cfg->participants; p++) {
		if (kvc_put_token(th->kv[p], txid, token, key, (size_t)klen, th->sh->value,
				  th->sh->cfg->value_size, on_put, s) == 0)
			s->pending++;
		else
			s->put_failed = 1;
	}
	on_put(s, 0, txid);
}

static void slot_begin(struct slot *s)
{
	struct lthread *th = s->th;

	if (th->closing || should_stop(th->sh, tpc_now_ns())) {
		slot_idle(s);
		return;
	}
	if (!s->busy) {
		s->busy = 1;
		th->busy++;
	}
	s->seq++;
	s->put_failed = 0;
	s->txid = 0;
	s->start_ns = tpc_now_ns();
	char tkey[64];
	if (th->sh->cfg->txn_keys) /* unique per run, client and transaction */
		snprintf(tkey, sizeof(tkey), "bench-%" PRIx64 "-c%" PRIu32 "-%" PRIu64,
			 th->sh->nonce, s->client, s->seq);
	if (tpc_client_begin_token_async(th->client, th->sh->cfg->txn_keys ? tkey : NULL, 0,
					 on_begin, s))
		complete(s, RES_ERR_BEGIN);
}

/* ---- threads ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct lthread *th = arg;
	uint64_t now = tpc_now_ns();

	if (!should_stop(th->sh, now))
		return;
	if (!th->drain_deadline_ns)
		th->drain_deadline_ns = now + ((uint64_t)th->sh->cfg->timeout_ms + 1000) * 1000000ull;
	if (th->busy == 0 || now > th->drain_deadline_ns)
		event_base_loopbreak(th->base);
}

static void *thread_main(void *arg)
{
	struct lthread *th = arg;

	for (uint32_t i = 0; i < th->nslots; i++)
		slot_begin(&th->slots[i]);
	event_base_dispatch(th->base);
	th->unfinished = th->busy;
	th->closing = 1;
	for (uint32_t p = 0; p < th->sh->cfg->participants; p++) {
		kvc_free(th->kv[p]);
		th->kv[p] = NULL;
	}
	tpc_client_free(th->client);
	th->client = NULL;
	return NULL;
}

static int thread_setup(struct lthread *th, struct load_shared *sh, unsigned index,
			uint32_t first_client, uint32_t nclients)
{
	const struct bench_config *cfg = sh->cfg;
	tpc_client_config cc;
	struct timeval tv = { 0, TICK_MS * 1000 };
	int err = 0;

	th->sh = sh;
	th->index = index;
	hist_init(&th->lat);
	th->base = event_base_new();
	th->slots = calloc(nclients ? nclients : 1, sizeof(*th->slots));
	if (!th->base || !th->slots)
		return -ENOMEM;
	th->nslots = nclients;
	for (uint32_t i = 0; i < nclients; i++)
		th->slots[i] = (struct slot){ .th = th, .client = first_client + i };
	tpc_client_config_init(&cc);
	cc.coordinator = cfg->coordinator;
	cc.name = "tpc-bench";
	cc.request_timeout_ms = cfg->timeout_ms;
	cc.tls_cert = cfg->tls_cert;
	cc.tls_key = cfg->tls_key;
	cc.tls_ca = cfg->tls_ca;
	th->client = tpc_client_new(&cc, &err);
	if (!th->client || tpc_client_attach(th->client, th->base)) {
		fprintf(stderr, "tpc-bench: client for %s: %s\n", cfg->coordinator, tpc_strerror(err));
		return err ? err : -EINVAL;
	}
	struct tpc_tls_files tls = { cfg->tls_cert, cfg->tls_key, cfg->tls_ca };
	char why[512];
	for (uint32_t p = 0; p < cfg->participants; p++) {
		if (!(th->kv[p] = kvc_new(th->base, cfg->kv[p], cfg->timeout_ms))) {
			fprintf(stderr, "tpc-bench: bad tpc-kv address %s\n", cfg->kv[p]);
			return -EINVAL;
		}
		if (kvc_set_tls(th->kv[p], &tls, why, sizeof(why))) {
			fprintf(stderr, "tpc-bench: %s\n", why);
			return -EINVAL;
		}
	}
	th->tick = event_new(th->base, -1, EV_PERSIST, on_tick, th);
	if (!th->tick || event_add(th->tick, &tv))
		return -ENOMEM;
	return 0;
}

static void thread_free(struct lthread *th)
{
	for (uint32_t p = 0; p < BENCH_MAX_PARTS; p++)
		kvc_free(th->kv[p]);
	tpc_client_free(th->client);
	if (th->tick)
		event_free(th->tick);
	if (th->base)
		event_base_free(th->base);
	free(th->slots);
}

/* ---- the main thread: window edges, progress, per-second samples ---- */

struct sampler {
	struct bench *b;
	struct load_shared *sh;
	struct lthread *threads;
	unsigned nthreads;
	uint64_t last_committed, last_lat, last_tick_ns;
	double *samples;
	size_t nsamples, cap;
};

static void live_totals(const struct sampler *sp, uint64_t *c, uint64_t *lat, uint64_t *a,
			uint64_t *e)
{
	*c = *lat = *a = *e = 0;
	for (unsigned i = 0; i < sp->nthreads; i++) {
		struct live *l = &sp->threads[i].live;
		*c += atomic_load_explicit(&l->committed, memory_order_relaxed);
		*lat += atomic_load_explicit(&l->lat_sum_ns, memory_order_relaxed);
		*a += atomic_load_explicit(&l->aborted, memory_order_relaxed);
		*e += atomic_load_explicit(&l->errors, memory_order_relaxed);
	}
}

static void cpu_snapshot(struct bench *b, int edge)
{
	if (machine_busy_seconds(edge ? &b->busy_b : &b->busy_a))
		b->busy_a = b->busy_b = 0;
	for (uint32_t i = 0; i < b->nprocs; i++) {
		struct bench_proc *p = &b->procs[i];
		double v = 0;
		if (proc_cpu_seconds(p->pid, &v) != 0)
			v = edge ? p->cpu_a : 0; /* gone: count nothing past its last reading */
		if (edge)
			p->cpu_b = v;
		else
			p->cpu_a = v;
	}
	counters_edge(b, edge);
}

static void add_sample(struct sampler *sp, double rate)
{
	if (sp->nsamples == sp->cap) {
		size_t cap = sp->cap ? sp->cap * 2 : 64;
		double *v = realloc(sp->samples, cap * sizeof(*v));
		if (!v)
			return;
		sp->samples = v;
		sp->cap = cap;
	}
	sp->samples[sp->nsamples++] = rate;
}

/* Once a second: the progress line, and (inside the window) a throughput sample. */
static void second_tick(struct sampler *sp, uint64_t now, int measuring)
{
	uint64_t c, lat, a, e;
	double dt = (double)(now - sp->last_tick_ns) / 1e9;

	live_totals(sp, &c, &lat, &a, &e);
	double rate = dt > 0 ? (double)(c - sp->last_committed) / dt : 0;
	if (measuring && dt > 0.5)
		add_sample(sp, rate);
	if (sp->b->cfg.progress) {
		uint64_t dc = c - sp->last_committed;
		printf("%5.0fs %-9s %9.0f txn/s  mean %7.2f ms  committed %" PRIu64 "  aborted %"
		       PRIu64 "  errors %" PRIu64 "\n",
		       (double)(now - sp->sh->start_ns) / 1e9, measuring ? "measuring" : "warmup",
		       rate, dc ? (double)(lat - sp->last_lat) / (double)dc / 1e6 : 0.0, c, a, e);
		fflush(stdout);
	}
	sp->last_committed = c;
	sp->last_lat = lat;
	sp->last_tick_ns = now;
}

static void rebase(struct sampler *sp, uint64_t now)
{
	uint64_t a, e;

	live_totals(sp, &sp->last_committed, &sp->last_lat, &a, &e);
	sp->last_tick_ns = now;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sleep until @p until_ns or a signal; returns the signal, or 0. */
static int wait_until(uint64_t until_ns)
{
	sigset_t set;
	uint64_t now = tpc_now_ns();
	uint64_t d = until_ns > now ? until_ns - now : 0;
	struct timespec ts = { (time_t)(d / NS_PER_S), (long)(d % NS_PER_S) };

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int sig = sigtimedwait(&set, NULL, &ts);
	return sig > 0 ? sig : 0;
}

static uint64_t next_wake(struct load_shared *sh, int measuring, uint64_t next_sec)
{
	uint64_t w = next_sec;

	if (!measuring && sh->t0_ns < w)
		w = sh->t0_ns;
	if (measuring && !sh->cfg->txns) {
		uint64_t t1 = atomic_load(&sh->t1_ns);
		if (t1 < w)
			w = t1;
	}
	if (measuring && sh->cfg->txns) {
		uint64_t soon = tpc_now_ns() + TICK_MS * 1000000ull;
		if (soon < w)
			w = soon;
	}
	return w;
}

/* Runs until the window closes (or a signal); returns the signal or 0. */
static int supervise(struct sampler *sp, double *cpu_window_s)
{
	struct load_shared *sh = sp->sh;
	uint64_t next_sec = sh->start_ns + NS_PER_S, cpu_a_ns = 0;
	int measuring = 0, sig = 0;

	sp->last_tick_ns = sh->start_ns;
	for (;;) {
		uint64_t now = tpc_now_ns();
		if (!measuring && now >= sh->t0_ns) {
			cpu_snapshot(sp->b, 0);
			cpu_a_ns = now;
			measuring = 1;
			rebase(sp, now); /* the per-second samples start at t0 */
			next_sec = now + NS_PER_S;
		}
		if (measuring && (atomic_load(&sh->stop) || now >= atomic_load(&sh->t1_ns)))
			break;
		if (now >= next_sec) {
			second_tick(sp, now, measuring);
			next_sec += NS_PER_S;
			continue;
		}
		if ((sig = wait_until(next_wake(sh, measuring, next_sec))) != 0) {
			uint64_t t = tpc_now_ns();
			uint64_t t1 = atomic_load(&sh->t1_ns);
			if (t < t1)
				atomic_store(&sh->t1_ns, t);
			atomic_store(&sh->stop, 1);
			if (!measuring) {
				cpu_snapshot(sp->b, 0);
				cpu_a_ns = t;
			}
			break;
		}
	}
	cpu_snapshot(sp->b, 1);
	atomic_store(&sh->stop, 1);
	*cpu_window_s = (double)(tpc_now_ns() - cpu_a_ns) / 1e9;
	return sig;
}

/* ---- results ---- */

static void collect(struct bench *b, struct load_shared *sh, struct sampler *sp)
{
	struct load_result *r = &b->load;
	uint64_t t1 = atomic_load(&sh->t1_ns);

	hist_init(&r->lat);
	for (unsigned i = 0; i < sp->nthreads; i++) {
		struct lthread *th = &sp->threads[i];
		r->committed += th->committed;
		r->aborted += th->aborted;
		r->err_begin += th->err_begin;
		r->err_put += th->err_put;
		r->err_commit += th->err_commit;
		r->unfinished += th->unfinished;
		hist_merge(&r->lat, &th->lat);
	}
	r->window_s = t1 > sh->t0_ns && t1 != UINT64_MAX ? (double)(t1 - sh->t0_ns) / 1e9 : 0;
	r->throughput = r->window_s > 0 ? (double)r->committed / r->window_s : 0;
	if (sp->nsamples) {
		qsort(sp->samples, sp->nsamples, sizeof(double), cmp_double);
		size_t m = sp->nsamples / 2;
		r->throughput_median_1s = sp->nsamples % 2 ? sp->samples[m]
							  : (sp->samples[m - 1] + sp->samples[m]) / 2;
	} else {
		r->throughput_median_1s = r->throughput;
	}
	r->done = 1;
}

static int start_threads(struct lthread *threads, unsigned n, struct load_shared *sh)
{
	const struct bench_config *cfg = sh->cfg;
	uint32_t first = 0;
	int rc;

	for (unsigned i = 0; i < n; i++) {
		uint32_t count = cfg->clients / n + (i < cfg->clients % n);
		if ((rc = thread_setup(&threads[i], sh, i, first, count)))
			return rc;
		first += count;
	}
	for (unsigned i = 0; i < n; i++) {
		if ((rc = pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]))) {
			atomic_store(&sh->stop, 1);
			return -rc;
		}
		threads[i].running = 1;
	}
	return 0;
}

int load_run(struct bench *b)
{
	const struct bench_config *cfg = &b->cfg;
	struct load_shared sh = { .cfg = cfg };
	unsigned n = cfg->threads;
	struct lthread *threads = calloc(n, sizeof(*threads));
	struct sampler sp = { .b = b, .sh = &sh, .threads = threads, .nthreads = n };
	int rc = -ENOMEM;

	sh.value = malloc(cfg->value_size ? cfg->value_size : 1);
	if (!threads || !sh.value)
		goto out_free;
	memset(sh.value, 'v', cfg->value_size);
	sh.start_ns = tpc_now_ns();
	sh.nonce = tpc_wall_ms() ^ (uint64_t)getpid() << 40;
	sh.t0_ns = sh.start_ns + cfg->warmup_ms * 1000000ull;
	atomic_init(&sh.t1_ns, cfg->txns ? UINT64_MAX : sh.t0_ns + cfg->duration_ms * 1000000ull);
	rc = start_threads(threads, n, &sh);
	if (rc == 0 && supervise(&sp, &b->load.cpu_window_s) != 0)
		b->load.interrupted = 1;
	atomic_store(&sh.stop, 1);
	for (unsigned i = 0; i < n; i++)
		if (threads[i].running)
			pthread_join(threads[i].tid, NULL);
	if (rc == 0)
		collect(b, &sh, &sp);
out_free:
	for (unsigned i = 0; threads && i < n; i++)
		thread_free(&threads[i]);
	free(threads);
	free(sp.samples);
	free(sh.value);
	return rc;
}
