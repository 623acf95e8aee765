/*
 * kv_harness.c - tpc-kv services for integration tests (see kv_harness.h).
 *
 * Owns nothing beyond what it puts in a struct kv_svc: the process belongs to the
 * cluster's process set, the folders to the cluster's temporary folder, and the
 * connection (k->wc) to the caller, who frees it with kv_svc_close_conn().
 */
#include "kv_harness.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define KV_MAX_ARGS 26

/* Tests stop and restart the coordinator under load (a crash, recovery, a slow ASan
 * build on a busy machine), which can leave a service without one for longer than
 * libtpc's default unreachable_timeout_ms (5 s); then a put fails fast with
 * ERR_UNAVAILABLE although the test only waits for the coordinator to come back. So
 * every service gets a generous one; a test about failing fast passes its own
 * --unreachable-timeout in extra, which comes later and wins. */
#define KV_UNREACHABLE_TIMEOUT "120s"

void kv_svc_init(struct kv_svc *k, struct cluster *c, const char *name, const char *leaf)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->port = tpc_free_port();
	assert_true(k->port > 0);
	snprintf(k->hostport, sizeof(k->hostport), "127.0.0.1:%d", k->port);
	snprintf(k->data, sizeof(k->data), "%s/%s", c->dir, leaf);
	snprintf(k->log, sizeof(k->log), "%s/%s.log", c->dir, leaf);
}

void kv_svc_spawn(struct kv_svc *k, struct cluster *c, const char *faults,
		  const char *const extra[])
{
	char *argv[KV_MAX_ARGS] = { TPC_KV_BIN, "--name", k->name, "--listen", k->hostport,
				    "--coordinator",
				    (char *)(k->coordinator ? k->coordinator : c->hostport),
				    "--data", k->data, "--unreachable-timeout",
				    KV_UNREACHABLE_TIMEOUT };
	int n = 11;
	char env_faults[160];
	const char *env[2] = { NULL, NULL };

	for (size_t i = 0; extra && extra[i]; i++) {
		assert_true(n < KV_MAX_ARGS - 1);
		argv[n++] = (char *)extra[i];
	}
	argv[n] = NULL;
	if (faults) {
		snprintf(env_faults, sizeof(env_faults), "TPC_FAULTS=%s", faults);
		env[0] = env_faults;
	}
	k->proc = tpc_proc_spawn_env(c->procs, argv, k->log, env);
	if (!k->proc)
		fail_msg("cannot start tpc-kv %s: %s", k->name, strerror(errno));
}

void kv_svc_start(struct kv_svc *k, struct cluster *c, const char *faults,
		  const char *const extra[])
{
	kv_svc_spawn(k, c, faults, extra);
	if (tpc_wait_port("127.0.0.1", k->port, WAIT_MS) != 0) {
		tpc_proc_dump(k->proc);
		fail_msg("tpc-kv %s did not listen on %s within %d ms", k->name, k->hostport,
			 WAIT_MS);
	}
}

void kv_svc_close_conn(struct kv_svc *k)
{
	tpc_wc_free(k->wc);
	k->wc = NULL;
}

int kv_svc_put_rc(struct kv_svc *k, uint64_t txid, const char *key, const char *value)
{
	return kv_svc_put_token_rc(k, txid, NULL, 0, key, value);
}

tpc_wc *kv_svc_connect(const struct kv_svc *k)
{
	tpc_wc *wc = NULL;
	char err[160];

	if (tpc_wc_connect(k->hostport, WAIT_MS, &wc, err, sizeof(err)) != 0)
		fail_msg("connect to tpc-kv %s: %s", k->name, err);
	tpc_wc_set_timeout(wc, WAIT_MS);
	return wc;
}

