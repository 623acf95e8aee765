/*
 * test_log_parity.c - the coordinator's two logs, LMDB (log_store.c) and etcd
 * (log_etcd.c), give the same answers: every behaviour test below runs once against
 * each. The etcd tests need a real cluster: ctest runs this under
 * scripts/etcd-cluster.sh, which sets TPC_ETCD_ENDPOINTS (and TPC_ETCD_RUN); each test
 * uses a group of its own. The etcd-only tests at the end cover leadership, fencing,
 * a batch past etcd's per-transaction limits, and a lost etcd member.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etcd_client.h"
#include "log_etcd.h"
#include "log_store.h"
#include "proc.h"
#include "util.h"

#define NBIG 1000

struct fix {
	int etcd;
	char dir[PATH_MAX];          /* LMDB */
	char group[64];              /* etcd */
	struct coord_log log;
	int open;
	uint32_t lease_ms;           /* etcd: 0 for the shortest, 2 s */
};

static const char *endpoints(void)
{
	return getenv("TPC_ETCD_ENDPOINTS");
}

static void fix_open(struct fix *f)
{
	char err[256] = "";
	int rc;

	if (f->etcd) {
		struct coord_etcd_opts o = { .endpoints = endpoints(), .group = f->group,
					     .lease_ms = f->lease_ms ? f->lease_ms : 2000,
					     .advertise = "127.0.0.1:7400" };
		rc = coord_log_etcd_open(&f->log, &o, err, sizeof(err));
		if (rc == 0)
			rc = coord_log_etcd_campaign(&f->log, 10000, NULL, 0) == 1 ? 0 : -EAGAIN;
	} else {
		rc = coord_log_lmdb_open(&f->log, f->dir, 0, err, sizeof(err));
	}
	if (rc)
		fail_msg("open (%s): %d %s", f->etcd ? "etcd" : "lmdb", rc, err);
	f->open = 1;
}

static void fix_reopen(struct fix *f)
{
	f->log.ops->close(f->log.self); /* etcd: revokes the lease, so leadership is free */
	f->open = 0;
	fix_open(f);
}

static int setup_common(void **state, int etcd)
{
	static unsigned serial; /* names the test's etcd group */
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->etcd = etcd;
	if (etcd) {
		if (!endpoints()) {
			free(f);
			print_message("TPC_ETCD_ENDPOINTS unset: run under scripts/etcd-cluster.sh\n");
			skip();
		}
		snprintf(f->group, sizeof(f->group), "t%d-%u-%llu", (int)getpid(), ++serial,
			 (unsigned long long)tpc_now_ns());
	} else {
		assert_int_equal(tpc_tmpdir_make(f->dir, sizeof(f->dir)), 0);
	}
	fix_open(f);
	*state = f;
	return 0;
}

static int setup_lmdb(void **state)
{
	return setup_common(state, 0);
}

