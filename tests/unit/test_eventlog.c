/*
 * test_eventlog.c - the lesson's event log (lesson/eventlog.c) and event model
 * (lesson/events.c): appends become visible and durable at sync, offsets and times,
 * seeks by offset and by time, torn-tail repair, index rebuild, one writer at a time,
 * readers that meet a record still being written; event encoding, the generator's
 * purity, UTC times, the tally.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "eventlog.h"
#include "events.h"
#include "proc.h"

struct fixture {
	char dir[256];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(tpc_tmpdir_make(f->dir, sizeof(f->dir)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(tpc_tmpdir_remove(f->dir), 0);
	free(f);
	return 0;
}

static void log_path(const struct fixture *f, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/log/%s", f->dir, name);
}

static void log_dir(const struct fixture *f, char *out, size_t cap)
{
	snprintf(out, cap, "%s/log", f->dir);
}

/* Append n records "rec-<i>" with times base + i * step (sync once at the end). */
static evlog *append_n(const struct fixture *f, uint64_t n, uint64_t base, uint64_t step)
{
	char dir[300], buf[32], err[256];
	evlog *l;

	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_open(dir, 1, &l, err, sizeof(err)), 0);
	for (uint64_t i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof(buf), "rec-%llu", (unsigned long long)i);
		assert_int_equal(evlog_append(l, base + i * step, buf, (size_t)len, NULL), 0);
	}
	assert_int_equal(evlog_sync(l), 0);
	return l;
}

static uint64_t count_from(const struct fixture *f, uint64_t offset)
{
	char dir[300];
	evlog_reader *r;
	struct evlog_record rec;
	uint64_t n = 0, expect = offset;

	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_reader_open(dir, &r), 0);
	assert_int_equal(evlog_reader_seek(r, offset), 0);
	while (evlog_reader_next(r, &rec) == 1) {
		assert_int_equal(rec.offset, expect++);
		n++;
	}
	evlog_reader_close(r);
	return n;
}

