/*
 * frame.c - the incremental frame decoder (see frame.h).
 *
 * Invariants: buf is allocated only after a valid header announced body_len <=
 * max_frame, and never grows past max_frame; a frame wholly inside the caller's
 * input is returned in place, without a copy.
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void tpc_frame_decoder_init(struct tpc_frame_decoder *d, uint32_t max_frame)
{
	memset(d, 0, sizeof(*d));
	d->max_frame = max_frame ? max_frame : TPC_FRAME_DEFAULT_MAX;
}

void tpc_frame_decoder_free(struct tpc_frame_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->buf_cap = 0;
}

void tpc_frame_put_header(uint8_t out[TPC_FRAME_HEADER_SIZE], uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

uint32_t tpc_frame_get_header(const uint8_t in[TPC_FRAME_HEADER_SIZE])
{
	return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

static int check_length(struct tpc_frame_decoder *d)
{
	if (d->body_len == 0)
		d->failed = TPC_FRAME_ERR_EMPTY;
	else if (d->body_len > d->max_frame)
		d->failed = TPC_FRAME_ERR_TOO_BIG;
	return d->failed;
}

/*
 * Room for @p need body bytes. The buffer grows with what actually arrived (doubling,
 * from FRAME_MIN_BUF, never past the announced length), so a peer that announces a
 * large frame and sends a few bytes of it makes the decoder hold a few bytes, not the
 * announced length.
 */
#define FRAME_MIN_BUF 4096u

static int ensure_buf(struct tpc_frame_decoder *d, uint32_t need)
{
	if (d->buf_cap >= need)
		return 0;
	uint32_t ncap = d->buf_cap > FRAME_MIN_BUF / 2 ? d->buf_cap : FRAME_MIN_BUF / 2;
	while (ncap < need)
		ncap = ncap > UINT32_MAX / 2 ? UINT32_MAX : ncap * 2;
	if (ncap > d->body_len)
		ncap = d->body_len;
	uint8_t *nb = realloc(d->buf, ncap);
	if (!nb)
		return -ENOMEM;
	d->buf = nb;
	d->buf_cap = ncap;
	return 0;
}

static void reset_frame(struct tpc_frame_decoder *d)
{
	d->hdr_have = 0;
	d->body_len = 0;
	d->body_have = 0;
}

int tpc_frame_feed(struct tpc_frame_decoder *d, const uint8_t *in, size_t in_len,
		   size_t *consumed, const uint8_t **frame, uint32_t *frame_len)
{
	size_t pos = 0;

	*consumed = 0;
	if (d->failed)
		return d->failed;

	/* A previous frame was returned: start the next one. */
	if (d->hdr_have == TPC_FRAME_HEADER_SIZE && d->body_have == d->body_len)
		reset_frame(d);

	while (d->hdr_have < TPC_FRAME_HEADER_SIZE && pos < in_len)
		d->hdr[d->hdr_have++] = in[pos++];
	if (d->hdr_have < TPC_FRAME_HEADER_SIZE) {
		*consumed = pos;
		return TPC_FRAME_NEED_MORE;
	}
	if (d->body_have == 0) {
		d->body_len = tpc_frame_get_header(d->hdr);
		if (check_length(d)) {
			*consumed = pos;
			return d->failed;
		}
		/* Fast path: the whole body is contiguous in the input. */
		if (in_len - pos >= d->body_len) {
			*frame = in + pos;
			*frame_len = d->body_len;
			d->body_have = d->body_len;
			*consumed = pos + d->body_len;
			return TPC_FRAME_READY;
		}
	}
	size_t want = d->body_len - d->body_have;
	size_t take = in_len - pos < want ? in_len - pos : want;
	if (ensure_buf(d, d->body_have + (uint32_t)take)) {
		*consumed = pos; /* the header is in d->hdr: don't have it fed again */
		return -ENOMEM;
	}
	if (take)
		memcpy(d->buf + d->body_have, in + pos, take);
	d->body_have += (uint32_t)take;
	pos += take;
	*consumed = pos;
	if (d->body_have < d->body_len)
		return TPC_FRAME_NEED_MORE;
	*frame = d->buf;
	*frame_len = d->body_len;
	return TPC_FRAME_READY;
}

uint32_t tpc_frame_decoder_pending(const struct tpc_frame_decoder *d)
{
	if (d->failed || d->hdr_have == 0)
		return 0;
	if (d->hdr_have == TPC_FRAME_HEADER_SIZE && d->body_have == d->body_len)
		return 0; /* the last frame was returned whole */
	return d->hdr_have + d->body_have;
}

void tpc_frame_decoder_trim(struct tpc_frame_decoder *d, uint32_t keep)
{
	if (d->buf_cap > keep && tpc_frame_decoder_pending(d) == 0 && !d->failed) {
		free(d->buf);
		d->buf = NULL;
		d->buf_cap = 0;
	}
}
