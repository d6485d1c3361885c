/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The drop sensor's table in the agent (docs/design.md, "The drop sensor"):
 * what the kernel's P/drops_* sets counted (nft_read_drops), folded into
 * totals per tuple for the isolation in force (or the last one). The kernel
 * does the per-packet work; the agent reads the sets on demand and every
 * DROPS_SYNC_USEC while isolated, and keeps per tuple what the kernel cannot:
 * when it was first seen, and the counts of elements that expired or were
 * emptied by a rebuild of the table. Bounded: at most DROPS_MAX_ENTRIES
 * tuples; what does not fit is counted as overflow. Pure: no I/O.
 */

#define DROPS_MAX_ENTRIES 65536
#define DROPS_SYNC_USEC (10ULL * 1000000ULL)

struct nft_drop;

/* Sorted by memcmp: family, then source, so that a source's tuples are neighbours. */
struct drop_key {
        uint8_t family;         /* AF_INET, AF_INET6 */
        uint8_t pad[3];
        uint8_t src[16], dst[16];
        uint8_t proto;
        uint8_t has_port;
        uint16_t port;          /* host order */
};

struct drop_entry {
        struct drop_key key;
        uint64_t packets, bytes;                /* during this isolation */
        uint64_t kernel_packets, kernel_bytes;  /* the kernel's element at the last read (0: none) */
        uint64_t kernel_expires_usec;           /* when that element expires without more packets (0: none) */
        uint64_t first_usec, last_usec;         /* CLOCK_REALTIME */
};

struct ks_drops {
        struct drop_entry *entries;     /* sorted by key */
        size_t n;
        uint64_t overflow;              /* packets not accounted per tuple, this isolation */
        uint64_t kernel_overflow;       /* the kernel's P/drops_overflow sum at the last read */
        uint64_t skipped;               /* packets of elements beyond the last read's bound */
        uint64_t since_usec;            /* the isolation's start (CLOCK_REALTIME) */
        uint64_t synced_usec;           /* the last read (CLOCK_REALTIME), 0: none yet */
};

void drops_free(struct ks_drops *d);
/* A new isolation from since_usec on: no tuples, no overflow (the kernel's counts stay the baseline). */
void drops_reset(struct ks_drops *d, uint64_t since_usec);
/* The kernel's sets and counters were emptied (flushed, or the table rebuilt): later counts are all new. */
void drops_forget_kernel(struct ks_drops *d);
/*
 * One read of the kernel's sets, sorted by tuple: built from nft_read_drops()'s
 * elements by drops_read_new() (pure: on the reading thread, so that the loop
 * only merges two sorted arrays), folded in by drops_merge_read(). now_usec
 * (CLOCK_REALTIME) is the read's start.
 */
struct drops_read;
int drops_read_new(const struct nft_drop *reads, size_t n, uint64_t overflow, uint64_t skipped, uint64_t now_usec,
                   struct drops_read **ret);
struct drops_read *drops_read_free(struct drops_read *r);
/* Overflow counted before the counters were reset (a restore resets them before its last read). */
void drops_read_add_overflow(struct drops_read *r, uint64_t packets);

/*
 * Fold a read into the totals. Each element's times are the kernel's,
 * relative to its read_usec: its last packet, and its tuple's first one (from
 * the _first sets; first_seen is the earliest known). A counting element
 * whose counts went down, or whose last packet came after the one read before
 * would have expired, is a new one (the old one expired, or the table was
 * rebuilt): all its counts are new; else only what it counted beyond the
 * previous read. Returns 0 or -ENOMEM (the totals are unchanged then).
 */
int drops_merge_read(struct ks_drops *d, const struct drops_read *r);
/*
 * An isolation that began before the last one's final read was folded in:
 * that read is split by each tuple's first packet (its _first element) at
 * split_usec. after: the tuples first seen after it are the new isolation's,
 * the others' counts (and the overflow counters) are only the baseline its
 * later reads count from (tuples with no packets, which drops_totals() and
 * drops_sorted() skip). !after: the last isolation takes the others.
 */
int drops_merge_split(struct ks_drops *d, const struct drops_read *r, uint64_t split_usec, bool after);
/* Both at once. */
int drops_merge(struct ks_drops *d, struct nft_drop *reads, size_t n, uint64_t overflow, uint64_t skipped,
                uint64_t now_usec);

/*
 * Take entries[0..n) (malloc'ed, at most DROPS_MAX_ENTRIES; kernel counts 0) as the totals of a
 * finished isolation from since_usec on, with overflow packets not itemised: what the agent
 * saved at its restore. Sorted here; d owns entries afterwards.
 */
void drops_adopt(struct ks_drops *d, struct drop_entry *entries, size_t n, uint64_t since_usec, uint64_t overflow);

/* Totals: tuples, packets, bytes, distinct sources; overflow (with skipped). */
struct drops_totals {
        size_t tuples, sources;
        uint64_t packets, bytes, overflow;
        const struct drop_entry *top_source;    /* an entry of the source with most packets, or NULL */
        uint64_t top_source_packets;
};
void drops_totals(const struct ks_drops *d, struct drops_totals *ret);

/*
 * The tuples last seen at or after since_usec (0: all), most packets first,
 * at most max (0: all): an array of pointers into d, for the caller to free.
 */
int drops_sorted(const struct ks_drops *d, uint64_t since_usec, size_t max, const struct drop_entry ***ret,
                 size_t *ret_n);
