/*
 * test_coord_txid.c - txid allocation in the coordinator server (coord_next_txid,
 * server.c): a txid is epoch << 40 | seq, and when the 40-bit sequence is used up the
 * epoch is bumped durably (the log's meta) before the next txid is handed out.
 *
 * A bare struct coord_server with a real LMDB log in a temporary folder stands in for a
 * running server: the sequence is put near its limit directly, no process needed.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proc.h"
#include "server_int.h"

struct fix {
	char dir[PATH_MAX];
	struct coord_server s;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	assert_int_equal(tpc_tmpdir_make(f->dir, sizeof(f->dir)), 0);
	assert_int_equal(coord_log_lmdb_open(&f->s.store, f->dir, 0, err, sizeof(err)), 0);
	f->s.log.prog = "test";
	f->s.log.min = TPC_LOG_ERROR + 1; /* quiet */
	f->s.id = 1;
	f->s.epoch = 3;
	assert_int_equal(f->s.store.ops->write_meta(f->s.store.self, 1, 3), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	f->s.store.ops->close(f->s.store.self);
	tpc_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void test_txids_carry_the_epoch_and_count_up(void **state)
{
	struct fix *f = *state;

	assert_int_equal(coord_next_txid(&f->s), 3ull << 40 | 1);
	assert_int_equal(coord_next_txid(&f->s), 3ull << 40 | 2);
}

static void test_exhausted_sequence_bumps_the_epoch_durably(void **state)
{
	struct fix *f = *state;
	uint64_t id = 0, epoch = 0;

	f->s.next_seq = COORD_TXID_SEQ_MAX - 1;
	assert_int_equal(coord_next_txid(&f->s), 3ull << 40 | COORD_TXID_SEQ_MAX);
	assert_int_equal(f->s.epoch, 3);
	/* The next one would wrap into the epoch bits: a new epoch, stored first. */
	assert_int_equal(coord_next_txid(&f->s), 4ull << 40 | 1);
	assert_int_equal(f->s.epoch, 4);
	assert_int_equal(f->s.store.ops->read_meta(f->s.store.self, &id, &epoch), 0);
	assert_int_equal(id, 1);
	assert_int_equal(epoch, 4);
	assert_int_equal(coord_next_txid(&f->s), 4ull << 40 | 2);
}

static void test_no_txid_when_the_epoch_space_is_used_up(void **state)
{
	struct fix *f = *state;

	f->s.epoch = (1ull << 24) - 1;
	f->s.next_seq = COORD_TXID_SEQ_MAX;
	assert_int_equal(coord_next_txid(&f->s), 0);
	assert_int_equal(f->s.epoch, (1ull << 24) - 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_txids_carry_the_epoch_and_count_up),
		T(test_exhausted_sequence_bumps_the_epoch_durably),
		T(test_no_txid_when_the_epoch_space_is_used_up),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
