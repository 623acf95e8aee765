/*
 * testpart.c - tpc-testpart, a small durable participant process for coordinator tests.
 *
 * One libevent loop: a bufferevent to the coordinator (a list of addresses, following
 * a standby's ERR_NOT_LEADER to the leader as libtpc does; reconnecting with backoff
 * 50 ms doubling to 1 s) and an event on stdin for line commands. Every stdout line is
 * a test-visible event (see usage()); diagnostics go to stderr.
 *
 * Owns its state file, an append-only log of "P TXID" (prepared; fdatasync'ed before
 * voting YES, rule D2), "C TXID" (applied; fdatasync'ed before the Ack, rule D3) and
 * "A TXID" (discarded; not synced: presumed abort). A torn last line is cut away on
 * start. Invariants: a txid is applied at most once (a COMMIT with a C line already, or
 * with no P line, is acked as a duplicate); a Prepare or Decision carrying an epoch older
 * than the highest seen is ignored (rule D7); a YES vote is only given for a txid this
 * process joined or holds a P line for (staged writes of a txid joined before a crash
 * are gone, so its Prepare gets NO).
 *
 * Identity (rule D8): the participant id is derived from the name unless
 * --participant-id HEX gives one (tpc_wc_default_identity, so wire-level test peers can
 * say Hello as the same participant); the incarnation is a counter kept in the state
 * file ("I N", synced at every start). A P line records the incarnation that joined
 * ("P TXID INC"), which a YES re-sent after a restart names; the Hello lists the txids
 * held PREPARED. An ERR_IDENTITY stops reconnecting ("fatal" on stdout).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "coord_addrs.h"
#include "util.h"
#include "wire.h"
#include "wireclient.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

enum vote_mode { VOTE_DEFAULT = 0, VOTE_YES, VOTE_NO, VOTE_READONLY, VOTE_SILENT };
enum crash_point { CRASH_NONE, CRASH_AFTER_PREPARE_LOG, CRASH_AFTER_VOTE, CRASH_AFTER_APPLY };

#define TX_PREPARED 1u
#define TX_COMMITTED 2u
#define TX_ABORTED 4u
#define TX_JOINED 8u

struct txrec {
	uint64_t txid; /* 0: empty slot */
	uint8_t flags;
	uint8_t vote;  /* enum vote_mode override; VOTE_DEFAULT: use --vote */
	uint64_t inc;  /* the incarnation that joined it (0: unknown) */
};

/* Open-addressing map txid -> txrec; power-of-two capacity, at most half full. */
struct txmap {
	struct txrec *slots;
	size_t cap, n;
};

enum req_kind { REQ_JOIN, REQ_QUERY, REQ_RECOVER };

struct pending {
	uint64_t request_id;
	uint64_t txid;
	enum req_kind kind;
};

struct testpart {
	struct tpc_logger lg;
	const char *name;
	const char *coord;
	const char *state_path;
	struct coord_addrs addrs; /* --coordinator's list; a standby's leader hint (libtpc's rule) */
	int redirected;           /* the connection ended in ERR_NOT_LEADER */
	uint32_t redirect_ms;     /* ... and the next attempt waits this long */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum vote_mode vote;
	enum crash_point crash_at;
	uint64_t crash_txid; /* 0: the first txid that reaches the crash point */
	struct tpc_wc_identity id; /* participant id and this process's incarnation */
	int have_id;         /* --participant-id given */
	int fatal;           /* ERR_IDENTITY: do not reconnect */

	struct event_base *base;
	struct bufferevent *bev;
	struct event *stdin_ev;
	struct event *retry_ev;
	struct evbuffer *stdin_buf;
	struct tpc_frame_decoder dec;
	int ready;              /* HelloReply received on the current connection */
	int said_disconnected;  /* "disconnected" printed since the last "ready" */
	int bad_input;          /* set by the frame callback: drop the connection */
	uint64_t epoch;         /* highest coordinator epoch seen */
	uint64_t next_req;

	int state_fd;
	struct txmap txs;
	struct pending *pend;
	size_t npend, pend_cap;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One stdout line, flushed at once (stdout is line buffered as well). */
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void die(struct testpart *tp, const char *what)
{
	tpc_logf(&tp->lg, TPC_LOG_ERROR, "%s: %s", what, strerror(errno));
	exit(3);
}

/* ---- txid map ----------------------------------------------------------------- */

static size_t tx_slot(const struct txmap *m, uint64_t txid)
{
	size_t i = (size_t)((txid * 0x9E3779B97F4A7C15ull) >> 17) & (m->cap - 1);

	while (m->slots[i].txid && m->slots[i].txid != txid)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int tx_grow(struct txmap *m)
{
	struct txmap nm = { .cap = m->cap ? m->cap * 2 : 64 };

	nm.slots = calloc(nm.cap, sizeof(*nm.slots));
	if (!nm.slots)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].txid)
			nm.slots[tx_slot(&nm, m->slots[i].txid)] = m->slots[i];
	}
	nm.n = m->n;
	free(m->slots);
	*m = nm;
	return 0;
}

