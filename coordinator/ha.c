/*
 * ha.c - a coordinator of a group whose log is in etcd (--log etcd, docs/ha.md):
 * start as leader or standby, take over when the leader goes, step down when the
 * leadership is lost.
 *
 * Owns the campaign thread and the eventfd it (and the log's lease thread) wake the
 * loop with, and the last leader address a campaign saw. Invariants:
 *   - a standby serves nothing: every request is answered ERR_NOT_LEADER and the
 *     connection closed; /readyz says not ready;
 *   - taking over (on the loop thread) bumps the epoch through a fenced write before
 *     anything else, then loads the bindings and the undelivered decisions and arms
 *     their resends (the recovery path of a restart);
 *   - a leader that loses the leadership (its lease, or a fenced write refused)
 *     stops at once with exit status 3, so it never answers as leader again; its
 *     supervisor starts it again, as a standby.
 */
#include "server_int.h"
#include "log_etcd.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/eventfd.h>

#include <event2/event.h>
#include <event2/listener.h>

#define E(name) TPC__ERROR_CODE__ERR_##name
#define EXIT_LOST_LEADERSHIP 3
#define CAMPAIGN_SLICE_MS 1000 /* how long one campaign call waits: the stop's latency */

struct coord_ha {
	struct coord_server *s;
	int efd;
	struct event *wake;
	pthread_t thread;
	int started;
	atomic_int stop, won, lost;
	pthread_mutex_t mu;      /* leader */
	char leader[256];
	uint64_t standby_ms;     /* when it became a standby (the takeover's log line) */
};

static void poke(struct coord_ha *ha)
{
	uint64_t one = 1;

	if (write(ha->efd, &one, sizeof(one)) < 0)
		return; /* the counter is full: a wake-up is already pending */
}

/* The log's lease thread or the writer thread: leadership is gone. */
static void on_lost(void *arg)
{
	struct coord_ha *ha = arg;

	atomic_store(&ha->lost, 1);
	poke(ha);
}

static void set_leader(struct coord_ha *ha, const char *addr)
{
	pthread_mutex_lock(&ha->mu);
	snprintf(ha->leader, sizeof(ha->leader), "%s", addr);
	pthread_mutex_unlock(&ha->mu);
}

const char *coord_ha_leader(struct coord_server *s, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!s->ha)
		return buf;
	pthread_mutex_lock(&s->ha->mu);
	snprintf(buf, len, "%s", s->ha->leader);
	pthread_mutex_unlock(&s->ha->mu);
	return buf;
}

static void stop_now(struct coord_server *s, int code)
{
	s->exit_code = code;
	s->stopping = 1;
	s->ready = 0;
	if (s->listener) {
		evconnlistener_free(s->listener);
		s->listener = NULL;
	}
	/* After the callbacks already due (the refusal's deferred write): none is lost. */
	event_base_loopexit(s->base, NULL);
}

static void take_over(struct coord_server *s)
{
	uint64_t t0 = tpc_now_ms();

	if (coord_take_epoch(s) || coord_lead(s)) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "group %s: cannot take over; stopping",
			 s->cfg.group);
		stop_now(s, 1);
		return;
	}
	s->standby = 0;
	tpc_logf(&s->log, TPC_LOG_WARN,
		 "group %s: leader now (epoch %llu, %zu decision(s) to deliver), after %llu ms "
		 "as a standby; taking over took %llu ms", s->cfg.group,
		 (unsigned long long)s->epoch, s->txns.n,
		 (unsigned long long)(t0 - s->ha->standby_ms),
		 (unsigned long long)(tpc_now_ms() - t0));
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct coord_ha *ha = arg;
	struct coord_server *s = ha->s;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0)
		n = 0;
	if (atomic_exchange(&ha->lost, 0) && !s->stopping) {
		if (s->standby)
			tpc_logf(&s->log, TPC_LOG_ERROR, "group %s: the standby's etcd lease "
				 "expired (etcd unreachable for longer than the lease?); stopping, "
				 "to start again with a new one", s->cfg.group);
		else
			tpc_logf(&s->log, TPC_LOG_ERROR, "group %s: lost the leadership: %s; "
				 "stopping", s->cfg.group, coord_log_etcd_lost_why(&s->store));
		stop_now(s, EXIT_LOST_LEADERSHIP);
		return;
	}
	if (atomic_exchange(&ha->won, 0) && s->standby && !s->stopping)
		take_over(s);
}

/* The campaign thread: wait (in slices, watching the leader key) until this
 * coordinator leads, keeping the last leader seen for ERR_NOT_LEADER. */
