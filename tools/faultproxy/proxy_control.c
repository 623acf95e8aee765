/*
 * proxy_control.c - the control port: one command per line in, one reply line out
 * ("ok ..." or "error ..."), applied to the proxy between two loop iterations, so a
 * command takes effect for every frame read after its reply is sent.
 *
 * Invariants: a control connection is freed exactly once, by ctl_free(); a reply is one
 * line with no control characters; a line longer than CTL_LINE_MAX closes the control
 * connection (after an error reply), never the proxy.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy.h"

#define CTL_LINE_MAX 1024
#define CTL_REPLY_MAX 512

static void ctl_free(struct fp_ctl *c)
{
	struct fp_proxy *px = c->px;

	bufferevent_free(c->bev);
	LIST_REMOVE(c, link);
	px->nctls--;
	free(c);
}

/* The last reply is written: close, and stop the proxy if it was asked to. */
static void ctl_finish(struct fp_ctl *c)
{
	struct fp_proxy *px = c->px;
	int quit = c->quit;

	ctl_free(c);
	if (quit)
		event_base_loopbreak(px->base);
}

static void reply(struct fp_ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(struct fp_ctl *c, const char *fmt, ...)
{
	char buf[CTL_REPLY_MAX];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	for (int i = 0; i < n; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	}
	buf[n++] = '\n';
	evbuffer_add(bufferevent_get_output(c->bev), buf, (size_t)n);
}

void fp_stats_format(const struct fp_proxy *px, char *buf, size_t cap)
{
	const struct fp_stats *s = &px->st;

	snprintf(buf, cap,
		 "conns=%zu frames_in=%llu forwarded=%llu dropped=%llu duplicated=%llu "
		 "reordered=%llu delayed=%llu resets=%llu partitioned=%d",
		 px->npairs, (unsigned long long)s->frames_in, (unsigned long long)s->forwarded,
		 (unsigned long long)s->dropped, (unsigned long long)s->duplicated,
		 (unsigned long long)s->reordered, (unsigned long long)s->delayed,
		 (unsigned long long)s->resets, px->partitioned ? 1 : 0);
}

static void reply_show(struct fp_ctl *c)
{
	const struct fp_proxy *px = c->px;
	char v[FP_KNOB_COUNT][24];

	for (int k = 0; k < FP_KNOB_COUNT; k++)
		fp_knob_format((enum fp_knob)k, fp_knob_get(&px->faults, (enum fp_knob)k), v[k],
			       sizeof(v[k]));
	reply(c, "ok drop=%s dup=%s reorder=%s delay=%s jitter=%s reorder-hold=%s seed=%llu "
		 "max-frame=%u upstream=%s partitioned=%d",
	      v[FP_KNOB_DROP], v[FP_KNOB_DUP], v[FP_KNOB_REORDER], v[FP_KNOB_DELAY],
	      v[FP_KNOB_JITTER], v[FP_KNOB_HOLD], (unsigned long long)px->cfg.seed,
	      (unsigned)px->cfg.max_frame, px->cfg.upstream, px->partitioned ? 1 : 0);
}

static void ctl_do(struct fp_ctl *c, const struct fp_cmd *cmd)
{
	struct fp_proxy *px = c->px;
	char buf[CTL_REPLY_MAX];

	switch (cmd->kind) {
	case FP_CMD_PARTITION:
		fp_partition(px);
		reply(c, "ok partitioned");
		break;
	case FP_CMD_HEAL:
		fp_heal(px);
		reply(c, "ok healed");
		break;
	case FP_CMD_RESET:
		reply(c, "ok reset %zu", fp_reset_all(px));
		break;
	case FP_CMD_SET:
		fp_knob_apply(&px->faults, cmd->knob, cmd->value);
		reply(c, "ok %s=%s", fp_knob_name(cmd->knob),
		      fp_knob_format(cmd->knob, cmd->value, buf, sizeof(buf)));
		break;
	case FP_CMD_STATS:
		fp_stats_format(px, buf, sizeof(buf));
		reply(c, "ok %s", buf);
		break;
	case FP_CMD_SHOW:
		reply_show(c);
		break;
	case FP_CMD_QUIT:
		reply(c, "ok bye");
		c->quit = 1;
		c->closing = 1;
		break;
	}
}

static void ctl_line(struct fp_ctl *c, char *line)
{
	struct fp_cmd cmd;
	char why[CTL_REPLY_MAX - 16];
	char copy[128]; /* for the log: parsing splits the line */

	snprintf(copy, sizeof(copy), "%s", line);
	if (fp_cmd_parse(line, &cmd, why, sizeof(why)) < 0) {
		reply(c, "error %s", why);
		return;
	}
	if (cmd.kind != FP_CMD_STATS && cmd.kind != FP_CMD_SHOW)
		tpc_logf(&c->px->lg, TPC_LOG_INFO, "control: %s", copy);
	ctl_do(c, &cmd);
}

static void ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct fp_ctl *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = 0;
	char *line;

	while (!c->closing && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		if (len <= CTL_LINE_MAX)
			ctl_line(c, line);
		free(line);
		if (len > CTL_LINE_MAX)
			break;
	}
	if (!c->closing && (len > CTL_LINE_MAX || evbuffer_get_length(in) > CTL_LINE_MAX)) {
		reply(c, "error line longer than %d bytes; closing", CTL_LINE_MAX);
		c->closing = 1;
	}
	if (!c->closing)
		return;
	bufferevent_disable(bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ctl_finish(c);
}

static void ctl_write_cb(struct bufferevent *bev, void *arg)
{
	struct fp_ctl *c = arg;

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ctl_finish(c);
}

static void ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	ctl_finish(arg); /* EOF or error: nobody to reply to */
}

void fp_ctl_accept(struct fp_proxy *px, int fd)
{
	struct fp_ctl *c = NULL;

	if (px->nctls >= FP_MAX_CTLS) {
		tpc_logf(&px->lg, TPC_LOG_WARN, "%u control connections open; refusing another",
			 FP_MAX_CTLS);
		goto out_close;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out_close;
	c->px = px;
	c->bev = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto out_free;
	LIST_INSERT_HEAD(&px->ctls, c, link);
	px->nctls++;
	bufferevent_setcb(c->bev, ctl_read_cb, ctl_write_cb, ctl_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return;
out_free:
	free(c);
out_close:
	close(fd);
}

void fp_ctl_close_all(struct fp_proxy *px)
{
	struct fp_ctl *c;

	while ((c = LIST_FIRST(&px->ctls)))
		ctl_free(c);
}
