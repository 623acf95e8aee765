/*
 * frame.h - tpc's length-prefixed framing: a 4-byte big-endian length, then the body.
 *
 * The decoder is pure: bytes go in, and out comes a whole frame, a request for more
 * bytes, or an error. It never reads a socket and never allocates more than the
 * configured maximum frame size, so a hostile peer cannot make it allocate by
 * announcing a huge length. It accepts input split at any byte boundary.
 */
#ifndef TPC_PROTO_FRAME_H
#define TPC_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define TPC_FRAME_HEADER_SIZE 4u
#define TPC_FRAME_DEFAULT_MAX (1u << 20) /* 1 MiB */

enum tpc_frame_status {
	TPC_FRAME_NEED_MORE = 0, /* all input consumed, no complete frame yet */
	TPC_FRAME_READY = 1,     /* the out-parameters hold one whole frame body */
	TPC_FRAME_ERR_TOO_BIG = -1, /* announced length exceeds the maximum */
	TPC_FRAME_ERR_EMPTY = -2,   /* announced length is zero: no valid Envelope is empty-framed */
};

struct tpc_frame_decoder {
	uint32_t max_frame;
	uint8_t hdr[TPC_FRAME_HEADER_SIZE];
	uint32_t hdr_have;  /* header bytes collected so far */
	uint32_t body_len;  /* valid once hdr_have == 4 */
	uint32_t body_have; /* body bytes copied into buf so far */
	uint8_t *buf;       /* holds a frame split across feeds; capacity buf_cap */
	uint32_t buf_cap;
	int failed;         /* sticky: once an error is returned, every feed returns it */
};

/** @brief Initialise a decoder. @param max_frame largest body accepted (bytes, > 0). */
void tpc_frame_decoder_init(struct tpc_frame_decoder *d, uint32_t max_frame);

/** @brief Release the decoder's buffer. The decoder may be re-initialised afterwards. */
void tpc_frame_decoder_free(struct tpc_frame_decoder *d);

/**
 * @brief Feed bytes; stop at the first complete frame.
 * @param d the decoder
 * @param in input bytes (may be NULL when in_len is 0)
 * @param in_len number of input bytes
 * @param[out] consumed how many input bytes were used; the caller feeds the rest again
 * @param[out] frame on TPC_FRAME_READY, the frame body. It points either into @p in
 *        (when the whole frame was contiguous there) or into the decoder's buffer, and is
 *        valid until the next call on @p d or until @p in is released.
 * @param[out] frame_len on TPC_FRAME_READY, the body length
 * @return TPC_FRAME_READY, TPC_FRAME_NEED_MORE, or a negative TPC_FRAME_ERR_* (sticky).
 *         -ENOMEM is returned if the decoder's buffer cannot be allocated.
 */
int tpc_frame_feed(struct tpc_frame_decoder *d, const uint8_t *in, size_t in_len,
		   size_t *consumed, const uint8_t **frame, uint32_t *frame_len);

/**
 * @brief Bytes of an unfinished frame the decoder holds (header and body so far);
 *        0 between frames (nothing fed yet, or the last frame was returned whole).
 *        A server times a frame from the moment this turns non-zero.
 */
uint32_t tpc_frame_decoder_pending(const struct tpc_frame_decoder *d);

/**
 * @brief Between frames, release the buffer if it is larger than @p keep bytes (one big
 *        frame does not leave its buffer held for the connection's life). Mid-frame:
 *        no-op. The buffer grows again with the next split frame.
 */
void tpc_frame_decoder_trim(struct tpc_frame_decoder *d, uint32_t keep);

/** @brief Write the 4-byte big-endian header for a body of @p len bytes into @p out. */
void tpc_frame_put_header(uint8_t out[TPC_FRAME_HEADER_SIZE], uint32_t len);

/** @brief Read a 4-byte big-endian length. */
uint32_t tpc_frame_get_header(const uint8_t in[TPC_FRAME_HEADER_SIZE]);

#endif
