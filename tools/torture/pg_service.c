/*
 * pg_service.c - `tpc-torture pg-service`: the PostgreSQL participant of `tpc-torture run
 * --pg`. It serves the tpc-kv protocol (Hello, KvPut) to the torture clients, so they
 * write to it exactly as to a tpc-kv, but each Put is an INSERT into the table
 * tt_writes(txid, key, value) on the connection tpc_pg_txn() lends for the txid: the
 * write becomes durable through PREPARE TRANSACTION / COMMIT PREPARED (tpc/pg.h), and
 * the runner reads tt_writes back as this participant's sink (collect.c). A write
 * applied twice would show as two rows.
 *
 * At start it waits (bounded) for PostgreSQL, which the schedule may be restarting.
 * Blocking, one thread per client connection (the pool of tpc/pg.h is blocking too).
 * Fault points are armed as tpc-kv arms them: TPC_FAULTS, seeded by TPC_FAULT_SEED.
 * SIGTERM or SIGINT: close the connections, stop the participant, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "cli.h"
#include "kvserve.h"
#include "torture.h"
#include "tpc/common.h"
#include "util.h"
#include "wire.h"

#ifdef TPC_HAVE_PG
#include "tpc/pg.h"

#define PGS_MAX_CONNS 256

struct pgs_opts {
	const char *name, *listen, *coordinator, *data, *conninfo;
	uint32_t pool;
};

struct pgs {
	struct pgs_opts o;
	tpc_pg *pg;
	int lfd;
	pthread_mutex_t mu;
	int fds[PGS_MAX_CONNS];  /* open client connections; -1: free slot */
	int nthreads;            /* connection threads still running */
	int stopping;
};

struct pgs_conn {
	struct pgs *s;
	int fd, slot;
	int frames;
	struct evbuffer *out;
	struct tpc_arena arena;
};

static void pgs_log(void *arg, int level, const char *msg)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	const struct pgs *s = arg;

	if (level >= 1)
		fprintf(stderr, "pg-service %s: %s: %s\n", s->o.name, names[level & 3], msg);
}

static void send_env(struct pgs_conn *c, Tpc__Envelope *env)
{
	tpc_wire_send(c->out, env, TPC_FRAME_DEFAULT_MAX);
}

static void send_error(struct pgs_conn *c, uint64_t req, Tpc__ErrorCode code, const char *msg,
		       uint64_t txid)
{
	kv_send_error(c->out, req, code, msg, txid);
}

/* The INSERT on the lent connection. @return 0, or PostgreSQL's message in @p err. */
static int insert_write(PGconn *pc, tpc_txid txid, const Tpc__KvPut *m, char *err,
			size_t errlen)
{
	char txt[24];
	const char *vals[3] = { txt, (const char *)m->key.data, (const char *)m->value.data };
	int lens[3] = { 0, (int)m->key.len, (int)m->value.len };
	int fmts[3] = { 0, 1, 1 };

	snprintf(txt, sizeof(txt), "%llu", (unsigned long long)txid);
	PGresult *r = PQexecParams(pc, "INSERT INTO tt_writes (txid, key, value) "
				   "VALUES ($1, $2, $3)", 3, NULL, vals, lens, fmts, 0);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pc));
	PQclear(r);
	return ok ? 0 : -EIO;
}

static void on_put(struct pgs_conn *c, uint64_t req, const Tpc__KvPut *m)
{
	char err[512];
	int rc = 0;

	if (m->txn_token.len != 0 && m->txn_token.len != TPC_TXN_TOKEN_LEN) {
		send_error(c, req, TPC__ERROR_CODE__ERR_DENIED, "a transaction token is 16 bytes",
			   m->txid);
		return;
	}
	PGconn *pc = tpc_pg_txn_token(c->s->pg, m->txid,
				      m->txn_token.len ? m->txn_token.data : NULL,
				      m->txn_token.len, &rc);
	if (!pc) {
		send_error(c, req, kv_wire_code(rc), tpc_strerror(rc), m->txid);
		return;
	}
	rc = insert_write(pc, m->txid, m, err, sizeof(err));
	tpc_pg_release(c->s->pg, m->txid);
	if (rc) { /* the transaction votes NO at Prepare; the client aborts it */
		send_error(c, req, TPC__ERROR_CODE__ERR_UNAVAILABLE, err, m->txid);
		return;
	}
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__KvPutReply r = TPC__KV_PUT_REPLY__INIT;
	r.txid = m->txid;
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_KV_PUT_REPLY;
	env.kv_put_reply = &r;
	send_env(c, &env);
}

