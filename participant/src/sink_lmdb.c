/*
 * sink_lmdb.c - the LMDB key-value sink (tpc/sink_lmdb.h).
 *
 * Owns one LMDB environment in its own folder, with two named databases:
 *   "data"    key bytes (1..511) -> u64 txid that wrote it (big-endian) | value bytes
 *   "applied" u64 txid (big-endian) -> u64 applied wall time in ms (big-endian)
 *
 * Invariants:
 *   - exactly-once: a commit() call is ONE write transaction; a txn whose txid is in
 *     "applied" is skipped, else its writes and its "applied" entry are put together.
 *     A txid repeated within one call is applied once (the second sees the first's
 *     "applied" entry inside the same LMDB transaction).
 *   - all or nothing: any failure aborts the whole LMDB transaction, so nothing of
 *     the call is applied; success is a normal synced mdb_txn_commit. The environment
 *     is opened with MDB_NOTLS only: no MDB_NOSYNC / MDB_NOMETASYNC / MDB_WRITEMAP /
 *     MDB_MAPASYNC (rule D6).
 *   - bounded (D9): forget() collects txids the participant will never commit again;
 *     their "applied" entries are deleted inside the next commit() transaction (no
 *     sync of their own), or in one transaction of their own once FORGET_MAX are
 *     waiting, or at close. A forget lost in a crash only leaves entries behind.
 *   - prepare() refuses (TPC_EREFUSED, with a printable reason) what commit() could
 *     not store: keys outside 1..511 bytes, values over 16 MiB, and whatever the
 *     optional refuse callback rejects. It cannot promise against MDB_MAP_FULL: size
 *     the map for the data.
 *   - isolation: prepare() also refuses a transaction writing a key that another
 *     prepared, undecided transaction holds (sink_held.h); the keys are released
 *     when it is decided: committing() (its commit() then comes before any later
 *     one's), abort(), or its commit() itself (a transaction recovered after a restart).
 *
 * The read-only helpers (tpc_sink_lmdb_dump, tpc_sink_lmdb_applied_count) open the
 * environment with MDB_RDONLY and the lock file, so they are safe while a service has
 * the sink open in ANOTHER process. LMDB forbids opening one environment twice in the
 * same process (its POSIX locks are per process: the second open would believe it is
 * alone and reset the lock file), so do not call them from the process that holds the
 * sink open; use tpc_sink_lmdb_get() there.
 *
 * Errors: -errno for system errors (LMDB's positive errno returns are negated); LMDB's
 * own codes (MDB_MAP_FULL, ...; already negative, named by tpc_strerror) pass through;
 * TPC_ECORRUPT for a "data" record shorter than its txid; -EINVAL for bad arguments
 * or for a handle that is not an LMDB sink; -ENOENT from the read-only helpers when
 * the folder or its databases do not exist.
 */
#include "tpc/sink_lmdb.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <lmdb.h>

#include "sink_int.h"
#include "sink_held.h"
#include "bytes.h"
#include "lmdb_err.h"
#include "util.h"

#define DEFAULT_MAP_SIZE ((size_t)1 << 30) /* 1 GiB */
#define MAX_KEY 511u                        /* LMDB's default maximum key size */
#define MAX_VALUE ((size_t)16 << 20)        /* 16 MiB */
#define TXID_SIZE 8u
#define KEY_SHOWN 48u                       /* key bytes quoted in a refusal reason */
#define FORGET_MAX 4096u                    /* forgotten txids held for the next commit */

static const char DB_DATA[] = "data";
static const char DB_APPLIED[] = "applied";

struct lmdb_sink {
	MDB_env *env;
	MDB_dbi data;
	MDB_dbi applied;
	size_t max_key;
	tpc_sink_lmdb_refuse_fn refuse;  /* NULL: refuse nothing */
	void *refuse_arg;
	tpc_txid forget[FORGET_MAX];     /* "applied" entries to delete with the next write */
	size_t nforget;
	struct sink_held held;           /* keys of prepared, undecided transactions */
	_Atomic uint64_t syncs;          /* device syncs asked for (commit thread adds) */
};

static const tpc_sink_ops lmdb_ops;

/* ------------------------------------------------------------ small helpers */

/* The first KEY_SHOWN bytes of @p key, printable: \xNN for anything outside ASCII
 * 0x20..0x7e and for '"' and '\\'; "..." when cut. @p out holds at least 4*KEY_SHOWN+4. */
