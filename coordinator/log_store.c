/*
 * log_store.c - the coordinator's durable log in one LMDB environment (log_store.h).
 *
 * Owns the environment, its five named databases, and a lock file that keeps a
 * second process from opening the same log (two coordinators on one log would both
 * bump the epoch and both answer for the same txids). Invariants:
 *   - every change goes through one write transaction committed with mdb_txn_commit;
 *     the environment is opened with MDB_NOTLS | MDB_NOMETASYNC (rule D6; never
 *     MDB_NOSYNC, MDB_WRITEMAP or MDB_MAPASYNC): a commit fdatasyncs its data, then
 *     writes its meta page unsynced, so a batch is durable only after the next
 *     fdatasync. write_batch() returning 0 has run one (the next batch's, or
 *     lmdb_sync's when the commit had nothing to write), so it also made every earlier
 *     batch durable; the group-commit writer releases a batch's waiters only then, or
 *     after the sync op (batch_writer_set_sync). The meta and set-up commits, which
 *     no later batch covers, are followed by mdb_env_sync(env, 1);
 *   - a batch is all or nothing: any failure aborts its transaction;
 *   - a record that does not decode is reported (-EBADMSG), never guessed at; the sweep
 *     only ever deletes records it positively decodes as old;
 *   - every sweep pass starts at the oldest entry of each database (txid or audit id
 *     order) and reports whether it stopped at its limit, so the server repeats it until
 *     the old entries are gone, at any sustained rate (rule D9).
 *
 * On-disk encoding, log format 1 (meta "format" = 1). Every integer is big-endian,
 * keys and values alike; values are packed, with no padding or alignment.
 *
 *   meta       "coordinator_id" -> u64
 *              "epoch"          -> u64
 *              "format"         -> u32 (1), written when the log is created; a log with
 *                                  any other format is refused at open (-EPROTO)
 *   decisions  u64 txid ->
 *                COMMIT     u8 type = 1 | u64 wall_ms | u32 nparts |
 *                           nparts x ( u16 len | len bytes of name, no NUL )
 *                COMPLETED  u8 type = 2 | u64 wall_ms             (9 bytes, tombstone)
 *   keys       client key bytes (1..511) ->
 *                u64 txid | u64 wall_ms | u8 committed (0 or 1)    (17 bytes)
 *   audit      u64 id -> the entry's JSON text (admin API operator actions), written
 *              with MDB_NOOVERWRITE; swept oldest first once its "at" time is past the
 *              audit retention. Added within format 1: a build that does not know it
 *              leaves it alone, and this build creates it when missing.
 *   participants  participant name bytes (1..511) ->
 *                u8 participant_id[16] | u64 wall_ms               (24 bytes)
 *              Added within format 1 the same way as audit.
 *   key_index  u64 txid -> client key bytes: which key a COMMIT wrote, in txid (so
 *              roughly time) order, so the sweep reaches old keys oldest first. Added
 *              within format 1; rebuilt from keys at open when it holds fewer entries.
 *   meta       "forget_horizon" -> u64: the highest txid whose COMPLETED tombstone (or,
 *              with no outcome retention, completed COMMIT record) was deleted. A txid at
 *              or below it with no record is FORGOTTEN, never presumed aborted. Raised in
 *              the same write transaction as the deletion; absent means 0.
 *
 * Any change to these layouts bumps the format number.
 *
 * Errors: 0 on success; -errno for system errors (LMDB's positive errno returns are
 * negated); LMDB's own codes (MDB_MAP_FULL, MDB_BAD_VALSIZE, ... all in
 * -30799..-30780) are passed through unchanged, name them with mdb_strerror();
 * -EBADMSG for a record that does not decode; -EINVAL for a malformed request;
 * -EPROTO for an unknown log format; -EBUSY when another process holds the log.
 */
#include "log_store.h"
#include "bytes.h"
#include "lmdb_err.h"
#include "lmdb_sync.h"
#include "util.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/file.h>
#include <sys/stat.h>

#include <lmdb.h>

#define LOG_FORMAT 1u
#define DEFAULT_MAP_SIZE ((size_t)1 << 30) /* 1 GiB */
#define LOCK_FILE "tpc.lock"

#define REC_COMMIT 1u
#define REC_COMPLETED 2u
#define COMMIT_HDR_SIZE 13u  /* type, wall_ms, nparts */
#define TOMB_SIZE 9u         /* type, wall_ms */
#define KEYREC_SIZE 17u      /* txid, wall_ms, committed */
#define BINDING_SIZE (COORD_PARTICIPANT_ID_LEN + 8u) /* participant_id, wall_ms */

static const char META_ID[] = "coordinator_id";
static const char META_EPOCH[] = "epoch";
static const char META_FORMAT[] = "format";
static const char META_HORIZON[] = "forget_horizon";

struct lmdb_log {
	MDB_env *env;
	MDB_dbi meta;
	MDB_dbi decisions;
	MDB_dbi keys;
	MDB_dbi audit;
	MDB_dbi participants;
	MDB_dbi key_index;
	int lock_fd;
	size_t max_key;
	/* The forget horizon inside the current write transaction (write_batch only,
	 * serialised by LMDB's single-writer lock): read at its start, stored at its end. */
	uint64_t horizon, horizon_at_start;
	/* Device syncs asked of the disk so far (writer thread adds, any thread reads): the
	 * data fdatasync of each commit, and each mdb_env_sync. */
	_Atomic uint64_t syncs;
};

/* ------------------------------------------------------------ small helpers */

