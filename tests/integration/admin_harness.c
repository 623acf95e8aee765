/*
 * admin_harness.c - a JSON GET and a promtool check for integration tests
 * (admin_harness.h).
 */
#include "admin_harness.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "httpc.h"

#define PROMTOOL "/usr/bin/promtool"

json_t *admin_get_json(int port, const char *path, int *status)
{
	struct httpc_resp r;
	json_error_t err;
	int rc = httpc_request("127.0.0.1", port, "GET", path, NULL, NULL, WAIT_MS, &r);

	if (rc != 0)
		fail_msg("GET %s: %s", path, strerror(-rc));
	json_t *j = json_loads(r.body, 0, &err);
	*status = r.status;
	if (!j)
		fail_msg("GET %s: status %d, not JSON: %s", path, r.status, r.body);
	httpc_resp_free(&r);
	return j;
}

void promtool_check_metrics(const char *dir, const char *leaf, const char *text)
{
	char path[PATH_MAX + 64], cmd[PATH_MAX + 128], out[4096];
	int st = -1;

	if (access(PROMTOOL, X_OK) != 0) {
		fprintf(stderr, "SKIPPED: promtool check metrics: %s not found "
			"(scripts/install-deps.sh installs the prometheus package)\n", PROMTOOL);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, leaf);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s check metrics < '%s' 2>&1", PROMTOOL, path);
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	assert_int_equal(tpc_run_capture(argv, out, sizeof(out), WAIT_MS, &st), 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("promtool check metrics failed (status 0x%x):\n%s", st, out);
}
