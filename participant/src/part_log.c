/*
 * part_log.c - the participant's PREPARED log in LMDB, its state folder's lock and
 * identity (part_log.h). The writes blob inside a record is part_blob.c's.
 *
 * Every write is one LMDB write transaction whose commit fdatasyncs its data; the
 * environment has MDB_NOMETASYNC (rule D6), so the meta page naming a batch is synced
 * by the next commit's fdatasync or by part_log_sync(). When part_log_write() returns
 * 0 every EARLIER batch is on disk; its own is once the next write or part_log_sync()
 * returned 0 — only then may the participant vote YES (D2). The group-commit writer
 * keeps that order (batch_writer_set_sync). The set-up commit is followed by a sync.
 *
 * D8: one process per state folder (the flock on "<dir>/lock", taken before LMDB is
 * opened and held until part_log_close()); the folder's participant id is made once;
 * every open is a new incarnation, durable before part_log_open() returns, so two
 * processes that ever used the folder never share an incarnation.
 */
#include "part_log.h"
#include "part_blob.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "bytes.h"
#include "lmdb_err.h"
#include "lmdb_sync.h"
#include "util.h"

#define REC_FORMAT 2
#define REC_HDR 25    /* format, wall_ms, epoch, incarnation */
#define REC_HDR_V1 16 /* wall_ms, epoch */

struct part_log {
	MDB_env *env;
	MDB_dbi prepared, meta;
	int lock_fd;
	uint8_t id[PART_ID_LEN];
	uint64_t incarnation;
	_Atomic uint64_t syncs; /* device syncs: each commit's fdatasync, each env sync */
};

/* ---- LMDB ---- */


static int open_env(MDB_env **env, const char *dir, uint64_t map_size, unsigned flags)
{
	int rc = mdb_env_create(env);
	if (rc)
		return tpc_lmdb_err(rc);
	mdb_env_set_maxdbs(*env, 4);
	if (map_size)
		mdb_env_set_mapsize(*env, map_size);
	rc = mdb_env_open(*env, dir, MDB_NOTLS | flags, 0600);
	/* A process killed inside mdb_txn_commit may leave a visible but unsynced meta page
	 * in the page cache: sync it before a PREPARED record read back is trusted (D2; the
	 * LMDB sink does the same at open for D3). */
	if (rc == 0 && !(flags & MDB_RDONLY))
		rc = mdb_env_sync(*env, 1);
	if (rc) {
		mdb_env_close(*env);
		*env = NULL;
		return tpc_lmdb_err(rc);
	}
	return 0;
}

/* Take the folder's lock; on success write our pid into it. */
static int lock_dir(const char *dir, int *fd_out, char *err, size_t errlen)
{
	char path[4096], holder[32] = "";
	int fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int rc = -errno;
		tpc_set_err(err, errlen, "cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int rc = errno == EWOULDBLOCK ? TPC_ELOCKED : -errno;
		ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		if (rc == TPC_ELOCKED)
			tpc_set_err(err, errlen, "the state folder %s is in use by another process "
				    "(pid %s); one state folder serves one process", dir,
				    holder[0] ? holder : "unknown");
		else
			tpc_set_err(err, errlen, "cannot lock %s: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	int len = snprintf(holder, sizeof(holder), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, holder, (size_t)len, 0) != len) {
		int rc = -errno;
		tpc_set_err(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

static int get_u64(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t *out)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, meta, &k, &v);

	*out = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return tpc_lmdb_err(rc);
	if (v.mv_size != 8)
		return TPC_ECORRUPT;
	*out = tpc_get_be64(v.mv_data);
	return 0;
}

static int put_u64(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t val)
{
	unsigned char buf[8];
	MDB_val k = { strlen(key), (void *)key }, v = { 8, buf };

	tpc_put_be64(buf, val);
	return tpc_lmdb_err(mdb_put(txn, meta, &k, &v, 0));
}

/* The folder's participant id: read it, or make it at the first open. */
static int load_id(MDB_txn *txn, MDB_dbi meta, uint8_t id[PART_ID_LEN])
{
	MDB_val k = { 14, (void *)"participant_id" }, v;
	int rc = mdb_get(txn, meta, &k, &v);

	if (rc == 0) {
		if (v.mv_size != PART_ID_LEN)
			return TPC_ECORRUPT;
		memcpy(id, v.mv_data, PART_ID_LEN);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return tpc_lmdb_err(rc);
	if (getrandom(id, PART_ID_LEN, 0) != PART_ID_LEN)
		return -errno;
	v = (MDB_val){ PART_ID_LEN, id };
	return tpc_lmdb_err(mdb_put(txn, meta, &k, &v, 0));
}

int part_log_sync(struct part_log *l)
{
	return tpc_lmdb_sync(l->env, &l->syncs);
}

/* One synced write transaction: the databases, the id, the next incarnation. */
static int setup(struct part_log *l)
{
	MDB_txn *txn = NULL;
	int rc = tpc_lmdb_err(mdb_txn_begin(l->env, NULL, 0, &txn));

	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_dbi_open(txn, "prepared", MDB_CREATE, &l->prepared));
	if (!rc)
		rc = tpc_lmdb_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &l->meta));
	if (!rc)
		rc = load_id(txn, l->meta, l->id);
	if (!rc)
		rc = get_u64(txn, l->meta, "incarnation", &l->incarnation);
	if (!rc && ++l->incarnation == 0)
		rc = TPC_ECORRUPT;
	if (!rc)
		rc = put_u64(txn, l->meta, "incarnation", l->incarnation);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return tpc_lmdb_commit_durable(l->env, txn, &l->syncs); /* the incarnation is durable */
}

