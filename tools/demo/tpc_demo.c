/*
 * tpc_demo.c - tpc-demo, the driver behind `make demo`.
 *
 *   tpc-demo run --coordinator H:P --kv NAME=H:P [--kv ...] --txns N --outcomes FILE
 *                [--tls-cert FILE --tls-key FILE --tls-ca FILE]
 *   tpc-demo verify --outcomes FILE --data NAME=DIR [--data ...]
 *
 * `run` drives N transactions, C at a time, each writing one key to every tpc-kv
 * service; every --abort-every'th is aborted by the client and every --refuse-every'th
 * also writes the key "refuse-me" to the last service (started with --refuse-key
 * refuse-me, it votes NO). Outcomes the client could not learn at once (a lost
 * connection) are resolved with status queries before it ends. Each outcome is written
 * to FILE as "txid seq OUTCOME".
 *
 * `verify` reads every service's store (read-only) and checks it holds exactly the
 * committed writes: every committed transaction's key with its txid, no aborted one,
 * nothing else, each once (the sink keeps applied txids only until they can no longer
 * come again, rule D9 in docs/design.md).
 *
 * With --tls-cert, --tls-key and --tls-ca, both the coordinator client and the tpc-kv
 * clients use mutual TLS with that one certificate (scripts/demo.sh: TLS=1).
 */
#include <errno.h>
#include <getopt.h>
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
#include "tpc/sink_lmdb.h"
#include "util.h"

#define MAX_KV 8
#define REFUSE_KEY "refuse-me"

struct named {
	char name[32];
	const char *where;
};

struct demo;

struct slot {
	struct demo *d;
	uint64_t seq, txid;
	int pending_puts, put_failed;
	int intent; /* 0 commit, 1 client abort, 2 refused (expect NO) */
};

enum { OUT_COMMITTED, OUT_ABORTED, OUT_UNKNOWN };

struct result {
	uint64_t txid;
	int outcome;
};

struct demo {
	struct event_base *base;
	tpc_client *client;
	struct kvc *kv[MAX_KV];
	struct named kvs[MAX_KV];
	int nkv;
	uint64_t txns, next_seq, done;
	uint32_t concurrency, abort_every, refuse_every;
	struct result *results; /* by seq - 1 */
	struct slot *slots;
	uint64_t by_intent[3][3];
	uint64_t put_failures, unknown;
	FILE *progress;
	struct tpc_tls_files tls;  /* --tls-cert, --tls-key, --tls-ca; all NULL: plaintext */
};

static void next_txn(struct slot *s);

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
	next_txn(arg);
}

static void finish(struct slot *s, int outcome)
{
	struct demo *d = s->d;

	d->results[s->seq - 1] = (struct result){ s->txid, outcome };
	d->by_intent[s->intent][outcome]++;
	d->done++;
	if (d->progress && d->done % 100 == 0) {
		fprintf(d->progress, "%" PRIu64 "\n", d->done);
		fflush(d->progress);
	}
	if (s->put_failed) { /* a service is down: give it a moment before the next try */
		struct timeval tv = { 0, 50000 };
		event_base_once(d->base, -1, EV_TIMEOUT, on_backoff, s, &tv);
		return;
	}
	next_txn(s);
}

static int outcome_of(int err, tpc_outcome o)
{
	if (err || o == TPC_OUTCOME_UNKNOWN)
		return OUT_UNKNOWN;
	return o == TPC_OUTCOME_COMMITTED ? OUT_COMMITTED : OUT_ABORTED;
}

static void on_outcome(void *arg, int err, tpc_txid txid, tpc_outcome o, const char *reason)
{
	finish(arg, outcome_of(err, o));
}

static void decide(struct slot *s)
{
	struct demo *d = s->d;
	int rc;

	if (s->put_failed || s->intent == 1)
		rc = tpc_client_abort_async(d->client, s->txid,
					    s->put_failed ? "a write failed" : "demo abort",
					    on_outcome, s);
	else
		rc = tpc_client_commit_async(d->client, s->txid, on_outcome, s);
	if (rc)
		finish(s, OUT_UNKNOWN);
}

static void on_put(void *arg, int err, uint64_t txid)
{
	struct slot *s = arg;

	if (err) {
		s->put_failed = 1;
		s->d->put_failures++;
		if (getenv("TPC_DEMO_DEBUG"))
			fprintf(stderr, "put txid %llu: %s\n", (unsigned long long)txid, tpc_strerror(err));
	}
	if (--s->pending_puts == 0)
		decide(s);
}

