/*
 * test_ha.c - two tpc-coordinators of one group with their log in a real 3-member etcd
 * cluster (ctest runs this under scripts/etcd-cluster.sh, which sets
 * TPC_ETCD_ENDPOINTS): the standby refuses with ERR_NOT_LEADER naming the leader and
 * is not ready; kill -9 of the leader under load hands over within the lease + 1 s and
 * every transaction a client was told COMMITTED reaches every participant; a leader
 * paused past its lease never answers as leader again; without an etcd quorum the
 * leader decides nothing and stops, and once the members are back a coordinator leads.
 *
 * The participants and clients follow the leader: tpc-testpart given both addresses,
 * libtpc's participant and client (in this process) given "standby,leader" and
 * "dead,leader,standby"; after kill -9 of the leader they go on with the new one, never
 * restarted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/wait.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "httpc.h"
#include "tpc/client.h"
#include "tpc/participant.h"

#define LEASE_MS 2000
#define NCOMMIT 16

struct coord {
	tpc_proc *proc;
	int port, admin;
	char addr[64], admin_addr[64], log[PATH_MAX + 32];
};

struct ha {
	struct cluster *c;
	char group[64];
	struct coord co[2];
};

static int setup(void **state)
{
	struct ha *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	if (!getenv("TPC_ETCD_ENDPOINTS")) {
		free(h);
		print_message("TPC_ETCD_ENDPOINTS unset: run under scripts/etcd-cluster.sh\n");
		skip();
	}
	assert_int_equal(cluster_setup((void **)&h->c), 0);
	snprintf(h->group, sizeof(h->group), "ha%llu", (unsigned long long)now_ms());
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct ha *h = *state;
	void *c = h->c;

	cluster_teardown(&c);
	free(h);
	return 0;
}

static void coord_up(struct ha *h, int i)
{
	struct coord *co = &h->co[i];
	char lease[16];

	co->port = tpc_free_port();
	co->admin = tpc_free_port();
	snprintf(co->addr, sizeof(co->addr), "127.0.0.1:%d", co->port);
	snprintf(co->admin_addr, sizeof(co->admin_addr), "127.0.0.1:%d", co->admin);
	snprintf(co->log, sizeof(co->log), "%s/coord%d.log", h->c->dir, i);
	snprintf(lease, sizeof(lease), "%dms", LEASE_MS);
	char *argv[] = { TPC_COORDINATOR_BIN, "--log", "etcd", "--etcd-endpoints",
			 getenv("TPC_ETCD_ENDPOINTS"), "--group", h->group, "--lease", lease,
			 "--listen", co->addr, "--admin", co->admin_addr, NULL };
	co->proc = tpc_proc_spawn(h->c->procs, argv, co->log);
	assert_non_null(co->proc);
	assert_int_equal(tpc_wait_port("127.0.0.1", co->port, WAIT_MS), 0);
	assert_int_equal(tpc_wait_port("127.0.0.1", co->admin, WAIT_MS), 0);
}

static int readyz(const struct coord *co)
{
	struct httpc_resp r;
	int status;

	if (httpc_request("127.0.0.1", co->admin, "GET", "/readyz", NULL, NULL, 1000, &r))
		return 0;
	status = r.status;
	httpc_resp_free(&r);
	return status;
}

/* Poll /readyz until 200: the milliseconds it took, or fail after @p max_ms. */
static uint64_t wait_ready(const struct coord *co, uint64_t since, uint64_t max_ms)
{
	while (readyz(co) != 200) {
		if (now_ms() - since > max_ms)
			fail_msg("%s not ready within %llu ms", co->addr, (unsigned long long)max_ms);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* the poll's pace */
	}
	return now_ms() - since;
}

/* The leader A (co[0]) and the standby B (co[1]). */
static void leader_and_standby(struct ha *h)
{
	coord_up(h, 0);
	wait_ready(&h->co[0], now_ms(), WAIT_MS);
	coord_up(h, 1);
	assert_int_equal(readyz(&h->co[1]), 503);
}

/* Point the harness (participants, clients) at coordinator @p i. */
static void use(struct ha *h, int i)
{
	snprintf(h->c->hostport, sizeof(h->c->hostport), "%s", h->co[i].addr);
	h->c->port = h->co[i].port;
}