static struct txrec *tx_find(const struct txmap *m, uint64_t txid)
{
	if (!m->cap)
		return NULL;
	struct txrec *r = &m->slots[tx_slot(m, txid)];
	return r->txid ? r : NULL;
}

/* The record for txid, created empty if missing. Exits on out-of-memory. */
static struct txrec *tx_get(struct testpart *tp, uint64_t txid)
{
	struct txmap *m = &tp->txs;
	struct txrec *r = tx_find(m, txid);

	if (r)
		return r;
	if ((m->n + 1) * 2 > m->cap && tx_grow(m) < 0)
		die(tp, "txid map");
	r = &m->slots[tx_slot(m, txid)];
	r->txid = txid;
	m->n++;
	return r;
}

/* ---- pending requests --------------------------------------------------------- */

static uint64_t pend_add(struct testpart *tp, enum req_kind kind, uint64_t txid)
{
	if (tp->npend == tp->pend_cap) {
		size_t cap = tp->pend_cap ? tp->pend_cap * 2 : 16;
		struct pending *v = realloc(tp->pend, cap * sizeof(*v));
		if (!v)
			die(tp, "pending requests");
		tp->pend = v;
		tp->pend_cap = cap;
	}
	struct pending *p = &tp->pend[tp->npend++];
	p->request_id = ++tp->next_req;
	p->txid = txid;
	p->kind = kind;
	return p->request_id;
}

/* Remove the pending request with this id into *out. 1 if found. */
static int pend_take(struct testpart *tp, uint64_t request_id, struct pending *out)
{
	for (size_t i = 0; i < tp->npend; i++) {
		if (tp->pend[i].request_id != request_id)
			continue;
		*out = tp->pend[i];
		tp->pend[i] = tp->pend[--tp->npend];
		return 1;
	}
	return 0;
}

/* ---- state file --------------------------------------------------------------- */

/* "K TXID" or, with @p extra non-zero, "K TXID EXTRA" (P lines: the joined incarnation). */
static void state_append2(struct testpart *tp, char kind, uint64_t txid, uint64_t extra,
			  int sync)
{
	char line[64];
	int len = extra ? snprintf(line, sizeof(line), "%c %" PRIu64 " %" PRIu64 "\n", kind, txid,
				   extra)
			: snprintf(line, sizeof(line), "%c %" PRIu64 "\n", kind, txid);

	for (int off = 0; off < len;) {
		ssize_t n = write(tp->state_fd, line + off, (size_t)(len - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(tp, "write state file");
		off += (int)n;
	}
	if (sync && fdatasync(tp->state_fd) < 0)
		die(tp, "fdatasync state file");
}

static void state_append(struct testpart *tp, char kind, uint64_t txid, int sync)
{
	state_append2(tp, kind, txid, 0, sync);
}

static void state_parse_line(struct testpart *tp, const char *s, size_t len)
{
	char *end;
	uint8_t flag;

	if (len < 3 || s[1] != ' ')
		goto out_bad;
	flag = s[0] == 'P' ? TX_PREPARED : s[0] == 'C' ? TX_COMMITTED : s[0] == 'A' ? TX_ABORTED : 0;
	uint64_t txid = strtoull(s + 2, &end, 10), inc = 0;
	if (s[0] == 'I' && txid && end == s + len) { /* an incarnation */
		if (txid > tp->id.incarnation)
			tp->id.incarnation = txid;
		return;
	}
	if (flag == TX_PREPARED && *end == ' ')
		inc = strtoull(end + 1, &end, 10);
	if (!flag || txid == 0 || end != s + len)
		goto out_bad;
	struct txrec *r = tx_get(tp, txid);
	r->flags |= flag;
	if (inc)
		r->inc = inc;
	return;
out_bad:
	tpc_logf(&tp->lg, TPC_LOG_WARN, "state file: ignoring line \"%.*s\"", (int)len, s);
}

/* Read every whole line; return the length of the whole-line prefix. */
static size_t state_parse(struct testpart *tp, const char *buf, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i > start)
			state_parse_line(tp, buf + start, i - start);
		start = i + 1;
	}
	return start;
}

