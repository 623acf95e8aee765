/*
 * tpcctl.c - the operator's command line for tpc-coordinator's admin HTTP API
 * (docs/admin-api.md), and `txn begin` on its protocol port (session.c): parsing,
 * help, and dispatch to commands.c and session.c.
 *
 * One getopt_long pass takes every option anywhere on the line (so
 * `tpcctl txn show 12 -o json` works); the words left name the command and its
 * transaction id. Each command lists the options it accepts: any other is a usage
 * error (exit 2), as is a malformed id, duration or state, checked here before any
 * request is made.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "ctl.h"
#include "util.h"

/* Options, as bits, so a command can say which it accepts. */
enum {
	O_STATE = 1u << 0, O_OLDER = 1u << 1, O_LIMIT = 1u << 2, O_REASON = 1u << 3,
	O_FORCE = 1u << 4, O_OPERATOR = 1u << 5, O_KEY = 1u << 6, O_TXN_TIMEOUT = 1u << 7,
};

/* What a command's one argument is (struct command.takes_id). */
enum { ARG_NONE = 0, ARG_TXID = 1, ARG_NAME = 2 };

struct command {
	const char *group;    /* "txn", or the command itself */
	const char *name;     /* "list", or NULL for a one-word command */
	unsigned opts;        /* accepted command options (global ones always are) */
	int takes_id;         /* ARG_NONE, ARG_TXID (a transaction id) or ARG_NAME */
	int (*run)(struct ctl *c);
	const char *synopsis;
	const char *help;
};

