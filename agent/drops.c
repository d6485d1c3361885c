/* SPDX-License-Identifier: MIT */
/*
 * The drop sensor's totals per tuple (drops.h). The kernel counts per element
 * and forgets an element an hour after its last packet, or when the table is
 * rebuilt; the agent adds what each read shows beyond the previous one, and
 * tells a new element of the same tuple from the one it read before, so a
 * tuple's totals survive both and nothing is counted twice.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "drops.h"
#include "nft.h"

#define USEC_PER_MSEC_ 1000ULL

/* One tuple of a read: its counting elements (summed over policies' sets) and its first packet. */
struct read_entry {
        struct drop_key key;
        uint64_t packets, bytes;
        uint64_t last_usec, expires_usec;
        uint64_t first_usec;            /* the earliest _first element's; 0: none */
};

struct drops_read {
        struct read_entry *v;           /* sorted by key, one per tuple */
        size_t n;
        uint64_t overflow, skipped, now_usec;
};

void drops_free(struct ks_drops *d)
{
        free(d->entries);
        *d = (struct ks_drops){};
}

void drops_reset(struct ks_drops *d, uint64_t since_usec)
{
        free(d->entries);
        d->entries = NULL;
        d->n = 0;
        d->overflow = 0;
        d->skipped = 0;
        d->since_usec = since_usec;
        d->synced_usec = 0;
}

static void entry_forget_kernel(struct drop_entry *e)
{
        e->kernel_packets = e->kernel_bytes = e->kernel_expires_usec = 0;
}

void drops_forget_kernel(struct ks_drops *d)
{
        for (size_t i = 0; i < d->n; i++)
                entry_forget_kernel(&d->entries[i]);
        d->kernel_overflow = 0;
}

static int key_cmp(const struct drop_key *a, const struct drop_key *b)
{
        return memcmp(a, b, sizeof(*a));
}

static int entry_cmp(const void *a, const void *b)
{
        return key_cmp(&((const struct drop_entry *)a)->key, &((const struct drop_entry *)b)->key);
}

static int read_cmp(const void *a, const void *b)
{
        return key_cmp(&((const struct read_entry *)a)->key, &((const struct read_entry *)b)->key);
}

void drops_adopt(struct ks_drops *d, struct drop_entry *entries, size_t n, uint64_t since_usec, uint64_t overflow)
{
        drops_reset(d, since_usec);
        qsort(entries, n, sizeof(*entries), entry_cmp);
        d->entries = entries;
        d->n = n;
        d->overflow = overflow;
}

static uint64_t usec_before(uint64_t usec, uint64_t ms)
{
        uint64_t d = ms * USEC_PER_MSEC_;

        return usec > d ? usec - d : 0;
}

/* One element as a read entry, its times made absolute from when its message was read. */
static void read_from_elem(struct read_entry *e, const struct nft_drop *r, uint64_t now_usec)
{
        uint64_t at = r->read_usec ? r->read_usec : now_usec;

        *e = (struct read_entry){
                .key = {
                        .family = (uint8_t)r->family,
                        .proto = r->proto,
                        .has_port = r->port >= 0,
                        .port = r->port >= 0 ? (uint16_t)r->port : 0,
                },
        };
        memcpy(e->key.src, r->src, sizeof(e->key.src));
        memcpy(e->key.dst, r->dst, sizeof(e->key.dst));
        e->first_usec = r->first_usec;
        e->packets = r->packets;
        e->bytes = r->bytes;
        e->last_usec = usec_before(at, r->since_ms);
        e->expires_usec = at + r->expires_ms * USEC_PER_MSEC_;
}

static void read_add(struct read_entry *a, const struct read_entry *b)
{
        a->packets += b->packets;
        a->bytes += b->bytes;
        if (b->last_usec > a->last_usec)
                a->last_usec = b->last_usec;
        if (b->expires_usec > a->expires_usec)
                a->expires_usec = b->expires_usec;
        if (b->first_usec && (!a->first_usec || b->first_usec < a->first_usec))
                a->first_usec = b->first_usec;
}

int drops_read_new(const struct nft_drop *reads, size_t n, uint64_t overflow, uint64_t skipped, uint64_t now_usec,
                   struct drops_read **ret)
{
        struct drops_read *r = calloc(1, sizeof(*r));
        size_t m = 0;

