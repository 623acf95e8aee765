/*
 * server.c - coordinator start-up, recovery, the deadline timer's wiring
 * (common/deadline_timer.h), compaction, SIGHUP reloads (config.h: only run-time options
 * change; systemd hears RELOADING/READY, notify.h) and shutdown. The participant table
 * is peers.c.
 *
 * Start-up order (nothing is served before the last step):
 *   1. open the LMDB log; 2. bump the epoch durably (D7); 2b. load the participant
 *   name bindings (identity.c, D8); 3. load every COMMIT
 *   decision not yet completed into memory as COMMITTING transactions, whose
 *   participants get the decision when they say Hello (a participant that never
 *   returns blocks nothing: it is retried in the background); 4. listen.
 * Shutdown: stop accepting, flush the log writer, close connections, close the log.
 */
#include "server_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "notify.h"

int coord_fd_limit_fit(uint32_t max_conns, char *err, size_t errlen)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)max_conns + COORD_FD_RESERVE, was;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		snprintf(err, errlen, "cannot read the open-file limit: %s", strerror(errno));
		return -errno;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		snprintf(err, errlen, "--max-conns %u needs %llu open files (%u connections + %u "
			 "for the log, listeners and admin clients), but the open-file limit is %llu "
			 "(hard limit %llu): raise the limit (ulimit -n, LimitNOFILE= in the systemd "
			 "unit) or lower --max-conns to at most %llu",
			 max_conns, (unsigned long long)need, max_conns, COORD_FD_RESERVE,
			 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			 rl.rlim_max > COORD_FD_RESERVE
				 ? (unsigned long long)(rl.rlim_max - COORD_FD_RESERVE) : 0ull);
		return -EMFILE;
	}
	was = rl.rlim_cur;
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		snprintf(err, errlen, "--max-conns %u needs %llu open files; cannot raise the "
			 "open-file limit from %llu: %s", max_conns, (unsigned long long)need,
			 (unsigned long long)was, strerror(errno));
		return -EMFILE;
	}
	snprintf(err, errlen, "raised the open-file limit from %llu to %llu for --max-conns %u",
		 (unsigned long long)was, (unsigned long long)need, max_conns);
	return 1;
}

/* ---- timers ---- */

/* The deadline timer's view of a transaction (common/deadline_timer.h). */
static uint64_t *txn_armed(void *ctx, uint64_t txid)
{
	struct coord_txn *t = u64map_get(&((struct coord_server *)ctx)->txns, txid);

	return t ? &t->armed_ms : NULL;
}

static void txn_deadline(void *ctx, uint64_t txid)
{
	struct coord_server *s = ctx;
	struct coord_event ev = { .type = EV_TICK };

	coord_step(s, u64map_get(&s->txns, txid), &ev);
}

static uint64_t cutoff(uint64_t now, uint64_t retention_ms)
{
	return now > retention_ms ? now - retention_ms : 0;
}

/*
 * Compaction (rule D9): drop completed tombstones, expired keys and audit entries. Each
 * pass starts at the oldest entries and deletes at most --sweep-limit per database; a pass
 * that stopped at its limit is followed by another as soon as it is done (the loop runs
 * in between), so the sweep keeps up with any sustained rate. One pass at a time.
 */
static void sweep_done(struct coord_server *s, struct coord_rec *r, int status);

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct coord_server *s = arg;
	struct coord_rec *r;
	uint64_t now = tpc_wall_ms();

	if (s->sweeping || s->stopping || s->standby)
		return;
	r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->type = COORD_REC_SWEEP;
	r->done = sweep_done;
	r->wall_ms = now;
	r->sweep_outcome_before_ms = cutoff(now, s->cfg.outcome_retention_ms);
	r->sweep_keys_before_ms = cutoff(now, s->cfg.key_retention_ms);
	r->sweep_audit_before_ms = s->cfg.audit_retention_ms
					   ? cutoff(now, s->cfg.audit_retention_ms) : 0;
	r->sweep_limit = s->cfg.sweep_limit;
	r->queued_ns = tpc_now_ns();
	s->sweeping = 1;
	lazy_queue_submit_with(&s->lazy, &r->item);
}

