/*
 * log_etcd.c - the coordinator's log in etcd, and the group's leadership (log_etcd.h).
 *
 * Owns three etcd clients (the writer thread's, the loop thread's reads, and the lease
 * thread's), the lease, the fence (the leader key's create revision) and the thread
 * that keeps the lease alive. Invariants:
 *   - every write transaction compares the fence; a failed compare clears "leader"
 *     and the batch fails with -ESTALE, having changed nothing;
 *   - a batch is split only between records (D1), into transactions of at most
 *     MAX_OPS operations, MAX_BYTES bytes, and no key twice (etcd refuses that);
 *   - what a record's write depends on (a decision before its COMPLETE, a key before
 *     its DROP, the forget horizon) is read first, in one read transaction, and kept
 *     up to date in `known` as the batch is built; a write between that read and the
 *     batch's transactions could only come from another leader, which the fence stops;
 *   - a transaction that deletes a forgotten decision writes the raised horizon too.
 */
#include "log_etcd.h"
#include "etcd_client.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define MAX_OPS 120                 /* etcd's default limit is 128 per transaction */
#define MAX_BYTES (1024 * 1024)     /* etcd's default request limit is 1.5 MiB */
#define KEY_MAX 511                 /* as the LMDB log: client keys, names */
#define PREFIX_MAX 96
#define ADDR_MAX 256
#define EK_MAX (PREFIX_MAX + 2 + KEY_MAX)
#define SCAN_MAX 2000               /* entries one sweep pass reads per table */

struct etcd_log {
	struct etcd_client *w, *r, *ka, *el; /* el: the campaign's (it blocks in a watch) */
	void (*on_lost)(void *arg);  /* called once when leadership is lost (any thread) */
	void *on_lost_arg;
	char prefix[PREFIX_MAX];
	size_t plen;
	char advertise[ADDR_MAX];
	uint32_t lease_ms;
	int64_t lease;
	int64_t fence;              /* the leader key's create revision while leader */
	atomic_int leader;
	atomic_int lease_dead;      /* etcd said the lease is gone */
	_Atomic(const char *) lost_why; /* why leadership was lost (a constant string) */
	_Atomic uint64_t lease_ok_ms; /* when the last answered keepalive (or the grant) was
				       * sent: etcd keeps the lease at least lease_ms past it */
	pthread_t ka_thread;
	int ka_started;
	pthread_mutex_t mu;         /* stop and stop_cv */
	pthread_cond_t stop_cv;
	int stop;
};

/* An etcd key: prefix + part + bytes. */
struct ekey {
	char b[EK_MAX];
	size_t n;
};

static struct coord_rec *next_rec(struct coord_rec *r)
{
	struct bw_item *it = r->item.next;

	return it ? (struct coord_rec *)((char *)it - offsetof(struct coord_rec, item)) : NULL;
}

static void ek_bytes(const struct etcd_log *lg, struct ekey *k, const char *part,
		     const void *p, size_t len)
{
	size_t pl = strlen(part);

	memcpy(k->b, lg->prefix, lg->plen);
	memcpy(k->b + lg->plen, part, pl);
	memcpy(k->b + lg->plen + pl, p, len);
	k->n = lg->plen + pl + len;
}

static void ek_id(const struct etcd_log *lg, struct ekey *k, const char *part, uint64_t id)
{
	char hex[17];

	snprintf(hex, sizeof(hex), "%016" PRIx64, id);
	ek_bytes(lg, k, part, hex, 16);
}

/* The hex of an etcd key: how `known` and a chunk's key set name it. */
static char *ek_hex(const struct ekey *k, char *out)
{
	for (size_t i = 0; i < k->n; i++)
		sprintf(out + 2 * i, "%02x", (unsigned char)k->b[i]);
	out[2 * k->n] = '\0';
	return out;
}

/* Leadership is gone (the lease, or the fence): say so once, and why. */
static void lose_leadership(struct etcd_log *lg, const char *why)
{
	if (atomic_load(&lg->leader))
		atomic_store(&lg->lost_why, why);
	if (atomic_exchange(&lg->leader, 0) == 1 && lg->on_lost)
		lg->on_lost(lg->on_lost_arg);
}

/* ------------------------------------------------------------ reads */

/* The kvs of a range reply (or of a txn's response_range). */
static json_t *kvs_of(json_t *range_reply)
{
	json_t *kvs = json_object_get(range_reply, "kvs");

	return json_is_array(kvs) ? kvs : NULL;
}

/* Read one key: 1 with the value (malloc'ed, NUL-terminated) in *val, 0 absent, <0. */
static int get_one(struct etcd_log *lg, struct etcd_client *c, const struct ekey *k,
		   unsigned char **val, size_t *len)
{
	json_t *reply = NULL, *kv;
	int rc = etcd_call(c, "/v3/kv/range", json_pack("{s:o}", "key", etcd_b64(k->b, k->n)),
			   &reply);

	(void)lg;
	if (rc)
		return rc;
	kv = json_array_get(kvs_of(reply), 0);
	rc = 0;
	if (kv) {
		rc = json_object_get(kv, "value") ? etcd_unb64(json_object_get(kv, "value"), val, len)
						  : (*val = (unsigned char *)strdup(""), *len = 0, 0);
		rc = rc ? rc : *val ? 1 : -ENOMEM;
	}
	json_decref(reply);
	return rc;
}

