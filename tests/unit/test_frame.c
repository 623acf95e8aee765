/*
 * test_frame.c - the incremental frame decoder (proto/frame.c): input split at any
 * byte, several frames per feed, length checks before any allocation, sticky errors,
 * and random garbage that must never crash it.
 *
 * realloc is wrapped (-Wl,--wrap=realloc) so a test can make the decoder's buffer
 * allocation fail.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "frame.h"

/* ------------------------------------------------------ realloc failure hook */

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static int fail_next_realloc;

void *__wrap_realloc(void *p, size_t n)
{
	if (fail_next_realloc) {
		fail_next_realloc = 0;
		return NULL;
	}
	return __real_realloc(p, n);
}

/* ------------------------------------------------------------------ helpers */

#define MAX_OUT 16

/* Frames collected from a decoder, copied out (the decoder's pointers are short-lived). */
struct collected {
	size_t n;
	uint32_t len[MAX_OUT];
	uint8_t *body[MAX_OUT];
};

static void collected_free(struct collected *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->body[i]);
	c->n = 0;
}

/* Append one frame (header + body) to @p buf at *off. */
static void put_frame(uint8_t *buf, size_t *off, const uint8_t *body, uint32_t len)
{
	tpc_frame_put_header(buf + *off, len);
	memcpy(buf + *off + TPC_FRAME_HEADER_SIZE, body, len);
	*off += TPC_FRAME_HEADER_SIZE + len;
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31u + seed);
}

/*
 * Feed @p in completely (re-feeding the unconsumed rest after each frame), collecting
 * every frame. Returns the last status: NEED_MORE when all input was used.
 */
static int feed_all(struct tpc_frame_decoder *d, const uint8_t *in, size_t len,
		    struct collected *out)
{
	size_t pos = 0;

	for (;;) {
		const uint8_t *frame = NULL;
		uint32_t flen = 0;
		size_t used = 0;
		int rc = tpc_frame_feed(d, in + pos, len - pos, &used, &frame, &flen);

		assert_true(used <= len - pos);
		pos += used;
		if (rc != TPC_FRAME_READY) {
			if (rc == TPC_FRAME_NEED_MORE)
				assert_int_equal(pos, len);
			return rc;
		}
		assert_non_null(frame);
		assert_true(out->n < MAX_OUT);
		out->len[out->n] = flen;
		out->body[out->n] = malloc(flen);
		assert_non_null(out->body[out->n]);
		memcpy(out->body[out->n], frame, flen);
		out->n++;
	}
}

/* Three frames of different sizes in one buffer; returns its length. */
static size_t three_frames(uint8_t *buf, uint8_t *bodies[3], const uint32_t lens[3])
{
	size_t off = 0;

	for (int i = 0; i < 3; i++) {
		bodies[i] = malloc(lens[i]);
		assert_non_null(bodies[i]);
		fill_pattern(bodies[i], lens[i], (unsigned)i + 7);
		put_frame(buf, &off, bodies[i], lens[i]);
	}
	return off;
}

static void assert_frames(const struct collected *c, uint8_t *bodies[3],
			  const uint32_t lens[3])
{
	assert_int_equal(c->n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c->len[i], lens[i]);
		assert_memory_equal(c->body[i], bodies[i], lens[i]);
	}
}

/* -------------------------------------------------------------------- tests */

static void test_frame_decoder_accepts_one_byte_at_a_time(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t body[100], buf[2 * (TPC_FRAME_HEADER_SIZE + sizeof(body))];
	size_t total = 0;
	int frames = 0;

	fill_pattern(body, sizeof(body), 1);
	put_frame(buf, &total, body, sizeof(body));
	put_frame(buf, &total, body, sizeof(body));
	tpc_frame_decoder_init(&d, 1024);
	for (size_t i = 0; i < total; i++) {
		const uint8_t *frame = NULL;
		uint32_t flen = 0;
		size_t used = 99;
		int rc = tpc_frame_feed(&d, buf + i, 1, &used, &frame, &flen);

		assert_int_equal(used, 1);
		if ((i + 1) % (TPC_FRAME_HEADER_SIZE + sizeof(body)) == 0) {
			assert_int_equal(rc, TPC_FRAME_READY);
			assert_int_equal(flen, sizeof(body));
			assert_memory_equal(frame, body, sizeof(body));
			frames++;
		} else {
			assert_int_equal(rc, TPC_FRAME_NEED_MORE);
		}
	}
	assert_int_equal(frames, 2);
	tpc_frame_decoder_free(&d);
}