static void put(struct slot *s, int kv, const char *key, const char *val,
		const uint8_t *token)
{
	if (kvc_put_token(s->d->kv[kv], s->txid, token, key, strlen(key), val, strlen(val),
			  on_put, s) == 0)
		s->pending_puts++;
	else
		s->put_failed = 1;
}

/* The transaction's token goes with every Put (packed before this returns). */
static void on_begin(void *arg, int err, tpc_txid txid, tpc_begin_result res,
		     const uint8_t *token)
{
	struct slot *s = arg;
	struct demo *d = s->d;
	char key[32], val[64];

	if (err) {
		s->txid = 0;
		finish(s, OUT_ABORTED); /* nothing began: nothing can be anywhere */
		return;
	}
	s->txid = txid;
	snprintf(key, sizeof(key), "k%06" PRIu64, s->seq);
	s->pending_puts = 1; /* held until every put is issued */
	for (int i = 0; i < d->nkv; i++) {
		snprintf(val, sizeof(val), "v%" PRIu64 "@%s", s->seq, d->kvs[i].name);
		put(s, i, key, val, token);
	}
	if (s->intent == 2)
		put(s, d->nkv - 1, REFUSE_KEY, "x", token);
	on_put(s, 0, txid);
}

static void next_txn(struct slot *s)
{
	struct demo *d = s->d;

	if (d->next_seq > d->txns) {
		if (d->done == d->txns)
			event_base_loopbreak(d->base);
		return;
	}
	memset(s, 0, sizeof(*s));
	s->d = d;
	s->seq = d->next_seq++;
	if (d->abort_every && s->seq % d->abort_every == 0)
		s->intent = 1;
	else if (d->refuse_every && s->seq % d->refuse_every == 0)
		s->intent = 2;
	if (tpc_client_begin_token_async(d->client, NULL, 0, on_begin, s))
		on_begin(s, TPC_ECLOSED, 0, TPC_BEGIN_STARTED, NULL);
}

/* Outcomes lost with a connection: ask until the coordinator says. */
static int resolve_unknown(struct demo *d)
{
	for (uint64_t i = 0; i < d->txns; i++) {
		struct result *r = &d->results[i];
		if (r->outcome != OUT_UNKNOWN)
			continue;
		d->unknown++;
		if (!r->txid) {
			r->outcome = OUT_ABORTED;
			continue;
		}
		tpc_status st = TPC_STATUS_PENDING;
		uint64_t deadline = tpc_now_ms() + 30000;
		while (st == TPC_STATUS_PENDING && tpc_now_ms() < deadline) {
			if (tpc_client_status(d->client, r->txid, &st) == 0 &&
			    st != TPC_STATUS_PENDING)
				break;
			st = TPC_STATUS_PENDING;
			nanosleep(&(struct timespec){ 0, 50000000 }, NULL); /* ask again shortly */
		}
		if (st == TPC_STATUS_PENDING)
			return -ETIMEDOUT;
		r->outcome = st == TPC_STATUS_COMMITTED ? OUT_COMMITTED : OUT_ABORTED;
	}
	return 0;
}

static int write_outcomes(struct demo *d, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	for (uint64_t i = 0; i < d->txns; i++)
		fprintf(f, "%" PRIu64 " %" PRIu64 " %s\n", d->results[i].txid, i + 1,
			d->results[i].outcome == OUT_COMMITTED ? "COMMITTED" : "ABORTED");
	return fclose(f) ? -errno : 0;
}

static int parse_named(const char *arg, struct named *n)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(n->name) || !eq[1])
		return -EINVAL;
	memcpy(n->name, arg, (size_t)(eq - arg));
	n->name[eq - arg] = '\0';
	n->where = eq + 1;
	return 0;
}

static void print_summary(const struct demo *d)
{
	uint64_t committed = 0, aborted = 0;
	for (int i = 0; i < 3; i++) {
		committed += d->by_intent[i][OUT_COMMITTED];
		aborted += d->by_intent[i][OUT_ABORTED] + d->by_intent[i][OUT_UNKNOWN];
	}
	printf("  transactions: %" PRIu64 " committed, %" PRIu64 " aborted\n", committed, aborted);
	printf("    aborted by the client on purpose: %" PRIu64 "\n", d->by_intent[1][OUT_ABORTED]);
	printf("    aborted by a NO vote (refused key): %" PRIu64 "\n", d->by_intent[2][OUT_ABORTED]);
	printf("    aborted because a service was down: %" PRIu64 "\n", d->by_intent[0][OUT_ABORTED]);
	printf("    outcomes learned later by asking the coordinator: %" PRIu64 "\n", d->unknown);
}

