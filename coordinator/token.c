/*
 * token.c - transaction tokens (proto/tpc.proto, "Who may do what"): 16 random bytes
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