static void printable_key(char *out, const void *key, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *k = key;
	size_t shown = len < KEY_SHOWN ? len : KEY_SHOWN;

	for (size_t i = 0; i < shown; i++) {
		if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\') {
			*out++ = (char)k[i];
			continue;
		}
		*out++ = '\\';
		*out++ = 'x';
		*out++ = hex[k[i] >> 4];
		*out++ = hex[k[i] & 15];
	}
	if (shown < len) {
		memcpy(out, "...", 3);
		out += 3;
	}
	*out = '\0';
}

static struct lmdb_sink *lmdb_of(tpc_sink *sink)
{
	if (!sink || tpc_sink_ops_of(sink) != &lmdb_ops)
		return NULL;
	return tpc_sink_self(sink);
}

/* ---------------------------------------------------------- folder and env */

/* Create @p dir (0700) if missing; *created tells whether it did. */
static int ensure_dir(const char *dir, int *created)
{
	struct stat st;

	*created = 0;
	if (mkdir(dir, 0700) == 0 || (errno == ENOENT && tpc_mkdirs(dir) == 0)) {
		*created = 1;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	if (stat(dir, &st) != 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int open_dbs(struct lmdb_sink *s)
{
	MDB_txn *txn;
	int rc;

	rc = tpc_lmdb_err(mdb_txn_begin(s->env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_dbi_open(txn, DB_DATA, MDB_CREATE, &s->data));
	if (rc)
		goto out_abort;
	rc = tpc_lmdb_err(mdb_dbi_open(txn, DB_APPLIED, MDB_CREATE, &s->applied));
	if (rc)
		goto out_abort;
	return tpc_lmdb_err(mdb_txn_commit(txn));
out_abort:
	mdb_txn_abort(txn);
	return rc;
}

static int open_env(struct lmdb_sink *s, const char *dir, size_t map_size)
{
	int rc;

	rc = tpc_lmdb_err(mdb_env_create(&s->env));
	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_env_set_maxdbs(s->env, 2));
	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_env_set_mapsize(s->env, map_size ? map_size : DEFAULT_MAP_SIZE));
	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_env_open(s->env, dir, MDB_NOTLS, 0600));
	if (rc)
		return rc;
	s->max_key = (size_t)mdb_env_get_maxkeysize(s->env);
	if (s->max_key > MAX_KEY)
		s->max_key = MAX_KEY;
	rc = open_dbs(s);
	if (rc)
		return rc;
	/* A process killed inside mdb_txn_commit may leave a visible but unsynced meta
	 * page in the page cache; sync it before "applied" answers are trusted (D3). */
	rc = tpc_lmdb_err(mdb_env_sync(s->env, 1));
	if (rc)
		return rc;
	return tpc_fsync_dir(dir); /* data.mdb's directory entry is durable too */
}

static int flush_forgets(struct lmdb_sink *s);

static void lmdb_destroy(void *self)
{
	struct lmdb_sink *s = self;

	if (!s)
		return;
	if (s->env && s->nforget)
		flush_forgets(s); /* a failure only leaves entries behind */
	if (s->env)
		mdb_env_close(s->env);
	sink_held_free(&s->held);
	free(s);
}

const char *tpc_sink_lmdb_dir(tpc_sink *sink)
{
	const char *path = NULL;

	if (!sink || tpc_sink_ops_of(sink) != &lmdb_ops)
		return NULL;
	struct lmdb_sink *s = tpc_sink_self(sink);
	return mdb_env_get_path(s->env, &path) == 0 ? path : NULL;
}

tpc_sink *tpc_sink_lmdb_open(const char *dir, size_t map_size, int *err)
{
	struct lmdb_sink *s = NULL;
	tpc_sink *sink;
	int created, rc;

	if (!dir || !*dir) {
		rc = -EINVAL;
		goto out_err;
	}
	rc = ensure_dir(dir, &created);
	if (rc)
		goto out_err;
	if (created && (rc = tpc_fsync_parent(dir)) != 0)
		goto out_err;
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out_err;
	}
	sink_held_init(&s->held);
	rc = open_env(s, dir, map_size);
	if (rc)
		goto out_free;
	sink = tpc_sink_new(&lmdb_ops, s);
	if (!sink) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (err)
		*err = 0;
	return sink;
out_free:
	lmdb_destroy(s);
out_err:
	if (err)
		*err = rc;
	return NULL;
}

/* ----------------------------------------------------------------- prepare */