static void test_crc32c_matches_the_standard_check_value(void **state)
{
	assert_int_equal(evlog_crc32c(0, "123456789", 9), 0xe3069283u);
	/* continuing a CRC over pieces gives the CRC of the whole */
	assert_int_equal(evlog_crc32c(evlog_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void test_appends_are_invisible_until_sync(void **state)
{
	struct fixture *f = *state;
	char dir[300], err[256];
	evlog *l;
	uint64_t off;

	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_open(dir, 1, &l, err, sizeof(err)), 0);
	assert_int_equal(evlog_append(l, 10, "a", 1, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(evlog_append(l, 11, "b", 1, &off), 0);
	assert_int_equal(off, 1);
	assert_int_equal(count_from(f, 0), 0);
	assert_int_equal(evlog_sync(l), 0);
	assert_int_equal(count_from(f, 0), 2);
	struct evlog_stats st;
	evlog_get_stats(l, &st);
	assert_int_equal(st.appended, 2);
	assert_int_equal(st.syncs, 1);
	evlog_close(l);
}

static void test_buffered_records_are_dropped_by_close(void **state)
{
	struct fixture *f = *state;
	evlog *l = append_n(f, 3, 100, 1);
	char dir[300], err[256];

	assert_int_equal(evlog_append(l, 200, "lost", 4, NULL), 0);
	evlog_close(l);
	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_open(dir, 0, &l, err, sizeof(err)), 0);
	assert_int_equal(evlog_next_offset(l), 3);
	evlog_close(l);
}

static void test_times_never_go_back(void **state)
{
	struct fixture *f = *state;
	char dir[300], err[256];
	evlog *l;
	evlog_reader *r;
	struct evlog_record rec;

	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_open(dir, 1, &l, err, sizeof(err)), 0);
	assert_int_equal(evlog_append(l, 1000, "a", 1, NULL), 0);
	assert_int_equal(evlog_append(l, 900, "late", 4, NULL), 0); /* a late event */
	assert_int_equal(evlog_sync(l), 0);
	evlog_close(l);
	assert_int_equal(evlog_reader_open(dir, &r), 0);
	assert_int_equal(evlog_reader_next(r, &rec), 1);
	assert_int_equal(evlog_reader_next(r, &rec), 1);
	assert_int_equal(rec.ts_ms, 1000);
	assert_memory_equal(rec.data, "late", 4);
	evlog_reader_close(r);
}

static void test_seek_by_offset_lands_on_that_record(void **state)
{
	struct fixture *f = *state;
	evlog_close(append_n(f, 1000, 0, 10));

	assert_int_equal(count_from(f, 0), 1000);
	assert_int_equal(count_from(f, 63), 937);  /* just before an index entry */
	assert_int_equal(count_from(f, 64), 936);  /* on one */
	assert_int_equal(count_from(f, 999), 1);
	assert_int_equal(count_from(f, 1000), 0);  /* the end */
	assert_int_equal(count_from(f, 5000), 0);  /* past it */
}

static void test_seek_past_the_end_waits_for_that_offset(void **state)
{
	struct fixture *f = *state;
	char dir[300], err[256];
	evlog_reader *r;
	struct evlog_record rec;
	evlog *l = append_n(f, 10, 0, 1);

	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_reader_open(dir, &r), 0);
	assert_int_equal(evlog_reader_seek(r, 12), 0);
	assert_int_equal(evlog_reader_next(r, &rec), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(evlog_append(l, 20, "x", 1, NULL), 0);
	assert_int_equal(evlog_sync(l), 0);
	assert_int_equal(evlog_reader_next(r, &rec), 1);
	assert_int_equal(rec.offset, 12);
	evlog_reader_close(r);
	evlog_close(l);
	(void)err;
}

static void test_seek_time_finds_the_first_record_at_or_after(void **state)
{
	struct fixture *f = *state;
	char dir[300];
	evlog_reader *r;
	struct evlog_record rec;
	uint64_t off;

	evlog_close(append_n(f, 500, 1000, 10)); /* record i at 1000 + 10 i */
	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_reader_open(dir, &r), 0);
	assert_int_equal(evlog_reader_seek_time(r, 0, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(evlog_reader_seek_time(r, 1000 + 10 * 321, &off), 0);
	assert_int_equal(off, 321);
	assert_int_equal(evlog_reader_seek_time(r, 1000 + 10 * 321 - 5, &off), 0);
	assert_int_equal(off, 321);
	assert_int_equal(evlog_reader_next(r, &rec), 1);
	assert_int_equal(rec.offset, 321);
	assert_int_equal(evlog_reader_seek_time(r, 999999, &off), 0);
	assert_int_equal(off, 500);
	assert_int_equal(evlog_reader_next(r, &rec), 0);
	evlog_reader_close(r);
}

static off_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static void test_open_cuts_a_torn_tail(void **state)
{
	struct fixture *f = *state;
	char path[300], dir[300], err[256];
	evlog *l;
	struct evlog_stats st;

	evlog_close(append_n(f, 100, 0, 1));
	log_path(f, "log", path, sizeof(path));
	log_dir(f, dir, sizeof(dir));
	assert_int_equal(truncate(path, file_size(path) - 3), 0); /* the last record torn */
	assert_int_equal(evlog_open(dir, 0, &l, err, sizeof(err)), 0);
	evlog_get_stats(l, &st);
	assert_true(st.repaired_bytes > 0);
	assert_int_equal(evlog_next_offset(l), 99);
	assert_int_equal(evlog_append(l, 5, "after", 5, NULL), 0);
	assert_int_equal(evlog_sync(l), 0);
	evlog_close(l);
	assert_int_equal(count_from(f, 0), 100);
}

static void test_open_cuts_garbage_after_the_last_record(void **state)
{
	struct fixture *f = *state;
	char path[300], dir[300], err[256];
	evlog *l;
	struct evlog_stats st;

	evlog_close(append_n(f, 70, 0, 1));
	log_path(f, "log", path, sizeof(path));
	log_dir(f, dir, sizeof(dir));
	off_t before = file_size(path);
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	static const char junk[] = "\x05\0\0\0garbage-garbage-garbage-garbage";
	assert_int_equal(write(fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	close(fd);
	assert_int_equal(count_from(f, 0), 70); /* readers stop at it already */
	assert_int_equal(evlog_open(dir, 0, &l, err, sizeof(err)), 0);
	evlog_get_stats(l, &st);
	assert_int_equal(st.repaired_bytes, sizeof(junk) - 1);
	assert_int_equal(file_size(path), before);
	assert_int_equal(evlog_next_offset(l), 70);
	evlog_close(l);
}

static void test_open_rebuilds_a_lost_or_damaged_index(void **state)
{
	struct fixture *f = *state;
	char path[300], dir[300], err[256];
	evlog *l;
	struct evlog_stats st;

	evlog_close(append_n(f, 300, 0, 1));
	log_path(f, "index", path, sizeof(path));
	log_dir(f, dir, sizeof(dir));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(evlog_open(dir, 0, &l, err, sizeof(err)), 0);
	evlog_get_stats(l, &st);
	assert_int_equal(st.index_rebuilt, 5); /* offsets 0, 64, 128, 192, 256 */
	evlog_close(l);
	/* damage an entry: it and everything after it is rebuilt */
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\xff\xff\xff\xff", 4, 16 + 24 * 2 + 16), 4);
	close(fd);
	assert_int_equal(count_from(f, 200), 100); /* readers fall back to scanning */
	assert_int_equal(evlog_open(dir, 0, &l, err, sizeof(err)), 0);
	evlog_get_stats(l, &st);
	assert_int_equal(st.index_rebuilt, 3);
	evlog_close(l);
	assert_int_equal(count_from(f, 257), 43);
}

static void test_a_second_writer_is_refused(void **state)
{
	struct fixture *f = *state;
	char dir[300], err[256];
	evlog *a, *b = NULL;

	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_open(dir, 1, &a, err, sizeof(err)), 0);
	assert_int_equal(evlog_open(dir, 1, &b, err, sizeof(err)), -EBUSY);
	assert_null(b);
	evlog_close(a);
	assert_int_equal(evlog_open(dir, 1, &b, err, sizeof(err)), 0);
	evlog_close(b);
}

static void test_not_a_log_is_refused(void **state)
{
	struct fixture *f = *state;
	char path[300], dir[300], err[256];
	evlog *l;

	log_dir(f, dir, sizeof(dir));
	assert_int_equal(mkdir(dir, 0755), 0);
	log_path(f, "log", path, sizeof(path));
	FILE *fp = fopen(path, "w");
	fputs("this is not an event log at all", fp);
	fclose(fp);
	assert_int_equal(evlog_open(dir, 1, &l, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not an event log"));
}

/* A reader meeting a record whose bytes are not all written yet sees the end, then the
 * record once it is complete. Written here one byte at a time. */
static void test_reader_waits_for_a_record_being_written(void **state)
{
	struct fixture *f = *state;
	char path[300], dir[300], other[300];
	evlog_reader *r;
	struct evlog_record rec;

	evlog_close(append_n(f, 2, 0, 1));
	/* build the third record in a scratch log, then copy it over byte by byte */
	snprintf(other, sizeof(other), "%s/scratch", f->dir);
	char err[256];
	evlog *s;
	assert_int_equal(evlog_open(other, 1, &s, err, sizeof(err)), 0);
	assert_int_equal(evlog_append(s, 0, "rec-0", 5, NULL), 0);
	assert_int_equal(evlog_append(s, 1, "rec-1", 5, NULL), 0);
	assert_int_equal(evlog_append(s, 7, "third", 5, NULL), 0);
	assert_int_equal(evlog_sync(s), 0);
	evlog_close(s);
	char spath[320];
	snprintf(spath, sizeof(spath), "%s/log", other);
	log_path(f, "log", path, sizeof(path));
	off_t start = file_size(path), end = file_size(spath);
	int in = open(spath, O_RDONLY), out = open(path, O_WRONLY);
	log_dir(f, dir, sizeof(dir));
	assert_int_equal(evlog_reader_open(dir, &r), 0);
	assert_int_equal(evlog_reader_seek(r, 2), 0);
	for (off_t p = start; p < end; p++) {
		char c;
		assert_int_equal(evlog_reader_next(r, &rec), 0);
		assert_int_equal(pread(in, &c, 1, p), 1);
		assert_int_equal(pwrite(out, &c, 1, p), 1);
	}
	assert_int_equal(evlog_reader_next(r, &rec), 1);
	assert_int_equal(rec.offset, 2);
	assert_memory_equal(rec.data, "third", 5);
	close(in);
	close(out);
	evlog_reader_close(r);
}

static void test_events_round_trip_through_their_encoding(void **state)
{
	struct lesson_gen g = { 'P', "pay", 9, 1000, 0, 86400000 };
	struct lesson_event a, b;
	char buf[256];

	for (uint64_t i = 0; i < 50; i++) {
		lesson_gen_event(&g, i, &a);
		int n = lesson_event_format(&a, buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal(lesson_event_parse(buf, (size_t)n, &b), 0);
		assert_string_equal(a.eid, b.eid);
		assert_string_equal(a.group, b.group);
		assert_string_equal(a.currency, b.currency);
		assert_int_equal(a.amount, b.amount);
		assert_int_equal(a.time_ms, b.time_ms);
	}
	g.kind = 'V';
	g.eid_prefix = "pv";
	lesson_gen_event(&g, 3, &a);
	int n = lesson_event_format(&a, buf, sizeof(buf));
	assert_int_equal(lesson_event_parse(buf, (size_t)n, &b), 0);
	assert_string_equal(a.user, b.user);
	assert_int_equal(lesson_event_parse("P only-two", 10, &b), -EINVAL);
	assert_int_equal(lesson_event_parse("X a 2026-11-23 b", 16, &b), -EINVAL);
}

static void test_the_generator_is_a_pure_function_of_seed_and_index(void **state)
{
	struct lesson_gen g = { 'P', "order", 5, 100, 0, 86400000 };
	struct lesson_event a, b;

	lesson_gen_event(&g, 42, &a);
	lesson_gen_event(&g, 7, &b);
	lesson_gen_event(&g, 42, &b);
	assert_memory_equal(&a, &b, sizeof(a));
	g.seed = 6;
	lesson_gen_event(&g, 42, &b);
	assert_true(strcmp(a.eid, b.eid) != 0);
}

static void test_utc_times_format_and_parse(void **state)
{
	char buf[32];
	uint64_t ms;

	assert_int_equal(lesson_time_parse("2026-11-23", &ms), 0);
	lesson_time_format(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-23T00:00:00.000Z");
	assert_int_equal(lesson_time_parse("2026-11-23T10:11:12.345Z", &ms), 0);
	lesson_time_format(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-23T10:11:12.345Z");
	assert_int_equal(lesson_time_parse("1795392000000", &ms), 0);
	assert_int_equal(ms, 1795392000000ull);
	assert_int_equal(lesson_time_parse("2026-13-01", &ms), -EINVAL);
	assert_int_equal(lesson_time_parse("yesterday", &ms), -EINVAL);
}

static void test_tally_merges_equal_keys(void **state)
{
	struct tally t = { 0 };

	assert_int_equal(tally_add(&t, "b", 1, 10), 0);
	assert_int_equal(tally_add(&t, "a", 2, 5), 0);
	assert_int_equal(tally_add(&t, "b", 3, -4), 0);
	tally_finish(&t);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.v[0].key, "a");
	struct tally_entry *e = tally_find(&t, "b");
	assert_non_null(e);
	assert_int_equal(e->count, 4);
	assert_int_equal(e->amount, 6);
	assert_null(tally_find(&t, "c"));
	tally_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_matches_the_standard_check_value),
		cmocka_unit_test_setup_teardown(test_appends_are_invisible_until_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffered_records_are_dropped_by_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_times_never_go_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek_by_offset_lands_on_that_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek_past_the_end_waits_for_that_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek_time_finds_the_first_record_at_or_after, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open_cuts_a_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_cuts_garbage_after_the_last_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_rebuilds_a_lost_or_damaged_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_second_writer_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_log_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_waits_for_a_record_being_written, setup, teardown),
		cmocka_unit_test(test_events_round_trip_through_their_encoding),
		cmocka_unit_test(test_the_generator_is_a_pure_function_of_seed_and_index),
		cmocka_unit_test(test_utc_times_format_and_parse),
		cmocka_unit_test(test_tally_merges_equal_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
