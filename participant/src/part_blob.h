/*
 * part_blob.h - a transaction's staged writes as one byte string, the form they have in
 * memory and in the PREPARED record (so that record is written without re-encoding):
 * u32 count, then per write: u32 key length, key, u32 value length, value (integers
 * big-endian).
 */
#ifndef TPC_PART_BLOB_H
#define TPC_PART_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "tpc/sink.h"

/* A growing writes blob. */
struct part_blob {
	uint8_t *data;
	size_t len, cap;
	uint32_t count;
};

/** @brief Append one write. @return 0 or -ENOMEM. */
int part_blob_add(struct part_blob *b, const void *key, size_t klen, const void *val,
		  size_t vlen);
/** @brief The blob's bytes with the count in front (valid until the next add). */
const uint8_t *part_blob_bytes(struct part_blob *b, size_t *len);
void part_blob_free(struct part_blob *b);
/** @brief Key and value bytes the blob holds (what counts against max_staged_bytes). */
uint64_t part_blob_payload(const struct part_blob *b);

/**
 * @brief Decode a blob into a malloc'd array of writes pointing into @p data.
 * @return 0, -ENOMEM, or TPC_ECORRUPT for a malformed blob
 */
int part_blob_decode(const uint8_t *data, size_t len, tpc_write **writes, size_t *n);

#endif
