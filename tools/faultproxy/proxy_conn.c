/*
 * proxy_conn.c - connection pairs: accept, connect upstream, forward whole frames in
 * both directions with the faults the proxy's settings draw, reset, partition and heal.
 *
 * A frame read from one side gets its verdict as it arrives (drop, duplicate, hold for
 * reordering, delay), so the verdicts depend only on the seed, the pair's accept order
 * and the frames, never on timing. Invariants:
 *   - only whole frames reach a sink's output buffer, a frame's bytes contiguously;
 *   - release times never decrease along a direction's queue, so delay and jitter keep
 *     the order; only a held frame overtakes, and only by its successor;
 *   - while partitioned, no frame is written on, and nothing waits in any queue;
 *   - a pair is freed exactly once, by pair_free(), which unlinks it from the proxy;
 *   - every frame read is counted once as forwarded or dropped (or is still waiting).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy.h"
#include "wire.h"

#define FP_HIGH_WATER (4u << 20) /* pause a source once this much waits for its sink */
#define FP_LOW_WATER (1u << 20)  /* and resume it once the sink is down to this */
#define FP_DRAIN_MS 5000         /* a pair with one side gone closes after this at most */
#define FP_MAX_READ (64 * 1024)  /* bytes one read() may take: many frames per call */

static const char *const side_name[2] = { "client", "upstream" };

static void pair_free(struct fp_pair *p, int rst);

/* ---- small helpers ---------------------------------------------------------------- */

static struct bufferevent *dir_sink(const struct fp_dir *d)
{
	return d->pair->bev[1 - d->from];
}

