/* SPDX-License-Identifier: MIT */
/* The drop sensor's totals in the agent (agent/drops.c): reads of the kernel's sets folded in. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "drops.h"
#include "nft.h"

#define SEC 1000000ULL
#define T0 (1800000000ULL * SEC)

#define TIMEOUT_MS 3600000ULL     /* the counting sets' (DROPS_TIMEOUT_MS) */

/*
 * A counting element of the v4 tuple 10.0.0.SRC -> 192.0.2.DST, proto, port
 * (-1: none), with the kernel's counts, idle_ms after its last packet (it
 * expires TIMEOUT_MS after that); read when the merge is (read_usec 0).
 */
static struct nft_drop elem(uint8_t src, uint8_t dst, uint8_t proto, int32_t port, uint64_t packets,
                            uint64_t idle_ms)
{
        struct nft_drop d = { .family = AF_INET, .proto = proto, .port = port, .packets = packets,
                              .bytes = packets * 100, .since_ms = idle_ms, .expires_ms = TIMEOUT_MS - idle_ms };

        d.src[0] = 10, d.src[3] = src;
        d.dst[0] = 192, d.dst[1] = 0, d.dst[2] = 2, d.dst[3] = dst;
        return d;
}

/* The same, with its tuple's first packet (from the P/..._first set) at first_usec. */
static struct nft_drop elem_first(uint8_t src, uint8_t dst, uint8_t proto, int32_t port, uint64_t packets,
                                  uint64_t idle_ms, uint64_t first_usec)
{
        struct nft_drop d = elem(src, dst, proto, port, packets, idle_ms);

        d.first_usec = first_usec;
        return d;
}

static const struct drop_entry *find(const struct ks_drops *d, uint8_t src, uint8_t dst, int32_t port)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->entries[i].key.src[3] == src && d->entries[i].key.dst[3] == dst &&
                    (port < 0 ? !d->entries[i].key.has_port : d->entries[i].key.port == port))
                        return &d->entries[i];
        return NULL;
}

static void test_merge(void **unused)
{
        struct ks_drops d = {};
        struct nft_drop r[3];
        const struct drop_entry *e;

        drops_reset(&d, T0);
        /* First read: one tuple with one packet 2 s ago, one with 5 (busy before the read). */
        r[0] = elem(7, 80, 6, 443, 1, 2000);
        r[1] = elem(7, 80, 1, -1, 5, 1000);
        assert_int_equal(drops_merge(&d, r, 2, 0, 0, T0 + 10 * SEC), 0);
        e = find(&d, 7, 80, 443);
        assert_non_null(e);
        assert_int_equal(e->packets, 1);
        assert_int_equal(e->last_usec, T0 + 8 * SEC);
        assert_int_equal(e->first_usec, T0 + 8 * SEC);         /* one packet: first is last */
        e = find(&d, 7, 80, -1);
        assert_int_equal(e->first_usec, T0);                    /* more: the isolation's start */
        assert_int_equal(e->last_usec, T0 + 9 * SEC);

        /* Second read: the kernel counted on; a new busy tuple dates from the previous read. */
        r[0] = elem(7, 80, 6, 443, 4, 0);
        r[1] = elem(7, 80, 1, -1, 5, 11000);                    /* nothing new */
        r[2] = elem(9, 81, 17, 53, 3, 0);
        assert_int_equal(drops_merge(&d, r, 3, 0, 0, T0 + 20 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 4);
        assert_int_equal(find(&d, 7, 80, 443)->last_usec, T0 + 20 * SEC);
        assert_int_equal(find(&d, 7, 80, -1)->packets, 5);
        assert_int_equal(find(&d, 7, 80, -1)->last_usec, T0 + 9 * SEC);
        assert_int_equal(find(&d, 9, 81, 53)->first_usec, T0 + 10 * SEC);

        /* The element expired (gone from the read), then came back: counts add up, never twice. */
        r[0] = elem(9, 81, 17, 53, 3, 0);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, T0 + 30 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 4);    /* kept */
        r[0] = elem(7, 80, 6, 443, 2, 0);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, T0 + 40 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 6);
        assert_int_equal(find(&d, 7, 80, 443)->bytes, 600);

        /* A rebuilt table: the agent forgets the kernel's counts, later ones are all new. */
        drops_forget_kernel(&d);
        r[0] = elem(7, 80, 6, 443, 3, 0);
        assert_int_equal(drops_merge(&d, r, 1, 7, 0, T0 + 50 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 9);
        assert_int_equal(d.overflow, 7);
        assert_int_equal(drops_merge(&d, r, 1, 9, 0, T0 + 51 * SEC), 0);
        assert_int_equal(d.overflow, 9);

        drops_reset(&d, T0 + 60 * SEC);
        assert_int_equal(d.n, 0);
        assert_int_equal(d.overflow, 0);
        drops_free(&d);
}

