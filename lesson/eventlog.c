/*
 * eventlog.c - the append-only event log (see eventlog.h for the format).
 *
 * This file owns the on-disk format, the writer (buffer, force, index, torn-tail
 * repair at open) and the readers (seek by offset through the index, seek by time by
 * binary search over the index, verified sequential reads).
 *
 * Invariants the writer keeps:
 *  - every byte of the log file before `end` is a verified record sequence with
 *    offsets 0..durable_next-1 and non-decreasing timestamps, and has been forced;
 *  - index entry i, when present, names the record with offset i * EVLOG_INDEX_INTERVAL
 *    (entries are appended only for records already forced).
 */
#include "eventlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#define HDR_SIZE 16u
#define REC_HDR 24u
#define IDX_ENTRY 24u
#define READ_WINDOW (256u << 10)

static const char LOG_MAGIC[8] = { 'T', 'P', 'C', 'E', 'V', 'L', 'O', 'G' };
static const char IDX_MAGIC[8] = { 'T', 'P', 'C', 'E', 'V', 'I', 'D', 'X' };

/* CRC-32C, reflected polynomial 0x82F63B78, four bits at a time. */
static const uint32_t crc_nibble[16] = {
	0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3,
	0x61c69362, 0x7198540d, 0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
	0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

uint32_t evlog_crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	crc = ~crc;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ crc_nibble[crc & 15];
		crc = (crc >> 4) ^ crc_nibble[crc & 15];
	}
	return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *what, int code)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, what, strerror(code));
}

/* ---- reading records through a window cache (shared by writer open and readers) ---- */

struct rbuf {
	int fd;
	uint8_t *buf;
	size_t cap;
	uint64_t pos; /* file position of buf[0] */
	size_t len;   /* valid bytes in buf */
};

/* Make [p, p+n) available: 1 and *out pointing at it, 0 if the file ends first. */
static int rbuf_get(struct rbuf *b, uint64_t p, size_t n, const uint8_t **out)
{
	if (p >= b->pos && p + n <= b->pos + b->len) {
		*out = b->buf + (p - b->pos);
		return 1;
	}
	if (n > b->cap) {
		uint8_t *nb = realloc(b->buf, n);
		if (!nb)
			return -ENOMEM;
		b->buf = nb;
		b->cap = n;
	}
	b->pos = p;
	b->len = 0;
	while (b->len < b->cap) {
		ssize_t got = pread(b->fd, b->buf + b->len, b->cap - b->len, (off_t)(p + b->len));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			break;
		b->len += (size_t)got;
	}
	if (b->len < n)
		return 0;
	*out = b->buf;
	return 1;
}

/* The record at file position p: 1 (rec filled, *next after it), 0 if short or not
 * verifiable (a torn or still-being-written tail), -errno on I/O errors. */
static int rec_at(struct rbuf *b, uint64_t p, struct evlog_record *rec, uint64_t *next)
{
	const uint8_t *h;
	int rc = rbuf_get(b, p, REC_HDR, &h);

	if (rc <= 0)
		return rc;
	uint32_t len = get_le32(h), crc = get_le32(h + 4);
	if (len > EVLOG_MAX_RECORD)
		return 0;
	rc = rbuf_get(b, p, REC_HDR + len, &h);
	if (rc <= 0)
		return rc;
	uint32_t c = evlog_crc32c(0, h, 4);
	c = evlog_crc32c(c, h + 8, REC_HDR - 8 + len);
	if (c != crc)
		return 0;
	rec->offset = get_le64(h + 8);
	rec->ts_ms = get_le64(h + 16);
	rec->data = h + REC_HDR;
	rec->len = len;
	*next = p + REC_HDR + len;
	return 1;
}

static void encode_record(uint8_t *out, uint64_t offset, uint64_t ts, const void *data,
			  uint32_t len)
{
	put_le32(out, len);
	put_le64(out + 8, offset);
	put_le64(out + 16, ts);
	memcpy(out + REC_HDR, data, len);
	uint32_t c = evlog_crc32c(0, out, 4);
	put_le32(out + 4, evlog_crc32c(c, out + 8, REC_HDR - 8 + len));
}