static void sweep_done(struct coord_server *s, struct coord_rec *r, int status)
{
	tpc_logf(&s->log, TPC_LOG_DEBUG, "sweep pass: status %d, %u deleted, %s, %.1f ms after queueing",
		 status, r->sweep_deleted, r->sweep_more ? "more to do" : "caught up",
		 (double)(tpc_now_ns() - r->queued_ns) / 1e6);
	s->sweeping = 0;
	s->stats.swept += status == 0 ? r->sweep_deleted : 0;
	if (status == 0 && r->sweep_more && !s->stopping)
		event_active(s->sweep_next, EV_TIMEOUT, 0); /* the next pass, after the loop ran */
	free(r);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct coord_server *s = arg;

	tpc_logf(&s->log, TPC_LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	coord_notify("STOPPING=1");
	s->stopping = 1;
	if (s->listener) {
		evconnlistener_free(s->listener);
		s->listener = NULL;
	}
	event_base_loopbreak(s->base);
}

/* ---- start-up ---- */

static int open_log(struct coord_server *s)
{
	char err[256] = "";
	int rc;

	if (strcmp(s->cfg.log_kind, "etcd") == 0)
		return coord_ha_open(s); /* ha.c: leader (epoch taken) or standby */
	rc = coord_log_lmdb_open(&s->store, s->cfg.data_dir, s->cfg.map_size, err, sizeof(err));
	if (rc) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot open the log in %s: %s", s->cfg.data_dir,
			 err);
		return rc;
	}
	return coord_take_epoch(s);
}

/* The log's meta: the coordinator id checked, a new epoch made durable (D7). */
int coord_take_epoch(struct coord_server *s)
{
	uint64_t id = 0, epoch = 0;
	int rc = s->store.ops->read_meta(s->store.self, &id, &epoch);

	if (rc)
		goto fail;
	if (s->cfg.id && id && s->cfg.id != id) {
		tpc_logf(&s->log, TPC_LOG_ERROR,
			 "--id %llu does not match the log's coordinator id %llu",
			 (unsigned long long)s->cfg.id, (unsigned long long)id);
		return -EINVAL;
	}
	s->id = id ? id : (s->cfg.id ? s->cfg.id : 1);
	s->epoch = epoch + 1;
	if (s->epoch >= (1ull << (64 - COORD_TXID_SEQ_BITS))) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "epoch space exhausted");
		return -EOVERFLOW;
	}
	rc = s->store.ops->write_meta(s->store.self, s->id, s->epoch); /* D7: durable first */
	if (rc)
		goto fail;
	s->next_seq = 0;
	return 0;
fail:
	tpc_logf(&s->log, TPC_LOG_ERROR, "cannot read or write the log's meta: %d", rc);
	return rc;
}

static int recover_one(void *arg, const struct coord_decision *d)
{
	struct coord_server *s = arg;
	struct coord_txn *t = malloc(sizeof(*t));

	if (!t)
		return -ENOMEM;
	coord_txn_init_recovered(t, d->txid, tpc_now_ms());
	uint64_t wall = tpc_wall_ms(); /* age the decision by its logged time (stuck watch) */
	if (d->wall_ms && d->wall_ms < wall && wall - d->wall_ms < t->decided_ms)
		t->decided_ms -= wall - d->wall_ms;
	for (uint32_t i = 0; i < d->nparts; i++) {
		uint32_t peer = coord_peer_intern(s, d->parts[i], UINT32_MAX);
		if (!peer || coord_txn_add_part(t, peer, PART_YES, COORD_TXN_MAX_PARTS))
			goto fail;
	}
	t->attempts = 0;
	t->retry_delay_ms = s->cfg.retry_initial_ms;
	/* Jittered, so many recovered decisions are not resent in lock-step. */
	t->retry_at_ms = tpc_now_ms() + s->cfg.retry_initial_ms +
			 coord_rand(s) % (s->cfg.retry_initial_ms / 2 + 1);
	if (u64map_put(&s->txns, t->txid, t))
		goto fail;
	return 0;
fail:
	coord_txn_release(t);
	free(t);
	return -ENOMEM;
}

static int recover(struct coord_server *s);

/* Leading: the bindings (D8) and the undelivered decisions, their resends armed. */
int coord_lead(struct coord_server *s)
{
	int rc = coord_identity_load(s);

	rc = rc ? rc : recover(s);
	if (rc == 0)
		s->ready = 1;
	return rc;
}

static int recover(struct coord_server *s)
{
	int rc = s->store.ops->load_decisions(s->store.self, recover_one, s);

	if (rc) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "recovery failed reading the decision log: %d", rc);
		return rc;
	}
	struct u64map_iter it;
	for (struct coord_txn *t = u64map_iter_first(&it, &s->txns); t; t = u64map_iter_next(&it))
		coord_arm(s, t);
	u64map_iter_end(&it);
	tpc_logf(&s->log, TPC_LOG_INFO,
		 "recovered %zu undelivered commit decision(s); epoch %llu, coordinator id %llu",
		 s->txns.n, (unsigned long long)s->epoch, (unsigned long long)s->id);
	return 0;
}