static void test_frame_decoder_returns_each_of_several_frames_in_one_buffer(void **state)
{
	static const uint32_t lens[3] = { 1, 50, 300 };
	struct tpc_frame_decoder d;
	struct collected c = { 0 };
	uint8_t buf[512], *bodies[3];
	size_t total = three_frames(buf, bodies, lens);

	tpc_frame_decoder_init(&d, 1024);
	assert_int_equal(feed_all(&d, buf, total, &c), TPC_FRAME_NEED_MORE);
	assert_frames(&c, bodies, lens);
	/* Contiguous frames are handed out in place: nothing was buffered. */
	assert_null(d.buf);

	collected_free(&c);
	for (int i = 0; i < 3; i++)
		free(bodies[i]);
	tpc_frame_decoder_free(&d);
}

static void test_frame_decoder_returns_a_contiguous_frame_in_place(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t buf[TPC_FRAME_HEADER_SIZE + 10], body[10];
	const uint8_t *frame = NULL;
	uint32_t flen = 0;
	size_t used = 0, off = 0;

	fill_pattern(body, sizeof(body), 3);
	put_frame(buf, &off, body, sizeof(body));
	tpc_frame_decoder_init(&d, 64);
	assert_int_equal(tpc_frame_feed(&d, buf, off, &used, &frame, &flen), TPC_FRAME_READY);
	assert_ptr_equal(frame, buf + TPC_FRAME_HEADER_SIZE);
	assert_int_equal(flen, sizeof(body));
	assert_int_equal(used, off);
	tpc_frame_decoder_free(&d);
}

static void test_frame_decoder_accepts_a_split_at_every_point(void **state)
{
	static const uint32_t lens[3] = { 3, 17, 200 };
	uint8_t buf[512], *bodies[3];
	size_t total = three_frames(buf, bodies, lens);

	for (size_t split = 0; split <= total; split++) {
		struct tpc_frame_decoder d;
		struct collected c = { 0 };

		tpc_frame_decoder_init(&d, 256);
		assert_int_equal(feed_all(&d, buf, split, &c), TPC_FRAME_NEED_MORE);
		assert_int_equal(feed_all(&d, buf + split, total - split, &c),
				 TPC_FRAME_NEED_MORE);
		assert_frames(&c, bodies, lens);
		collected_free(&c);
		tpc_frame_decoder_free(&d);
	}
	for (int i = 0; i < 3; i++)
		free(bodies[i]);
}

static void test_frame_decoder_accepts_every_two_way_split_of_one_frame(void **state)
{
	uint8_t body[40], buf[TPC_FRAME_HEADER_SIZE + sizeof(body)];
	size_t total = 0;

	fill_pattern(body, sizeof(body), 9);
	put_frame(buf, &total, body, sizeof(body));
	for (size_t a = 0; a <= total; a++) {
		for (size_t b = a; b <= total; b++) {
			struct tpc_frame_decoder d;
			struct collected c = { 0 };

			tpc_frame_decoder_init(&d, 64);
			feed_all(&d, buf, a, &c);
			feed_all(&d, buf + a, b - a, &c);
			assert_int_equal(feed_all(&d, buf + b, total - b, &c),
					 TPC_FRAME_NEED_MORE);
			assert_int_equal(c.n, 1);
			assert_int_equal(c.len[0], sizeof(body));
			assert_memory_equal(c.body[0], body, sizeof(body));
			collected_free(&c);
			tpc_frame_decoder_free(&d);
		}
	}
}