static struct bufferevent *dir_source(const struct fp_dir *d)
{
	return d->pair->bev[d->from];
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Make close() send an RST instead of a FIN. */
static void set_linger0(struct bufferevent *bev)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static struct fp_frame *frame_new(const uint8_t *body, uint32_t len, uint64_t due, int dup)
{
	struct fp_frame *f = malloc(sizeof(*f) + len);

	if (!f)
		return NULL;
	f->due_ms = due;
	f->dup = dup;
	f->size = len;
	memcpy(f->bytes, body, len);
	return f;
}

/* ---- writing to the sink ---------------------------------------------------------- */

/* Write one frame (twice if @p dup) to the direction's sink. */
static void sink_put(struct fp_dir *d, const uint8_t *body, uint32_t len, int dup)
{
	struct fp_proxy *px = d->pair->px;
	struct bufferevent *sink = dir_sink(d);
	uint8_t hdr[TPC_FRAME_HEADER_SIZE];

	if (!sink) {
		px->st.dropped++;
		return;
	}
	tpc_frame_put_header(hdr, len);
	for (int i = 0; i <= dup; i++) {
		struct evbuffer *out = bufferevent_get_output(sink);

		if (evbuffer_expand(out, sizeof(hdr) + len) < 0 || evbuffer_add(out, hdr, sizeof(hdr)) < 0 ||
		    evbuffer_add(out, body, len) < 0) {
			tpc_logf(&px->lg, TPC_LOG_ERROR, "pair %llu: out of memory writing a frame",
				 (unsigned long long)d->pair->id);
			px->st.dropped++;
			return;
		}
	}
	px->st.forwarded++;
	if (dup)
		px->st.duplicated++;
}

static void queue_pop_free(struct fp_dir *d, struct fp_frame *f)
{
	TAILQ_REMOVE(&d->queue, f, link);
	d->queued_bytes -= f->size;
	free(f);
}

/* Append @p f, keeping release times in order. */
static void dir_push(struct fp_dir *d, struct fp_frame *f)
{
	struct fp_frame *tail = TAILQ_LAST(&d->queue, fp_frame_queue);

	if (tail && f->due_ms < tail->due_ms)
		f->due_ms = tail->due_ms;
	TAILQ_INSERT_TAIL(&d->queue, f, link);
	d->queued_bytes += f->size;
}

/* Write every queued frame due by @p now (all of them when @p now is UINT64_MAX). */
static void dir_flush_due(struct fp_dir *d, uint64_t now)
{
	struct fp_frame *f;

	while ((f = TAILQ_FIRST(&d->queue)) && f->due_ms <= now) {
		sink_put(d, f->bytes, f->size, f->dup);
		queue_pop_free(d, f);
	}
}

/* Arm the timer for the next release (a queued frame, or the held frame's limit). */
static void dir_arm(struct fp_dir *d)
{
	struct fp_frame *head = TAILQ_FIRST(&d->queue);
	uint64_t next = UINT64_MAX, now;

	if (head)
		next = head->due_ms;
	if (d->held && d->held_until_ms < next)
		next = d->held_until_ms;
	if (next == UINT64_MAX) {
		evtimer_del(d->timer);
		return;
	}
	now = tpc_now_ms();
	uint64_t wait = next > now ? next - now : 0;
	struct timeval tv = tpc_ms_tv(wait);
	evtimer_add(d->timer, &tv);
}

/* Drop everything waiting in @p d (counted as dropped). */
static void dir_discard(struct fp_dir *d)
{
	struct fp_proxy *px = d->pair->px;
	struct fp_frame *f;

	while ((f = TAILQ_FIRST(&d->queue))) {
		px->st.dropped++;
		queue_pop_free(d, f);
	}
	if (d->held) {
		px->st.dropped++;
		free(d->held);
		d->held = NULL;
	}
	if (d->timer)
		evtimer_del(d->timer);
}

/* ---- back-pressure ---------------------------------------------------------------- */

static size_t dir_backlog(const struct fp_dir *d)
{
	struct bufferevent *sink = dir_sink(d);

	return d->queued_bytes + (sink ? evbuffer_get_length(bufferevent_get_output(sink)) : 0);
}

static void dir_throttle(struct fp_dir *d)
{
	if (d->throttled || dir_backlog(d) <= FP_HIGH_WATER || !dir_source(d))
		return;
	bufferevent_disable(dir_source(d), EV_READ);
	d->throttled = 1;
}

static void dir_unthrottle(struct fp_dir *d)
{
	if (!d->throttled || dir_backlog(d) > FP_LOW_WATER)
		return;
	d->throttled = 0;
	if (dir_source(d) && !d->pair->closing)
		bufferevent_enable(dir_source(d), EV_READ);
}

/* ---- frames arriving -------------------------------------------------------------- */

/* Forward a frame now or queue it, then send the held frame (if any) right after it. */
static void dir_pass(struct fp_dir *d, const uint8_t *body, uint32_t len, int dup, uint64_t due,
		     uint64_t now)
{
	struct fp_proxy *px = d->pair->px;

	if (due <= now && TAILQ_EMPTY(&d->queue) && !d->held) {
		sink_put(d, body, len, dup); /* the common case: no copy */
		return;
	}
	struct fp_frame *f = frame_new(body, len, due, dup);
	if (!f) {
		tpc_logf(&px->lg, TPC_LOG_ERROR, "out of memory queueing a frame; dropped");
		px->st.dropped++;
		return;
	}
	dir_push(d, f);
	if (d->held) {
		dir_push(d, d->held);
		d->held = NULL;
		px->st.reordered++;
	}
	dir_flush_due(d, now);
	dir_arm(d);
}

static void dir_hold(struct fp_dir *d, const uint8_t *body, uint32_t len, int dup, uint64_t due,
		     uint64_t now)
{
	struct fp_proxy *px = d->pair->px;

	d->held = frame_new(body, len, due, dup);
	if (!d->held) {
		tpc_logf(&px->lg, TPC_LOG_ERROR, "out of memory holding a frame; dropped");
		px->st.dropped++;
		return;
	}
	d->held_until_ms = now + px->faults.hold_ms;
	dir_arm(d);
}

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct fp_dir *d = arg;
	struct fp_proxy *px = d->pair->px;
	struct fp_verdict v;

	px->st.frames_in++;
	if (px->partitioned || !dir_sink(d) || d->pair->closing) {
		px->st.dropped++; /* black-holed */
		return 0;
	}
	fp_decide(&px->faults, &d->rng, &v);
	if (v.drop) {
		px->st.dropped++;
		return 0;
	}
	uint64_t now = tpc_now_ms();
	uint64_t due = now + v.delay_ms;
	if (v.delay_ms)
		px->st.delayed++;
	if (due < d->last_due_ms)
		due = d->last_due_ms;
	d->last_due_ms = due;
	if (v.hold && !d->held)
		dir_hold(d, body, len, v.dup, due, now);
	else
		dir_pass(d, body, len, v.dup, due, now);
	return 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fp_dir *d = arg;
	uint64_t now = tpc_now_ms();

	if (d->held && now >= d->held_until_ms) {
		dir_push(d, d->held); /* no successor came: it goes out in order */
		d->held = NULL;
	}
	dir_flush_due(d, now);
	dir_arm(d);
}

