/*
 * participant.c - libtpc's participant API (tpc/participant.h, tpc/libevent.h):
 * creating a participant and recovering its prepared transactions, attaching it to a
 * loop or running it on a thread of its own, staging writes, and shutting down.
 *
 * D8: tpc_participant_new() locks the state folder (one process per folder) and opens
 * it as a new incarnation of the folder's participant id before anything is sent.
 *
 * Background-thread mode: other threads never touch the participant's state; they
 * queue a struct loop_call, poke an eventfd, and wait on a condition variable while the
 * loop thread runs the call.
 */
#include "part_int.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "tpc/libevent.h"
#include "sink_int.h"
#include "tls.h"

/* The documented defaults (tpc/participant.h), the one place they are written: what
 * tpc_participant_config_init() gives and what a zero field stands for. */
static const tpc_participant_config part_defaults = {
	.txn_timeout_ms = 60000,
	.max_open_txns = 100000,
	.max_staged_bytes = 256ull << 20,
	.group_commit_max = 4096,
	.max_frame = TPC_FRAME_DEFAULT_MAX,
	.map_size = 1ull << 30,
	.max_epoch_jump = PART_DEFAULT_MAX_EPOCH_JUMP,
	.unreachable_timeout_ms = 5000,
};

void tpc_participant_config_init(tpc_participant_config *cfg)
{
	*cfg = part_defaults;
}

void part_config_resolve(tpc_participant_config *cfg)
{
	if (!cfg->txn_timeout_ms)
		cfg->txn_timeout_ms = part_defaults.txn_timeout_ms;
	if (!cfg->max_open_txns)
		cfg->max_open_txns = part_defaults.max_open_txns;
	if (!cfg->max_staged_bytes)
		cfg->max_staged_bytes = part_defaults.max_staged_bytes;
	if (!cfg->group_commit_max)
		cfg->group_commit_max = part_defaults.group_commit_max;
	if (!cfg->max_frame)
		cfg->max_frame = part_defaults.max_frame;
	if (!cfg->map_size)
		cfg->map_size = part_defaults.map_size;
	if (!cfg->max_epoch_jump)
		cfg->max_epoch_jump = part_defaults.max_epoch_jump;
	if (!cfg->unreachable_timeout_ms)
		cfg->unreachable_timeout_ms = part_defaults.unreachable_timeout_ms;
}

const char *tpc_participant_errmsg(const tpc_participant *p)
{
	return p ? p->errmsg : "no participant";
}

/* A copy of @p s in @p *out (NULL stays NULL). 0, or -ENOMEM. */
static int dup_opt(char **out, const char *s)
{
	*out = s ? strdup(s) : NULL;
	return s && !*out ? -ENOMEM : 0;
}

/* TLS files given: the client context (TPC_ETLS with the reason in errmsg). */
static int open_tls(struct tpc_participant *p)
{
	struct tpc_tls_files f = { p->tls_cert, p->tls_key, p->tls_ca };

	if (!tpc_tls_files_given(&f))
		return 0;
	p->tls = tpc_tls_ctx_new(TPC_TLS_CLIENT, &f, p->errmsg, sizeof(p->errmsg));
	return p->tls ? 0 : TPC_ETLS;
}

static int copy_config(struct tpc_participant *p, const tpc_participant_config *cfg)
{
	if (!cfg->coordinator || !cfg->name || !cfg->name[0] || !cfg->state_dir)
		return -EINVAL;
	p->cfg = *cfg;
	p->coordinator = strdup(cfg->coordinator);
	p->name = strdup(cfg->name);
	p->state_dir = strdup(cfg->state_dir);
	if (!p->coordinator || !p->name || !p->state_dir)
		return -ENOMEM;
	if (dup_opt(&p->tls_cert, cfg->tls_cert) || dup_opt(&p->tls_key, cfg->tls_key) ||
	    dup_opt(&p->tls_ca, cfg->tls_ca))
		return -ENOMEM;
	p->cfg.tls_cert = p->tls_cert;
	p->cfg.tls_key = p->tls_key;
	p->cfg.tls_ca = p->tls_ca;
	p->cfg.coordinator = p->coordinator;
	p->cfg.name = p->name;
	p->cfg.state_dir = p->state_dir;
	part_config_resolve(&p->cfg);
	p->tcfg.txn_timeout_ms = p->cfg.txn_timeout_ms;
	p->tcfg.query_initial_ms = 2000;
	/* An ABORT is never resent (presumed abort), so after a partition heals a prepared
	 * transaction learns its fate at its next StatusQuery: the cap bounds how long it
	 * stays in doubt after healing (the torture runner's quiet bound is 10 s:
	 * docs/failure-injection.md). It was 30 s, which left transactions prepared for up
	 * to 30 s after a long partition healed. */
	p->tcfg.query_max_ms = 4000;
	p->tcfg.apply_retry_ms = 1000;
	/* An EXPIRED tombstone normally ends on the ABORT or the StatusQuery answer that
	 * follows its NO vote; this only bounds it when neither ever comes. */
	p->tcfg.tombstone_ms = p->tcfg.txn_timeout_ms > 300000 ? 2 * p->tcfg.txn_timeout_ms
								: 600000;
	p->tcfg.max_epoch_jump = p->cfg.max_epoch_jump;
	return 0;
}