static int setup_etcd(void **state)
{
	return setup_common(state, 1);
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (f->open)
		f->log.ops->close(f->log.self);
	if (!f->etcd)
		tpc_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ records */

static const char *const PARTS[] = { "pay", "ship" };

/* Write @p n records as one batch. */
static int batch(struct fix *f, struct coord_rec *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		r[i].item.next = i + 1 < n ? &r[i + 1].item : NULL;
	return f->log.ops->write_batch(f->log.self, r, n);
}

static void commit(struct fix *f, uint64_t txid, uint64_t wall, const char *key)
{
	struct coord_rec r = { .type = COORD_REC_COMMIT, .txid = txid, .wall_ms = wall,
			       .key = key, .key_len = key ? strlen(key) : 0, .nparts = 2,
			       .parts = PARTS };
	assert_int_equal(batch(f, &r, 1), 0);
}

static void complete(struct fix *f, uint64_t txid, uint64_t wall, int forget)
{
	struct coord_rec r = { .type = COORD_REC_COMPLETE, .txid = txid, .wall_ms = wall,
			       .forget = forget };
	assert_int_equal(batch(f, &r, 1), 0);
}

static struct coord_rec sweep(struct fix *f, uint64_t outcome_before, uint64_t keys_before,
			      uint64_t audit_before, uint32_t limit)
{
	struct coord_rec r = { .type = COORD_REC_SWEEP, .sweep_outcome_before_ms = outcome_before,
			       .sweep_keys_before_ms = keys_before,
			       .sweep_audit_before_ms = audit_before, .sweep_limit = limit };
	assert_int_equal(batch(f, &r, 1), 0);
	return r;
}

static int lookup(struct fix *f, uint64_t txid)
{
	return f->log.ops->lookup_txid(f->log.self, txid);
}

static int key_txid(struct fix *f, const char *key, uint64_t *txid)
{
	struct coord_key_info info = { 0 };
	int rc = f->log.ops->lookup_key(f->log.self, key, strlen(key), &info);

	*txid = info.txid;
	return rc;
}

struct loaded {
	uint64_t txid[NBIG + 8];
	size_t n;
	int parts_ok;
};

static int on_decision(void *arg, const struct coord_decision *d)
{
	struct loaded *l = arg;

	l->parts_ok &= d->nparts == 2 && !strcmp(d->parts[0], "pay") &&
		       !strcmp(d->parts[1], "ship");
	if (l->n < NBIG + 8)
		l->txid[l->n++] = d->txid;
	return 0;
}

static struct loaded *load(struct fix *f)
{
	struct loaded *l = calloc(1, sizeof(*l));

	assert_non_null(l);
	l->parts_ok = 1;
	assert_int_equal(f->log.ops->load_decisions(f->log.self, on_decision, l), 0);
	assert_true(l->parts_ok);
	return l;
}

/* ------------------------------------------------------------------ both logs */

static void test_meta_starts_empty_and_survives_a_reopen(void **state)
{
	struct fix *f = *state;
	uint64_t id = 9, epoch = 9;

	assert_int_equal(f->log.ops->read_meta(f->log.self, &id, &epoch), 0);
	assert_int_equal(id, 0);
	assert_int_equal(epoch, 0);
	assert_int_equal(f->log.ops->write_meta(f->log.self, 3, 41), 0);
	fix_reopen(f);
	assert_int_equal(f->log.ops->read_meta(f->log.self, &id, &epoch), 0);
	assert_int_equal(id, 3);
	assert_int_equal(epoch, 41);
}

static void test_commit_is_found_by_txid_and_key_and_loaded(void **state)
{
	struct fix *f = *state;
	uint64_t txid = 0;

	commit(f, 0x100000001, 1000, "order-7");
	commit(f, 0x100000002, 1001, NULL);
	fix_reopen(f);
	assert_int_equal(lookup(f, 0x100000001), COORD_LOOKUP_COMMITTED);
	assert_int_equal(lookup(f, 0x100000003), COORD_LOOKUP_NONE);
	assert_int_equal(key_txid(f, "order-7", &txid), 1);
	assert_int_equal(txid, 0x100000001);
	assert_int_equal(key_txid(f, "order-8", &txid), 0);
	struct loaded *l = load(f);
	assert_int_equal(l->n, 2);
	assert_int_equal(l->txid[0], 0x100000001);
	assert_int_equal(l->txid[1], 0x100000002);
	free(l);
}

static void test_completed_decision_still_answers_but_is_not_loaded(void **state)
{
	struct fix *f = *state;
	uint64_t d = 0, k = 0;

	commit(f, 5, 1000, "k5");
	commit(f, 6, 1000, "k6");
	complete(f, 5, 2000, 0);
	complete(f, 404, 2000, 0); /* never logged: nothing to do */
	assert_int_equal(lookup(f, 5), COORD_LOOKUP_COMMITTED);
	assert_int_equal(lookup(f, 404), COORD_LOOKUP_NONE);
	struct loaded *l = load(f);
	assert_int_equal(l->n, 1);
	assert_int_equal(l->txid[0], 6);
	free(l);
	assert_int_equal(f->log.ops->stats(f->log.self, &d, &k, NULL), 0);
	assert_int_equal(d, 2);
	assert_int_equal(k, 2);
}

static void test_forgotten_outcomes_answer_forgotten_below_the_horizon(void **state)
{
	struct fix *f = *state;

	commit(f, 10, 1000, NULL);
	commit(f, 20, 1000, NULL);
	complete(f, 20, 2000, 1);
	fix_reopen(f);
	assert_int_equal(lookup(f, 20), COORD_LOOKUP_FORGOTTEN);
	assert_int_equal(lookup(f, 15), COORD_LOOKUP_FORGOTTEN);
	assert_int_equal(lookup(f, 10), COORD_LOOKUP_COMMITTED);
	assert_int_equal(lookup(f, 21), COORD_LOOKUP_NONE);
}

static void test_sweep_drops_old_tombstones_and_keys_and_keeps_live_commits(void **state)
{
	struct fix *f = *state;
	uint64_t txid;

	commit(f, 1, 100, "old");
	commit(f, 2, 100, "live");
	commit(f, 3, 5000, "young");
	complete(f, 1, 200, 0);
	complete(f, 3, 6000, 0);
	struct coord_rec r = sweep(f, 1000, 1000, 0, 100);
	assert_int_equal(r.sweep_more, 0);
	assert_int_equal(r.sweep_deleted, 3); /* tombstone 1; the keys "old" and "live" */
	assert_int_equal(lookup(f, 1), COORD_LOOKUP_FORGOTTEN);
	assert_int_equal(lookup(f, 2), COORD_LOOKUP_COMMITTED);
	assert_int_equal(lookup(f, 3), COORD_LOOKUP_COMMITTED);
	assert_int_equal(key_txid(f, "old", &txid), 0);
	assert_int_equal(key_txid(f, "live", &txid), 0);
	assert_int_equal(key_txid(f, "young", &txid), 1);
}

static void test_sweep_stops_at_its_limit_and_says_there_is_more(void **state)
{
	struct fix *f = *state;
	struct coord_rec r;
	int passes = 0;

	for (uint64_t t = 1; t <= 7; t++) {
		commit(f, t, 100, NULL);
		complete(f, t, 200, 0);
	}
	do {
		r = sweep(f, 1000, 0, 0, 3);
		passes++;
	} while (r.sweep_more && passes < 10);
	assert_int_equal(passes, 3);
	for (uint64_t t = 1; t <= 7; t++)
		assert_int_equal(lookup(f, t), COORD_LOOKUP_FORGOTTEN);
}

/* More old entries than one etcd read brings back (2000): the passes go on until done. */
static void test_sweep_passes_repeat_until_thousands_of_old_tombstones_are_gone(void **state)
{
	struct fix *f = *state;
	enum { N = 2500 };
	struct coord_rec *r = calloc(N, sizeof(*r));
	uint64_t d = 1, deleted = 0;
	int passes = 0;

	assert_non_null(r);
	for (int type = COORD_REC_COMMIT; type <= COORD_REC_COMPLETE; type++) {
		for (size_t i = 0; i < N; i++)
			r[i] = (struct coord_rec){ .type = type, .txid = 1 + i, .wall_ms = 100,
						   .nparts = 2, .parts = PARTS };
		assert_int_equal(batch(f, r, N), 0);
	}
	free(r);
	struct coord_rec sw;
	do {
		sw = sweep(f, 1000, 0, 0, 10000);
		deleted += sw.sweep_deleted;
	} while (sw.sweep_more && ++passes < 5);
	assert_int_equal(deleted, N);
	assert_int_equal(f->log.ops->stats(f->log.self, &d, NULL, NULL), 0);
	assert_int_equal(d, 0);
	assert_int_equal(lookup(f, N), COORD_LOOKUP_FORGOTTEN);
}

static void test_drop_removes_the_decision_and_only_its_own_key(void **state)
{
	struct fix *f = *state;
	uint64_t txid;

	commit(f, 30, 100, "mine");
	commit(f, 31, 100, "shared");
	commit(f, 32, 100, "shared"); /* a newer transaction took the key */
	struct coord_rec d[2] = {
		{ .type = COORD_REC_DROP, .txid = 30, .key = "mine", .key_len = 4 },
		{ .type = COORD_REC_DROP, .txid = 31, .key = "shared", .key_len = 6 },
	};
	assert_int_equal(batch(f, d, 2), 0);
	assert_int_equal(lookup(f, 30), COORD_LOOKUP_NONE);
	assert_int_equal(lookup(f, 31), COORD_LOOKUP_NONE);
	assert_int_equal(key_txid(f, "mine", &txid), 0);
	assert_int_equal(key_txid(f, "shared", &txid), 1);
	assert_int_equal(txid, 32);
}

struct audit_seen {
	uint64_t id[8];
	size_t n;
};

static int on_audit(void *arg, uint64_t id, const char *text, size_t len)
{
	struct audit_seen *a = arg;

	assert_true(len > 0 && text[0] == '{');
	a->id[a->n++] = id;
	return 0;
}

static void audit_put(struct fix *f, uint64_t id, const char *at)
{
	char text[128];
	int n = snprintf(text, sizeof(text), "{\"id\":%llu,\"at\":\"%s\",\"action\":\"x\"}",
			 (unsigned long long)id, at);
	struct coord_rec r = { .type = COORD_REC_AUDIT, .audit_id = id, .text = text,
			       .text_len = (size_t)n };
	assert_int_equal(batch(f, &r, 1), 0);
}

static void test_audit_lists_newest_first_and_sweeps_by_age(void **state)
{
	struct fix *f = *state;
	struct audit_seen a = { 0 };

	audit_put(f, 1, "2020-01-01T00:00:00.000Z");
	audit_put(f, 2, "2020-01-02T00:00:00.000Z");
	audit_put(f, 3, "2030-01-01T00:00:00.000Z");
	assert_int_equal(f->log.ops->audit_list(f->log.self, 0, 2, on_audit, &a), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.id[0], 3);
	assert_int_equal(a.id[1], 2);
	a.n = 0;
	assert_int_equal(f->log.ops->audit_list(f->log.self, 3, 10, on_audit, &a), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.id[0], 2);
	sweep(f, 0, 0, 1577923200000ull /* 2020-01-02T00:00Z */, 100);
	a.n = 0;
	assert_int_equal(f->log.ops->audit_list(f->log.self, 0, 10, on_audit, &a), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.id[1], 2);
}

struct names {
	char name[4][16];
	unsigned char idbyte[4];
	size_t n;
};

static int on_binding(void *arg, const char *name, size_t len, const struct coord_binding *b)
{
	struct names *s = arg;

	assert_true(s->n < 4 && len < 16);
	memcpy(s->name[s->n], name, len);
	s->idbyte[s->n++] = b->participant_id[0];
	return 0;
}

static void test_bindings_load_in_name_order_and_unbind_removes_one(void **state)
{
	struct fix *f = *state;
	struct coord_binding b;
	struct names s = { 0 };
	struct coord_rec r[3] = {
		{ .type = COORD_REC_BIND, .name = "zeta", .name_len = 4, .wall_ms = 7,
		  .participant_id = { 0xaa } },
		{ .type = COORD_REC_BIND, .name = "alpha", .name_len = 5, .wall_ms = 8,
		  .participant_id = { 0xbb, [15] = 0x01 } },
		{ .type = COORD_REC_BIND, .name = "mid", .name_len = 3, .wall_ms = 9 },
	};

	assert_int_equal(batch(f, r, 3), 0);
	struct coord_rec u = { .type = COORD_REC_UNBIND, .name = "mid", .name_len = 3 };
	assert_int_equal(batch(f, &u, 1), 0);
	fix_reopen(f);
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, "alpha", 5, &b), 1);
	assert_int_equal(b.participant_id[15], 0x01);
	assert_int_equal(b.wall_ms, 8);
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, "mid", 3, &b), 0);
	assert_int_equal(f->log.ops->load_participants(f->log.self, on_binding, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.name[0], "alpha");
	assert_int_equal(s.idbyte[1], 0xaa);
}