static int on_hello(struct pgs_conn *c, uint64_t req, const Tpc__Hello *h)
{
	if (c->frames > 1 || h->protocol_version != TPC_PROTOCOL_VERSION) {
		send_error(c, req, TPC__ERROR_CODE__ERR_PROTOCOL,
			   "hello first, protocol " TPC_PROTOCOL_VERSION_STR, 0);
		return 1;
	}
	kv_send_hello_reply(c->out, req);
	return 0;
}

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct pgs_conn *c = arg;
	const char *why = "cannot decode the envelope";
	Tpc__Envelope *env = tpc_wire_unpack(&c->arena, body, len);

	c->frames++;
	if (!env || tpc_wire_validate(env, &why)) {
		send_error(c, 0, TPC__ERROR_CODE__ERR_BAD_FRAME, why, 0);
		return 1;
	}
	if (env->body_case == TPC__ENVELOPE__BODY_HELLO)
		return on_hello(c, env->request_id, env->hello);
	if (env->body_case == TPC__ENVELOPE__BODY_KV_PUT)
		on_put(c, env->request_id, env->kv_put);
	else
		send_error(c, env->request_id, TPC__ERROR_CODE__ERR_PROTOCOL,
			   "the torture's pg-service serves hello and kv_put only", 0);
	return 0;
}

static int flush_out(struct pgs_conn *c)
{
	while (evbuffer_get_length(c->out))
		if (evbuffer_write(c->out, c->fd) <= 0)
			return -1;
	return 0;
}

static void conn_done(struct pgs_conn *c)
{
	struct pgs *s = c->s;

	pthread_mutex_lock(&s->mu);
	s->fds[c->slot] = -1;
	s->nthreads--;
	pthread_mutex_unlock(&s->mu);
	close(c->fd);
	if (c->out)
		evbuffer_free(c->out);
	tpc_arena_free(&c->arena);
	free(c);
}

static void *serve_conn(void *arg)
{
	struct pgs_conn *c = arg;
	struct evbuffer *in = evbuffer_new();
	struct tpc_frame_decoder dec;

	tpc_frame_decoder_init(&dec, TPC_FRAME_DEFAULT_MAX);
	while (in && evbuffer_read(in, c->fd, 65536) > 0) {
		int rc = tpc_wire_read(in, &dec, on_frame, c);
		if (flush_out(c) || rc)
			break;
	}
	tpc_frame_decoder_free(&dec);
	if (in)
		evbuffer_free(in);
	conn_done(c);
	return NULL;
}

/* Take a slot for @p fd and start its thread. @return 0, or -1 (fd closed). */
static int start_conn(struct pgs *s, int fd)
{
	struct pgs_conn *c = calloc(1, sizeof(*c));
	pthread_t t;
	int slot = -1;

	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < PGS_MAX_CONNS && slot < 0 && !s->stopping; i++)
		if (s->fds[i] < 0)
			slot = i;
	if (c && slot >= 0) {
		s->fds[slot] = fd;
		s->nthreads++;
	}
	pthread_mutex_unlock(&s->mu);
	if (!c || slot < 0) {
		free(c);
		close(fd);
		return -1;
	}
	*c = (struct pgs_conn){ .s = s, .fd = fd, .slot = slot, .out = evbuffer_new() };
	tpc_arena_init(&c->arena, 4096);
	if (!c->out || pthread_create(&t, NULL, serve_conn, c)) {
		conn_done(c);
		return -1;
	}
	pthread_detach(t);
	return 0;
}

static void *accept_loop(void *arg)
{
	struct pgs *s = arg;

	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0)
			break; /* shut down */
		start_conn(s, fd);
	}
	return NULL;
}