static int check_write(const struct lmdb_sink *s, const tpc_write *w, size_t i, char *reason,
		       size_t reason_len)
{
	if (w->key_len == 0 || w->key_len > s->max_key || !w->key) {
		tpc_set_err(reason, reason_len, "write %zu: key of %zu bytes; the LMDB sink takes 1..%zu",
			   i, w->key_len, s->max_key);
		return TPC_EREFUSED;
	}
	if (w->value_len > MAX_VALUE || (w->value_len > 0 && !w->value)) {
		tpc_set_err(reason, reason_len, "write %zu: value of %zu bytes; the LMDB sink takes up to %zu",
			   i, w->value_len, MAX_VALUE);
		return TPC_EREFUSED;
	}
	return 0;
}

/* Isolation: the keys become this transaction's until it is decided (sink_held.h). */
static int claim_keys(struct lmdb_sink *s, const tpc_sink_txn *txn, char *reason,
		      size_t reason_len)
{
	char shown[4 * KEY_SHOWN + 4];
	size_t at = 0;
	tpc_txid holder = 0;
	int rc = sink_held_claim(&s->held, txn, &at, &holder);

	if (rc == TPC_EREFUSED) {
		printable_key(shown, txn->writes[at].key, txn->writes[at].key_len);
		tpc_set_err(reason, reason_len, "key \"%s\" is held by prepared transaction "
			    "%llu, not yet decided", shown, (unsigned long long)holder);
	} else if (rc) {
		tpc_set_err(reason, reason_len, "out of memory");
	}
	return rc;
}

static int lmdb_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t reason_len)
{
	struct lmdb_sink *s = self;
	char shown[4 * KEY_SHOWN + 4];
	int rc;

	if (txn->txid == 0 || (txn->nwrites > 0 && !txn->writes)) {
		tpc_set_err(reason, reason_len, "malformed transaction");
		return -EINVAL;
	}
	for (size_t i = 0; i < txn->nwrites; i++) {
		const tpc_write *w = &txn->writes[i];

		rc = check_write(s, w, i, reason, reason_len);
		if (rc)
			return rc;
		if (s->refuse && s->refuse(s->refuse_arg, w)) {
			printable_key(shown, w->key, w->key_len);
			tpc_set_err(reason, reason_len, "key \"%s\" refused by the sink", shown);
			return TPC_EREFUSED;
		}
	}
	return claim_keys(s, txn, reason, reason_len);
}

/* ------------------------------------------------------------------ commit */

static int put_value(struct lmdb_sink *s, MDB_txn *txn, tpc_txid txid, const tpc_write *w)
{
	MDB_val k = { w->key_len, (void *)w->key };
	MDB_val v = { TXID_SIZE + w->value_len, NULL };
	int rc;

	if (w->key_len == 0 || w->key_len > s->max_key || w->value_len > MAX_VALUE)
		return -EINVAL;
	rc = tpc_lmdb_err(mdb_put(txn, s->data, &k, &v, MDB_RESERVE));
	if (rc)
		return rc;
	tpc_put_be64(v.mv_data, txid);
	if (w->value_len > 0)
		memcpy((unsigned char *)v.mv_data + TXID_SIZE, w->value, w->value_len);
	return 0;
}

