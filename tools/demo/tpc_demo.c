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
#include "cli.h"
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
	"       tpc-demo verify --outcomes FILE --data NAME=DIR [--data ...]\n"
	"\n"
	"The driver behind `make demo` (scripts/demo.sh): `run` sends N transactions, C at\n"
	"a time, each writing one key to every tpc-kv service, and writes every outcome the\n"
	"client was told to FILE; `verify` then reads each service's store and checks it\n"
	"holds exactly the committed writes, each once.\n"
	"\n"
	"  -C, --coordinator H:P      the coordinator (run)\n"
	"  -k, --kv NAME=H:P          a tpc-kv service to write to (run; repeatable)\n"
	"  -d, --data NAME=DIR        a tpc-kv service's data folder (verify; repeatable)\n"
	"  -N, --txns N               transactions to run (default 1000)\n"
	"      --concurrency C        transactions in flight (default 16)\n"
	"      --abort-every K        the client aborts every K-th transaction (default 0: none)\n"
	"      --refuse-every R       every R-th also writes refuse-me to the last service\n"
	"      --outcomes FILE        where run writes \"txid seq OUTCOME\" and verify reads it\n"
	"      --progress FILE        run appends the count done, as it goes\n"
	"      --tls-cert FILE, --tls-key FILE, --tls-ca FILE  mutual TLS everywhere\n"
	"  -h, --help                 show this help\n"
	"  -V, --version              show the version\n";

#define PROG "tpc-demo"

/* A count option: a whole number from @p lo to @p hi, or the house error. */
static int count_opt(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char what[64];

	if (tpc_parse_u64(v, lo, hi, out) == 0)
		return 0;
	snprintf(what, sizeof(what), "a whole number from %llu to %llu", (unsigned long long)lo,
		 (unsigned long long)hi);
	return tpc_cli_bad_value(PROG, opt, v, what);
}

static int u32_opt(const char *opt, const char *v, uint64_t lo, uint32_t *out)
{
	uint64_t n;
	int rc = count_opt(opt, v, lo, UINT32_MAX, &n);

	if (rc == 0)
		*out = (uint32_t)n;
	return rc;
}

static int take_opt(struct demo *d, int c, const char *v, const char **coordinator,
		    const char **outcomes)
{
	switch (c) {
	case 'C': *coordinator = v; return 0;
	case 'k':
	case 'd':
		if (d->nkv == MAX_KV || parse_named(v, &d->kvs[d->nkv++]))
			return tpc_cli_bad_value(PROG, c == 'k' ? "--kv" : "--data", v, "NAME=VALUE");
		return 0;
	case 'N': return count_opt("--txns", v, 1, UINT64_MAX / 2, &d->txns);
	case 2: return u32_opt("--concurrency", v, 1, &d->concurrency);
	case 3: return u32_opt("--abort-every", v, 0, &d->abort_every);
	case 4: return u32_opt("--refuse-every", v, 0, &d->refuse_every);
	case 5: *outcomes = v; return 0;
	case 6:
		d->progress = fopen(v, "w");
		return d->progress ? 0 : tpc_cli_bad_value(PROG, "--progress", v, "a writable file");
	case 7: d->tls.cert = v; return 0;
	case 8: d->tls.key = v; return 0;
	case 9: d->tls.ca = v; return 0;
	}
	return TPC_EXIT_USAGE;
}

static void help(void)
{
	fputs(usage_text, stdout);
	tpc_cli_exit_status(stdout, "run: every transaction done; verify: the stores hold "
			    "exactly the committed writes", "the driver failed, or verify found a "
			    "store that does not");
}

static int parse(int argc, char **argv, struct demo *d, const char **coordinator,
		 const char **outcomes)
{
	static const struct option opts[] = {
		{ "coordinator", required_argument, NULL, 'C' },
		{ "kv", required_argument, NULL, 'k' },
		{ "data", required_argument, NULL, 'd' },
		{ "txns", required_argument, NULL, 'N' },
		{ "concurrency", required_argument, NULL, 2 },
		{ "abort-every", required_argument, NULL, 3 },
		{ "refuse-every", required_argument, NULL, 4 },
		{ "outcomes", required_argument, NULL, 5 },
		{ "progress", required_argument, NULL, 6 },
		{ "tls-cert", required_argument, NULL, 7 },
		{ "tls-key", required_argument, NULL, 8 },
		{ "tls-ca", required_argument, NULL, 9 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;

	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":C:k:d:N:hV", opts, NULL)) != -1) {
		if (c == '?' || c == ':')
			return tpc_cli_getopt_error(PROG, c, argv);
		if (c == 'h') {
			help();
			return -1;
		}
		if (c == 'V')
			return tpc_cli_version(PROG) - 1;
		if ((rc = take_opt(d, c, optarg, coordinator, outcomes)))
			return rc;
	}
	if (optind < argc)
		return tpc_usage_error(PROG, "unexpected argument '%s'", argv[optind]);
	if (!*outcomes || !d->nkv || (argv[1][0] == 'r' && !*coordinator))
		return tpc_usage_error(PROG, "%s", argv[1][0] == 'r'
			? "run needs --coordinator, --kv and --outcomes"
			: "verify needs --outcomes and --data");
	return 0;
}

int main(int argc, char **argv)
{
	struct demo d = { .txns = 1000, .concurrency = 16 };
	const char *coordinator = NULL, *outcomes = NULL;
	int rc;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		help();
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")))
		return tpc_cli_version(PROG);
	if (argc < 2 || (strcmp(argv[1], "run") && strcmp(argv[1], "verify")))
		return argc < 2 ? tpc_usage_error(PROG, "expected run or verify")
				: tpc_usage_error(PROG, "unknown command '%s'", argv[1]);
	rc = parse(argc, argv, &d, &coordinator, &outcomes);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (argv[1][0] == 'v')
		return cmd_verify(&d, outcomes);
	rc = cmd_run(&d, coordinator, outcomes);
	if (d.progress)
		fclose(d.progress);
	free(d.results);
	free(d.slots);
	return rc;
}
