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

/* A v4 tuple 10.0.0.SRC -> 192.0.2.DST, proto, port (-1: none), with the kernel's counts. */
static struct nft_drop elem(uint8_t src, uint8_t dst, uint8_t proto, int32_t port, uint64_t packets,
                            uint64_t idle_ms)
{
        struct nft_drop d = { .family = AF_INET, .proto = proto, .port = port, .packets = packets,
                              .bytes = packets * 100, .idle_ms = idle_ms };

        d.src[0] = 10, d.src[3] = src;
        d.dst[0] = 192, d.dst[1] = 0, d.dst[2] = 2, d.dst[3] = dst;
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_merge),
                cmocka_unit_test(test_duplicates_summed),
                cmocka_unit_test(test_bounded),
                cmocka_unit_test(test_totals_and_order),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
