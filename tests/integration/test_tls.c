/*
 * test_tls.c - mutual TLS end to end, with real processes on 127.0.0.1 (ports chosen
 * free at run time, a fresh temporary folder): a tpc-coordinator with --tls-cert,
 * tpc-kv services whose listener and participant use TLS, and the test as a TLS client
 * (tests/support/wireclient.c over OpenSSL). Certificates come from
 * scripts/make-certs.sh: a CA "one" (coord, A, B, client) and a CA "two" (coord, A,
 * client), both with SAN IP:127.0.0.1.
 *
 * Covered: a transaction commits through TLS everywhere; a plaintext peer gets no
 * HelloReply and is closed; a certificate for B saying Hello as A is refused with
 * ERR_IDENTITY while A keeps its connection and commits; a coordinator whose
 * certificate comes from another CA gets no Hello from a participant (nothing is
 * prepared or applied); SIGHUP makes the coordinator trust a CA added to its --tls-ca
 * file, for new connections; the admin API serves HTTPS with the same certificate
 * (tpcctl --tls-ca), and plain HTTP to it gets no answer.
 *
 * Every wait polls a condition against a deadline (WAIT_MS); nothing sleeps for a
 * fixed time. cluster_teardown() kills every process and removes the folder.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "kv_harness.h"
#include "tls.h"
#include "tpc/client.h"

struct fx {
	struct cluster *c;
	char one[PATH_MAX + 16], two[PATH_MAX + 16]; /* the two CAs' folders */
	char trust[PATH_MAX + 32];                   /* the coordinator's --tls-ca file */
	char paths[32][PATH_MAX + 64];
	int npaths;
};

/* DIR/NAME.EXT, kept in the fixture so argv strings outlive the call. */
static const char *cert(struct fx *f, const char *dir, const char *name, const char *ext)
{
	char *p = f->paths[f->npaths++ % 32];

	snprintf(p, sizeof(f->paths[0]), "%s/%s.%s", dir, name, ext);
	return p;
}

static struct tpc_tls_files files_of(struct fx *f, const char *dir, const char *name)
{
	return (struct tpc_tls_files){ cert(f, dir, name, "crt"), cert(f, dir, name, "key"),
				       cert(f, dir, "ca", "crt") };
}

