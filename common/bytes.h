/*
 * bytes.h - big-endian integer encoding for on-disk records and LMDB keys
 * (big-endian so that integer keys sort in numeric order).
 */
#ifndef TPC_COMMON_BYTES_H
#define TPC_COMMON_BYTES_H

#include <stdint.h>

static inline void tpc_put_be16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static inline void tpc_put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static inline void tpc_put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static inline uint16_t tpc_get_be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t tpc_get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t tpc_get_be64(const unsigned char *p)
{
	return (uint64_t)tpc_get_be32(p) << 32 | tpc_get_be32(p + 4);
}

#endif