/* Recovery: every PREPARED record becomes a PREPARED transaction that asks. */
static int recover_one(void *arg, const struct part_log_put *r)
{
	struct tpc_participant *p = arg;
	struct ptxn *t = calloc(1, sizeof(*t));
	tpc_write *w;
	size_t n;
	int rc = part_blob_decode(r->blob, r->blob_len, &w, &n);
	uint64_t txid = r->txid;

	if (!t || rc) {
		free(t);
		return rc ? rc : -ENOMEM;
	}
	part_txn_init_recovered(&t->m, txid, tpc_now_ms(), r->wall_ms);
	t->logged = 1;
	t->incarnation = r->incarnation; /* its YES is the joining incarnation's (D8) */
	for (size_t i = 0; !rc && i < n; i++)
		rc = part_blob_add(&t->blob, w[i].key, w[i].key_len, w[i].value, w[i].value_len);
	free(w);
	if (rc || u64map_put(&p->txns, txid, t)) {
		part_blob_free(&t->blob);
		free(t);
		return -ENOMEM;
	}
	p->staged_bytes += part_blob_payload(&t->blob); /* part_txn_free() takes it back */
	p->stats.recovered++;
	return 0;
}

/* Two LMDB environments on one file in one process break LMDB's locking: an LMDB sink
 * must not live in the state folder. */
static int check_sink_folder(struct tpc_participant *p)
{
	const char *dir = tpc_sink_lmdb_dir(p->sink);
	struct stat a, b;

	if (!dir || stat(dir, &a) != 0 || stat(p->state_dir, &b) != 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino)
		return 0;
	part_set_err(p, "the LMDB sink's folder %s is the state folder: give the sink a folder "
		     "of its own", dir);
	return -EINVAL;
}

static int open_state(struct tpc_participant *p)
{
	char err[256];
	int rc = check_sink_folder(p);

	if (rc)
		return rc;
	rc = part_log_lmdb_open(&p->store, p->state_dir, p->cfg.map_size, err, sizeof(err));
	if (rc) {
		part_set_err(p, "%s", err);
		return rc;
	}
	p->store.ops->identity(p->store.self, p->id, &p->incarnation);
	rc = p->store.ops->read_epoch(p->store.self, &p->highest_epoch);
	if (!rc)
		rc = p->store.ops->load(p->store.self, recover_one, p);
	if (!rc && p->stats.recovered)
		part_logf(p, TPC_LOG_INFO, "recovered %llu prepared transaction(s); asking the "
			  "coordinator how each ended", (unsigned long long)p->stats.recovered);
	if (rc == TPC_EVERSION)
		part_set_err(p, "%s holds PREPARED records written by an older libtpc, without "
			     "the incarnation that joined them: let that version resolve them "
			     "(until `tpc-kv --prepared` lists none) before upgrading", p->state_dir);
	else if (rc)
		part_set_err(p, "cannot load prepared transactions from %s: %s", p->state_dir,
			     tpc_strerror(rc));
	return rc;
}

/* A fired fault's line: only through cfg.log, like every other line of the library. */
static void fault_log(void *arg, const char *msg)
{
	part_logf(arg, TPC_LOG_WARN, "%s", msg);
}

