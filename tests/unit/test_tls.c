/*
 * test_tls.c - common/tls.c without sockets: the subject CN that becomes a peer's name,
 * and the messages a missing, unreadable, foreign or mismatched file gives. The
 * certificates come from scripts/make-certs.sh (the openssl command line) in a fresh
 * temporary folder, removed at the end.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "proc.h"
#include "tls.h"

#define RUN_MS 60000

struct fx {
	char dir[PATH_MAX];
	char path[8][PATH_MAX + 64];
	int npath;
};

/* DIR/leaf, kept in the fixture so the strings outlive the call. */
static const char *at(struct fx *f, const char *leaf)
{
	char *p = f->path[f->npath++ % 8];

	snprintf(p, sizeof(f->path[0]), "%s/%s", f->dir, leaf);
	return p;
}

static void run(char *const argv[])
{
	static char out[4096];
	int st = -1;

	assert_int_equal(tpc_run_capture(argv, out, sizeof(out), RUN_MS, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tpc_tmpdir_make(f->dir, sizeof(f->dir)), 0);
	char *mk[] = { "/bin/bash", TPC_MAKE_CERTS, f->dir, "alpha", "beta", NULL };
	run(mk);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(tpc_tmpdir_release(f->dir), 0);
	free(f);
	return 0;
}

static X509 *read_cert(const char *path)
{
	FILE *fp = fopen(path, "r");
	X509 *x;

	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* ---- the CN ---- */

static void test_tls_cert_cn_is_the_subject_common_name(void **state)
{
	struct fx *f = *state;
	X509 *x = read_cert(at(f, "alpha.crt"));
	char cn[TPC_TLS_MAX_CN + 1];

	assert_int_equal(tpc_tls_cert_cn(x, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "alpha");
	X509_free(x);
}

static void test_tls_cert_cn_without_a_cn_is_enoent(void **state)
{
	struct fx *f = *state;
	const char *key = at(f, "nocn.key"), *crt = at(f, "nocn.crt");
	char *req[] = { "/usr/bin/env", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
			"ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=no common name",
			"-days", "1", "-keyout", (char *)key, "-out", (char *)crt, NULL };
	char cn[TPC_TLS_MAX_CN + 1];

	run(req);
	X509 *x = read_cert(crt);
	assert_int_equal(tpc_tls_cert_cn(x, cn, sizeof(cn)), -ENOENT);
	X509_free(x);
	assert_int_equal(tpc_tls_cert_cn(NULL, cn, sizeof(cn)), -ENOENT);
}

static void test_tls_cert_cn_longer_than_the_buffer_is_refused(void **state)
{
	struct fx *f = *state;
	X509 *x = read_cert(at(f, "alpha.crt"));
	char cn[4]; /* "alpha" needs 6 */

	assert_int_equal(tpc_tls_cert_cn(x, cn, sizeof(cn)), -EINVAL);
	X509_free(x);
}

/* ---- contexts and their error messages ---- */

static void test_tls_ctx_new_works_for_both_roles(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files files = { at(f, "alpha.crt"), at(f, "alpha.key"), at(f, "ca.crt") };
	char err[512] = "";

	SSL_CTX *srv = tpc_tls_ctx_new(TPC_TLS_SERVER, &files, err, sizeof(err));
	SSL_CTX *cli = tpc_tls_ctx_new(TPC_TLS_CLIENT, &files, err, sizeof(err));
	assert_non_null(srv);
	assert_non_null(cli);
	assert_int_equal(SSL_CTX_get_min_proto_version(srv), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_verify_mode(srv) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	assert_true(SSL_CTX_get_verify_mode(cli) & SSL_VERIFY_PEER);
	SSL_CTX_free(srv);
	SSL_CTX_free(cli);
}

static void test_tls_ctx_new_names_a_missing_file(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files files = { at(f, "alpha.crt"), at(f, "gone.key"), at(f, "ca.crt") };
	char err[512] = "";

	assert_null(tpc_tls_ctx_new(TPC_TLS_SERVER, &files, err, sizeof(err)));
	assert_non_null(strstr(err, "--tls-key"));
	assert_non_null(strstr(err, "gone.key"));
	assert_non_null(strstr(err, "No such file"));
}

static void test_tls_ctx_new_says_which_file_is_not_given(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files files = { at(f, "alpha.crt"), at(f, "alpha.key"), NULL };
	char err[512] = "";

	assert_int_equal(tpc_tls_files_given(&files), 1);
	assert_null(tpc_tls_ctx_new(TPC_TLS_CLIENT, &files, err, sizeof(err)));
	assert_non_null(strstr(err, "--tls-ca is not given"));
}

static void test_tls_ctx_new_names_an_unreadable_file(void **state)
{
	struct fx *f = *state;
	const char *key = at(f, "locked.key");
	struct tpc_tls_files files = { at(f, "alpha.crt"), key, at(f, "ca.crt") };
	char err[512] = "";

	if (geteuid() == 0)
		skip(); /* root reads a mode-000 file */
	write_file(key, "secret\n");
	assert_int_equal(chmod(key, 0), 0);
	assert_null(tpc_tls_ctx_new(TPC_TLS_SERVER, &files, err, sizeof(err)));
	assert_non_null(strstr(err, "Permission denied"));
}

static void test_tls_ctx_new_refuses_a_file_that_is_not_pem(void **state)
{
	struct fx *f = *state;
	const char *junk = at(f, "junk.crt");
	struct tpc_tls_files files = { junk, at(f, "alpha.key"), at(f, "ca.crt") };
	char err[512] = "";

	write_file(junk, "this is not a certificate\n");
	assert_null(tpc_tls_ctx_new(TPC_TLS_SERVER, &files, err, sizeof(err)));
	assert_non_null(strstr(err, "--tls-cert"));
	assert_non_null(strstr(err, "not a PEM certificate"));

	files = (struct tpc_tls_files){ at(f, "alpha.crt"), at(f, "alpha.key"), junk };
	assert_null(tpc_tls_ctx_new(TPC_TLS_CLIENT, &files, err, sizeof(err)));
	assert_non_null(strstr(err, "--tls-ca"));
}

static void test_tls_ctx_new_refuses_a_key_of_another_certificate(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files files = { at(f, "alpha.crt"), at(f, "beta.key"), at(f, "ca.crt") };
	char err[512] = "";

	assert_null(tpc_tls_ctx_new(TPC_TLS_SERVER, &files, err, sizeof(err)));
	assert_non_null(strstr(err, "does not match the certificate"));
	assert_non_null(strstr(err, "beta.key"));
}

static void test_tls_ctx_reload_keeps_the_running_context_when_a_file_is_bad(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files good = { at(f, "alpha.crt"), at(f, "alpha.key"), at(f, "ca.crt") };
	struct tpc_tls_files bad = { at(f, "alpha.crt"), at(f, "beta.key"), at(f, "ca.crt") };
	char err[512] = "";
	SSL_CTX *ctx = tpc_tls_ctx_new(TPC_TLS_SERVER, &good, err, sizeof(err));
	SSL_CTX *before = ctx;

	assert_non_null(ctx);
	SSL *open_conn = SSL_new(ctx); /* an open connection holds the old context */
	assert_int_equal(tpc_tls_ctx_reload(&ctx, TPC_TLS_SERVER, &bad, err, sizeof(err)),
			 -EINVAL);
	assert_ptr_equal(ctx, before);
	assert_int_equal(tpc_tls_ctx_reload(&ctx, TPC_TLS_SERVER, &good, err, sizeof(err)), 0);
	assert_ptr_not_equal(ctx, before);
	assert_ptr_equal(SSL_get_SSL_CTX(open_conn), before); /* still alive, still its own */
	SSL_free(open_conn);
	SSL_CTX_free(ctx);
}

static void test_tls_client_ssl_wants_host_and_port(void **state)
{
	struct fx *f = *state;
	struct tpc_tls_files files = { at(f, "alpha.crt"), at(f, "alpha.key"), at(f, "ca.crt") };
	char err[512] = "";
	SSL_CTX *ctx = tpc_tls_ctx_new(TPC_TLS_CLIENT, &files, err, sizeof(err));

	assert_non_null(ctx);
	SSL *ip = tpc_tls_client_ssl(ctx, "127.0.0.1:7400", err, sizeof(err));
	SSL *name = tpc_tls_client_ssl(ctx, "coord.example:7400", err, sizeof(err));
	SSL *v6 = tpc_tls_client_ssl(ctx, "[::1]:7400", err, sizeof(err));
	assert_non_null(ip);
	assert_non_null(name);
	assert_non_null(v6);
	assert_string_equal(X509_VERIFY_PARAM_get0_host(SSL_get0_param(name), 0),
			    "coord.example");
	assert_null(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ip), 0)); /* an IP SAN */
	assert_null(tpc_tls_client_ssl(ctx, "no-port", err, sizeof(err)));
	assert_non_null(strstr(err, "HOST:PORT"));
	SSL_free(ip);
	SSL_free(name);
	SSL_free(v6);
	SSL_CTX_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_cert_cn_is_the_subject_common_name),
		cmocka_unit_test(test_tls_cert_cn_without_a_cn_is_enoent),
		cmocka_unit_test(test_tls_cert_cn_longer_than_the_buffer_is_refused),
		cmocka_unit_test(test_tls_ctx_new_works_for_both_roles),
		cmocka_unit_test(test_tls_ctx_new_names_a_missing_file),
		cmocka_unit_test(test_tls_ctx_new_says_which_file_is_not_given),
		cmocka_unit_test(test_tls_ctx_new_names_an_unreadable_file),
		cmocka_unit_test(test_tls_ctx_new_refuses_a_file_that_is_not_pem),
		cmocka_unit_test(test_tls_ctx_new_refuses_a_key_of_another_certificate),
		cmocka_unit_test(test_tls_ctx_reload_keeps_the_running_context_when_a_file_is_bad),
		cmocka_unit_test(test_tls_client_ssl_wants_host_and_port),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