static void txn_config(struct coord_server *s);

/* ---- SIGHUP: reload the config file and options (config.h) ---- */

/* Make the options a reload changed take effect: logger, state machine, sweep pace. */
static void apply_reloaded(struct coord_server *s)
{
	struct timeval sweep = tpc_ms_tv(s->cfg.sweep_interval_ms);

	s->log.min = s->cfg.log_level;
	txn_config(s);
	event_add(s->sweep, &sweep); /* re-adding a pending event restarts its interval */
	coord_admin_reload(s);       /* admin-token-file, stuck-after (admin.c) */
	coord_tls_reload(s);         /* the TLS files, read again (conn.c) */
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct coord_server *s = arg;
	struct coord_cmdline *cl = s->cfg.cmdline;
	struct coord_config fresh;
	char err[512], changed[1024], restart[1024];

	if (!cl) {
		tpc_logf(&s->log, TPC_LOG_WARN, "SIGHUP: no configuration to reload");
		return;
	}
	coord_notify("RELOADING=1");
	coord_config_defaults(&fresh);
	if (coord_config_build(cl, &fresh, err, sizeof(err)) ||
	    coord_config_check(&fresh, err, sizeof(err))) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "SIGHUP: %s; keeping the running configuration",
			 err);
		goto out;
	}
	int fit = coord_fd_limit_fit(fresh.max_conns, err, sizeof(err));
	if (fit < 0) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "SIGHUP: %s; keeping the running configuration",
			 err);
		goto out;
	}
	if (fit > 0)
		tpc_logf(&s->log, TPC_LOG_INFO, "SIGHUP: %s", err);
	fresh.cmdline = cl;
	coord_config_reload(&s->cfg, &fresh, changed, sizeof(changed), restart, sizeof(restart));
	/* Said at the old log level, so raising it to warn still shows this line. */
	tpc_logf(&s->log, TPC_LOG_INFO, "SIGHUP: reloaded %s: %s%s%s",
		 cl->config_path ? cl->config_path : "the command line",
		 *changed ? changed : "nothing changed", *restart ? "; needs a restart: " : "",
		 restart);
	apply_reloaded(s);
out:
	coord_notify("READY=1");
}

static int setup_events(struct coord_server *s)
{
	struct timeval sweep = tpc_ms_tv(s->cfg.sweep_interval_ms);

	s->sweep = event_new(s->base, -1, EV_PERSIST, on_sweep, s);
	/* A pass that stopped at its limit starts the next one through this event, not the
	 * periodic one: activating a persistent timer by hand pushes its next firing one
	 * interval further each time, and a burst of passes would stall the sweep. */
	s->sweep_next = event_new(s->base, -1, 0, on_sweep, s);
	s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
	s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
	s->sig_hup = evsignal_new(s->base, SIGHUP, on_hup, s);
	if (deadline_timer_attach(&s->deadlines, s->base) || !s->sweep || !s->sweep_next ||
	    !s->sig_term || !s->sig_int || !s->sig_hup)
		return -ENOMEM;
	event_add(s->sweep, &sweep);
	event_add(s->sig_term, NULL);
	event_add(s->sig_int, NULL);
	event_add(s->sig_hup, NULL);
	return 0;
}

static void txn_config(struct coord_server *s)
{
	s->tcfg.prepare_timeout_ms = s->cfg.prepare_timeout_ms;
	s->tcfg.retry_initial_ms = s->cfg.retry_initial_ms;
	s->tcfg.retry_max_ms = s->cfg.retry_max_ms;
	s->tcfg.log_retry_ms = 1000;
	s->tcfg.jitter_pct = 50;
	s->tcfg.max_parts = s->cfg.max_parts;
}

/* Fault points (faults.h): TPC_FAULTS and TPC_FAULT_SEED are read once, here; a bad
 * value stops the start. */
static int setup_faults(struct coord_server *s)
{
	const char *seed = getenv("TPC_FAULT_SEED");
	char err[160];

	tpc_faults_init(&s->faults, "tpc-coordinator");
	if (seed && *seed)
		tpc_faults_seed(&s->faults, strtoull(seed, NULL, 0));
	if (tpc_faults_arm(&s->faults, getenv("TPC_FAULTS"), err, sizeof(err))) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "TPC_FAULTS: %s", err);
		return -EINVAL;
	}
	if (s->faults.armed)
		tpc_logf(&s->log, TPC_LOG_WARN, "fault injection armed: TPC_FAULTS=%s",
			 getenv("TPC_FAULTS"));
	return 0;
}