static struct coord_rec *next_rec(struct coord_rec *r)
{
	struct bw_item *it = r->item.next;

	return it ? (struct coord_rec *)((char *)it - offsetof(struct coord_rec, item)) : NULL;
}


static int begin_read(struct lmdb_log *lg, MDB_txn **txn)
{
	return tpc_lmdb_err(mdb_txn_begin(lg->env, NULL, MDB_RDONLY, txn));
}

static int lmdb_sync(void *self)
{
	struct lmdb_log *lg = self;

	return tpc_lmdb_sync(lg->env, &lg->syncs);
}

/* On success every earlier batch is durable (lmdb_sync.h, rule D6). */
static int synced_commit(struct lmdb_log *lg, MDB_txn *txn)
{
	return tpc_lmdb_commit(lg->env, txn, &lg->syncs);
}

/* A commit durable on return, meta page included: nothing later covers it. */
static int durable_commit(struct lmdb_log *lg, MDB_txn *txn)
{
	return tpc_lmdb_commit_durable(lg->env, txn, &lg->syncs);
}

/* --------------------------------------------------------- record encoding */

static size_t commit_size(const struct coord_rec *r)
{
	size_t n = COMMIT_HDR_SIZE;

	for (uint32_t i = 0; i < r->nparts; i++)
		n += 2 + strlen(r->parts[i]);
	return n;
}

static void encode_commit(unsigned char *p, const struct coord_rec *r)
{
	p[0] = REC_COMMIT;
	tpc_put_be64(p + 1, r->wall_ms);
	tpc_put_be32(p + 9, r->nparts);
	p += COMMIT_HDR_SIZE;
	for (uint32_t i = 0; i < r->nparts; i++) {
		size_t len = strlen(r->parts[i]);

		tpc_put_be16(p, (uint16_t)len);
		memcpy(p + 2, r->parts[i], len);
		p += 2 + len;
	}
}

static void encode_tombstone(unsigned char p[TOMB_SIZE], uint64_t wall_ms)
{
	p[0] = REC_COMPLETED;
	tpc_put_be64(p + 1, wall_ms);
}

static int is_tombstone(const MDB_val *v)
{
	return v->mv_size == TOMB_SIZE && ((const unsigned char *)v->mv_data)[0] == REC_COMPLETED;
}

/*
 * Check a COMMIT value: header, every name in bounds and free of NUL bytes, nothing
 * after the last name. On success *strbytes is the room the names need as C strings.
 */
static int check_commit(const MDB_val *v, uint32_t *nparts, size_t *strbytes)
{
	const unsigned char *p = v->mv_data;
	size_t size = v->mv_size, off = COMMIT_HDR_SIZE, total = 0;
	uint32_t n;

	if (size < COMMIT_HDR_SIZE || p[0] != REC_COMMIT)
		return -EBADMSG;
	n = tpc_get_be32(p + 9);
	if (n > (size - COMMIT_HDR_SIZE) / 2)
		return -EBADMSG;
	for (uint32_t i = 0; i < n; i++) {
		size_t len;

		if (size - off < 2)
			return -EBADMSG;
		len = tpc_get_be16(p + off);
		off += 2;
		if (len > size - off || memchr(p + off, 0, len))
			return -EBADMSG;
		off += len;
		total += len + 1;
	}
	if (off != size)
		return -EBADMSG;
	*nparts = n;
	*strbytes = total;
	return 0;
}

static int check_decision(const MDB_val *v)
{
	uint32_t n;
	size_t bytes;

	if (is_tombstone(v))
		return 0;
	return check_commit(v, &n, &bytes);
}

/* Decode a COMMIT value into @p d; d->parts is one allocation (free(d->parts)). */
static int decode_commit(const MDB_val *v, uint64_t txid, struct coord_decision *d)
{
	const unsigned char *p = v->mv_data;
	size_t off = COMMIT_HDR_SIZE, bytes;
	uint32_t n;
	char *s;
	int rc = check_commit(v, &n, &bytes);

	if (rc)
		return rc;
	d->txid = txid;
	d->wall_ms = tpc_get_be64(p + 1);
	d->nparts = n;
	d->parts = malloc((size_t)n * sizeof(char *) + bytes + 1);
	if (!d->parts)
		return -ENOMEM;
	s = (char *)(d->parts + n);
	for (uint32_t i = 0; i < n; i++) {
		size_t len = tpc_get_be16(p + off);

		memcpy(s, p + off + 2, len);
		s[len] = '\0';
		d->parts[i] = s;
		s += len + 1;
		off += 2 + len;
	}
	return 0;
}

/* ------------------------------------------------------------------ meta */

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, MDB_val *v)
{
	MDB_val k = { strlen(name), (void *)name };

	return mdb_get(txn, dbi, &k, v);
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name, const void *val,
		    size_t len)
{
	MDB_val k = { strlen(name), (void *)name };
	MDB_val v = { len, (void *)val };

	return tpc_lmdb_err(mdb_put(txn, dbi, &k, &v, 0));
}

/* A u64 meta value into *out; 0 when absent. */
static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
	MDB_val v;
	int rc = meta_get(txn, dbi, name, &v);

	*out = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return tpc_lmdb_err(rc);
	if (v.mv_size != 8)
		return -EBADMSG;
	*out = tpc_get_be64(v.mv_data);
	return 0;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val)
{
	unsigned char buf[8];

	tpc_put_be64(buf, val);
	return meta_put(txn, dbi, name, buf, sizeof(buf));
}

/* ---------------------------------------------------------- write_batch */

