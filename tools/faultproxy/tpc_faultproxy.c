/*
 * tpc_faultproxy.c - tpc-faultproxy's command line, listeners, signals and main loop.
 *
 * A frame-aware TCP proxy for failure testing: put it between any tpc peer and the
 * coordinator (or a tpc-kv service) and it drops, delays, duplicates and reorders whole
 * frames, resets connections, partitions and heals, as its flags and its control port
 * say. The forwarding is in proxy_conn.c, the control port in proxy_control.c, the
 * seeded decisions and the parsers in proxy_core.c.
 *
 * Owns the struct fp_proxy (on main's stack) and everything hanging off it; the only
 * stdout output is the one "listening ..." line, so harnesses can read the ports.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "cli.h"
#include "proxy.h"


#define PROG "tpc-faultproxy"
#define DEFAULT_CONTROL "127.0.0.1:0"
#define DEFAULT_HOLD_MS 100u

static const char usage_text[] =
	"Usage: tpc-faultproxy --listen HOST:PORT --upstream HOST:PORT [options]\n"
	"\n"
	"A frame-aware TCP proxy for failure testing. Put it between a tpc peer and the\n"
	"coordinator (or a tpc-kv service): each accepted connection gets its own upstream\n"
	"connection, and every whole frame (4-byte big-endian length, then the body) going\n"
	"either way may be dropped, delayed, duplicated or reordered. Partial frames are\n"
	"never forwarded. The same --seed and the same traffic give the same decisions.\n"
	"\n"
	"Options:\n"
	"  -l, --listen HOST:PORT   where peers connect (port 0: any free port)\n"
	"  -u, --upstream HOST:PORT where the proxy connects for each of them\n"
	"      --control HOST:PORT  control port, one command per line (default\n"
	"                           127.0.0.1:0; 'off' for none)\n"
	"  -s, --seed N             PRNG seed (default: from the clock; logged at start\n"
	"                           and shown by the show command)\n"
	"      --drop PCT           drop a frame with this probability (0-100, default 0)\n"
	"      --dup PCT            send a frame twice with this probability (default 0)\n"
	"      --reorder PCT        hold a frame back and send it right after the next\n"
	"                           frame going the same way (default 0)\n"
	"      --reorder-hold DURATION send a held frame anyway when no next frame came in\n"
	"                           this long (default 100ms)\n"
	"      --delay DURATION     delay every frame this long (default 0)\n"
	"      --jitter DURATION    add a uniform random 0..DURATION to each delay (default 0);\n"
	"                           frames keep their order unless reordered\n"
	"      --max-frame BYTES    largest frame body; a larger one (or an empty one) is\n"
	"                           a protocol error and closes that connection pair\n"
	"                           (default 1M, max 64M)\n"
	"      --log-level LEVEL    debug, info, warn or error (default info)\n"
	"  -h, --help               show this help\n"
	"  -V, --version            show the version\n"
	"\n"
	"Percentages take up to four decimals (0.5, 12.25); durations need a unit: ms, s,\n"
	"m or h (50ms, 1.5s; at most 1h; a bare number other than 0 is an error); sizes\n"
	"take K, M or G.\n"
	"Faults apply to both directions, each direction and each connection drawing from\n"
	"its own stream of the seed (connections are numbered in accept order).\n"
	"\n"
	"On start it prints one line on stdout, with the ports actually bound:\n"
	"  listening HOST:PORT control HOST:PORT      (control off: 'control off')\n"
	"\n"
	"Control commands (reply: one line, 'ok ...' or 'error ...'):\n"
	"  partition        stop forwarding both ways: frames are black-holed, connections\n"
	"                   stay open, new ones are accepted (upstream is connected for\n"
	"                   them at the heal) and their frames black-holed too\n"
	"  heal             forward again; black-holed frames are gone for good\n"
	"  reset            close both sides of every connection abruptly (RST);\n"
	"                   reply: ok reset N (N connections)\n"
	"  set KNOB VALUE   KNOB: drop, dup, reorder (PCT), delay, jitter, reorder-hold\n"
	"                   (DURATION)\n"
	"  stats            ok conns=N frames_in=N forwarded=N dropped=N duplicated=N\n"
	"                   reordered=N delayed=N resets=N partitioned=0|1\n"
	"                   (conns: open pairs now; frames count both directions; dropped\n"
	"                   includes black-holed frames; resets counts pairs reset)\n"
	"  show             the current settings\n"
	"  quit             stop the proxy\n"
	"\n"
	"Signals: SIGUSR1 resets every connection; SIGTERM or SIGINT stops cleanly.\n";

enum {
	OPT_DROP = 256, OPT_DUP, OPT_REORDER, OPT_HOLD, OPT_DELAY, OPT_JITTER, OPT_MAX_FRAME,
	OPT_LOG_LEVEL, OPT_CONTROL,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "upstream", required_argument, NULL, 'u' },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "seed", required_argument, NULL, 's' },
	{ "drop", required_argument, NULL, OPT_DROP },
	{ "dup", required_argument, NULL, OPT_DUP },
	{ "reorder", required_argument, NULL, OPT_REORDER },
	{ "reorder-hold", required_argument, NULL, OPT_HOLD },
	{ "delay", required_argument, NULL, OPT_DELAY },
	{ "jitter", required_argument, NULL, OPT_JITTER },
	{ "max-frame", required_argument, NULL, OPT_MAX_FRAME },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* ---- command line ----------------------------------------------------------------- */

