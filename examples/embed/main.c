/*
 * embed: a service that takes part in tpc transactions, in a few lines.
 * It embeds a participant (LMDB sink, background thread), then acts as its own
 * initiator: begin, stage one write, commit, and print the outcome. Before it exits it
 * drains the participant, so the decision is applied and acknowledged: the coordinator
 * is left with no open transaction.
 *
 *   embed COORDINATOR_HOST:PORT DATA_DIR [NAME]
 *
 * NAME (default embed-example) is the participant's name at the coordinator, bound there
 * to the state folder DATA_DIR/state at its first start: a second folder needs a second
 * name.
 */
#include <stdio.h>
#include <tpc/client.h>
#include <tpc/participant.h>
#include <tpc/sink_lmdb.h>

/* Warnings and errors to stderr: why the participant could not start (for example,
 * another process holds DATA_DIR/state: the message names its pid). */
static void log_line(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level >= TPC_LOG_LEVEL_WARN)
		fprintf(stderr, "participant: %s\n", msg);
}

int main(int argc, char **argv)
{
	char sink_dir[512], state_dir[512];
	int err = 0;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: embed COORDINATOR DATA_DIR [NAME]\n");
		return 2;
	}
	snprintf(sink_dir, sizeof(sink_dir), "%s/sink", argv[2]);
	snprintf(state_dir, sizeof(state_dir), "%s/state", argv[2]);

	/* The participant: where data lands, and how it takes part. */
	tpc_sink *sink = tpc_sink_lmdb_open(sink_dir, 0, &err);
	tpc_participant_config pc;
	tpc_participant_config_init(&pc);
	pc.coordinator = argv[1];
	pc.name = argc == 4 ? argv[3] : "embed-example";
	pc.state_dir = state_dir;
	pc.log = log_line;
	tpc_participant *p = sink ? tpc_participant_new(&pc, sink, &err) : NULL;
	if (!p || (err = tpc_participant_start(p)) != 0) {
		fprintf(stderr, "participant: %s\n", tpc_strerror(err));
		return 1;
	}

	/* The initiator: begin, have the participant stage a write, commit. */
	tpc_client_config cc;
	tpc_client_config_init(&cc);
	cc.coordinator = argv[1];
	tpc_client *c = tpc_client_new(&cc, &err);
	tpc_txid txid = 0;
	tpc_outcome outcome = TPC_OUTCOME_UNKNOWN;
	if (!c || (err = tpc_client_begin(c, NULL, 0, &txid, NULL)) != 0 ||
	    (err = tpc_participant_stage_wait(p, txid, "greeting", 8, "hello", 5)) != 0 ||
	    (err = tpc_client_commit(c, txid, &outcome, NULL, 0)) != 0) {
		fprintf(stderr, "transaction: %s\n", tpc_strerror(err));
		return 1;
	}
	printf("txid %llu %s\n", (unsigned long long)txid, tpc_outcome_str(outcome));
	tpc_client_free(c);
	/* The client heard COMMITTED; the participant applies and acks it now. */
	size_t in_doubt = 0;
	if (tpc_participant_drain(p, 10000, &in_doubt) != 0)
		fprintf(stderr, "participant: %s\n", tpc_participant_errmsg(p));
	tpc_participant_free(p);
	return outcome == TPC_OUTCOME_COMMITTED ? 0 : 1;
}