static void test_frame_decoder_rejects_an_oversized_length_right_after_the_header(void **state)
{
	static const uint32_t announced[] = { 1025, 1u << 20, UINT32_MAX };

	for (size_t i = 0; i < sizeof(announced) / sizeof(announced[0]); i++) {
		struct tpc_frame_decoder d;
		uint8_t hdr[TPC_FRAME_HEADER_SIZE + 8] = { 0 };
		const uint8_t *frame = NULL;
		uint32_t flen = 0;
		size_t used = 0;

		tpc_frame_put_header(hdr, announced[i]);
		tpc_frame_decoder_init(&d, 1024);
		/* Header bytes one at a time: the error comes with the fourth. */
		for (size_t j = 0; j < TPC_FRAME_HEADER_SIZE - 1; j++)
			assert_int_equal(tpc_frame_feed(&d, hdr + j, 1, &used, &frame, &flen),
					 TPC_FRAME_NEED_MORE);
		assert_int_equal(tpc_frame_feed(&d, hdr + 3, sizeof(hdr) - 3, &used, &frame,
						&flen),
				 TPC_FRAME_ERR_TOO_BIG);
		assert_true(used <= 1); /* nothing of the body was taken */
		assert_null(d.buf);     /* and nothing was allocated */
		assert_int_equal(d.buf_cap, 0);
		tpc_frame_decoder_free(&d);
	}
}

static void test_frame_decoder_rejects_a_huge_length_with_the_default_maximum(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t hdr[TPC_FRAME_HEADER_SIZE];
	const uint8_t *frame = NULL;
	uint32_t flen = 0;
	size_t used = 0;

	tpc_frame_put_header(hdr, TPC_FRAME_DEFAULT_MAX + 1);
	tpc_frame_decoder_init(&d, 0); /* 0: the default maximum */
	assert_int_equal(tpc_frame_feed(&d, hdr, sizeof(hdr), &used, &frame, &flen),
			 TPC_FRAME_ERR_TOO_BIG);
	assert_null(d.buf);
	tpc_frame_decoder_free(&d);
}

static void test_frame_decoder_rejects_a_zero_length(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t buf[TPC_FRAME_HEADER_SIZE + 4] = { 0, 0, 0, 0, 1, 2, 3, 4 };
	const uint8_t *frame = NULL;
	uint32_t flen = 0;
	size_t used = 0;

	tpc_frame_decoder_init(&d, 64);
	assert_int_equal(tpc_frame_feed(&d, buf, sizeof(buf), &used, &frame, &flen),
			 TPC_FRAME_ERR_EMPTY);
	assert_true(used <= TPC_FRAME_HEADER_SIZE);
	assert_null(d.buf);
	tpc_frame_decoder_free(&d);
}

static void test_frame_decoder_errors_are_sticky(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t bad[TPC_FRAME_HEADER_SIZE], good[TPC_FRAME_HEADER_SIZE + 3];
	const uint8_t body[3] = { 1, 2, 3 };
	const uint8_t *frame = NULL;
	uint32_t flen = 0;
	size_t used = 0, off = 0;

	tpc_frame_put_header(bad, 0);
	put_frame(good, &off, body, sizeof(body));
	tpc_frame_decoder_init(&d, 64);
	assert_int_equal(tpc_frame_feed(&d, bad, sizeof(bad), &used, &frame, &flen),
			 TPC_FRAME_ERR_EMPTY);
	for (int i = 0; i < 3; i++) {
		used = 99;
		assert_int_equal(tpc_frame_feed(&d, good, off, &used, &frame, &flen),
				 TPC_FRAME_ERR_EMPTY);
		assert_int_equal(used, 0);
	}
	assert_int_equal(tpc_frame_feed(&d, NULL, 0, &used, &frame, &flen), TPC_FRAME_ERR_EMPTY);

	tpc_frame_decoder_free(&d);
	tpc_frame_put_header(bad, 65);
	tpc_frame_decoder_init(&d, 64);
	assert_int_equal(tpc_frame_feed(&d, bad, sizeof(bad), &used, &frame, &flen),
			 TPC_FRAME_ERR_TOO_BIG);
	assert_int_equal(tpc_frame_feed(&d, good, off, &used, &frame, &flen),
			 TPC_FRAME_ERR_TOO_BIG);
	assert_int_equal(used, 0);
	tpc_frame_decoder_free(&d);
}