int coord_rec_check(const struct coord_rec *r, size_t max_key)
{
	switch (r->type) {
	case COORD_REC_COMMIT:
		if (r->nparts && !r->parts)
			return -EINVAL;
		for (uint32_t i = 0; i < r->nparts; i++)
			if (!r->parts[i])
				return -EINVAL;
		return (!r->key && r->key_len) || r->key_len > max_key ? -EINVAL : 0;
	case COORD_REC_COMPLETE:
	case COORD_REC_SWEEP:
		return 0;
	case COORD_REC_AUDIT:
		return r->audit_id && r->text && r->text_len ? 0 : -EINVAL;
	case COORD_REC_DROP:
		return (!r->key && r->key_len) || r->key_len > max_key ? -EINVAL : 0;
	case COORD_REC_BIND:
	case COORD_REC_UNBIND:
		return r->name && r->name_len && r->name_len <= max_key ? 0 : -EINVAL;
	}
	return -EINVAL;
}

/* coord_rec_check(), then the limits of this store's COMMIT encoding (u16 name lengths,
 * a u32 record size). */
static int validate_rec(const struct lmdb_log *lg, const struct coord_rec *r)
{
	int rc = coord_rec_check(r, lg->max_key);

	if (rc || r->type != COORD_REC_COMMIT)
		return rc;
	for (uint32_t i = 0; i < r->nparts; i++)
		if (strlen(r->parts[i]) > UINT16_MAX)
			return -EINVAL;
	return commit_size(r) > UINT32_MAX ? -EINVAL : 0;
}

/* Check the whole batch before touching LMDB, so a bad record fails early and clearly. */
static int validate_batch(const struct lmdb_log *lg, struct coord_rec *head, size_t n)
{
	struct coord_rec *r = head;

	for (size_t i = 0; i < n; i++, r = next_rec(r)) {
		if (!r)
			return -EINVAL; /* list shorter than n */
		if (validate_rec(lg, r))
			return -EINVAL;
	}
	return 0;
}

static int put_key_record(struct lmdb_log *lg, MDB_txn *txn, const struct coord_rec *r)
{
	unsigned char buf[KEYREC_SIZE];
	MDB_val k = { r->key_len, (void *)r->key };
	MDB_val v = { sizeof(buf), buf };

	tpc_put_be64(buf, r->txid);
	tpc_put_be64(buf + 8, r->wall_ms);
	buf[16] = 1;
	return tpc_lmdb_err(mdb_put(txn, lg->keys, &k, &v, 0));
}

static int apply_commit(struct lmdb_log *lg, MDB_txn *txn, const struct coord_rec *r)
{
	unsigned char kbuf[8];
	MDB_val k = { sizeof(kbuf), kbuf };
	MDB_val v = { commit_size(r), NULL };
	int rc;

	tpc_put_be64(kbuf, r->txid);
	rc = mdb_put(txn, lg->decisions, &k, &v, MDB_RESERVE);
	if (rc)
		return tpc_lmdb_err(rc);
	encode_commit(v.mv_data, r);
	if (!r->key || !r->key_len)
		return 0;
	rc = put_key_record(lg, txn, r);
	if (rc)
		return rc;
	v.mv_size = r->key_len;
	v.mv_data = (void *)r->key;
	return tpc_lmdb_err(mdb_put(txn, lg->key_index, &k, &v, 0));
}

static void raise_horizon(struct lmdb_log *lg, uint64_t txid)
{
	if (txid > lg->horizon)
		lg->horizon = txid;
}

