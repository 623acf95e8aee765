/*
 * test_library.c - libtpc as a service adopting it meets it (issue 14, the library),
 * with a real tpc-coordinator (admin API on a free port) and the library in processes:
 * examples/embed, tpc-kv, and the test itself as the initiator.
 *
 * Covered:
 *  - examples/embed drains its participant before it exits: the coordinator is left
 *    with no open transaction (before tpc_participant_drain() it kept one, waiting for
 *    the example's Ack, on every run).
 *
 * Nothing sleeps a fixed time: each wait polls a condition against a deadline. The
 * cluster (coord_harness.c) kills every process and removes the folder in teardown.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include "coord_harness.h"
#include "httpc.h"
#include "kv_harness.h"

#define POLL_MS 20

struct fx {
	struct cluster *c;
	int admin_port;
	char admin[64];
};

static int setup(void **state)
{
	void *inner = NULL;
	struct fx *f;

	cluster_setup(&inner);
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->c = inner;
	f->admin_port = tpc_free_port();
	assert_true(f->admin_port > 0);
	snprintf(f->admin, sizeof(f->admin), "127.0.0.1:%d", f->admin_port);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	void *inner = f->c;

	free(f);
	return cluster_teardown(&inner);
}

static void start_coordinator(struct fx *f)
{
	coord_start(f->c, NULL, "--admin", f->admin, "--txn-timeout", "120s", NULL);
	if (tpc_wait_port("127.0.0.1", f->admin_port, WAIT_MS) != 0)
		fail_msg("the admin API did not listen on %s", f->admin);
}

/* GET @p path: the JSON body (the caller decrefs) and *status. */
static json_t *admin_get(struct fx *f, const char *path, int *status)
{
	struct httpc_resp r;
	json_error_t err;
	int rc = httpc_request("127.0.0.1", f->admin_port, "GET", path, NULL, NULL, WAIT_MS, &r);

	if (rc != 0)
		fail_msg("GET %s: %s", path, strerror(-rc));
	json_t *j = json_loads(r.body, 0, &err);
	*status = r.status;
	if (!j)
		fail_msg("GET %s: status %d, not JSON: %s", path, r.status, r.body);
	httpc_resp_free(&r);
	return j;
}

/* The coordinator's count of open transactions. */
static long long open_txns(struct fx *f)
{
	int status;
	json_t *j = admin_get(f, "/v1/transactions", &status);
	long long n = json_integer_value(json_object_get(j, "open"));

	assert_int_equal(status, 200);
	json_decref(j);
	return n;
}

/* ---- 1. drain ---------------------------------------------------------------------- */

static void test_embed_example_leaves_no_open_transaction(void **state)
{
	struct fx *f = *state;
	char data[PATH_MAX + 16], out[512];
	int status = -1;

	start_coordinator(f);
	snprintf(data, sizeof(data), "%s/embed", f->c->dir);
	char *argv[] = { TPC_EMBED_BIN, f->c->hostport, data, NULL };
	for (int run = 0; run < 2; run++) {
		assert_int_equal(tpc_run_capture(argv, out, sizeof(out), WAIT_MS, &status), 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(out, "COMMITTED"))
			fail_msg("run %d: embed exited %d: %s", run, status, out);
		/* The Ack left before the example exited: the coordinator completes the
		 * transaction once it reads it. Without the drain it never does. */
		uint64_t deadline = now_ms() + WAIT_MS;
		long long n;
		while ((n = open_txns(f)) != 0) {
			if (now_ms() >= deadline)
				fail_msg("run %d: the coordinator still has %lld open transaction(s) "
					 "after embed exited", run, n);
			poll(NULL, 0, POLL_MS);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_embed_example_leaves_no_open_transaction,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