/* Past etcd's 128 operations per transaction: a batch of NBIG COMMITs with keys. */
static void test_a_large_batch_is_whole_after_a_reopen(void **state)
{
	struct fix *f = *state;
	struct coord_rec *r = calloc(NBIG, sizeof(*r));
	char (*keys)[16] = calloc(NBIG, 16);
	uint64_t txid;

	assert_non_null(r);
	assert_non_null(keys);
	for (size_t i = 0; i < NBIG; i++) {
		snprintf(keys[i], 16, "key-%zu", i);
		r[i] = (struct coord_rec){ .type = COORD_REC_COMMIT, .txid = 1000 + i,
					   .wall_ms = 5, .key = keys[i],
					   .key_len = strlen(keys[i]), .nparts = 2,
					   .parts = PARTS };
	}
	assert_int_equal(batch(f, r, NBIG), 0);
	fix_reopen(f);
	struct loaded *l = load(f);
	assert_int_equal(l->n, NBIG);
	for (size_t i = 0; i < NBIG; i++)
		assert_int_equal(l->txid[i], 1000 + i);
	free(l);
	assert_int_equal(key_txid(f, "key-999", &txid), 1);
	assert_int_equal(txid, 1999);
	free(keys);
	free(r);
}

/* ------------------------------------------------------------------ etcd only */