        if (!r || !(r->v = calloc(n ? n : 1, sizeof(*r->v)))) {
                free(r);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                read_from_elem(&r->v[i], &reads[i], now_usec);
        if (n > 0)
                qsort(r->v, n, sizeof(*r->v), read_cmp);
        /* The same tuple in several policies' sets (switched between): one. */
        for (size_t i = 0; i < n; i++) {
                if (m > 0 && key_cmp(&r->v[m - 1].key, &r->v[i].key) == 0)
                        read_add(&r->v[m - 1], &r->v[i]);
                else
                        r->v[m++] = r->v[i];
        }
        r->n = m;
        r->overflow = overflow;
        r->skipped = skipped;
        r->now_usec = now_usec;
        *ret = r;
        return 0;
}

struct drops_read *drops_read_free(struct drops_read *r)
{
        if (r) {
                free(r->v);
                free(r);
        }
        return NULL;
}

void drops_read_add_overflow(struct drops_read *r, uint64_t packets)
{
        r->overflow += packets;
}

static void first_seen_min(struct drop_entry *e, uint64_t usec)
{
        if (usec && (!e->first_usec || usec < e->first_usec))
                e->first_usec = usec;
}

/*
 * The counting element read is not the one read before: its counts went
 * down, or its last packet came after the one read before would have expired
 * (an hour without packets). That one was read after its last packet, so
 * nothing of it is lost; the new one counts from zero.
 */
static bool element_new(const struct drop_entry *e, const struct read_entry *r)
{
        if (r->packets < e->kernel_packets || r->bytes < e->kernel_bytes)
                return true;
        return e->kernel_expires_usec && r->last_usec > e->kernel_expires_usec;
}

/*
 * When a tuple's first packet came, if its _first element does not tell: the
 * last packet if it is the only one, else the previous read (or the
 * isolation's start): at most one read early.
 */
static uint64_t first_guess(const struct read_entry *r, uint64_t packets, const struct ks_drops *d)
{
        uint64_t before = d->synced_usec ? d->synced_usec : d->since_usec;

        if (r->first_usec && r->first_usec >= before)
                return r->first_usec < r->last_usec ? r->first_usec : r->last_usec;
        return packets <= 1 || before == 0 || before > r->last_usec ? r->last_usec : before;
}

/*
 * A tuple of this read, known before: add what is new. A baseline (no
 * packets yet, drops_baseline) that counts now had its _first element from
 * the isolation before: the first packet is guessed.
 */
static void entry_update(struct drop_entry *e, const struct read_entry *r, const struct ks_drops *d)
{
        bool fresh;
        uint64_t packets;

        fresh = element_new(e, r);
        packets = fresh ? r->packets : r->packets - e->kernel_packets;
        if (e->packets == 0 && packets > 0)
                e->first_usec = first_guess(r, packets, d);
        else if (e->packets > 0)
                first_seen_min(e, r->first_usec);
        e->packets += packets;
        e->bytes += fresh ? r->bytes : r->bytes - e->kernel_bytes;
        e->kernel_packets = r->packets;
        e->kernel_bytes = r->bytes;
        e->kernel_expires_usec = r->expires_usec;
        if (packets > 0 && r->last_usec > e->last_usec)
                e->last_usec = r->last_usec;
}

/* A tuple new in this read: the _first element knows its first packet, if its set had room. */
static void entry_new(struct drop_entry *e, const struct read_entry *r, const struct ks_drops *d)
{
        *e = (struct drop_entry){
                .key = r->key,
                .packets = r->packets,
                .bytes = r->bytes,
                .kernel_packets = r->packets,
                .kernel_bytes = r->bytes,
                .kernel_expires_usec = r->expires_usec,
                .last_usec = r->last_usec,
        };
        if (r->first_usec)
                e->first_usec = r->first_usec < r->last_usec ? r->first_usec : r->last_usec;
        else
                e->first_usec = first_guess(r, r->packets, d);
}

/* What the element counted belongs to another isolation: later reads count from here. */
static void entry_baseline(struct drop_entry *e, const struct read_entry *r)
{
        e->kernel_packets = r->packets;
        e->kernel_bytes = r->bytes;
        e->kernel_expires_usec = r->expires_usec;
}

/* No packet of this isolation came before it began (a _first element left from the one before). */
static void first_clamp(struct ks_drops *d)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->entries[i].packets > 0 && d->entries[i].first_usec < d->since_usec)
                        d->entries[i].first_usec = d->since_usec;
}

/* Which of a read's tuples a merge takes: all, or those first seen before or after a moment. */
enum part { PART_ALL, PART_BEFORE, PART_AFTER };

static bool in_part(const struct read_entry *r, enum part part, uint64_t split_usec)
{
        return part == PART_ALL || (r->first_usec >= split_usec) == (part == PART_AFTER);
}

/*
 * Fold a read in. PART_BEFORE takes only the tuples first seen before
 * split_usec; PART_AFTER takes those first seen after it, and the others'
 * counts (and the overflow counters) only as the baseline later reads count
 * from.
 */
