/*
 * part_blob.c - the encoding of a transaction's staged writes (see part_blob.h): built
 * one write at a time on the loop thread, decoded for the sink's prepare() and commit().
 * Pure: no I/O, no LMDB; decoding never reads past @p len and refuses any blob whose
 * lengths do not add up exactly.
 */
#include "part_blob.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "tpc/common.h"

static int blob_reserve(struct part_blob *b, size_t more)
{
	if (!b->data) {
		b->cap = 256 > more + 4 ? 256 : more + 4;
		b->data = malloc(b->cap);
		if (!b->data)
			return -ENOMEM;
		b->len = 4; /* the count, filled in by part_blob_bytes() */
	}
	if (b->len + more <= b->cap)
		return 0;
	size_t ncap = b->cap * 2 > b->len + more ? b->cap * 2 : b->len + more;
	uint8_t *nd = realloc(b->data, ncap);
	if (!nd)
		return -ENOMEM;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

int part_blob_add(struct part_blob *b, const void *key, size_t klen, const void *val,
		  size_t vlen)
{
	if (klen > UINT32_MAX || vlen > UINT32_MAX || b->count == UINT32_MAX)
		return -E2BIG;
	if (blob_reserve(b, 8 + klen + vlen))
		return -ENOMEM;
	uint8_t *p = b->data + b->len;
	tpc_put_be32(p, (uint32_t)klen);
	if (klen)
		memcpy(p + 4, key, klen);
	tpc_put_be32(p + 4 + klen, (uint32_t)vlen);
	if (vlen)
		memcpy(p + 8 + klen, val, vlen);
	b->len += 8 + klen + vlen;
	b->count++;
	return 0;
}

const uint8_t *part_blob_bytes(struct part_blob *b, size_t *len)
{
	if (blob_reserve(b, 0)) {
		*len = 0;
		return NULL;
	}
	tpc_put_be32(b->data, b->count);
	*len = b->len;
	return b->data;
}

uint64_t part_blob_payload(const struct part_blob *b)
{
	return b->len > 4 ? b->len - 4 - 8ull * b->count : 0;
}

void part_blob_free(struct part_blob *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int part_blob_decode(const uint8_t *data, size_t len, tpc_write **writes, size_t *n)
{
	*writes = NULL;
	*n = 0;
	if (len < 4)
		return TPC_ECORRUPT;
	uint32_t count = tpc_get_be32(data);
	if (count > (len - 4) / 8)
		return TPC_ECORRUPT;
	tpc_write *w = calloc(count ? count : 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	size_t pos = 4;
	for (uint32_t i = 0; i < count; i++) {
		if (len - pos < 4)
			goto corrupt;
		size_t kl = tpc_get_be32(data + pos);
		if (len - pos - 4 < kl + 4)
			goto corrupt;
		w[i].key = data + pos + 4;
		w[i].key_len = kl;
		size_t vl = tpc_get_be32(data + pos + 4 + kl);
		if (len - pos - 8 - kl < vl)
			goto corrupt;
		w[i].value = data + pos + 8 + kl;
		w[i].value_len = vl;
		pos += 8 + kl + vl;
	}
	if (pos != len)
		goto corrupt;
	*writes = w;
	*n = count;
	return 0;
corrupt:
	free(w);
	return TPC_ECORRUPT;
}