static const struct command commands[] = {
	{ "status", NULL, 0, 0, ctl_cmd_status, "status",
	  "Show the coordinator's health: epoch, uptime, open transactions by state, how many\n"
	  "are in doubt (COMMIT durable, not yet acknowledged by everyone) and how many are\n"
	  "stuck (not delivered within --stuck-after), participants, and the log's size.\n" },
	{ "txn", "list", O_STATE | O_OLDER | O_LIMIT, 0, ctl_cmd_txn_list,
	  "txn list [--state S] [--older-than D] [--limit N]",
	  "List open transactions, oldest first.\n"
	  "  --state S        ACTIVE, PREPARING, LOGGING, COMMITTING, or stuck\n"
	  "  --older-than D   only those older than D (500ms, 30s, 5m, 1h)\n"
	  "  --limit N        at most N rows (default: all; fetched in pages of at most\n"
	  "                   1000, following the server's cursor)\n" },
	{ "txn", "show", 0, 1, ctl_cmd_txn_show, "txn show ID",
	  "Show one transaction: state, age, key, delivery attempts, last error, and each\n"
	  "participant's vote or ack and whether it is connected. For an id that is not open,\n"
	  "says what a participant asking would be told (COMMITTED or ABORTED) and exits 3.\n" },
	{ "txn", "begin", O_KEY | O_TXN_TIMEOUT, 0, ctl_cmd_txn_begin,
	  "txn begin [--key K] [--txn-timeout D]",
	  "Run one transaction by hand, as a client on the coordinator's protocol port\n"
	  "(--coordinator): begin it, print 'txid N' and 'token HEX' on stdout, then read\n"
	  "one command per line on stdin and send it on the same connection (the\n"
	  "coordinator takes Commit and Abort only from the connection that began the\n"
	  "transaction, and aborts it if that connection closes):\n"
	  "  commit           commit; prints COMMITTED, or ABORTED: REASON (exit 1)\n"
	  "  abort [REASON]   abort; prints ABORTED\n"
	  "  status           print PENDING, COMMITTED or ABORTED and read on\n"
	  "End of input aborts (exit 1). Stage writes from another shell meanwhile:\n"
	  "  tpc-kv put --kv HOST:PORT --txid N --token HEX KEY VALUE\n"
	  "  --key K          client transaction key: at most one transaction per key\n"
	  "                   commits (a key that committed prints its txid and COMMITTED)\n"
	  "  --txn-timeout D  the transaction's timeout (default: the coordinator's)\n" },
	{ "txn", "retry", 0, 1, ctl_cmd_txn_retry, "txn retry ID",
	  "Resend now: the decision to every participant that has not acknowledged it\n"
	  "(COMMITTING), or the Prepare to every participant that has not voted (PREPARING).\n" },
	{ "txn", "commit", O_REASON | O_FORCE | O_OPERATOR, 1, ctl_cmd_txn_commit,
	  "txn commit ID --reason TEXT [--force] [--operator NAME]",
	  "Decide COMMIT as an operator (a heuristic decision). Recorded durably in the audit\n"
	  "log before it takes effect, then pushed to the participants. Refused (exit 1) where\n"
	  "it would contradict what the participants were promised, unless --force: for a\n"
	  "transaction whose participants have not all voted YES, or one that is not open.\n"
	  "  --reason TEXT    why (required; kept in the audit log)\n"
	  "  --force          override the refusal; the audit entry says what was overridden\n"
	  "  --operator NAME  who decides (default: your login name)\n" },
	{ "txn", "abort", O_REASON | O_FORCE | O_OPERATOR, 1, ctl_cmd_txn_abort,
	  "txn abort ID --reason TEXT [--force] [--operator NAME]",
	  "Decide ABORT as an operator. ACTIVE and PREPARING transactions abort at once.\n"
	  "A COMMITTING transaction (its COMMIT is durable, some participants may have\n"
	  "applied it) is refused unless --force, which sends ABORT to every participant that\n"
	  "has not acknowledged and names the overridden COMMIT in the audit log.\n"
	  "  --reason TEXT    why (required; kept in the audit log)\n"
	  "  --force          override the refusal\n"
	  "  --operator NAME  who decides (default: your login name)\n" },
	{ "participants", NULL, 0, 0, ctl_cmd_participants, "participants",
	  "The same as 'tpcctl participant list'.\n" },
	{ "participant", "list", 0, 0, ctl_cmd_participants, "participant list",
	  "List the participants the coordinator knows: connected or not, address, when last\n"
	  "seen, how often they connected, how many decisions they still owe an ack for, the\n"
	  "participant id (state folder) the name is bound to, its newest incarnation, and\n"
	  "how many unresolved prepared transactions it reports (see participant orphans).\n" },
	{ "participant", "orphans", 0, 0, ctl_cmd_participant_orphans, "participant orphans",
	  "List the prepared transactions that participants report they could not resolve in\n"
	  "their resource manager (a PostgreSQL participant's orphans whose outcome it could not\n"
	  "learn: docs/postgresql.md): participant, txid, the resource manager's id, age, the\n"
	  "locks it holds, and why. Exit 0 with none.\n" },
	{ "participant", "forget", O_REASON | O_OPERATOR, ARG_NAME, ctl_cmd_participant_forget,
	  "participant forget NAME --reason TEXT [--operator NAME]",
	  "Remove the binding of participant NAME to its participant id (its state folder),\n"
	  "so that a new state folder may take the name. Only for a participant whose state\n"
	  "folder is really lost: a process started on the old folder is refused from then on,\n"
	  "and anything it held prepared can no longer be resolved. Refused (exit 1) while\n"
	  "NAME is connected or while open transactions still name it. Recorded durably in\n"
	  "the audit log before it takes effect.\n"
	  "  --reason TEXT    why (required; kept in the audit log)\n"
	  "  --operator NAME  who decides (default: your login name)\n" },
	{ "audit", NULL, O_LIMIT, 0, ctl_cmd_audit, "audit [--limit N]",
	  "Show the audit log of operator decisions, newest first: who, when, from where,\n"
	  "what, why, whether forced, the state before, and what it overrode.\n"
	  "  --limit N        the newest N entries (default 100; pages of at most 1000)\n" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_help[] =
	"Global options (anywhere on the line):\n"
	"  -C, --coordinator HOST:PORT[,HOST:PORT...]  the coordinator's protocol port, for\n"
	"                          txn begin (default $TPC_COORDINATOR, else\n"
	"                          " CTL_DEFAULT_COORDINATOR "); a list: the coordinators of one\n"
	"                          group, the leader is found (docs/ha.md); --tls-ca,\n"
	"                          --tls-cert and --tls-key apply to it too\n"
	"  -a, --admin HOST:PORT[,HOST:PORT...]  the coordinator's admin API (default\n"
	"                          $TPC_ADMIN, else " CTL_DEFAULT_ADMIN "); a list: the one whose\n"
	"                          /readyz says 200 (the group's leader) is used, and\n"
	"                          status shows every one's role\n"
	"      --token-file FILE   the admin API's bearer token: the file's first line\n"
	"                          (default $TPC_ADMIN_TOKEN_FILE); needed for every call\n"
	"                          when the coordinator has --admin-token-file\n"
	"  -o, --output FORMAT     table (default) or json: the server's JSON, pretty-printed\n"
	"                          (error bodies too; the exit status says which it is)\n"
	"      --timeout DURATION  give up after this long (default 10s)\n"
	"      --tls-ca FILE       HTTPS: the admin API's certificate must be signed by\n"
	"                          this CA and be for its host (the coordinator's --tls-ca\n"
	"                          file works); without it, plain HTTP\n"
	"      --tls-cert FILE, --tls-key FILE  a client certificate to present (optional)\n"
	"  -h, --help              help (also: tpcctl COMMAND --help)\n"
	"  -V, --version           show the version\n";

/* The closing section of every help page: the shared three codes, then tpcctl's 3. */
static void print_exit_status(FILE *f)
{
	tpc_cli_exit_status(f, "done", "an error: network, server, or the request refused");
	fputs("  3  not found: no such transaction, or an id the coordinator never issued\n", f);
}

static void print_general_help(FILE *f)
{
	fputs("Usage: tpcctl [options] COMMAND\n"
	      "\n"
	      "Find, understand and resolve transactions on a tpc-coordinator through its\n"
	      "admin API, or run one by hand on its protocol port (txn begin).\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fputc('\n', f);
	fputs(global_help, f);
	print_exit_status(f);
}

static void print_command_help(const struct command *cmd)
{
	printf("Usage: tpcctl [options] %s\n\n%s\n%s", cmd->synopsis, cmd->help, global_help);
	print_exit_status(stdout);
}

static void print_group_help(const char *group)
{
	printf("Usage: tpcctl [options] %s SUBCOMMAND\n\n", group);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].group, group) == 0)
			printf("  %s\n", commands[i].synopsis);
	printf("\nSee tpcctl %s SUBCOMMAND --help.\n", group);
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("tpcctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'tpcctl --help'.\n", stderr);
	return CTL_EXIT_USAGE;
}

