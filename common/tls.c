/*
 * tls.c - tpc's TLS contexts, peer identity and TLS error messages (see tls.h for the
 * rules: TLS 1.2+, mutual verification against one CA, CN = identity, the client's host
 * check). OpenSSL does the cryptography and the verification; this file only sets it
 * up and words its failures. No state of its own: callers own every SSL_CTX.
 */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

int tpc_tls_files_given(const struct tpc_tls_files *f)
{
	return f && (f->cert || f->key || f->ca);
}

/* OpenSSL's newest queued error as text ("" when the queue is empty); clears it. */
static void last_ssl_error(char *out, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	out[0] = '\0';
	if (e)
		ERR_error_string_n(e, out, len);
	ERR_clear_error();
}

/* The file is there and readable; else a message naming the option and errno. */
static int check_file(const char *opt, const char *path, char *err, size_t errlen)
{
	if (!path || !*path) {
		snprintf(err, errlen, "TLS needs --tls-cert, --tls-key and --tls-ca: %s is not "
			 "given", opt);
		return -EINVAL;
	}
	if (access(path, R_OK) != 0) {
		snprintf(err, errlen, "%s %s: %s", opt, path, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

static int load_cert_and_key(SSL_CTX *ctx, const struct tpc_tls_files *f, char *err,
			     size_t errlen)
{
	char why[256];

	if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1) {
		last_ssl_error(why, sizeof(why));
		snprintf(err, errlen, "--tls-cert %s: not a PEM certificate (%s)", f->cert, why);
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1) {
		last_ssl_error(why, sizeof(why));
		if (strstr(why, "values mismatch") || strstr(why, "key values mismatch"))
			snprintf(err, errlen, "--tls-key %s does not match the certificate %s",
				 f->key, f->cert);
		else
			snprintf(err, errlen, "--tls-key %s: not a PEM private key (%s)", f->key,
				 why);
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "--tls-key %s does not match the certificate %s", f->key,
			 f->cert);
		return -EINVAL;
	}
	return 0;
}

static int load_ca(SSL_CTX *ctx, enum tpc_tls_role role, const char *ca, char *err,
		   size_t errlen)
{
	char why[256];

	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		last_ssl_error(why, sizeof(why));
		snprintf(err, errlen, "--tls-ca %s: no PEM CA certificate in it (%s)", ca, why);
		return -EINVAL;
	}
	if (role == TPC_TLS_SERVER) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
		if (!names) {
			last_ssl_error(why, sizeof(why));
			snprintf(err, errlen, "--tls-ca %s: cannot read CA names (%s)", ca, why);
			return -EINVAL;
		}
		SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
	}
	return 0;
}