/* ---- the index ---- */

struct idx_entry {
	uint64_t offset, ts, pos;
};

struct idx {
	struct idx_entry *v;
	size_t n, cap;
};

static int idx_push(struct idx *x, uint64_t offset, uint64_t ts, uint64_t pos)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct idx_entry *nv = realloc(x->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		x->v = nv;
		x->cap = cap;
	}
	x->v[x->n++] = (struct idx_entry){ offset, ts, pos };
	return 0;
}

/* Load the structurally sound prefix of the index file: entry i names offset
 * i * interval, positions and times never go back, positions lie inside the log. */
static int idx_load(int fd, uint64_t log_size, struct idx *x)
{
	uint8_t e[IDX_ENTRY];
	uint64_t prev_pos = 0, prev_ts = 0;

	x->n = 0;
	for (uint64_t i = 0;; i++) {
		ssize_t got = pread(fd, e, IDX_ENTRY, (off_t)(HDR_SIZE + i * IDX_ENTRY));
		if (got < 0)
			return -errno;
		if (got < (ssize_t)IDX_ENTRY)
			return 0;
		uint64_t off = get_le64(e), ts = get_le64(e + 8), pos = get_le64(e + 16);
		if (off != i * EVLOG_INDEX_INTERVAL || pos < HDR_SIZE || pos < prev_pos ||
		    ts < prev_ts || pos + REC_HDR > log_size)
			return 0;
		int rc = idx_push(x, off, ts, pos);
		if (rc)
			return rc;
		prev_pos = pos;
		prev_ts = ts;
	}
}

/* Drop index entries from the end until the last one names a verifiable record. */
static int idx_verify_tail(struct idx *x, struct rbuf *b)
{
	while (x->n) {
		struct idx_entry *e = &x->v[x->n - 1];
		struct evlog_record rec;
		uint64_t next;
		int rc = rec_at(b, e->pos, &rec, &next);
		if (rc < 0)
			return rc;
		if (rc == 1 && rec.offset == e->offset && rec.ts_ms == e->ts)
			return 0;
		x->n--;
	}
	return 0;
}

static int write_full(int fd, const void *data, size_t len, uint64_t at)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		at += (uint64_t)w;
		len -= (size_t)w;
	}
	return 0;
}

static int idx_write_from(int fd, const struct idx *x, size_t from)
{
	uint8_t e[IDX_ENTRY];

	for (size_t i = from; i < x->n; i++) {
		put_le64(e, x->v[i].offset);
		put_le64(e + 8, x->v[i].ts);
		put_le64(e + 16, x->v[i].pos);
		int rc = write_full(fd, e, IDX_ENTRY, HDR_SIZE + i * IDX_ENTRY);
		if (rc)
			return rc;
	}
	return 0;
}

static int write_header(int fd, const char magic[8])
{
	uint8_t h[HDR_SIZE] = { 0 };

	memcpy(h, magic, 8);
	put_le32(h + 8, 1);
	return write_full(fd, h, HDR_SIZE, 0);
}