static char *read_all(int fd, size_t *len)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return NULL;
	char *buf = malloc((size_t)st.st_size + 1);
	size_t have = 0;
	while (buf && have < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + have, (size_t)st.st_size - have, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	*len = have;
	return buf;
}

/* fsync the folder holding the state file, so a newly created file survives a crash. */
static void sync_parent_dir(struct testpart *tp)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", tp->state_path);
	int dfd = open(dirname(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	if (fsync(dfd) < 0)
		tpc_logf(&tp->lg, TPC_LOG_WARN, "fsync folder: %s", strerror(errno));
	close(dfd);
}

static void state_load(struct testpart *tp)
{
	size_t len = 0;

	tp->state_fd = open(tp->state_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (tp->state_fd < 0)
		die(tp, tp->state_path);
	sync_parent_dir(tp);
	char *buf = read_all(tp->state_fd, &len);
	if (!buf)
		die(tp, "read state file");
	size_t whole = state_parse(tp, buf, len);
	free(buf);
	if (whole != len) {
		tpc_logf(&tp->lg, TPC_LOG_WARN, "state file: cutting a torn last line (%zu bytes)",
			 len - whole);
		if (ftruncate(tp->state_fd, (off_t)whole) < 0 || fdatasync(tp->state_fd) < 0)
			die(tp, "truncate state file");
	}
	/* D8: every start is a new incarnation, durable before the first Hello. */
	tp->id.incarnation++;
	state_append(tp, 'I', tp->id.incarnation, 1);
}

/* ---- sending ------------------------------------------------------------------ */

static void send_env(struct testpart *tp, Tpc__Envelope *env)
{
	if (!tp->bev)
		return;
	if (tpc_wire_send(bufferevent_get_output(tp->bev), env, TPC_FRAME_DEFAULT_MAX) < 0)
		tpc_logf(&tp->lg, TPC_LOG_ERROR, "cannot send %s", tpc_wire_body_name(env->body_case));
}

/* The txids held PREPARED and not yet decided (at most 4096), for the Hello. */
static size_t prepared_txids(const struct testpart *tp, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < tp->txs.cap && n < max; i++) {
		const struct txrec *r = &tp->txs.slots[i];
		if (r->txid && (r->flags & TX_PREPARED) && !(r->flags & (TX_COMMITTED | TX_ABORTED)))
			out[n++] = r->txid;
	}
	return n;
}

static void send_hello(struct testpart *tp)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;
	static uint64_t prepared[4096];

	h.role = TPC__ROLE__ROLE_PARTICIPANT;
	h.name = (char *)tp->name;
	h.protocol_version = TPC_PROTOCOL_VERSION;
	h.participant_id.data = tp->id.participant_id;
	h.participant_id.len = sizeof(tp->id.participant_id);
	h.incarnation = tp->id.incarnation;
	h.n_prepared_txids = prepared_txids(tp, prepared, 4096);
	h.prepared_txids = prepared;
	env.request_id = ++tp->next_req;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(tp, &env);
}

static void send_vote(struct testpart *tp, uint64_t txid, Tpc__VoteKind v, const char *reason)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote vote = TPC__VOTE__INIT;
	const struct txrec *r = tx_find(&tp->txs, txid);

	vote.txid = txid;
	vote.vote = v;
	vote.reason = (char *)(reason ? reason : "");
	/* D8: the incarnation that joined (kept in the P line), else this one. */
	vote.incarnation = r && r->inc ? r->inc : tp->id.incarnation;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &vote;
	send_env(tp, &env);
}

static void send_ack(struct testpart *tp, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Ack ack = TPC__ACK__INIT;

	ack.txid = txid;
	env.body_case = TPC__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	send_env(tp, &env);
}

static void send_join(struct testpart *tp, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Join j = TPC__JOIN__INIT;

	j.txid = txid;
	j.participant = (char *)tp->name;
	j.incarnation = tp->id.incarnation;
	env.request_id = pend_add(tp, REQ_JOIN, txid);
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &j;
	send_env(tp, &env);
}

static void send_query(struct testpart *tp, uint64_t txid, enum req_kind kind)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__StatusQuery q = TPC__STATUS_QUERY__INIT;

	q.txid = txid;
	env.request_id = pend_add(tp, kind, txid);
	env.body_case = TPC__ENVELOPE__BODY_STATUS_QUERY;
	env.status_query = &q;
	send_env(tp, &env);
}

/* ---- crash points ------------------------------------------------------------- */

static int crash_armed(const struct testpart *tp, enum crash_point at, uint64_t txid)
{
	return tp->crash_at == at && (tp->crash_txid == 0 || tp->crash_txid == txid);
}

