/*
 * fuzz_frame.c - libFuzzer harness for the frame decoder (proto/frame.c) and the
 * Envelope decoding every receiver runs on each frame (proto/wire.c).
 *
 * Input: [max-frame choice][chunking seed][stream bytes ...]. The stream is decoded
 * three times: fed whole, in chunks of 1..64 bytes chosen by the seed, and through
 * tpc_wire_read (what every connection runs) from an evbuffer filled chunk by chunk;
 * checked:
 *   - all runs yield the same frames (count, lengths, bytes) and the same final status:
 *     the decoder's answer does not depend on where the bytes were split;
 *   - no frame is longer than the maximum, none is empty, and an error is sticky;
 *   - every frame goes through tpc_wire_unpack and tpc_wire_validate, and an Envelope
 *     that validates packs again and unpacks to the same body case. (Not when it kept
 *     unknown fields: protobuf-c accepts field number 0 in a tag written in two bytes,
 *     keeps it as an unknown field, and refuses it when packed back in one byte. tpc
 *     never packs a received message again, so only this check would see it.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "frame.h"
#include "fuzz_input.h"
#include "wire.h"

struct run {
	uint32_t frames;
	uint64_t hash;   /* FNV-1a over every frame's length and bytes */
	int status;      /* the last non-READY answer */
};

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* Whether @p m or any message inside it kept unknown fields. */
static int has_unknown(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (m->n_unknown_fields)
		return 1;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const char *base = (const char *)m + fd->offset;
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id)
			continue; /* another member of the oneof is the one set */
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
			ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)base;
			for (size_t j = 0; j < n; j++)
				if (v[j] && has_unknown(v[j]))
					return 1;
		} else {
			const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)base;
			if (sub && has_unknown(sub))
				return 1;
		}
	}
	return 0;
}

/* Unpack, validate, and for a valid Envelope pack and unpack again. */
static void check_envelope(struct tpc_arena *arena, const uint8_t *body, uint32_t len)
{
	static uint8_t packed[TPC_FRAME_HEADER_SIZE + 4096];
	const char *why = NULL;
	Tpc__Envelope *env = tpc_wire_unpack(arena, body, len);

	if (!env || tpc_wire_validate(env, &why) || has_unknown(&env->base))
		return;
	FZ_CHECK(tpc_wire_body_name(env->body_case) != NULL, "no name for a valid body");
	Tpc__Envelope__BodyCase c = env->body_case;
	long n = tpc_wire_pack(env, packed, sizeof(packed));
	if (n < 0)
		return; /* larger than the test buffer: fine */
	FZ_CHECK(tpc_frame_get_header(packed) == (uint32_t)n - TPC_FRAME_HEADER_SIZE,
		 "packed header does not match its body");
	env = tpc_wire_unpack(arena, packed + TPC_FRAME_HEADER_SIZE,
			      (size_t)n - TPC_FRAME_HEADER_SIZE);
	FZ_CHECK(env && env->body_case == c, "a valid Envelope did not survive pack+unpack");
}

static void on_frame(struct run *r, struct tpc_arena *arena, uint32_t max,
		     const uint8_t *frame, uint32_t len)
{
	FZ_CHECK(len > 0 && len <= max, "frame of %u bytes with maximum %u", len, max);
	r->frames++;
	r->hash = fnv(fnv(r->hash, (const uint8_t *)&len, sizeof(len)), frame, len);
	if (arena)
		check_envelope(arena, frame, len);
}

/* Feed one piece until it is used up or the decoder fails. */
static void feed(struct tpc_frame_decoder *d, struct run *r, struct tpc_arena *arena,
		 const uint8_t *in, size_t n)
{
	while (n > 0 || r->status == TPC_FRAME_READY) {
		size_t used = 0;
		const uint8_t *frame = NULL;
		uint32_t len = 0;
		int rc = tpc_frame_feed(d, in, n, &used, &frame, &len);

		FZ_CHECK(used <= n, "consumed %zu of %zu", used, n);
		if (rc == TPC_FRAME_READY)
			on_frame(r, arena, d->max_frame, frame, len);
		else if (rc < 0) {
			FZ_CHECK(tpc_frame_feed(d, in, n, &used, &frame, &len) == rc,
				 "error %d not sticky", rc);
			r->status = rc;
			return;
		}
		in += used;
		n -= used;
		r->status = rc;
		if (rc == TPC_FRAME_NEED_MORE) {
			FZ_CHECK(n == 0, "NEED_MORE with %zu bytes left", n);
			return;
		}
	}
}

static int wire_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct run *r = arg;

	on_frame(r, NULL, UINT32_MAX, body, len);
	return 0;
}

/* The same stream through tpc_wire_read, chunk after chunk appended to an evbuffer. */
static void wire_run(struct run *r, uint32_t max, uint32_t seed, const uint8_t *p, size_t n)
{
	struct tpc_frame_decoder d;
	struct evbuffer *in = evbuffer_new();

	FZ_CHECK(in != NULL, "out of memory");
	tpc_frame_decoder_init(&d, max);
	for (size_t off = 0; off < n && r->status >= 0;) {
		seed = seed * 1103515245u + 12345u;
		size_t k = 1 + (seed >> 16) % 64;
		k = k > n - off ? n - off : k;
		evbuffer_add(in, p + off, k);
		off += k;
		int rc = tpc_wire_read(in, &d, wire_frame, r);
		r->status = rc < 0 ? rc : TPC_FRAME_NEED_MORE;
	}
	tpc_frame_decoder_free(&d);
	evbuffer_free(in);
}

static uint32_t max_of(uint8_t choice)
{
	static const uint32_t maxes[] = { 1, 2, 7, 64, 300, 4096, TPC_FRAME_DEFAULT_MAX };

	return maxes[choice % (sizeof(maxes) / sizeof(maxes[0]))];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	uint32_t max = max_of(fz_u8(&f));
	uint32_t seed = fz_u8(&f) * 2654435761u + 1, seed0 = seed;
	struct tpc_frame_decoder whole, chunked;
	struct run a = { 0, 14695981039346656037ull, 0 }, b = a, w = a;
	struct tpc_arena arena;

	tpc_arena_init(&arena, 4096);
	tpc_frame_decoder_init(&whole, max);
	tpc_frame_decoder_init(&chunked, max);
	feed(&whole, &a, &arena, f.p, f.n);
	for (size_t off = 0; off < f.n && b.status >= 0;) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 64;
		n = n > f.n - off ? f.n - off : n;
		feed(&chunked, &b, NULL, f.p + off, n);
		off += n;
	}
	wire_run(&w, max, seed0 ^ 0x5bd1e995u, f.p, f.n);
	FZ_CHECK(a.frames == b.frames && a.hash == b.hash && a.status == b.status,
		 "whole: %u frames status %d; chunked: %u frames status %d", a.frames, a.status,
		 b.frames, b.status);
	FZ_CHECK(a.frames == w.frames && a.hash == w.hash && a.status == w.status,
		 "whole: %u frames status %d; tpc_wire_read: %u frames status %d", a.frames,
		 a.status, w.frames, w.status);
	tpc_frame_decoder_free(&whole);
	tpc_frame_decoder_free(&chunked);
	tpc_arena_free(&arena);
	return 0;
}
