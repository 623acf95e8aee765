/*
 * test_part_log.c - the participant's state folder (participant/src/part_log.c): its
 * lock, its participant id and incarnations (D8), and the PREPARED record format that
 * keeps the incarnation that joined.
 *
 * Each test gets a fresh temporary folder. LMDB forbids opening one environment twice
 * in a process, so a test closes the log before it reads the folder another way.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <lmdb.h>

#include "part_blob.h"
#include "part_log.h"
#include "proc.h"

static int setup(void **state)
{
	*state = tpc_tmpdir_new("state");
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	tpc_tmpdir_free(*state);
	return 0;
}

static struct part_log *open_log(const struct tpc_tmpdir *f)
{
	struct part_log *l = NULL;
	char err[256] = "";

	if (part_log_open(&l, f->path, 0, err, sizeof(err)) != 0)
		fail_msg("part_log_open: %s", err);
	return l;
}

static void test_first_open_makes_an_id_and_every_open_is_a_new_incarnation(void **state)
{
	struct tpc_tmpdir *f = *state;
	uint8_t id1[PART_ID_LEN], id2[PART_ID_LEN], zero[PART_ID_LEN] = { 0 };
	uint64_t inc1 = 0, inc2 = 0;

	struct part_log *l = open_log(f);
	part_log_identity(l, id1, &inc1);
	part_log_close(l);
	l = open_log(f);
	part_log_identity(l, id2, &inc2);
	part_log_close(l);
	assert_memory_not_equal(id1, zero, PART_ID_LEN);
	assert_memory_equal(id1, id2, PART_ID_LEN);
	assert_int_equal(inc1, 1);
	assert_int_equal(inc2, 2);
}

static void test_another_folder_is_another_participant(void **state)
{
	struct tpc_tmpdir *f = *state;
	struct tpc_tmpdir *g = tpc_tmpdir_new("other");
	uint8_t id1[PART_ID_LEN], id2[PART_ID_LEN];
	uint64_t inc;

	assert_non_null(g);
	struct part_log *l = open_log(f), *m = open_log(g);
	part_log_identity(l, id1, &inc);
	part_log_identity(m, id2, &inc);
	assert_memory_not_equal(id1, id2, PART_ID_LEN);
	part_log_close(l);
	part_log_close(m);
	tpc_tmpdir_free(g);
}

static void test_second_open_is_locked_and_names_the_holder_pid(void **state)
{
	struct tpc_tmpdir *f = *state;
	struct part_log *l = open_log(f), *second = (void *)1;
	char err[256] = "", want[64];
	uint8_t id[PART_ID_LEN];
	uint64_t inc = 0;

	assert_int_equal(part_log_open(&second, f->path, 0, err, sizeof(err)), TPC_ELOCKED);
	assert_null(second);
	snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
	if (!strstr(err, want))
		fail_msg("\"%s\" does not name the holder %s", err, want);
	part_log_close(l);
	l = open_log(f); /* the lock goes with the holder; the refused open used no incarnation */
	part_log_identity(l, id, &inc);
	assert_int_equal(inc, 2);
	part_log_close(l);
}

struct loaded {
	size_t n;
	struct part_log_put rec[4];
};

static int collect(void *arg, const struct part_log_put *r)
{
	struct loaded *ld = arg;

	assert_true(ld->n < 4);
	ld->rec[ld->n++] = *r;
	return 0;
}

static void test_prepared_record_keeps_the_incarnation_that_joined(void **state)
{
	struct tpc_tmpdir *f = *state;
	struct part_blob b = { 0 };
	size_t len;
	struct loaded ld = { 0 };

	assert_int_equal(part_blob_add(&b, "k", 1, "v", 1), 0);
	const uint8_t *bytes = part_blob_bytes(&b, &len);
	struct part_log_put put = { .txid = 9, .wall_ms = 1234, .epoch = 3, .incarnation = 5,
				    .blob = bytes, .blob_len = len };
	struct part_log *l = open_log(f);
	assert_int_equal(part_log_write(l, &put, 1, NULL, 0, 3), 0);
	part_log_close(l);
	l = open_log(f);
	assert_int_equal(part_log_load(l, collect, &ld), 0);
	part_log_close(l);
	assert_int_equal(ld.n, 1);
	assert_int_equal(ld.rec[0].txid, 9);
	assert_int_equal(ld.rec[0].wall_ms, 1234);
	assert_int_equal(ld.rec[0].epoch, 3);
	assert_int_equal(ld.rec[0].incarnation, 5);
	assert_int_equal(ld.rec[0].format, 2);
	part_blob_free(&b);
}

/* A record of the old format (no incarnation: wall_ms, epoch, blob), put with LMDB. */
static void put_old_record(const char *dir, uint64_t txid)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char k[8], v[16 + 4] = { 0 };

	for (int i = 0; i < 8; i++) {
		k[i] = (unsigned char)(txid >> (56 - 8 * i));
		v[i] = (unsigned char)((1700000000000ull >> (56 - 8 * i)) & 0xff); /* wall_ms */
	}
	v[15] = 1; /* epoch 1; then a blob of 0 writes */
	MDB_val kv = { 8, k }, vv = { sizeof(v), v };
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 4);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "prepared", MDB_CREATE, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &kv, &vv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_old_format_record_is_refused_at_load_but_listed(void **state)
{
	struct tpc_tmpdir *f = *state;
	struct loaded ld = { 0 };
	tpc_prepared_info *v = NULL;
	size_t n = 0;

	part_log_close(open_log(f));
	put_old_record(f->path, 41);
	struct part_log *l = open_log(f);
	assert_int_equal(part_log_load(l, collect, &ld), TPC_EVERSION);
	part_log_close(l);
	assert_int_equal(part_log_list_dir(f->path, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].txid, 41);
	assert_int_equal(v[0].nrecords, 0);
	free(v);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_first_open_makes_an_id_and_every_open_is_a_new_incarnation),
		T(test_another_folder_is_another_participant),
		T(test_second_open_is_locked_and_names_the_holder_pid),
		T(test_prepared_record_keeps_the_incarnation_that_joined),
		T(test_old_format_record_is_refused_at_load_but_listed),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