static int apply_complete(struct lmdb_log *lg, MDB_txn *txn, const struct coord_rec *r)
{
	unsigned char kbuf[8], tomb[TOMB_SIZE];
	MDB_val k = { sizeof(kbuf), kbuf };
	MDB_val v;
	int rc;

	tpc_put_be64(kbuf, r->txid);
	rc = mdb_get(txn, lg->decisions, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0; /* never logged, or already swept: nothing to complete */
	if (rc)
		return tpc_lmdb_err(rc);
	if (r->forget) { /* no outcome retention: forget the decision outright */
		raise_horizon(lg, r->txid);
		return tpc_lmdb_err(mdb_del(txn, lg->decisions, &k, NULL));
	}
	if (is_tombstone(&v))
		return 0; /* keep the first completion time */
	encode_tombstone(tomb, r->wall_ms);
	v.mv_size = sizeof(tomb);
	v.mv_data = tomb;
	return tpc_lmdb_err(mdb_put(txn, lg->decisions, &k, &v, 0));
}

static int apply_audit(struct lmdb_log *lg, MDB_txn *txn, const struct coord_rec *r)
{
	unsigned char kbuf[8];
	MDB_val k = { sizeof(kbuf), kbuf };
	MDB_val v = { r->text_len, (void *)r->text };

	tpc_put_be64(kbuf, r->audit_id);
	return tpc_lmdb_err(mdb_put(txn, lg->audit, &k, &v, MDB_NOOVERWRITE));
}

/* An operator overrode a COMMIT: the decision goes, and its key when it names this txid. */
static int apply_drop(struct lmdb_log *lg, MDB_txn *txn, const struct coord_rec *r)
{
	unsigned char kbuf[8];
	MDB_val k = { sizeof(kbuf), kbuf };
	MDB_val kk = { r->key_len, (void *)r->key };
	MDB_val v;
	int rc;

	tpc_put_be64(kbuf, r->txid);
	rc = mdb_del(txn, lg->decisions, &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return tpc_lmdb_err(rc);
	if (!r->key || !r->key_len)
		return 0;
	rc = mdb_get(txn, lg->keys, &kk, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return tpc_lmdb_err(rc);
	if (v.mv_size != KEYREC_SIZE || tpc_get_be64(v.mv_data) != r->txid)
		return 0; /* a newer transaction owns the key now */
	return tpc_lmdb_err(mdb_del(txn, lg->keys, &kk, NULL));
}

/*
 * A bounded sweep pass over one database, from its first (oldest) entry. judge() looks
 * at one entry and says: SW_DELETE it (the pass deletes it and counts it), SW_KEEP it
 * and go on (a live decision), SW_YOUNG (kept; counted against the pass's look-ahead),
 * or SW_STOP (everything after is younger). The pass ends after @p limit deletions
 * (then *more is set: the server runs another pass) or @p limit * 4 young entries.
 */
enum sweep_verdict { SW_DELETE, SW_KEEP, SW_YOUNG, SW_STOP };

struct sweep_pass {
	struct lmdb_log *lg;
	MDB_txn *txn;
	const struct coord_rec *r;
	uint32_t deleted;
	int more;
};

typedef int (*sweep_judge)(struct sweep_pass *p, const MDB_val *k, const MDB_val *v,
			   enum sweep_verdict *out);

static int sweep_db(struct sweep_pass *p, MDB_dbi dbi, sweep_judge judge)
{
	uint64_t young = 0, max_young = (uint64_t)p->r->sweep_limit * 4;
	uint32_t deleted = 0;
	enum sweep_verdict verdict;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if (p->r->sweep_limit == 0)
		return 0;
	rc = mdb_cursor_open(p->txn, dbi, &c);
	if (rc)
		return tpc_lmdb_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (deleted == p->r->sweep_limit) {
			p->more = 1; /* stopped at the limit with entries left: go again */
			break;
		}
		rc = judge(p, &k, &v, &verdict);
		if (rc || verdict == SW_STOP || (verdict == SW_YOUNG && ++young > max_young))
			break;
		if (verdict != SW_DELETE)
			continue;
		rc = mdb_cursor_del(c, 0);
		if (rc)
			break;
		deleted++;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(c);
	p->deleted += deleted;
	return tpc_lmdb_err(rc);
}

/* decisions: completed tombstones older than the outcome retention; COMMITs stay. */
static int judge_decision(struct sweep_pass *p, const MDB_val *k, const MDB_val *v,
			  enum sweep_verdict *out)
{
	if (!is_tombstone(v)) {
		*out = SW_KEEP;
		return 0;
	}
	if (tpc_get_be64((const unsigned char *)v->mv_data + 1) >=
	    p->r->sweep_outcome_before_ms) {
		*out = SW_YOUNG;
		return 0;
	}
	if (k->mv_size != 8)
		return -EBADMSG;
	raise_horizon(p->lg, tpc_get_be64(k->mv_data)); /* its outcome is forgotten now */
	*out = SW_DELETE;
	return 0;
}

/* BIND puts name -> { id, wall_ms } (a repeated bind overwrites); UNBIND deletes it
 * (nothing bound: nothing to do). */
static int apply_binding(struct lmdb_log *lg, MDB_txn *txn, const struct coord_rec *r)
{
	unsigned char buf[BINDING_SIZE];
	MDB_val k = { r->name_len, (void *)r->name };
	MDB_val v = { sizeof(buf), buf };
	int rc;

	if (r->type == COORD_REC_UNBIND) {
		rc = mdb_del(txn, lg->participants, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : tpc_lmdb_err(rc);
	}
	memcpy(buf, r->participant_id, COORD_PARTICIPANT_ID_LEN);
	tpc_put_be64(buf + COORD_PARTICIPANT_ID_LEN, r->wall_ms);
	return tpc_lmdb_err(mdb_put(txn, lg->participants, &k, &v, 0));
}

/* key_index (txid -> key): the key record goes when it is old and still names this
 * txid; the index entry goes with it, or alone when a newer transaction took the key. */
static int judge_key(struct sweep_pass *p, const MDB_val *k, const MDB_val *v,
		     enum sweep_verdict *out)
{
	MDB_val kk = *v, rec;
	int rc = mdb_get(p->txn, p->lg->keys, &kk, &rec);

	*out = SW_DELETE;
	if (rc == MDB_NOTFOUND)
		return 0; /* dropped, or swept before this index existed */
	if (rc)
		return tpc_lmdb_err(rc);
	if (k->mv_size != 8 || rec.mv_size != KEYREC_SIZE)
		return -EBADMSG;
	if (tpc_get_be64(rec.mv_data) != tpc_get_be64(k->mv_data))
		return 0; /* a newer transaction owns the key now */
	if (tpc_get_be64((const unsigned char *)rec.mv_data + 8) >= p->r->sweep_keys_before_ms) {
		*out = SW_YOUNG;
		return 0;
	}
	return tpc_lmdb_err(mdb_del(p->txn, p->lg->keys, &kk, NULL));
}

/* The "at" time of an audit entry ({"id":N,"at":"YYYY-MM-DDTHH:MM:SS.mmmZ",...}). */
static int audit_at_ms(const MDB_val *v, uint64_t *out)
{
	static const char tag[] = "\"at\":\"";
	char buf[96];
	size_t n = v->mv_size < sizeof(buf) - 1 ? v->mv_size : sizeof(buf) - 1;
	struct tm tm = { 0 };
	unsigned ms = 0;
	char *at;

	memcpy(buf, v->mv_data, n);
	buf[n] = '\0';
	at = strstr(buf, tag);
	if (!at || sscanf(at + sizeof(tag) - 1, "%4d-%2d-%2dT%2d:%2d:%2d.%3uZ", &tm.tm_year,
			  &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -EBADMSG;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t secs = timegm(&tm);
	if (secs < 0)
		return -EBADMSG;
	*out = (uint64_t)secs * 1000 + ms;
	return 0;
}

/* audit: entries in id (so time) order; the first young or undecodable one stops it. */
static int judge_audit(struct sweep_pass *p, const MDB_val *k, const MDB_val *v,
		       enum sweep_verdict *out)
{
	uint64_t at;

	(void)k;
	*out = audit_at_ms(v, &at) || at >= p->r->sweep_audit_before_ms ? SW_STOP : SW_DELETE;
	return 0;
}

static int apply_sweep(struct lmdb_log *lg, MDB_txn *txn, struct coord_rec *r)
{
	struct sweep_pass p = { .lg = lg, .txn = txn, .r = r };
	int rc = sweep_db(&p, lg->decisions, judge_decision);

	if (rc == 0)
		rc = sweep_db(&p, lg->key_index, judge_key);
	if (rc == 0 && r->sweep_audit_before_ms)
		rc = sweep_db(&p, lg->audit, judge_audit);
	r->sweep_more = p.more;
	r->sweep_deleted = p.deleted;
	return rc;
}

static int apply_rec(struct lmdb_log *lg, MDB_txn *txn, struct coord_rec *r)
{
	switch (r->type) {
	case COORD_REC_COMMIT:
		return apply_commit(lg, txn, r);
	case COORD_REC_COMPLETE:
		return apply_complete(lg, txn, r);
	case COORD_REC_SWEEP:
		return apply_sweep(lg, txn, r);
	case COORD_REC_AUDIT:
		return apply_audit(lg, txn, r);
	case COORD_REC_DROP:
		return apply_drop(lg, txn, r);
	case COORD_REC_BIND:
	case COORD_REC_UNBIND:
		return apply_binding(lg, txn, r);
	}
	return -EINVAL;
}

static int lmdb_write_batch(void *self, struct coord_rec *head, size_t n)
{
	struct lmdb_log *lg = self;
	struct coord_rec *r = head;
	MDB_txn *txn;
	int rc;

	if (n == 0)
		return 0;
	rc = validate_batch(lg, head, n);
	if (rc)
		return rc;
	rc = mdb_txn_begin(lg->env, NULL, 0, &txn);
	if (rc)
		return tpc_lmdb_err(rc);
	rc = meta_get_u64(txn, lg->meta, META_HORIZON, &lg->horizon);
	if (rc)
		goto out_abort;
	lg->horizon_at_start = lg->horizon;
	for (size_t i = 0; i < n; i++, r = next_rec(r)) {
		rc = apply_rec(lg, txn, r);
		if (rc)
			goto out_abort;
	}
	if (lg->horizon != lg->horizon_at_start) { /* with the deletions that raised it */
		rc = meta_put_u64(txn, lg->meta, META_HORIZON, lg->horizon);
		if (rc)
			goto out_abort;
	}
	/* The synced commit: when it returns 0 every record above is on disk. It frees
	 * the transaction whether or not it succeeds. */
	return synced_commit(lg, txn);

out_abort:
	mdb_txn_abort(txn);
	return rc;
}

static int meta_put_format(MDB_txn *txn, MDB_dbi dbi)
{
	unsigned char buf[4];

	tpc_put_be32(buf, LOG_FORMAT);
	return meta_put(txn, dbi, META_FORMAT, buf, sizeof(buf));
}

static int lmdb_read_meta(void *self, uint64_t *id, uint64_t *epoch)
{
	struct lmdb_log *lg = self;
	MDB_txn *txn;
	int rc = begin_read(lg, &txn);

	if (rc)
		return rc;
	rc = meta_get_u64(txn, lg->meta, META_ID, id);
	if (rc == 0)
		rc = meta_get_u64(txn, lg->meta, META_EPOCH, epoch);
	mdb_txn_abort(txn);
	return rc;
}

static int lmdb_write_meta(void *self, uint64_t id, uint64_t epoch)
{
	struct lmdb_log *lg = self;
	MDB_txn *txn;
	int rc = tpc_lmdb_err(mdb_txn_begin(lg->env, NULL, 0, &txn));

	if (rc)
		return rc;
	rc = meta_put_u64(txn, lg->meta, META_ID, id);
	if (rc)
		goto out_abort;
	rc = meta_put_u64(txn, lg->meta, META_EPOCH, epoch);
	if (rc)
		goto out_abort;
	rc = meta_put_format(txn, lg->meta);
	if (rc)
		goto out_abort;
	return durable_commit(lg, txn);

out_abort:
	mdb_txn_abort(txn);
	return rc;
}

/* ------------------------------------------------------------------ reads */

/* Position @p c at the newest entry below @p before (0: the newest of all). */
static int audit_seek(MDB_cursor *c, uint64_t before, MDB_val *k, MDB_val *v)
{
	unsigned char kbuf[8];
	int rc;

	if (before == 0)
		return mdb_cursor_get(c, k, v, MDB_LAST);
	tpc_put_be64(kbuf, before);
	k->mv_size = sizeof(kbuf);
	k->mv_data = kbuf;
	rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE); /* first id >= before */
	if (rc == MDB_NOTFOUND)
		return mdb_cursor_get(c, k, v, MDB_LAST);
	if (rc)
		return rc;
	return mdb_cursor_get(c, k, v, MDB_PREV);
}

/* What walk_db() walks: a database forward from its first entry, or (MDB_PREV) back
 * from the newest entry below @c before (audit_seek); at most @c limit entries. */
struct walk {
	MDB_dbi dbi;
	MDB_cursor_op dir;          /* MDB_NEXT or MDB_PREV */
	uint64_t before;
	uint32_t limit;
};

/* Called for each entry; non-zero stops the walk and is walk_db()'s result. */
typedef int (*walk_visit)(void *arg, const MDB_val *k, const MDB_val *v);

/* One read transaction, one cursor: @p visit every entry @p w names, in order. */
static int walk_db(struct lmdb_log *lg, const struct walk *w, walk_visit visit, void *arg)
{
	MDB_cursor *c;
	MDB_txn *txn;
	MDB_val k, v;
	uint32_t n = 0;
	int rc = begin_read(lg, &txn);

	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_cursor_open(txn, w->dbi, &c));
	if (rc)
		goto out_txn;
	for (rc = w->dir == MDB_PREV ? audit_seek(c, w->before, &k, &v)
				     : mdb_cursor_get(c, &k, &v, MDB_FIRST);
	     rc == 0 && n < w->limit; rc = mdb_cursor_get(c, &k, &v, w->dir), n++) {
		int stop = visit(arg, &k, &v);
		if (stop) {
			rc = stop; /* the visitor's own value, passed through as it is */
			goto out_cursor;
		}
	}
	rc = rc == MDB_NOTFOUND ? 0 : tpc_lmdb_err(rc);
out_cursor:
	mdb_cursor_close(c);
out_txn:
	mdb_txn_abort(txn);
	return rc;
}

struct decision_walk {
	int (*cb)(void *arg, const struct coord_decision *d);
	void *arg;
};

/* One decisions entry: tombstones are skipped, COMMITs go to cb (its value returned). */
static int load_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	const struct decision_walk *dw = arg;
	struct coord_decision d;
	int rc;

	if (k->mv_size != 8)
		return -EBADMSG;
	if (is_tombstone(v))
		return 0;
	rc = decode_commit(v, tpc_get_be64(k->mv_data), &d);
	if (rc)
		return rc;
	rc = dw->cb(dw->arg, &d);
	free(d.parts);
	return rc;
}

static int lmdb_load_decisions(void *self, int (*cb)(void *arg, const struct coord_decision *d),
			       void *arg)
{
	struct lmdb_log *lg = self;
	struct walk w = { .dbi = lg->decisions, .dir = MDB_NEXT, .limit = UINT32_MAX };
	struct decision_walk dw = { cb, arg };

	return walk_db(lg, &w, load_one, &dw);
}

static int lmdb_lookup_txid(void *self, uint64_t txid)
{
	struct lmdb_log *lg = self;
	unsigned char kbuf[8];
	MDB_val k = { sizeof(kbuf), kbuf };
	MDB_val v;
	MDB_txn *txn;
	int rc = begin_read(lg, &txn);

	if (rc)
		return rc;
	tpc_put_be64(kbuf, txid);
	rc = mdb_get(txn, lg->decisions, &k, &v);
	if (rc == MDB_NOTFOUND) {
		uint64_t horizon; /* read in the same snapshot as the miss */
		rc = meta_get_u64(txn, lg->meta, META_HORIZON, &horizon);
		if (rc == 0)
			rc = txid <= horizon ? COORD_LOOKUP_FORGOTTEN : COORD_LOOKUP_NONE;
	} else if (rc) {
		rc = tpc_lmdb_err(rc);
	} else {
		rc = check_decision(&v) ? -EBADMSG : COORD_LOOKUP_COMMITTED;
	}
	mdb_txn_abort(txn);
	return rc;
}

/* A record's decoder for lookup_one(): 1 decoded into @p out, or -EBADMSG. */
typedef int (*decode_fn)(const MDB_val *v, void *out);

/* Read the record under @p key in @p dbi and decode it: 1 found, 0 absent, <0 error. */
static int lookup_one(struct lmdb_log *lg, MDB_dbi dbi, const void *key, size_t key_len,
		      decode_fn decode, void *out)
{
	MDB_val k = { key_len, (void *)key };
	MDB_val v;
	MDB_txn *txn;
	int rc = begin_read(lg, &txn);

	if (rc)
		return rc;
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	else if (rc)
		rc = tpc_lmdb_err(rc);
	else
		rc = decode(&v, out);
	mdb_txn_abort(txn);
	return rc;
}

static int decode_key_record(const MDB_val *v, void *out)
{
	struct coord_key_info *info = out;
	const unsigned char *p = v->mv_data;

	if (v->mv_size != KEYREC_SIZE || p[16] > 1)
		return -EBADMSG;
	info->txid = tpc_get_be64(p);
	info->wall_ms = tpc_get_be64(p + 8);
	info->committed = p[16];
	return 1;
}

static int lmdb_lookup_key(void *self, const char *key, size_t key_len,
			   struct coord_key_info *info)
{
	struct lmdb_log *lg = self;

	if (!key || key_len == 0 || key_len > lg->max_key || !info)
		return -EINVAL;
	return lookup_one(lg, lg->keys, key, key_len, decode_key_record, info);
}

static int lmdb_stats(void *self, uint64_t *decisions, uint64_t *keys, uint64_t *map_bytes)
{
	struct lmdb_log *lg = self;
	MDB_stat ds, ks, es;
	MDB_envinfo info;
	MDB_txn *txn;
	int rc = begin_read(lg, &txn);

	if (rc)
		return rc;
	rc = mdb_stat(txn, lg->decisions, &ds);
	if (rc == 0)
		rc = mdb_stat(txn, lg->keys, &ks);
	mdb_txn_abort(txn);
	if (rc == 0)
		rc = mdb_env_stat(lg->env, &es);
	if (rc == 0)
		rc = mdb_env_info(lg->env, &info);
	if (rc)
		return tpc_lmdb_err(rc);
	if (decisions)
		*decisions = ds.ms_entries;
	if (keys)
		*keys = ks.ms_entries;
	if (map_bytes)
		*map_bytes = ((uint64_t)info.me_last_pgno + 1) * es.ms_psize;
	return 0;
}

struct audit_walk {
	coord_audit_cb cb;
	void *arg;
};

static int audit_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	const struct audit_walk *aw = arg;

	return k->mv_size == 8 ? aw->cb(aw->arg, tpc_get_be64(k->mv_data), v->mv_data,
					v->mv_size)
			       : -EBADMSG;
}

static int lmdb_audit_list(void *self, uint64_t before, uint32_t limit, coord_audit_cb cb,
			   void *arg)
{
	struct lmdb_log *lg = self;
	struct walk w = { .dbi = lg->audit, .dir = MDB_PREV, .before = before, .limit = limit };
	struct audit_walk aw = { cb, arg };

	return walk_db(lg, &w, audit_one, &aw);
}

/* ---------------------------------------------------------- participants */

static int decode_binding(const MDB_val *v, struct coord_binding *b)
{
	if (v->mv_size != BINDING_SIZE)
		return -EBADMSG;
	memcpy(b->participant_id, v->mv_data, COORD_PARTICIPANT_ID_LEN);
	b->wall_ms = tpc_get_be64((const unsigned char *)v->mv_data + COORD_PARTICIPANT_ID_LEN);
	return 0;
}

static int decode_binding_found(const MDB_val *v, void *out)
{
	return decode_binding(v, out) ? -EBADMSG : 1;
}

static int lmdb_lookup_participant(void *self, const char *name, size_t name_len,
				   struct coord_binding *out)
{
	struct lmdb_log *lg = self;

	if (!name || name_len == 0 || name_len > lg->max_key || !out)
		return -EINVAL;
	return lookup_one(lg, lg->participants, name, name_len, decode_binding_found, out);
}

struct binding_walk {
	coord_binding_cb cb;
	void *arg;
};

static int binding_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	const struct binding_walk *bw = arg;
	struct coord_binding b;
	int rc = decode_binding(v, &b);

	return rc ? rc : bw->cb(bw->arg, k->mv_data, k->mv_size, &b);
}

static int lmdb_load_participants(void *self, coord_binding_cb cb, void *arg)
{
	struct lmdb_log *lg = self;
	struct walk w = { .dbi = lg->participants, .dir = MDB_NEXT, .limit = UINT32_MAX };
	struct binding_walk bw = { cb, arg };

	return walk_db(lg, &w, binding_one, &bw);
}

static void lmdb_close(void *self)
{
	struct lmdb_log *lg = self;

	if (!lg)
		return;
	mdb_env_close(lg->env);
	close(lg->lock_fd);
	free(lg);
}

static uint64_t lmdb_syncs(void *self)
{
	struct lmdb_log *lg = self;

	return atomic_load(&lg->syncs);
}

static const struct coord_log_ops lmdb_ops = {
	.write_batch = lmdb_write_batch,
	.read_meta = lmdb_read_meta,
	.write_meta = lmdb_write_meta,
	.load_decisions = lmdb_load_decisions,
	.lookup_txid = lmdb_lookup_txid,
	.lookup_key = lmdb_lookup_key,
	.stats = lmdb_stats,
	.audit_list = lmdb_audit_list,
	.lookup_participant = lmdb_lookup_participant,
	.load_participants = lmdb_load_participants,
	.close = lmdb_close,
	.syncs = lmdb_syncs,
	.sync = lmdb_sync,
};

/* ------------------------------------------------------------------ open */

/* Hold an exclusive flock on DIR/tpc.lock for as long as the log is open. */
static int lock_dir(const char *dir, int *fd_out, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd, rc;

	if (snprintf(path, sizeof(path), "%s/%s", dir, LOCK_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		tpc_set_err(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		tpc_set_err(err, errlen, "%s: the log is in use by another process (%s)", dir,
			strerror(errno));
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

static int env_open(struct lmdb_log *lg, const char *dir, size_t map_size, char *err,
		    size_t errlen)
{
	const char *what = "mdb_env_create";
	int rc = mdb_env_create(&lg->env);

	if (rc)
		goto out_err;
	what = "mdb_env_set_maxdbs";
	rc = mdb_env_set_maxdbs(lg->env, 8);
	if (rc)
		goto out_close;
	what = "mdb_env_set_mapsize";
	rc = mdb_env_set_mapsize(lg->env, map_size ? map_size : DEFAULT_MAP_SIZE);
	if (rc)
		goto out_close;
	/* MDB_NOTLS: reads run on the loop thread, writes on the writer thread.
	 * MDB_NOMETASYNC: one device sync per batch; see the header (rule D6). */
	what = "mdb_env_open";
	rc = mdb_env_open(lg->env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0600);
	if (rc)
		goto out_close;
	lg->max_key = (size_t)mdb_env_get_maxkeysize(lg->env);
	return 0;

out_close:
	mdb_env_close(lg->env);
	lg->env = NULL;
out_err:
	tpc_set_err(err, errlen, "%s: %s: %s", dir, what, mdb_strerror(rc));
	return tpc_lmdb_err(rc);
}

/* Refuse a format this build does not read; stamp a new log with ours. */
static int check_format(MDB_txn *txn, MDB_dbi meta, const char *dir, char *err,
			size_t errlen)
{
	MDB_val v;
	uint32_t fmt;
	int rc = meta_get(txn, meta, META_FORMAT, &v);

	if (rc == MDB_NOTFOUND)
		return meta_put_format(txn, meta);
	if (rc) {
		tpc_set_err(err, errlen, "%s: reading the log format: %s", dir, mdb_strerror(rc));
		return tpc_lmdb_err(rc);
	}
	if (v.mv_size != 4) {
		tpc_set_err(err, errlen, "%s: corrupt log format record (%zu bytes)", dir,
			v.mv_size);
		return -EBADMSG;
	}
	fmt = tpc_get_be32(v.mv_data);
	if (fmt != LOG_FORMAT) {
		tpc_set_err(err, errlen, "%s: unsupported log format %u (this build reads format %u)",
			dir, fmt, LOG_FORMAT);
		return -EPROTO;
	}
	return 0;
}

static int open_db(MDB_txn *txn, const char *name, MDB_dbi *dbi, const char *dir,
		   char *err, size_t errlen)
{
	int rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi);

	if (rc)
		tpc_set_err(err, errlen, "%s: opening database \"%s\": %s", dir, name,
			mdb_strerror(rc));
	return tpc_lmdb_err(rc);
}

/*
 * Every key record gets its key_index entry (the sweep's way to it): rebuilt from keys
 * when the index holds fewer entries, as for a log written before the index existed.
 */
static int index_keys(struct lmdb_log *lg, MDB_txn *txn, const char *dir, char *err,
		      size_t errlen)
{
	MDB_stat ks, is;
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_stat(txn, lg->keys, &ks);

	if (rc == 0)
		rc = mdb_stat(txn, lg->key_index, &is);
	if (rc == 0 && is.ms_entries >= ks.ms_entries)
		return 0;
	if (rc == 0)
		rc = mdb_cursor_open(txn, lg->keys, &c);
	if (rc)
		goto out_err;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		unsigned char kbuf[8];
		MDB_val ik = { sizeof(kbuf), kbuf };
		if (v.mv_size != KEYREC_SIZE)
			continue; /* not ours to guess at; lookups report it */
		memcpy(kbuf, v.mv_data, 8);
		rc = mdb_put(txn, lg->key_index, &ik, &k, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return 0;
out_err:
	tpc_set_err(err, errlen, "%s: indexing the transaction keys: %s", dir, mdb_strerror(rc));
	return tpc_lmdb_err(rc);
}

/* Open (creating) the five databases and check the format, in one write txn. */
static int open_dbs(struct lmdb_log *lg, const char *dir, char *err, size_t errlen)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(lg->env, NULL, 0, &txn);

	if (rc) {
		tpc_set_err(err, errlen, "%s: mdb_txn_begin: %s", dir, mdb_strerror(rc));
		return tpc_lmdb_err(rc);
	}
	rc = open_db(txn, "meta", &lg->meta, dir, err, errlen);
	if (rc == 0)
		rc = open_db(txn, "decisions", &lg->decisions, dir, err, errlen);
	if (rc == 0)
		rc = open_db(txn, "keys", &lg->keys, dir, err, errlen);
	if (rc == 0)
		rc = open_db(txn, "audit", &lg->audit, dir, err, errlen);
	if (rc == 0)
		rc = open_db(txn, "participants", &lg->participants, dir, err, errlen);
	if (rc == 0)
		rc = open_db(txn, "key_index", &lg->key_index, dir, err, errlen);
	if (rc == 0)
		rc = check_format(txn, lg->meta, dir, err, errlen);
	if (rc == 0)
		rc = index_keys(lg, txn, dir, err, errlen);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = durable_commit(lg, txn);
	if (rc)
		tpc_set_err(err, errlen, "%s: mdb_txn_commit: %s", dir, mdb_strerror(-rc));
	return rc;
}

int coord_log_lmdb_open(struct coord_log *log, const char *dir, size_t map_size, char *err,
			size_t errlen)
{
	struct lmdb_log *lg;
	int dead, rc;

	if (!log || !dir || !*dir) {
		tpc_set_err(err, errlen, "no log directory given");
		return -EINVAL;
	}
	lg = calloc(1, sizeof(*lg));
	if (!lg) {
		tpc_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = tpc_mkdirs(dir);
	if (rc) {
		tpc_set_err(err, errlen, "%s: cannot create the log directory: %s", dir,
			strerror(-rc));
		goto out_free;
	}
	rc = lock_dir(dir, &lg->lock_fd, err, errlen);
	if (rc)
		goto out_free;
	rc = env_open(lg, dir, map_size, err, errlen);
	if (rc)
		goto out_unlock;
	rc = open_dbs(lg, dir, err, errlen);
	if (rc)
		goto out_env;
	mdb_reader_check(lg->env, &dead); /* free slots left by crashed readers */
	log->ops = &lmdb_ops;
	log->self = lg;
	return 0;

out_env:
	mdb_env_close(lg->env);
out_unlock:
	close(lg->lock_fd);
out_free:
	free(lg);
	return rc;
}