int kv_svc_put_token_rc(struct kv_svc *k, uint64_t txid, const uint8_t *token,
			size_t token_len, const char *key, const char *value)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT, *rep = NULL;
	Tpc__KvPut put = TPC__KV_PUT__INIT;

	if (!k->wc)
		k->wc = kv_svc_connect(k);
	put.txid = txid;
	put.txn_token = (ProtobufCBinaryData){ token_len, (uint8_t *)token };
	put.key.data = (uint8_t *)key;
	put.key.len = strlen(key);
	put.value.data = (uint8_t *)value;
	put.value.len = strlen(value);
	req.body_case = TPC__ENVELOPE__BODY_KV_PUT;
	req.kv_put = &put;
	int rc = tpc_wc_call(k->wc, &req, &rep);
	if (rc == 0) {
		int ok = rep->body_case == TPC__ENVELOPE__BODY_KV_PUT_REPLY && rep->kv_put_reply &&
			 rep->kv_put_reply->txid == txid;
		tpc__envelope__free_unpacked(rep, NULL);
		if (!ok)
			fail_msg("put %s to %s: not a KvPutReply for txid %llu", key, k->name,
				 (unsigned long long)txid);
	}
	return rc;
}

void kv_svc_put(struct kv_svc *k, uint64_t txid, const char *key, const char *value)
{
	int rc = kv_svc_put_rc(k, txid, key, value);

	if (rc != 0)
		fail_msg("put %s to %s in txid %llu: %s (%s)", key, k->name,
			 (unsigned long long)txid, tpc_wc_strerror(rc), tpc_wc_errmsg(k->wc));
}

void kv_svc_cmd(const struct kv_svc *k, const char *cmd, char *out, size_t cap)
{
	char *argv[] = { TPC_KV_BIN, (char *)cmd, "--data", (char *)k->data, NULL };
	int st = -1;
	int rc = tpc_run_capture(argv, out, cap, WAIT_MS, &st);

	if (rc != 0)
		fail_msg("tpc-kv %s --data %s: %s", cmd, k->data, strerror(-rc));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("tpc-kv %s --data %s: wait status 0x%x", cmd, k->data, st);
}

void kv_svc_dump(const struct kv_svc *k, char *out, size_t cap)
{
	kv_svc_cmd(k, "--dump", out, cap);
}

int kv_svc_applied_in(const struct kv_svc *k, uint64_t txid, char *lines, size_t cap)
{
	static char out[65536];
	char tail[32];
	size_t used = 0;
	int n = 0;

	kv_svc_dump(k, out, sizeof(out));
	snprintf(tail, sizeof(tail), "\t%llu", (unsigned long long)txid);
	if (lines && cap)
		lines[0] = '\0';
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t len = strlen(line), tl = strlen(tail);
		if (len < tl || strcmp(line + len - tl, tail) != 0)
			continue;
		n++;
		if (lines && used < cap)
			used += (size_t)snprintf(lines + used, cap - used, "%s%s", n > 1 ? "; " : "",
						 line);
	}
	return n;
}

void kv_svc_wait_applied(const struct kv_svc *k, const char *key, const char *value,
			 uint64_t txid)
{
	static char out[65536];
	char want[256];
	uint64_t deadline = now_ms() + WAIT_MS;

	/* A whole line: "\n" + the dump matched against "\n" + the line. */
	snprintf(want, sizeof(want), "\n%s\t%s\t%llu\n", key, value, (unsigned long long)txid);
	for (;;) {
		out[0] = '\n';
		kv_svc_dump(k, out + 1, sizeof(out) - 1);
		if (strstr(out, want))
			return;
		if (now_ms() >= deadline)
			fail_msg("tpc-kv %s never applied %s=%s in txid %llu; it holds:\n%s",
				 k->name, key, value, (unsigned long long)txid, out);
		poll(NULL, 0, 20);
	}
}

int kv_svc_log_count(const struct kv_svc *k, const char *text, const char *also)
{
	FILE *fp = fopen(k->log, "r");
	char line[4096];
	int n = 0;

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		n += strstr(line, text) && (!also || strstr(line, also));
	fclose(fp);
	return n;
}