static int merge(struct ks_drops *d, const struct drops_read *rd, enum part part, uint64_t split_usec)
{
        const struct read_entry *r = rd->v;
        struct drop_entry *out;
        size_t n_r = rd->n, i = 0, j = 0, k = 0, cap;
        uint64_t lost = 0;

        /* Every known tuple stays, new ones only while there is room: never more than the bound. */
        cap = d->n + n_r < DROPS_MAX_ENTRIES ? d->n + n_r : DROPS_MAX_ENTRIES;
        out = calloc(cap ? cap : 1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        while (i < d->n || j < n_r) {
                int c = i == d->n ? 1 : j == n_r ? -1 : key_cmp(&d->entries[i].key, &r[j].key);
                bool counts = c >= 0 && in_part(&r[j], part, split_usec);

                if (c >= 0 && part == PART_BEFORE && !counts) {
                        j++;            /* the next isolation's */
                } else if (c < 0) {
                        /* Gone from the kernel (expired, or the table rebuilt): kept, counts from 0 if it returns. */
                        out[k] = d->entries[i++];
                        entry_forget_kernel(&out[k++]);
                } else if (c == 0) {
                        out[k] = d->entries[i++];
                        if (counts)
                                entry_update(&out[k++], &r[j++], d);
                        else
                                entry_baseline(&out[k++], &r[j++]);
                } else if (k + (d->n - i) < DROPS_MAX_ENTRIES && !counts) {
                        /* A tuple with no packets yet: drops_totals() and drops_sorted() skip it. */
                        out[k] = (struct drop_entry){ .key = r[j].key };
                        entry_baseline(&out[k++], &r[j++]);
                } else if (k + (d->n - i) < DROPS_MAX_ENTRIES) {
                        entry_new(&out[k++], &r[j++], d);
                } else {
                        lost += counts ? r[j].packets : 0;
                        j++;
                }
        }
        free(d->entries);
        d->entries = out;
        d->n = k;
        if (part != PART_AFTER)
                d->overflow += (rd->overflow >= d->kernel_overflow ? rd->overflow - d->kernel_overflow
                                                                   : rd->overflow) + lost;
        d->kernel_overflow = rd->overflow;
        d->skipped = rd->skipped;
        d->synced_usec = rd->now_usec;
        first_clamp(d);
        return 0;
}

int drops_merge_read(struct ks_drops *d, const struct drops_read *rd)
{
        return merge(d, rd, PART_ALL, 0);
}

int drops_merge_split(struct ks_drops *d, const struct drops_read *rd, uint64_t split_usec, bool after)
{
        return merge(d, rd, after ? PART_AFTER : PART_BEFORE, split_usec);
}

int drops_merge(struct ks_drops *d, struct nft_drop *reads, size_t n, uint64_t overflow, uint64_t skipped,
                uint64_t now_usec)
{
        struct drops_read *r = NULL;
        int k = drops_read_new(reads, n, overflow, skipped, now_usec, &r);

        if (k == 0)
                k = drops_merge_read(d, r);
        drops_read_free(r);
        return k;
}

static bool same_source(const struct drop_entry *a, const struct drop_entry *b)
{
        return a->key.family == b->key.family && memcmp(a->key.src, b->key.src, sizeof(a->key.src)) == 0;
}

void drops_totals(const struct ks_drops *d, struct drops_totals *ret)
{
        struct drops_totals t = { .overflow = d->overflow + d->skipped };
        const struct drop_entry *prev = NULL;
        uint64_t source = 0;

        /* Sorted by family and source first: a source's tuples are neighbours. Baselines do not count. */
        for (size_t i = 0; i < d->n; i++) {
                const struct drop_entry *e = &d->entries[i];

                if (e->packets == 0)
                        continue;
                t.tuples++;
                t.packets += e->packets;
                t.bytes += e->bytes;
                if (prev && same_source(prev, e)) {
                        source += e->packets;
                } else {
                        t.sources++;
                        source = e->packets;
                }
                prev = e;
                /* The source's count so far: its last tuple's is its total, and only more can win. */
                if (!t.top_source || source > t.top_source_packets) {
                        t.top_source = e;
                        t.top_source_packets = source;
                }
        }
        *ret = t;
}

static int entry_by_packets(const void *a, const void *b)
{
        const struct drop_entry *x = *(const struct drop_entry *const *)a, *y = *(const struct drop_entry *const *)b;

        if (x->packets != y->packets)
                return x->packets < y->packets ? 1 : -1;
        return key_cmp(&x->key, &y->key);
}

int drops_sorted(const struct ks_drops *d, uint64_t since_usec, size_t max, const struct drop_entry ***ret,
                 size_t *ret_n)
{
        const struct drop_entry **v = calloc(d->n ? d->n : 1, sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < d->n; i++)
                if (d->entries[i].packets > 0 && d->entries[i].last_usec >= since_usec)
                        v[n++] = &d->entries[i];
        qsort(v, n, sizeof(*v), entry_by_packets);
        *ret = v;
        *ret_n = max && n > max ? max : n;
        return 0;
}