static void make_certs(const char *dir, const char *ca_name)
{
	static char out[4096];
	char *argv[] = { "/bin/bash", TPC_MAKE_CERTS, "--ca-name", (char *)ca_name, (char *)dir,
			 "coord", "A", "B", "client", NULL };
	int st = -1;

	assert_int_equal(tpc_run_capture(argv, out, sizeof(out), WAIT_MS * 3, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void copy_file(const char *from, const char *to, const char *mode)
{
	FILE *in = fopen(from, "r"), *out = fopen(to, mode);
	char buf[4096];
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static int setup(void **state)
{
	void *inner = NULL;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	cluster_setup(&inner);
	f->c = inner;
	snprintf(f->one, sizeof(f->one), "%s/ca-one", f->c->dir);
	snprintf(f->two, sizeof(f->two), "%s/ca-two", f->c->dir);
	snprintf(f->trust, sizeof(f->trust), "%s/trust.pem", f->c->dir);
	make_certs(f->one, "tpc test CA one");
	make_certs(f->two, "tpc test CA two");
	copy_file(cert(f, f->one, "ca", "crt"), f->trust, "w");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	void *inner = f->c;

	cluster_teardown(&inner);
	free(f);
	return 0;
}

/* The coordinator with CA one's "coord" certificate, trusting f->trust. */
static void coord_start_tls(struct fx *f, const char *dir)
{
	coord_start(f->c, NULL, "--tls-cert", cert(f, dir, "coord", "crt"), "--tls-key",
		    cert(f, dir, "coord", "key"), "--tls-ca",
		    dir == f->one ? f->trust : cert(f, dir, "ca", "crt"), "--admin", "off", NULL);
}

/* tpc-kv NAME with CA one's certificate for NAME, on both of its connections. */
static void kv_start_tls(struct fx *f, struct kv_svc *k, const char *name)
{
	const char *extra[] = { "--tls-cert", cert(f, f->one, name, "crt"), "--tls-key",
				cert(f, f->one, name, "key"), "--tls-ca",
				cert(f, f->one, "ca", "crt"), NULL };

	kv_svc_init(k, f->c, name, name);
	kv_svc_start(k, f->c, NULL, extra);
}

static void kv_wait_log(const struct kv_svc *k, const char *text)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (kv_svc_log_count(k, text, NULL) == 0) {
		if (now_ms() >= deadline)
			fail_msg("tpc-kv %s never logged \"%s\" (log %s)", k->name, text, k->log);
		poll(NULL, 0, 20);
	}
}

/* A TLS connection with @p files to @p hostport, or NULL with @p err set. */
static tpc_wc *tls_open(const char *hostport, const struct tpc_tls_files *files, char *err,
			size_t errlen)
{
	tpc_wc *wc = NULL;

	if (tpc_wc_connect_tls(hostport, WAIT_MS, files, &wc, err, errlen) != 0)
		return NULL;
	tpc_wc_set_timeout(wc, WAIT_MS);
	return wc;
}

static tpc_wc *client_tls(struct fx *f, const char *dir, const char *name)
{
	struct tpc_tls_files files = files_of(f, dir, name);
	char err[512];
	tpc_wc *wc = tls_open(f->c->hostport, &files, err, sizeof(err));
	uint64_t epoch = 0;

	if (!wc)
		fail_msg("TLS connect as %s: %s", name, err);
	int rc = tpc_wc_hello(wc, TPC__ROLE__ROLE_CLIENT, name, &epoch);
	if (rc != 0)
		fail_msg("hello as %s: %s (%s)", name, tpc_wc_strerror(rc), tpc_wc_errmsg(wc));
	return wc;
}

/* Begin, put key=value to every service over TLS, commit: COMMITTED, applied by all. */
static void commit_through(struct fx *f, struct kv_svc *kv, int nkv, const char *key)
{
	tpc_wc *wc = client_tls(f, f->one, "client");
	struct tpc_tls_files files = files_of(f, f->one, "client");
	uint64_t txid = client_begin(wc, NULL);
	char err[512];

	for (int i = 0; i < nkv; i++) {
		if (!kv[i].wc && !(kv[i].wc = tls_open(kv[i].hostport, &files, err, sizeof(err))))
			fail_msg("TLS connect to tpc-kv %s: %s", kv[i].name, err);
		kv_svc_put(&kv[i], txid, key, kv[i].name);
	}
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	for (int i = 0; i < nkv; i++)
		kv_svc_wait_applied(&kv[i], key, kv[i].name, txid);
	tpc_wc_free(wc);
}

/* ---- tests ---- */

static void test_tls_transaction_commits_with_tls_everywhere(void **state)
{
	struct fx *f = *state;
	struct kv_svc kv[2];

	coord_start_tls(f, f->one);
	kv_start_tls(f, &kv[0], "A");
	kv_start_tls(f, &kv[1], "B");
	kv_wait_log(&kv[0], "connected to the coordinator");
	kv_wait_log(&kv[1], "connected to the coordinator");
	commit_through(f, kv, 2, "k1");
	coord_log_has(f->c, "TLS required");
	for (int i = 0; i < 2; i++)
		kv_svc_close_conn(&kv[i]);
}

/* With a fault point armed, a YES vote is written out at once (tpc_wire_flush_now)
 * before the point may crash: through TLS that write must leave the connection as it
 * found it (it once froze the output, and every later frame was sent again and again). */
static void test_tls_vote_written_out_before_a_fault_point_is_sent_once(void **state)
{
	struct fx *f = *state;
	const char *extra[] = { "--tls-cert", cert(f, f->one, "A", "crt"), "--tls-key",
				cert(f, f->one, "A", "key"), "--tls-ca", cert(f, f->one, "ca", "crt"),
				NULL };
	struct kv_svc kv;

	coord_start_tls(f, f->one);
	kv_svc_init(&kv, f->c, "A", "A");
	kv_svc_start(&kv, f->c, "part.vote.after_send=delay:1", extra);
	kv_wait_log(&kv, "connected to the coordinator");
	commit_through(f, &kv, 1, "first");
	commit_through(f, &kv, 1, "second");
	assert_int_equal(kv_svc_log_count(&kv, "coordinator error", NULL), 0);
	coord_log_has(f->c, "TLS required");
	kv_svc_close_conn(&kv);
}

static void test_tls_plaintext_peer_gets_no_hello_reply_and_is_closed(void **state)
{
	struct fx *f = *state;
	Tpc__Envelope *env;

	coord_start_tls(f, f->one);
	tpc_wc *wc = client_open_raw(f->c);
	uint64_t epoch = 0;
	int rc = tpc_wc_hello(wc, TPC__ROLE__ROLE_CLIENT, "plain", &epoch);
	assert_int_not_equal(rc, 0); /* no HelloReply: EOF, or a TLS alert that is no frame */
	while ((env = tpc_wc_recv(wc, WAIT_MS)) != NULL) {
		assert_int_not_equal(env->body_case, TPC__ENVELOPE__BODY_HELLO_REPLY);
		tpc__envelope__free_unpacked(env, NULL);
	}
	assert_true(tpc_wc_last_rc(wc) == -ECONNRESET || tpc_wc_last_rc(wc) == -EPROTO);
	coord_wait_log(f->c, "refused: TLS");
	/* The port still serves TLS peers. */
	tpc_wc_free(client_tls(f, f->one, "client"));
}

static void test_tls_certificate_of_b_cannot_say_hello_as_a(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files b = files_of(f, f->one, "B");
	struct tpc_wc_identity id;
	struct kv_svc kv;
	char err[512];
	uint64_t epoch = 0;

	coord_start_tls(f, f->one);
	kv_start_tls(f, &kv, "A");
	kv_wait_log(&kv, "connected to the coordinator");
	tpc_wc *wc = tls_open(f->c->hostport, &b, err, sizeof(err));
	if (!wc)
		fail_msg("TLS connect as B: %s", err);
	tpc_wc_default_identity("A", &id);
	assert_int_equal(tpc_wc_hello_participant(wc, "A", &id, &epoch), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(wc), TPC__ERROR_CODE__ERR_IDENTITY);
	assert_non_null(strstr(tpc_wc_errmsg(wc), "certificate CN B may only speak for "
					       "participant B"));
	assert_null(tpc_wc_recv(wc, WAIT_MS)); /* and closed */
	tpc_wc_free(wc);
	/* A was never disturbed: still connected, and it commits. */
	assert_int_equal(kv_svc_log_count(&kv, "lost the coordinator connection", NULL), 0);
	commit_through(f, &kv, 1, "still-a");
	assert_int_equal(kv_svc_log_count(&kv, "lost the coordinator connection", NULL), 0);
	kv_svc_close_conn(&kv);
}

static void test_tls_participant_sends_nothing_to_a_coordinator_of_another_ca(void **state)
{
	struct fx *f = *state;
	struct kv_svc kv;
	char out[4096];

	coord_start_tls(f, f->two); /* a "coordinator" whose certificate CA one never signed */
	kv_start_tls(f, &kv, "A");
	kv_wait_log(&kv, "certificate verify failed");
	kv_wait_log(&kv, "TLS with the coordinator at");
	assert_int_equal(kv_svc_log_count(&kv, "connected to the coordinator", NULL), 0);
	/* Its own side: the handshake failed, so no Hello ever arrived. */
	coord_wait_log(f->c, "refused: TLS");
	assert_int_equal(kv_svc_applied_in(&kv, 0, NULL, 0), 0);
	char *argv[] = { TPC_KV_BIN, "--prepared", "--data", kv.data, NULL };
	int st = -1;
	assert_int_equal(tpc_run_capture(argv, out, sizeof(out), WAIT_MS, &st), 0);
	assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* the header line only */
	kv_svc_dump(&kv, out, sizeof(out));
	assert_string_equal(out, "");
}

/* A listener on the cluster's coordinator port that accepts TCP and never speaks. */
static int silent_listener(struct cluster *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static void test_tls_participant_gives_up_on_a_server_that_never_handshakes(void **state)
{
	struct fx *f = *state;
	struct kv_svc kv;
	int lfd = silent_listener(f->c);

	kv_start_tls(f, &kv, "A");
	kv_wait_log(&kv, "no TLS handshake");
	assert_int_equal(kv_svc_log_count(&kv, "connected to the coordinator", NULL), 0);
	close(lfd);
}

static void test_tls_sighup_trusts_a_ca_added_to_the_ca_file(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files other = files_of(f, f->two, "client");
	char err[512];
	uint64_t epoch = 0;

	other.ca = cert(f, f->one, "ca", "crt"); /* it checks the coordinator against CA one */
	coord_start_tls(f, f->one);
	tpc_wc *before = tls_open(f->c->hostport, &other, err, sizeof(err));
	/* TLS 1.3: the client may finish before the server refuses its certificate. */
	assert_true(!before || tpc_wc_hello(before, TPC__ROLE__ROLE_CLIENT, "x", &epoch) != 0);
	tpc_wc_free(before);
	tpc_wc *kept = client_tls(f, f->one, "client"); /* opened before the reload */

	copy_file(cert(f, f->two, "ca", "crt"), f->trust, "a");
	assert_int_equal(kill(tpc_proc_pid(f->c->coord), SIGHUP), 0);
	coord_wait_log(f->c, "loaded for new connections");
	tpc_wc *after = tls_open(f->c->hostport, &other, err, sizeof(err));
	if (!after)
		fail_msg("TLS connect with CA two's certificate after the reload: %s", err);
	assert_int_equal(tpc_wc_hello(after, TPC__ROLE__ROLE_CLIENT, "x", &epoch), 0);
	uint64_t txid = client_begin(kept, NULL); /* the open connection kept working */
	assert_true(txid != 0);
	tpc_wc_free(after);
	tpc_wc_free(kept);
}

/* libtpc's client: a good certificate begins; a bad file or a server it does not trust
 * is TPC_ETLS with the reason in tpc_client_errmsg(). */
static int libtpc_begin(struct fx *f, const struct tpc_tls_files *tls, char *msg, size_t len)
{
	tpc_client_config cc;
	tpc_txid txid = 0;
	tpc_begin_result res;
	int err = 0;

	tpc_client_config_init(&cc);
	cc.coordinator = f->c->hostport;
	cc.tls_cert = tls->cert;
	cc.tls_key = tls->key;
	cc.tls_ca = tls->ca;
	tpc_client *cli = tpc_client_new(&cc, &err);
	assert_non_null(cli);
	int rc = tpc_client_begin(cli, NULL, 0, &txid, &res);
	snprintf(msg, len, "%s", tpc_client_errmsg(cli));
	tpc_client_free(cli);
	return rc;
}

static void test_tls_libtpc_client_says_why_tls_failed(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files good = files_of(f, f->one, "client");
	struct tpc_tls_files foreign = files_of(f, f->two, "client"); /* trusts CA two only */
	struct tpc_tls_files missing = good;
	char msg[512];

	missing.key = cert(f, f->one, "nobody", "key");
	coord_start_tls(f, f->one);
	assert_int_equal(libtpc_begin(f, &good, msg, sizeof(msg)), 0);
	assert_int_equal(libtpc_begin(f, &foreign, msg, sizeof(msg)), TPC_ETLS);
	assert_non_null(strstr(msg, "certificate verify failed"));
	assert_int_equal(libtpc_begin(f, &missing, msg, sizeof(msg)), TPC_ETLS);
	assert_non_null(strstr(msg, "nobody.key"));
}

static int run_tpcctl(char *const argv[], char *out, size_t cap)
{
	int st = -1;

	assert_int_equal(tpc_run_capture(argv, out, cap, WAIT_MS, &st), 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_tls_admin_api_serves_https_with_the_same_certificate(void **state)
{
	struct fx *f = *state;
	char admin[64], out[8192];
	int port = tpc_free_port();

	assert_true(port > 0);
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", port);
	coord_start(f->c, NULL, "--tls-cert", cert(f, f->one, "coord", "crt"), "--tls-key",
		    cert(f, f->one, "coord", "key"), "--tls-ca", f->trust, "--admin", admin, NULL);
	coord_wait_log(f->c, "admin API on https://");
	char *https[] = { TPCCTL_BIN, "--admin", admin, "--tls-ca",
			  (char *)cert(f, f->one, "ca", "crt"), "status", NULL };
	assert_int_equal(run_tpcctl(https, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "ready"));
	char *plain[] = { TPCCTL_BIN, "--admin", admin, "status", NULL };
	assert_int_equal(run_tpcctl(plain, out, sizeof(out)), 1);
	/* A server certificate from another CA is not trusted. */
	char *foreign[] = { TPCCTL_BIN, "--admin", admin, "--tls-ca",
			    (char *)cert(f, f->two, "ca", "crt"), "status", NULL };
	assert_int_equal(run_tpcctl(foreign, out, sizeof(out)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tls_transaction_commits_with_tls_everywhere,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_tls_plaintext_peer_gets_no_hello_reply_and_is_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_tls_vote_written_out_before_a_fault_point_is_sent_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_certificate_of_b_cannot_say_hello_as_a,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_tls_participant_sends_nothing_to_a_coordinator_of_another_ca, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_tls_sighup_trusts_a_ca_added_to_the_ca_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_tls_participant_gives_up_on_a_server_that_never_handshakes, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_tls_admin_api_serves_https_with_the_same_certificate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_libtpc_client_says_why_tls_failed, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