/* ---- bufferevent callbacks -------------------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct fp_dir *d = arg;
	struct fp_pair *p = d->pair;
	int rc = tpc_wire_read(bufferevent_get_input(bev), &d->dec, on_frame, d);

	if (rc < 0) {
		if (rc == TPC_FRAME_ERR_TOO_BIG)
			tpc_logf(&p->px->lg, TPC_LOG_WARN,
				 "pair %llu: the %s announced a %u-byte frame (--max-frame %u); "
				 "closing the pair", (unsigned long long)p->id, side_name[d->from],
				 (unsigned)d->dec.body_len, (unsigned)d->dec.max_frame);
		else
			tpc_logf(&p->px->lg, TPC_LOG_WARN, "pair %llu: the %s sent %s; closing the pair",
				 (unsigned long long)p->id, side_name[d->from],
				 rc == TPC_FRAME_ERR_EMPTY ? "an empty frame" : "a frame it could not buffer");
		pair_free(p, 0);
		return;
	}
	dir_throttle(d);
}

/* @p arg is the direction reading from @p bev; the one writing to it is the other. */
static void write_cb(struct bufferevent *bev, void *arg)
{
	struct fp_dir *d = arg;
	struct fp_pair *p = d->pair;

	if (p->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			pair_free(p, 0);
		return;
	}
	dir_unthrottle(&p->dir[1 - d->from]);
}

/*
 * One side is gone. What it sent and the proxy still holds goes out to the other side
 * at once (delays are cut short); what was going to it is dropped; then the other side
 * is closed once its output is written, or after FP_DRAIN_MS.
 */
static void pair_side_gone(struct fp_pair *p, int side)
{
	struct fp_dir *from_gone = &p->dir[side];
	int other = 1 - side;

	bufferevent_free(p->bev[side]);
	p->bev[side] = NULL;
	dir_discard(&p->dir[other]);
	if (p->closing || !p->bev[other]) {
		pair_free(p, 0);
		return;
	}
	if (from_gone->held) {
		dir_push(from_gone, from_gone->held);
		from_gone->held = NULL;
	}
	dir_flush_due(from_gone, UINT64_MAX);
	evtimer_del(from_gone->timer);
	p->closing = 1;
	bufferevent_disable(p->bev[other], EV_READ);
	bufferevent_setwatermark(p->bev[other], EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(p->bev[other])) == 0) {
		pair_free(p, 0);
		return;
	}
	struct timeval tv = { .tv_sec = FP_DRAIN_MS / 1000, .tv_usec = (FP_DRAIN_MS % 1000) * 1000 };
	evtimer_add(p->close_timer, &tv);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fp_dir *d = arg;
	struct fp_pair *p = d->pair;
	struct fp_proxy *px = p->px;

	if (what & BEV_EVENT_CONNECTED) {
		tpc_logf(&px->lg, TPC_LOG_DEBUG, "pair %llu: connected to upstream %s",
			 (unsigned long long)p->id, px->cfg.upstream);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		tpc_logf(&px->lg, d->from == 1 ? TPC_LOG_WARN : TPC_LOG_INFO, "pair %llu: %s %s: %s",
			 (unsigned long long)p->id, side_name[d->from],
			 d->from == 1 ? px->cfg.upstream : "connection", evutil_socket_error_to_string(err));
	} else {
		tpc_logf(&px->lg, TPC_LOG_DEBUG, "pair %llu: %s closed", (unsigned long long)p->id,
			 side_name[d->from]);
	}
	pair_side_gone(p, d->from);
}

static void close_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fp_pair *p = arg;

	tpc_logf(&p->px->lg, TPC_LOG_INFO, "pair %llu: output not drained in %d ms; closing",
		 (unsigned long long)p->id, FP_DRAIN_MS);
	pair_free(p, 1);
}

/* ---- pair lifecycle --------------------------------------------------------------- */

static void bev_setup(struct fp_pair *p, int side)
{
	bufferevent_setcb(p->bev[side], read_cb, write_cb, event_cb, &p->dir[side]);
	bufferevent_set_max_single_read(p->bev[side], FP_MAX_READ);
	bufferevent_setwatermark(p->bev[side], EV_WRITE, FP_LOW_WATER, 0);
	bufferevent_enable(p->bev[side], EV_READ | EV_WRITE);
}

static int pair_connect(struct fp_pair *p)
{
	struct fp_proxy *px = p->px;
	const struct sockaddr *sa = (const struct sockaddr *)&px->cfg.upstream_addr;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		goto out_err;
	set_nodelay(fd);
	p->bev[1] = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!p->bev[1]) {
		close(fd);
		goto out_err;
	}
	bev_setup(p, 1);
	if (bufferevent_socket_connect(p->bev[1], sa, (int)px->cfg.upstream_len) < 0)
		goto out_err;
	return 0;
