/*
 * session.c - `tpcctl txn begin`: one transaction run by hand, as a client on the
 * coordinator's protocol port (libtpc's blocking client API, tpc/client.h).
 *
 * The coordinator takes Commit and Abort only on the connection that began the
 * transaction, and aborts an ACTIVE transaction whose connection closes (txn.c). So the
 * session keeps its connection: it prints the txid and token, then reads one command
 * per line on stdin (commit, abort [REASON], status) and sends it on that connection.
 * End of input aborts. Other shells stage writes meanwhile (`tpc-kv put --txid ...`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "tpc/client.h"

static void print_token(const uint8_t *tok, size_t len)
{
	printf("token ");
	for (size_t i = 0; i < len; i++)
		printf("%02x", tok[i]);
	putchar('\n');
}

/* The outcome, printed; the exit status: 0 if it is @p want, else 1. */
static int report_outcome(tpc_client *cl, int rc, tpc_outcome o, const char *reason,
			  tpc_outcome want)
{
	if (rc) {
		fprintf(stderr, "tpcctl: %s: %s\n", tpc_strerror(rc), tpc_client_errmsg(cl));
		return CTL_EXIT_ERROR;
	}
	printf("%s%s%s\n", tpc_outcome_str(o), reason && *reason ? ": " : "",
	       reason ? reason : "");
	return o == want ? CTL_EXIT_OK : CTL_EXIT_ERROR;
}

static int finish(tpc_client *cl, tpc_txid txid, int commit, const char *why)
{
	tpc_outcome o = TPC_OUTCOME_UNKNOWN;
	char reason[256] = "";
	int rc = commit ? tpc_client_commit(cl, txid, &o, reason, sizeof(reason))
			: tpc_client_abort(cl, txid, why, &o);

	return report_outcome(cl, rc, o, commit ? reason : why,
			      commit ? TPC_OUTCOME_COMMITTED : TPC_OUTCOME_ABORTED);
}

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* Read commands until commit or abort; end of input aborts. */
static int converse(tpc_client *cl, tpc_txid txid)
{
	char line[512];
	tpc_status st;

	while (fgets(line, sizeof(line), stdin)) {
		trim(line);
		if (strcmp(line, "commit") == 0)
			return finish(cl, txid, 1, NULL);
		if (strncmp(line, "abort", 5) == 0 && (line[5] == '\0' || line[5] == ' '))
			return finish(cl, txid, 0, line[5] ? line + 6 : "aborted by hand");
		if (strcmp(line, "status") == 0 && tpc_client_status(cl, txid, &st) == 0)
			printf("%s\n", tpc_status_str(st));
		else if (*line)
			fprintf(stderr, "tpcctl: '%s': expected commit, abort [REASON] or status\n",
				line);
		fflush(stdout);
	}
	fprintf(stderr, "tpcctl: end of input: aborting txn %llu\n", (unsigned long long)txid);
	finish(cl, txid, 0, "end of input");
	return CTL_EXIT_ERROR; /* nobody asked for this abort */
}

static int begin_result(tpc_client *cl, tpc_txid txid, tpc_begin_result res,
			const uint8_t *tok, size_t toklen)
{
	if (res == TPC_BEGIN_ALREADY_COMMITTED) {
		printf("txid %llu\nCOMMITTED: the key's transaction already committed\n",
		       (unsigned long long)txid);
		return CTL_EXIT_OK;
	}
	if (res == TPC_BEGIN_PENDING) {
		fprintf(stderr, "tpcctl: the key's transaction %llu is deciding; ask again\n",
			(unsigned long long)txid);
		return CTL_EXIT_ERROR;
	}
	printf("txid %llu\n", (unsigned long long)txid);
	if (toklen)
		print_token(tok, toklen);
	fflush(stdout);
	fprintf(stderr, "tpcctl: stage writes with this txid (tpc-kv put --txid %llu%s ...), "
		"then type commit or abort [REASON]\n", (unsigned long long)txid,
		toklen ? " --token HEX" : "");
	return converse(cl, txid);
}

int ctl_cmd_txn_begin(struct ctl *c)
{
	uint8_t tok[TPC_TXN_TOKEN_LEN];
	size_t toklen = 0;
	tpc_client_config cfg;
	tpc_begin_result res;
	tpc_txid txid;
	tpc_client *cl;
	int err = 0, rc;

	tpc_client_config_init(&cfg);
	cfg.coordinator = c->coordinator;
	cfg.name = "tpcctl";
	cfg.request_timeout_ms = (uint32_t)c->timeout_ms;
	cfg.tls_cert = c->tls.cert;
	cfg.tls_key = c->tls.key;
	cfg.tls_ca = c->tls.ca;
	cl = tpc_client_new(&cfg, &err);
	if (!cl) {
		fprintf(stderr, "tpcctl: --coordinator %s: %s\n", c->coordinator, tpc_strerror(err));
		return CTL_EXIT_USAGE;
	}
	rc = tpc_client_begin_token(cl, c->key, c->txn_timeout_ms, &txid, &res, tok, &toklen);
	if (rc) {
		fprintf(stderr, "tpcctl: begin at %s: %s (%s)\n", c->coordinator, tpc_strerror(rc),
			tpc_client_errmsg(cl));
		rc = CTL_EXIT_ERROR;
	} else {
		rc = begin_result(cl, txid, res, tok, toklen);
	}
	tpc_client_free(cl);
	return rc;
}
