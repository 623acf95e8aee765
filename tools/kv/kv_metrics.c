/*
 * kv_metrics.c - tpc-kv --metrics HOST:PORT (kv_metrics.h): one evhttp server on the
 * service's loop answering GET /metrics with libtpc's participant stats in the
 * Prometheus text format (version 0.0.4). Every scrape reads the stats afresh on the
 * loop thread (the participant is attached to that loop), so nothing is cached.
 *
 * The metrics, each with HELP and TYPE:
 *   tpc_participant_info{name}                    1, naming the participant
 *   tpc_participant_coordinator_connected          1 while the Hello is answered
 *   tpc_participant_prepared                       prepared transactions awaiting a decision
 *   tpc_participant_oldest_prepared_age_seconds    age of the oldest (0: none)
 *   tpc_participant_applies_total                  commits applied to the sink and acked
 *   tpc_participant_votes_total{vote="yes"|"no"}   votes sent
 *   tpc_participant_aborts_total, _joins_total, _expired_total, _recovered_total,
 *   _status_queries_total, _reconnects_total, _duplicate_commits_total,
 *   _stale_epoch_rejected_total, _epoch_jump_rejected_total, _forgotten_total
 *   tpc_participant_highest_epoch                  the highest coordinator epoch seen
 */
#include "kv_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "util.h"

struct kv_metrics {
	struct evhttp *http;
	tpc_participant *part;
	char name[128];
};

/* @p s as a label value: backslash, double quote and newline escaped; cut to fit. */
static void label_value(char *out, size_t cap, const char *s)
{
	size_t k = 0;

	for (; *s && k + 3 < cap; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			out[k++] = '\\';
		out[k++] = *s == '\n' ? 'n' : *s;
	}
	out[k] = '\0';
}

static int head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0;
}

static int counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
	return head(out, name, "counter", help) ||
	       evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v) < 0;
}

/* Prepared transactions: how many, and the oldest one's age. */
static int prepared(struct kv_metrics *m, struct evbuffer *out)
{
	tpc_prepared_info *v = NULL;
	size_t n = 0;
	uint64_t oldest = 0;

	if (tpc_participant_list_prepared(m->part, &v, &n))
		return 1;
	for (size_t i = 0; i < n; i++)
		oldest = v[i].age_ms > oldest ? v[i].age_ms : oldest;
	free(v);
	return head(out, "tpc_participant_prepared", "gauge",
		    "Prepared transactions (YES voted) awaiting the coordinator's decision.") ||
	       evbuffer_add_printf(out, "tpc_participant_prepared %zu\n", n) < 0 ||
	       head(out, "tpc_participant_oldest_prepared_age_seconds", "gauge",
		    "Age of the oldest prepared transaction; 0 when there is none.") ||
	       evbuffer_add_printf(out, "tpc_participant_oldest_prepared_age_seconds %.3f\n",
				   (double)oldest / 1000.0) < 0;
}

static int gauges(struct kv_metrics *m, const tpc_participant_stats *st, struct evbuffer *out)
{
	return head(out, "tpc_participant_info", "gauge", "The participant's name, as a label.") ||
	       evbuffer_add_printf(out, "tpc_participant_info{name=\"%s\"} 1\n", m->name) < 0 ||
	       head(out, "tpc_participant_coordinator_connected", "gauge",
		    "1 while connected to the coordinator (its Hello answered), else 0.") ||
	       evbuffer_add_printf(out, "tpc_participant_coordinator_connected %d\n",
				   st->connected ? 1 : 0) < 0 ||
	       head(out, "tpc_participant_highest_epoch", "gauge",
		    "The highest coordinator epoch seen.") ||
	       evbuffer_add_printf(out, "tpc_participant_highest_epoch %" PRIu64 "\n",
				   st->highest_epoch) < 0;
}

