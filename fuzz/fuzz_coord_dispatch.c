/*
 * fuzz_coord_dispatch.c - libFuzzer harness for the whole coordinator: every Envelope
 * type through its connections, dispatch, state machine, log and replies.
 *
 * One real server runs in this process (coord_server_new: the LMDB log in a temporary
 * folder, the protocol port on a loopback port picked at start, the admin API off,
 * short timeouts). Each input is a script for 2-4 connections over real loopback TCP:
 * Hellos as a client or as a participant (name, participant id, incarnation, prepared
 * txids), Begin, Join (with the right, no, or a wrong transaction token), Commit, Abort,
 * Vote, Ack, StatusQuery, every body a coordinator must refuse (KvPut, Prepare, ...),
 * garbage bytes, bad frame headers, unfinished frames, and waits of a few ms (so that
 * transaction and prepare timeouts and decision resends fire). The harness drives the
 * server's event loop itself (EVLOOP_NONBLOCK) after each send until the replies stop
 * and no log write is in flight, and reads every reply.
 *
 * Checked on every reply, at the moment it is read:
 *   - it is a valid Envelope (unpacks, passes tpc_wire_validate) of a body a
 *     coordinator sends;
 *   - D1: an Outcome COMMITTED, a Decision(COMMIT), a StatusReply COMMITTED or a
 *     BeginReply ALREADY_COMMITTED names a txid whose COMMIT record (or its completed
 *     tombstone) is in the log (lookup_txid == COORD_LOOKUP_COMMITTED);
 *   - an Outcome or StatusReply ABORTED or a Decision(ABORT) never names a txid the log
 *     holds as committed;
 *   - a txid begun in this input and then told ABORTED is never told COMMITTED.
 * At the end of each input every socket is reset and the loop driven until the server
 * freed every connection and no log write is in flight (a connection that outlives its
 * peer's reset is a crash too).
 *
 * Input layout (fuzz_input.h: past the end every byte reads 0, so any input is a script):
 *   [connections - 2][flags] then steps [connection][op][the op's arguments], see step().
 *   flags: bits 0-1 auto vote on every Prepare (0 no, 1 YES, 2 NO, 3 READ_ONLY),
 *          bit 2 auto ack of every Decision.
 *
 * State kept across inputs: the server and its log (txids, keys, name bindings), and
 * the incarnation base, raised by every input so an input's incarnations are always the
 * newest. Transactions left COMMITTING by participants that never acked are acked by a
 * clean-up pass once more than CLEANUP_AT are open. The one static variable holds this
 * (libFuzzer's callbacks take no context). The temporary folder is removed as soon as
 * the log is open (LMDB keeps its files open), and the server freed at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "fuzz_input.h"
#include "server_int.h"

#define MAX_CONNS 4
#define POOL 1024         /* txids one input remembers; once it is full, a COMMITTED
			   * with no record for a txid not among them is let pass (it
			   * may be a read-only commit: the harness cannot tell) */
#define NNAMES 6          /* p0..p3, an empty name, one over COORD_MAX_PART_NAME */
#define NBOUND 4          /* names that can be bound (p0..p3) */
#define INC_STEP 8        /* incarnations one input may use above the base */
#define CLEANUP_AT 64     /* open transactions that start a clean-up pass */
#define WAIT_BUDGET_MS 12 /* OP_WAIT's sleeps per input */
#define IDLE_ROUNDS 3     /* loop rounds with nothing read and nothing written */
#define DRIVE_ROUNDS 20000
#define CLOSE_ROUNDS 200000 /* 50 us apart: 10 s for the server to drop every connection */

struct hconn {
	int fd;               /* -1: not connected */
	int name;             /* said Hello as participant name index; -1: none */
	uint64_t inc;
	struct tpc_frame_decoder dec;
};

/* A txid the replies named, with its token when a BeginReply gave one. */
struct known {
	uint64_t txid;
	uint8_t token[TPC_TXN_TOKEN_LEN];
	int has_token;
	int begun;            /* BEGIN_STARTED seen in this input */
	int had_key;          /* its Begin carried a client key */
	int told_abort;       /* told ABORTED after it was begun */
	int told_commit;
	int read_only;        /* told COMMITTED with no record: no YES voter, no key */
	uint64_t yes_req[4];  /* YES votes sent after it was begun, not refused (yet) */
	uint32_t nyes;
};

/* A Begin sent, until its reply says which txid it made. */
struct begin_sent {
	uint64_t req;
	int had_key;
};

