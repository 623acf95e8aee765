/*
 * token.c - what names a transaction: its txid (coord_next_txid(): epoch << 40 | seq,
 * a new epoch made durable first when the sequence is used up, rule D7) and its token.
 *
 * Transaction tokens (proto/tpc.proto, "Who may do what"): 16 random bytes
 * made for each Begin and returned in BeginReply; a participant's Join proves with them
 * that its writer holds the transaction.
 *
 * Tokens come from getrandom(2) through a small pool on the server (512 bytes: one
 * system call per 32 Begins); a pool byte is handed out once and then wiped. A token is
 * never logged nor shown by the admin API.
 * A Join's token is compared in constant time (tpc_secret_equal).
 */
#include "server_int.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

int coord_token_new(struct coord_server *s, uint8_t out[TPC_TXN_TOKEN_LEN])
{
	if (s->token_pool_left < TPC_TXN_TOKEN_LEN) {
		ssize_t n = getrandom(s->token_pool, sizeof(s->token_pool), 0);
		if (n != (ssize_t)sizeof(s->token_pool))
			return n < 0 ? -errno : -EIO;
		s->token_pool_left = sizeof(s->token_pool);
	}
	uint8_t *p = s->token_pool + sizeof(s->token_pool) - s->token_pool_left;
	memcpy(out, p, TPC_TXN_TOKEN_LEN);
	memset(p, 0, TPC_TXN_TOKEN_LEN);
	s->token_pool_left -= TPC_TXN_TOKEN_LEN;
	return 0;
}

int coord_token_check(const struct coord_server *s, const struct coord_txn *t,
		      const uint8_t *given, size_t len, const char **why)
{
	if (len == 0) {
		*why = "this coordinator requires the transaction's token in a Join "
		       "(--require-txn-token)";
		return !s->cfg.require_txn_token;
	}
	*why = "the Join's transaction token does not match the transaction's";
	return len == TPC_TXN_TOKEN_LEN && tpc_secret_equal(given, t->token, TPC_TXN_TOKEN_LEN);
}

/* D7 again, mid-run: a new epoch, durable before any txid of it is handed out. */
static int bump_epoch(struct coord_server *s)
{
	uint64_t epoch = s->epoch + 1;
	int rc;

	if (epoch >= (1ull << (64 - COORD_TXID_SEQ_BITS))) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "txid space exhausted (epoch %llu)",
			 (unsigned long long)s->epoch);
		return -EOVERFLOW;
	}
	rc = s->store.ops->write_meta(s->store.self, s->id, epoch);
	if (rc) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot store the new epoch %llu: %d",
			 (unsigned long long)epoch, rc);
		return rc;
	}
	tpc_logf(&s->log, TPC_LOG_WARN, "txid sequence of epoch %llu used up: now epoch %llu",
		 (unsigned long long)s->epoch, (unsigned long long)epoch);
	s->epoch = epoch;
	s->next_seq = 0;
	return 0;
}

uint64_t coord_next_txid(struct coord_server *s)
{
	if (s->next_seq >= COORD_TXID_SEQ_MAX && bump_epoch(s))
		return 0;
	return s->epoch << COORD_TXID_SEQ_BITS | ++s->next_seq;
}