static int cmd_run(struct demo *d, const char *coordinator, const char *outcomes)
{
	tpc_client_config cc;
	int err = 0;

	d->base = event_base_new();
	tpc_client_config_init(&cc);
	cc.coordinator = coordinator;
	cc.name = "tpc-demo";
	cc.tls_cert = d->tls.cert;
	cc.tls_key = d->tls.key;
	cc.tls_ca = d->tls.ca;
	d->client = tpc_client_new(&cc, &err);
	if (!d->base || !d->client || tpc_client_attach(d->client, d->base)) {
		fprintf(stderr, "tpc-demo: cannot set up the client: %s\n", tpc_strerror(err));
		return 1;
	}
	for (int i = 0; i < d->nkv; i++) {
		char why[512];
		if (!(d->kv[i] = kvc_new(d->base, d->kvs[i].where, 10000))) {
			fprintf(stderr, "tpc-demo: bad address %s\n", d->kvs[i].where);
			return 2;
		}
		if (kvc_set_tls(d->kv[i], &d->tls, why, sizeof(why))) {
			fprintf(stderr, "tpc-demo: %s\n", why);
			return 2;
		}
	}
	d->results = calloc(d->txns, sizeof(*d->results));
	d->slots = calloc(d->concurrency, sizeof(*d->slots));
	if (!d->results || !d->slots)
		return 1;
	d->next_seq = 1;
	for (uint32_t i = 0; i < d->concurrency; i++) {
		d->slots[i].d = d;
		next_txn(&d->slots[i]);
	}
	event_base_dispatch(d->base);
	for (int i = 0; i < d->nkv; i++)
		kvc_free(d->kv[i]);
	tpc_client_free(d->client);
	event_base_free(d->base);

	/* A fresh blocking client asks about what the async one could not learn. */
	d->client = tpc_client_new(&cc, &err);
	if (!d->client || resolve_unknown(d)) {
		fprintf(stderr, "tpc-demo: could not resolve every outcome\n");
		return 1;
	}
	tpc_client_free(d->client);
	print_summary(d);
	if (write_outcomes(d, outcomes)) {
		fprintf(stderr, "tpc-demo: cannot write %s\n", outcomes);
		return 1;
	}
	return 0;
}

/* ---- verify ---- */

struct store_check {
	const struct result *results;
	uint64_t txns;
	uint8_t *seen;      /* by seq - 1 */
	uint64_t keys, wrong, extra;
	const char *name;
};

static int check_key(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
		     tpc_txid txid)
{
	struct store_check *sc = arg;
	char k[64], want[64];
	uint64_t seq;

	sc->keys++;
	if (klen >= sizeof(k)) {
		sc->extra++;
		return 0;
	}
	memcpy(k, key, klen);
	k[klen] = '\0';
	if (sscanf(k, "k%" SCNu64, &seq) != 1 || seq < 1 || seq > sc->txns) {
		sc->extra++;
		return 0;
	}
	const struct result *r = &sc->results[seq - 1];
	snprintf(want, sizeof(want), "v%" PRIu64 "@%s", seq, sc->name);
	if (r->outcome != OUT_COMMITTED || r->txid != txid || vlen != strlen(want) ||
	    memcmp(val, want, vlen) != 0)
		sc->wrong++;
	else
		sc->seen[seq - 1]++;
	return 0;
}