/* ---- arguments -------------------------------------------------------------------- */

enum { OPT_TOKEN = 256, OPT_TIMEOUT, OPT_STATE, OPT_OLDER, OPT_LIMIT, OPT_REASON, OPT_FORCE,
       OPT_OPERATOR, OPT_TLS_CA, OPT_TLS_CERT, OPT_TLS_KEY, OPT_KEY, OPT_TXN_TIMEOUT };

static const struct option long_opts[] = {
	{ "admin", required_argument, NULL, 'a' },
	{ "coordinator", required_argument, NULL, 'C' },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "txn-timeout", required_argument, NULL, OPT_TXN_TIMEOUT },
	{ "token-file", required_argument, NULL, OPT_TOKEN },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "output", required_argument, NULL, 'o' },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "older-than", required_argument, NULL, OPT_OLDER },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "operator", required_argument, NULL, OPT_OPERATOR },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* What one pass over argv found, before it is checked against the command. */
struct parsed {
	unsigned seen;           /* O_* bits */
	int help, version;
	const char *words[4];
	int nwords;
};

static int check_state(struct ctl *c, const char *v)
{
	static const char *const states[] = { "ACTIVE", "PREPARING", "LOGGING", "COMMITTING" };

	if (strcasecmp(v, "stuck") == 0) {
		c->state = "stuck";
		return 0;
	}
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcasecmp(v, states[i]) == 0) {
			c->state = states[i];
			return 0;
		}
	return usage_error("--state %s: expected ACTIVE, PREPARING, LOGGING, COMMITTING or stuck",
			   v);
}

static int check_number(const char *opt, const char *v, uint64_t max)
{
	uint64_t n;

	if (tpc_parse_u64(v, 1, max, &n))
		return tpc_cli_bad_value("tpcctl", opt, v, "a positive whole number");
	return 0;
}

static int set_output(struct ctl *c, const char *v)
{
	if (strcmp(v, "json") == 0)
		c->json = 1;
	else if (strcmp(v, "table") == 0)
		c->json = 0;
	else
		return usage_error("-o %s: expected table or json", v);
	return 0;
}

/* A duration option the house way (common/cli.h): "--timeout 10" says it needs a unit. */
static int duration(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *ms)
{
	return tpc_cli_duration("tpcctl", opt, v, lo, hi, ms) ? CTL_EXIT_USAGE : 0;
}