/* 1 if @p txid is in "applied", 0 if not, negative on error. */
static int is_applied(struct lmdb_sink *s, MDB_txn *txn, tpc_txid txid)
{
	unsigned char kbuf[TXID_SIZE];
	MDB_val k = { sizeof(kbuf), kbuf };
	MDB_val v;
	int rc;

	tpc_put_be64(kbuf, txid);
	rc = mdb_get(txn, s->applied, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc ? tpc_lmdb_err(rc) : 1;
}

static int apply_txn(struct lmdb_sink *s, MDB_txn *txn, const tpc_sink_txn *t, uint64_t now)
{
	unsigned char kbuf[TXID_SIZE], vbuf[8];
	MDB_val k = { sizeof(kbuf), kbuf };
	MDB_val v = { sizeof(vbuf), vbuf };
	int rc;

	if (t->txid == 0 || (t->nwrites > 0 && !t->writes))
		return -EINVAL;
	rc = is_applied(s, txn, t->txid);
	if (rc)
		return rc < 0 ? rc : 0; /* already applied: nothing to do */
	for (size_t i = 0; i < t->nwrites; i++) {
		rc = put_value(s, txn, t->txid, &t->writes[i]);
		if (rc)
			return rc;
	}
	tpc_put_be64(kbuf, t->txid);
	tpc_put_be64(vbuf, now);
	return tpc_lmdb_err(mdb_put(txn, s->applied, &k, &v, 0));
}

/* Delete the waiting forgotten txids' "applied" entries inside @p txn. */
static int del_forgets(struct lmdb_sink *s, MDB_txn *txn)
{
	unsigned char kbuf[TXID_SIZE];
	MDB_val k = { sizeof(kbuf), kbuf };

	for (size_t i = 0; i < s->nforget; i++) {
		tpc_put_be64(kbuf, s->forget[i]);
		int rc = mdb_del(txn, s->applied, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return tpc_lmdb_err(rc);
	}
	return 0;
}

static int lmdb_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	struct lmdb_sink *s = self;
	uint64_t now = tpc_wall_ms();
	MDB_txn *txn;
	int rc;

	if (n == 0 && s->nforget == 0)
		return 0;
	rc = tpc_lmdb_err(mdb_txn_begin(s->env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = del_forgets(s, txn);
	for (size_t i = 0; !rc && i < n; i++)
		rc = apply_txn(s, txn, &txns[i], now);
	if (rc)
		goto out_abort;
	rc = tpc_lmdb_err(mdb_txn_commit(txn)); /* synced (D6); frees txn either way */
	atomic_fetch_add(&s->syncs, 2);          /* the data, then the meta page */
	if (rc == 0)
		s->nforget = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		sink_held_release(&s->held, txns[i].txid); /* decided and durable: keys free */
	return rc;
out_abort:
	mdb_txn_abort(txn);
	return rc;
}

static int flush_forgets(struct lmdb_sink *s)
{
	return lmdb_commit(s, NULL, 0);
}

static void lmdb_forget(void *self, const tpc_txid *txids, size_t n)
{
	struct lmdb_sink *s = self;

	for (size_t i = 0; i < n; i++) {
		if (s->nforget == FORGET_MAX && flush_forgets(s) != 0)
			return; /* cannot write now: these entries stay, harmless */
		s->forget[s->nforget++] = txids[i];
	}
}

static int lmdb_applied(void *self, tpc_txid txid)
{
	struct lmdb_sink *s = self;
	MDB_txn *txn;
	int rc;

	rc = tpc_lmdb_err(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = is_applied(s, txn, txid);
	mdb_txn_abort(txn);
	return rc;
}

/* The transaction is decided (aborted, or its commit() is queued): its keys are free. */
static void lmdb_abort(void *self, tpc_txid txid)
{
	struct lmdb_sink *s = self;

	sink_held_release(&s->held, txid);
}

static uint64_t lmdb_syncs(void *self)
{
	struct lmdb_sink *s = self;

	return atomic_load(&s->syncs);
}

static const tpc_sink_ops lmdb_ops = {
	.prepare = lmdb_prepare,
	.commit = lmdb_commit,
	.abort = lmdb_abort,
	.committing = lmdb_abort, /* decided: the keys are free (its commit() comes first) */
	.applied = lmdb_applied,
	.forget = lmdb_forget,
	.destroy = lmdb_destroy,
	.syncs = lmdb_syncs,
};

/* ---------------------------------------------------------- handle helpers */

void tpc_sink_lmdb_set_refuse(tpc_sink *sink, tpc_sink_lmdb_refuse_fn fn, void *arg)
{
	struct lmdb_sink *s = lmdb_of(sink);

	if (!s)
		return;
	s->refuse = fn;
	s->refuse_arg = fn ? arg : NULL;
}

/* Split a "data" record into its txid and a malloc'd copy of its value. */
static int copy_record(const MDB_val *v, void **value, size_t *value_len, tpc_txid *txid)
{
	size_t len;

	if (v->mv_size < TXID_SIZE)
		return TPC_ECORRUPT;
	len = v->mv_size - TXID_SIZE;
	*value = malloc(len ? len : 1);
	if (!*value)
		return -ENOMEM;
	if (len > 0)
		memcpy(*value, (const unsigned char *)v->mv_data + TXID_SIZE, len);
	*value_len = len;
	if (txid)
		*txid = tpc_get_be64(v->mv_data);
	return 1;
}

int tpc_sink_lmdb_get(tpc_sink *sink, const void *key, size_t key_len, void **value,
		      size_t *value_len, tpc_txid *txid)
{
	struct lmdb_sink *s = lmdb_of(sink);
	MDB_val k = { key_len, (void *)key };
	MDB_val v;
	MDB_txn *txn;
	int rc;

	if (!value || !value_len)
		return -EINVAL;
	*value = NULL;
	*value_len = 0;
	if (!s || !key || key_len == 0 || key_len > s->max_key)
		return -EINVAL;
	rc = tpc_lmdb_err(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = mdb_get(txn, s->data, &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	else if (rc)
		rc = tpc_lmdb_err(rc);
	else
		rc = copy_record(&v, value, value_len, txid);
	mdb_txn_abort(txn);
	return rc;
}

/* ------------------------------------------------------- read-only helpers */

struct ro_view {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
};

static int data_file_exists(const char *dir)
{
	struct stat st;
	size_t len = strlen(dir) + sizeof("/data.mdb");
	char *path = malloc(len);
	int rc = 0;

	if (!path)
		return -ENOMEM;
	snprintf(path, len, "%s/data.mdb", dir);
	if (stat(path, &st) != 0)
		rc = -errno;
	free(path);
	return rc;
}

static void ro_close(struct ro_view *ro)
{
	if (ro->txn)
		mdb_txn_abort(ro->txn);
	if (ro->env)
		mdb_env_close(ro->env);
	ro->txn = NULL;
	ro->env = NULL;
}

/* Open @p dir read-only (with the lock file, so a live writer elsewhere is fine) and
 * database @p name in a read transaction. -ENOENT when either is missing. */
static int ro_open(struct ro_view *ro, const char *dir, const char *name)
{
	int rc;

	memset(ro, 0, sizeof(*ro));
	if (!dir || !*dir)
		return -EINVAL;
	rc = data_file_exists(dir); /* else LMDB would create a lock file in an empty dir */
	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_env_create(&ro->env));
	if (rc)
		goto out_close;
	rc = tpc_lmdb_err(mdb_env_set_maxdbs(ro->env, 2));
	if (rc)
		goto out_close;
	rc = tpc_lmdb_err(mdb_env_open(ro->env, dir, MDB_RDONLY | MDB_NOTLS, 0600));
	if (rc)
		goto out_close;
	rc = tpc_lmdb_err(mdb_txn_begin(ro->env, NULL, MDB_RDONLY, &ro->txn));
	if (rc)
		goto out_close;
	rc = mdb_dbi_open(ro->txn, name, 0, &ro->dbi);
	rc = rc == MDB_NOTFOUND ? -ENOENT : tpc_lmdb_err(rc);
	if (rc)
		goto out_close;
	return 0;
out_close:
	ro_close(ro);
	return rc;
}

static int dump_walk(struct ro_view *ro, tpc_sink_lmdb_dump_fn fn, void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, op = MDB_FIRST;

	rc = tpc_lmdb_err(mdb_cursor_open(ro->txn, ro->dbi, &c));
	if (rc)
		return rc;
	while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (v.mv_size < TXID_SIZE) {
			rc = TPC_ECORRUPT;
			goto out_close;
		}
		rc = fn(arg, k.mv_data, k.mv_size, (const unsigned char *)v.mv_data + TXID_SIZE,
			v.mv_size - TXID_SIZE, tpc_get_be64(v.mv_data));
		if (rc)
			goto out_close;
	}
	rc = rc == MDB_NOTFOUND ? 0 : tpc_lmdb_err(rc);
out_close:
	mdb_cursor_close(c);
	return rc;
}

int tpc_sink_lmdb_dump(const char *dir, tpc_sink_lmdb_dump_fn fn, void *arg)
{
	struct ro_view ro;
	int rc;

	if (!fn)
		return -EINVAL;
	rc = ro_open(&ro, dir, DB_DATA);
	if (rc)
		return rc;
	rc = dump_walk(&ro, fn, arg);
	ro_close(&ro);
	return rc;
}

int tpc_sink_lmdb_applied_count(const char *dir, uint64_t *count)
{
	struct ro_view ro;
	MDB_stat st;
	int rc;

	if (!count)
		return -EINVAL;
	*count = 0;
	rc = ro_open(&ro, dir, DB_APPLIED);
	if (rc)
		return rc;
	rc = tpc_lmdb_err(mdb_stat(ro.txn, ro.dbi, &st));
	if (rc == 0)
		*count = st.ms_entries;
	ro_close(&ro);
	return rc;
}