/* Write all of [buf, buf+len) to a non-blocking socket before @p deadline. */
static void write_fully(evutil_socket_t fd, const char *buf, size_t len, uint64_t deadline)
{
	size_t off = 0;

	while (off < len && tpc_now_ms() < deadline) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			poll(&p, 1, 100);
		} else {
			return;
		}
	}
}

/*
 * Push everything queued for the coordinator into the socket, blocking up to 1 s. The
 * bufferevent freezes the start of its output buffer (no evbuffer_write or copyout from
 * outside), so peek at its chunks and write them ourselves; the process dies right
 * after, so the buffer is never drained.
 */
static void flush_output(struct testpart *tp)
{
	if (!tp->bev)
		return;
	struct evbuffer *out = bufferevent_get_output(tp->bev);
	evutil_socket_t fd = bufferevent_getfd(tp->bev);
	uint64_t deadline = tpc_now_ms() + 1000;
	int n = evbuffer_peek(out, -1, NULL, NULL, 0);
	struct evbuffer_iovec *v = calloc(n > 0 ? (size_t)n : 1, sizeof(*v));

	if (v && n > 0 && evbuffer_peek(out, -1, NULL, v, n) == n) {
		for (int i = 0; i < n; i++)
			write_fully(fd, v[i].iov_base, v[i].iov_len, deadline);
	}
	free(v);
}

static void crash_now(const char *point, uint64_t txid)
{
	say("crash %s %" PRIu64, point, txid);
	raise(SIGKILL);
}

/* ---- connection --------------------------------------------------------------- */

static void connect_now(struct testpart *tp);

static void fail_pending(struct testpart *tp)
{
	for (size_t i = 0; i < tp->npend; i++) {
		const struct pending *p = &tp->pend[i];
		if (p->kind == REQ_JOIN)
			say("join-error %" PRIu64 " ERR_UNAVAILABLE connection lost", p->txid);
		else if (p->kind == REQ_QUERY)
			say("error ERR_UNAVAILABLE connection lost (query %" PRIu64 ")", p->txid);
	}
	tp->npend = 0;
}

static void connection_lost(struct testpart *tp)
{
	uint32_t ms = tp->redirected ? tp->redirect_ms : coord_addrs_failed(&tp->addrs);
	struct timeval tv = tpc_ms_tv(ms);

	tp->redirected = 0;
	if (tp->bev)
		bufferevent_free(tp->bev);
	tp->bev = NULL;
	tp->ready = 0;
	tpc_frame_decoder_free(&tp->dec);
	tpc_frame_decoder_init(&tp->dec, TPC_FRAME_DEFAULT_MAX);
	fail_pending(tp);
	if (!tp->said_disconnected)
		say("disconnected");
	tp->said_disconnected = 1;
	if (tp->fatal) {
		say("fatal identity refused; not reconnecting");
		return;
	}
	evtimer_add(tp->retry_ev, &tv);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	connect_now(arg);
}

/* ---- prepare and decision ----------------------------------------------------- */

/* D7: 1 if the epoch is older than the highest seen (and say so); else remember it. */
static int stale_epoch(struct testpart *tp, uint64_t txid, uint64_t epoch)
{
	if (epoch < tp->epoch) {
		say("stale-epoch %" PRIu64 " %" PRIu64, txid, epoch);
		return 1;
	}
	tp->epoch = epoch;
	return 0;
}

static void vote_no(struct testpart *tp, uint64_t txid, const char *reason)
{
	send_vote(tp, txid, TPC__VOTE_KIND__VOTE_NO, reason);
	say("voted %" PRIu64 " NO", txid);
}

static void vote_yes(struct testpart *tp, struct txrec *r)
{
	uint64_t txid = r->txid;

	if (r->flags & TX_ABORTED) {
		vote_no(tp, txid, "test participant already discarded this transaction");
		return;
	}
	if (!(r->flags & (TX_PREPARED | TX_JOINED))) {
		vote_no(tp, txid, "test participant has no staged writes for it");
		return;
	}
	if (!(r->flags & TX_PREPARED)) {
		if (!r->inc)
			r->inc = tp->id.incarnation;
		state_append2(tp, 'P', txid, r->inc, 1); /* D2: durable before the vote */
		r->flags |= TX_PREPARED;
		if (crash_armed(tp, CRASH_AFTER_PREPARE_LOG, txid))
			crash_now("after-prepare-log", txid);
	}
	send_vote(tp, txid, TPC__VOTE_KIND__VOTE_YES, NULL);
	say("voted %" PRIu64 " YES", txid);
	if (crash_armed(tp, CRASH_AFTER_VOTE, txid)) {
		flush_output(tp);
		crash_now("after-vote", txid);
	}
}