/* The same tuple in two policies' sets (a switch) is one tuple. */
static void test_duplicates_summed(void **unused)
{
        struct ks_drops d = {};
        struct nft_drop r[2] = { elem(1, 2, 6, 80, 2, 5000), elem(1, 2, 6, 80, 3, 1000) };

        drops_reset(&d, T0);
        assert_int_equal(drops_merge(&d, r, 2, 0, 0, T0 + 10 * SEC), 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.entries[0].packets, 5);
        assert_int_equal(d.entries[0].last_usec, T0 + 9 * SEC);
        drops_free(&d);
}

/* Bounded: DROPS_MAX_ENTRIES tuples; the packets of the rest are overflow. */
static void test_bounded(void **unused)
{
        size_t n = DROPS_MAX_ENTRIES + 100;
        struct nft_drop *r = calloc(n, sizeof(*r));
        struct ks_drops d = {};

        assert_non_null(r);
        for (size_t i = 0; i < n; i++) {
                r[i] = elem((uint8_t)(i >> 16), 1, 17, (int32_t)(i & 0xffff), 2, 0);
                r[i].src[2] = (uint8_t)(i >> 24);
        }
        drops_reset(&d, T0);
        assert_int_equal(drops_merge(&d, r, n, 0, 0, T0 + SEC), 0);
        assert_int_equal(d.n, DROPS_MAX_ENTRIES);
        assert_int_equal(d.overflow, 200);
        /* Known tuples keep counting when the table is full. */
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, T0 + 2 * SEC), 0);
        assert_int_equal(d.n, DROPS_MAX_ENTRIES);
        free(r);
        drops_free(&d);
}

static void test_totals_and_order(void **unused)
{
        struct nft_drop r[4] = { elem(1, 2, 6, 80, 5, 0), elem(3, 2, 6, 80, 7, 0), elem(1, 3, 17, 53, 4, 0),
                                 elem(1, 4, 1, -1, 1, 0) };
        struct ks_drops d = {};
        struct drops_totals t;
        const struct drop_entry **v = NULL;
        size_t n = 0;

        drops_reset(&d, T0);
        assert_int_equal(drops_merge(&d, r, 4, 2, 0, T0 + SEC), 0);
        drops_totals(&d, &t);
        assert_int_equal(t.tuples, 4);
        assert_int_equal(t.sources, 2);
        assert_int_equal(t.packets, 17);
        assert_int_equal(t.overflow, 2);
        assert_int_equal(t.top_source->key.src[3], 1);         /* 10 packets over 7 */
        assert_int_equal(t.top_source_packets, 10);
        assert_int_equal(drops_sorted(&d, 0, 2, &v, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[0]->packets, 7);
        assert_int_equal(v[1]->packets, 5);
        free(v);
        assert_int_equal(drops_sorted(&d, T0 + 2 * SEC, 0, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);
        drops_free(&d);
}

/* first_seen and last_seen are the kernel's, relative to when each element's message was read. */
static void test_times_from_kernel(void **unused)
{
        struct nft_drop r[2] = { elem_first(7, 80, 17, 53, 5, 1500, T0 + 3 * SEC + 50000), elem(8, 80, 17, 53, 2, 0) };
        struct ks_drops d = {};
        const struct drop_entry *e;

        /* The read started at T0 + 10 s; the message with the first tuple was parsed 300 ms later. */
        r[0].read_usec = T0 + 10 * SEC + 300000;
        drops_reset(&d, T0);
        assert_int_equal(drops_merge(&d, r, 2, 0, 0, T0 + 10 * SEC), 0);
        e = find(&d, 7, 80, 53);
        assert_int_equal(e->packets, 5);
        assert_int_equal(e->first_usec, T0 + 3 * SEC + 50000);
        assert_int_equal(e->last_usec, T0 + 8 * SEC + 800000);
        /* No _first element (its set was full): the isolation's start, at most one read early. */
        assert_int_equal(find(&d, 8, 80, 53)->first_usec, T0);

        /* A _first element that expired and came back (a week on) never moves first_seen later. */
        r[0] = elem_first(7, 80, 17, 53, 6, 0, T0 + 19 * SEC);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, T0 + 20 * SEC), 0);
        e = find(&d, 7, 80, 53);
        assert_int_equal(e->packets, 6);
        assert_int_equal(e->first_usec, T0 + 3 * SEC + 50000);
        assert_int_equal(e->last_usec, T0 + 20 * SEC);
        drops_free(&d);
}