struct input {
	struct fz f;
	struct hconn c[MAX_CONNS];
	uint32_t n;
	int auto_vote;        /* 0: none, 1 YES, 2 NO, 3 READ_ONLY */
	int auto_ack;
	struct known pool[POOL];
	uint32_t npool;
	struct begin_sent begins[16];  /* a ring: the latest Begins */
	uint32_t nbegins;
	uint64_t req;
	uint32_t waited_ms;
};

struct harness {
	struct input in;      /* the current input's (large: kept off the stack) */
	struct coord_server *s;
	struct sockaddr_in addr;
	struct tpc_arena arena;
	uint64_t inc_base;
	int trace;            /* FUZZ_TRACE=1: print each step and reply on stderr */
	char dir[128];
};

static struct harness *H;

static const char *part_name(int i)
{
	static char long_name[COORD_MAX_PART_NAME + 40];

	if (i < NBOUND) {
		static const char *names[NBOUND] = { "p0", "p1", "p2", "p3" };
		return names[i];
	}
	if (i == NBOUND)
		return "";
	if (!long_name[0])
		memset(long_name, 'n', sizeof(long_name) - 1);
	return long_name;
}

/* ---- the server ---- */

/* The log's folder holds only files (LMDB's two and the lock file). */
static int rm_dir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	return rmdir(dir);
}

static void harness_exit(void)
{
	if (!H)
		return;
	{ /* one line: what a run left behind */
		uint64_t decisions = 0, keys = 0, bytes = 0;
		H->s->store.ops->stats(H->s->store.self, &decisions, &keys, &bytes);
		fprintf(stderr, "fuzz_coord_dispatch: %zu transactions open, %zu "
			"connection slots; the log holds %llu decisions, %llu keys, %llu bytes\n",
			(size_t)H->s->txns.n, (size_t)H->s->conns_cap,
			(unsigned long long)decisions, (unsigned long long)keys,
			(unsigned long long)bytes);
	}
	coord_server_free(H->s);
	tpc_arena_free(&H->arena);
	if (H->dir[0])
		rm_dir(H->dir);
	free(H);
	H = NULL;
}

static void server_config(struct coord_config *cfg, const char *dir)
{
	coord_config_defaults(cfg);
	cfg->listen = "127.0.0.1:0";
	cfg->data_dir = dir;
	cfg->admin = "off";
	cfg->log_level = TPC_LOG_ERROR;
	/* Short enough for OP_WAIT to see prepare timeouts and decision resends. */
	cfg->txn_timeout_ms = 1000;
	cfg->prepare_timeout_ms = 8;
	cfg->retry_initial_ms = 2;
	cfg->retry_max_ms = 8;
	cfg->hello_timeout_ms = 1000;
	cfg->max_conns = 64;
	cfg->map_size = 256u << 20;
	/* Tombstones outlive any run, so a COMMITTED read back is never swept under it. */
	cfg->outcome_retention_ms = 24ull * 60 * 60 * 1000;
}

/* The server's signal events would take SIGINT and SIGTERM from libFuzzer: drop them
 * (libevent puts the previous handlers back). */
static void release_signals(struct coord_server *s)
{
	event_del(s->sig_term);
	event_del(s->sig_int);
	event_del(s->sig_hup);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct coord_config cfg;
	socklen_t len = sizeof(struct sockaddr_in);
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	(void)argc, (void)argv;
	H = calloc(1, sizeof(*H));
	if (!H)
		abort();
	snprintf(H->dir, sizeof(H->dir), "%s/tpc-fuzz-coord-XXXXXX", tmp);
	if (!mkdtemp(H->dir)) {
		perror("mkdtemp");
		abort();
	}
	server_config(&cfg, H->dir);
	H->s = coord_server_new(&cfg);
	rm_dir(H->dir); /* LMDB holds its files open; nothing is left behind, even on a crash */
	H->dir[0] = '\0';
	if (!H->s || getsockname(evconnlistener_get_fd(H->s->listener),
				 (struct sockaddr *)&H->addr, &len)) {
		fprintf(stderr, "fuzz_coord_dispatch: cannot start the coordinator\n");
		abort();
	}
	release_signals(H->s);
	H->trace = getenv("FUZZ_TRACE") && strcmp(getenv("FUZZ_TRACE"), "1") == 0;
	tpc_arena_init(&H->arena, 16 * 1024);
	atexit(harness_exit);
	return 0;
}

/* ---- connections ---- */

