/*
 * tls.h - mutual TLS for tpc's connections (OpenSSL 3 under libevent's
 * bufferevent_openssl): one SSL_CTX per role made from a certificate, its key and the
 * CA that every peer's certificate must be signed by; the peer's identity (the subject
 * CN of its certificate); and reloads that swap in a new SSL_CTX.
 *
 * The rules every TLS connection of tpc keeps:
 *  - TLS 1.2 or newer only; both sides present a certificate and both verify the
 *    other's against the configured CA (a server refuses a client without one);
 *  - identity: the peer's subject CN is its name (a participant's Hello name must equal
 *    it; a client's identity is it). Subject alternative names are not identities;
 *  - a client checks the server it dialled: when it dialled a DNS name, a DNS SAN (or,
 *    with no DNS SAN, the CN) must match that name; when it dialled an IP address, an
 *    IP SAN must equal that address. scripts/make-certs.sh puts DNS:NAME, DNS:localhost
 *    and IP:127.0.0.1 in every certificate it makes.
 *
 * Reloads: an SSL made from a context holds a reference to it, so swapping the context
 * used for new connections (tpc_tls_ctx_reload) and dropping ours leaves every open
 * connection on the context it started with.
 *
 * Error space: 0 on success, -errno on failure (-ENOENT: no certificate / no CN,
 * -EINVAL: unusable input), with a message in the caller's buffer naming the file and
 * the reason ("--tls-key /x/a.key does not match the certificate /x/a.crt").
 */
#ifndef TPC_COMMON_TLS_H
#define TPC_COMMON_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;

/** Which end of the connection an SSL_CTX serves. */
enum tpc_tls_role { TPC_TLS_SERVER, TPC_TLS_CLIENT };

/** The three files of a TLS configuration, PEM (paths are only read during calls). */
struct tpc_tls_files {
	const char *cert;  /* our certificate (a chain file: leaf first) */
	const char *key;   /* its private key */
	const char *ca;    /* CA certificate(s) a peer's certificate must chain to */
};

/** Longest CN tpc_tls_peer_cn() returns (the same bound as a participant name). */
#define TPC_TLS_MAX_CN 255

/**
 * @brief Whether any of the three files is set; TLS is on when one is (all three are
 *        then required: tpc_tls_ctx_new says which is missing).
 */
int tpc_tls_files_given(const struct tpc_tls_files *f);

/**
 * @brief Make an SSL_CTX for @p role: TLS 1.2+, @p f's certificate and key (checked to
 *        match), peers verified against @p f->ca and required to present a certificate.
 *        Initialises OpenSSL on first use (thread-safe; OpenSSL 3 does it itself).
 * @param err receives why on failure: which file, and what is wrong with it
 * @return the context (SSL_CTX_free it), or NULL.
 */
SSL_CTX *tpc_tls_ctx_new(enum tpc_tls_role role, const struct tpc_tls_files *f, char *err,
			 size_t errlen);

/**
 * @brief A client context that checks the server against @p ca and presents no
 *        certificate of its own: for HTTPS to the admin API (which asks for a client
 *        certificate but does not require one; its bearer token authenticates).
 * @return the context, or NULL with @p err set.
 */
SSL_CTX *tpc_tls_ctx_new_ca_only(const char *ca, char *err, size_t errlen);

/**
 * @brief Reload: make a new context from @p f and, only if that worked, put it in
 *        @p *ctx and free the old one (open connections keep theirs, see above).
 * @return 0, or -EINVAL with @p err set and @p *ctx untouched.
 */
int tpc_tls_ctx_reload(SSL_CTX **ctx, enum tpc_tls_role role, const struct tpc_tls_files *f,
		       char *err, size_t errlen);

/**
 * @brief A client SSL for dialling @p hostport ("HOST:PORT", "[V6]:PORT"): SNI and the
 *        host check of the rule above are set on it.
 * @return the SSL (owned by the bufferevent it is given to), or NULL with @p err set.
 */
SSL *tpc_tls_client_ssl(SSL_CTX *ctx, const char *hostport, char *err, size_t errlen);

/** @brief A server SSL for one accepted connection. NULL on out-of-memory. */
SSL *tpc_tls_server_ssl(SSL_CTX *ctx);

/**
 * @brief The subject CN of @p cert as UTF-8 into @p out.
 * @return 0; -ENOENT when there is no CN; -EINVAL when it holds a NUL byte, is not
 *         valid text, is several CNs or is longer than @p len - 1 bytes.
 */
int tpc_tls_cert_cn(X509 *cert, char *out, size_t len);

/**
 * @brief The verified peer's CN on the TLS bufferevent @p bev (tpc_tls_cert_cn).
 * @return as tpc_tls_cert_cn, or -ENOENT when @p bev is not TLS or has no peer
 *         certificate.
 */
int tpc_tls_peer_cn(struct bufferevent *bev, char *out, size_t len);

/** @brief Whether @p bev is a TLS bufferevent. */
int tpc_tls_is_tls(struct bufferevent *bev);

/**
 * @brief Why the TLS connection on @p bev failed, for logs and error messages: the
 *        certificate verification result when that failed ("certificate verify
 *        failed: unable to get local issuer certificate"), else OpenSSL's error queue
 *        for @p bev, else @p fallback.
 */
void tpc_tls_describe_error(struct bufferevent *bev, const char *fallback, char *out,
			    size_t len);

/**
 * @brief Put a TLS bufferevent into the state libevent expects of tpc's connections:
 *        an EOF without a TLS close_notify is a plain EOF (peers that crash, and
 *        tpc's own half-closes, do not say goodbye).
 */
void tpc_tls_bev_setup(struct bufferevent *bev);

struct event_base;

/**
 * @brief A TLS bufferevent for @p ssl on socket @p fd (-1: connect it later), which it
 *        closes when freed, set up as tpc_tls_bev_setup() says.
 * @param accepting 1 for the server side of an accepted connection, 0 for a client
 * @return the bufferevent, or NULL (out of memory, or @p ssl NULL); @p ssl is freed then,
 *         @p fd is not
 */
struct bufferevent *tpc_tls_bev_new(struct event_base *base, int fd, SSL *ssl, int accepting);

#endif