static int usage_error(const char *opt, const char *val, const char *why)
{
	if (val)
		return tpc_usage_error(PROG, "--%s %s: %s", opt, val, why);
	return tpc_usage_error(PROG, "%s", why);
}

static int knob_opt(struct fp_config *cfg, enum fp_knob k, const char *val)
{
	const char *why = NULL;
	uint32_t v;

	if (fp_knob_parse(k, val, &v, &why) < 0)
		return usage_error(k == FP_KNOB_HOLD ? "reorder-hold" : fp_knob_name(k), val, why);
	fp_knob_apply(&cfg->faults, k, v);
	return 0;
}

static int seed_opt(struct fp_config *cfg, const char *val)
{
	char *end;

	errno = 0;
	cfg->seed = strtoull(val, &end, 0);
	if (errno || end == val || *end || val[0] == '-')
		return usage_error("seed", val, "expected an unsigned 64-bit number");
	return 0;
}

static int max_frame_opt(struct fp_config *cfg, const char *val)
{
	uint64_t n;

	if (tpc_parse_size(val, &n) || n < 1 || n > (64u << 20))
		return usage_error("max-frame", val, "expected a size from 1 to 64M");
	cfg->max_frame = (uint32_t)n;
	return 0;
}

static int apply_opt(struct fp_proxy *px, int c, const char *v)
{
	struct fp_config *cfg = &px->cfg;

	switch (c) {
	case 'l': cfg->listen = v; return 0;
	case 'u': cfg->upstream = v; return 0;
	case OPT_CONTROL: cfg->control = strcmp(v, "off") == 0 ? NULL : v; return 0;
	case 's': return seed_opt(cfg, v);
	case OPT_DROP: return knob_opt(cfg, FP_KNOB_DROP, v);
	case OPT_DUP: return knob_opt(cfg, FP_KNOB_DUP, v);
	case OPT_REORDER: return knob_opt(cfg, FP_KNOB_REORDER, v);
	case OPT_HOLD: return knob_opt(cfg, FP_KNOB_HOLD, v);
	case OPT_DELAY: return knob_opt(cfg, FP_KNOB_DELAY, v);
	case OPT_JITTER: return knob_opt(cfg, FP_KNOB_JITTER, v);
	case OPT_MAX_FRAME: return max_frame_opt(cfg, v);
	case OPT_LOG_LEVEL: return tpc_cli_log_level(PROG, "--log-level", v, &px->lg.min);
	default: return usage_error(NULL, NULL, "unknown option");
	}
}

static int resolve_opt(const char *opt, const char *val, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	char err[160];

	*len = sizeof(*ss);
	if (tpc_parse_hostport(val, ss, len, err, sizeof(err)) < 0)
		return usage_error(opt, val, err);
	return 0;
}

static in_port_t port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)ss)->sin6_port;
	return ((const struct sockaddr_in *)ss)->sin_port;
}

/* Resolve the three addresses; the upstream port must be a real one. */
static int resolve_addrs(struct fp_config *cfg)
{
	if (resolve_opt("listen", cfg->listen, &cfg->listen_addr, &cfg->listen_len) ||
	    resolve_opt("upstream", cfg->upstream, &cfg->upstream_addr, &cfg->upstream_len) ||
	    (cfg->control &&
	     resolve_opt("control", cfg->control, &cfg->control_addr, &cfg->control_len)))
		return 2;
	if (port_of(&cfg->upstream_addr) == 0)
		return usage_error("upstream", cfg->upstream, "port 0 is not a place to connect to");
	return 0;
}

/* 0: run; 1: exit 0 (--help, --version); 2: bad usage. */
static int parse_args(struct fp_proxy *px, int argc, char **argv, int *seeded)
{
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:u:s:hV", long_opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			tpc_cli_exit_status(stdout, "stopped cleanly (SIGTERM, SIGINT or quit)",
					    "could not start (an address in use, say)");
			return 1;
		}
		if (c == 'V')
			return tpc_cli_version(PROG) + 1;
		if (c == '?' || c == ':')
			return tpc_cli_getopt_error(PROG, c, argv);
		if (c == 's')
			*seeded = 1;
		if ((rc = apply_opt(px, c, optarg)) != 0)
			return rc;
	}
	if (optind < argc)
		return tpc_usage_error(PROG, "unexpected argument '%s'", argv[optind]);
	if (!px->cfg.listen || !px->cfg.upstream)
		return usage_error(NULL, NULL, "--listen and --upstream are required");
	return resolve_addrs(&px->cfg);
}

