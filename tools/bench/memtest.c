/*
 * memtest.c - tpc-bench --memtest N: what one open transaction costs the coordinator.
 *
 * One client connection primes itself with a transaction (so connection buffers and
 * the coordinator's first allocations are in place), then the coordinator's VmRSS is
 * read; N transactions are begun (and, with --participants P, joined by one Put to each
 * of P tpc-kv services) and left open, pipelined with at most WINDOW requests in
 * flight; VmRSS is read again. The growth divided by N is the cost of an open
 * transaction, allocator overhead included. The coordinator must allow N open
 * transactions on one connection and not time them out (cluster.c starts it so).
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "kvclient.h"
#include "tls.h"
#include "tpc/client.h"
#include "tpc/libevent.h"
#include "util.h"

#define WINDOW 2000
#define SETTLE_MS 200

struct memtest {
	struct bench *b;
	struct event_base *base;
	tpc_client *client;
	struct kvc *kv[BENCH_MAX_PARTS];
	uint64_t target, issued, outstanding, failed;
};

static void pump(struct memtest *m);

static void maybe_done(struct memtest *m)
{
	if (m->issued == m->target && m->outstanding == 0)
		event_base_loopbreak(m->base);
	else
		pump(m);
}

static void on_put(void *arg, int err, uint64_t txid)
{
	struct memtest *m = arg;

	m->outstanding--;
	if (err)
		m->failed++;
	maybe_done(m);
}

static void on_begin(void *arg, int err, tpc_txid txid, tpc_begin_result res)
{
	struct memtest *m = arg;
	char key[32];

	m->outstanding--;
	if (err) {
		m->failed++;
		maybe_done(m);
		return;
	}
	int klen = snprintf(key, sizeof(key), "m%" PRIu64, txid);
	for (uint32_t p = 0; p < m->b->cfg.participants; p++) {
		if (kvc_put(m->kv[p], txid, key, (size_t)klen, "x", 1, on_put, m) == 0)
			m->outstanding++;
		else
			m->failed++;
	}
	maybe_done(m);
}

static void pump(struct memtest *m)
{
	while (m->outstanding < WINDOW && m->issued < m->target) {
		m->issued++;
		if (tpc_client_begin_async(m->client, NULL, 0, on_begin, m) == 0)
			m->outstanding++;
		else
			m->failed++;
	}
}

/* Run @p n transactions to the point where they are open (and joined). */
static uint64_t open_txns(struct memtest *m, uint64_t n)
{
	m->target += n;
	pump(m);
	if (m->outstanding)
		event_base_dispatch(m->base);
	return m->failed;
}

static int setup(struct memtest *m, struct bench *b)
{
	tpc_client_config cc;
	int err = 0;

	m->b = b;
	m->base = event_base_new();
	if (!m->base)
		return -ENOMEM;
	tpc_client_config_init(&cc);
	cc.coordinator = b->cfg.coordinator;
	cc.name = "tpc-bench-memtest";
	cc.request_timeout_ms = b->cfg.timeout_ms;
	cc.tls_cert = b->cfg.tls_cert;
	cc.tls_key = b->cfg.tls_key;
	cc.tls_ca = b->cfg.tls_ca;
	m->client = tpc_client_new(&cc, &err);
	if (!m->client || tpc_client_attach(m->client, m->base))
		return err ? err : -EINVAL;
	struct tpc_tls_files tls = { b->cfg.tls_cert, b->cfg.tls_key, b->cfg.tls_ca };
	char why[512];
	for (uint32_t p = 0; p < b->cfg.participants; p++) {
		if (!(m->kv[p] = kvc_new(m->base, b->cfg.kv[p], b->cfg.timeout_ms)))
			return -EINVAL;
		if (kvc_set_tls(m->kv[p], &tls, why, sizeof(why))) {
			fprintf(stderr, "tpc-bench: %s\n", why);
			return -EINVAL;
		}
	}
	return 0;
}

static void teardown(struct memtest *m)
{
	for (uint32_t p = 0; p < BENCH_MAX_PARTS; p++)
		kvc_free(m->kv[p]);
	tpc_client_free(m->client);
	if (m->base)
		event_base_free(m->base);
}

static int measure(struct memtest *m, pid_t coordinator, struct memtest_result *r)
{
	struct timespec settle = { 0, SETTLE_MS * 1000000L };

	if (open_txns(m, 1)) {
		fprintf(stderr, "tpc-bench: memtest: the first transaction failed\n");
		return -EIO;
	}
	nanosleep(&settle, NULL);
	if (proc_rss_kib(coordinator, &r->rss_before_kib))
		return -ESRCH;
	m->failed = 0;
	open_txns(m, m->b->cfg.memtest);
	nanosleep(&settle, NULL);
	if (proc_rss_kib(coordinator, &r->rss_after_kib))
		return -ESRCH;
	r->failed = m->failed;
	r->open_txns = m->b->cfg.memtest;
	r->participants = m->b->cfg.participants;
	r->bytes_per_txn = ((double)r->rss_after_kib - (double)r->rss_before_kib) * 1024.0 /
			   (double)r->open_txns;
	r->done = 1;
	return 0;
}

int memtest_run(struct bench *b, pid_t coordinator)
{
	struct memtest m = { 0 };
	int rc = setup(&m, b);

	if (rc)
		fprintf(stderr, "tpc-bench: memtest: cannot set up clients: %s\n", tpc_strerror(rc));
	else
		rc = measure(&m, coordinator, &b->mem);
	teardown(&m);
	return rc;
}