static void on_prepare(struct testpart *tp, const Tpc__Prepare *m)
{
	if (stale_epoch(tp, m->txid, m->epoch))
		return;
	say("prepare %" PRIu64, m->txid);
	struct txrec *r = tx_get(tp, m->txid);
	switch (r->vote != VOTE_DEFAULT ? r->vote : tp->vote) {
	case VOTE_SILENT:
		say("silent %" PRIu64, m->txid);
		break;
	case VOTE_NO:
		vote_no(tp, m->txid, "test participant votes no");
		break;
	case VOTE_READONLY:
		send_vote(tp, m->txid, TPC__VOTE_KIND__VOTE_READ_ONLY, NULL);
		say("voted %" PRIu64 " READ_ONLY", m->txid);
		break;
	default:
		vote_yes(tp, r);
		break;
	}
}

/* D3: the C line is durable before anything acks it. */
static void apply(struct testpart *tp, struct txrec *r)
{
	state_append(tp, 'C', r->txid, 1);
	r->flags |= TX_COMMITTED;
	say("applied %" PRIu64, r->txid);
}

static void discard(struct testpart *tp, struct txrec *r)
{
	if (!(r->flags & TX_ABORTED))
		state_append(tp, 'A', r->txid, 0);
	r->flags |= TX_ABORTED;
	say("discarded %" PRIu64, r->txid);
}

static void on_commit(struct testpart *tp, struct txrec *r)
{
	if (r->flags & TX_ABORTED) {
		say("conflict %" PRIu64 " COMMIT-AFTER-ABORT", r->txid);
		return;
	}
	if ((r->flags & TX_COMMITTED) || !(r->flags & TX_PREPARED)) {
		say("duplicate %" PRIu64, r->txid);
	} else {
		apply(tp, r);
		if (crash_armed(tp, CRASH_AFTER_APPLY, r->txid))
			crash_now("after-apply", r->txid);
	}
	send_ack(tp, r->txid);
	say("acked %" PRIu64, r->txid);
}

static void on_decision(struct testpart *tp, const Tpc__Decision *m)
{
	if (stale_epoch(tp, m->txid, m->epoch))
		return;
	struct txrec *r = tx_get(tp, m->txid);
	if (m->decision == TPC__DECISION_KIND__DECISION_COMMIT)
		on_commit(tp, r);
	else if (r->flags & TX_COMMITTED)
		say("conflict %" PRIu64 " ABORT-AFTER-COMMIT", m->txid);
	else
		discard(tp, r);
}

/* ---- recovery ----------------------------------------------------------------- */

static void recover_all(struct testpart *tp)
{
	for (size_t i = 0; i < tp->txs.cap; i++) {
		const struct txrec *r = &tp->txs.slots[i];
		if (r->txid && (r->flags & TX_PREPARED) &&
		    !(r->flags & (TX_COMMITTED | TX_ABORTED)))
			send_query(tp, r->txid, REQ_RECOVER);
	}
}

static void recover_resolve(struct testpart *tp, uint64_t txid, Tpc__TxnStatus st)
{
	struct txrec *r = tx_get(tp, txid);

	if (r->flags & (TX_COMMITTED | TX_ABORTED))
		return; /* a Decision got here first */
	if (st == TPC__TXN_STATUS__STATUS_COMMITTED) {
		apply(tp, r);
	} else if (st == TPC__TXN_STATUS__STATUS_ABORTED) {
		discard(tp, r);
	} else {
		send_vote(tp, txid, TPC__VOTE_KIND__VOTE_YES, NULL);
		say("revoted %" PRIu64, txid);
	}
}

/* ---- replies ------------------------------------------------------------------ */

static void on_hello_reply(struct testpart *tp, const Tpc__HelloReply *m)
{
	if (m->epoch > tp->epoch)
		tp->epoch = m->epoch;
	tp->ready = 1;
	tp->said_disconnected = 0;
	coord_addrs_ok(&tp->addrs);
	say("ready %" PRIu64, m->epoch);
	recover_all(tp);
}

static const char *error_name(Tpc__ErrorCode code)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&tpc__error_code__descriptor, (int)code);
	return v ? v->name : "ERR_UNKNOWN";
}

