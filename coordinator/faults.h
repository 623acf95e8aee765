/*
 * faults.h - named fault points in the coordinator, armed at start-up by the
 * TPC_FAULTS environment variable (failure injection is a feature: DESIGN.md).
 *
 *   TPC_FAULTS="POINT=ACTION[,POINT=ACTION...]"
 *
 * Points (the only one so far; more come with the fault harness):
 *   coord.decision.after_log  a COMMIT record's batch is durable (D1), before the
 *                             client hears COMMITTED and before any Decision is sent
 * Actions:
 *   crash                     log one line, then raise(SIGKILL): no cleanup, no flush
 *
 * The variable is parsed once, by coord_server_new(); an unknown point or action
 * makes the start fail, so a typo never leaves a test running without its fault.
 * The parsed set hangs off struct coord_server: no process-wide state.
 */
#ifndef TPC_COORD_FAULTS_H
#define TPC_COORD_FAULTS_H

#include <stddef.h>

#define COORD_FAULT_DECISION_AFTER_LOG "coord.decision.after_log"

enum coord_fault_action {
	COORD_FAULT_NONE = 0,
	COORD_FAULT_CRASH = 1,
};

#define COORD_FAULTS_MAX 8

struct coord_faults {
	size_t n;
	struct {
		const char *name; /* one of the static point names above */
		enum coord_fault_action action;
	} armed[COORD_FAULTS_MAX];
};

/**
 * @brief Parse a TPC_FAULTS value into @p f (which is cleared first).
 * @param spec the value; NULL or "" arms nothing
 * @param err receives a message on failure (may be NULL), size @p errlen
 * @return 0, or -EINVAL for an unknown point or action or a malformed entry,
 *         -E2BIG for more than COORD_FAULTS_MAX entries.
 */
int coord_faults_parse(struct coord_faults *f, const char *spec, char *err, size_t errlen);

/**
 * @brief The action armed at fault point @p name.
 * @return COORD_FAULT_NONE (0) when nothing is armed there, else the action.
 */
int coord_fault_hit(const struct coord_faults *f, const char *name);

#endif