struct coord_server *coord_server_new(const struct coord_config *cfg)
{
	struct coord_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cfg = *cfg;
	s->log.prog = "tpc-coordinator";
	s->log.min = cfg->log_level;
	s->started_ms = tpc_now_ms();
	s->started_wall_ms = tpc_wall_ms();
	s->rng = tpc_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
	s->on_frame = coord_dispatch;
	s->on_closed = coord_on_conn_closed;
	coord_metrics_init(&s->metrics);
	txn_config(s);
	if (setup_faults(s))
		goto fail_early;
	u64map_init(&s->txns);
	tpc_arena_init(&s->arena, 64 * 1024);
	strmap_init(&s->live_keys);
	deadline_timer_init(&s->deadlines, txn_armed, txn_deadline, s);
	signal(SIGPIPE, SIG_IGN);
	s->aborts = malloc(sizeof(*s->aborts));
	if (s->aborts)
		coord_aborts_init(s->aborts);
	s->base = event_base_new();
	if (!s->aborts || !s->base || setup_events(s))
		goto fail;
	if (open_log(s))
		goto fail;
	s->writer = batch_writer_new(s->base, coord_log_write, coord_log_done, s,
				     cfg->group_commit_max);
	/* The LMDB log (it has a sync op): waiters wait for the next sync (rule D6), and
	 * with --inline-sync a lone write at low load is forced by the loop itself. Other
	 * stores (etcd) keep every write on the writer thread. */
	if (s->writer && s->store.ops->sync) {
		batch_writer_set_sync(s->writer, coord_log_sync);
		if (cfg->inline_sync && batch_writer_set_inline(s->writer, s->base))
			goto fail;
	}
	if (!s->writer || lazy_queue_init(&s->lazy, s->base, s->writer, COORD_LAZY_FLUSH_MS,
					  COORD_LAZY_MAX, NULL, NULL))
		goto fail;
	if (coord_tls_start(s) || coord_admin_start(s) || (!s->standby && coord_lead(s)) ||
	    coord_listen(s))
		goto fail;
	s->ready = !s->standby; /* /readyz */
	if (s->standby && coord_ha_wait(s))
		goto fail;
	tpc_logf(&s->log, TPC_LOG_INFO, "listening on %s (%s %s, group commit %s, TLS %s)",
		 cfg->listen, s->ha ? "etcd group" : "data", s->ha ? cfg->group : cfg->data_dir,
		 cfg->group_commit_max > 1 ? "on" : "off", s->tls ? "required" : "off");
	return s;
fail:
	coord_server_free(s);
	return NULL;
fail_early:
	free(s);
	return NULL;
}

int coord_server_run(struct coord_server *s)
{
	coord_notify("READY=1"); /* recovered and listening (coord_server_new) */
	event_base_dispatch(s->base);
	return s->exit_code;
}

static void free_all_txns(struct coord_server *s)
{
	struct u64map_iter it;

	for (struct coord_txn *t = u64map_iter_first(&it, &s->txns); t; t = u64map_iter_next(&it)) {
		free(t->key);
		free(t->no_reason);
		coord_txn_release(t);
		free(t);
	}
	u64map_iter_end(&it);
	u64map_free(&s->txns);
	if (s->aborts)
		coord_aborts_free(s->aborts);
	free(s->aborts);
	s->aborts = NULL;
}

void coord_server_free(struct coord_server *s)
{
	if (!s)
		return;
	s->stopping = 1;
	if (s->listener)
		evconnlistener_free(s->listener);
	if (s->writer) {
		lazy_queue_flush(&s->lazy);
		batch_writer_free(s->writer); /* flushes: every queued record reaches the disk */
		s->writer = NULL;
	}
	lazy_queue_free(&s->lazy, NULL); /* completed while flushing: harmless to drop */
	coord_conns_close_all(s);
	coord_conns_free_events(s);
	coord_admin_free(s); /* after the writer: operator calls it finished get answered */
	SSL_CTX_free(s->tls);
	free_all_txns(s);
	strmap_free(&s->live_keys);
	tpc_arena_free(&s->arena);
	deadline_timer_free(&s->deadlines);
	coord_peers_free(s);
	free(s->conns);
	free(s->conn_gen);
	coord_ha_stop(s); /* its campaign thread uses the store */
	if (s->store.ops)
		s->store.ops->close(s->store.self);
	coord_ha_free(s);
	if (s->sweep)
		event_free(s->sweep);
	if (s->sweep_next)
		event_free(s->sweep_next);
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->sig_hup)
		event_free(s->sig_hup);
	if (s->base)
		event_base_free(s->base);
	tpc_faults_destroy(&s->faults);
	tpc_logf(&s->log, TPC_LOG_INFO, "stopped");
	free(s);
}
