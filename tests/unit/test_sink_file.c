/*
 * test_sink_file.c - the append-only file sink (participant/src/sink_file.c): the
 * applied set rebuilt at open, idempotent commits, torn-tail repair, refusing mid-file
 * corruption, the hex line format with any bytes, and many txids in batches.
 *
 * Each test gets a fresh temporary folder (struct tpc_tmpdir, removed in teardown)
 * holding "sink.log" (its path).
 * Damage is made by appending bytes with plain write() between two opens. A small
 * reader here decodes the line format independently of the sink's own parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "proc.h"
#include "tpc/sink_file.h"

/* ------------------------------------------------------------------ helpers */

static int setup(void **state)
{
	*state = tpc_tmpdir_new("sink.log");
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	tpc_tmpdir_free(*state);
	return 0;
}

static tpc_sink *open_sink(const struct tpc_tmpdir *f, uint64_t *repaired)
{
	int err = 1;
	uint64_t rep = 999;
	tpc_sink *s = tpc_sink_file_open(f->path, &err, &rep);

	assert_non_null(s);
	assert_int_equal(err, 0);
	if (repaired)
		*repaired = rep;
	else
		assert_int_equal(rep, 0);
	return s;
}

static tpc_write wr(const char *key, const char *value)
{
	tpc_write w = { key, strlen(key), value, strlen(value) };

	return w;
}

static void commit_one(tpc_sink *s, tpc_txid txid, const tpc_write *w, size_t n)
{
	tpc_sink_txn t = { txid, w, n };

	assert_int_equal(tpc_sink_commit(s, &t, 1), 0);
}

/* The whole file, malloc'd (NUL-terminated for convenience); *len its size. */
static char *read_all(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void append_raw(const char *path, const char *bytes)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	size_t n = strlen(bytes);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, n), (ssize_t)n);
	close(fd);
}

static void expect_file(const char *path, const char *want, size_t want_len)
{
	size_t len;
	char *got = read_all(path, &len);

	assert_int_equal(len, want_len);
	assert_memory_equal(got, want, len);
	free(got);
}

static void expect_file_str(const char *path, const char *want)
{
	expect_file(path, want, strlen(want));
}

/* ----------------------------------------------------- an independent reader */

struct record {
	uint64_t txid, index, count;
	unsigned char key[64], value[64];
	size_t key_len, value_len;
};

static size_t unhex(const char *hex, size_t n, unsigned char *out, size_t cap)
{
	assert_int_equal(n % 2, 0);
	assert_true(n / 2 <= cap);
	for (size_t i = 0; i < n; i += 2) {
		unsigned int b;
		char two[3] = { hex[i], hex[i + 1], 0 };

		assert_int_equal(sscanf(two, "%2x", &b), 1);
		out[i / 2] = (unsigned char)b;
	}
	return n / 2;
}

/* Decode every line of @p path into @p recs (at most @p cap); returns the count. */
static size_t read_records(const char *path, struct record *recs, size_t cap)
{
	size_t len, n = 0;
	char *buf = read_all(path, &len);
	char *line = buf;

	while (line < buf + len) {
		char *nl = strchr(line, '\n');
		char *t1, *t2, *t3;
		struct record *r = &recs[n];

		assert_non_null(nl);
		assert_true(n < cap);
		*nl = '\0';
		t1 = strchr(line, '\t');
		assert_non_null(t1);
		t2 = strchr(t1 + 1, '\t');
		assert_non_null(t2);
		t3 = strchr(t2 + 1, '\t');
		assert_non_null(t3);
		assert_null(strchr(t3 + 1, '\t'));
		assert_int_equal(sscanf(line, "%" SCNu64 "\t%" SCNu64 "/%" SCNu64, &r->txid,
					&r->index, &r->count), 3);
		r->key_len = unhex(t2 + 1, (size_t)(t3 - t2 - 1), r->key, sizeof(r->key));
		r->value_len = unhex(t3 + 1, strlen(t3 + 1), r->value, sizeof(r->value));
		n++;
		line = nl + 1;
	}
	free(buf);
	return n;
}

/* ------------------------------------------------------------------- tests */

static void test_file_commit_then_reopen_rebuilds_applied_set(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	commit_one(s, 1, (tpc_write[]){ wr("a", "1"), wr("b", "2") }, 2);
	commit_one(s, 2, (tpc_write[]){ wr("c", "3") }, 1);
	assert_int_equal(tpc_sink_applied(s, 1), 1);
	assert_int_equal(tpc_sink_applied(s, 3), 0);
	tpc_sink_free(s);

	s = open_sink(f, NULL);
	assert_int_equal(tpc_sink_applied(s, 1), 1);
	assert_int_equal(tpc_sink_applied(s, 2), 1);
	assert_int_equal(tpc_sink_applied(s, 3), 0);
	tpc_sink_free(s);
	expect_file_str(f->path, "1\t1/2\t61\t31\n1\t2/2\t62\t32\n2\t1/1\t63\t33\n");
}

