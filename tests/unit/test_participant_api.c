/*
 * test_participant_api.c - libtpc's participant calls that need no coordinator: the
 * counters (tpc_participant_get_stats), the prepared list (tpc_participant_list_prepared)
 * and the last error (tpc_participant_errmsg), attached to the test's own loop and
 * started on the library's thread; and what start and the cross-thread calls do when
 * the system refuses them.
 *
 * The coordinator address is a closed port: the participant keeps reconnecting, which
 * these calls must not depend on. pthread_create and write are wrapped
 * (-Wl,--wrap=pthread_create,--wrap=write; libtpc is linked statically) so a test can
 * make thread creation fail, or the eventfd write that wakes the loop thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include <tpc/libevent.h>
#include <tpc/participant.h>
#include <tpc/sink_lmdb.h>

#include "part_blob.h"
#include "part_log.h"
#include "proc.h"
#include "util.h"

/* ---- wrapped system calls -------------------------------------------------------- */

int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *),
			  void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *),
			  void *arg);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

static int fail_thread_at; /* 0: never; N: the Nth pthread_create from now fails */
static int eventfd_write_errno; /* 0: never; else every eventfd write fails with it */

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *),
			  void *arg)
{
	if (fail_thread_at && --fail_thread_at == 0)
		return EAGAIN; /* pthread_create returns its code and leaves errno alone */
	return __real_pthread_create(t, a, fn, arg);
}