static int get_u64(struct etcd_log *lg, struct etcd_client *c, const char *name, uint64_t *out)
{
	struct ekey k;
	unsigned char *v = NULL;
	size_t len;
	int rc;

	ek_bytes(lg, &k, "meta/", name, strlen(name));
	rc = get_one(lg, c, &k, &v, &len);
	*out = 0;
	if (rc == 1 && tpc_parse_u64((const char *)v, 0, UINT64_MAX, out))
		rc = -EBADMSG;
	free(v);
	return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------ value codecs */

static json_t *parse_json(const unsigned char *v, size_t len)
{
	return json_loadb((const char *)v, len, 0, NULL);
}

/* A decisions value: 1 COMMIT (d filled when given; free(d->parts)), 2 tombstone, <0. */
static int decode_decision(const unsigned char *v, size_t len, uint64_t txid,
			   struct coord_decision *d)
{
	json_t *j = parse_json(v, len), *parts = json_object_get(j, "parts"), *p;
	int rc = -EBADMSG;
	size_t i;

	if (json_is_integer(json_object_get(j, "completed")) && !parts) {
		rc = 2;
	} else if (json_is_array(parts) && json_is_integer(json_object_get(j, "wall"))) {
		rc = 1;
		json_array_foreach(parts, i, p)
			if (!json_is_string(p))
				rc = -EBADMSG;
		if (rc == 1 && d) {
			size_t n = json_array_size(parts), bytes = 0;
			json_array_foreach(parts, i, p)
				bytes += strlen(json_string_value(p)) + 1;
			d->parts = malloc(n * sizeof(char *) + bytes + 1);
			if (!d->parts) {
				rc = -ENOMEM;
			} else {
				char *s = (char *)(d->parts + n);
				d->txid = txid;
				d->wall_ms = (uint64_t)json_integer_value(json_object_get(j, "wall"));
				d->nparts = (uint32_t)n;
				json_array_foreach(parts, i, p) {
					strcpy(s, json_string_value(p));
					d->parts[i] = s;
					s += strlen(s) + 1;
				}
			}
		}
	}
	json_decref(j);
	return rc;
}

static int decode_keyrec(const unsigned char *v, size_t len, void *out)
{
	struct coord_key_info *info = out;
	json_t *j = parse_json(v, len);
	json_t *txid = json_object_get(j, "txid"), *wall = json_object_get(j, "wall");
	int rc = json_is_integer(txid) && json_is_integer(wall) ? 1 : -EBADMSG;

	if (rc == 1) {
		info->txid = (uint64_t)json_integer_value(txid);
		info->wall_ms = (uint64_t)json_integer_value(wall);
		info->committed = 1;
	}
	json_decref(j);
	return rc;
}

static int decode_binding(const unsigned char *v, size_t len, void *out)
{
	struct coord_binding *b = out;
	json_t *j = parse_json(v, len);
	const char *id = json_string_value(json_object_get(j, "id"));
	json_t *wall = json_object_get(j, "wall");
	int rc = id && strlen(id) == 2 * COORD_PARTICIPANT_ID_LEN && json_is_integer(wall) ? 1
											  : -EBADMSG;

	for (int i = 0; rc == 1 && i < COORD_PARTICIPANT_ID_LEN; i++) {
		unsigned x;
		if (sscanf(id + 2 * i, "%2x", &x) != 1)
			rc = -EBADMSG;
		b->participant_id[i] = (unsigned char)x;
	}
	if (rc == 1)
		b->wall_ms = (uint64_t)json_integer_value(wall);
	json_decref(j);
	return rc;
}

/* ------------------------------------------------------------ the batch builder */

struct batch {
	struct etcd_log *lg;
	json_t *known;     /* hex(etcd key) -> base64 value string, or null: absent */
	json_t *txns;      /* finished transactions' op arrays */
	json_t *ops;       /* the open transaction's ops */
	json_t *keys;      /* hex keys the open transaction touches */
	size_t bytes;
	uint64_t horizon;  /* forget horizon: as read, raised by deletions */
	int raised;        /* the open transaction raised it */
};

static int batch_close_txn(struct batch *b)
{
	struct ekey k;
	char v[24];

	if (json_array_size(b->ops) == 0)
		return 0;
	if (b->raised) {
		ek_bytes(b->lg, &k, "meta/", "forget_horizon", 14);
		snprintf(v, sizeof(v), "%" PRIu64, b->horizon);
		if (json_array_append_new(b->ops, etcd_op_put(k.b, k.n, v, strlen(v), 0)))
			return -ENOMEM;
	}
	if (json_array_append_new(b->txns, b->ops))
		return -ENOMEM;
	b->ops = json_array();
	json_object_clear(b->keys);
	b->bytes = 0;
	b->raised = 0;
	return b->ops ? 0 : -ENOMEM;
}

/* Add one record's ops (taken) to the open transaction, or to a new one when they
 * do not fit or touch a key it already touches. */
static int batch_add(struct batch *b, json_t *rec_ops, json_t *rec_keys, int raised)
{
	size_t n = json_array_size(rec_ops), bytes = 0, i;
	const char *hk;
	json_t *op, *unused;
	int clash = 0, rc = 0;

	json_array_foreach(rec_ops, i, op) {
		char *s = json_dumps(op, JSON_COMPACT);
		bytes += s ? strlen(s) : MAX_BYTES;
		free(s);
	}
	json_object_foreach(rec_keys, hk, unused)
		clash |= json_object_get(b->keys, hk) != NULL;
	if (clash || json_array_size(b->ops) + n + 1 > MAX_OPS || b->bytes + bytes > MAX_BYTES)
		rc = batch_close_txn(b);
	if (rc == 0 && (n + 1 > MAX_OPS || bytes > MAX_BYTES))
		rc = -EINVAL; /* one record alone is too big for a transaction: never writable */
	if (rc == 0)
		rc = json_array_extend(b->ops, rec_ops) || json_object_update(b->keys, rec_keys)
		     ? -ENOMEM : 0;
	b->bytes += bytes;
	b->raised |= raised;
	json_decref(rec_ops);
	json_decref(rec_keys);
	return rc;
}

/* A record's ops under construction. */
struct recops {
	struct batch *b;
	json_t *ops, *keys;
	int raised;
};

static int rop_put(struct recops *o, const struct ekey *k, const void *v, size_t len)
{
	char hex[2 * EK_MAX + 1];

	ek_hex(k, hex);
	if (json_object_set_new(o->keys, hex, json_true()) ||
	    json_object_set_new(o->b->known, hex, etcd_b64(v, len)))
		return -ENOMEM;
	return json_array_append_new(o->ops, etcd_op_put(k->b, k->n, v, len, 0)) ? -ENOMEM : 0;
}

static int rop_del(struct recops *o, const struct ekey *k)
{
	char hex[2 * EK_MAX + 1];

	ek_hex(k, hex);
	if (json_object_set_new(o->keys, hex, json_true()) ||
	    json_object_set_new(o->b->known, hex, json_null()))
		return -ENOMEM;
	return json_array_append_new(o->ops, etcd_op_del(k->b, k->n)) ? -ENOMEM : 0;
}

static int rop_put_json(struct recops *o, const struct ekey *k, json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
	int rc = s ? rop_put(o, k, s, strlen(s)) : -ENOMEM;

	free(s);
	json_decref(v);
	return rc;
}

/* What the batch knows of a key: 1 with the value, 0 absent; -ENOENT: not read. */
static int known_get(struct batch *b, const struct ekey *k, unsigned char **v, size_t *len)
{
	char hex[2 * EK_MAX + 1];
	json_t *val = json_object_get(b->known, ek_hex(k, hex));

	if (!val)
		return -ENOENT;
	if (json_is_null(val))
		return 0;
	return etcd_unb64(val, v, len) ? -EBADMSG : 1;
}

static void raise_horizon(struct recops *o, uint64_t txid)
{
	if (txid > o->b->horizon) {
		o->b->horizon = txid;
		o->raised = 1;
	}
}

/* ------------------------------------------------------------ records */

static int rec_commit(struct recops *o, const struct coord_rec *r)
{
	struct ekey k;
	json_t *parts = json_array();
	int rc;

	for (uint32_t i = 0; parts && i < r->nparts; i++)
		if (json_array_append_new(parts, json_string(r->parts[i])))
			return json_decref(parts), -ENOMEM;
	ek_id(o->b->lg, &k, "d/", r->txid);
	rc = rop_put_json(o, &k, json_pack("{s:I,s:o}", "wall", (json_int_t)r->wall_ms, "parts",
					   parts));
	if (rc || !r->key || !r->key_len)
		return rc;
	ek_bytes(o->b->lg, &k, "k/", r->key, r->key_len);
	rc = rop_put_json(o, &k, json_pack("{s:I,s:I}", "txid", (json_int_t)r->txid, "wall",
					   (json_int_t)r->wall_ms));
	ek_id(o->b->lg, &k, "i/", r->txid);
	return rc ? rc : rop_put(o, &k, r->key, r->key_len);
}

static int rec_complete(struct recops *o, const struct coord_rec *r)
{
	struct ekey k;
	unsigned char *v = NULL;
	size_t len;
	int rc;

	ek_id(o->b->lg, &k, "d/", r->txid);
	rc = known_get(o->b, &k, &v, &len);
	if (rc <= 0)
		return rc == -ENOENT ? -EIO : rc; /* absent: never logged or swept */
	rc = decode_decision(v, len, r->txid, NULL);
	free(v);
	if (rc < 0 || (rc == 2 && !r->forget))
		return rc < 0 ? rc : 0; /* a tombstone keeps its first completion time */
	if (r->forget) {
		raise_horizon(o, r->txid);
		return rop_del(o, &k);
	}
	return rop_put_json(o, &k, json_pack("{s:I}", "completed", (json_int_t)r->wall_ms));
}

static int rec_drop(struct recops *o, const struct coord_rec *r)
{
	struct ekey k;
	struct coord_key_info info;
	unsigned char *v = NULL;
	size_t len;
	int rc;

	ek_id(o->b->lg, &k, "d/", r->txid);
	rc = rop_del(o, &k);
	if (rc || !r->key || !r->key_len)
		return rc;
	ek_bytes(o->b->lg, &k, "k/", r->key, r->key_len);
	rc = known_get(o->b, &k, &v, &len);
	if (rc == 1)
		rc = decode_keyrec(v, len, &info);
	free(v);
	if (rc <= 0)
		return rc == -ENOENT ? -EIO : rc;
	return info.txid == r->txid ? rop_del(o, &k) : 0; /* else a newer txn owns the key */
}

static int rec_audit(struct recops *o, const struct coord_rec *r)
{
	struct ekey k;

	ek_id(o->b->lg, &k, "a/", r->audit_id);
	return rop_put(o, &k, r->text, r->text_len);
}

static int rec_binding(struct recops *o, const struct coord_rec *r)
{
	struct ekey k;
	char hex[2 * COORD_PARTICIPANT_ID_LEN + 1];

	ek_bytes(o->b->lg, &k, "p/", r->name, r->name_len);
	if (r->type == COORD_REC_UNBIND)
		return rop_del(o, &k);
	for (int i = 0; i < COORD_PARTICIPANT_ID_LEN; i++)
		sprintf(hex + 2 * i, "%02x", r->participant_id[i]);
	return rop_put_json(o, &k, json_pack("{s:s,s:I}", "id", hex, "wall",
					     (json_int_t)r->wall_ms));
}

static int rec_sweep(struct batch *b, struct coord_rec *r);

static int apply_rec(struct batch *b, struct coord_rec *r)
{
	struct recops o = { .b = b, .ops = json_array(), .keys = json_object() };
	int rc = o.ops && o.keys ? 0 : -ENOMEM;

	if (rc == 0 && r->type == COORD_REC_SWEEP) {
		json_decref(o.ops);
		json_decref(o.keys);
		return rec_sweep(b, r); /* adds its deletions itself, a few at a time */
	}
	if (rc == 0 && r->type == COORD_REC_COMMIT)
		rc = rec_commit(&o, r);
	else if (rc == 0 && r->type == COORD_REC_COMPLETE)
		rc = rec_complete(&o, r);
	else if (rc == 0 && r->type == COORD_REC_DROP)
		rc = rec_drop(&o, r);
	else if (rc == 0 && r->type == COORD_REC_AUDIT)
		rc = rec_audit(&o, r);
	else if (rc == 0 && (r->type == COORD_REC_BIND || r->type == COORD_REC_UNBIND))
		rc = rec_binding(&o, r);
	if (rc) {
		json_decref(o.ops);
		json_decref(o.keys);
		return rc;
	}
	return batch_add(b, o.ops, o.keys, o.raised);
}

/* ------------------------------------------------------------ reading ahead */

/* Read @p n keys (their ekeys in @p ks) in read-only transactions into b->known. */
static int read_known(struct batch *b, struct etcd_client *c, const struct ekey *ks,
		      size_t n)
{
	for (size_t at = 0; at < n; at += MAX_OPS) {
		size_t m = n - at < MAX_OPS ? n - at : MAX_OPS;
		json_t *ops = json_array(), *reply = NULL, *resp;
		int rc;

		for (size_t i = 0; ops && i < m; i++)
			if (json_array_append_new(ops, etcd_op_range(ks[at + i].b, ks[at + i].n,
								     NULL, 0, 0)))
				return json_decref(ops), -ENOMEM;
		rc = etcd_call(c, "/v3/kv/txn", json_pack("{s:o}", "success", ops), &reply);
		if (rc)
			return rc;
		resp = json_object_get(reply, "responses");
		for (size_t i = 0; rc == 0 && i < m; i++) {
			json_t *range = json_object_get(json_array_get(resp, i), "response_range");
			json_t *kv = json_array_get(kvs_of(range), 0), *v = json_object_get(kv, "value");
			char hex[2 * EK_MAX + 1];
			rc = json_object_set_new(b->known, ek_hex(&ks[at + i], hex),
						 kv ? json_string(v ? json_string_value(v) : "")
						    : json_null()) ? -ENOMEM : 0;
		}
		json_decref(reply);
		if (rc)
			return rc;
	}
	return 0;
}

/* What the batch's records read: decisions before COMPLETEs, keys before DROPs, and
 * the horizon when anything may raise it. */
static int read_ahead(struct batch *b, struct coord_rec *head, size_t n)
{
	struct ekey *ks = calloc(n + 1, sizeof(*ks));
	size_t m = 0;
	int horizon = 0, rc;
	struct coord_rec *r = head;
	unsigned char *v = NULL;
	size_t len;

	if (!ks)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++, r = next_rec(r)) {
		if (r->type == COORD_REC_COMPLETE)
			ek_id(b->lg, &ks[m++], "d/", r->txid);
		if (r->type == COORD_REC_DROP && r->key && r->key_len)
			ek_bytes(b->lg, &ks[m++], "k/", r->key, r->key_len);
		horizon |= r->type == COORD_REC_SWEEP || r->type == COORD_REC_COMPLETE;
	}
	if (horizon)
		ek_bytes(b->lg, &ks[m++], "meta/", "forget_horizon", 14);
	rc = read_known(b, b->lg->w, ks, m);
	if (rc == 0 && horizon && (rc = known_get(b, &ks[m - 1], &v, &len)) == 1)
		rc = tpc_parse_u64((const char *)v, 0, UINT64_MAX, &b->horizon) ? -EBADMSG : 0;
	free(v);
	free(ks);
	return rc;
}