static struct coord_etcd_opts opts_for(const struct fix *f, const char *addr)
{
	struct coord_etcd_opts o = { .endpoints = endpoints(), .group = f->group,
				     .lease_ms = 2000, .advertise = addr };
	return o;
}

/* Delete the group's leader key behind the leader's back (as a lease expiry does). */
static void delete_leader_key(const struct fix *f)
{
	struct etcd_client *c;
	char err[128], key[128];
	json_t *reply = NULL;
	int n = snprintf(key, sizeof(key), "/tpc/%s/leader", f->group);

	assert_int_equal(etcd_client_new(&c, endpoints(), 2000, err, sizeof(err)), 0);
	assert_int_equal(etcd_call(c, "/v3/kv/deleterange",
				   json_pack("{s:o}", "key", etcd_b64(key, (size_t)n)), &reply), 0);
	assert_int_equal(etcd_int(reply, "deleted"), 1);
	json_decref(reply);
	etcd_client_free(c);
}

static void test_a_standby_names_the_leader_and_cannot_write(void **state)
{
	struct fix *f = *state;
	struct coord_etcd_opts o = opts_for(f, "127.0.0.1:7500");
	struct coord_log b;
	char err[256], leader[64];

	assert_int_equal(coord_log_etcd_open(&b, &o, err, sizeof(err)), 0);
	assert_int_equal(coord_log_etcd_campaign(&b, 0, leader, sizeof(leader)), 0);
	assert_string_equal(leader, "127.0.0.1:7400");
	assert_int_equal(coord_log_etcd_is_leader(&b), 0);
	assert_int_equal(b.ops->write_meta(b.self, 1, 99), -ESTALE);
	assert_int_equal(coord_log_etcd_leader(&b, leader, sizeof(leader)), 0);
	assert_string_equal(leader, "127.0.0.1:7400");
	b.ops->close(b.self);
}