/* ---- listeners and signals -------------------------------------------------------- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	fp_pair_accept(arg, fd);
}

static void ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			  int len, void *arg)
{
	fp_ctl_accept(arg, fd);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct fp_proxy *px = arg;
	int err = EVUTIL_SOCKET_ERROR();

	/* Out of descriptors and the like: keep going, new connections will wait. */
	tpc_logf(&px->lg, TPC_LOG_WARN, "accept: %s", evutil_socket_error_to_string(err));
}

static struct evconnlistener *listen_on(struct fp_proxy *px, const char *what,
					const char *hostport, const struct sockaddr_storage *ss,
					socklen_t len, evconnlistener_cb cb)
{
	struct evconnlistener *l;

	l = evconnlistener_new_bind(px->base, cb, px,
				    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				    -1, (const struct sockaddr *)ss, (int)len);
	if (!l) {
		tpc_logf(&px->lg, TPC_LOG_ERROR, "cannot listen on %s (--%s): %s", hostport, what,
			 strerror(errno));
		return NULL;
	}
	evconnlistener_set_error_cb(l, accept_error_cb);
	return l;
}

/* "HOST:PORT" of a listener as bound ("[v6]:PORT" for IPv6). */
static void bound_name(struct evconnlistener *l, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &len) < 0) {
		snprintf(out, cap, "?:0");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
	}
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct fp_proxy *px = arg;

	tpc_logf(&px->lg, TPC_LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopbreak(px->base);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
	struct fp_proxy *px = arg;
	size_t n = fp_reset_all(px);

	tpc_logf(&px->lg, TPC_LOG_INFO, "SIGUSR1: reset %zu connection(s)", n);
}

static int add_signal(struct fp_proxy *px, struct event **ev, int sig, event_callback_fn cb)
{
	*ev = evsignal_new(px->base, sig, cb, px);
	return *ev && evsignal_add(*ev, NULL) == 0 ? 0 : -1;
}

static int setup(struct fp_proxy *px)
{
	char lname[80], cname[80] = "off";

	px->base = event_base_new();
	if (!px->base) {
		tpc_logf(&px->lg, TPC_LOG_ERROR, "cannot create the event loop");
		return 1;
	}
	px->listener = listen_on(px, "listen", px->cfg.listen, &px->cfg.listen_addr,
				 px->cfg.listen_len, accept_cb);
	if (!px->listener)
		return 1;
	if (px->cfg.control) {
		px->ctl_listener = listen_on(px, "control", px->cfg.control, &px->cfg.control_addr,
					     px->cfg.control_len, ctl_accept_cb);
		if (!px->ctl_listener)
			return 1;
		bound_name(px->ctl_listener, cname, sizeof(cname));
	}
	if (add_signal(px, &px->sig_term, SIGTERM, on_stop_signal) < 0 ||
	    add_signal(px, &px->sig_int, SIGINT, on_stop_signal) < 0 ||
	    add_signal(px, &px->sig_usr1, SIGUSR1, on_usr1) < 0) {
		tpc_logf(&px->lg, TPC_LOG_ERROR, "cannot install signal handlers");
		return 1;
	}
	bound_name(px->listener, lname, sizeof(lname));
	tpc_logf(&px->lg, TPC_LOG_INFO, "listening on %s, upstream %s, control %s, seed %llu", lname,
		 px->cfg.upstream, cname, (unsigned long long)px->cfg.seed);
	printf("listening %s control %s\n", lname, cname);
	fflush(stdout);
	return 0;
}

static void teardown(struct fp_proxy *px)
{
	fp_close_all(px);
	fp_ctl_close_all(px);
	if (px->listener)
		evconnlistener_free(px->listener);
	if (px->ctl_listener)
		evconnlistener_free(px->ctl_listener);
	if (px->sig_term)
		event_free(px->sig_term);
	if (px->sig_int)
		event_free(px->sig_int);
	if (px->sig_usr1)
		event_free(px->sig_usr1);
	if (px->base)
		event_base_free(px->base);
}

int main(int argc, char **argv)
{
	struct fp_proxy px = {
		.lg = { PROG, TPC_LOG_INFO },
		.cfg = { .control = DEFAULT_CONTROL, .max_frame = TPC_FRAME_DEFAULT_MAX,
			 .faults = { .hold_ms = DEFAULT_HOLD_MS } },
	};
	int seeded = 0;
	int rc = parse_args(&px, argc, argv, &seeded);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (!seeded)
		px.cfg.seed = tpc_wall_ms() ^ ((uint64_t)getpid() << 32) ^ tpc_now_ns();
	px.faults = px.cfg.faults;
	LIST_INIT(&px.pairs);
	LIST_INIT(&px.ctls);
	signal(SIGPIPE, SIG_IGN);
	rc = setup(&px);
	if (rc == 0)
		event_base_dispatch(px.base);
	teardown(&px);
	return rc;
}