/* ------------------------------------------------------------ the sweep */

/* Range [prefix, prefix end) of at most @p limit entries (0: all), from @p from (NULL:
 * the first key), in key order; with @p desc, newest first and below @p from. */
static int scan_from(struct etcd_log *lg, struct etcd_client *c, const char *part,
		     const struct ekey *from, int64_t limit, int desc, json_t **reply)
{
	struct ekey k, end;
	json_t *req;

	ek_bytes(lg, &k, part, "", 0);
	end.n = etcd_prefix_end(k.b, k.n, end.b);
	if (from && desc)
		end = *from;
	else if (from)
		k = *from;
	req = etcd_range_req(k.b, k.n, end.b, end.n, limit);
	if (req && desc && (json_object_set_new(req, "sort_order", json_string("DESCEND")) ||
			    json_object_set_new(req, "sort_target", json_string("KEY")))) {
		json_decref(req);
		req = NULL;
	}
	return req ? etcd_call(c, "/v3/kv/range", req, reply) : -ENOMEM;
}

static int scan(struct etcd_log *lg, const char *part, int64_t limit, json_t **reply)
{
	return scan_from(lg, lg->w, part, NULL, limit, 0, reply);
}

struct kvpair {
	unsigned char *k, *v;
	size_t klen, vlen;
};