static void test_a_standby_names_the_leader_and_is_not_ready(void **state)
{
	struct ha *h = *state;
	Tpc__Envelope req = TPC__ENVELOPE__INIT, *reply;
	Tpc__StatusQuery q = TPC__STATUS_QUERY__INIT;

	leader_and_standby(h);
	use(h, 1);
	tpc_wc *wc = client_open_raw(h->c);
	q.txid = 1;
	req.body_case = TPC__ENVELOPE__BODY_STATUS_QUERY;
	req.status_query = &q;
	assert_int_equal(tpc_wc_send(wc, &req), 0);
	reply = tpc_wc_recv(wc, WAIT_MS);
	assert_non_null(reply);
	assert_int_equal(reply->body_case, TPC__ENVELOPE__BODY_ERROR);
	assert_int_equal(reply->error->code, TPC__ERROR_CODE__ERR_NOT_LEADER);
	assert_string_equal(reply->error->leader, h->co[0].addr);
	assert_non_null(strstr(reply->error->message, h->co[0].addr));
	tpc__envelope__free_unpacked(reply, NULL);
	assert_null(tpc_wc_recv(wc, WAIT_MS)); /* and the connection is closed */
	client_close(h->c, wc);
}

/* Every txid in @p txids reaches both participants and B says COMMITTED for it. */
static void assert_all_delivered(struct ha *h, tpc_wc *wc, const uint64_t *txids, int n)
{
	uint64_t t0 = now_ms();

	for (int k = 0; k < n; k++) {
		client_status_expect(wc, txids[k], TPC__TXN_STATUS__STATUS_COMMITTED);
		for (int p = 0; p < 2; p++) {
			while (part_state_count(h->c, p, 'C', txids[k]) != 1) {
				if (now_ms() - t0 > WAIT_MS)
					fail_msg("txid %llu never applied by p%d",
						 (unsigned long long)txids[k], p);
				struct timespec ts = { 0, 10 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
		}
	}
}

static void test_kill_9_of_the_leader_under_load_hands_over_and_loses_no_commit(void **state)
{
	struct ha *h = *state;
	struct cluster *c = h->c;
	uint64_t committed[NCOMMIT + 4], active[3];
	int ncommitted = 0;
	char key[32];

	leader_and_standby(h);
	/* The participants are given both addresses: they follow the leader. */
	snprintf(c->hostport, sizeof(c->hostport), "%.31s,%.31s", h->co[1].addr,
		 h->co[0].addr);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	use(h, 0);
	uint64_t epoch_a = 0, epoch_b = 0;
	tpc_wc *wc = client_open(c, &epoch_a);
	for (int k = 0; k < NCOMMIT; k++) {
		snprintf(key, sizeof(key), "order-%d", k);
		committed[ncommitted] = client_begin_joined(c, wc, key, 2);
		client_commit_expect(wc, committed[ncommitted++], TPC__OUTCOME_KIND__OUTCOME_COMMITTED,
				     NULL, 0);
	}
	for (int k = 0; k < 3; k++) /* open, never committed: presumed abort after */
		active[k] = client_begin_joined(c, wc, NULL, 2);
	uint64_t last = client_begin_joined(c, wc, "order-last", 2);
	client_send_commit(wc, last); /* in flight when the leader dies */

	uint64_t t0 = now_ms();
	assert_int_equal(tpc_proc_kill9(h->co[0].proc), 0);
	Tpc__Envelope *late = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_OUTCOME, 200);
	if (late && late->outcome->outcome == TPC__OUTCOME_KIND__OUTCOME_COMMITTED)
		committed[ncommitted++] = last; /* told COMMITTED before the end: must survive */
	if (late)
		tpc__envelope__free_unpacked(late, NULL);
	client_close(c, wc);

	uint64_t ready_ms = wait_ready(&h->co[1], t0, LEASE_MS + 1000);
	for (int p = 0; p < 2; p++)
		part_wait_ready(c, p); /* they found the new leader by themselves */
	use(h, 1); /* the test's own wire client takes one address */
	wc = client_open(c, &epoch_b);
	assert_true(epoch_b > epoch_a); /* the new leader's epoch (D7) */
	uint64_t txid = client_begin_joined(c, wc, "after", 2);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	uint64_t first_commit_ms = now_ms() - t0;
	print_message("takeover: new leader ready %llu ms after kill -9 (lease %d ms); first "
		      "commit decided by it %llu ms after (the participants followed it)\n",
		      (unsigned long long)ready_ms, LEASE_MS, (unsigned long long)first_commit_ms);
	assert_all_delivered(h, wc, committed, ncommitted);
	for (int k = 0; k < 3; k++)
		client_status_expect(wc, active[k], TPC__TXN_STATUS__STATUS_ABORTED);
}

/* ---- libtpc's participant and client follow the leader ---------------------------- */

struct counting_sink {
	pthread_mutex_t mu;
	uint64_t commits;
};

static int cs_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t len)
{
	(void)self, (void)txn, (void)reason, (void)len;
	return 0;
}