static int check_header(int fd, const char magic[8])
{
	uint8_t h[HDR_SIZE];
	ssize_t got = pread(fd, h, HDR_SIZE, 0);

	if (got < 0)
		return -errno;
	if (got < (ssize_t)HDR_SIZE || memcmp(h, magic, 8) || get_le32(h + 8) != 1)
		return -EBADMSG;
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/* ---- the writer ---- */

struct evlog {
	int fd, idx_fd;
	uint64_t end;          /* durable end of the log file */
	uint64_t durable_next; /* offset of the first record after `end` */
	uint64_t durable_ts;   /* newest timestamp at `end` */
	uint64_t next_off;     /* offset of the next append (buffered records count) */
	uint64_t last_ts;
	uint8_t *buf;          /* records appended since the last sync */
	size_t len, cap;
	struct idx idx;        /* every entry, durable ones in the file */
	size_t idx_durable;    /* entries written to the index file */
	size_t idx_pending;    /* entries for buffered records, after idx_durable */
	struct evlog_stats st;
};

/* A log file that is empty or shorter than its header (a creation cut short) gets a
 * fresh header; anything else must carry ours. */
static int prepare_log_file(struct evlog *l, const char *dir, int created, uint64_t *size)
{
	struct stat st;

	if (fstat(l->fd, &st))
		return -errno;
	if ((uint64_t)st.st_size >= HDR_SIZE) {
		*size = (uint64_t)st.st_size;
		return check_header(l->fd, LOG_MAGIC);
	}
	int rc = ftruncate(l->fd, 0) ? -errno : write_header(l->fd, LOG_MAGIC);
	if (!rc && fdatasync(l->fd))
		rc = -errno;
	l->st.forces++;
	if (!rc && created)
		rc = fsync_dir(dir);
	*size = HDR_SIZE;
	return rc;
}

/* From the last verified index entry, walk records to the first one that does not
 * verify: that is the durable end. Index entries for the records passed are rebuilt. */
static int scan_tail(struct evlog *l, struct rbuf *b)
{
	uint64_t pos = HDR_SIZE, off = 0, ts = 0;

	if (l->idx.n) {
		struct idx_entry *e = &l->idx.v[l->idx.n - 1];
		pos = e->pos;
		off = e->offset;
		ts = e->ts;
	}
	for (;;) {
		struct evlog_record rec;
		uint64_t next;
		int rc = rec_at(b, pos, &rec, &next);
		if (rc < 0)
			return rc;
		if (rc == 0 || rec.offset != off || rec.ts_ms < ts)
			break;
		if (off % EVLOG_INDEX_INTERVAL == 0 && off / EVLOG_INDEX_INTERVAL >= l->idx.n) {
			if ((rc = idx_push(&l->idx, off, rec.ts_ms, pos)))
				return rc;
			l->st.index_rebuilt++;
		}
		ts = rec.ts_ms;
		off++;
		pos = next;
	}
	l->end = pos;
	l->durable_next = l->next_off = off;
	l->durable_ts = l->last_ts = ts;
	return 0;
}

static int open_files(struct evlog *l, const char *dir, int create, int *created,
		      char *err, size_t errlen)
{
	char path[PATH_MAX];

	int e;

	if (create && mkdir(dir, 0755) && errno != EEXIST) {
		e = errno;
		set_err(err, errlen, "cannot create %s: %s", dir, e);
		return -e;
	}
	snprintf(path, sizeof(path), "%s/log", dir);
	*created = access(path, F_OK) != 0;
	l->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
	if (l->fd < 0) {
		e = errno;
		set_err(err, errlen, "cannot open %s: %s", path, e);
		return -e;
	}
	if (flock(l->fd, LOCK_EX | LOCK_NB)) {
		e = errno == EWOULDBLOCK ? EBUSY : errno;
		set_err(err, errlen, "%s: another writer has it open: %s", path, e);
		return -e;
	}
	snprintf(path, sizeof(path), "%s/index", dir);
	l->idx_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (l->idx_fd < 0) {
		e = errno;
		set_err(err, errlen, "cannot open %s: %s", path, e);
		return -e;
	}
	return 0;
}

/* Cut a torn tail, write the index back (its header, rebuilt entries, no stale ones). */
static int repair(struct evlog *l, uint64_t size, size_t idx_kept)
{
	int rc;

	if (l->end < size) {
		l->st.repaired_bytes = size - l->end;
		if (ftruncate(l->fd, (off_t)l->end) || fdatasync(l->fd))
			return -errno;
		l->st.forces++;
	}
	if ((rc = write_header(l->idx_fd, IDX_MAGIC)) || (rc = idx_write_from(l->idx_fd, &l->idx,
									     idx_kept)))
		return rc;
	if (ftruncate(l->idx_fd, (off_t)(HDR_SIZE + l->idx.n * IDX_ENTRY)))
		return -errno;
	l->idx_durable = l->idx.n;
	return 0;
}

int evlog_open(const char *dir, int create, evlog **out, char *err, size_t errlen)
{
	struct evlog *l = calloc(1, sizeof(*l));
	struct rbuf b = { .fd = -1 };
	uint64_t size = 0;
	int created = 0, rc;

	if (!l)
		return -ENOMEM;
	l->fd = l->idx_fd = -1;
	rc = open_files(l, dir, create, &created, err, errlen);
	if (rc)
		goto out_free;
	rc = prepare_log_file(l, dir, created, &size);
	if (rc) {
		set_err(err, errlen, "%s/log is not an event log: %s", dir, -rc);
		goto out_free;
	}
	b.fd = l->fd;
	if ((rc = check_header(l->idx_fd, IDX_MAGIC)) == 0)
		rc = idx_load(l->idx_fd, size, &l->idx);
	else
		rc = 0; /* no index, or not ours: rebuild it from the log */
	if (!rc)
		rc = idx_verify_tail(&l->idx, &b);
	size_t kept = l->idx.n;
	if (!rc)
		rc = scan_tail(l, &b);
	if (!rc)
		rc = repair(l, size, kept);
	if (rc) {
		set_err(err, errlen, "cannot recover %s: %s", dir, -rc);
		goto out_free;
	}
	free(b.buf);
	*out = l;
	return 0;
out_free:
	free(b.buf);
	evlog_close(l);
	return rc;
}

int evlog_append(evlog *l, uint64_t ts_ms, const void *data, size_t len, uint64_t *offset)
{
	if (len > EVLOG_MAX_RECORD)
		return -EMSGSIZE;
	if (l->len + REC_HDR + len > l->cap) {
		size_t cap = l->cap ? l->cap : 64 << 10;
		while (cap < l->len + REC_HDR + len)
			cap *= 2;
		uint8_t *nb = realloc(l->buf, cap);
		if (!nb)
			return -ENOMEM;
		l->buf = nb;
		l->cap = cap;
	}
	if (ts_ms < l->last_ts)
		ts_ms = l->last_ts;
	if (l->next_off % EVLOG_INDEX_INTERVAL == 0) {
		int rc = idx_push(&l->idx, l->next_off, ts_ms, l->end + l->len);
		if (rc)
			return rc;
		l->idx_pending++;
	}
	encode_record(l->buf + l->len, l->next_off, ts_ms, data, (uint32_t)len);
	l->len += REC_HDR + len;
	l->last_ts = ts_ms;
	if (offset)
		*offset = l->next_off;
	l->next_off++;
	l->st.appended++;
	return 0;
}

static void drop_buffered(struct evlog *l)
{
	l->len = 0;
	l->idx.n -= l->idx_pending;
	l->idx_pending = 0;
	l->next_off = l->durable_next;
	l->last_ts = l->durable_ts;
}

int evlog_sync(evlog *l)
{
	int rc;

	if (!l->len)
		return 0;
	rc = write_full(l->fd, l->buf, l->len, l->end);
	if (!rc && fdatasync(l->fd))
		rc = -errno;
	l->st.forces++;
	if (rc) {
		if (ftruncate(l->fd, (off_t)l->end) == 0)
			(void)fdatasync(l->fd);
		drop_buffered(l);
		return rc;
	}
	l->st.syncs++;
	l->end += l->len;
	l->len = 0;
	l->durable_next = l->next_off;
	l->durable_ts = l->last_ts;
	l->idx_pending = 0;
	/* Derived data: a failure here only means a later open rebuilds these entries. */
	if (idx_write_from(l->idx_fd, &l->idx, l->idx_durable) == 0)
		l->idx_durable = l->idx.n;
	return 0;
}

uint64_t evlog_next_offset(const evlog *l)
{
	return l->next_off;
}

void evlog_get_stats(const evlog *l, struct evlog_stats *out)
{
	*out = l->st;
}

void evlog_close(evlog *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd); /* releases the flock */
	if (l->idx_fd >= 0)
		close(l->idx_fd);
	free(l->buf);
	free(l->idx.v);
	free(l);
}

