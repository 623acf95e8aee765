/*
 * sink_file.c - the append-only file sink (tpc/sink_file.h).
 *
 * Owns one file, opened O_APPEND and locked with flock(LOCK_EX) so no second handle
 * (in this process or another) appends to it, and the in-memory set of txids it holds
 * (forget() removes txids from the set while the sink is open, D9; the file keeps them).
 *
 * Line format, one per write, '\n'-terminated, text:
 *   <txid> TAB <index>/<count> TAB <hex key> TAB <hex value>
 * txid, index and count are unsigned decimal; index runs 1..count within a transaction
 * and a transaction's lines are contiguous and in order. Hex is lowercase on write
 * (either case is accepted on read), two digits per byte, so keys and values may hold
 * any bytes. A transaction with no writes is recorded as one marker line
 * "<txid> TAB 0/0 TAB TAB" so that its txid is still remembered as applied.
 *
 * Invariants:
 *   - every byte of the file up to s->size belongs to a complete transaction that has
 *     been fdatasync'd (open syncs what it scanned, since a process crash can leave
 *     written-but-unsynced lines in the page cache);
 *   - commit() appends all lines of the call's not-yet-applied txids with one write()
 *     loop and one fdatasync(), and only then adds those txids to the set; a failed
 *     write or sync is cut off again with ftruncate(), so nothing is ever appended
 *     after a partial line (if even the cut fails, the handle refuses further commits
 *     until reopened);
 *   - open cuts a torn tail (a last line without '\n', an unparseable last line, a last
 *     transaction with fewer lines than its count) and reports the bytes; damage
 *     anywhere else is -EBADMSG: committed data is never dropped silently.
 *
 * Limits (checked at prepare, vote NO; and again at commit, -EINVAL): key 1..64 KiB,
 * value up to 16 MiB.
 */
#include "broken.h"
#include "tpc/sink_file.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "sink_int.h"
#include "util.h"

#define MAX_KEY ((size_t)64 << 10)     /* 64 KiB */
#define MAX_VALUE ((size_t)16 << 20)   /* 16 MiB */
#define MAX_DEC 20u                    /* digits of UINT64_MAX */
#define SET_MIN_CAP 64u
#define BUF_KEEP ((size_t)4 << 20)     /* keep a commit buffer up to this size */

/* Open-addressing (linear probing) set of non-zero u64; 0 marks an empty slot. */
struct txid_set {
	uint64_t *slots;
	size_t cap;    /* a power of two, or 0 */
	size_t count;  /* kept at most cap / 2 */
};

struct file_sink {
	int fd;
	uint64_t size;          /* file length: all complete, synced transactions */
	int broken;             /* non-zero: a failed commit could not be cut off */
	struct txid_set applied;
	char *buf;              /* commit's line buffer, reused between calls */
	size_t buf_cap;
	_Atomic uint64_t syncs; /* fdatasync calls of commits (commit thread adds) */
};

/* ---------------------------------------------------------------- txid set */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The slot holding @p id, or the empty slot where it would go (cap > 0). */
static size_t set_slot(const struct txid_set *set, uint64_t id)
{
	size_t mask = set->cap - 1;
	size_t i = (size_t)mix64(id) & mask;

	while (set->slots[i] != 0 && set->slots[i] != id)
		i = (i + 1) & mask;
	return i;
}

static int set_has(const struct txid_set *set, uint64_t id)
{
	return set->cap > 0 && set->slots[set_slot(set, id)] == id;
}

static int set_rehash(struct txid_set *set, size_t cap)
{
	struct txid_set bigger = { calloc(cap, sizeof(uint64_t)), cap, set->count };

	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i] != 0)
			bigger.slots[set_slot(&bigger, set->slots[i])] = set->slots[i];
	free(set->slots);
	*set = bigger;
	return 0;
}

/* Make room for @p n ids in all, so that adding up to that many cannot fail. */
static int set_reserve(struct txid_set *set, size_t n)
{
	size_t cap = set->cap ? set->cap : SET_MIN_CAP;

	while (n > cap / 2)
		cap *= 2;
	return cap == set->cap ? 0 : set_rehash(set, cap);
}