static int is_eventfd(int fd)
{
	char path[64], target[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
	if (eventfd_write_errno && n == sizeof(uint64_t) && is_eventfd(fd)) {
		errno = eventfd_write_errno;
		return -1;
	}
	return __real_write(fd, buf, n);
}

/* ---- fixture ------------------------------------------------------------------------ */

struct fx {
	struct tpc_tmpdir *dir;
	char state_dir[sizeof(((struct tpc_tmpdir *)0)->path) + 16];
	char data_dir[sizeof(((struct tpc_tmpdir *)0)->path) + 16];
	tpc_participant_config cfg;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	if (!fx || !(fx->dir = tpc_tmpdir_new("part-api")))
		return -1;
	snprintf(fx->state_dir, sizeof(fx->state_dir), "%s/state", fx->dir->path);
	snprintf(fx->data_dir, sizeof(fx->data_dir), "%s/data", fx->dir->path);
	tpc_participant_config_init(&fx->cfg);
	fx->cfg.coordinator = "127.0.0.1:1"; /* nobody listens: connection refused */
	fx->cfg.name = "api";
	fx->cfg.state_dir = fx->state_dir;
	fx->cfg.map_size = 16u << 20;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	fail_thread_at = 0;
	eventfd_write_errno = 0;
	tpc_tmpdir_free(fx->dir);
	free(fx);
	return 0;
}

static tpc_participant *new_participant(struct fx *fx)
{
	int err = 0;
	tpc_sink *sink = tpc_sink_lmdb_open(fx->data_dir, 16u << 20, &err);
	if (!sink)
		fail_msg("sink: %s", tpc_strerror(err));
	tpc_participant *p = tpc_participant_new(&fx->cfg, sink, &err);
	if (!p)
		fail_msg("participant: %s", tpc_strerror(err));
	return p;
}

/* One PREPARED record with two writes in the state folder, as a crash would leave it. */
static void seed_prepared(struct fx *fx, uint64_t txid)
{
	struct part_log *l;
	struct part_blob b = { 0 };
	char err[256];
	size_t len;

	assert_int_equal(part_log_open(&l, fx->state_dir, 16u << 20, err, sizeof(err)), 0);
	assert_int_equal(part_blob_add(&b, "k1", 2, "v1", 2), 0);
	assert_int_equal(part_blob_add(&b, "k2", 2, "value2", 6), 0);
	const uint8_t *bytes = part_blob_bytes(&b, &len);
	struct part_log_put put = { .txid = txid, .wall_ms = 1, .epoch = 1, .incarnation = 1,
				    .blob = bytes, .blob_len = len };
	assert_int_equal(part_log_write(l, &put, 1, NULL, 0, 1), 0);
	part_blob_free(&b);
	part_log_close(l);
}

static void no_cb(void *arg, int err, tpc_txid txid)
{
	(void)arg;
	(void)err;
	(void)txid;
}

/* ---- the inspection calls ------------------------------------------------------------ */

static void test_list_prepared_names_a_recovered_prepared_transaction(void **state)
{
	struct fx *fx = *state;
	tpc_prepared_info *v = (void *)1;
	size_t n = 99;

	seed_prepared(fx, 41);
	tpc_participant *p = new_participant(fx);
	struct event_base *base = event_base_new();
	assert_int_equal(tpc_participant_attach(p, base), 0);
	assert_int_equal(tpc_participant_list_prepared(p, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].txid, 41);
	assert_int_equal(v[0].nrecords, 2);
	assert_int_equal(v[0].bytes, 2 + 2 + 2 + 6);
	free(v);
	tpc_participant_free(p);
	event_base_free(base);
}

static void test_list_prepared_of_an_empty_folder_is_null_and_zero(void **state)
{
	struct fx *fx = *state;
	tpc_prepared_info *v = (void *)1;
	size_t n = 99;

	tpc_participant *p = new_participant(fx);
	assert_int_equal(tpc_participant_start(p), 0);
	assert_int_equal(tpc_participant_list_prepared(p, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	tpc_participant_free(p);
}

static void test_errmsg_is_empty_then_says_why_a_stage_was_refused(void **state)
{
	struct fx *fx = *state;

	fx->cfg.max_open_txns = 1;
	tpc_participant *p = new_participant(fx);
	assert_string_equal(tpc_participant_errmsg(p), "");
	struct event_base *base = event_base_new();
	assert_int_equal(tpc_participant_attach(p, base), 0);
	assert_int_equal(tpc_participant_stage(p, 1, "k", 1, "v", 1, no_cb, NULL), 0);
	assert_int_equal(tpc_participant_stage(p, 2, "k", 1, "v", 1, no_cb, NULL), TPC_ELIMIT);
	assert_non_null(strstr(tpc_participant_errmsg(p), "too many open transactions"));
	tpc_participant_free(p);
	event_base_free(base);
}

static void test_get_stats_counts_joins_and_says_not_connected(void **state)
{
	struct fx *fx = *state;
	tpc_participant_stats st;

	tpc_participant *p = new_participant(fx);
	struct event_base *base = event_base_new();
	assert_int_equal(tpc_participant_attach(p, base), 0);
	assert_int_equal(tpc_participant_stage(p, 5, "a", 1, "1", 1, no_cb, NULL), 0);
	assert_int_equal(tpc_participant_stage(p, 5, "b", 1, "2", 1, no_cb, NULL), 0);
	assert_int_equal(tpc_participant_stage(p, 6, "c", 1, "3", 1, no_cb, NULL), 0);
	memset(&st, 0xff, sizeof(st));
	tpc_participant_get_stats(p, &st);
	assert_int_equal(st.joined, 2);
	assert_int_equal(st.connected, 0);
	assert_int_equal(st.highest_epoch, 0);
	tpc_participant_free(p);
	event_base_free(base);
}

static void test_get_stats_answers_from_any_thread_when_started(void **state)
{
	struct fx *fx = *state;
	tpc_participant_stats st;

	seed_prepared(fx, 7); /* its epoch (1) is the highest the folder has seen */
	tpc_participant *p = new_participant(fx);
	assert_int_equal(tpc_participant_start(p), 0);
	assert_int_equal(tpc_participant_start(p), TPC_ESTATE);
	memset(&st, 0xff, sizeof(st));
	tpc_participant_get_stats(p, &st);
	assert_int_equal(st.connected, 0);
	assert_int_equal(st.highest_epoch, 1);
	tpc_participant_free(p);
}

/* ---- when the system says no ----------------------------------------------------------- */

/* Every pthread_create of start in turn fails (the log writers' in attach, then the
 * loop thread's): start returns the code pthread_create gave, says why, keeps nothing
 * (LeakSanitizer checks) and can be called again. */
static void test_start_returns_the_thread_error_and_can_be_retried(void **state)
{
	struct fx *fx = *state;
	tpc_participant *p = new_participant(fx);
	int k, rc, last = 0;

	for (k = 1; k < 16; k++) {
		fail_thread_at = k;
		rc = tpc_participant_start(p);
		fail_thread_at = 0;
		if (rc == 0)
			break;
		assert_true(rc < 0);
		assert_true(tpc_participant_errmsg(p)[0] != '\0');
		last = rc;
	}
	assert_int_equal(rc, 0);
	assert_true(k >= 3); /* two writer threads and the loop thread at least */
	assert_int_equal(last, -EAGAIN); /* the loop thread's: pthread_create's own code */
	tpc_participant_stats st;
	tpc_participant_get_stats(p, &st);
	assert_int_equal(st.connected, 0);
	tpc_participant_free(p);
}

/* A call from another thread whose wake-up cannot be written fails with that error
 * instead of reporting success, and leaves nothing queued behind. */
static void test_a_call_that_cannot_wake_the_loop_fails_and_leaves_nothing_queued(void **state)
{
	struct fx *fx = *state;
	tpc_prepared_info *v = (void *)1;
	size_t n = 99;

	tpc_participant *p = new_participant(fx);
	assert_int_equal(tpc_participant_start(p), 0);
	eventfd_write_errno = EBADF;
	assert_int_equal(tpc_participant_stage_wait(p, 3, "k", 1, "v", 1), -EBADF);
	assert_non_null(strstr(tpc_participant_errmsg(p), "wake"));
	assert_int_equal(tpc_participant_list_prepared(p, &v, &n), -EBADF);
	assert_int_equal(n, 0);
	assert_null(v);
	tpc_participant_stats st;
	memset(&st, 0xff, sizeof(st));
	tpc_participant_get_stats(p, &st);
	assert_int_equal(st.joined, 0); /* all zero: nothing known */
	assert_int_equal(st.connected, 0);
	eventfd_write_errno = 0;
	/* The loop runs the next call, and only it: the failed ones were taken back. */
	assert_int_equal(tpc_participant_list_prepared(p, &v, &n), 0);
	assert_int_equal(n, 0);
	tpc_participant_get_stats(p, &st);
	assert_int_equal(st.joined, 0);
	tpc_participant_free(p);
}

/* Drain, attached: it runs the host's loop until its timeout; a prepared transaction
 * with no coordinator to decide it is reported in doubt; new txids are refused. */
static void test_drain_attached_reports_what_is_left_and_stops_new_work(void **state)
{
	struct fx *fx = *state;
	size_t in_doubt = 99;

	seed_prepared(fx, 77);
	tpc_participant *p = new_participant(fx);
	assert_int_equal(tpc_participant_drain(p, 0, NULL), TPC_ESTATE); /* not running */
	struct event_base *base = event_base_new();
	assert_int_equal(tpc_participant_attach(p, base), 0);
	assert_int_equal(tpc_participant_stage(p, 5, "a", 1, "1", 1, no_cb, NULL), 0);
	uint64_t t0 = tpc_now_ms();
	assert_int_equal(tpc_participant_drain(p, 150, &in_doubt), -ETIMEDOUT);
	assert_true(tpc_now_ms() - t0 >= 150);
	assert_int_equal(in_doubt, 1);
	assert_non_null(strstr(tpc_participant_errmsg(p), "2 transaction(s) left, 1 of them "
						  "prepared"));
	assert_int_equal(tpc_participant_stage(p, 5, "b", 1, "2", 1, no_cb, NULL), 0); /* held */
	assert_int_equal(tpc_participant_stage(p, 6, "c", 1, "3", 1, no_cb, NULL), TPC_ESTATE);
	assert_non_null(strstr(tpc_participant_errmsg(p), "draining"));
	tpc_participant_free(p);
	event_base_free(base);
}

/* Drain with nothing under way returns at once. */
static void test_drain_with_nothing_left_returns_zero_at_once(void **state)
{
	struct fx *fx = *state;
	size_t in_doubt = 99;

	tpc_participant *p = new_participant(fx);
	assert_int_equal(tpc_participant_start(p), 0);
	assert_int_equal(tpc_participant_drain(p, 60000, &in_doubt), 0);
	assert_int_equal(in_doubt, 0);
	tpc_participant_free(p);
}

/* Two LMDB environments on one file in one process break LMDB's locking: refused. */
static void test_an_lmdb_sink_in_the_state_folder_is_refused(void **state)
{
	struct fx *fx = *state;
	int err = 0;
	tpc_sink *sink = tpc_sink_lmdb_open(fx->state_dir, 16u << 20, &err);

	assert_non_null(sink);
	assert_null(tpc_participant_new(&fx->cfg, sink, &err)); /* frees the sink */
	assert_int_equal(err, -EINVAL);
	/* Its own folder: accepted. */
	tpc_participant *p = new_participant(fx);
	tpc_participant_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_list_prepared_names_a_recovered_prepared_transaction),
		T(test_list_prepared_of_an_empty_folder_is_null_and_zero),
		T(test_errmsg_is_empty_then_says_why_a_stage_was_refused),
		T(test_get_stats_counts_joins_and_says_not_connected),
		T(test_get_stats_answers_from_any_thread_when_started),
		T(test_start_returns_the_thread_error_and_can_be_retried),
		T(test_a_call_that_cannot_wake_the_loop_fails_and_leaves_nothing_queued),
		T(test_drain_attached_reports_what_is_left_and_stops_new_work),
		T(test_drain_with_nothing_left_returns_zero_at_once),
		T(test_an_lmdb_sink_in_the_state_folder_is_refused),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