/* ---- readers ---- */

struct evlog_reader {
	struct rbuf b;
	int idx_fd;         /* -1 when the log has no index */
	struct idx idx;
	uint64_t pos;       /* file position of the next record */
	uint64_t next_off;  /* its offset */
	uint64_t skip_to;   /* records below this offset are passed over */
};

int evlog_reader_open(const char *dir, evlog_reader **out)
{
	char path[PATH_MAX];
	struct evlog_reader *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/log", dir);
	r->b.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->b.fd < 0) {
		rc = -errno;
		free(r);
		return rc;
	}
	rc = check_header(r->b.fd, LOG_MAGIC);
	if (rc) {
		close(r->b.fd);
		free(r);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/index", dir);
	r->idx_fd = open(path, O_RDONLY | O_CLOEXEC);
	r->b.cap = READ_WINDOW;
	r->b.buf = malloc(r->b.cap);
	if (!r->b.buf) {
		evlog_reader_close(r);
		return -ENOMEM;
	}
	r->pos = HDR_SIZE;
	*out = r;
	return 0;
}

void evlog_reader_close(evlog_reader *r)
{
	if (!r)
		return;
	close(r->b.fd);
	if (r->idx_fd >= 0)
		close(r->idx_fd);
	free(r->b.buf);
	free(r->idx.v);
	free(r);
}