static void test_file_applying_twice_leaves_file_byte_identical(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	tpc_write one[] = { wr("k", "v") }, other[] = { wr("k", "DIFFERENT"), wr("x", "y") };
	tpc_sink_txn dup[] = { { 9, one, 1 }, { 9, other, 2 } };
	size_t len1;
	char *before;

	commit_one(s, 5, one, 1);
	before = read_all(f->path, &len1);
	commit_one(s, 5, one, 1);
	commit_one(s, 5, other, 2);
	expect_file(f->path, before, len1);
	tpc_sink_free(s);

	s = open_sink(f, NULL); /* also after a reopen */
	commit_one(s, 5, other, 2);
	expect_file(f->path, before, len1);
	free(before);

	/* a txid twice within one call: applied once, first occurrence */
	assert_int_equal(tpc_sink_commit(s, dup, 2), 0);
	tpc_sink_free(s);
	expect_file_str(f->path, "5\t1/1\t6b\t76\n9\t1/1\t6b\t76\n");
}

static void test_file_torn_half_line_is_cut_and_txid_can_commit_again(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	const char *torn = "3\t1/1\t6b3\t7";
	uint64_t repaired = 0;
	size_t good_len;
	char *good;

	commit_one(s, 1, (tpc_write[]){ wr("a", "1") }, 1);
	commit_one(s, 2, (tpc_write[]){ wr("b", "2"), wr("c", "3") }, 2);
	tpc_sink_free(s);
	good = read_all(f->path, &good_len);
	append_raw(f->path, torn);

	s = open_sink(f, &repaired);
	assert_int_equal(repaired, strlen(torn));
	expect_file(f->path, good, good_len); /* ends with the last complete txn */
	assert_int_equal(tpc_sink_applied(s, 2), 1);
	assert_int_equal(tpc_sink_applied(s, 3), 0);
	commit_one(s, 3, (tpc_write[]){ wr("k3", "v3") }, 1);
	assert_int_equal(tpc_sink_applied(s, 3), 1);
	tpc_sink_free(s);

	s = open_sink(f, NULL); /* nothing left to repair */
	assert_int_equal(tpc_sink_applied(s, 3), 1);
	tpc_sink_free(s);
	free(good);
}

static void test_file_txn_missing_lines_at_tail_is_cut(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	const char *partial = "7\t1/3\t61\t31\n7\t2/3\t62\t32\n";
	uint64_t repaired = 0;
	size_t good_len;
	char *good;

	commit_one(s, 6, (tpc_write[]){ wr("z", "9") }, 1);
	tpc_sink_free(s);
	good = read_all(f->path, &good_len);
	append_raw(f->path, partial);

	s = open_sink(f, &repaired);
	assert_int_equal(repaired, strlen(partial));
	expect_file(f->path, good, good_len);
	assert_int_equal(tpc_sink_applied(s, 6), 1);
	assert_int_equal(tpc_sink_applied(s, 7), 0);
	tpc_sink_free(s);

	/* a complete first line, then a torn second one: both lines go */
	append_raw(f->path, "8\t1/2\t61\t31\n8\t2/2\t6");
	s = open_sink(f, &repaired);
	assert_int_equal(repaired, strlen("8\t1/2\t61\t31\n8\t2/2\t6"));
	expect_file(f->path, good, good_len);
	assert_int_equal(tpc_sink_applied(s, 8), 0);
	tpc_sink_free(s);
	free(good);
}

static void test_file_unparseable_last_line_is_cut(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	uint64_t repaired = 0;
	size_t good_len;
	char *good;

	commit_one(s, 6, (tpc_write[]){ wr("z", "9") }, 1);
	tpc_sink_free(s);
	good = read_all(f->path, &good_len);
	append_raw(f->path, "8\t1/2\t61\t31\ngarbage\n");

	s = open_sink(f, &repaired);
	assert_int_equal(repaired, strlen("8\t1/2\t61\t31\ngarbage\n"));
	expect_file(f->path, good, good_len);
	tpc_sink_free(s);
	free(good);
}