/* Test-only fault points (tpc_participant_config.faults); never the environment. */
static int arm_faults(struct tpc_participant *p, const char *spec)
{
	int rc;

	p->cfg.faults = NULL; /* the caller's string: not kept */
	tpc_faults_set_log(&p->faults, fault_log, p);
	rc = tpc_faults_arm(&p->faults, spec, p->errmsg, sizeof(p->errmsg));
	if (rc)
		part_logf(p, TPC_LOG_ERROR, "faults: %s", p->errmsg);
	else if (p->faults.armed)
		part_logf(p, TPC_LOG_WARN, "fault injection armed: %s", spec);
	return rc;
}

static void hex_id(const uint8_t id[PART_ID_LEN], char out[2 * PART_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < PART_ID_LEN; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 15];
	}
	out[2 * PART_ID_LEN] = '\0';
}

int tpc_participant_identity(const tpc_participant *p, char id_hex[33], uint64_t *incarnation)
{
	if (!p || !p->store.ops)
		return -EINVAL;
	if (id_hex)
		hex_id(p->id, id_hex);
	if (incarnation)
		*incarnation = p->incarnation;
	return 0;
}

int tpc_participant_fatal(const tpc_participant *p)
{
	return p ? __atomic_load_n(&p->fatal, __ATOMIC_ACQUIRE) : -EINVAL;
}

/* cfg.coordinator: one address or a list, each resolvable now (each is resolved again
 * at every connect, as is a leader a standby names). */
static int parse_coordinators(struct tpc_participant *p, char *why, size_t whylen)
{
	uint64_t seed = tpc_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)p;

	if (coord_addrs_parse(&p->addrs, p->coordinator, PART_RECONNECT_MIN_MS,
			      PART_RECONNECT_MAX_MS, seed, why, whylen))
		return -EINVAL;
	for (size_t i = 0; i < p->addrs.n; i++)
		if (tpc_parse_hostport(p->addrs.list[i], &p->addr, &p->addrlen, why, whylen))
			return -EINVAL;
	return 0;
}

tpc_participant *tpc_participant_new(const tpc_participant_config *cfg, tpc_sink *sink,
				     int *err)
{
	struct tpc_participant *p = calloc(1, sizeof(*p));
	char why[128];
	int rc = -ENOMEM;

	if (!p || !sink)
		goto fail;
	p->sink = sink;
	p->wake_fd = -1;
	u64map_init(&p->txns);
	u64map_init(&p->asks);
	deadline_timer_init(&p->deadlines, part_deadline_armed, part_deadline_fire, p);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	tpc_faults_init(&p->faults, "libtpc");
	tpc_arena_init(&p->arena, 16 * 1024);
	rc = copy_config(p, cfg);
	if (rc)
		goto fail;
	if (parse_coordinators(p, why, sizeof(why))) {
		part_set_err(p, "%s", why);
		rc = -EINVAL;
		goto fail;
	}
	rc = open_tls(p);
	if (!rc)
		rc = arm_faults(p, cfg->faults);
	if (!rc)
		rc = open_state(p);
	if (rc)
		goto fail;
	char id[2 * PART_ID_LEN + 1];
	hex_id(p->id, id);
	part_logf(p, TPC_LOG_INFO, "participant %s: id %s, incarnation %llu", p->name, id,
		  (unsigned long long)p->incarnation);
	return p;
fail:
	if (err)
		*err = rc;
	if (p && p->name && p->errmsg[0]) /* the handle goes: say why where the host looks */
		part_logf(p, TPC_LOG_ERROR, "%s", p->errmsg);
	if (p)
		tpc_participant_free(p);
	else
		tpc_sink_free(sink);
	return NULL;
}

/* Put every recovered transaction's first deadline in the heap. */
static void arm_all(struct tpc_participant *p)
{
	struct u64map_iter it;

	for (struct ptxn *t = u64map_iter_first(&it, &p->txns); t; t = u64map_iter_next(&it))
		deadline_timer_set(&p->deadlines, t->m.txid, part_txn_next_deadline(&t->m),
				   &t->m.armed_ms);
	u64map_iter_end(&it);
}

/* Undo what attach made on @p base, leaving the participant unattached (attach may be
 * called again; the caller's base is the caller's). */