static int votes(const tpc_participant_stats *st, struct evbuffer *out)
{
	return head(out, "tpc_participant_votes_total", "counter",
		    "Votes sent, by kind (yes: after the PREPARED record was durable).") ||
	       evbuffer_add_printf(out, "tpc_participant_votes_total{vote=\"yes\"} %" PRIu64 "\n"
				   "tpc_participant_votes_total{vote=\"no\"} %" PRIu64 "\n",
				   st->prepared, st->voted_no) < 0;
}

static int counters(const tpc_participant_stats *st, struct evbuffer *out)
{
	static const char *const help_applies =
		"Committed transactions applied to the sink (durably) and acknowledged.";

	return counter(out, "tpc_participant_applies_total", help_applies, st->committed) ||
	       counter(out, "tpc_participant_aborts_total",
		       "Transactions discarded: aborted, refused, or expired.", st->aborted) ||
	       counter(out, "tpc_participant_joins_total", "Transactions joined.", st->joined) ||
	       counter(out, "tpc_participant_expired_total",
		       "Transactions whose staged writes expired with no Prepare.", st->expired) ||
	       counter(out, "tpc_participant_recovered_total",
		       "Prepared transactions found in the state folder at start.", st->recovered) ||
	       counter(out, "tpc_participant_status_queries_total",
		       "StatusQuery messages sent about prepared transactions.",
		       st->status_queries) ||
	       counter(out, "tpc_participant_reconnects_total",
		       "Connection attempts to the coordinator after the first.", st->reconnects) ||
	       counter(out, "tpc_participant_duplicate_commits_total",
		       "COMMIT decisions for transactions already applied (acked again).",
		       st->duplicate_commits) ||
	       counter(out, "tpc_participant_stale_epoch_rejected_total",
		       "Messages ignored for an older coordinator epoch.",
		       st->stale_epoch_rejected) ||
	       counter(out, "tpc_participant_epoch_jump_rejected_total",
		       "Messages refused for an epoch too far above the highest seen.",
		       st->epoch_jump_rejected) ||
	       counter(out, "tpc_participant_forgotten_total",
		       "Prepared transactions the coordinator answered FORGOTTEN.", st->forgotten);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct kv_metrics *m = arg;
	struct evbuffer *out = evbuffer_new();
	tpc_participant_stats st;

	if (!out) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	if (strcmp(evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)), "/metrics") != 0) {
		evhttp_send_error(req, 404, "only /metrics is served here");
	} else {
		tpc_participant_get_stats(m->part, &st);
		if (gauges(m, &st, out) || prepared(m, out) || votes(&st, out) ||
		    counters(&st, out)) {
			evhttp_send_error(req, 500, "cannot render the metrics");
		} else {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
					  "text/plain; version=0.0.4; charset=utf-8");
			evhttp_send_reply(req, 200, "OK", out);
		}
	}
	evbuffer_free(out);
}

struct kv_metrics *kv_metrics_start(struct event_base *base, const char *hostport,
				    tpc_participant *p, const char *name, char *err,
				    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct kv_metrics *m;
	struct evconnlistener *l;

	if (tpc_parse_hostport(hostport, &ss, &sslen, err, errlen))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m || !(m->http = evhttp_new(base))) {
		tpc_set_err(err, errlen, "out of memory");
		free(m);
		return NULL;
	}
	m->part = p;
	label_value(m->name, sizeof(m->name), name);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
	evhttp_set_gencb(m->http, on_request, m);
	l = evconnlistener_new_bind(base, NULL, NULL,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
				    128, (struct sockaddr *)&ss, (int)sslen);
	if (!l || !evhttp_bind_listener(m->http, l)) {
		tpc_set_err(err, errlen, "cannot listen on %s: %s", hostport, strerror(errno));
		if (l)
			evconnlistener_free(l);
		kv_metrics_free(m);
		return NULL;
	}
	return m;
}

void kv_metrics_free(struct kv_metrics *m)
{
	if (!m)
		return;
	if (m->http)
		evhttp_free(m->http);
	free(m);
}