static void test_a_closed_leader_hands_over_at_once_to_a_waiting_standby(void **state)
{
	struct fix *f = *state;
	struct coord_etcd_opts o = opts_for(f, "127.0.0.1:7500");
	struct coord_log b;
	char err[256], leader[64];
	uint64_t id, epoch;

	assert_int_equal(f->log.ops->write_meta(f->log.self, 1, 5), 0);
	assert_int_equal(coord_log_etcd_open(&b, &o, err, sizeof(err)), 0);
	f->log.ops->close(f->log.self); /* revokes its lease: the leader key goes */
	f->open = 0;
	uint64_t t0 = tpc_now_ms();
	assert_int_equal(coord_log_etcd_campaign(&b, 10000, leader, sizeof(leader)), 1);
	assert_true(tpc_now_ms() - t0 < 1000);
	assert_string_equal(leader, "127.0.0.1:7500");
	assert_int_equal(b.ops->read_meta(b.self, &id, &epoch), 0);
	assert_int_equal(epoch, 5);
	assert_int_equal(b.ops->write_meta(b.self, 1, epoch + 1), 0);
	b.ops->close(b.self);
}

static void test_a_deposed_leader_cannot_write_once_another_leads(void **state)
{
	struct fix *f = *state;
	struct coord_etcd_opts o = opts_for(f, "127.0.0.1:7500");
	struct coord_log b;
	char err[256];

	commit(f, 1, 100, "before");
	assert_int_equal(coord_log_etcd_open(&b, &o, err, sizeof(err)), 0);
	delete_leader_key(f);
	assert_int_equal(coord_log_etcd_campaign(&b, 10000, NULL, 0), 1);
	assert_int_equal(coord_log_etcd_is_leader(&f->log), 1); /* it does not know yet */
	struct coord_rec r = { .type = COORD_REC_COMMIT, .txid = 2, .wall_ms = 100,
			       .key = "after", .key_len = 5, .nparts = 2, .parts = PARTS };
	assert_int_equal(batch(f, &r, 1), -ESTALE);
	assert_int_equal(coord_log_etcd_is_leader(&f->log), 0);
	assert_int_equal(b.ops->lookup_txid(b.self, 2), COORD_LOOKUP_NONE);
	assert_int_equal(b.ops->lookup_txid(b.self, 1), COORD_LOOKUP_COMMITTED);
	b.ops->close(b.self);
}