static void detach(struct tpc_participant *p)
{
	part_net_stop(p);
	lazy_queue_free(&p->lazy, NULL); /* nothing waits: no work was taken yet */
	if (p->deadlines.ev) /* its heap stays: arm_all() fills it again at the next attach */
		event_free(p->deadlines.ev);
	p->deadlines.ev = NULL;
	p->deadlines.at_ms = 0;
	if (p->sink_writer)
		batch_writer_free(p->sink_writer);
	if (p->writer)
		batch_writer_free(p->writer);
	p->sink_writer = p->writer = NULL;
	p->base = NULL;
}

int tpc_participant_attach(tpc_participant *p, struct event_base *base)
{
	int rc = -ENOMEM;

	if (p->base)
		return TPC_ESTATE;
	p->base = base;
	p->writer = batch_writer_new(base, part_log_writer_write, part_writer_done, p,
				     p->cfg.group_commit_max);
	p->sink_writer = batch_writer_new(base, part_sink_writer_write, part_writer_done, p,
					  p->cfg.group_commit_max);
	if (p->writer) /* rule D6: a PREPARED batch waits for the next sync */
		batch_writer_set_sync(p->writer, part_log_writer_sync);
	/* With cfg.inline_sync a lone PREPARED record is forced on the loop thread (the
	 * sink's commits stay on its writer thread: a sink may not expect the loop's). */
	rc = -ENOMEM;
	if (!p->writer || !p->sink_writer ||
	    (p->cfg.inline_sync && batch_writer_set_inline(p->writer, base)) ||
	    lazy_queue_init(&p->lazy, base, p->writer, PART_LAZY_FLUSH_MS, PART_LAZY_MAX,
			    part_on_lazy_timer, p) ||
	    deadline_timer_attach(&p->deadlines, base))
		goto out_detach;
	rc = part_net_start(p);
	if (rc)
		goto out_detach;
	arm_all(p);
	return 0;
out_detach:
	detach(p);
	part_set_err(p, "cannot attach to the event loop: %s", tpc_strerror(rc));
	return rc;
}

/* ---- background-thread mode ---- */

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct tpc_participant *p = arg;
	uint64_t v;

	if (read(p->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&p->mu);
	struct loop_call *calls = p->calls;
	p->calls = NULL;
	pthread_mutex_unlock(&p->mu);
	for (struct loop_call *c = calls, *next; c; c = next) {
		next = c->next;
		c->fn(p, c->arg); /* the call marks itself done and signals */
	}
	if (p->stopping)
		event_base_loopbreak(p->base);
}

/* The loop thread writes to the coordinator's socket: a write after the peer reset it
 * raises SIGPIPE in the writing thread, which would kill a host that does not ignore
 * it. Blocked here, it stays pending on this thread and the write fails with EPIPE. */