static void on_error(struct testpart *tp, uint64_t request_id, const Tpc__Error *m)
{
	struct pending p;
	const char *code = m ? error_name(m->code) : "ERR_UNKNOWN";
	const char *msg = m && m->message ? m->message : "";

	if (pend_take(tp, request_id, &p) && p.kind == REQ_JOIN)
		say("join-error %" PRIu64 " %s %s", p.txid, code, msg);
	else
		say("error %s %s", code, msg);
	if (m && m->code == TPC__ERROR_CODE__ERR_IDENTITY)
		tp->fatal = 1; /* another folder owns the name, or this process was replaced */
	if (m && m->code == TPC__ERROR_CODE__ERR_NOT_LEADER) { /* a standby: go elsewhere */
		tp->redirect_ms = coord_addrs_not_leader(&tp->addrs, m->leader);
		tp->redirected = 1;
		tp->bad_input = 1;
	}
}

static void on_status_reply(struct testpart *tp, uint64_t request_id, const Tpc__StatusReply *m)
{
	struct pending p;

	if (!pend_take(tp, request_id, &p)) {
		tpc_logf(&tp->lg, TPC_LOG_WARN, "status reply for unknown request %" PRIu64,
			 request_id);
		return;
	}
	if (p.kind == REQ_RECOVER)
		recover_resolve(tp, m->txid, m->status);
	else
		say("status %" PRIu64 " %s", m->txid, tpc_wire_status_name(m->status));
}

static void on_join_reply(struct testpart *tp, uint64_t request_id, const Tpc__JoinReply *m)
{
	struct pending p;

	if (pend_take(tp, request_id, &p))
		say("joined %" PRIu64, p.txid);
	else
		say("joined %" PRIu64, m->txid);
}

static void dispatch(struct testpart *tp, const Tpc__Envelope *e)
{
	switch (e->body_case) {
	case TPC__ENVELOPE__BODY_HELLO_REPLY:
		on_hello_reply(tp, e->hello_reply);
		break;
	case TPC__ENVELOPE__BODY_JOIN_REPLY:
		on_join_reply(tp, e->request_id, e->join_reply);
		break;
	case TPC__ENVELOPE__BODY_STATUS_REPLY:
		on_status_reply(tp, e->request_id, e->status_reply);
		break;
	case TPC__ENVELOPE__BODY_ERROR:
		on_error(tp, e->request_id, e->error);
		break;
	case TPC__ENVELOPE__BODY_PREPARE:
		on_prepare(tp, e->prepare);
		break;
	case TPC__ENVELOPE__BODY_DECISION:
		on_decision(tp, e->decision);
		break;
	default:
		tpc_logf(&tp->lg, TPC_LOG_WARN, "ignoring unexpected %s",
			 tpc_wire_body_name(e->body_case));
	}
}

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct testpart *tp = arg;
	const char *why = NULL;
	Tpc__Envelope *e = tpc__envelope__unpack(NULL, len, body);

	if (!e) {
		tpc_logf(&tp->lg, TPC_LOG_ERROR, "undecodable frame from the coordinator");
		tp->bad_input = 1;
		return 1;
	}
	if (e->body_case != TPC__ENVELOPE__BODY_ERROR && tpc_wire_validate(e, &why) < 0)
		tpc_logf(&tp->lg, TPC_LOG_WARN, "ignoring invalid %s: %s",
			 tpc_wire_body_name(e->body_case), why);
	else
		dispatch(tp, e);
	tpc__envelope__free_unpacked(e, NULL);
	return 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct testpart *tp = arg;

	tp->bad_input = 0;
	int rc = tpc_wire_read(bufferevent_get_input(bev), &tp->dec, on_frame, tp);
	if (rc < 0)
		tpc_logf(&tp->lg, TPC_LOG_ERROR, "bad frame from the coordinator (%d)", rc);
	if (rc < 0 || tp->bad_input)
		connection_lost(tp);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct testpart *tp = arg;

	if (what & BEV_EVENT_CONNECTED) {
		send_hello(tp);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		connection_lost(tp);
}

static void connect_now(struct testpart *tp)
{
	char err[256];

	tp->addrlen = sizeof(tp->addr);
	if (tpc_parse_hostport(coord_addrs_current(&tp->addrs), &tp->addr, &tp->addrlen, err,
			       sizeof(err)) < 0) {
		connection_lost(tp);
		return;
	}
	tp->bev = bufferevent_socket_new(tp->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!tp->bev)
		die(tp, "bufferevent_socket_new");
	bufferevent_setcb(tp->bev, read_cb, NULL, event_cb, tp);
	bufferevent_enable(tp->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(tp->bev, (struct sockaddr *)&tp->addr, (int)tp->addrlen) < 0)
		connection_lost(tp);
}

/* ---- stdin commands ----------------------------------------------------------- */

