/*
 * peers.c - the coordinator's table of participants by name (struct peer, ids 1..npeers
 * in s->peers): interning a name, looking an id up, and freeing a slot once nothing
 * refers to it any more (no binding, connection or transaction), so its id may be
 * reused; and each participant's last OrphanReport (dispatch.c stores it, admin.c lists
 * it). Callers: conn.c, dispatch.c, identity.c, actions.c, admin*.c.
 */
#include "server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct peer *coord_peer(struct coord_server *s, uint32_t peer_id)
{
	return peer_id && peer_id <= s->npeers ? &s->peers[peer_id - 1] : NULL;
}

/*
 * Participant names. A slot whose name is NULL is free (coord_peer_release) and reused
 * by the next new name; ids of live slots never change.
 */
uint32_t coord_peer_intern(struct coord_server *s, const char *name, uint32_t limit)
{
	uint32_t free_slot = 0, known = 0;

	for (uint32_t i = 0; i < s->npeers; i++) {
		if (!s->peers[i].name) {
			free_slot = free_slot ? free_slot : i + 1;
			continue;
		}
		if (strcmp(s->peers[i].name, name) == 0)
			return i + 1;
		known++;
	}
	if (known >= limit)
		return 0;
	if (!free_slot && s->npeers == s->peers_cap) {
		uint32_t ncap = s->peers_cap ? s->peers_cap * 2 : 16;
		struct peer *np = realloc(s->peers, ncap * sizeof(*np));
		if (!np)
			return 0;
		s->peers = np;
		s->peers_cap = ncap;
	}
	if (!free_slot)
		free_slot = ++s->npeers;
	struct peer *p = &s->peers[free_slot - 1];
	memset(p, 0, sizeof(*p));
	p->name = strdup(name); /* NULL: the slot stays free */
	return p->name ? free_slot : 0;
}

static int peer_in_use(struct coord_server *s, uint32_t peer)
{
	const struct peer *p = coord_peer(s, peer);
	struct u64map_iter it;
	struct coord_txn *t;
	int used = 0;

	if (!p || !p->name || p->bound != PEER_UNBOUND || p->binds_inflight || p->forgetting ||
	    p->conn)
		return 1;
	for (uint32_t i = 0; i < s->conns_cap; i++)
		if (s->conns[i] && s->conns[i]->peer == peer)
			return 1;
	for (t = u64map_iter_first(&it, &s->txns); t && !used; t = u64map_iter_next(&it))
		used = coord_txn_find_part(t, peer) != NULL;
	used |= it.nomem; /* out of memory: keep it */
	u64map_iter_end(&it);
	return used;
}

void coord_peer_release(struct coord_server *s, uint32_t peer)
{
	if (peer_in_use(s, peer))
		return;
	struct peer *p = coord_peer(s, peer);
	free(p->name);
	free(p->orphans);
	memset(p, 0, sizeof(*p));
}

void coord_peers_free(struct coord_server *s)
{
	for (uint32_t i = 0; i < s->npeers; i++) {
		free(s->peers[i].name);
		free(s->peers[i].orphans);
	}
	free(s->peers);
	s->peers = NULL;
	s->npeers = s->peers_cap = 0;
}

int coord_peer_set_orphans(struct coord_server *s, uint32_t peer, const Tpc__OrphanReport *r)
{
	struct peer *p = coord_peer(s, peer);
	size_t n = r->n_orphans < TPC_WIRE_MAX_ORPHANS ? r->n_orphans : TPC_WIRE_MAX_ORPHANS;
	struct peer_orphan *v = n ? calloc(n, sizeof(*v)) : NULL;

	if (!p || (n && !v)) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const Tpc__Orphan *o = r->orphans[i];
		v[i].txid = o->txid;
		v[i].age_ms = o->age_ms;
		v[i].locks = o->locks;
		snprintf(v[i].gid, sizeof(v[i].gid), "%s", o->gid ? o->gid : "");
		snprintf(v[i].reason, sizeof(v[i].reason), "%s", o->reason ? o->reason : "");
	}
	free(p->orphans);
	p->orphans = v;
	p->norphans = (uint32_t)n;
	p->orphans_wall_ms = tpc_wall_ms();
	return 0;
}