static int dial(void)
{
	struct linger lg = { 1, 0 }; /* close with a reset: no TIME_WAIT per input */
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&H->addr, sizeof(H->addr)) ||
	    fcntl(fd, F_SETFL, O_NONBLOCK)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void hconn_close(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->name = -1;
	tpc_frame_decoder_free(&c->dec);
	tpc_frame_decoder_init(&c->dec, TPC_FRAME_DEFAULT_MAX);
}

static void hconn_open(struct hconn *c)
{
	hconn_close(c);
	c->fd = dial();
}

/* Best effort: a peer that stopped reading (throttled, closing) just loses the rest. */
static void send_bytes(struct hconn *c, const uint8_t *p, size_t n)
{
	while (c->fd >= 0 && n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				hconn_close(c);
			return;
		}
		p += w, n -= (size_t)w;
	}
}

static void send_env(struct input *in, struct hconn *c, Tpc__Envelope *env)
{
	uint8_t buf[4096];
	long n;

	env->request_id = ++in->req;
	n = tpc_wire_pack(env, buf, sizeof(buf));
	if (n < 0)
		abort(); /* the harness's own messages always fit */
	send_bytes(c, buf, (size_t)n);
}

/* ---- the txids replies named ---- */

static struct known *pool_find(struct input *in, uint64_t txid)
{
	for (uint32_t i = 0; i < in->npool; i++)
		if (in->pool[i].txid == txid)
			return &in->pool[i];
	return NULL;
}

/* Known from now on; a full pool forgets nothing and learns no more. */
static struct known *pool_add(struct input *in, uint64_t txid)
{
	struct known *k = pool_find(in, txid);

	if (k || !txid || in->npool == POOL)
		return k;
	k = &in->pool[in->npool++];
	memset(k, 0, sizeof(*k));
	k->txid = txid;
	return k;
}

/* A txid for a request: mostly one the replies named, else near the server's next one,
 * a small number, or anything. */
static uint64_t pick_txid(struct input *in)
{
	struct coord_server *s = H->s;
	uint8_t b = fz_u8(&in->f);

	if (b < 192 && in->npool)
		return in->pool[b % in->npool].txid;
	if (b < 224) {
		uint64_t seq = s->next_seq + (b & 15);
		seq = seq > 8 ? seq - 8 : seq;
		return s->epoch << COORD_TXID_SEQ_BITS | seq;
	}
	if (b < 240)
		return (uint64_t)(b - 224);
	return (uint64_t)fz_u32(&in->f) << 32 | fz_u32(&in->f);
}

/* ---- checking what the coordinator says ---- */

static int log_lookup(uint64_t txid)
{
	struct coord_server *s = H->s;

	return s->store.ops->lookup_txid(s->store.self, txid);
}

/*
 * By design (txn.c) a Commit with no YES voter and no client key is answered COMMITTED
 * with nothing logged, and forgotten (a later StatusQuery hears ABORTED: presumed
 * abort, nothing was applied anywhere). Allowed only for an Outcome, for a txid begun in
 * this input without a key, to which no YES vote was sent that the coordinator did not
 * refuse.
 */
static int may_commit_read_only(const struct known *k, int outcome)
{
	return outcome && k && k->begun && !k->had_key && k->nyes == 0;
}

static void told_committed(struct input *in, uint64_t txid, const char *what, int outcome)
{
	int rc = log_lookup(txid);
	struct known *k = pool_add(in, txid);

	if (!k && in->npool == POOL && rc != COORD_LOOKUP_COMMITTED)
		return; /* a txid the full pool did not learn: cannot tell whether it was begun */
	if (rc != COORD_LOOKUP_COMMITTED) {
		FZ_CHECK(may_commit_read_only(k, outcome), "D1: %s for txid %llu, but the log "
			 "holds no COMMIT record for it (lookup %d)", what,
			 (unsigned long long)txid, rc);
		k->read_only = 1;
	}
	if (!k)
		return;
	k->told_commit = 1;
	FZ_CHECK(!k->told_abort, "txid %llu begun in this input: told ABORTED, then %s",
		 (unsigned long long)txid, what);
}

static void told_aborted(struct input *in, uint64_t txid, const char *what)
{
	int rc = log_lookup(txid);
	struct known *k = pool_add(in, txid);

	FZ_CHECK(rc != COORD_LOOKUP_COMMITTED, "%s for txid %llu, whose COMMIT record is in "
		 "the log", what, (unsigned long long)txid);
	if (!k || !k->begun || k->read_only)
		return;
	k->told_abort = 1;
	FZ_CHECK(!k->told_commit, "txid %llu: told COMMITTED, then %s",
		 (unsigned long long)txid, what);
}