static void expect_open_refused(const struct tpc_tmpdir *f, int want)
{
	int err = 0;
	uint64_t repaired = 0;
	size_t len_before, len_after;
	char *before = read_all(f->path, &len_before);
	char *after;

	assert_null(tpc_sink_file_open(f->path, &err, &repaired));
	assert_int_equal(err, want);
	after = read_all(f->path, &len_after); /* nothing was cut */
	assert_int_equal(len_after, len_before);
	assert_memory_equal(after, before, len_after);
	free(before);
	free(after);
}

static void test_file_corruption_in_the_middle_refuses_to_open(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);

	commit_one(s, 1, (tpc_write[]){ wr("a", "1") }, 1);
	tpc_sink_free(s);
	append_raw(f->path, "1\t1/1\tZZ\t31\n2\t1/1\t62\t32\n"); /* bad hex, then a good line */
	expect_open_refused(f, -EBADMSG);
}

static void test_file_incomplete_txn_in_the_middle_refuses_to_open(void **state)
{
	struct tpc_tmpdir *f = *state;

	append_raw(f->path, "4\t1/2\t61\t31\n5\t1/1\t62\t32\n");
	expect_open_refused(f, -EBADMSG);
	assert_int_equal(truncate(f->path, 0), 0);
	append_raw(f->path, "4\t2/2\t61\t31\n5\t1/1\t62\t32\n"); /* starts mid-transaction */
	expect_open_refused(f, -EBADMSG);
}

static void test_file_binary_keys_and_values_round_trip(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	static const unsigned char k1[] = { 0, '\t', '\n', 0xff, '/' };
	static const unsigned char v1[] = { '\n', '\n', 0, '\r', 0x80, '\t' };
	static const unsigned char k2[] = { 0 };
	tpc_write w[] = { { k1, sizeof(k1), v1, sizeof(v1) }, { k2, sizeof(k2), "", 0 } };
	struct record r[4];

	commit_one(s, 0xfffffffffffffffeull, w, 2);
	tpc_sink_free(s);
	assert_int_equal(read_records(f->path, r, 4), 2);
	assert_int_equal(r[0].txid, 0xfffffffffffffffeull);
	assert_int_equal(r[0].index, 1);
	assert_int_equal(r[0].count, 2);
	assert_int_equal(r[0].key_len, sizeof(k1));
	assert_memory_equal(r[0].key, k1, sizeof(k1));
	assert_int_equal(r[0].value_len, sizeof(v1));
	assert_memory_equal(r[0].value, v1, sizeof(v1));
	assert_int_equal(r[1].index, 2);
	assert_int_equal(r[1].key_len, 1);
	assert_int_equal(r[1].key[0], 0);
	assert_int_equal(r[1].value_len, 0);

	s = open_sink(f, NULL);
	assert_int_equal(tpc_sink_applied(s, 0xfffffffffffffffeull), 1);
	tpc_sink_free(s);
}

static void test_file_txn_without_writes_is_remembered(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	tpc_sink_txn t = { 11, NULL, 0 };

	assert_int_equal(tpc_sink_commit(s, &t, 1), 0);
	tpc_sink_free(s);
	s = open_sink(f, NULL);
	assert_int_equal(tpc_sink_applied(s, 11), 1);
	tpc_sink_free(s);
	expect_file_str(f->path, "11\t0/0\t\t\n");
}

static void test_file_many_txids_in_batches(void **state)
{
	struct tpc_tmpdir *f = *state;
	enum { TOTAL = 10000, BATCH = 500 };
	tpc_sink *s = open_sink(f, NULL);
	static tpc_sink_txn txns[BATCH];
	tpc_write w[2] = { wr("key", "value"), wr("other", "") };
	size_t len_all, len_again;
	char *all;

	for (tpc_txid base = 1; base <= TOTAL; base += BATCH) {
		for (size_t i = 0; i < BATCH; i++) {
			txns[i].txid = base + i;
			txns[i].writes = w;
			txns[i].nwrites = 1 + i % 2;
		}
		assert_int_equal(tpc_sink_commit(s, txns, BATCH), 0);
	}
	for (tpc_txid id = 1; id <= TOTAL; id++)
		assert_int_equal(tpc_sink_applied(s, id), 1);
	tpc_sink_free(s);

	all = read_all(f->path, &len_all);
	s = open_sink(f, NULL);
	for (tpc_txid id = 1; id <= TOTAL; id++)
		assert_int_equal(tpc_sink_applied(s, id), 1);
	assert_int_equal(tpc_sink_applied(s, TOTAL + 1), 0);
	assert_int_equal(tpc_sink_commit(s, txns, BATCH), 0); /* the last batch, again */
	free(read_all(f->path, &len_again));
	assert_int_equal(len_again, len_all);
	tpc_sink_free(s);
	free(all);
}