static int open_listener(struct pgs *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[128];
	int one = 1;

	if (tpc_parse_hostport(s->o.listen, &ss, &len, err, sizeof(err))) {
		fprintf(stderr, "pg-service: --listen %s: %s\n", s->o.listen, err);
		return -1;
	}
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s->lfd, (struct sockaddr *)&ss, len) || listen(s->lfd, 128)) {
		fprintf(stderr, "pg-service: cannot listen on %s: %s\n", s->o.listen,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* tt_writes, the sink the runner reads back (collect.c). @return 0, or -ECONNREFUSED. */
static int make_table(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = PQstatus(c) == CONNECTION_OK
		? PQexec(c, "CREATE TABLE IF NOT EXISTS tt_writes (txid bigint NOT NULL, "
			    "key bytea NOT NULL, value bytea NOT NULL)") : NULL;
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(stderr, "pg-service: cannot make table tt_writes: %s\n",
			PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -ECONNREFUSED;
}

static int open_pg(struct pgs *s)
{
	char state[4200], faults[1024];
	const char *spec = getenv("TPC_FAULTS"), *seed = getenv("TPC_FAULT_SEED");
	tpc_pg_config cfg;
	int err = 0;

	snprintf(state, sizeof(state), "%s/state", s->o.data);
	if (spec && *spec && seed && *seed) {
		snprintf(faults, sizeof(faults), "%s,seed=%s", spec, seed);
		spec = faults;
	}
	tpc_pg_config_init(&cfg);
	cfg.part.coordinator = s->o.coordinator;
	cfg.part.name = s->o.name;
	cfg.part.state_dir = state;
	cfg.part.log = pgs_log;
	cfg.part.log_arg = s;
	cfg.part.faults = spec && *spec ? spec : NULL;
	cfg.conninfo = s->o.conninfo;
	cfg.pool_size = s->o.pool;
	cfg.scan_interval_ms = 1000; /* torture: orphans must go within the quiet bound */
	s->pg = tpc_pg_new(&cfg, &err);
	if (!s->pg)
		fprintf(stderr, "pg-service: cannot start the participant: %s\n",
			tpc_strerror(err));
	return s->pg ? 0 : err;
}

/* As a service under a supervisor would: while PostgreSQL cannot be reached (it may be
 * restarting after the schedule's crash), try again for up to 60 s. */
static int open_pg_waiting(struct pgs *s)
{
	int rc = -ECONNREFUSED;

	for (int waited = 0; waited <= 60000 && rc == -ECONNREFUSED; waited += 250) {
		if (waited)
			nanosleep(&(struct timespec){ 0, 250000000 }, NULL);
		rc = make_table(s->o.conninfo);
		if (!rc)
			rc = open_pg(s);
	}
	return rc;
}

/* Close every client connection, wait (bounded) for their threads, stop the participant. */
static void stop(struct pgs *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	for (int i = 0; i < PGS_MAX_CONNS; i++)
		if (s->fds[i] >= 0)
			shutdown(s->fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&s->mu);
	for (int waited = 0; waited < 10000; waited += 10) {
		pthread_mutex_lock(&s->mu);
		int n = s->nthreads;
		pthread_mutex_unlock(&s->mu);
		if (!n)
			break;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	tpc_pg_free(s->pg);
}

static const char pgs_usage[] =
	"Usage: tpc-torture pg-service --name NAME --listen HOST:PORT --coordinator HOST:PORT\n"
	"                              --data DIR --conninfo CONNINFO [--pool N]\n"
	"\n"
	"The PostgreSQL participant of `tpc-torture run --pg` (started by the runner): serves\n"
	"the tpc-kv protocol (Hello, KvPut); each Put is an INSERT into tt_writes on the\n"
	"connection the PostgreSQL participant (tpc/pg.h) lends for its txid. The state\n"
	"folder is DIR/state. Fault points: TPC_FAULTS and TPC_FAULT_SEED, as tpc-kv.\n"
	"\n"
	"Exit status:\n"
	"  0  stopped by SIGTERM or SIGINT\n"
	"  1  could not start (PostgreSQL, the participant or the listener)\n"
	"  2  a mistake on the command line\n";

static int parse(int argc, char **argv, struct pgs_opts *o)
{
	static const struct option opts[] = {
		{ "name", 1, 0, 'n' }, { "listen", 1, 0, 'l' }, { "coordinator", 1, 0, 'c' },
		{ "data", 1, 0, 'd' }, { "conninfo", 1, 0, 'C' }, { "pool", 1, 0, 'p' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
	};
	int ch;

	*o = (struct pgs_opts){ .pool = 48 };
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': o->name = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'c': o->coordinator = optarg; break;
		case 'd': o->data = optarg; break;
		case 'C': o->conninfo = optarg; break;
		case 'p': o->pool = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'h': fputs(pgs_usage, stdout); return 1;
		default: fputs(pgs_usage, stderr); return 2;
		}
	}
	if (!o->name || !o->listen || !o->coordinator || !o->data || !o->conninfo) {
		fputs("tpc-torture pg-service: --name, --listen, --coordinator, --data and "
		      "--conninfo are required\n", stderr);
		return 2;
	}
	return 0;
}

int tt_pg_service_main(int argc, char **argv)
{
	struct pgs *s = calloc(1, sizeof(*s));
	sigset_t set;
	pthread_t acc;
	int sig, rc = s ? parse(argc, argv, &s->o) : 2;

	if (rc) {
		free(s);
		return rc == 1 ? 0 : rc;
	}
	for (int i = 0; i < PGS_MAX_CONNS; i++)
		s->fds[i] = -1;
	pthread_mutex_init(&s->mu, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = open_pg_waiting(s) || open_listener(s) ||
	     pthread_create(&acc, NULL, accept_loop, s);
	if (!rc) {
		sigwait(&set, &sig);
		stop(s);
		pthread_join(acc, NULL);
	} else {
		tpc_pg_free(s->pg);
	}
	if (s->lfd > 0)
		close(s->lfd);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc ? 1 : 0;
}

#else /* !TPC_HAVE_PG */

int tt_pg_service_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("tpc-torture pg-service: built without PostgreSQL (libpq not found)\n", stderr);
	return 1;
}

#endif