static int begin_had_key(const struct input *in, uint64_t req)
{
	for (uint32_t i = 0; i < 16 && i < in->nbegins; i++)
		if (in->begins[i].req == req)
			return in->begins[i].had_key;
	return 1; /* not found: assume the stricter case */
}

static void on_begin_reply(struct input *in, uint64_t req, const Tpc__BeginReply *r)
{
	struct known *k;

	if (r->result == TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED) {
		told_committed(in, r->txid, "BeginReply ALREADY_COMMITTED", 0);
		return;
	}
	k = pool_add(in, r->txid);
	if (!k || r->result != TPC__BEGIN_RESULT__BEGIN_STARTED)
		return;
	k->begun = 1;
	k->had_key = begin_had_key(in, req);
	if (r->txn_token.len == TPC_TXN_TOKEN_LEN) {
		memcpy(k->token, r->txn_token.data, TPC_TXN_TOKEN_LEN);
		k->has_token = 1;
	}
}

/* A YES vote for @p txid went out as request @p req: from now on the transaction may
 * have a YES voter (unless the coordinator answers the request with an Error). */
static void yes_sent(struct input *in, uint64_t txid, uint64_t req)
{
	struct known *k = pool_find(in, txid);

	if (!k || !k->begun)
		return;
	if (k->nyes < 4)
		k->yes_req[k->nyes++] = req;
	else
		k->yes_req[3] = req; /* several pending: one stays counted, enough here */
}

static void yes_refused(struct input *in, uint64_t req)
{
	for (uint32_t i = 0; i < in->npool; i++) {
		struct known *k = &in->pool[i];
		for (uint32_t j = 0; j < k->nyes;)
			if (k->yes_req[j] == req)
				k->yes_req[j] = k->yes_req[--k->nyes];
			else
				j++;
	}
}

static void auto_vote(struct input *in, struct hconn *c, uint64_t txid)
{
	static const Tpc__VoteKind kinds[] = { TPC__VOTE_KIND__VOTE_YES, TPC__VOTE_KIND__VOTE_YES,
					       TPC__VOTE_KIND__VOTE_NO,
					       TPC__VOTE_KIND__VOTE_READ_ONLY };
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote v = TPC__VOTE__INIT;

	v.txid = txid;
	v.vote = kinds[in->auto_vote];
	v.incarnation = c->inc;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &v;
	send_env(in, c, &env);
	if (v.vote == TPC__VOTE_KIND__VOTE_YES)
		yes_sent(in, txid, in->req);
}

static void send_ack(struct input *in, struct hconn *c, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Ack a = TPC__ACK__INIT;

	a.txid = txid;
	env.body_case = TPC__ENVELOPE__BODY_ACK;
	env.ack = &a;
	send_env(in, c, &env);
}

static void on_decision(struct input *in, struct hconn *c, const Tpc__Decision *d)
{
	if (d->decision == TPC__DECISION_KIND__DECISION_COMMIT)
		told_committed(in, d->txid, "Decision(COMMIT)", 0);
	else
		told_aborted(in, d->txid, "Decision(ABORT)");
	if (in->auto_ack)
		send_ack(in, c, d->txid);
}

static void on_status_reply(struct input *in, const Tpc__StatusReply *r)
{
	if (r->status == TPC__TXN_STATUS__STATUS_COMMITTED)
		told_committed(in, r->txid, "StatusReply COMMITTED", 0);
	else if (r->status == TPC__TXN_STATUS__STATUS_ABORTED)
		told_aborted(in, r->txid, "StatusReply ABORTED");
}

static void on_outcome(struct input *in, const Tpc__Outcome *o)
{
	if (o->outcome == TPC__OUTCOME_KIND__OUTCOME_COMMITTED)
		told_committed(in, o->txid, "Outcome COMMITTED", 1);
	else if (o->outcome == TPC__OUTCOME_KIND__OUTCOME_ABORTED)
		told_aborted(in, o->txid, "Outcome ABORTED");
}