/*
 * A counting element expires an hour after its last packet. Between two reads
 * it may expire and come back with as many packets as before, or more: its
 * last packet after the old one's expiry tells it is new, and all its packets
 * count (the old one's were all read, an hour after its last packet).
 */
static void test_expired_and_back(void **unused)
{
        const uint64_t a = T0 + 7200 * SEC;
        struct ks_drops d = {};
        struct nft_drop r[1];

        drops_reset(&d, T0);
        /* Read at a: 5 packets, the last 3590 s ago: it expires at a + 10 s. */
        r[0] = elem(7, 80, 6, 443, 5, 3590000);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, a), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 5);
        /* Read at a + 30 s: 7 packets, the last 5 s ago, after that expiry: a new element. */
        r[0] = elem_first(7, 80, 6, 443, 7, 5000, a + 15 * SEC);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, a + 30 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 12);
        assert_int_equal(find(&d, 7, 80, 443)->bytes, 1200);
        assert_int_equal(find(&d, 7, 80, 443)->last_usec, a + 25 * SEC);
        /* Read at a + 40 s: the same element counted on (it expires an hour after its last packet). */
        r[0] = elem(7, 80, 6, 443, 9, 0);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, a + 40 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 14);
        /* Gone (expired an hour after its last packet): nothing counted, the tuple kept. */
        assert_int_equal(drops_merge(&d, r, 0, 0, 0, a + 3700 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 14);
        assert_int_equal(find(&d, 7, 80, 443)->kernel_packets, 0);
        /* Back with 2 packets: 2 more. */
        r[0] = elem(7, 80, 6, 443, 2, 0);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, a + 3710 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 16);
        /* Counts that went down (no expiry seen in between) are a new element too. */
        r[0] = elem(7, 80, 6, 443, 1, 0);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, a + 3720 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->packets, 17);
        drops_free(&d);
}

/* An agent restarted while isolated: the kernel's elements carry their own times. */
static void test_adopt_kernel_after_restart(void **unused)
{
        struct nft_drop r[1] = { elem_first(7, 80, 17, 5353, 3, 2000, T0 + 94 * SEC) };
        struct ks_drops d = {};

        drops_reset(&d, T0);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, T0 + 100 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 5353)->first_usec, T0 + 94 * SEC);
        assert_int_equal(find(&d, 7, 80, 5353)->last_usec, T0 + 98 * SEC);
        assert_int_equal(find(&d, 7, 80, 5353)->packets, 3);
        drops_free(&d);
}

/* A read is sorted and summed where it is made (the reading thread); the loop only merges it. */
static void test_read_prepared(void **unused)
{
        struct nft_drop r[3] = { elem(9, 2, 6, 80, 1, 0), elem_first(1, 2, 6, 80, 2, 5000, T0 + 2 * SEC),
                                 elem_first(1, 2, 6, 80, 3, 1000, T0 + 4 * SEC) };
        struct drops_read *rd = NULL;
        struct ks_drops d = {};

        assert_int_equal(drops_read_new(r, 3, 4, 0, T0 + 10 * SEC, &rd), 0);
        drops_reset(&d, T0);
        assert_int_equal(drops_merge_read(&d, rd), 0);
        drops_read_free(rd);
        assert_int_equal(d.n, 2);
        assert_int_equal(find(&d, 1, 2, 80)->packets, 5);
        assert_int_equal(find(&d, 1, 2, 80)->first_usec, T0 + 2 * SEC);
        assert_int_equal(find(&d, 1, 2, 80)->last_usec, T0 + 9 * SEC);
        assert_int_equal(d.overflow, 4);
        drops_free(&d);
}

/*
 * An isolation that began before the last one's final read was folded in:
 * the read is split at the first packets, the last isolation gets its
 * tuples, the new one the tuples first seen after the split and counts the
 * others from there; tuples with no packet of its own are not in its totals.
 */