/* D9: forget() shrinks the in-memory set (deleting from the middle of probe runs must
 * keep every other txid findable); the file keeps every line. */
static void test_file_forget_shrinks_the_set_and_keeps_the_lines(void **state)
{
	struct tpc_tmpdir *f = *state;
	enum { TOTAL = 5000, BATCH = 500 };
	tpc_sink *s = open_sink(f, NULL);
	static tpc_sink_txn txns[BATCH];
	static tpc_txid odd[TOTAL / 2];
	tpc_write w = wr("key", "value");
	size_t len_before, len_after;

	for (tpc_txid base = 1; base <= TOTAL; base += BATCH) {
		for (size_t i = 0; i < BATCH; i++)
			txns[i] = (tpc_sink_txn){ base + i, &w, 1 };
		assert_int_equal(tpc_sink_commit(s, txns, BATCH), 0);
	}
	free(read_all(f->path, &len_before));
	for (size_t i = 0; i < TOTAL / 2; i++)
		odd[i] = 2 * i + 1;
	tpc_sink_forget(s, odd, TOTAL / 2);
	tpc_sink_forget(s, odd, 3); /* again: nothing left to forget */
	for (tpc_txid id = 1; id <= TOTAL; id++)
		assert_int_equal(tpc_sink_applied(s, id), id % 2 == 0);
	free(read_all(f->path, &len_after));
	assert_int_equal(len_after, len_before);
	tpc_sink_forget(s, odd, 0);
	tpc_sink_free(s);
	s = open_sink(f, NULL); /* a reopen remembers what the file holds */
	assert_int_equal(tpc_sink_applied(s, 1), 1);
	tpc_sink_free(s);
}

static void test_file_prepare_refuses_what_it_cannot_store(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	size_t big_len = (16u << 20) + 1;
	char *big = malloc(big_len);
	char reason[128];
	tpc_write w = { "k", 1, big, big_len };
	tpc_sink_txn t = { 1, &w, 1 };

	assert_non_null(big);
	assert_int_equal(tpc_sink_prepare(s, &t, reason, sizeof(reason)), TPC_EREFUSED);
	assert_non_null(strstr(reason, "value"));
	assert_int_equal(tpc_sink_commit(s, &t, 1), -EINVAL);
	w.value_len = 3;
	assert_int_equal(tpc_sink_prepare(s, &t, reason, sizeof(reason)), 0);
	w.key_len = 0;
	assert_int_equal(tpc_sink_prepare(s, &t, reason, sizeof(reason)), TPC_EREFUSED);
	assert_int_equal(tpc_sink_applied(s, 1), 0);
	tpc_sink_free(s);
	free(big);
}

static void test_file_second_handle_on_same_file_is_busy(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f, NULL);
	int err = 0;

	assert_null(tpc_sink_file_open(f->path, &err, NULL));
	assert_int_equal(err, -EBUSY);
	tpc_sink_free(s);
}

/* The file's folder is created when missing, folders above it too (like state_dir). */
static void test_file_open_creates_the_missing_parent_folders(void **state)
{
	struct tpc_tmpdir *f = *state;
	char path[PATH_MAX + 64];
	struct stat st;
	int err = 1;

	snprintf(path, sizeof(path), "%s/new/deeper/sink.log", f->root);
	tpc_sink *s = tpc_sink_file_open(path, &err, NULL);
	assert_non_null(s);
	assert_int_equal(err, 0);
	tpc_write w[] = { wr("k", "v") };
	commit_one(s, 1, w, 1);
	tpc_sink_free(s);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/new/deeper", f->root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_file_commit_then_reopen_rebuilds_applied_set),
		T(test_file_applying_twice_leaves_file_byte_identical),
		T(test_file_torn_half_line_is_cut_and_txid_can_commit_again),
		T(test_file_txn_missing_lines_at_tail_is_cut),
		T(test_file_unparseable_last_line_is_cut),
		T(test_file_corruption_in_the_middle_refuses_to_open),
		T(test_file_incomplete_txn_in_the_middle_refuses_to_open),
		T(test_file_binary_keys_and_values_round_trip),
		T(test_file_txn_without_writes_is_remembered),
		T(test_file_many_txids_in_batches),
		T(test_file_forget_shrinks_the_set_and_keeps_the_lines),
		T(test_file_prepare_refuses_what_it_cannot_store),
		T(test_file_second_handle_on_same_file_is_busy),
		T(test_file_open_creates_the_missing_parent_folders),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
