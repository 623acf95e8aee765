/*
 * admin_harness.h - what integration tests ask an HTTP endpoint of a process they
 * started: a GET whose body is JSON (the coordinator's admin API), and a Prometheus
 * text body checked with `promtool check metrics` (skipped, saying so, when promtool is
 * not installed). Failures fail the current test (cmocka); waits have WAIT_MS.
 */
#ifndef TPC_TESTS_ADMIN_HARNESS_H
#define TPC_TESTS_ADMIN_HARNESS_H

#include <jansson.h>

/** GET http://127.0.0.1:@p port@p path: the JSON body (the caller decrefs), *status. */
json_t *admin_get_json(int port, const char *path, int *status);

/** Write @p text to DIR/@p leaf and run `promtool check metrics` on it. */
void promtool_check_metrics(const char *dir, const char *leaf, const char *text);

#endif