static int parse_txid(const char *s, uint64_t *txid)
{
	char *end;

	if (!s)
		return -1;
	errno = 0;
	*txid = strtoull(s, &end, 10);
	return (errno || end == s || *end || *txid == 0) ? -1 : 0;
}

static int parse_vote(const char *s, enum vote_mode *v)
{
	static const char *const names[] = { "", "yes", "no", "readonly", "silent" };

	for (int i = VOTE_YES; s && i <= VOTE_SILENT; i++) {
		if (strcmp(s, names[i]) == 0) {
			*v = (enum vote_mode)i;
			return 0;
		}
	}
	return -1;
}

static void cmd_join(struct testpart *tp, uint64_t txid)
{
	if (!tp->ready) {
		say("join-error %" PRIu64 " ERR_UNAVAILABLE not connected", txid);
		return;
	}
	struct txrec *r = tx_get(tp, txid);
	r->flags |= TX_JOINED;
	if (!(r->flags & TX_PREPARED))
		r->inc = tp->id.incarnation;
	send_join(tp, txid);
}

static void cmd_query(struct testpart *tp, uint64_t txid)
{
	if (!tp->ready) {
		say("error ERR_UNAVAILABLE not connected (query %" PRIu64 ")", txid);
		return;
	}
	send_query(tp, txid, REQ_QUERY);
}

/* One command line; returns 1 to quit. */
static int command(struct testpart *tp, char *line)
{
	char *save = NULL;
	char *verb = strtok_r(line, " \t\r", &save);
	char *a1 = strtok_r(NULL, " \t\r", &save);
	char *a2 = strtok_r(NULL, " \t\r", &save);
	uint64_t txid = 0;
	enum vote_mode v;

	if (!verb)
		return 0;
	if (strcmp(verb, "quit") == 0)
		return 1;
	if (strcmp(verb, "join") == 0 && !parse_txid(a1, &txid) && !a2)
		cmd_join(tp, txid);
	else if (strcmp(verb, "query") == 0 && !parse_txid(a1, &txid) && !a2)
		cmd_query(tp, txid);
	else if (strcmp(verb, "vote") == 0 && !parse_txid(a1, &txid) && !parse_vote(a2, &v)) {
		tx_get(tp, txid)->vote = (uint8_t)v;
		say("vote-set %" PRIu64 " %s", txid, a2);
	} else {
		say("bad-command %s%s%s%s%s", verb, a1 ? " " : "", a1 ? a1 : "", a2 ? " " : "",
		    a2 ? a2 : "");
	}
	return 0;
}

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct testpart *tp = arg;
	int n = evbuffer_read(tp->stdin_buf, fd, 4096);
	char *line;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	while ((line = evbuffer_readln(tp->stdin_buf, NULL, EVBUFFER_EOL_LF))) {
		int quit = command(tp, line);
		free(line);
		if (quit)
			goto out_quit;
	}
	if (n > 0)
		return;
	/* EOF (or a read error): a last line without a newline still counts. */
	size_t rest = evbuffer_get_length(tp->stdin_buf);
	if (rest) {
		line = calloc(1, rest + 1);
		if (line && evbuffer_remove(tp->stdin_buf, line, rest) >= 0)
			command(tp, line);
		free(line);
	}
out_quit:
	event_base_loopbreak(tp->base);
}