/* Re-read the index (the writer may have added entries) and keep its verified prefix. */
static int reader_load_index(struct evlog_reader *r)
{
	struct stat st;

	r->idx.n = 0;
	if (r->idx_fd < 0 || check_header(r->idx_fd, IDX_MAGIC))
		return 0;
	if (fstat(r->b.fd, &st))
		return -errno;
	int rc = idx_load(r->idx_fd, (uint64_t)st.st_size, &r->idx);
	return rc ? rc : idx_verify_tail(&r->idx, &r->b);
}

static void reader_start_at(struct evlog_reader *r, size_t entry_plus_one)
{
	if (entry_plus_one == 0) {
		r->pos = HDR_SIZE;
		r->next_off = 0;
		return;
	}
	r->pos = r->idx.v[entry_plus_one - 1].pos;
	r->next_off = r->idx.v[entry_plus_one - 1].offset;
}

int evlog_reader_seek(evlog_reader *r, uint64_t offset)
{
	int rc = reader_load_index(r);

	if (rc)
		return rc;
	size_t i = (size_t)(offset / EVLOG_INDEX_INTERVAL);
	reader_start_at(r, r->idx.n == 0 ? 0 : (i < r->idx.n ? i + 1 : r->idx.n));
	r->skip_to = offset;
	return 0;
}

int evlog_reader_seek_time(evlog_reader *r, uint64_t ts_ms, uint64_t *offset)
{
	int rc = reader_load_index(r);
	size_t lo = 0, hi = r->idx.n; /* first entry with ts >= ts_ms, by bisection */

	if (rc)
		return rc;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->idx.v[mid].ts < ts_ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	reader_start_at(r, lo); /* the entry before it: every record there is older */
	r->skip_to = 0;
	for (;;) {
		struct evlog_record rec;
		uint64_t next;
		rc = rec_at(&r->b, r->pos, &rec, &next);
		if (rc < 0)
			return rc;
		if (rc == 0 || rec.ts_ms >= ts_ms)
			break;
		if (rec.offset != r->next_off)
			return -EBADMSG;
		r->pos = next;
		r->next_off++;
	}
	if (offset)
		*offset = r->next_off;
	return 0;
}

int evlog_reader_next(evlog_reader *r, struct evlog_record *rec)
{
	for (;;) {
		uint64_t next;
		int rc = rec_at(&r->b, r->pos, rec, &next);
		if (rc <= 0)
			return rc;
		if (rec->offset != r->next_off)
			return -EBADMSG;
		r->pos = next;
		r->next_off++;
		if (rec->offset >= r->skip_to)
			return 1;
	}
}

uint64_t evlog_reader_position(const evlog_reader *r)
{
	return r->next_off > r->skip_to ? r->next_off : r->skip_to;
}