static void trace_reply(const struct input *in, const struct hconn *c,
			const Tpc__Envelope *env)
{
	unsigned long long txid = 0;
	int what = -1;

	switch (env->body_case) {
	case TPC__ENVELOPE__BODY_BEGIN_REPLY:
		txid = env->begin_reply->txid, what = env->begin_reply->result; break;
	case TPC__ENVELOPE__BODY_OUTCOME:
		txid = env->outcome->txid, what = env->outcome->outcome; break;
	case TPC__ENVELOPE__BODY_STATUS_REPLY:
		txid = env->status_reply->txid, what = env->status_reply->status; break;
	case TPC__ENVELOPE__BODY_DECISION:
		txid = env->decision->txid, what = env->decision->decision; break;
	case TPC__ENVELOPE__BODY_PREPARE: txid = env->prepare->txid; break;
	case TPC__ENVELOPE__BODY_ERROR:
		txid = env->error->txid, what = env->error->code;
		fprintf(stderr, "   conn %d <- error %d req %llu txid %llu: %s\n",
			(int)(c - in->c), what, (unsigned long long)env->request_id, txid,
			env->error->message);
		return;
	default: break;
	}
	fprintf(stderr, "   conn %d <- %s req %llu txid %llu (%d)\n", (int)(c - in->c),
		tpc_wire_body_name(env->body_case), (unsigned long long)env->request_id, txid,
		what);
}

static void on_reply(struct input *in, struct hconn *c, const uint8_t *body, uint32_t len)
{
	const char *why = NULL;
	Tpc__Envelope *env = tpc_wire_unpack(&H->arena, body, len);

	FZ_CHECK(env, "the coordinator sent a frame that does not unpack (%u bytes)", len);
	FZ_CHECK(tpc_wire_validate(env, &why) == 0, "the coordinator sent an invalid %s: %s",
		 tpc_wire_body_name(env->body_case), why);
	if (H->trace)
		trace_reply(in, c, env);
	switch (env->body_case) {
	case TPC__ENVELOPE__BODY_BEGIN_REPLY:
		on_begin_reply(in, env->request_id, env->begin_reply);
		break;
	case TPC__ENVELOPE__BODY_OUTCOME: on_outcome(in, env->outcome); break;
	case TPC__ENVELOPE__BODY_STATUS_REPLY: on_status_reply(in, env->status_reply); break;
	case TPC__ENVELOPE__BODY_DECISION: on_decision(in, c, env->decision); break;
	case TPC__ENVELOPE__BODY_PREPARE:
		pool_add(in, env->prepare->txid);
		if (in->auto_vote)
			auto_vote(in, c, env->prepare->txid);
		break;
	case TPC__ENVELOPE__BODY_ERROR:
		pool_add(in, env->error->txid);
		yes_refused(in, env->request_id);
		break;
	case TPC__ENVELOPE__BODY_HELLO_REPLY:
	case TPC__ENVELOPE__BODY_JOIN_REPLY: break;
	default:
		FZ_CHECK(0, "the coordinator sent a %s", tpc_wire_body_name(env->body_case));
	}
}

/* Read what is there; @return bytes read. EOF or an error closes our side too. */
static size_t read_conn(struct input *in, struct hconn *c)
{
	uint8_t buf[16384];
	size_t total = 0;

	while (c->fd >= 0) {
		ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				hconn_close(c);
			break;
		}
		total += (size_t)r;
		const uint8_t *p = buf;
		size_t left = (size_t)r, used;
		const uint8_t *frame;
		uint32_t flen;
		while (left) {
			int rc = tpc_frame_feed(&c->dec, p, left, &used, &frame, &flen);
			FZ_CHECK(rc >= 0, "the coordinator sent a bad frame (%d)", rc);
			p += used, left -= used;
			if (rc == TPC_FRAME_READY)
				on_reply(in, c, frame, flen);
			if (c->fd < 0) /* an automatic answer found the connection gone */
				return total;
		}
	}
	return total;
}

static size_t read_all(struct input *in)
{
	size_t got = 0;

	for (uint32_t i = 0; i < in->n; i++)
		got += read_conn(in, &in->c[i]);
	return got;
}

/* Run the server until nothing was read for IDLE_ROUNDS rounds and no log write is in
 * flight (its completion wakes the loop from the writer thread). */
static void drive(struct input *in)
{
	struct coord_server *s = H->s;
	int idle = 0;

	for (int round = 0; round < DRIVE_ROUNDS && idle < IDLE_ROUNDS; round++) {
		event_base_loop(s->base, EVLOOP_NONBLOCK);
		size_t got = read_all(in);
		size_t pending = batch_writer_pending(s->writer);
		idle = got || pending ? 0 : idle + 1;
		if (!got && pending)
			usleep(50);
	}
}

/* ---- the script's requests ---- */

static void op_hello_client(struct input *in, struct hconn *c)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;

	h.role = fz_pick(&in->f, 8) == 7 ? TPC__ROLE__ROLE_UNSPECIFIED : TPC__ROLE__ROLE_CLIENT;
	h.name = "client";
	h.protocol_version = fz_pick(&in->f, 8) == 7 ? 99 : TPC_PROTOCOL_VERSION;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(in, c, &env);
}