static void kv_free(struct kvpair *p)
{
	free(p->k);
	free(p->v);
}

static int kv_decode(json_t *kv, struct kvpair *p)
{
	int rc;

	p->k = p->v = NULL;
	rc = etcd_unb64(json_object_get(kv, "key"), &p->k, &p->klen);
	if (rc == 0 && json_object_get(kv, "value"))
		rc = etcd_unb64(json_object_get(kv, "value"), &p->v, &p->vlen);
	else if (rc == 0)
		p->v = (unsigned char *)strdup(""), p->vlen = 0;
	if (rc == 0 && !p->v)
		rc = -ENOMEM;
	return rc;
}

/* The id at the end of an "X/<16 hex>" key. */
static int key_id(const struct etcd_log *lg, const struct kvpair *p, uint64_t *id)
{
	char hex[17];

	if (p->klen != lg->plen + 2 + 16)
		return -EBADMSG;
	memcpy(hex, p->k + lg->plen + 2, 16);
	hex[16] = '\0';
	*id = strtoull(hex, NULL, 16);
	return 0;
}

/* A deletion group of the sweep: one or two keys, in one transaction. */
static int sweep_delete(struct batch *b, const struct ekey *k1, const struct ekey *k2,
			uint64_t raise)
{
	struct recops o = { .b = b, .ops = json_array(), .keys = json_object() };
	int rc = o.ops && o.keys ? rop_del(&o, k1) : -ENOMEM;

	if (rc == 0 && k2)
		rc = rop_del(&o, k2);
	if (raise)
		raise_horizon(&o, raise);
	if (rc) {
		json_decref(o.ops);
		json_decref(o.keys);
		return rc;
	}
	return batch_add(b, o.ops, o.keys, o.raised);
}

struct sweeper {
	struct batch *b;
	struct coord_rec *r;
	uint32_t deleted;    /* in the table being swept */
	uint64_t young;
};

static int judge_key(struct sweeper *s, const struct kvpair *p);

/* The key records the key_index entries in @p kvs name, read into b->known at once. */
static int prefetch_keys(struct batch *b, json_t *kvs)
{
	struct ekey *ks = calloc(json_array_size(kvs) + 1, sizeof(*ks));
	size_t i, m = 0;
	json_t *kv;
	int rc = ks ? 0 : -ENOMEM;

	json_array_foreach(kvs, i, kv) {
		unsigned char *v;
		size_t len;
		if (rc || etcd_unb64(json_object_get(kv, "value"), &v, &len))
			continue; /* judged (and reported) one by one */
		if (len && len <= KEY_MAX)
			ek_bytes(b->lg, &ks[m++], "k/", v, len);
		free(v);
	}
	if (rc == 0)
		rc = read_known(b, b->lg->w, ks, m);
	free(ks);
	return rc;
}

/* The table's entries, oldest first, one at a time to judge(): >0 stop, <0 error. */
typedef int (*sweep_fn)(struct sweeper *s, const struct kvpair *p);

static int sweep_table(struct sweeper *s, const char *part, sweep_fn judge)
{
	int64_t look = (int64_t)s->r->sweep_limit * 5 + 1;
	json_t *reply = NULL, *kv;
	size_t i;
	int rc = scan(s->b->lg, part, look < SCAN_MAX ? look : SCAN_MAX, &reply);

	s->deleted = 0;
	s->young = 0;
	if (rc == 0 && judge == judge_key)
		rc = prefetch_keys(s->b, kvs_of(reply));
	json_array_foreach(kvs_of(reply), i, kv) {
		struct kvpair p;
		if (s->deleted == s->r->sweep_limit) {
			s->r->sweep_more = 1; /* entries left past the limit: go again */
			break;
		}
		rc = kv_decode(kv, &p);
		if (rc == 0)
			rc = judge(s, &p);
		kv_free(&p);
		if (rc)
			break;
	}
	/* Read to the end of a capped page and deleted some: go again at once (D9). */
	if (rc == 0 && i == json_array_size(kvs_of(reply)) && s->deleted &&
	    json_is_true(json_object_get(reply, "more")))
		s->r->sweep_more = 1;
	json_decref(reply);
	s->r->sweep_deleted += s->deleted;
	return rc > 0 ? 0 : rc;
}