SSL_CTX *tpc_tls_ctx_new(enum tpc_tls_role role, const struct tpc_tls_files *f, char *err,
			 size_t errlen)
{
	SSL_CTX *ctx;

	if (check_file("--tls-cert", f->cert, err, errlen) ||
	    check_file("--tls-key", f->key, err, errlen) ||
	    check_file("--tls-ca", f->ca, err, errlen))
		return NULL;
	OPENSSL_init_ssl(0, NULL);
	ERR_clear_error();
	ctx = SSL_CTX_new(role == TPC_TLS_SERVER ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context: out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* A peer that hangs up without a close_notify (a crash, a kill -9, a half-close
	 * after an Error) is an EOF, as on a plain socket: the framing already tells a
	 * whole message from a cut one. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (load_cert_and_key(ctx, f, err, errlen) || load_ca(ctx, role, f->ca, err, errlen)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL_CTX *tpc_tls_ctx_new_ca_only(const char *ca, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (check_file("--tls-ca", ca, err, errlen))
		return NULL;
	OPENSSL_init_ssl(0, NULL);
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context: out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (load_ca(ctx, TPC_TLS_CLIENT, ca, err, errlen)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int tpc_tls_ctx_reload(SSL_CTX **ctx, enum tpc_tls_role role, const struct tpc_tls_files *f,
		       char *err, size_t errlen)
{
	SSL_CTX *fresh = tpc_tls_ctx_new(role, f, err, errlen);

	if (!fresh)
		return -EINVAL;
	SSL_CTX_free(*ctx); /* open connections hold their own reference */
	*ctx = fresh;
	return 0;
}

/* HOST of "HOST:PORT" or "[HOST]:PORT" into @p out. */
static int split_host(const char *hostport, char *out, size_t len)
{
	const char *start = hostport, *end = strrchr(hostport, ':');

	if (hostport[0] == '[') {
		start = hostport + 1;
		end = strchr(start, ']');
	}
	if (!end || end == start || (size_t)(end - start) >= len)
		return -EINVAL;
	memcpy(out, start, (size_t)(end - start));
	out[end - start] = '\0';
	return 0;
}

static int is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The host check of tls.h on @p ssl: an IP SAN for an address, a DNS name otherwise. */
static int set_host_check(SSL *ssl, const char *host)
{
	if (is_ip_literal(host))
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -EINVAL;
	if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
		return -EINVAL;
	return 0;
}

SSL *tpc_tls_client_ssl(SSL_CTX *ctx, const char *hostport, char *err, size_t errlen)
{
	char host[256];
	SSL *ssl;

	if (split_host(hostport, host, sizeof(host))) {
		snprintf(err, errlen, "%s: expected HOST:PORT", hostport);
		return NULL;
	}
	ssl = SSL_new(ctx);
	if (!ssl) {
		snprintf(err, errlen, "cannot create a TLS connection: out of memory");
		return NULL;
	}
	if (set_host_check(ssl, host)) {
		ERR_clear_error();
		snprintf(err, errlen, "cannot check the server's certificate for host %s", host);
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

SSL *tpc_tls_server_ssl(SSL_CTX *ctx)
{
	return SSL_new(ctx);
}

int tpc_tls_cert_cn(X509 *cert, char *out, size_t len)
{
	X509_NAME *name = cert ? X509_get_subject_name(cert) : NULL;
	int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	unsigned char *utf8 = NULL;
	int n;

	if (i < 0)
		return -ENOENT;
	if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return -EINVAL; /* two CNs: which one would be the name? */
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= len || memchr(utf8, '\0', (size_t)n)) {
		OPENSSL_free(utf8);
		return -EINVAL;
	}
	memcpy(out, utf8, (size_t)n);
	out[n] = '\0';
	OPENSSL_free(utf8);
	return 0;
}

int tpc_tls_is_tls(struct bufferevent *bev)
{
	return bev && bufferevent_openssl_get_ssl(bev) != NULL;
}

int tpc_tls_peer_cn(struct bufferevent *bev, char *out, size_t len)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

	if (!peer || SSL_get_verify_result(ssl) != X509_V_OK)
		return -ENOENT;
	return tpc_tls_cert_cn(peer, out, len);
}

void tpc_tls_describe_error(struct bufferevent *bev, const char *fallback, char *out,
			    size_t len)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	unsigned long e, last = 0; /* the first error with a library code */
	long vr;

	/* libevent queues SSL_get_error()'s small code first, then OpenSSL's own errors:
	 * keep the first real one (its library code is never 0). */
	while (bev && (e = bufferevent_get_openssl_error(bev)) != 0)
		if (!last && ERR_GET_LIB(e) != 0)
			last = e;
	vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (vr != X509_V_OK) {
		snprintf(out, len, "TLS: certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
		return;
	}
	if (last) {
		char why[256];
		ERR_error_string_n(last, why, sizeof(why));
		snprintf(out, len, "TLS: %s", why);
		return;
	}
	snprintf(out, len, "%s", fallback);
}

void tpc_tls_bev_setup(struct bufferevent *bev)
{
	if (tpc_tls_is_tls(bev))
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
}

struct bufferevent *tpc_tls_bev_new(struct event_base *base, int fd, SSL *ssl, int accepting)
{
	struct bufferevent *bev =
		ssl ? bufferevent_openssl_socket_new(base, fd, ssl,
						     accepting ? BUFFEREVENT_SSL_ACCEPTING
							       : BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE)
		    : NULL;

	if (!bev)
		SSL_free(ssl);
	else
		tpc_tls_bev_setup(bev);
	return bev;
}