/* [name][participant id: 0-5 the name's own, 6 another, 7 too short][incarnation]
 * [prepared txids 0-2][txids...] */
static void op_hello_part(struct input *in, struct hconn *c)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;
	uint8_t pid[COORD_PARTICIPANT_ID_LEN];
	uint64_t prepared[2];
	int name = (int)fz_pick(&in->f, NNAMES);
	uint32_t idv = fz_pick(&in->f, 8), inc = fz_pick(&in->f, INC_STEP + 1);

	memset(pid, 0xa0 + name + (idv == 6 ? 0x10 : 0), sizeof(pid));
	h.role = TPC__ROLE__ROLE_PARTICIPANT;
	h.name = (char *)part_name(name);
	h.protocol_version = TPC_PROTOCOL_VERSION;
	h.participant_id = (ProtobufCBinaryData){ idv == 7 ? 8 : sizeof(pid), pid };
	h.incarnation = inc ? H->inc_base + inc : 0;
	h.n_prepared_txids = fz_pick(&in->f, 3);
	for (size_t i = 0; i < h.n_prepared_txids; i++)
		prepared[i] = pick_txid(in);
	h.prepared_txids = prepared;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(in, c, &env);
	c->name = name;
	c->inc = h.incarnation;
}

/* [timeout][key] */
static void op_begin(struct input *in, struct hconn *c)
{
	static const uint32_t timeouts[] = { 0, 5, 2000, UINT32_MAX };
	static char long_key[300];
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Begin b = TPC__BEGIN__INIT;
	char key[16];
	uint32_t k;

	b.timeout_ms = timeouts[fz_pick(&in->f, 4)];
	k = fz_pick(&in->f, 8);
	if (k >= 1 && k <= 4) { /* kept by the log across inputs */
		snprintf(key, sizeof(key), "k%u", k);
		b.txn_key = key;
	} else if (k == 5) {
		if (!long_key[0])
			memset(long_key, 'k', sizeof(long_key) - 1);
		b.txn_key = long_key;
	}
	env.body_case = TPC__ENVELOPE__BODY_BEGIN;
	env.begin = &b;
	send_env(in, c, &env);
	in->begins[in->nbegins++ % 16] = (struct begin_sent){ in->req, b.txn_key[0] != 0 };
}

/* An incarnation for Join and Vote: [0-1 the connection's, 2 the next, 3 zero] */
static uint64_t pick_inc(struct input *in, const struct hconn *c)
{
	uint32_t w = fz_pick(&in->f, 4);

	return w < 2 ? c->inc : w == 2 ? c->inc + 1 : 0;
}

/* [txid][name: 0-1 the connection's, 2 another, 3 empty][incarnation]
 * [token: 0-1 the txn's, 2 none, 3 a wrong one, 4 too short] */
static void op_join(struct input *in, struct hconn *c)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Join j = TPC__JOIN__INIT;
	uint8_t token[TPC_TXN_TOKEN_LEN] = { 0 };
	uint32_t who, tok;
	struct known *k;

	j.txid = pick_txid(in);
	who = fz_pick(&in->f, 4);
	j.participant = (char *)(who == 3 ? "" :
				 part_name(who == 2 ? (c->name + 1) % NBOUND
						    : c->name < 0 ? 0 : c->name));
	j.incarnation = pick_inc(in, c);
	tok = fz_pick(&in->f, 5);
	k = pool_find(in, j.txid);
	if (k && k->has_token)
		memcpy(token, k->token, sizeof(token));
	token[0] ^= tok == 3;
	if (tok != 2)
		j.txn_token = (ProtobufCBinaryData){ tok == 4 ? 5 : sizeof(token), token };
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &j;
	send_env(in, c, &env);
}

/* Commit, Abort, Ack, StatusQuery: [txid] (Abort: [reason: 0 none, else some]) */
static void op_txid(struct input *in, struct hconn *c, Tpc__Envelope__BodyCase body)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Commit cm = TPC__COMMIT__INIT;
	Tpc__Abort ab = TPC__ABORT__INIT;
	Tpc__Ack ack = TPC__ACK__INIT;
	Tpc__StatusQuery q = TPC__STATUS_QUERY__INIT;
	uint64_t txid = pick_txid(in);

	cm.txid = ab.txid = ack.txid = q.txid = txid;
	env.body_case = body;
	env.commit = &cm; /* the body is a union: set the one that matches */
	if (body == TPC__ENVELOPE__BODY_ABORT) {
		ab.reason = fz_pick(&in->f, 2) ? "changed its mind" : "";
		env.abort = &ab;
	} else if (body == TPC__ENVELOPE__BODY_ACK) {
		env.ack = &ack;
	} else if (body == TPC__ENVELOPE__BODY_STATUS_QUERY) {
		env.status_query = &q;
	}
	send_env(in, c, &env);
}

