/* SPDX-License-Identifier: Apache-2.0 */
/* table_ops.c: the set operations (insert, insert_new, lookup, delete,
 * update_counter, foreach).
 *
 * Each is: take the lock (tbl_op_begin), probe the index, change words only
 * through tbl_set (undo-logged), finish (tbl_op_end: commit or roll back).
 * A new entry is written completely in unreachable space before the one
 * logged slot write that makes it visible; an overwrite of an integer with
 * an integer is one word in place (outside a group one plain store, its own
 * commit point: tbl_set_one; inside, logged); any other overwrite writes a
 * new entry and frees the old one at commit.  The update_counter fast path
 * is one lock/unlock, one hash, a probe of usually one slot and one store:
 * no undo record and no sequence word, as before the lock-free readers.
 *
 * On an ordered table each change also keeps the B+tree in step
 * (tbl_ord_*, table_ordered.c) inside the same logged change.
 *
 * Every change of more than that one word makes its key's stripe odd
 * (tbl_touch) before the first write a lock-free reader could see; lookup and foreach themselves are in
 * table_read.c.
 *
 * Pointers into the mapping are never kept across tbl_alloc or tbl_rehash:
 * growing the object may move the mapping. */
#include "table_int.h"

static int tbl_check_key(const void *key, size_t klen)
{
    return key && klen >= 1 && klen <= ETSMGR_KEY_MAX ? 0 : ETSMGR_EINVAL;
}

static int tbl_check_value(const etsmgr_value *v)
{
    if (!v) return ETSMGR_EINVAL;
    if (v->type == ETSMGR_INT) return 0;
    if (v->type != ETSMGR_BYTES || v->len > ETSMGR_VALUE_MAX || (v->len && !v->data))
        return ETSMGR_EINVAL;
    return 0;
}

static uint64_t tbl_vlen(const etsmgr_value *v) { return v->type == ETSMGR_INT ? 8u : v->len; }

/* Write a complete entry into unreachable space at off. */
static void tbl_ent_write(etsmgr_table *t, uint64_t off, const void *key, size_t klen,
                          const etsmgr_value *v)
{
    char *p = t->base + off;
    struct tbl_ent *e = (struct tbl_ent *)(void *)p;
    e->klen = (uint8_t)klen;
    e->type = (uint8_t)v->type;
    e->links = 0;
    e->vlen = (uint32_t)tbl_vlen(v);
    uint64_t ka = tbl_a8(klen);
    memset(p + 8 + ka - 8, 0, 8); /* padding after the key */
    memcpy(p + 8, key, klen);
    if (v->type == ETSMGR_INT) {
        *(int64_t *)(void *)(p + 8 + ka) = v->i;
    } else if (v->len) {
        uint64_t va = tbl_a8(v->len);
        memset(p + 8 + ka + va - 8, 0, 8);
        memcpy(p + 8 + ka, v->data, v->len);
    }
}

static uint64_t tbl_slot_off(etsmgr_table *t, uint64_t pos)
{
    return (uint64_t)((char *)&t->idx[pos] - t->base);
}

/* Insert a key known to be absent (*pos from tbl_find). */
int tbl_put_new(etsmgr_table *t, const void *key, size_t klen, uint64_t hv, uint64_t pos,
                       const etsmgr_value *v)
{
    struct tbl_hdr *h = t->h;
    uint64_t cap = t->mask + 1;
    /* reusing a tombstone leaves count + tombs as it was: no rehash needed */
    if (!tbl_tomb(t->idx[pos]) && (h->count + h->tombs + 1) * 4 > cap * 3) {
        uint64_t ncap = (h->count + 1) * 8 > cap * 3 ? cap * 2 : cap;
        struct tbl_ent *e;
        int r = tbl_rehash(t, ncap);
        if (r) return r;
        int f = tbl_find(t, key, klen, hv, &pos, &e);
        if (f != 0) return f < 0 ? f : ETSMGR_ECORRUPT;
    }
    uint64_t size = tbl_ent_size(klen, tbl_vlen(v)), off;
    int rc = tbl_alloc(t, size, &off);
    if (rc) return rc;
    tbl_ent_write(t, off, key, klen, v);
    tbl_cp(t);
    if ((rc = tbl_touch(t, hv)) != 0) return rc;
    uint64_t so = tbl_slot_off(t, pos), old = t->idx[pos];
    tbl_set(t, so, (tbl_tag(hv) << 40) | (off >> 3));
    if (tbl_tomb(old)) tbl_set(t, TBL_HOFF(tombs), h->tombs - 1);
    tbl_set(t, TBL_HOFF(count), h->count + 1);
    tbl_set(t, TBL_HOFF(live_bytes), h->live_bytes + size);
    return t->ordered ? tbl_ord_insert(t, key, klen, off) : 0;
}