static void test_split_carried(void **unused)
{
        struct nft_drop r[3] = { elem_first(7, 80, 6, 443, 3, 9000, T0 + 1 * SEC) };
        struct drops_read *rd = NULL;
        const struct drop_entry **v = NULL;
        struct ks_drops last = {}, next = {};
        struct drops_totals t;
        size_t n = 0;

        drops_reset(&last, T0);
        assert_int_equal(drops_merge(&last, r, 1, 0, 0, T0 + 10 * SEC), 0);
        /* Restored at T0+20 s with 2 packets of overflow; isolated again at T0+21 s; read at T0+22 s. */
        drops_reset(&next, T0 + 21 * SEC);
        r[0] = elem_first(7, 80, 6, 443, 5, 500, T0 + 1 * SEC);        /* 2 in the new isolation, before the read */
        r[1] = elem_first(8, 80, 17, 53, 4, 100, T0 + 21500000ULL);   /* first seen in the new isolation */
        r[2] = elem_first(9, 81, 6, 22, 1, 7000, T0 + 15 * SEC);      /* the last isolation's, never read */
        assert_int_equal(drops_read_new(r, 3, 1, 0, T0 + 22 * SEC, &rd), 0);
        assert_int_equal(drops_merge_split(&next, rd, T0 + 20500000ULL, true), 0);
        drops_read_add_overflow(rd, 2);
        assert_int_equal(drops_merge_split(&last, rd, T0 + 20500000ULL, false), 0);

        assert_int_equal(find(&last, 7, 80, 443)->packets, 5);
        assert_int_equal(find(&last, 9, 81, 22)->packets, 1);
        assert_null(find(&last, 8, 80, 53));
        drops_totals(&last, &t);
        assert_int_equal(t.tuples, 2);
        assert_int_equal(t.overflow, 3);
        drops_totals(&next, &t);
        assert_int_equal(t.tuples, 1);
        assert_int_equal(t.packets, 4);
        assert_int_equal(t.sources, 1);
        assert_int_equal(t.overflow, 0);
        assert_int_equal(find(&next, 8, 80, 53)->first_usec, T0 + 21500000ULL);

        /* The next read: the old tuple's 2 more packets are the new isolation's, from the previous read on. */
        drops_read_free(rd);
        r[0] = elem_first(7, 80, 6, 443, 7, 1000, T0 + 1 * SEC);
        r[1] = elem_first(8, 80, 17, 53, 4, 8100, T0 + 21500000ULL);
        r[2] = elem_first(9, 81, 6, 22, 1, 15000, T0 + 15 * SEC);
        assert_int_equal(drops_merge(&next, r, 3, 1, 0, T0 + 30 * SEC), 0);
        drops_totals(&next, &t);
        assert_int_equal(t.tuples, 2);
        assert_int_equal(t.packets, 6);
        assert_int_equal(t.sources, 2);
        assert_int_equal(t.overflow, 0);
        assert_int_equal(find(&next, 7, 80, 443)->packets, 2);
        assert_int_equal(find(&next, 7, 80, 443)->first_usec, T0 + 22 * SEC);
        assert_int_equal(find(&next, 7, 80, 443)->last_usec, T0 + 29 * SEC);
        assert_int_equal(drops_sorted(&next, 0, 0, &v, &n), 0);
        assert_int_equal(n, 2);                 /* not the baseline of 10.0.0.9 */
        free(v);

        drops_free(&last);
        drops_free(&next);
}

/* A _first element left from an isolation before this one does not date a tuple before its start. */
static void test_first_not_before_start(void **unused)
{
        struct nft_drop r[1] = { elem_first(7, 80, 6, 443, 2, 1000, T0 - 50 * SEC) };
        struct ks_drops d = {};

        drops_reset(&d, T0);
        assert_int_equal(drops_merge(&d, r, 1, 0, 0, T0 + 10 * SEC), 0);
        assert_int_equal(find(&d, 7, 80, 443)->first_usec, T0);
        drops_free(&d);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_merge),
                cmocka_unit_test(test_times_from_kernel),
                cmocka_unit_test(test_expired_and_back),
                cmocka_unit_test(test_adopt_kernel_after_restart),
                cmocka_unit_test(test_read_prepared),
                cmocka_unit_test(test_duplicates_summed),
                cmocka_unit_test(test_bounded),
                cmocka_unit_test(test_totals_and_order),
                cmocka_unit_test(test_split_carried),
                cmocka_unit_test(test_first_not_before_start),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