/* [txid][vote: NO, YES, READ_ONLY, an unknown value][incarnation] */
static void op_vote(struct input *in, struct hconn *c)
{
	static const int kinds[] = { TPC__VOTE_KIND__VOTE_NO, TPC__VOTE_KIND__VOTE_YES,
				     TPC__VOTE_KIND__VOTE_READ_ONLY, 7 };
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote v = TPC__VOTE__INIT;

	v.txid = pick_txid(in);
	v.vote = (Tpc__VoteKind)kinds[fz_pick(&in->f, 4)];
	v.incarnation = pick_inc(in, c);
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &v;
	send_env(in, c, &env);
	if (v.vote == TPC__VOTE_KIND__VOTE_YES)
		yes_sent(in, v.txid, in->req);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		v >>= 7;
	} while (v);
	return n;
}

/* [body: an Envelope field number of the table][txid]: an Envelope whose body holds
 * just field 1 = txid, packed by hand so that any body type (and none) is sent. */
static void op_other(struct input *in, struct hconn *c)
{
	static const uint8_t bodies[] = { 11, 13, 15, 18, 19, 21, 24, 25, 40, 41, 42, 43,
					  0, 26, 99 };
	uint8_t frame[64], sub[16];
	size_t n = TPC_FRAME_HEADER_SIZE, ns;
	uint8_t field = bodies[fz_pick(&in->f, sizeof(bodies))];

	sub[0] = 0x08; /* field 1, varint */
	ns = 1 + put_varint(sub + 1, pick_txid(in));
	frame[n++] = 0x08; /* request_id */
	n += put_varint(frame + n, ++in->req);
	if (field) {
		n += put_varint(frame + n, (uint64_t)field << 3 | 2);
		n += put_varint(frame + n, ns);
		memcpy(frame + n, sub, ns);
		n += ns;
	}
	tpc_frame_put_header(frame, (uint32_t)(n - TPC_FRAME_HEADER_SIZE));
	send_bytes(c, frame, n);
}

/* [length][bytes...]: garbage as it comes, header and all. */
static void op_garbage(struct input *in, struct hconn *c)
{
	uint8_t buf[256];
	uint32_t n = fz_u8(&in->f);

	for (uint32_t i = 0; i < n; i++)
		buf[i] = fz_u8(&in->f);
	send_bytes(c, buf, n);
}

/* [kind: empty frame, over the maximum, a body of garbage][length][bytes...] */
static void op_bad_frame(struct input *in, struct hconn *c)
{
	uint8_t buf[TPC_FRAME_HEADER_SIZE + 256];
	uint32_t kind = fz_pick(&in->f, 3), n = 0;

	if (kind == 0)
		tpc_frame_put_header(buf, 0);
	else if (kind == 1)
		tpc_frame_put_header(buf, TPC_FRAME_DEFAULT_MAX + 1 + fz_u8(&in->f));
	else {
		n = fz_u8(&in->f) + 1u;
		tpc_frame_put_header(buf, n);
		for (uint32_t i = 0; i < n && i < 256; i++)
			buf[TPC_FRAME_HEADER_SIZE + i] = fz_u8(&in->f);
	}
	send_bytes(c, buf, TPC_FRAME_HEADER_SIZE + (n > 256 ? 256 : n));
}

/* [bytes]: the first bytes of a Begin frame, the rest never sent. */
static void op_partial(struct input *in, struct hconn *c)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Begin b = TPC__BEGIN__INIT;
	uint8_t buf[64];
	long n;

	b.txn_key = "partial";
	env.request_id = ++in->req;
	env.body_case = TPC__ENVELOPE__BODY_BEGIN;
	env.begin = &b;
	n = tpc_wire_pack(&env, buf, sizeof(buf));
	if (n < 2)
		abort();
	send_bytes(c, buf, 1 + fz_pick(&in->f, (uint32_t)n - 1));
}

/* [2-5 ms]: timers fire (transaction and prepare timeouts, decision resends); at most
 * WAIT_BUDGET_MS per input, so that waiting does not eat the fuzzer's rate. */
static void op_wait(struct input *in)
{
	uint32_t ms = 2 + fz_pick(&in->f, 4);

	if (in->waited_ms + ms > WAIT_BUDGET_MS)
		return;
	in->waited_ms += ms;
	usleep(ms * 1000);
}