static int set_timeout(struct ctl *c, const char *v)
{
	uint64_t ms;

	if (duration("--timeout", v, 1, 3600000, &ms))
		return CTL_EXIT_USAGE;
	c->timeout_ms = (int)ms;
	return 0;
}

static int take_option(struct ctl *c, struct parsed *p, int opt, const char *v)
{
	uint64_t ms;

	switch (opt) {
	case 'a': c->admin = v; return 0;
	case 'C': c->coordinator = v; return 0;
	case OPT_KEY: p->seen |= O_KEY; c->key = v; return 0;
	case OPT_TXN_TIMEOUT:
		p->seen |= O_TXN_TIMEOUT;
		if (duration("--txn-timeout", v, 1, UINT32_MAX, &ms))
			return CTL_EXIT_USAGE;
		c->txn_timeout_ms = (uint32_t)ms;
		return 0;
	case OPT_TOKEN: c->token_file = v; return 0;
	case OPT_TLS_CA: c->tls.ca = v; return 0;
	case OPT_TLS_CERT: c->tls.cert = v; return 0;
	case OPT_TLS_KEY: c->tls.key = v; return 0;
	case 'o': return set_output(c, v);
	case OPT_TIMEOUT: return set_timeout(c, v);
	case 'h': p->help = 1; return 0;
	case 'V': p->version = 1; return 0;
	case OPT_STATE: p->seen |= O_STATE; return check_state(c, v);
	case OPT_OLDER:
		p->seen |= O_OLDER;
		c->older_than = v;
		return duration("--older-than", v, 0, UINT64_MAX / 2, &ms);
	case OPT_LIMIT: p->seen |= O_LIMIT; c->limit = v; return check_number("--limit", v, 1000000);
	case OPT_REASON: p->seen |= O_REASON; c->reason = v; return 0;
	case OPT_FORCE: p->seen |= O_FORCE; c->force = 1; return 0;
	case OPT_OPERATOR: p->seen |= O_OPERATOR; c->operator_name = v; return 0;
	}
	return usage_error("%s", "unknown option");
}

static int parse_args(struct ctl *c, struct parsed *p, int argc, char **argv)
{
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":a:C:o:hV", long_opts, NULL)) != -1) {
		if (opt == '?' || opt == ':')
			return tpc_cli_getopt_error("tpcctl", opt, argv);
		rc = take_option(c, p, opt, optarg);
		if (rc)
			return rc;
	}
	for (; optind < argc; optind++) {
		if (p->nwords == (int)(sizeof(p->words) / sizeof(p->words[0])))
			return usage_error("too many arguments: '%s'", argv[optind]);
		p->words[p->nwords++] = argv[optind];
	}
	return 0;
}

static const struct command *find_command(const struct parsed *p, int *used)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *cmd = &commands[i];
		if (p->nwords < 1 || strcmp(p->words[0], cmd->group) != 0)
			continue;
		if (!cmd->name) {
			*used = 1;
			return cmd;
		}
		if (p->nwords >= 2 && strcmp(p->words[1], cmd->name) == 0) {
			*used = 2;
			return cmd;
		}
	}
	return NULL;
}

static int is_group(const char *word)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].name && strcmp(commands[i].group, word) == 0)
			return 1;
	return 0;
}

/* A decimal 64-bit transaction id, not 0. */
static int check_txid(const char *v)
{
	return check_number("transaction id", v, UINT64_MAX);
}