/* ---- command line and main ---------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: tpc-testpart --coordinator HOST:PORT[,HOST:PORT...] --name NAME --state FILE\n"
	      "                    [--participant-id HEX32] [--vote yes|no|readonly|silent]\n"
	      "                    [--crash-at after-prepare-log|after-vote|after-apply]\n"
	      "                    [--crash-txid N]\n"
	      "A durable test participant for tpc-coordinator tests.\n"
	      "stdin commands: join TXID | vote TXID yes|no|readonly|silent | query TXID | quit\n"
	      "stdout events:  ready EPOCH | disconnected | joined TXID |\n"
	      "                join-error TXID CODE MESSAGE | vote-set TXID VOTE |\n"
	      "                status TXID PENDING|COMMITTED|ABORTED | prepare TXID |\n"
	      "                voted TXID YES|NO|READ_ONLY | silent TXID | stale-epoch TXID EPOCH |\n"
	      "                applied TXID | duplicate TXID | acked TXID | discarded TXID |\n"
	      "                revoted TXID | conflict TXID WHAT | crash POINT TXID |\n"
	      "                error CODE MESSAGE | bad-command LINE | fatal WHY\n"
	      "--participant-id: 32 hex digits (default: derived from the name)\n",
	      f);
}

static int parse_crash(const char *s, enum crash_point *c)
{
	if (strcmp(s, "after-prepare-log") == 0)
		*c = CRASH_AFTER_PREPARE_LOG;
	else if (strcmp(s, "after-vote") == 0)
		*c = CRASH_AFTER_VOTE;
	else if (strcmp(s, "after-apply") == 0)
		*c = CRASH_AFTER_APPLY;
	else
		return -1;
	return 0;
}

/* 0 to run, 1 to exit 0 (--help), -1 to exit 2 (bad usage). */
static int parse_args(struct testpart *tp, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "coordinator", required_argument, NULL, 'c' }, { "name", required_argument, NULL, 'n' },
		{ "state", required_argument, NULL, 's' },       { "vote", required_argument, NULL, 'v' },
		{ "crash-at", required_argument, NULL, 'k' },    { "crash-txid", required_argument, NULL, 't' },
		{ "participant-id", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },              { NULL, 0, NULL, 0 },
	};
	int c, bad = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': tp->coord = optarg; break;
		case 'n': tp->name = optarg; break;
		case 's': tp->state_path = optarg; break;
		case 'v': bad |= parse_vote(optarg, &tp->vote); break;
		case 'k': bad |= parse_crash(optarg, &tp->crash_at); break;
		case 't': bad |= parse_txid(optarg, &tp->crash_txid); break;
		case 'i':
			bad |= tpc_wc_parse_participant_id(optarg, tp->id.participant_id);
			tp->have_id = 1;
			break;
		case 'h': usage(stdout); return 1;
		default: bad = -1; break;
		}
	}
	if (bad || optind != argc || !tp->coord || !tp->name || !tp->name[0] || !tp->state_path)
		return -1;
	if (!tp->have_id)
		tpc_wc_default_identity(tp->name, &tp->id);
	tp->id.incarnation = 0; /* from the state file */
	return 0;
}

static int setup_loop(struct testpart *tp)
{
	tp->base = event_base_new();
	tp->stdin_buf = evbuffer_new();
	if (!tp->base || !tp->stdin_buf)
		return -1;
	tp->retry_ev = evtimer_new(tp->base, retry_cb, tp);
	tp->stdin_ev = event_new(tp->base, STDIN_FILENO, EV_READ | EV_PERSIST, stdin_cb, tp);
	if (!tp->retry_ev || !tp->stdin_ev)
		return -1;
	if (event_add(tp->stdin_ev, NULL) < 0)
		tpc_logf(&tp->lg, TPC_LOG_WARN, "stdin cannot be polled; commands disabled");
	return 0;
}

static void teardown(struct testpart *tp)
{
	if (tp->bev)
		bufferevent_free(tp->bev);
	if (tp->stdin_ev)
		event_free(tp->stdin_ev);
	if (tp->retry_ev)
		event_free(tp->retry_ev);
	if (tp->stdin_buf)
		evbuffer_free(tp->stdin_buf);
	if (tp->base)
		event_base_free(tp->base);
	tpc_frame_decoder_free(&tp->dec);
	if (tp->state_fd >= 0)
		close(tp->state_fd);
	free(tp->txs.slots);
	free(tp->pend);
}

int main(int argc, char **argv)
{
	struct testpart tp = { .lg = { "tpc-testpart", TPC_LOG_INFO }, .vote = VOTE_YES,
			       .state_fd = -1 };
	char err[128];
	int rc = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	int how = parse_args(&tp, argc, argv);
	if (how != 0) {
		if (how < 0)
			usage(stderr);
		return how > 0 ? 0 : 2;
	}
	tp.addrlen = sizeof(tp.addr);
	if (coord_addrs_parse(&tp.addrs, tp.coord, BACKOFF_MIN_MS, BACKOFF_MAX_MS,
			      (uint64_t)getpid(), err, sizeof(err)) ||
	    tpc_parse_hostport(coord_addrs_current(&tp.addrs), &tp.addr, &tp.addrlen, err,
			       sizeof(err)) < 0) {
		tpc_logf(&tp.lg, TPC_LOG_ERROR, "--coordinator %s: %s", tp.coord, err);
		return 2;
	}
	tpc_frame_decoder_init(&tp.dec, TPC_FRAME_DEFAULT_MAX);
	state_load(&tp);
	if (setup_loop(&tp) < 0) {
		tpc_logf(&tp.lg, TPC_LOG_ERROR, "cannot set up the event loop");
		goto out_teardown;
	}
	connect_now(&tp);
	event_base_dispatch(tp.base);
	rc = 0;
out_teardown:
	teardown(&tp);
	return rc;
}