enum op {
	OP_HELLO_CLIENT, OP_HELLO_PART, OP_BEGIN, OP_JOIN, OP_COMMIT, OP_ABORT, OP_VOTE,
	OP_ACK, OP_STATUS, OP_OTHER, OP_GARBAGE, OP_BAD_FRAME, OP_PARTIAL, OP_RECONNECT,
	OP_CLOSE, OP_WAIT, OP_COUNT
};

/* One step: [connection][op][arguments]; a closed connection sends nothing. */
static void step(struct input *in)
{
	struct hconn *c = &in->c[fz_pick(&in->f, in->n)];
	enum op op = (enum op)fz_pick(&in->f, OP_COUNT);

	if (H->trace)
		fprintf(stderr, "step: conn %d op %d (req %llu next)\n", (int)(c - in->c), op,
			(unsigned long long)in->req + 1);
	switch (op) {
	case OP_HELLO_CLIENT: op_hello_client(in, c); break;
	case OP_HELLO_PART: op_hello_part(in, c); break;
	case OP_BEGIN: op_begin(in, c); break;
	case OP_JOIN: op_join(in, c); break;
	case OP_COMMIT: op_txid(in, c, TPC__ENVELOPE__BODY_COMMIT); break;
	case OP_ABORT: op_txid(in, c, TPC__ENVELOPE__BODY_ABORT); break;
	case OP_VOTE: op_vote(in, c); break;
	case OP_ACK: op_txid(in, c, TPC__ENVELOPE__BODY_ACK); break;
	case OP_STATUS: op_txid(in, c, TPC__ENVELOPE__BODY_STATUS_QUERY); break;
	case OP_OTHER: op_other(in, c); break;
	case OP_GARBAGE: op_garbage(in, c); break;
	case OP_BAD_FRAME: op_bad_frame(in, c); break;
	case OP_PARTIAL: op_partial(in, c); break;
	case OP_RECONNECT: hconn_open(c); break;
	case OP_CLOSE: hconn_close(c); break;
	case OP_WAIT: op_wait(in); break;
	case OP_COUNT: break;
	}
	drive(in);
}

/* ---- one input ---- */

static void input_start(struct input *in, const uint8_t *data, size_t size)
{
	memset(in, 0, sizeof(*in));
	in->f = (struct fz){ data, size };
	in->n = 2 + fz_pick(&in->f, MAX_CONNS - 1);
	uint8_t flags = fz_u8(&in->f);
	in->auto_vote = flags & 3;
	in->auto_ack = (flags & 4) != 0;
	H->inc_base += INC_STEP + 1; /* this input's incarnations are the newest */
	for (uint32_t i = 0; i < in->n; i++) {
		in->c[i].fd = -1;
		tpc_frame_decoder_init(&in->c[i].dec, TPC_FRAME_DEFAULT_MAX);
		hconn_open(&in->c[i]);
	}
}

/* Reset every socket; the server must let go of every connection and finish its log
 * writes before the next input. */
static void input_end(struct input *in)
{
	struct coord_server *s = H->s;
	int round = 0;

	for (uint32_t i = 0; i < in->n; i++) {
		hconn_close(&in->c[i]);
		tpc_frame_decoder_free(&in->c[i].dec);
	}
	for (; round < CLOSE_ROUNDS; round++) {
		event_base_loop(s->base, EVLOOP_NONBLOCK);
		if (!s->nconns && !batch_writer_pending(s->writer))
			break;
		usleep(50);
	}
	FZ_CHECK(round < CLOSE_ROUNDS, "%u connection(s) still open, %zu log write(s) pending "
		 "10 s after every peer reset", s->nconns, batch_writer_pending(s->writer));
}

static void run(const uint8_t *data, size_t size)
{
	struct input *in = &H->in;

	input_start(in, data, size);
	while (fz_more(&in->f))
		step(in);
	drive(in);
	input_end(in);
}

/* Transactions left COMMITTING by participants that never acked: say Hello as each
 * name (own id, the newest incarnation) and ack every Decision the coordinator sends. */
static void cleanup(void)
{
	uint8_t script[2 + NBOUND * 6] = { MAX_CONNS - 2, 4 /* auto ack */ };

	for (uint8_t i = 0; i < NBOUND; i++) {
		uint8_t *st = &script[2 + i * 6];
		st[0] = i, st[1] = OP_HELLO_PART, st[2] = i, st[3] = 0, st[4] = INC_STEP;
	}
	run(script, sizeof(script));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size);
	if (H->s->txns.n > CLEANUP_AT)
		cleanup();
	return 0;
}