static int check_command(struct ctl *c, const struct command *cmd, const struct parsed *p,
			 int used)
{
	int nargs = p->nwords - used;
	static const char *const names[] = { "state", "older-than", "limit", "reason", "force",
					     "operator", "key", "txn-timeout" };
	unsigned extra = p->seen & ~cmd->opts;

	for (unsigned i = 0; extra && i < sizeof(names) / sizeof(names[0]); i++) {
		if (extra & (1u << i)) {
			fprintf(stderr, "tpcctl: --%s does not apply to 'tpcctl %s%s%s'\n",
				names[i], cmd->group, cmd->name ? " " : "", cmd->name ? cmd->name : "");
			return CTL_EXIT_USAGE;
		}
	}
	if (nargs != (cmd->takes_id != ARG_NONE)) {
		fprintf(stderr, "tpcctl: usage: tpcctl %s\n", cmd->synopsis);
		return CTL_EXIT_USAGE;
	}
	if (cmd->takes_id == ARG_TXID) {
		c->txid = p->words[used];
		if (check_txid(c->txid))
			return CTL_EXIT_USAGE;
	}
	if (cmd->takes_id == ARG_NAME) {
		c->part_name = p->words[used];
		if (!*c->part_name || strlen(c->part_name) > 255)
			return usage_error("participant name '%s': expected 1 to 255 bytes",
					   c->part_name);
	}
	if ((cmd->opts & O_REASON) && (!c->reason || !*c->reason)) {
		fprintf(stderr, "tpcctl: 'tpcctl %s %s' needs --reason TEXT (it goes into the "
			"audit log)\n", cmd->group, cmd->name);
		if (strcmp(cmd->group, "txn") == 0)
			fputs("  (that is an operator's decision; a transaction of your own is "
			      "committed or aborted in its 'tpcctl txn begin' session)\n", stderr);
		return CTL_EXIT_USAGE;
	}
	return 0;
}

/* ---- environment and token -------------------------------------------------------- */

static int read_token(struct ctl *c)
{
	char line[4096];
	FILE *f;
	size_t n;

	if (!c->token_file || !*c->token_file)
		return 0;
	f = fopen(c->token_file, "r");
	if (!f) {
		fprintf(stderr, "tpcctl: cannot read the token file %s: %s\n", c->token_file,
			strerror(errno));
		return CTL_EXIT_USAGE;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	if (!n) {
		fprintf(stderr, "tpcctl: the token file %s is empty\n", c->token_file);
		return CTL_EXIT_USAGE;
	}
	c->token = strdup(s);
	return c->token ? 0 : CTL_EXIT_ERROR;
}

static void defaults(struct ctl *c)
{
	memset(c, 0, sizeof(*c));
	c->admin = getenv("TPC_ADMIN");
	if (!c->admin || !*c->admin)
		c->admin = CTL_DEFAULT_ADMIN;
	c->token_file = getenv("TPC_ADMIN_TOKEN_FILE");
	c->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
	c->coordinator = getenv("TPC_COORDINATOR");
	if (!c->coordinator || !*c->coordinator)
		c->coordinator = CTL_DEFAULT_COORDINATOR;
}

/* `tpcctl help [WORDS]` and `--help` anywhere: the most specific help there is. */
static int help(const struct parsed *p, int skip)
{
	struct parsed q = *p;
	const struct command *cmd;
	int used;

	memmove(q.words, q.words + skip, sizeof(q.words) - (size_t)skip * sizeof(q.words[0]));
	q.nwords -= skip;
	cmd = find_command(&q, &used);
	if (cmd)
		print_command_help(cmd);
	else if (q.nwords >= 1 && is_group(q.words[0]))
		print_group_help(q.words[0]);
	else if (q.nwords >= 1)
		return usage_error("unknown command '%s'", q.words[0]);
	else
		print_general_help(stdout);
	return CTL_EXIT_OK;
}

static int run(struct ctl *c, const struct parsed *p)
{
	const struct command *cmd;
	int used = 0, rc;

	if (p->version)
		return tpc_cli_version("tpcctl");
	if (p->help || (p->nwords && strcmp(p->words[0], "help") == 0))
		return help(p, p->help ? 0 : 1);
	if (p->nwords == 0) {
		print_general_help(stderr);
		return CTL_EXIT_USAGE;
	}
	cmd = find_command(p, &used);
	if (!cmd && is_group(p->words[0])) {
		if (p->nwords >= 2)
			return usage_error("unknown subcommand '%s'", p->words[1]);
		fprintf(stderr, "tpcctl: '%s' needs a subcommand\n", p->words[0]);
		return CTL_EXIT_USAGE;
	}
	if (!cmd)
		return usage_error("unknown command '%s'", p->words[0]);
	rc = check_command(c, cmd, p, used);
	if (rc == 0)
		rc = read_token(c);
	if (rc == 0)
		ctl_pick_admin(c);
	return rc ? rc : cmd->run(c);
}

int main(int argc, char **argv)
{
	struct ctl c;
	struct parsed p = { 0 };
	int rc;

	defaults(&c);
	rc = parse_args(&c, &p, argc, argv);
	if (rc == 0)
		rc = run(&c, &p);
	free(c.token);
	return rc;
}