static void test_frame_decoder_needs_more_on_truncated_input_and_consumes_it(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t body[64], buf[TPC_FRAME_HEADER_SIZE + sizeof(body)];
	const uint8_t *frame = NULL;
	uint32_t flen = 0;
	size_t used = 0, total = 0;

	fill_pattern(body, sizeof(body), 5);
	put_frame(buf, &total, body, sizeof(body));
	tpc_frame_decoder_init(&d, 128);

	/* Empty input. */
	assert_int_equal(tpc_frame_feed(&d, NULL, 0, &used, &frame, &flen), TPC_FRAME_NEED_MORE);
	assert_int_equal(used, 0);
	/* Half a header. */
	assert_int_equal(tpc_frame_feed(&d, buf, 2, &used, &frame, &flen), TPC_FRAME_NEED_MORE);
	assert_int_equal(used, 2);
	/* The rest of the header and half the body. */
	assert_int_equal(tpc_frame_feed(&d, buf + 2, 34, &used, &frame, &flen),
			 TPC_FRAME_NEED_MORE);
	assert_int_equal(used, 34);
	/* Nothing more: still waiting, nothing lost. */
	assert_int_equal(tpc_frame_feed(&d, NULL, 0, &used, &frame, &flen), TPC_FRAME_NEED_MORE);
	assert_int_equal(used, 0);
	/* The rest completes it. */
	assert_int_equal(tpc_frame_feed(&d, buf + 36, total - 36, &used, &frame, &flen),
			 TPC_FRAME_READY);
	assert_int_equal(used, total - 36);
	assert_int_equal(flen, sizeof(body));
	assert_memory_equal(frame, body, sizeof(body));
	tpc_frame_decoder_free(&d);
}

static void test_frame_decoder_accepts_a_frame_of_exactly_the_maximum_size(void **state)
{
	enum { MAX = 4096 };
	uint8_t *buf = malloc(2 * (TPC_FRAME_HEADER_SIZE + MAX) + TPC_FRAME_HEADER_SIZE);
	uint8_t *body = malloc(MAX);
	struct tpc_frame_decoder d;
	struct collected c = { 0 };
	size_t total = 0;

	assert_non_null(buf);
	assert_non_null(body);
	fill_pattern(body, MAX, 11);
	put_frame(buf, &total, body, MAX);
	put_frame(buf, &total, body, MAX);
	tpc_frame_decoder_init(&d, MAX);
	/* Once in place, once split (buffered), then one byte over the maximum. */
	assert_int_equal(feed_all(&d, buf, TPC_FRAME_HEADER_SIZE + MAX + 100, &c),
			 TPC_FRAME_NEED_MORE);
	assert_int_equal(feed_all(&d, buf + TPC_FRAME_HEADER_SIZE + MAX + 100,
				  total - (TPC_FRAME_HEADER_SIZE + MAX + 100), &c),
			 TPC_FRAME_NEED_MORE);
	assert_int_equal(c.n, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(c.len[i], MAX);
		assert_memory_equal(c.body[i], body, MAX);
	}
	assert_true(d.buf_cap <= MAX);
	tpc_frame_put_header(buf, MAX + 1);
	assert_int_equal(feed_all(&d, buf, TPC_FRAME_HEADER_SIZE, &c), TPC_FRAME_ERR_TOO_BIG);

	collected_free(&c);
	tpc_frame_decoder_free(&d);
	free(body);
	free(buf);
}