/* 1 added, 0 already present, -ENOMEM. */
static int set_add(struct txid_set *set, uint64_t id)
{
	size_t i;
	int rc = set_reserve(set, set->count + 1);

	if (rc)
		return rc;
	i = set_slot(set, id);
	if (set->slots[i] == id)
		return 0;
	set->slots[i] = id;
	set->count++;
	return 1;
}

/* Remove @p id (if present), shifting later members of its probe run back so that
 * every remaining id stays reachable from its home slot. */
static void set_del(struct txid_set *set, uint64_t id)
{
	size_t mask = set->cap - 1, i, j;

	if (!set->cap || set->slots[i = set_slot(set, id)] != id)
		return;
	set->slots[i] = 0;
	set->count--;
	for (j = (i + 1) & mask; set->slots[j] != 0; j = (j + 1) & mask) {
		size_t home = (size_t)mix64(set->slots[j]) & mask;
		/* j may move to i unless its home lies cyclically in (i, j] */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			set->slots[i] = set->slots[j];
			set->slots[j] = 0;
			i = j;
		}
	}
}

static void set_free(struct txid_set *set)
{
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* ------------------------------------------------------------- line parser */

struct line {
	uint64_t txid;
	uint64_t index;
	uint64_t count;
	size_t key_hex;    /* length of the hex key field */
	size_t value_hex;  /* length of the hex value field */
};

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decimal digits at p[*pos..] up to @p term (consumed); 0 or -1. */
static int parse_dec(const unsigned char *p, size_t n, size_t *pos, unsigned char term,
		     uint64_t *out)
{
	size_t i = *pos;
	uint64_t v = 0;

	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		if (v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (i == *pos || i >= n || p[i] != term)
		return -1;
	*out = v;
	*pos = i + 1;
	return 0;
}

/* Hex digits at p[*pos..] up to @p term (consumed) or, when term is 0, to the end. */
static int parse_hex(const unsigned char *p, size_t n, size_t *pos, unsigned char term,
		     size_t *len)
{
	size_t i = *pos;

	while (i < n && hex_val(p[i]) >= 0)
		i++;
	if ((i - *pos) % 2 != 0)
		return -1;
	if (term ? (i >= n || p[i] != term) : i != n)
		return -1;
	*len = i - *pos;
	*pos = term ? i + 1 : i;
	return 0;
}

/* One line without its '\n': 0 if well formed, -1 if not. */
static int parse_line(const unsigned char *p, size_t n, struct line *l)
{
	size_t pos = 0;

	if (parse_dec(p, n, &pos, '\t', &l->txid) || parse_dec(p, n, &pos, '/', &l->index) ||
	    parse_dec(p, n, &pos, '\t', &l->count) || parse_hex(p, n, &pos, '\t', &l->key_hex) ||
	    parse_hex(p, n, &pos, 0, &l->value_hex))
		return -1;
	if (l->txid == 0)
		return -1;
	if (l->count == 0) /* the marker of a transaction without writes */
		return l->index == 0 && l->key_hex == 0 && l->value_hex == 0 ? 0 : -1;
	if (l->index == 0 || l->index > l->count || l->key_hex == 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ file scanner */

/* Where the scan is: the transaction whose lines are being read, if any. */
struct scan {
	int open;          /* a transaction started and is not complete yet */
	uint64_t txid;
	uint64_t next;     /* the index its next line must carry */
	uint64_t count;
	size_t keep;       /* end of the last complete transaction */
};

/* Feed one parsed line ending at @p end (after its '\n'); -EBADMSG if out of order. */
static int scan_line(struct scan *sc, struct txid_set *set, const struct line *l, size_t end)
{
	int rc;

	if (sc->open) {
		if (l->txid != sc->txid || l->count != sc->count || l->index != sc->next)
			return -EBADMSG;
	} else {
		if (l->index != (l->count ? 1 : 0))
			return -EBADMSG;
		sc->open = 1;
		sc->txid = l->txid;
		sc->count = l->count;
	}
	sc->next = l->index + 1;
	if (l->index < l->count)
		return 0;
	sc->open = 0;
	sc->keep = end;
	rc = set_add(set, l->txid);
	return rc < 0 ? rc : 0;
}

/* Scan @p len bytes at @p p into @p set; *keep is where the intact part ends. */
static int scan_buffer(const unsigned char *p, size_t len, struct txid_set *set, size_t *keep)
{
	struct scan sc = { 0 };
	size_t off = 0;
	int rc = 0;

	while (off < len) {
		const unsigned char *nl = memchr(p + off, '\n', len - off);
		size_t end;
		struct line l;

		if (!nl)
			break; /* torn last line */
		end = (size_t)(nl - p) + 1;
		if (parse_line(p + off, end - 1 - off, &l) != 0) {
			if (end == len)
				break; /* unparseable last line: torn */
			rc = -EBADMSG;
			break;
		}
		rc = scan_line(&sc, set, &l, end);
		if (rc)
			break;
		off = end;
	}
	*keep = sc.keep;
	return rc;
}

static int scan_file(struct file_sink *s, uint64_t *repaired)
{
	struct stat st;
	void *map;
	size_t keep = 0;
	int rc;

	if (fstat(s->fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > SIZE_MAX)
		return -EFBIG;
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, s->fd, 0);
		if (map == MAP_FAILED)
			return -errno;
		madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
		rc = scan_buffer(map, (size_t)st.st_size, &s->applied, &keep);
		munmap(map, (size_t)st.st_size);
		if (rc)
			return rc;
	}
	*repaired = (uint64_t)st.st_size - keep;
	s->size = keep;
	if (keep < (uint64_t)st.st_size && ftruncate(s->fd, (off_t)keep) != 0)
		return -errno;
	/* Also makes durable what a crashed process wrote but did not sync yet. */
	return fdatasync(s->fd) != 0 ? -errno : 0;
}

/* ---------------------------------------------------------- open and close */

/* Create the folder @p path is in, and the folders above it, like a state_dir (0700). */
static int make_parent(const char *path)
{
	char *copy = strdup(path);
	int rc;

	if (!copy)
		return -ENOMEM;
	rc = tpc_mkdirs(dirname(copy));
	free(copy);
	return rc;
}

/* Open (creating, with its folder) @p path; *created tells whether this call created it. */
static int open_file(const char *path, int *fd, int *created)
{
	const int flags = O_RDWR | O_APPEND | O_CLOEXEC;

	*created = 0;
	int rc = make_parent(path);
	if (rc)
		return rc;
	*fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	if (*fd >= 0) {
		*created = 1;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	*fd = open(path, flags);
	return *fd < 0 ? -errno : 0;
}

static void file_destroy(void *self)
{
	struct file_sink *s = self;

	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd); /* also drops the flock */
	set_free(&s->applied);
	free(s->buf);
	free(s);
}

static const tpc_sink_ops file_ops;

static int file_init(struct file_sink *s, const char *path, uint64_t *repaired)
{
	int created, rc;

	rc = open_file(path, &s->fd, &created);
	if (rc)
		return rc;
	if (flock(s->fd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (created && (rc = tpc_fsync_parent(path)) != 0)
		return rc;
	return scan_file(s, repaired);
}

tpc_sink *tpc_sink_file_open(const char *path, int *err, uint64_t *repaired_bytes)
{
	struct file_sink *s;
	tpc_sink *sink;
	uint64_t repaired = 0;
	int rc;

	if (!path || !*path) {
		rc = -EINVAL;
		goto out_err;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out_err;
	}
	s->fd = -1;
	rc = file_init(s, path, &repaired);
	if (rc)
		goto out_free;
	sink = tpc_sink_new(&file_ops, s);
	if (!sink) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (repaired_bytes)
		*repaired_bytes = repaired;
	if (err)
		*err = 0;
	return sink;
out_free:
	file_destroy(s);
out_err:
	if (err)
		*err = rc;
	return NULL;
}

/* ----------------------------------------------------------------- prepare */

static int check_txn(const tpc_sink_txn *t, char *reason, size_t reason_len)
{
	if (t->txid == 0 || (t->nwrites > 0 && !t->writes)) {
		tpc_set_err(reason, reason_len, "malformed transaction");
		return -EINVAL;
	}
	for (size_t i = 0; i < t->nwrites; i++) {
		const tpc_write *w = &t->writes[i];

		if (w->key_len == 0 || w->key_len > MAX_KEY || !w->key) {
			tpc_set_err(reason, reason_len,
				   "write %zu: key of %zu bytes; the file sink takes 1..%zu", i,
				   w->key_len, MAX_KEY);
			return -EINVAL;
		}
		if (w->value_len > MAX_VALUE || (w->value_len > 0 && !w->value)) {
			tpc_set_err(reason, reason_len,
				   "write %zu: value of %zu bytes; the file sink takes up to %zu", i,
				   w->value_len, MAX_VALUE);
			return -EINVAL;
		}
	}
	return 0;
}

static int file_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t reason_len)
{
	int rc = check_txn(txn, reason, reason_len);

	if (rc && txn->txid != 0)
		return TPC_EREFUSED;
	return rc;
}

/* ------------------------------------------------------------------ commit */

static size_t dec_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static char *put_dec(char *out, uint64_t v)
{
	char tmp[MAX_DEC];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*out++ = tmp[--n];
	return out;
}

static char *put_hex(char *out, const void *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		*out++ = hex[p[i] >> 4];
		*out++ = hex[p[i] & 15];
	}
	return out;
}

static size_t line_len(tpc_txid txid, uint64_t index, uint64_t count, size_t klen, size_t vlen)
{
	return dec_len(txid) + 1 + dec_len(index) + 1 + dec_len(count) + 1 + 2 * klen + 1 +
	       2 * vlen + 1;
}

static char *put_line(char *out, tpc_txid txid, uint64_t index, uint64_t count,
		      const tpc_write *w)
{
	out = put_dec(out, txid);
	*out++ = '\t';
	out = put_dec(out, index);
	*out++ = '/';
	out = put_dec(out, count);
	*out++ = '\t';
	if (w)
		out = put_hex(out, w->key, w->key_len);
	*out++ = '\t';
	if (w)
		out = put_hex(out, w->value, w->value_len);
	*out++ = '\n';
	return out;
}

static size_t txn_len(const tpc_sink_txn *t)
{
	size_t n = 0;

	if (t->nwrites == 0)
		return line_len(t->txid, 0, 0, 0, 0);
	for (size_t i = 0; i < t->nwrites; i++)
		n += line_len(t->txid, i + 1, t->nwrites, t->writes[i].key_len,
			      t->writes[i].value_len);
	return n;
}

static int buf_reserve(struct file_sink *s, size_t need)
{
	size_t cap = s->buf_cap ? s->buf_cap : 4096;
	char *p;

	if (need <= s->buf_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(s->buf, cap);
	if (!p)
		return -ENOMEM;
	s->buf = p;
	s->buf_cap = cap;
	return 0;
}

/* Append @p t's lines at s->buf + *len. */
static int encode_txn(struct file_sink *s, const tpc_sink_txn *t, size_t *len)
{
	char *out;
	int rc = buf_reserve(s, *len + txn_len(t));

	if (rc)
		return rc;
	out = s->buf + *len;
	if (t->nwrites == 0)
		out = put_line(out, t->txid, 0, 0, NULL);
	for (size_t i = 0; i < t->nwrites; i++)
		out = put_line(out, t->txid, i + 1, t->nwrites, &t->writes[i]);
	*len = (size_t)(out - s->buf);
	return 0;
}

/* Encode every txn of the call not applied yet (first occurrence of a txid only);
 * @p batch collects their txids. */
static int encode_batch(struct file_sink *s, const tpc_sink_txn *txns, size_t n,
			struct txid_set *batch, size_t *len)
{
	int rc;

	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (set_has(&s->applied, txns[i].txid) && !tpc_broken("sink.no_dedup"))
			continue; /* applied already: a no-op (the BROKEN test variant re-applies) */
		rc = set_add(batch, txns[i].txid);
		if (rc <= 0) {
			if (rc < 0)
				return rc;
			continue; /* repeated within this call */
		}
		rc = encode_txn(s, &txns[i], len);
		if (rc)
			return rc;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Append and sync; on failure cut the file back to s->size. */
static int append_synced(struct file_sink *s, size_t len)
{
	int rc = write_all(s->fd, s->buf, len);

	if (rc == 0) {
		atomic_fetch_add(&s->syncs, 1);
		if (fdatasync(s->fd) != 0)
			rc = -errno;
	}
	if (rc == 0) {
		s->size += len;
		return 0;
	}
	if (ftruncate(s->fd, (off_t)s->size) != 0)
		s->broken = rc; /* a partial line may remain: never append after it */
	return rc;
}

static void add_batch(struct txid_set *dst, const struct txid_set *batch)
{
	for (size_t i = 0; i < batch->cap; i++)
		if (batch->slots[i] != 0)
			set_add(dst, batch->slots[i]); /* room reserved: cannot fail */
}

static int file_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	struct file_sink *s = self;
	struct txid_set batch = { 0 };
	size_t len;
	int rc;

	if (s->broken)
		return s->broken;
	for (size_t i = 0; i < n; i++) {
		rc = check_txn(&txns[i], NULL, 0);
		if (rc)
			return rc;
	}
	rc = encode_batch(s, txns, n, &batch, &len);
	if (rc == 0 && batch.count > 0)
		rc = set_reserve(&s->applied, s->applied.count + batch.count);
	if (rc == 0 && len > 0)
		rc = append_synced(s, len);
	if (rc == 0)
		add_batch(&s->applied, &batch);
	set_free(&batch);
	if (s->buf_cap > BUF_KEEP) {
		free(s->buf);
		s->buf = NULL;
		s->buf_cap = 0;
	}
	return rc;
}

static int file_applied(void *self, tpc_txid txid)
{
	struct file_sink *s = self;

	return set_has(&s->applied, txid);
}

/* The lines stay in the file (they are the data); only the in-memory set shrinks.
 * A reopen scans the whole file and remembers every txid in it again. */
static void file_forget(void *self, const tpc_txid *txids, size_t n)
{
	struct file_sink *s = self;

	for (size_t i = 0; i < n; i++)
		set_del(&s->applied, txids[i]);
}

static uint64_t file_syncs(void *self)
{
	struct file_sink *s = self;

	return atomic_load(&s->syncs);
}

static const tpc_sink_ops file_ops = {
	.prepare = file_prepare,
	.commit = file_commit,
	.abort = NULL, /* prepare reserves nothing */
	.applied = file_applied,
	.forget = file_forget,
	.destroy = file_destroy,
	.syncs = file_syncs,
};

/* ------------------------------------------------------------------ dump */

static int dump_line(const unsigned char *p, const struct line *l, tpc_sink_file_dump_fn fn,
		     void *arg)
{
	size_t klen = l->key_hex / 2, vlen = l->value_hex / 2;
	unsigned char *kv = malloc(klen + vlen + 1);
	const unsigned char *kh = p, *vh;
	int rc;

	if (!kv)
		return -ENOMEM;
	/* The key starts after the second tab; the value after the third. */
	for (int tabs = 0; tabs < 2; kh++)
		tabs += *kh == '\t';
	vh = kh + l->key_hex + 1;
	for (size_t i = 0; i < klen; i++)
		kv[i] = (unsigned char)(hex_val(kh[2 * i]) << 4 | hex_val(kh[2 * i + 1]));
	for (size_t i = 0; i < vlen; i++)
		kv[klen + i] = (unsigned char)(hex_val(vh[2 * i]) << 4 | hex_val(vh[2 * i + 1]));
	rc = fn(arg, l->txid, l->index, l->count, kv, klen, kv + klen, vlen);
	free(kv);
	return rc;
}

int tpc_sink_file_dump(const char *path, tpc_sink_file_dump_fn fn, void *arg)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	if (!f)
		return -errno;
	while (rc == 0 && (n = getline(&buf, &cap, f)) > 0) {
		struct line l;
		if (buf[n - 1] != '\n')
			break; /* a torn last line is not data */
		if (parse_line((const unsigned char *)buf, (size_t)n - 1, &l) != 0) {
			rc = -EBADMSG;
			break;
		}
		if (l.count == 0)
			continue; /* marker of a transaction without writes */
		rc = dump_line((const unsigned char *)buf, &l, fn, arg);
	}
	free(buf);
	fclose(f);
	return rc;
}
