/* SPDX-License-Identifier: MIT */
/*
 * The drop sensor's totals per tuple (drops.h). The kernel counts per element
 * and forgets an element an hour after its last packet, or when the table is
 * rebuilt; the agent adds what each read shows beyond the previous one, so a
 * tuple's totals survive both.
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

void drops_forget_kernel(struct ks_drops *d)
{
        for (size_t i = 0; i < d->n; i++)
                d->entries[i].kernel_packets = d->entries[i].kernel_bytes = 0;
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

void drops_adopt(struct ks_drops *d, struct drop_entry *entries, size_t n, uint64_t since_usec, uint64_t overflow)
{
        drops_reset(d, since_usec);
        qsort(entries, n, sizeof(*entries), entry_cmp);
        d->entries = entries;
        d->n = n;
        d->overflow = overflow;
}

/* The kernel's counts beyond what the previous read showed (all of them after a reset or expiry). */
static uint64_t counts_new(uint64_t now, uint64_t before)
{
        return now >= before ? now - before : now;
}

/* One read element as an entry: kernel counts, and the time of its last packet. */
static void entry_from_read(struct drop_entry *e, const struct nft_drop *r, uint64_t now_usec)
{
        uint64_t idle = r->idle_ms * USEC_PER_MSEC_;

        *e = (struct drop_entry){
                .key = {
                        .family = (uint8_t)r->family,
                        .proto = r->proto,
                        .has_port = r->port >= 0,
                        .port = r->port >= 0 ? (uint16_t)r->port : 0,
                },
                .kernel_packets = r->packets,
                .kernel_bytes = r->bytes,
                .last_usec = now_usec > idle ? now_usec - idle : now_usec,
        };
        memcpy(e->key.src, r->src, sizeof(e->key.src));
        memcpy(e->key.dst, r->dst, sizeof(e->key.dst));
}

/* The reads as entries, sorted; the same tuple in several policies' sets summed. */
static int reads_sorted(struct nft_drop *reads, size_t n, uint64_t now_usec, struct drop_entry **ret, size_t *ret_n)
{
        struct drop_entry *v = calloc(n ? n : 1, sizeof(*v));
        size_t m = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                entry_from_read(&v[i], &reads[i], now_usec);
        qsort(v, n, sizeof(*v), entry_cmp);
        for (size_t i = 0; i < n; i++) {
                if (m > 0 && key_cmp(&v[m - 1].key, &v[i].key) == 0) {
                        v[m - 1].kernel_packets += v[i].kernel_packets;
                        v[m - 1].kernel_bytes += v[i].kernel_bytes;
                        if (v[i].last_usec > v[m - 1].last_usec)
                                v[m - 1].last_usec = v[i].last_usec;
                        continue;
                }
                v[m++] = v[i];
        }
        *ret = v;
        *ret_n = m;
        return 0;
}

/* A tuple of this read, known before: add what is new. */
static void entry_update(struct drop_entry *e, const struct drop_entry *r)
{
        uint64_t packets = counts_new(r->kernel_packets, e->kernel_packets);

        e->packets += packets;
        e->bytes += counts_new(r->kernel_bytes, e->kernel_bytes);
        e->kernel_packets = r->kernel_packets;
        e->kernel_bytes = r->kernel_bytes;
        if (packets > 0 && r->last_usec > e->last_usec)
                e->last_usec = r->last_usec;
}

/* A tuple new in this read: its first packet is its last one if it has one, else after the previous read. */
static void entry_new(struct drop_entry *e, const struct drop_entry *r, const struct ks_drops *d)
{
        uint64_t before = d->synced_usec ? d->synced_usec : d->since_usec;

        *e = *r;
        e->packets = r->kernel_packets;
        e->bytes = r->kernel_bytes;
        e->first_usec = r->kernel_packets <= 1 || before == 0 || before > r->last_usec ? r->last_usec : before;
}

int drops_merge(struct ks_drops *d, struct nft_drop *reads, size_t n, uint64_t overflow, uint64_t skipped,
                uint64_t now_usec)
{
        struct drop_entry *r = NULL, *out;
        size_t n_r = 0, i = 0, j = 0, k = 0, cap;
        uint64_t lost = 0;

        if (reads_sorted(reads, n, now_usec, &r, &n_r) < 0)
                return -ENOMEM;
        /* Every known tuple stays, new ones only while there is room: never more than the bound. */
        cap = d->n + n_r < DROPS_MAX_ENTRIES ? d->n + n_r : DROPS_MAX_ENTRIES;
        out = calloc(cap ? cap : 1, sizeof(*out));
        if (!out) {
                free(r);
                return -ENOMEM;
        }
        while (i < d->n || j < n_r) {
                int c = i == d->n ? 1 : j == n_r ? -1 : key_cmp(&d->entries[i].key, &r[j].key);

                if (c < 0) {
                        /* Gone from the kernel (expired, or the table rebuilt): kept, counts from 0 if it returns. */
                        out[k] = d->entries[i++];
                        out[k].kernel_packets = out[k].kernel_bytes = 0;
                        k++;
                } else if (c == 0) {
                        out[k] = d->entries[i++];
                        entry_update(&out[k++], &r[j++]);
                } else if (k + (d->n - i) < DROPS_MAX_ENTRIES) {
                        entry_new(&out[k++], &r[j++], d);
                } else {
                        lost += r[j++].kernel_packets;
                }
        }
        free(r);
        free(d->entries);
        d->entries = out;
        d->n = k;
        d->overflow += counts_new(overflow, d->kernel_overflow) + lost;
        d->kernel_overflow = overflow;
        d->skipped = skipped;
        d->synced_usec = now_usec;
        return 0;
}

static bool same_source(const struct drop_entry *a, const struct drop_entry *b)
{
        return a->key.family == b->key.family && memcmp(a->key.src, b->key.src, sizeof(a->key.src)) == 0;
}

void drops_totals(const struct ks_drops *d, struct drops_totals *ret)
{
        struct drops_totals t = { .tuples = d->n, .overflow = d->overflow + d->skipped };
        uint64_t source = 0;

        /* Sorted by family and source first: a source's tuples are neighbours. */
        for (size_t i = 0; i < d->n; i++) {
                const struct drop_entry *e = &d->entries[i];

                t.packets += e->packets;
                t.bytes += e->bytes;
                source = i > 0 && same_source(&d->entries[i - 1], e) ? source + e->packets : e->packets;
                if (i == 0 || !same_source(&d->entries[i - 1], e))
                        t.sources++;
                if (i + 1 < d->n && same_source(e, &d->entries[i + 1]))
                        continue;
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
                if (d->entries[i].last_usec >= since_usec)
                        v[n++] = &d->entries[i];
        qsort(v, n, sizeof(*v), entry_by_packets);
        *ret = v;
        *ret_n = max && n > max ? max : n;
        return 0;
}