static int read_outcomes(const char *path, struct result **out, uint64_t *n)
{
	FILE *f = fopen(path, "r");
	uint64_t txid, seq, cap = 1024, cnt = 0;
	char word[16];
	struct result *v = malloc(cap * sizeof(*v));

	if (!f || !v) {
		free(v);
		if (f)
			fclose(f);
		return -errno;
	}
	while (fscanf(f, "%" SCNu64 " %" SCNu64 " %15s", &txid, &seq, word) == 3) {
		if (seq != cnt + 1)
			break;
		if (cnt == cap) {
			struct result *nv = realloc(v, (cap *= 2) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[cnt++] = (struct result){ txid, strcmp(word, "COMMITTED") ? OUT_ABORTED
									 : OUT_COMMITTED };
	}
	fclose(f);
	*out = v;
	*n = cnt;
	return 0;
}

static int verify_store(const struct named *st, const struct result *res, uint64_t n,
			uint64_t committed)
{
	char dir[4096];
	struct store_check sc = { .results = res, .txns = n, .name = st->name };
	uint64_t applied = 0, missing = 0;

	snprintf(dir, sizeof(dir), "%s/sink", st->where);
	sc.seen = calloc(n ? n : 1, 1);
	if (!sc.seen || tpc_sink_lmdb_dump(dir, check_key, &sc) < 0 ||
	    tpc_sink_lmdb_applied_count(dir, &applied) < 0) {
		printf("  %s: cannot read %s\n", st->name, dir);
		free(sc.seen);
		return 1;
	}
	for (uint64_t i = 0; i < n; i++)
		if (res[i].outcome == OUT_COMMITTED && sc.seen[i] != 1)
			missing++;
	free(sc.seen);
	/* The sink's applied-txid table is pruned as PREPARED records drop (D9): it holds
	 * a few recent txids, not one per commit; the keys are what must match. */
	int ok = !missing && !sc.wrong && !sc.extra && sc.keys == committed;
	printf("  %s: %" PRIu64 " keys (%" PRIu64 " recent applied txids kept); missing %" PRIu64
	       ", wrong or aborted %" PRIu64 ", unexpected %" PRIu64 " -> %s\n",
	       st->name, sc.keys, applied, missing, sc.wrong, sc.extra,
	       ok ? "exactly the committed writes, each once" : "MISMATCH");
	return ok ? 0 : 1;
}

static int cmd_verify(const struct demo *d, const char *outcomes)
{
	struct result *res = NULL;
	uint64_t n = 0, committed = 0;
	int bad = 0;

	if (read_outcomes(outcomes, &res, &n)) {
		fprintf(stderr, "tpc-demo: cannot read %s\n", outcomes);
		return 1;
	}
	for (uint64_t i = 0; i < n; i++)
		committed += res[i].outcome == OUT_COMMITTED;
	for (int i = 0; i < d->nkv; i++)
		bad |= verify_store(&d->kvs[i], res, n, committed);
	free(res);
	printf(bad ? "FAILED: a service does not hold exactly the committed writes\n"
		   : "OK: every service holds exactly the committed writes, each once\n");
	return bad;
}

static const char usage_text[] =
	"Usage: tpc-demo run --coordinator H:P --kv NAME=H:P [--kv ...] --txns N\n"
	"                    --outcomes FILE [--concurrency C] [--abort-every K]\n"
	"                    [--refuse-every R] [--progress FILE]\n"
	"                    [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n"
	"       tpc-demo verify --outcomes FILE --data NAME=DIR [--data ...]\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "coordinator", required_argument, NULL, 'c' },
		{ "kv", required_argument, NULL, 'k' },
		{ "data", required_argument, NULL, 'd' },
		{ "txns", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'C' },
		{ "abort-every", required_argument, NULL, 'a' },
		{ "refuse-every", required_argument, NULL, 'r' },
		{ "outcomes", required_argument, NULL, 'o' },
		{ "progress", required_argument, NULL, 'p' },
		{ "tls-cert", required_argument, NULL, 1 },
		{ "tls-key", required_argument, NULL, 2 },
		{ "tls-ca", required_argument, NULL, 3 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct demo d = { .txns = 1000, .concurrency = 16 };
	const char *coordinator = NULL, *outcomes = NULL;
	int c;

	if (argc < 2 || (strcmp(argv[1], "run") && strcmp(argv[1], "verify"))) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 || strcmp(argv[1], "--help") ? 2 : 0;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': coordinator = optarg; break;
		case 'k':
		case 'd':
			if (d.nkv == MAX_KV || parse_named(optarg, &d.kvs[d.nkv++])) {
				fprintf(stderr, "tpc-demo: bad --kv/--data %s (NAME=VALUE)\n", optarg);
				return 2;
			}
			break;
		case 'n': d.txns = strtoull(optarg, NULL, 10); break;
		case 'C': d.concurrency = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'a': d.abort_every = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'r': d.refuse_every = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'o': outcomes = optarg; break;
		case 'p': d.progress = fopen(optarg, "w"); break;
		case 1: d.tls.cert = optarg; break;
		case 2: d.tls.key = optarg; break;
		case 3: d.tls.ca = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (!outcomes || !d.nkv || (argv[1][0] == 'r' && (!coordinator || !d.txns ||
							      !d.concurrency))) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (argv[1][0] == 'v')
		return cmd_verify(&d, outcomes);
	int rc = cmd_run(&d, coordinator, outcomes);
	if (d.progress)
		fclose(d.progress);
	free(d.results);
	free(d.slots);
	return rc;
}