/* A commit that must go through: on failure, say why the store stopped leading. */
static void commit_or_say_why(struct fix *f, uint64_t txid, const char *key)
{
	struct coord_rec r = { .type = COORD_REC_COMMIT, .txid = txid, .wall_ms = 100,
			       .key = key, .key_len = strlen(key), .nparts = 2, .parts = PARTS };
	int rc = batch(f, &r, 1);

	if (rc)
		fail_msg("commit %llu: %d (%s)", (unsigned long long)txid, rc,
			 coord_log_etcd_lost_why(&f->log));
}

static void test_writes_go_on_with_one_etcd_member_down(void **state)
{
	struct fix *f = *state;
	const char *root = TPC_SOURCE_DIR "/scripts/etcd-cluster.sh";
	char cmd[PATH_MAX + 32];

	if (!getenv("TPC_ETCD_RUN"))
		skip();
	/* The coordinator's default lease: etcd's own leader election (1-2 s by default)
	 * must not cost the lead. The shortest lease, 2 s, gives up the lead after 1.33 s
	 * without an answered keepalive, sooner than etcd elects a new leader. */
	f->lease_ms = 5000;
	fix_reopen(f);
	/* The hardest member to lose: the first endpoint, the one the store talks to
	 * first, and etcd's raft leader, so etcd itself has no leader for a while. */
	snprintf(cmd, sizeof(cmd), "%s lead 1", root);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s kill 1", root);
	assert_int_equal(system(cmd), 0);
	commit_or_say_why(f, 77, "k77");
	assert_int_equal(lookup(f, 77), COORD_LOOKUP_COMMITTED);
	snprintf(cmd, sizeof(cmd), "%s restart 1", root);
	assert_int_equal(system(cmd), 0);
	commit_or_say_why(f, 78, "k78");
	assert_int_equal(lookup(f, 78), COORD_LOOKUP_COMMITTED);
}

#define BOTH(fn) cmocka_unit_test_setup_teardown(fn, setup_lmdb, teardown), \
		 cmocka_unit_test_setup_teardown(fn, setup_etcd, teardown)
#define ETCD(fn) cmocka_unit_test_setup_teardown(fn, setup_etcd, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_meta_starts_empty_and_survives_a_reopen),
		BOTH(test_commit_is_found_by_txid_and_key_and_loaded),
		BOTH(test_completed_decision_still_answers_but_is_not_loaded),
		BOTH(test_forgotten_outcomes_answer_forgotten_below_the_horizon),
		BOTH(test_sweep_drops_old_tombstones_and_keys_and_keeps_live_commits),
		BOTH(test_sweep_stops_at_its_limit_and_says_there_is_more),
		BOTH(test_sweep_passes_repeat_until_thousands_of_old_tombstones_are_gone),
		BOTH(test_drop_removes_the_decision_and_only_its_own_key),
		BOTH(test_audit_lists_newest_first_and_sweeps_by_age),
		BOTH(test_bindings_load_in_name_order_and_unbind_removes_one),
		BOTH(test_a_large_batch_is_whole_after_a_reopen),
		ETCD(test_a_standby_names_the_leader_and_cannot_write),
		ETCD(test_a_closed_leader_hands_over_at_once_to_a_waiting_standby),
		ETCD(test_a_deposed_leader_cannot_write_once_another_leads),
		ETCD(test_writes_go_on_with_one_etcd_member_down),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