static int judge_decision(struct sweeper *s, const struct kvpair *p)
{
	uint64_t txid;
	json_t *j;
	int rc = key_id(s->b->lg, p, &txid), type;

	if (rc)
		return rc;
	type = decode_decision(p->v, p->vlen, txid, NULL);
	if (type != 2)
		return type < 0 ? type : 0; /* a live COMMIT stays */
	j = parse_json(p->v, p->vlen);
	uint64_t at = (uint64_t)json_integer_value(json_object_get(j, "completed"));
	json_decref(j);
	if (at >= s->r->sweep_outcome_before_ms)
		return ++s->young > (uint64_t)s->r->sweep_limit * 4 ? 1 : 0;
	struct ekey k;
	ek_bytes(s->b->lg, &k, "", p->k + s->b->lg->plen, p->klen - s->b->lg->plen);
	s->deleted++;
	return sweep_delete(s->b, &k, NULL, txid);
}

static int judge_key(struct sweeper *s, const struct kvpair *p)
{
	struct ekey ik, kk;
	struct coord_key_info info;
	unsigned char *v = NULL;
	size_t len;
	uint64_t txid;
	int rc = key_id(s->b->lg, p, &txid);

	if (rc || p->vlen == 0 || p->vlen > KEY_MAX)
		return rc ? rc : -EBADMSG;
	ek_bytes(s->b->lg, &ik, "", p->k + s->b->lg->plen, p->klen - s->b->lg->plen);
	ek_bytes(s->b->lg, &kk, "k/", p->v, p->vlen);
	rc = known_get(s->b, &kk, &v, &len);
	if (rc == -ENOENT && (rc = read_known(s->b, s->b->lg->w, &kk, 1)) == 0)
		rc = known_get(s->b, &kk, &v, &len);
	if (rc == 1)
		rc = decode_keyrec(v, len, &info);
	free(v);
	if (rc < 0)
		return rc;
	if (rc == 1 && info.txid == txid && info.wall_ms >= s->r->sweep_keys_before_ms)
		return ++s->young > (uint64_t)s->r->sweep_limit * 4 ? 1 : 0;
	s->deleted++;
	/* the key goes with its index entry when it still names this txid */
	return sweep_delete(s->b, &ik, rc == 1 && info.txid == txid ? &kk : NULL, 0);
}