static int cs_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	struct counting_sink *cs = self;

	(void)txns;
	pthread_mutex_lock(&cs->mu);
	cs->commits += n;
	pthread_mutex_unlock(&cs->mu);
	return 0;
}

static const tpc_sink_ops counting_ops = { .prepare = cs_prepare, .commit = cs_commit };

static uint64_t commits_of(struct counting_sink *cs)
{
	pthread_mutex_lock(&cs->mu);
	uint64_t n = cs->commits;
	pthread_mutex_unlock(&cs->mu);
	return n;
}

static tpc_participant *lib_part(struct ha *h, const char *name, const char *coords,
				 struct counting_sink *cs)
{
	char dir[PATH_MAX + 64];
	tpc_participant_config cfg;
	int err = 0;

	snprintf(dir, sizeof(dir), "%s/%s", h->c->dir, name);
	tpc_participant_config_init(&cfg);
	cfg.coordinator = coords;
	cfg.name = name;
	cfg.state_dir = dir;
	tpc_participant *p = tpc_participant_new(&cfg, tpc_sink_new(&counting_ops, cs), &err);
	assert_non_null(p);
	assert_int_equal(tpc_participant_start(p), 0);
	return p;
}

static tpc_client *lib_client(const char *coords)
{
	tpc_client_config cfg;
	int err = 0;

	tpc_client_config_init(&cfg);
	cfg.coordinator = coords;
	cfg.connect_timeout_ms = 1000;
	tpc_client *cl = tpc_client_new(&cfg, &err);
	assert_non_null(cl);
	return cl;
}

/* One transaction through @p cl on both participants: 0 when COMMITTED, else why not
 * (in @p why). */
static int one_commit(tpc_client *cl, tpc_participant *const ps[2], const char *key,
		      char *why, size_t len)
{
	tpc_txid txid = 0;
	tpc_begin_result br;
	tpc_outcome out = TPC_OUTCOME_UNKNOWN;
	int rc = tpc_client_begin(cl, NULL, 0, &txid, &br);

	snprintf(why, len, "begin: %s", tpc_client_errmsg(cl));
	for (int i = 0; !rc && i < 2; i++) {
		rc = tpc_participant_stage_wait(ps[i], txid, key, strlen(key), "v", 1);
		snprintf(why, len, "stage at lp%d: %s", i, tpc_participant_errmsg(ps[i]));
	}
	if (!rc) {
		rc = tpc_client_commit(cl, txid, &out, NULL, 0);
		snprintf(why, len, "commit: %s (%s)", tpc_client_errmsg(cl), tpc_outcome_str(out));
	}
	return rc ? rc : out == TPC_OUTCOME_COMMITTED ? 0 : -1;
}

/* Retry one_commit until it works or @p max_ms passed since @p since. */
static void commit_within(tpc_client *cl, tpc_participant *const ps[2], const char *key,
			  uint64_t since, uint64_t max_ms)
{
	char why[600];
	int rc;

	while ((rc = one_commit(cl, ps, key, why, sizeof(why))) != 0) {
		if (now_ms() - since > max_ms)
			fail_msg("no commit through %s within %llu ms: %d %s", key,
				 (unsigned long long)max_ms, rc, why);
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* the retry's pace */
	}
}

