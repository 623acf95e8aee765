/*
 * fuzz_input.h - reading a fuzzer's input as a stream of small numbers, for the
 * harnesses in fuzz/. Past the end every read returns 0, so any input is a valid program.
 */
#ifndef TPC_FUZZ_INPUT_H
#define TPC_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline int fz_more(const struct fz *f)
{
	return f->n > 0;
}

static inline uint8_t fz_u8(struct fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

/* A value in [0, n) (n > 0). */
static inline uint32_t fz_pick(struct fz *f, uint32_t n)
{
	return fz_u8(f) % n;
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = (v << 8) | fz_u8(f);
	return v;
}

/* An invariant broken: say which, and crash so libFuzzer keeps the input. */
#define FZ_CHECK(cond, ...)                                                          \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "invariant broken (%s:%d): ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
			abort();                                                      \
		}                                                                     \
	} while (0)

#endif