/* Replace the value of the entry in slot pos. */
static int tbl_put_over(etsmgr_table *t, const void *key, size_t klen, uint64_t hv, uint64_t pos,
                        struct tbl_ent *e, const etsmgr_value *v)
{
    /* by the header tbl_find checked, not e's (see tbl_ent_at) */
    const struct tbl_ent *hc = &t->found;
    uint64_t eoff = (uint64_t)((char *)e - t->base);
    if (hc->type == ETSMGR_INT && v->type == ETSMGR_INT) {
        if (!t->in_group) {
            tbl_set_one(t, eoff + tbl_ent_voff(hc), (uint64_t)v->i); /* the store is the commit point */
            return 0;
        }
        int rc = tbl_touch(t, hv);
        if (rc) return rc;
        tbl_set(t, eoff + tbl_ent_voff(hc), (uint64_t)v->i);
        return 0;
    }
    /* the new block takes the old one's place in the B+tree's leaf too */
    uint64_t oldsize = tbl_ent_block(hc), size = tbl_ent_size(klen, tbl_vlen(v)), off;
    int rc = tbl_alloc(t, size, &off);
    if (rc) return rc;
    tbl_ent_write(t, off, key, klen, v);
    tbl_cp(t);
    if ((rc = tbl_touch(t, hv)) != 0) return rc;
    tbl_set(t, tbl_slot_off(t, pos), (tbl_tag(hv) << 40) | (off >> 3));
    tbl_set(t, TBL_HOFF(live_bytes), t->h->live_bytes + size - oldsize);
    if (t->ordered && (rc = tbl_ord_replace(t, key, klen, off)) != 0) return rc;
    return tbl_defer_free(t, eoff, oldsize);
}

static int tbl_insert(etsmgr_table *t, const void *key, size_t klen, const etsmgr_value *v,
                      bool only_new)
{
    if (!t || tbl_check_key(key, klen) || tbl_check_value(v)) return ETSMGR_EINVAL;
    if (tbl_is_rid_shape(key, klen, v->type, tbl_vlen(v))) return ETSMGR_EINVAL; /* an image's request id */
    uint64_t hv = tbl_hash(t->hseed, key, klen), pos;
    int r = tbl_op_begin(t, only_new ? "insert_new" : "insert", true);
    if (r) return r;
    struct tbl_ent *e = NULL;
    if (t->ordered) tbl_ord_pre(t, key, klen, hv); /* the tree's misses overlap the probe's */
    r = tbl_find(t, key, klen, hv, &pos, &e);
    if (r == 0)
        r = tbl_put_new(t, key, klen, hv, pos, v);
    else if (r == 1)
        r = only_new ? ETSMGR_EEXIST : tbl_put_over(t, key, klen, hv, pos, e, v);
    if (t->ordered) tbl_ord_pre_done();
    return tbl_op_end(t, r);
}

int etsmgr_table_insert(etsmgr_table *t, const void *key, size_t klen, const etsmgr_value *v)
{
    return tbl_insert(t, key, klen, v, false);
}

int etsmgr_table_insert_new(etsmgr_table *t, const void *key, size_t klen, const etsmgr_value *v)
{
    return tbl_insert(t, key, klen, v, true);
}

int etsmgr_table_update_counter(etsmgr_table *t, const void *key, size_t klen, int64_t incr,
                                int64_t dflt, int64_t *newval)
{
    if (!t || tbl_check_key(key, klen)) return ETSMGR_EINVAL;
    uint64_t hv = tbl_hash(t->hseed, key, klen), pos;
    int r = tbl_op_begin(t, "update_counter", true);
    if (r) return r;
    struct tbl_ent *e = NULL;
    r = tbl_find(t, key, klen, hv, &pos, &e);
    int64_t nv = 0;
    if (__builtin_expect(r == 1, 1)) {
        if (t->found.type != ETSMGR_INT) { /* the header tbl_find checked, not e's */
            r = ETSMGR_ETYPE;
        } else {
            uint64_t voff = (uint64_t)((char *)e - t->base) + tbl_ent_voff(&t->found);
            nv = (int64_t)(*tbl_word(t, voff) + (uint64_t)incr); /* wraps like the hardware */
            if (__builtin_expect(!t->in_group, 1)) {
                tbl_set_one(t, voff, (uint64_t)nv); /* the store is the commit point */
                r = 0;
            } else {
                r = tbl_touch(t, hv);
                if (r == 0) tbl_set(t, voff, (uint64_t)nv);
            }
        }
    } else if (r == 0) {
        etsmgr_value v = {.type = ETSMGR_INT, .i = (int64_t)((uint64_t)dflt + (uint64_t)incr)};
        nv = v.i;
        r = tbl_put_new(t, key, klen, hv, pos, &v);
    }
    r = tbl_op_end(t, r);
    if (r == 0 && newval) *newval = nv;
    return r;
}

int etsmgr_table_delete(etsmgr_table *t, const void *key, size_t klen)
{
    if (!t || tbl_check_key(key, klen)) return ETSMGR_EINVAL;
    uint64_t hv = tbl_hash(t->hseed, key, klen), pos;
    int r = tbl_op_begin(t, "delete", true);
    if (r) return r;
    struct tbl_ent *e = NULL;
    r = tbl_find(t, key, klen, hv, &pos, &e);
    if (r == 1) {
        struct tbl_hdr *h = t->h;
        uint64_t eoff = (uint64_t)((char *)e - t->base), size = tbl_ent_block(&t->found);
        uint64_t so = tbl_slot_off(t, pos);
        if ((r = tbl_touch(t, hv)) != 0) return tbl_op_end(t, r);
        /* always a tombstone, with the key's tag: a lock-free walk that meets
         * it checks that stripe, and so never takes an uncommitted delete
         * (rolled back later) for an empty slot */
        tbl_set(t, so, (tbl_tag(hv) << 40) | TBL_SLOT_TOMB);
        tbl_set(t, TBL_HOFF(tombs), h->tombs + 1);
        tbl_set(t, TBL_HOFF(count), h->count - 1);
        tbl_set(t, TBL_HOFF(live_bytes), h->live_bytes - size);
        r = tbl_defer_free(t, eoff, size);
        if (r == 0 && t->ordered) r = tbl_ord_remove(t, key, klen); /* table_ordered.c */
    } else if (r == 0) {
        r = ETSMGR_ENOTFOUND;
    }
    return tbl_op_end(t, r);
}