out_err:
	tpc_logf(&px->lg, TPC_LOG_WARN, "pair %llu: cannot connect to upstream %s: %s",
		 (unsigned long long)p->id, px->cfg.upstream, strerror(errno));
	return -1;
}

static int dir_init(struct fp_dir *d, struct fp_pair *p, int from)
{
	d->pair = p;
	d->from = from;
	tpc_frame_decoder_init(&d->dec, p->px->cfg.max_frame);
	fp_rng_seed(&d->rng, p->px->cfg.seed, p->id * 2 + (uint64_t)from);
	TAILQ_INIT(&d->queue);
	d->timer = evtimer_new(p->px->base, timer_cb, d);
	return d->timer ? 0 : -1;
}

static void pair_free(struct fp_pair *p, int rst)
{
	struct fp_proxy *px = p->px;

	for (int i = 0; i < 2; i++) {
		if (p->dir[i].pair) /* set once dir_init ran */
			dir_discard(&p->dir[i]);
		if (p->dir[i].timer)
			event_free(p->dir[i].timer);
		tpc_frame_decoder_free(&p->dir[i].dec);
		if (!p->bev[i])
			continue;
		if (rst)
			set_linger0(p->bev[i]);
		bufferevent_free(p->bev[i]);
	}
	if (p->close_timer)
		event_free(p->close_timer);
	LIST_REMOVE(p, link);
	px->npairs--;
	tpc_logf(&px->lg, TPC_LOG_DEBUG, "pair %llu: %s", (unsigned long long)p->id,
		 rst ? "reset" : "closed");
	free(p);
}

void fp_pair_accept(struct fp_proxy *px, int fd)
{
	struct fp_pair *p;

	if (px->npairs >= FP_MAX_PAIRS) {
		tpc_logf(&px->lg, TPC_LOG_WARN, "%u connections open; refusing another",
			 FP_MAX_PAIRS);
		goto out_close;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto out_close;
	p->px = px;
	p->id = ++px->st.accepted;
	LIST_INSERT_HEAD(&px->pairs, p, link);
	px->npairs++;
	p->close_timer = evtimer_new(px->base, close_timer_cb, p);
	if (dir_init(&p->dir[0], p, 0) < 0 || dir_init(&p->dir[1], p, 1) < 0 || !p->close_timer)
		goto out_free_pair;
	set_nodelay(fd);
	p->bev[0] = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!p->bev[0])
		goto out_free_pair;
	fd = -1; /* the bufferevent owns it now */
	bev_setup(p, 0);
	/* Accepted during a partition: upstream hears nothing until the heal. */
	if (!px->partitioned && pair_connect(p) < 0)
		goto out_free_pair;
	tpc_logf(&px->lg, TPC_LOG_DEBUG, "pair %llu: accepted%s", (unsigned long long)p->id,
		 px->partitioned ? " (partitioned: upstream deferred)" : "");
	return;
out_free_pair:
	pair_free(p, 0);
out_close:
	if (fd >= 0)
		close(fd);
}

/* ---- proxy-wide actions ----------------------------------------------------------- */

size_t fp_reset_all(struct fp_proxy *px)
{
	struct fp_pair *p;
	size_t n = 0;

	while ((p = LIST_FIRST(&px->pairs))) {
		pair_free(p, 1);
		n++;
	}
	px->st.resets += n;
	return n;
}

void fp_close_all(struct fp_proxy *px)
{
	struct fp_pair *p;

	while ((p = LIST_FIRST(&px->pairs)))
		pair_free(p, 0);
}

void fp_partition(struct fp_proxy *px)
{
	struct fp_pair *p;

	px->partitioned = 1;
	LIST_FOREACH(p, &px->pairs, link) {
		for (int i = 0; i < 2; i++) {
			dir_discard(&p->dir[i]);
			dir_unthrottle(&p->dir[i]); /* keep reading: into the black hole */
		}
	}
}

void fp_heal(struct fp_proxy *px)
{
	struct fp_pair *p, *next;

	px->partitioned = 0;
	for (p = LIST_FIRST(&px->pairs); p; p = next) {
		next = LIST_NEXT(p, link);
		if (!p->bev[1] && !p->closing && pair_connect(p) < 0)
			pair_free(p, 1);
	}
}