static void *campaign_main(void *arg)
{
	struct coord_ha *ha = arg;
	char leader[256];

	while (!atomic_load(&ha->stop)) {
		int rc = coord_log_etcd_campaign(&ha->s->store, CAMPAIGN_SLICE_MS, leader,
						 sizeof(leader));
		if (rc == 1) {
			set_leader(ha, leader);
			atomic_store(&ha->won, 1);
			poke(ha);
			return NULL;
		}
		if (rc == 0)
			set_leader(ha, leader);
		else
			usleep(200 * 1000); /* etcd unreachable: try again shortly */
	}
	return NULL;
}

int coord_ha_wait(struct coord_server *s)
{
	struct coord_ha *ha = s->ha;

	ha->standby_ms = tpc_now_ms();
	if (pthread_create(&ha->thread, NULL, campaign_main, ha))
		return -EAGAIN;
	ha->started = 1;
	return 0;
}

/* Before serving a request: a leader whose lease may have lapsed (a pause, a lost
 * etcd) steps down at once instead of answering. */
int coord_ha_check(struct coord_server *s)
{
	if (s->standby)
		return 0;
	if (coord_log_etcd_is_leader(&s->store))
		return 1;
	if (!s->stopping) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "group %s: the leader lease may have lapsed; "
			 "stopping without answering", s->cfg.group);
		stop_now(s, EXIT_LOST_LEADERSHIP);
	}
	return 0;
}

int coord_ha_refuse(struct conn *c, uint64_t req)
{
	char leader[256], msg[400];

	coord_ha_leader(c->srv, leader, sizeof(leader));
	snprintf(msg, sizeof(msg), "not the leader of group %s; the leader is %s",
		 c->srv->cfg.group, *leader ? leader : "not known yet");
	coord_conn_fail_req(c, req, E(NOT_LEADER), msg);
	return 1;
}

static int ha_new(struct coord_server *s)
{
	struct coord_ha *ha = calloc(1, sizeof(*ha));

	if (!ha)
		return -ENOMEM;
	pthread_mutex_init(&ha->mu, NULL);
	ha->s = s;
	s->ha = ha;
	ha->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ha->efd < 0)
		return -errno;
	ha->wake = event_new(s->base, ha->efd, EV_READ | EV_PERSIST, on_wake, ha);
	return ha->wake && event_add(ha->wake, NULL) == 0 ? 0 : -ENOMEM;
}

int coord_ha_open(struct coord_server *s)
{
	struct coord_etcd_opts o = { .endpoints = s->cfg.etcd_endpoints, .group = s->cfg.group,
				     .lease_ms = s->cfg.lease_ms,
				     .advertise = s->cfg.advertise ? s->cfg.advertise
								   : s->cfg.listen };
	char err[256] = "", leader[256] = "";
	int rc = ha_new(s);

	if (rc == 0)
		rc = coord_log_etcd_open(&s->store, &o, err, sizeof(err));
	if (rc) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot open the log of group %s in etcd (%s): %s",
			 s->cfg.group, s->cfg.etcd_endpoints, *err ? err : strerror(-rc));
		return rc;
	}
	coord_log_etcd_on_lost(&s->store, on_lost, s->ha);
	rc = coord_log_etcd_campaign(&s->store, 0, leader, sizeof(leader));
	if (rc < 0) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "group %s: cannot campaign for leadership: %d",
			 s->cfg.group, rc);
		return rc;
	}
	set_leader(s->ha, leader);
	s->standby = rc == 0;
	tpc_logf(&s->log, TPC_LOG_INFO, "group %s: %s%s", s->cfg.group,
		 rc ? "leader" : "standby; the leader is ", rc ? "" : leader);
	return rc ? coord_take_epoch(s) : 0;
}

/* Before the store closes: the campaign thread uses the store. */
void coord_ha_stop(struct coord_server *s)
{
	struct coord_ha *ha = s->ha;

	if (!ha || !ha->started)
		return;
	atomic_store(&ha->stop, 1);
	pthread_join(ha->thread, NULL);
	ha->started = 0;
}

/* After the store closed: its threads may call on_lost() until then. */
void coord_ha_free(struct coord_server *s)
{
	struct coord_ha *ha = s->ha;

	if (!ha)
		return;
	coord_ha_stop(s);
	if (ha->wake)
		event_free(ha->wake);
	if (ha->efd >= 0)
		close(ha->efd);
	pthread_mutex_destroy(&ha->mu);
	free(ha);
	s->ha = NULL;
}
