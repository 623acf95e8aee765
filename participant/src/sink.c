/*
 * sink.c - the tpc_sink handle (tpc/sink.h): an ops table plus the implementation's
 * self pointer, and the call-through functions the participant and tests use.
 *
 * Owns only the small handle struct; the implementation's state belongs to it and is
 * released by ops->destroy in tpc_sink_free(). Invariants: a handle always has an ops
 * table with prepare and commit set (tpc_sink_new refuses anything else); the handle
 * adds no locking: the participant keeps the threading contract of tpc/sink.h (at most
 * one loop-side and one writer-side call at once, never on the same txid), and a sink
 * locks whatever its two sides share.
 */
#include "tpc/sink.h"

#include <errno.h>
#include <stdlib.h>

#include "sink_int.h"

struct tpc_sink {
	const tpc_sink_ops *ops;
	void *self;
};

tpc_sink *tpc_sink_new(const tpc_sink_ops *ops, void *self)
{
	tpc_sink *s;

	if (!ops || !ops->prepare || !ops->commit) {
		errno = EINVAL;
		return NULL;
	}
	s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	s->ops = ops;
	s->self = self;
	return s;
}

void tpc_sink_free(tpc_sink *sink)
{
	if (!sink)
		return;
	if (sink->ops->destroy)
		sink->ops->destroy(sink->self);
	free(sink);
}

int tpc_sink_prepare(tpc_sink *sink, const tpc_sink_txn *txn, char *reason, size_t reason_len)
{
	if (!sink || !txn)
		return -EINVAL;
	if (reason && reason_len > 0)
		reason[0] = '\0';
	return sink->ops->prepare(sink->self, txn, reason, reason_len);
}

int tpc_sink_commit(tpc_sink *sink, const tpc_sink_txn *txns, size_t n)
{
	if (!sink || (!txns && n > 0))
		return -EINVAL;
	return sink->ops->commit(sink->self, txns, n);
}

void tpc_sink_abort(tpc_sink *sink, tpc_txid txid)
{
	if (sink && sink->ops->abort)
		sink->ops->abort(sink->self, txid);
}

int tpc_sink_applied(tpc_sink *sink, tpc_txid txid)
{
	if (!sink)
		return -EINVAL;
	if (!sink->ops->applied)
		return -ENOTSUP;
	return sink->ops->applied(sink->self, txid);
}

void tpc_sink_forget(tpc_sink *sink, const tpc_txid *txids, size_t n)
{
	if (sink && sink->ops->forget && txids && n)
		sink->ops->forget(sink->self, txids, n);
}

void tpc_sink_committing(tpc_sink *sink, tpc_txid txid)
{
	if (sink && sink->ops->committing)
		sink->ops->committing(sink->self, txid);
}

void *tpc_sink_self(tpc_sink *s)
{
	return s ? s->self : NULL;
}

const tpc_sink_ops *tpc_sink_ops_of(tpc_sink *s)
{
	return s ? s->ops : NULL;
}
