/*
 * test_coord_metrics.c - unit tests of the coordinator's histograms and Prometheus text
 * rendering (coordinator/metrics.c), without a server: a view in, text out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "metrics.h"

/* Render @p v; the caller frees the NUL-terminated text. */
static char *render(const struct coord_metrics_view *v)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *text;

	assert_non_null(b);
	assert_int_equal(coord_metrics_render(v, b), 0);
	len = evbuffer_get_length(b);
	text = malloc(len + 1);
	assert_non_null(text);
	evbuffer_copyout(b, text, len);
	text[len] = '\0';
	evbuffer_free(b);
	return text;
}

static void assert_line(const char *text, const char *line)
{
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void test_histogram_buckets_are_upper_bounds_inclusive(void **state)
{
	(void)state;
	struct coord_metrics m;

	coord_metrics_init(&m);
	coord_hist_observe(&m.batch, 1);    /* le 1 */
	coord_hist_observe(&m.batch, 3);    /* le 4 */
	coord_hist_observe(&m.batch, 4);    /* le 4 */
	coord_hist_observe(&m.batch, 1e6);  /* +Inf */
	assert_int_equal(m.batch.counts[0], 1);
	assert_int_equal(m.batch.counts[2], 2);
	assert_int_equal(m.batch.counts[m.batch.nbounds], 1);
	assert_int_equal(m.batch.count, 4);
	assert_true(m.batch.sum > 1e6);
}

static void test_render_has_every_documented_metric_with_help_and_type(void **state)
{
	(void)state;
	static const char *const names[] = {
		"tpc_transactions_total counter", "tpc_transactions_open gauge",
		"tpc_in_doubt gauge", "tpc_in_doubt_oldest_seconds gauge",
		"tpc_stuck_transactions gauge", "tpc_decision_retries_total counter",
		"tpc_prepare_duration_seconds histogram", "tpc_decision_force_seconds histogram",
		"tpc_commit_delivery_seconds histogram", "tpc_log_batch_records histogram",
		"tpc_log_fsync_seconds histogram", "tpc_connections gauge",
		"tpc_participants_connected gauge", "tpc_log_failures_total counter",
		"tpc_bad_frames_total counter", "tpc_epoch gauge",
		"tpc_connections_timed_out_total counter", "tpc_connections_refused_total counter",
		"tpc_accept_errors_total counter", "tpc_log_used_bytes gauge",
		"tpc_log_map_bytes gauge",
	};
	struct coord_metrics m;
	struct coord_metrics_view v = { .m = &m };
	char line[128];

	coord_metrics_init(&m);
	char *text = render(&v);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE %s", names[i]);
		assert_line(text, line);
		snprintf(line, sizeof(line), "# HELP %.*s ", (int)strcspn(names[i], " "), names[i]);
		assert_non_null(strstr(text, line));
	}
	free(text);
}

static void test_render_values_labels_and_cumulative_buckets(void **state)
{
	(void)state;
	struct coord_metrics m;
	struct coord_metrics_view v = { .m = &m };

	coord_metrics_init(&m);
	coord_hist_observe(&m.force, 0.0002);
	coord_hist_observe(&m.force, 0.003);
	coord_hist_observe(&m.force, 30);
	v.committed = 7;
	v.aborted = 2;
	v.open[COORD_OPEN_COMMITTING] = 3;
	v.in_doubt = 3;
	v.in_doubt_oldest_ms = 1500;
	v.stuck = 1;
	v.conns_participant = 2;
	v.epoch = 9;
	char *text = render(&v);
	assert_line(text, "tpc_transactions_total{outcome=\"committed\"} 7");
	assert_line(text, "tpc_transactions_total{outcome=\"aborted\"} 2");
	assert_line(text, "tpc_transactions_total{outcome=\"unknown\"} 0");
	assert_line(text, "tpc_transactions_open{state=\"committing\"} 3");
	assert_line(text, "tpc_in_doubt_oldest_seconds 1.500");
	assert_line(text, "tpc_stuck_transactions 1");
	assert_line(text, "tpc_connections{role=\"participant\"} 2");
	assert_line(text, "tpc_epoch 9");
	assert_line(text, "tpc_decision_force_seconds_bucket{le=\"0.0001\"} 0");
	assert_line(text, "tpc_decision_force_seconds_bucket{le=\"0.00025\"} 1");
	assert_line(text, "tpc_decision_force_seconds_bucket{le=\"0.0025\"} 1");
	assert_line(text, "tpc_decision_force_seconds_bucket{le=\"0.005\"} 2");
	assert_line(text, "tpc_decision_force_seconds_bucket{le=\"10\"} 2");
	assert_line(text, "tpc_decision_force_seconds_bucket{le=\"+Inf\"} 3");
	assert_line(text, "tpc_decision_force_seconds_count 3");
	assert_line(text, "tpc_log_batch_records_bucket{le=\"4096\"} 0");
	assert_non_null(strstr(text, "\ntpc_decision_force_seconds_sum 30.0032"));
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_histogram_buckets_are_upper_bounds_inclusive),
		cmocka_unit_test(test_render_has_every_documented_metric_with_help_and_type),
		cmocka_unit_test(test_render_values_labels_and_cumulative_buckets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