static void test_frame_decoder_reports_enomem_without_losing_the_header(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t body[32], buf[TPC_FRAME_HEADER_SIZE + sizeof(body)];
	const uint8_t *frame = NULL;
	uint32_t flen = 0;
	size_t used = 0, total = 0;

	fill_pattern(body, sizeof(body), 13);
	put_frame(buf, &total, body, sizeof(body));
	tpc_frame_decoder_init(&d, 64);
	fail_next_realloc = 1;
	/* A split frame needs the buffer; its allocation fails. */
	assert_int_equal(tpc_frame_feed(&d, buf, 10, &used, &frame, &flen), -ENOMEM);
	assert_int_equal(fail_next_realloc, 0);
	/* Per the contract the caller re-feeds from buf + used; the frame still decodes. */
	assert_true(used <= 10);
	size_t pos = used;
	int rc = tpc_frame_feed(&d, buf + pos, total - pos, &used, &frame, &flen);
	assert_int_equal(rc, TPC_FRAME_READY);
	assert_int_equal(flen, sizeof(body));
	assert_memory_equal(frame, body, sizeof(body));
	assert_int_equal(pos + used, total);
	tpc_frame_decoder_free(&d);
}

/* xorshift64*: a seeded generator of our own, so runs are reproducible. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Random bytes; half the time shaped as frames with plausible (and bad) lengths. */
static void fill_garbage(uint8_t *buf, size_t len, uint64_t *rng, uint32_t max)
{
	int shaped = rng_next(rng) & 1;
	size_t i = 0;

	while (i < len) {
		if (shaped && len - i >= TPC_FRAME_HEADER_SIZE) {
			uint32_t flen = (uint32_t)(rng_next(rng) % (max + 3));

			tpc_frame_put_header(buf + i, flen);
			i += TPC_FRAME_HEADER_SIZE;
			for (uint32_t j = 0; j < flen && i < len; j++)
				buf[i++] = (uint8_t)rng_next(rng);
		} else {
			buf[i++] = (uint8_t)rng_next(rng);
		}
	}
}

/* Feed @p buf in random-sized chunks; check every answer is one the contract allows. */
static void feed_garbage(struct tpc_frame_decoder *d, const uint8_t *buf, size_t len,
			 uint64_t *rng, uint32_t max)
{
	int failed = 0;
	size_t pos = 0;

	while (pos < len) {
		size_t chunk = 1 + (size_t)(rng_next(rng) % (len - pos));
		size_t end = pos + chunk;

		while (pos < end) {
			const uint8_t *frame = NULL;
			uint32_t flen = 0;
			size_t used = 0;
			int rc = tpc_frame_feed(d, buf + pos, end - pos, &used, &frame, &flen);

			assert_true(used <= end - pos);
			if (failed) {
				assert_int_equal(rc, failed);
				assert_int_equal(used, 0);
				return;
			}
			pos += used;
			if (rc == TPC_FRAME_READY) {
				assert_non_null(frame);
				assert_true(flen >= 1 && flen <= max);
				continue;
			}
			if (rc == TPC_FRAME_NEED_MORE) {
				assert_int_equal(pos, end);
				continue;
			}
			assert_true(rc == TPC_FRAME_ERR_TOO_BIG || rc == TPC_FRAME_ERR_EMPTY);
			failed = rc;
		}
	}
}

static void test_frame_decoder_survives_random_garbage(void **state)
{
	uint64_t rng = 0x7f4a7c159e3779b9ull; /* fixed seed: failures reproduce */
	uint8_t buf[600];

	for (int iter = 0; iter < 5000; iter++) {
		struct tpc_frame_decoder d;
		uint32_t max = 1 + (uint32_t)(rng_next(&rng) % 300);
		size_t len = 1 + (size_t)(rng_next(&rng) % sizeof(buf));

		fill_garbage(buf, len, &rng, max);
		tpc_frame_decoder_init(&d, max);
		feed_garbage(&d, buf, len, &rng, max);
		assert_true(d.buf_cap <= max);
		tpc_frame_decoder_free(&d);
	}
}