int part_log_open(struct part_log **out, const char *dir, uint64_t map_size, char *err,
		  size_t errlen)
{
	struct part_log *l = calloc(1, sizeof(*l));
	int rc;

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->lock_fd = -1;
	rc = tpc_mkdirs(dir);
	if (rc) {
		tpc_set_err(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
		goto out_free;
	}
	rc = lock_dir(dir, &l->lock_fd, err, errlen);
	if (rc)
		goto out_free;
	rc = open_env(&l->env, dir, map_size ? map_size : (1ull << 30), MDB_NOMETASYNC);
	if (rc) {
		tpc_set_err(err, errlen, "cannot open the state log in %s: %s", dir, mdb_strerror(-rc));
		goto out_free;
	}
	/* A process killed inside mdb_txn_commit may leave a visible but unsynced meta
	 * page in the page cache; sync it before the records are trusted (as the LMDB
	 * sink does at open). */
	rc = tpc_lmdb_err(mdb_env_sync(l->env, 1));
	if (!rc)
		rc = setup(l);
	if (rc) {
		tpc_set_err(err, errlen, "cannot set up the state log in %s: %s", dir,
			    tpc_strerror(rc));
		goto out_free;
	}
	*out = l;
	return 0;
out_free:
	part_log_close(l);
	return rc;
}

void part_log_identity(const struct part_log *l, uint8_t id[PART_ID_LEN],
		       uint64_t *incarnation)
{
	memcpy(id, l->id, PART_ID_LEN);
	*incarnation = l->incarnation;
}

void part_log_close(struct part_log *l)
{
	if (!l)
		return;
	if (l->env)
		mdb_env_close(l->env);
	if (l->lock_fd >= 0)
		close(l->lock_fd); /* releases the flock; the pid stays, harmless */
	free(l);
}

static int put_epoch(MDB_txn *txn, MDB_dbi meta, uint64_t epoch)
{
	uint64_t cur;
	int rc = get_u64(txn, meta, "highest_epoch", &cur);

	if (rc || epoch <= cur)
		return rc;
	return put_u64(txn, meta, "highest_epoch", epoch);
}

static int put_prepared(MDB_txn *txn, MDB_dbi dbi, const struct part_log_put *p)
{
	unsigned char kb[8];
	MDB_val k = { 8, kb }, v = { REC_HDR + p->blob_len, NULL };

	tpc_put_be64(kb, p->txid);
	int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
	if (rc)
		return tpc_lmdb_err(rc);
	unsigned char *d = v.mv_data;
	d[0] = REC_FORMAT;
	tpc_put_be64(d + 1, p->wall_ms);
	tpc_put_be64(d + 9, p->epoch);
	tpc_put_be64(d + 17, p->incarnation);
	memcpy(d + REC_HDR, p->blob, p->blob_len);
	return 0;
}

static int del_prepared(MDB_txn *txn, MDB_dbi dbi, uint64_t txid)
{
	unsigned char kb[8];
	MDB_val k = { 8, kb };

	tpc_put_be64(kb, txid);
	int rc = mdb_del(txn, dbi, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : tpc_lmdb_err(rc);
}

int part_log_write(struct part_log *l, const struct part_log_put *puts, size_t nputs,
		   const uint64_t *dels, size_t ndels, uint64_t highest_epoch)
{
	MDB_txn *txn;
	int rc = tpc_lmdb_err(mdb_txn_begin(l->env, NULL, 0, &txn));

	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < nputs; i++)
		rc = put_prepared(txn, l->prepared, &puts[i]);
	for (size_t i = 0; !rc && i < ndels; i++)
		rc = del_prepared(txn, l->prepared, dels[i]);
	if (!rc)
		rc = put_epoch(txn, l->meta, highest_epoch);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return tpc_lmdb_commit(l->env, txn, &l->syncs); /* every earlier write is durable */
}

int part_log_read_epoch(struct part_log *l, uint64_t *epoch)
{
	MDB_txn *txn;
	int rc = tpc_lmdb_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = get_u64(txn, l->meta, "highest_epoch", epoch);
	mdb_txn_abort(txn);
	return rc;
}

/* Decode one PREPARED record (either format). */
static int decode_rec(const MDB_val *k, const MDB_val *v, struct part_log_put *r)
{
	const unsigned char *d = v->mv_data;

	if (k->mv_size != 8 || v->mv_size < 1)
		return TPC_ECORRUPT;
	memset(r, 0, sizeof(*r));
	r->txid = tpc_get_be64(k->mv_data);
	if (d[0] == 0 && v->mv_size >= REC_HDR_V1 + 4) { /* format 1: wall_ms first */
		r->format = 1;
		r->wall_ms = tpc_get_be64(d);
		r->epoch = tpc_get_be64(d + 8);
		r->blob = d + REC_HDR_V1;
		r->blob_len = v->mv_size - REC_HDR_V1;
		return 0;
	}
	if (d[0] != REC_FORMAT || v->mv_size < REC_HDR + 4)
		return TPC_ECORRUPT;
	r->format = REC_FORMAT;
	r->wall_ms = tpc_get_be64(d + 1);
	r->epoch = tpc_get_be64(d + 9);
	r->incarnation = tpc_get_be64(d + 17);
	r->blob = d + REC_HDR;
	r->blob_len = v->mv_size - REC_HDR;
	return 0;
}

static int walk(MDB_txn *txn, MDB_dbi dbi, int old_ok, part_log_load_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	struct part_log_put r;
	int rc = tpc_lmdb_err(mdb_cursor_open(txn, dbi, &cur));

	if (rc)
		return rc;
	for (int op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
		rc = decode_rec(&k, &v, &r);
		if (!rc && r.format != REC_FORMAT && !old_ok)
			rc = TPC_EVERSION;
		if (!rc)
			rc = fn(arg, &r);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : tpc_lmdb_err(rc);
}

int part_log_load(struct part_log *l, part_log_load_fn fn, void *arg)
{
	MDB_txn *txn;
	int rc = tpc_lmdb_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = walk(txn, l->prepared, 0, fn, arg);
	mdb_txn_abort(txn);
	return rc;
}

struct list_ctx {
	tpc_prepared_info *v;
	size_t n, cap;
	uint64_t now_wall;
};

static int list_one(void *arg, const struct part_log_put *r)
{
	struct list_ctx *lc = arg;
	tpc_write *w;
	size_t n;
	int rc = part_blob_decode(r->blob, r->blob_len, &w, &n);

	if (rc)
		return rc;
	if (lc->n == lc->cap) {
		size_t ncap = lc->cap ? lc->cap * 2 : 16;
		tpc_prepared_info *nv = realloc(lc->v, ncap * sizeof(*nv));
		if (!nv) {
			free(w);
			return -ENOMEM;
		}
		lc->v = nv;
		lc->cap = ncap;
	}
	tpc_prepared_info *info = &lc->v[lc->n++];
	memset(info, 0, sizeof(*info));
	info->txid = r->txid;
	info->age_ms = lc->now_wall > r->wall_ms ? lc->now_wall - r->wall_ms : 0;
	info->nrecords = n;
	for (size_t i = 0; i < n; i++)
		info->bytes += w[i].key_len + w[i].value_len;
	free(w);
	return 0;
}

int part_log_list_dir(const char *dir, tpc_prepared_info **out, size_t *n)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	struct list_ctx lc = { .now_wall = tpc_wall_ms() };
	int rc = open_env(&env, dir, 0, MDB_RDONLY);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	if (!rc) {
		rc = tpc_lmdb_err(mdb_dbi_open(txn, "prepared", 0, &dbi));
		if (!rc)
			rc = walk(txn, dbi, 1, list_one, &lc);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	if (rc) {
		free(lc.v);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	*out = lc.v;
	*n = lc.n;
	return 0;
}

/* ---- the store table ---- */

static int ops_write(void *self, const struct part_log_put *puts, size_t nputs,
		     const uint64_t *dels, size_t ndels, uint64_t highest_epoch)
{
	return part_log_write(self, puts, nputs, dels, ndels, highest_epoch);
}

static int ops_read_epoch(void *self, uint64_t *epoch)
{
	return part_log_read_epoch(self, epoch);
}

static int ops_load(void *self, part_log_load_fn fn, void *arg)
{
	return part_log_load(self, fn, arg);
}

static void ops_identity(const void *self, uint8_t id[PART_ID_LEN], uint64_t *incarnation)
{
	part_log_identity(self, id, incarnation);
}

static void ops_close(void *self)
{
	part_log_close(self);
}

static int ops_sync(void *self)
{
	return part_log_sync(self);
}

static uint64_t ops_syncs(void *self)
{
	struct part_log *l = self;

	return atomic_load(&l->syncs);
}

static const struct part_log_ops lmdb_ops = {
	.write = ops_write,
	.read_epoch = ops_read_epoch,
	.load = ops_load,
	.identity = ops_identity,
	.close = ops_close,
	.syncs = ops_syncs,
	.sync = ops_sync,
};

int part_log_lmdb_open(struct part_store *out, const char *dir, uint64_t map_size,
		       char *err, size_t errlen)
{
	struct part_log *l;
	int rc = part_log_open(&l, dir, map_size, err, errlen);

	*out = (struct part_store){ 0 };
	if (rc)
		return rc;
	*out = (struct part_store){ .ops = &lmdb_ops, .self = l };
	return 0;
}