static void *loop_main(void *arg)
{
	struct tpc_participant *p = arg;
	sigset_t pipe;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	event_base_loop(p->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int tpc_participant_start(tpc_participant *p)
{
	int rc = -ENOMEM;

	if (p->base)
		return TPC_ESTATE;
	struct event_base *base = event_base_new();
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wake_fd < 0)
		rc = -errno;
	if (!base || p->wake_fd < 0)
		goto out_free;
	p->wake_ev = event_new(base, p->wake_fd, EV_READ | EV_PERSIST, on_wake, p);
	if (!p->wake_ev || event_add(p->wake_ev, NULL))
		goto out_free;
	rc = tpc_participant_attach(p, base);
	if (rc)
		goto out_free;
	p->own_base = 1;
	rc = -pthread_create(&p->thread, NULL, loop_main, p); /* it returns the code */
	if (rc) {
		p->own_base = 0;
		detach(p);
		part_set_err(p, "cannot start the loop thread: %s", tpc_strerror(rc));
		goto out_free;
	}
	p->thread_running = 1;
	return 0;
out_free:
	if (p->wake_ev)
		event_free(p->wake_ev);
	p->wake_ev = NULL;
	if (base)
		event_base_free(base);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	p->wake_fd = -1;
	return rc;
}

/* Run c->fn on the loop thread and wait for it (background-thread mode only). Returns
 * 0 once it ran, or -errno when the loop could not be woken: then it never runs. */
static int call_on_loop(struct tpc_participant *p, struct loop_call *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&p->mu);
	c->next = p->calls;
	p->calls = c;
	pthread_mutex_unlock(&p->mu);
	/* EAGAIN: the counter is full, so the loop is woken already. */
	int rc = write(p->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN ? -errno : 0;
	pthread_mutex_lock(&p->mu);
	if (rc) { /* take c back unless another caller's wake-up took it to the loop */
		struct loop_call **pp = &p->calls;
		while (*pp && *pp != c)
			pp = &(*pp)->next;
		if (*pp)
			*pp = c->next;
		else
			rc = 0;
	}
	while (!rc && !c->done)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static void call_done(struct tpc_participant *p, struct loop_call *c)
{
	pthread_mutex_lock(&p->mu);
	c->done = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* ---- staging ---- */

static int stage_limits(struct tpc_participant *p, struct ptxn *t, size_t bytes)
{
	if (p->fatal) {
		part_set_err(p, "the coordinator refused this participant's identity");
		return p->fatal;
	}
	if (!t && p->unreachable) {
		part_set_err(p, "the coordinator at %s has been unreachable for %llu ms (%s)",
			     p->coordinator, (unsigned long long)(tpc_now_ms() - p->down_since_ms),
			     p->net_err[0] ? p->net_err : "no connection");
		return TPC_EUNREACHABLE;
	}
	if (!t && p->draining) {
		part_set_err(p, "the participant is draining: it takes no new transactions");
		return TPC_ESTATE;
	}
	if (!t && p->txns.n - p->ntombstones >= p->cfg.max_open_txns) {
		part_set_err(p, "too many open transactions (max %u)", p->cfg.max_open_txns);
		return TPC_ELIMIT;
	}
	if (p->staged_bytes + bytes > p->cfg.max_staged_bytes) {
		part_set_err(p, "staged bytes limit reached");
		return TPC_ELIMIT;
	}
	return 0;
}

/* The transaction a write goes to: a new one joins (with @p token), an existing one
 * must take the write (its state, and the same token: part_txn.c). */
static int stage_txn(struct tpc_participant *p, tpc_txid txid, const uint8_t *token,
		     struct ptxn **tp)
{
	struct ptxn *t = *tp;

	if (t) {
		struct part_event ev = { .type = PEV_STAGE, .token = token };
		int rc = part_txn_step(&t->m, &p->tcfg, &ev, tpc_now_ms(), &p->highest_epoch,
				       &(struct part_actions){ 0 });
		if (rc == TPC_EDENIED)
			part_set_err(p, "txid %llu: the write's transaction token is not the one "
				     "the transaction was joined with", (unsigned long long)txid);
		return rc;
	}
	t = part_txn_new(p, txid);
	if (!t)
		return -ENOMEM;
	p->stats.joined++;
	part_step(p, t, &(struct part_event){ .type = PEV_BEGIN, .token = token,
					      .connected = p->connected }); /* the Join */
	*tp = t;
	return 0;
}

int tpc_participant_stage_token(tpc_participant *p, tpc_txid txid, const uint8_t *token,
				size_t token_len, const void *key, size_t key_len,
				const void *value, size_t value_len, tpc_stage_cb cb, void *arg)
{
	struct ptxn *t;
	int rc;

	if (!txid || !key || !key_len || !cb || (token ? token_len != TPC_TXN_TOKEN_LEN
						       : token_len != 0))
		return -EINVAL;
	if (!p->base)
		return TPC_ESTATE;
	t = u64map_get(&p->txns, txid);
	rc = stage_limits(p, t, key_len + value_len);
	if (rc)
		return rc;
	rc = stage_txn(p, txid, token, &t);
	if (rc)
		return rc;
	rc = part_blob_add(&t->blob, key, key_len, value, value_len);
	if (rc)
		goto undo;
	p->staged_bytes += key_len + value_len;
	if (t->m.state == PS_ACTIVE) {
		cb(arg, 0, txid);
		return 0;
	}
	struct stage_waiter *w = malloc(sizeof(*w));
	if (!w) {
		rc = -ENOMEM;
		goto undo;
	}
	*w = (struct stage_waiter){ t->waiters, cb, arg };
	t->waiters = w;
	if (t->m.armed_ms == 0)
		part_step(p, t, &(struct part_event){ .type = PEV_STAGE }); /* arms expiry */
	return 0;
undo:
	if (t->blob.count == 0) /* the transaction has nothing: drop it */
		part_txn_free(p, t);
	return rc;
}

int tpc_participant_stage(tpc_participant *p, tpc_txid txid, const void *key, size_t key_len,
			  const void *value, size_t value_len, tpc_stage_cb cb, void *arg)
{
	return tpc_participant_stage_token(p, txid, NULL, 0, key, key_len, value, value_len, cb,
					   arg);
}

struct stage_call {
	struct loop_call call;
	struct tpc_participant *p;
	tpc_txid txid;
	const uint8_t *token;
	size_t token_len;
	const void *key, *value;
	size_t key_len, value_len;
	int result;
	int finished; /* the stage callback ran */
	int returned; /* tpc_participant_stage() returned */
};

static void stage_call_cb(void *arg, int err, tpc_txid txid)
{
	struct stage_call *sc = arg;

	sc->result = err;
	sc->finished = 1;
	if (sc->returned)
		call_done(sc->p, &sc->call);
}

static void stage_call_run(struct tpc_participant *p, void *arg)
{
	struct stage_call *sc = arg;
	int rc = tpc_participant_stage_token(p, sc->txid, sc->token, sc->token_len, sc->key,
					     sc->key_len, sc->value, sc->value_len, stage_call_cb,
					     sc);

	sc->returned = 1;
	if (rc)
		sc->result = rc;
	if (rc || sc->finished)
		call_done(p, &sc->call);
}

int tpc_participant_stage_wait(tpc_participant *p, tpc_txid txid, const void *key,
			       size_t key_len, const void *value, size_t value_len)
{
	return tpc_participant_stage_token_wait(p, txid, NULL, 0, key, key_len, value,
						value_len);
}

int tpc_participant_stage_token_wait(tpc_participant *p, tpc_txid txid, const uint8_t *token,
				     size_t token_len, const void *key, size_t key_len,
				     const void *value, size_t value_len)
{
	struct stage_call sc = { .p = p, .txid = txid, .token = token, .token_len = token_len,
				 .key = key, .key_len = key_len, .value = value,
				 .value_len = value_len };

	if (!p->own_base)
		return TPC_ESTATE;
	sc.call.fn = stage_call_run;
	sc.call.arg = &sc;
	int rc = call_on_loop(p, &sc.call);
	if (rc) {
		part_set_err(p, "cannot wake the loop thread: %s", tpc_strerror(rc));
		return rc;
	}
	return sc.result;
}

/* ---- inspection ---- */

struct list_call {
	struct loop_call call;
	tpc_prepared_info *v;
	size_t n;
	int rc;
};

static void list_run(struct tpc_participant *p, void *arg)
{
	struct list_call *lc = arg;
	size_t k = 0;
	struct u64map_iter it;
	struct ptxn *t;
	uint64_t now = tpc_wall_ms();

	lc->v = calloc(p->txns.n ? p->txns.n : 1, sizeof(*lc->v));
	if (!lc->v) {
		lc->rc = -ENOMEM;
		goto out;
	}
	for (t = u64map_iter_first(&it, &p->txns); t; t = u64map_iter_next(&it)) {
		if (t->m.state != PS_PREPARED && t->m.state != PS_APPLYING)
			continue;
		tpc_prepared_info *info = &lc->v[k++];
		info->txid = t->m.txid;
		info->age_ms = now > t->m.prepared_wall_ms ? now - t->m.prepared_wall_ms : 0;
		info->nrecords = t->blob.count;
		info->bytes = part_blob_payload(&t->blob);
		info->queries = t->m.queries;
	}
	u64map_iter_end(&it);
	if (it.nomem)
		lc->rc = -ENOMEM;
	lc->n = k;
out:
	if (lc->rc) {
		free(lc->v);
		lc->v = NULL;
	}
	if (p->own_base)
		call_done(p, &lc->call);
}

int tpc_participant_list_prepared(tpc_participant *p, tpc_prepared_info **out, size_t *n)
{
	struct list_call lc = { .call = { .fn = list_run } };

	lc.call.arg = &lc;
	if (p->own_base && p->thread_running) {
		int rc = call_on_loop(p, &lc.call);
		if (rc) {
			part_set_err(p, "cannot wake the loop thread: %s", tpc_strerror(rc));
			*out = NULL;
			*n = 0;
			return rc;
		}
	} else
		list_run(p, &lc);
	*out = lc.v;
	*n = lc.n;
	if (!lc.n) {
		free(lc.v);
		*out = NULL;
	}
	return lc.rc;
}

int tpc_participant_list_prepared_dir(const char *state_dir, tpc_prepared_info **out, size_t *n)
{
	return part_log_list_dir(state_dir, out, n);
}

struct stats_call {
	struct loop_call call;
	tpc_participant_stats *out;
};

static void stats_run(struct tpc_participant *p, void *arg)
{
	struct stats_call *sc = arg;
	struct bw_stats bs = { 0 };

	if (p->writer)
		batch_writer_stats(p->writer, &bs);
	if (p->sink_writer) {
		struct bw_stats ss;
		batch_writer_stats(p->sink_writer, &ss);
		bs.batches += ss.batches;
	}
	*sc->out = p->stats;
	sc->out->log_batches = bs.batches;
	sc->out->highest_epoch = p->highest_epoch;
	if (p->store.ops && p->store.ops->syncs)
		sc->out->log_syncs = p->store.ops->syncs(p->store.self);
	sc->out->sink_syncs = tpc_sink_syncs(p->sink);
	if (p->own_base)
		call_done(p, &sc->call);
}

void tpc_participant_get_stats(tpc_participant *p, tpc_participant_stats *out)
{
	struct stats_call sc = { .call = { .fn = stats_run }, .out = out };

	sc.call.arg = &sc;
	if (!(p->own_base && p->thread_running))
		stats_run(p, &sc);
	else if (call_on_loop(p, &sc.call))
		memset(out, 0, sizeof(*out)); /* the loop could not be reached: nothing known */
}

/* ---- draining ---- */

#define DRAIN_POLL_MS 10

/* What keeps a drain waiting: transactions not yet finished (EXPIRED tombstones only
 * wait for an answer and hold nothing), and frames (an Ack) not yet on the wire. */
struct drain_view {
	size_t busy;      /* JOINING, ACTIVE, LOGGING, PREPARED, APPLYING */
	size_t in_doubt;  /* LOGGING, PREPARED, APPLYING: a YES given or being given */
	size_t unsent;    /* bytes in the coordinator connection's output buffer */
};

struct drain_call {
	struct loop_call call;
	struct drain_view v;
};

static void drain_look(struct tpc_participant *p, void *arg)
{
	struct drain_call *dc = arg;
	struct u64map_iter it;

	p->draining = 1;
	dc->v = (struct drain_view){ 0 };
	for (struct ptxn *t = u64map_iter_first(&it, &p->txns); t; t = u64map_iter_next(&it)) {
		if (t->m.state == PS_EXPIRED)
			continue;
		dc->v.busy++;
		dc->v.in_doubt += t->m.state >= PS_LOGGING && t->m.state <= PS_APPLYING;
	}
	u64map_iter_end(&it);
	dc->v.unsent = part_net_unsent(p);
	if (p->own_base && p->thread_running)
		call_done(p, &dc->call);
}

/* One look at the participant, from any thread. */
static int drain_poll(struct tpc_participant *p, struct drain_view *v)
{
	struct drain_call dc = { .call = { .fn = drain_look } };
	int rc = 0;

	dc.call.arg = &dc;
	if (p->own_base && p->thread_running)
		rc = call_on_loop(p, &dc.call);
	else
		drain_look(p, &dc);
	*v = dc.v;
	return rc;
}

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Attached mode: run the host's loop once, for at most DRAIN_POLL_MS. */
static int drain_run_loop(struct tpc_participant *p)
{
	struct timeval tv = { 0, DRAIN_POLL_MS * 1000 };
	struct event *ev = evtimer_new(p->base, drain_tick, NULL);

	if (!ev)
		return -ENOMEM;
	evtimer_add(ev, &tv);
	int rc = event_base_loop(p->base, EVLOOP_ONCE) < 0 ? -EIO : 0;
	event_free(ev);
	return rc;
}

int tpc_participant_drain(tpc_participant *p, uint32_t timeout_ms, size_t *in_doubt)
{
	struct drain_view v;
	uint64_t until = tpc_now_ms() + timeout_ms;
	int rc;

	if (in_doubt)
		*in_doubt = 0;
	if (!p)
		return -EINVAL;
	if (!p->base)
		return TPC_ESTATE;
	while ((rc = drain_poll(p, &v)) == 0 && (v.busy || v.unsent) && tpc_now_ms() < until) {
		if (p->own_base && p->thread_running) {
			struct timespec ts = { 0, DRAIN_POLL_MS * 1000000L };
			nanosleep(&ts, NULL);
		} else if ((rc = drain_run_loop(p)) != 0) {
			break;
		}
	}
	if (rc) {
		part_set_err(p, "cannot drain: %s", tpc_strerror(rc));
		return rc;
	}
	if (in_doubt)
		*in_doubt = v.in_doubt;
	if (!v.busy && !v.unsent)
		return 0;
	part_set_err(p, "drained for %u ms: %zu transaction(s) left, %zu of them prepared and "
		     "waiting for the coordinator's decision", timeout_ms, v.busy, v.in_doubt);
	part_logf(p, TPC_LOG_WARN, "%s", p->errmsg);
	return -ETIMEDOUT;
}

/* ---- shutdown ---- */

static void stop_run(struct tpc_participant *p, void *arg)
{
	p->stopping = 1;
	call_done(p, arg);
}

static void free_txns(struct tpc_participant *p)
{
	struct u64map_iter it;

	for (struct ptxn *t = u64map_iter_first(&it, &p->txns); t; t = u64map_iter_next(&it))
		part_txn_free(p, t);
	u64map_iter_end(&it);
	u64map_free(&p->txns);
	u64map_free(&p->asks);
}

void tpc_participant_free(tpc_participant *p)
{
	if (!p)
		return;
	if (p->thread_running) {
		struct loop_call stop = { .fn = stop_run };
		stop.arg = &stop;
		/* on_wake breaks the loop after running it. If the loop cannot be woken,
		 * its thread still uses p: leaking p is the only safe thing left. */
		int rc = call_on_loop(p, &stop);
		if (rc) {
			part_logf(p, TPC_LOG_ERROR, "cannot stop the loop thread (%s); "
				  "the participant is left running", tpc_strerror(rc));
			return;
		}
		pthread_join(p->thread, NULL);
		p->thread_running = 0;
	}
	p->stopping = 1;
	/* Every queued record reaches the disk first: applies (which queue drops), then
	 * the waiting drops, then the state log. */
	if (p->sink_writer)
		batch_writer_free(p->sink_writer);
	p->sink_writer = NULL;
	if (p->writer) {
		lazy_queue_flush(&p->lazy);
		batch_writer_free(p->writer);
	}
	p->writer = NULL;
	/* No writer thread is left: hand the last forgets to the sink from here. */
	tpc_sink_forget(p->sink, p->forgets, p->nforgets);
	free(p->forgets);
	lazy_queue_free(&p->lazy, NULL);
	part_net_stop(p);
	free_txns(p);
	deadline_timer_free(&p->deadlines);
	if (p->wake_ev)
		event_free(p->wake_ev);
	if (p->own_base)
		event_base_free(p->base);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	if (p->store.ops)
		p->store.ops->close(p->store.self);
	tpc_sink_free(p->sink);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	tpc_faults_destroy(&p->faults);
	tpc_arena_free(&p->arena);
	free(p->coordinator);
	free(p->name);
	free(p->state_dir);
	free(p->tls_cert);
	free(p->tls_key);
	free(p->tls_ca);
	SSL_CTX_free(p->tls); /* a connection still holds its own reference until freed */
	free(p);
}

/* ---- running a function on the loop thread (for part_ask.c) ---- */

struct sync_call {
	struct loop_call call;
	void (*fn)(struct tpc_participant *p, void *arg);
	void *arg;
};

static void sync_call_run(struct tpc_participant *p, void *arg)
{
	struct sync_call *sc = arg;

	sc->fn(p, sc->arg);
	call_done(p, &sc->call);
}

int part_run_on_loop(struct tpc_participant *p, void (*fn)(struct tpc_participant *, void *),
		     void *arg)
{
	struct sync_call sc = { .call = { .fn = sync_call_run }, .fn = fn, .arg = arg };

	sc.call.arg = &sc;
	if (!(p->own_base && p->thread_running)) {
		fn(p, arg);
		return 0;
	}
	return call_on_loop(p, &sc.call);
}