/* A peer that announces a large frame and sends a little of it makes the decoder hold
 * about what arrived, not the announced length; pending counts it; trim frees a big
 * buffer only between frames. */
static void test_frame_decoder_buffer_grows_with_the_bytes_that_arrived(void **state)
{
	struct tpc_frame_decoder d;
	uint8_t hdr[TPC_FRAME_HEADER_SIZE], body[100] = { 0 };
	static uint8_t big[300000];
	const uint8_t *frame = NULL;
	uint32_t flen = 0;
	size_t used = 0;

	(void)state;
	tpc_frame_decoder_init(&d, TPC_FRAME_DEFAULT_MAX);
	assert_int_equal(tpc_frame_decoder_pending(&d), 0);
	tpc_frame_put_header(hdr, TPC_FRAME_DEFAULT_MAX);
	assert_int_equal(tpc_frame_feed(&d, hdr, sizeof(hdr), &used, &frame, &flen),
			 TPC_FRAME_NEED_MORE);
	assert_int_equal(tpc_frame_feed(&d, body, sizeof(body), &used, &frame, &flen),
			 TPC_FRAME_NEED_MORE);
	assert_true(d.buf_cap <= 4096);
	assert_int_equal(tpc_frame_decoder_pending(&d), sizeof(hdr) + sizeof(body));
	tpc_frame_decoder_trim(&d, 0); /* mid-frame: keeps what it holds */
	assert_non_null(d.buf);
	for (size_t i = 0; i < 3; i++) /* 900 KB more: doubling, never past the length */
		assert_int_equal(tpc_frame_feed(&d, big, sizeof(big), &used, &frame, &flen),
				 TPC_FRAME_NEED_MORE);
	assert_true(d.buf_cap <= TPC_FRAME_DEFAULT_MAX);
	size_t rest = TPC_FRAME_DEFAULT_MAX - sizeof(body) - 3 * sizeof(big);
	assert_int_equal(tpc_frame_feed(&d, big, rest, &used, &frame, &flen), TPC_FRAME_READY);
	assert_int_equal(flen, TPC_FRAME_DEFAULT_MAX);
	assert_int_equal(d.buf_cap, TPC_FRAME_DEFAULT_MAX);
	assert_int_equal(tpc_frame_decoder_pending(&d), 0);
	tpc_frame_decoder_trim(&d, 65536); /* between frames: the big buffer goes */
	assert_null(d.buf);
	assert_int_equal(d.buf_cap, 0);
	tpc_frame_decoder_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_decoder_accepts_one_byte_at_a_time),
		cmocka_unit_test(test_frame_decoder_returns_each_of_several_frames_in_one_buffer),
		cmocka_unit_test(test_frame_decoder_returns_a_contiguous_frame_in_place),
		cmocka_unit_test(test_frame_decoder_accepts_a_split_at_every_point),
		cmocka_unit_test(test_frame_decoder_accepts_every_two_way_split_of_one_frame),
		cmocka_unit_test(test_frame_decoder_rejects_an_oversized_length_right_after_the_header),
		cmocka_unit_test(test_frame_decoder_rejects_a_huge_length_with_the_default_maximum),
		cmocka_unit_test(test_frame_decoder_rejects_a_zero_length),
		cmocka_unit_test(test_frame_decoder_errors_are_sticky),
		cmocka_unit_test(test_frame_decoder_needs_more_on_truncated_input_and_consumes_it),
		cmocka_unit_test(test_frame_decoder_accepts_a_frame_of_exactly_the_maximum_size),
		cmocka_unit_test(test_frame_decoder_reports_enomem_without_losing_the_header),
		cmocka_unit_test(test_frame_decoder_survives_random_garbage),
		cmocka_unit_test(test_frame_decoder_buffer_grows_with_the_bytes_that_arrived),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