static void test_libtpc_given_standby_or_dead_first_works_and_follows_a_new_leader(
	void **state)
{
	struct ha *h = *state;
	struct counting_sink cs[2] = { { .mu = PTHREAD_MUTEX_INITIALIZER },
				       { .mu = PTHREAD_MUTEX_INITIALIZER } };
	char standby_first[160], dead_first[160];

	leader_and_standby(h);
	snprintf(standby_first, sizeof(standby_first), "%s,%s", h->co[1].addr, h->co[0].addr);
	/* dead first, then the leader; the standby last, to be found after the kill */
	snprintf(dead_first, sizeof(dead_first), "127.0.0.1:%d,%.31s,%.31s", tpc_free_port(),
		 h->co[0].addr, h->co[1].addr);
	tpc_participant *ps[2] = { lib_part(h, "lp0", standby_first, &cs[0]),
				   lib_part(h, "lp1", dead_first, &cs[1]) };
	tpc_client *cl[2] = { lib_client(standby_first), lib_client(dead_first) };
	for (int i = 0; i < 2; i++)
		commit_within(cl[i], ps, i ? "dead-first" : "standby-first", now_ms(), WAIT_MS);

	uint64_t t0 = now_ms();
	assert_int_equal(tpc_proc_kill9(h->co[0].proc), 0);
	uint64_t before = commits_of(&cs[0]);
	commit_within(cl[0], ps, "after-kill", t0, LEASE_MS + WAIT_MS);
	uint64_t took = now_ms() - t0;
	commit_within(cl[1], ps, "after-kill-2", t0, LEASE_MS + WAIT_MS);
	print_message("libtpc: first commit through the new leader %llu ms after kill -9 of "
		      "the leader (lease %d ms), nothing restarted\n", (unsigned long long)took,
		      LEASE_MS);
	assert_int_equal(readyz(&h->co[1]), 200);
	uint64_t t1 = now_ms();
	while (commits_of(&cs[0]) < before + 2 || commits_of(&cs[1]) < before + 2) {
		if (now_ms() - t1 > WAIT_MS)
			fail_msg("the commits after the takeover did not reach both sinks");
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < 2; i++) {
		tpc_client_free(cl[i]);
		tpc_participant_free(ps[i]);
	}
}

static void test_a_leader_paused_past_its_lease_never_answers_as_leader_again(void **state)
{
	struct ha *h = *state;
	int status = 0;

	leader_and_standby(h);
	use(h, 0);
	tpc_wc *wc = client_open(h->c, NULL); /* connected before the pause */
	assert_int_equal(kill(tpc_proc_pid(h->co[0].proc), SIGSTOP), 0);
	uint64_t t0 = now_ms();
	wait_ready(&h->co[1], t0, LEASE_MS + 1000 + WAIT_MS);
	assert_int_equal(kill(tpc_proc_pid(h->co[0].proc), SIGCONT), 0);
	/* A Begin on the old connection: an Error or the close, never a BeginReply. */
	struct tpc_wc_begin b;
	int rc = tpc_wc_begin(wc, NULL, 0, &b);
	assert_int_not_equal(rc, 0);
	if (rc == TPC_WC_EREPLY)
		assert_int_equal(tpc_wc_error_code(wc), TPC__ERROR_CODE__ERR_NOT_LEADER);
	client_close(h->c, wc);
	assert_int_equal(tpc_proc_wait_exit(h->co[0].proc, WAIT_MS, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	assert_int_equal(readyz(&h->co[1]), 200);
}

static void etcd_member(const char *what, int n)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "%s/scripts/etcd-cluster.sh %s %d", TPC_SOURCE_DIR, what, n);
	assert_int_equal(system(cmd), 0);
}

/* With two of three etcd members gone nothing can be logged: the leader decides
 * nothing, says why and stops; once they are back a coordinator leads again. */
static void test_without_an_etcd_quorum_the_leader_stops_deciding_and_a_new_one_leads(
	void **state)
{
	struct ha *h = *state;
	struct cluster *c = h->c;
	struct tpc_wc_outcome out;
	int status = 0;

	if (!getenv("TPC_ETCD_RUN"))
		skip();
	coord_up(h, 0);
	wait_ready(&h->co[0], now_ms(), WAIT_MS);
	use(h, 0);
	part_start(c, 0, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, "no-quorum", 1);
	etcd_member("kill", 2);
	etcd_member("kill", 3);
	int rc = tpc_wc_commit(wc, txid, &out);
	if (rc == 0) /* answered before it stepped down: never COMMITTED */
		assert_int_equal(out.outcome, TPC__OUTCOME_KIND__OUTCOME_UNKNOWN);
	assert_int_equal(tpc_proc_wait_exit(h->co[0].proc, 4 * WAIT_MS, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	client_close(c, wc);
	etcd_member("restart", 2);
	etcd_member("restart", 3);
	coord_up(h, 1);
	wait_ready(&h->co[1], now_ms(), LEASE_MS + 2 * WAIT_MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_standby_names_the_leader_and_is_not_ready,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_kill_9_of_the_leader_under_load_hands_over_and_loses_no_commit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_libtpc_given_standby_or_dead_first_works_and_follows_a_new_leader,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_leader_paused_past_its_lease_never_answers_as_leader_again, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_without_an_etcd_quorum_the_leader_stops_deciding_and_a_new_one_leads,
			setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