/* An audit entry's "at" ("YYYY-MM-DDTHH:MM:SS.mmmZ") in ms since the epoch. */
static int audit_time(const struct kvpair *p, uint64_t *out)
{
	json_t *j = parse_json(p->v, p->vlen);
	const char *at = json_string_value(json_object_get(j, "at"));
	struct tm tm = { 0 };
	char *rest = at ? strptime(at, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	int rc = -EBADMSG;

	if (rest && rest[0] == '.' && strlen(rest) == 5 && rest[4] == 'Z') {
		*out = (uint64_t)timegm(&tm) * 1000 + strtoull(rest + 1, NULL, 10);
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static int judge_audit(struct sweeper *s, const struct kvpair *p)
{
	struct ekey k;
	uint64_t at;

	if (audit_time(p, &at) || at >= s->r->sweep_audit_before_ms)
		return 1; /* in id order, so time order: everything after is younger */
	ek_bytes(s->b->lg, &k, "", p->k + s->b->lg->plen, p->klen - s->b->lg->plen);
	s->deleted++;
	return sweep_delete(s->b, &k, NULL, 0);
}

static int rec_sweep(struct batch *b, struct coord_rec *r)
{
	struct sweeper s = { .b = b, .r = r };
	int rc;

	r->sweep_more = 0;
	r->sweep_deleted = 0;
	if (r->sweep_limit == 0)
		return 0;
	rc = sweep_table(&s, "d/", judge_decision);
	if (rc == 0)
		rc = sweep_table(&s, "i/", judge_key);
	if (rc == 0 && r->sweep_audit_before_ms)
		rc = sweep_table(&s, "a/", judge_audit);
	return rc;
}

/* ------------------------------------------------------------ write_batch */

static json_t *fence_compare(const struct etcd_log *lg)
{
	struct ekey k;
	char rev[24];

	ek_bytes(lg, &k, "leader", "", 0);
	snprintf(rev, sizeof(rev), "%lld", (long long)lg->fence);
	return json_pack("[{s:s,s:s,s:o,s:s}]", "target", "CREATE", "result", "EQUAL", "key",
			 etcd_b64(k.b, k.n), "create_revision", rev);
}

/* One write transaction, fenced: 0, -ESTALE (not the leader: nothing written), <0. */
static int fenced_txn(struct etcd_log *lg, struct etcd_client *c, json_t *ops)
{
	json_t *reply = NULL;
	int rc;

	if (!atomic_load(&lg->leader)) {
		json_decref(ops);
		return -ESTALE;
	}
	rc = etcd_call(c, "/v3/kv/txn", json_pack("{s:o,s:o}", "compare", fence_compare(lg),
						 "success", ops), &reply);
	if (rc == 0 && !json_is_true(json_object_get(reply, "succeeded"))) {
		lose_leadership(lg, "a write was refused: another coordinator holds the leader key");
		rc = -ESTALE;
	}
	json_decref(reply);
	return rc;
}

static int build_batch(struct batch *b, struct coord_rec *head, size_t n)
{
	struct coord_rec *r = head;
	int rc;

	for (size_t i = 0; i < n; i++, r = next_rec(r))
		if (!r || coord_rec_check(r, KEY_MAX))
			return -EINVAL;
	rc = read_ahead(b, head, n);
	r = head;
	for (size_t i = 0; rc == 0 && i < n; i++, r = next_rec(r))
		rc = apply_rec(b, r);
	return rc ? rc : batch_close_txn(b);
}

static int etcd_write_batch(void *self, struct coord_rec *head, size_t n)
{
	struct etcd_log *lg = self;
	struct batch b = { .lg = lg, .known = json_object(), .txns = json_array(),
			   .ops = json_array(), .keys = json_object() };
	size_t i;
	json_t *ops;
	int rc = b.known && b.txns && b.ops && b.keys ? 0 : -ENOMEM;

	if (n == 0)
		rc = -EAGAIN; /* nothing to do */
	else if (!atomic_load(&lg->leader))
		rc = -ESTALE;
	if (rc == 0)
		rc = build_batch(&b, head, n);
	json_array_foreach(b.txns, i, ops) {
		if (rc)
			break;
		rc = fenced_txn(lg, lg->w, json_incref(ops));
	}
	json_decref(b.known);
	json_decref(b.txns);
	json_decref(b.ops);
	json_decref(b.keys);
	return rc == -EAGAIN ? 0 : rc;
}

/* ------------------------------------------------------------ meta */

static int etcd_read_meta(void *self, uint64_t *id, uint64_t *epoch)
{
	struct etcd_log *lg = self;
	int rc = get_u64(lg, lg->r, "id", id);

	return rc ? rc : get_u64(lg, lg->r, "epoch", epoch);
}

static int etcd_write_meta(void *self, uint64_t id, uint64_t epoch)
{
	struct etcd_log *lg = self;
	struct ekey k;
	char v[24];
	json_t *ops = json_array();

	ek_bytes(lg, &k, "meta/", "id", 2);
	snprintf(v, sizeof(v), "%" PRIu64, id);
	json_array_append_new(ops, etcd_op_put(k.b, k.n, v, strlen(v), 0));
	ek_bytes(lg, &k, "meta/", "epoch", 5);
	snprintf(v, sizeof(v), "%" PRIu64, epoch);
	json_array_append_new(ops, etcd_op_put(k.b, k.n, v, strlen(v), 0));
	if (json_array_size(ops) != 2) {
		json_decref(ops);
		return -ENOMEM;
	}
	return fenced_txn(lg, lg->r, ops);
}

/* ------------------------------------------------------------ reads */

/* Walk every entry of a table in key order, a page at a time: each() >0 stops. */
typedef int (*walk_fn)(struct etcd_log *lg, const struct kvpair *p, void *arg);

static int walk(struct etcd_log *lg, const char *part, walk_fn each, void *arg)
{
	struct ekey from;
	int have_from = 0, rc = 0;

	for (;;) {
		json_t *reply = NULL, *kvs, *kv;
		size_t i;
		rc = scan_from(lg, lg->r, part, have_from ? &from : NULL, 500, 0, &reply);
		kvs = rc ? NULL : kvs_of(reply);
		json_array_foreach(kvs, i, kv) {
			struct kvpair p;
			rc = kv_decode(kv, &p);
			if (rc == 0)
				rc = each(lg, &p, arg);
			if (rc == 0 && p.klen < sizeof(from.b)) { /* the next page starts after it */
				memcpy(from.b, p.k, p.klen);
				from.b[p.klen] = '\0';
				from.n = p.klen + 1;
				have_from = 1;
			}
			kv_free(&p);
			if (rc)
				break;
		}
		int more = json_is_true(json_object_get(reply, "more"));
		json_decref(reply);
		if (rc || !more)
			return rc;
	}
}

struct load_arg {
	int (*cb)(void *arg, const struct coord_decision *d);
	void *arg;
};

static int load_each(struct etcd_log *lg, const struct kvpair *p, void *arg)
{
	struct load_arg *la = arg;
	struct coord_decision d;
	uint64_t txid;
	int rc = key_id(lg, p, &txid);

	if (rc == 0)
		rc = decode_decision(p->v, p->vlen, txid, &d);
	if (rc != 1)
		return rc == 2 ? 0 : rc; /* tombstones are done; errors stop the load */
	rc = la->cb(la->arg, &d);
	free(d.parts);
	return rc;
}

static int etcd_load_decisions(void *self, int (*cb)(void *arg, const struct coord_decision *d),
			       void *arg)
{
	struct load_arg la = { cb, arg };

	return walk(self, "d/", load_each, &la);
}

static int etcd_lookup_txid(void *self, uint64_t txid)
{
	struct etcd_log *lg = self;
	struct ekey k[2];
	struct batch b = { .lg = lg, .known = json_object() };
	unsigned char *v = NULL;
	size_t len;
	uint64_t horizon = 0;
	int rc;

	ek_id(lg, &k[0], "d/", txid);
	ek_bytes(lg, &k[1], "meta/", "forget_horizon", 14);
	rc = b.known ? 0 : -ENOMEM;
	if (rc == 0) /* both in one read transaction: one snapshot */
		rc = read_known(&b, lg->r, k, 2);
	if (rc == 0 && (rc = known_get(&b, &k[0], &v, &len)) == 1)
		rc = decode_decision(v, len, txid, NULL) > 0 ? COORD_LOOKUP_COMMITTED : -EBADMSG;
	else if (rc == 0 && (rc = known_get(&b, &k[1], &v, &len)) >= 0)
		rc = rc == 1 && tpc_parse_u64((const char *)v, 0, UINT64_MAX, &horizon) ? -EBADMSG
		     : txid <= horizon ? COORD_LOOKUP_FORGOTTEN : COORD_LOOKUP_NONE;
	free(v);
	json_decref(b.known);
	return rc;
}

/* A record's decoder for lookup_one(): 1 decoded into @p out, or -EBADMSG. */
typedef int (*decode_fn)(const unsigned char *v, size_t len, void *out);

/* Read the record under @p part + @p key and decode it: 1 found, 0 absent, <0 error. */
static int lookup_one(struct etcd_log *lg, const char *part, const char *key, size_t key_len,
		      decode_fn decode, void *out)
{
	struct ekey k;
	unsigned char *v = NULL;
	size_t len;
	int rc;

	if (!key || key_len == 0 || key_len > KEY_MAX || !out)
		return -EINVAL;
	ek_bytes(lg, &k, part, key, key_len);
	rc = get_one(lg, lg->r, &k, &v, &len);
	if (rc == 1)
		rc = decode(v, len, out);
	free(v);
	return rc;
}

static int etcd_lookup_key(void *self, const char *key, size_t key_len,
			   struct coord_key_info *info)
{
	return lookup_one(self, "k/", key, key_len, decode_keyrec, info);
}

static int count(struct etcd_log *lg, const char *part, uint64_t *out)
{
	struct ekey k, end;
	json_t *req, *reply = NULL;
	int rc;

	ek_bytes(lg, &k, part, "", 0);
	end.n = etcd_prefix_end(k.b, k.n, end.b);
	req = etcd_range_req(k.b, k.n, end.b, end.n, 0);
	if (!req || json_object_set_new(req, "count_only", json_true()))
		return json_decref(req), -ENOMEM;
	rc = etcd_call(lg->r, "/v3/kv/range", req, &reply);
	if (rc == 0 && out)
		*out = (uint64_t)etcd_int(reply, "count");
	json_decref(reply);
	return rc;
}

/* map_bytes: 0; etcd's own size is etcd's to report (etcdctl endpoint status). */
static int etcd_stats(void *self, uint64_t *decisions, uint64_t *keys, uint64_t *map_bytes)
{
	int rc = count(self, "d/", decisions);

	if (rc == 0)
		rc = count(self, "k/", keys);
	if (map_bytes)
		*map_bytes = 0;
	return rc;
}

static int etcd_audit_list(void *self, uint64_t before, uint32_t limit, coord_audit_cb cb,
			   void *arg)
{
	struct etcd_log *lg = self;
	struct ekey from;
	json_t *reply = NULL, *kv;
	size_t i;
	int rc;

	if (limit == 0)
		return 0;
	ek_id(lg, &from, "a/", before);
	rc = scan_from(lg, lg->r, "a/", before ? &from : NULL, limit, 1, &reply);
	json_array_foreach(kvs_of(reply), i, kv) {
		struct kvpair p;
		uint64_t id;
		if (rc)
			break;
		rc = kv_decode(kv, &p);
		if (rc == 0)
			rc = key_id(lg, &p, &id);
		if (rc == 0)
			rc = cb(arg, id, (const char *)p.v, p.vlen); /* non-zero: passed through */
		kv_free(&p);
	}
	json_decref(reply);
	return rc;
}

static int etcd_lookup_participant(void *self, const char *name, size_t name_len,
				   struct coord_binding *out)
{
	return lookup_one(self, "p/", name, name_len, decode_binding, out);
}

struct bind_arg {
	coord_binding_cb cb;
	void *arg;
};

static int bind_each(struct etcd_log *lg, const struct kvpair *p, void *arg)
{
	struct bind_arg *ba = arg;
	struct coord_binding b;
	int rc = decode_binding(p->v, p->vlen, &b);

	if (rc != 1)
		return rc;
	return ba->cb(ba->arg, (const char *)p->k + lg->plen + 2, p->klen - lg->plen - 2, &b);
}

static int etcd_load_participants(void *self, coord_binding_cb cb, void *arg)
{
	struct bind_arg ba = { cb, arg };

	return walk(self, "p/", bind_each, &ba);
}

/* ------------------------------------------------------------ the lease */

static json_t *lease_body(int64_t lease)
{
	char id[24];

	snprintf(id, sizeof(id), "%lld", (long long)lease);
	return json_pack("{s:s}", "ID", id);
}

/* One keepalive: 1 the lease lives, 0 it is gone, <0 no answer. */
static int keepalive_once(struct etcd_log *lg)
{
	json_t *reply = NULL;
	int rc = etcd_call(lg->ka, "/v3/lease/keepalive", lease_body(lg->lease), &reply);

	if (rc == 0)
		rc = etcd_int(json_object_get(reply, "result"), "TTL") > 0;
	json_decref(reply);
	return rc;
}

/* Sleep until @p ms passed or the store stops: 1 stopping. */
static int nap(struct etcd_log *lg, uint64_t ms)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&lg->mu);
	if (!lg->stop)
		pthread_cond_timedwait(&lg->stop_cv, &lg->mu, &ts);
	stop = lg->stop;
	pthread_mutex_unlock(&lg->mu);
	return stop;
}

/*
 * The lease thread: a keepalive every KEEPALIVE_DIV-th of the lease. Leadership is given
 * up (leader = 0) when etcd says the lease is gone, or when no keepalive was answered
 * for two thirds of the lease, before etcd could let another take over; the fence
 * stops any write that races with that anyway.
 *
 * While etcd elects a new raft leader (its own leader died: 1-2 s with etcd's default
 * election timeout, more on a busy machine) no keepalive is answered, though the lease
 * lives on (a new etcd leader renews every lease). The lead survives that when the
 * last answered keepalive is recent: at worst one interval old when etcd's leader
 * dies, which leaves two thirds of the lease less one interval. Every sixth of the
 * lease leaves half of it (2.5 s of the default 5 s); every third left a third (1.67 s),
 * less than etcd's election may take, so one dead etcd member could cost the lead.
 */
#define KEEPALIVE_DIV 6
static void *keepalive_main(void *arg)
{
	struct etcd_log *lg = arg;
	uint64_t last_ok = tpc_now_ms();

	while (!nap(lg, lg->lease_ms / KEEPALIVE_DIV)) {
		uint64_t sent = tpc_now_ms();
		int rc = keepalive_once(lg);
		if (rc == 1) {
			last_ok = tpc_now_ms();
			atomic_store(&lg->lease_ok_ms, sent);
		}
		else if (rc == 0)
			lose_leadership(lg, "etcd says the lease expired");
		else if (tpc_now_ms() - last_ok >= lg->lease_ms * 2 / 3)
			lose_leadership(lg, "no keepalive answered for two thirds of the lease "
					    "(etcd unreachable, or without a quorum)");
		if (rc == 0) { /* gone for good: this store can never lead again */
			atomic_store(&lg->lease_dead, 1);
			if (lg->on_lost)
				lg->on_lost(lg->on_lost_arg); /* a standby's too */
			break;
		}
	}
	return NULL;
}

static int grant_lease(struct etcd_log *lg, char *err, size_t errlen)
{
	json_t *reply = NULL;
	int rc;

	atomic_store(&lg->lease_ok_ms, tpc_now_ms());
	rc = etcd_call(lg->ka, "/v3/lease/grant",
			   json_pack("{s:I}", "TTL", (json_int_t)(lg->lease_ms / 1000)), &reply);

	if (rc == 0 && (lg->lease = etcd_int(reply, "ID")) == 0)
		rc = -EPROTO;
	json_decref(reply);
	if (rc)
		tpc_set_err(err, errlen, "granting the leader lease: %s", etcd_client_err(lg->ka));
	return rc;
}

/* ------------------------------------------------------------ leadership */

/* Create the leader key with our lease if there is none: 1 created (fence set), 0 not
 * (*holder gets its value and *rev the revision read at), <0 error. */
static int try_lead(struct etcd_log *lg, char *holder, size_t holder_len, int64_t *rev)
{
	struct ekey k;
	json_t *cmp, *ops, *reply = NULL, *kv;
	int rc;

	ek_bytes(lg, &k, "leader", "", 0);
	cmp = json_pack("[{s:s,s:s,s:o,s:s}]", "target", "CREATE", "result", "EQUAL", "key",
			etcd_b64(k.b, k.n), "create_revision", "0");
	ops = json_pack("[o]", etcd_op_put(k.b, k.n, lg->advertise, strlen(lg->advertise),
					   lg->lease));
	rc = etcd_call(lg->el, "/v3/kv/txn", json_pack("{s:o,s:o,s:[o]}", "compare", cmp, "success",
			ops, "failure", etcd_op_range(k.b, k.n, NULL, 0, 0)), &reply);
	if (rc)
		return rc;
	*rev = etcd_int(json_object_get(reply, "header"), "revision");
	if (json_is_true(json_object_get(reply, "succeeded"))) {
		lg->fence = *rev; /* the put's revision: the key's create revision */
		json_decref(reply);
		return 1;
	}
	kv = json_array_get(kvs_of(json_object_get(json_array_get(json_object_get(reply,
			"responses"), 0), "response_range")), 0);
	if (holder && holder_len) {
		unsigned char *v = NULL;
		size_t len;
		holder[0] = '\0';
		if (kv && etcd_unb64(json_object_get(kv, "value"), &v, &len) == 0)
			snprintf(holder, holder_len, "%s", (const char *)v);
		free(v);
	}
	json_decref(reply);
	return 0;
}

int coord_log_etcd_campaign(struct coord_log *log, uint32_t wait_ms, char *leader,
			    size_t leader_len)
{
	struct etcd_log *lg = log->self;
	uint64_t deadline = tpc_now_ms() + wait_ms;
	struct ekey k;
	int64_t rev = 0;
	int rc;

	if (atomic_load(&lg->leader))
		return 1;
	ek_bytes(lg, &k, "leader", "", 0);
	for (;;) {
		if (atomic_load(&lg->lease_dead))
			return -ENOLINK; /* no lease to lead with */
		rc = try_lead(lg, leader, leader_len, &rev);
		if (rc == 1) {
			atomic_store(&lg->leader, 1);
			if (leader && leader_len)
				snprintf(leader, leader_len, "%s", lg->advertise);
		}
		if (rc != 0 || tpc_now_ms() >= deadline)
			return rc;
		rc = etcd_watch_delete(lg->el, k.b, k.n, rev, (uint32_t)(deadline - tpc_now_ms()));
		if (rc && rc != -ETIMEDOUT)
			return rc;
	}
}

void coord_log_etcd_on_lost(struct coord_log *log, void (*fn)(void *arg), void *arg)
{
	struct etcd_log *lg = log->self;

	lg->on_lost = fn;
	lg->on_lost_arg = arg;
}

const char *coord_log_etcd_lost_why(const struct coord_log *log)
{
	const struct etcd_log *lg = log->self;
	const char *why = atomic_load(&lg->lost_why);

	return why ? why : "the lease expired";
}

int coord_log_etcd_is_leader(const struct coord_log *log)
{
	struct etcd_log *lg = log->self;

	return atomic_load(&lg->leader) &&
	       tpc_now_ms() - atomic_load(&lg->lease_ok_ms) < (uint64_t)lg->lease_ms * 3 / 4;
}

int coord_log_etcd_leader(struct coord_log *log, char *leader, size_t leader_len)
{
	struct etcd_log *lg = log->self;
	struct ekey k;
	unsigned char *v = NULL;
	size_t len;
	int rc;

	ek_bytes(lg, &k, "leader", "", 0);
	rc = get_one(lg, lg->r, &k, &v, &len);
	if (rc >= 0)
		snprintf(leader, leader_len, "%s", rc == 1 ? (const char *)v : "");
	free(v);
	return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------ open, close */

static void etcd_close(void *self)
{
	struct etcd_log *lg = self;
	json_t *reply = NULL;

	if (!lg)
		return;
	if (lg->ka_started) {
		pthread_mutex_lock(&lg->mu);
		lg->stop = 1;
		pthread_cond_signal(&lg->stop_cv);
		pthread_mutex_unlock(&lg->mu);
		pthread_join(lg->ka_thread, NULL);
	}
	if (lg->lease && etcd_call(lg->ka, "/v3/lease/revoke", lease_body(lg->lease), &reply) == 0)
		json_decref(reply); /* a clean stop hands leadership over at once */
	etcd_client_free(lg->w);
	etcd_client_free(lg->r);
	etcd_client_free(lg->ka);
	etcd_client_free(lg->el);
	pthread_cond_destroy(&lg->stop_cv);
	pthread_mutex_destroy(&lg->mu);
	free(lg);
}

static const struct coord_log_ops etcd_ops = {
	.write_batch = etcd_write_batch,
	.read_meta = etcd_read_meta,
	.write_meta = etcd_write_meta,
	.load_decisions = etcd_load_decisions,
	.lookup_txid = etcd_lookup_txid,
	.lookup_key = etcd_lookup_key,
	.stats = etcd_stats,
	.audit_list = etcd_audit_list,
	.lookup_participant = etcd_lookup_participant,
	.load_participants = etcd_load_participants,
	.close = etcd_close,
};

static int check_opts(const struct coord_etcd_opts *o, char *err, size_t errlen)
{
	size_t n = o->group ? strlen(o->group) : 0;

	if (n == 0 || n > 64 || strspn(o->group, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
				       "vwxyz0123456789_.-") != n) {
		tpc_set_err(err, errlen, "group \"%s\": 1 to 64 of A-Z a-z 0-9 _ . -",
			o->group ? o->group : "");
		return -EINVAL;
	}
	if (o->lease_ms < 2000 || o->lease_ms % 1000) {
		tpc_set_err(err, errlen, "lease %ums: whole seconds, at least 2s", o->lease_ms);
		return -EINVAL;
	}
	if (!o->advertise || strlen(o->advertise) >= ADDR_MAX) {
		tpc_set_err(err, errlen, "no (or too long an) address to advertise");
		return -EINVAL;
	}
	return 0;
}

static int start(struct etcd_log *lg, const struct coord_etcd_opts *o, char *err,
		 size_t errlen)
{
	int rc = etcd_client_new(&lg->w, o->endpoints, o->timeout_ms, err, errlen);

	if (rc == 0)
		rc = etcd_client_new(&lg->r, o->endpoints, o->timeout_ms, err, errlen);
	if (rc == 0)
		/* a keepalive waits a third of the lease at each endpoint: a dead or stuck
		 * member costs that much, and a keepalive held by a member waiting for etcd's
		 * new leader is answered as soon as there is one */
		rc = etcd_client_new(&lg->ka, o->endpoints, o->lease_ms / 3, err, errlen);
	if (rc == 0)
		rc = etcd_client_new(&lg->el, o->endpoints, o->timeout_ms, err, errlen);
	if (rc == 0)
		rc = grant_lease(lg, err, errlen);
	if (rc == 0 && pthread_create(&lg->ka_thread, NULL, keepalive_main, lg)) {
		tpc_set_err(err, errlen, "cannot start the lease thread");
		rc = -EAGAIN;
	}
	lg->ka_started = rc == 0;
	return rc;
}

int coord_log_etcd_open(struct coord_log *log, const struct coord_etcd_opts *o, char *err,
			size_t errlen)
{
	struct etcd_log *lg;
	int rc = check_opts(o, err, errlen);

	if (rc)
		return rc;
	lg = calloc(1, sizeof(*lg));
	if (!lg) {
		tpc_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&lg->mu, NULL);
	pthread_cond_init(&lg->stop_cv, NULL);
	lg->plen = (size_t)snprintf(lg->prefix, sizeof(lg->prefix), "/tpc/%s/", o->group);
	snprintf(lg->advertise, sizeof(lg->advertise), "%s", o->advertise);
	lg->lease_ms = o->lease_ms;
	rc = start(lg, o, err, errlen);
	if (rc) {
		etcd_close(lg);
		return rc;
	}
	log->ops = &etcd_ops;
	log->self = lg;
	return 0;
}
