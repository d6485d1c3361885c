/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the compiler, without a kernel: golden nft text and libnftnl
 * bytecode per shipped policy, merging of overlaps, the split of each gateway
 * into a hash set of exact entries and an interval set of ranges, element
 * counts, the batch
 * messages of a table of several staged policies and of the hook switch, and
 * 100k addresses (how long that takes is a benchmark: tests/bench). Notes are
 * TAP comments ("# ..."). UPDATE_GOLDEN=1 rewrites the golden files.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <cmocka.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>

#include "big-policy.h"
#include "cleanup.h"
#include "tap.h"
#include "compile.h"
#include "compile-tripwire.h"
#include "policy.h"
#include "summary.h"

#define TABLE "killswitch"


/* The drop sensor's rules of policy t, right before the tail of t/outbound (compile-drops.c). */
#define DROP_RULES_T \
        "\t\tupdate @t/drops_v4 { ip saddr . ip daddr . meta l4proto . tcp dport } add @t/drops_v4_first { ip saddr . ip daddr . meta l4proto . tcp dport }\n" \
        "\t\tip saddr . ip daddr . meta l4proto . tcp dport != @t/drops_v4 counter name \"t/drops_overflow\"\n" \
        "\t\tupdate @t/drops_v4 { ip saddr . ip daddr . meta l4proto . udp dport } add @t/drops_v4_first { ip saddr . ip daddr . meta l4proto . udp dport }\n" \
        "\t\tip saddr . ip daddr . meta l4proto . udp dport != @t/drops_v4 counter name \"t/drops_overflow\"\n" \
        "\t\tmeta l4proto != tcp meta l4proto != udp update @t/drops_v4_noport { ip saddr . ip daddr . meta l4proto } add @t/drops_v4_noport_first { ip saddr . ip daddr . meta l4proto }\n" \
        "\t\tmeta l4proto != tcp meta l4proto != udp ip saddr . ip daddr . meta l4proto != @t/drops_v4_noport " \
        "counter name \"t/drops_overflow\"\n" \
        "\t\tupdate @t/drops_v6 { ip6 saddr . ip6 daddr . meta l4proto . tcp dport } add @t/drops_v6_first { ip6 saddr . ip6 daddr . meta l4proto . tcp dport }\n" \
        "\t\tip6 saddr . ip6 daddr . meta l4proto . tcp dport != @t/drops_v6 counter name \"t/drops_overflow\"\n" \
        "\t\tupdate @t/drops_v6 { ip6 saddr . ip6 daddr . meta l4proto . udp dport } add @t/drops_v6_first { ip6 saddr . ip6 daddr . meta l4proto . udp dport }\n" \
        "\t\tip6 saddr . ip6 daddr . meta l4proto . udp dport != @t/drops_v6 counter name \"t/drops_overflow\"\n" \
        "\t\tmeta l4proto != tcp meta l4proto != udp update @t/drops_v6_noport { ip6 saddr . ip6 daddr . meta l4proto } add @t/drops_v6_noport_first { ip6 saddr . ip6 daddr . meta l4proto }\n" \
        "\t\tmeta l4proto != tcp meta l4proto != udp ip6 saddr . ip6 daddr . meta l4proto != @t/drops_v6_noport " \
        "counter name \"t/drops_overflow\"\n"


/* The first rules of P/inbound: source-routed packets dropped (build_source_route_drops). */
#define SOURCE_ROUTE_DROPS(P)                                                                   \
        "\t\tip option lsrr exists counter name \"" P "/dropped_in\" drop\n"                    \
        "\t\tip option ssrr exists counter name \"" P "/dropped_in\" drop\n"                    \
        "\t\texthdr rt exists counter name \"" P "/dropped_in\" drop\n"
static struct ks_policy *parse(const char *text)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        int r = policy_parse_string(text, "t.policy", "t", &p, &d);

        for (size_t i = 0; i < d.n; i++)
                tap_note("%s\n", d.msgs[i]);
        assert_int_equal(r, 0);
        diags_clear(&d);
        return p;
}

/* Policies as the array compile_table takes. */
#define pp(...) ((const struct ks_policy *const[]){ __VA_ARGS__ })

static char *text_of(const struct ks_policy *p)
{
        char *t = NULL;

        assert_int_equal(compile_text(p, TABLE, &t), 0);
        return t;
}

static char *dump_of(const struct ks_ruleset *r)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        assert_int_equal(ruleset_dump(r, f), 0);
        fclose(f);
        return buf;
}

/* Number of elements of set `name` in a ruleset_dump: they follow its header line. */
static size_t count_elements(const char *dump, const char *name)
{
        static const char word[] = "element ";
        _cleanup_free_ char *head = NULL;
        const char *s, *end;
        size_t n = 0;

        assert_true(asprintf(&head, "\n%s " TABLE " ", name) > 0);
        s = strstr(dump, head);
        assert_non_null(s);
        s = strchr(s + 1, '\n');
        assert_non_null(s);
        end = strchr(s + 1, '\n');
        assert_non_null(end);
        /* memmem, bounded by the line: a sanitizer's strstr measures the whole dump on each call. */
        while ((s = memmem(s, (size_t)(end - s), word, sizeof(word) - 1))) {
                n++;
                s += sizeof(word) - 1;
        }
        return n;
}

/* ---- Golden files ------------------------------------------------------ */

static char *read_all(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0;
        FILE *m;
        int c;

        if (!f)
                return NULL;
        m = open_memstream(&buf, &size);
        assert_non_null(m);
        while ((c = fgetc(f)) != EOF)
                fputc(c, m);
        fclose(m);
        return buf;
}

static void check_golden(const char *name, const char *ext, const char *actual)
{
        const char *dir = getenv("GOLDEN_DIR"), *update = getenv("UPDATE_GOLDEN");
        _cleanup_free_ char *path = NULL, *expected = NULL;

        assert_non_null(dir);
        assert_true(asprintf(&path, "%s/%s.%s", dir, name, ext) > 0);
        if (update && strcmp(update, "1") == 0) {
                _cleanup_fclose_ FILE *f = fopen(path, "we");

                assert_non_null(f);
                fputs(actual, f);
                tap_note("updated %s\n", path);
                return;
        }
        expected = read_all(path);
        if (!expected)
                fail_msg("%s missing: run UPDATE_GOLDEN=1 meson test compile", path);
        if (strcmp(expected, actual) != 0) {
                tap_note("--- %s\n+++ actual\n%s\n", path, actual);
                fail_msg("%s differs (UPDATE_GOLDEN=1 rewrites it after review)", path);
        }
}

static void golden_policy(const char *path)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *text = NULL, *dump = NULL;

        tap_note("policy %s\n", path);
        assert_int_equal(policy_parse_file(path, &p, &d), 0);
        text = text_of(p);
        check_golden(p->name, "nft", text);
        assert_int_equal(compile_table(pp(p), 1, p->name, TABLE, &r), 0);
        dump = dump_of(r);
        check_golden(p->name, "dump", dump);
        ruleset_free(r);
        r = NULL;
        free(dump);
        /* The link layer, with one more tracked link: P/uplinks refilled, the netdev table. */
        assert_int_equal(compile_links_table(pp(p), 1, p, (const char *const[]){ "wanx" }, 1, TABLE, 0, &r), 0);
        dump = dump_of(r);
        check_golden(p->name, "links.dump", dump);
        ruleset_free(r);
        policy_free(p);
}

static void test_golden_policies(void **state)
{
        const char *dir = getenv("POLICY_DIR");
        _cleanup_free_ char *pattern = NULL, *examples = NULL;
        glob_t g = {};

        assert_non_null(dir);
        assert_true(asprintf(&pattern, "%s/*.policy", dir) > 0);
        assert_true(asprintf(&examples, "%s/examples/*.policy", dir) > 0);
        assert_int_equal(glob(pattern, 0, NULL, &g), 0);
        assert_int_equal(glob(examples, GLOB_APPEND, NULL, &g), 0);
        assert_true(g.gl_pathc >= 2);
        for (size_t i = 0; i < g.gl_pathc; i++)
                golden_policy(g.gl_pathv[i]);
        globfree(&g);
}

/* ---- Shape ------------------------------------------------------------- */

static void test_isolate_shape(void **state)
{
        struct ks_policy *p = parse(
                "[Uplinks]\nInterface=wan0 wan1\n"
                "[Gateway phone]\nAddress=203.0.113.5\nPorts=udp:5060 tcp:5061 udp:10000-20000\n"
                "[Gateway web]\nAddress=192.0.2.0/24\n");
        _cleanup_free_ char *t = text_of(p);

        assert_non_null(strstr(t, "table inet killswitch {\n\tcounter t/gw_phone {\n\t\tpackets 0 bytes 0\n\t}\n"));
        assert_non_null(strstr(t, "\tcounter t/dropped_in {"));
        assert_non_null(strstr(t, "\tcounter t/dropped_out {"));
        assert_non_null(strstr(t, "\tset t/uplinks {\n\t\ttype ifname\n\t\telements = { \"wan0\",\n\t\t\t     \"wan1\" }\n"));
        /* Exact entries in a hash set, listed in nft's order (the port's low byte first); the range apart. */
        assert_non_null(strstr(t,
                "\tset t/gw_phone_v4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n"
                "\t\telements = { 203.0.113.5 . udp . 5060,\n"
                "\t\t\t     203.0.113.5 . tcp . 5061 }\n\t}\n\n"
                "\tset t/gw_phone_v4r {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\tflags interval\n"
                "\t\telements = { 203.0.113.5 . udp . 10000-20000 }\n"));
        assert_null(strstr(t, "gw_phone_v6"));
        assert_null(strstr(t, "set t/gw_web_v4 "));
        assert_non_null(strstr(t, "\tset t/gw_web_v4r {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
                                  "\t\telements = { 192.0.2.0/24 }\n"));
        assert_non_null(strstr(t, "\tcounter t/dropped_in/wan0 {"));
        assert_non_null(strstr(t, "\tcounter t/dropped_out/wan1 {"));
        /*
         * The gateways with Ports= (their keys carry the protocol: no ICMP error matches them),
         * then the ICMP errors, in front of the first gateway without Ports=, then the link
         * upkeep (only what is addressed to the gateway itself: rare packets, after the rules
         * every kept packet meets), then the counted tail per uplink.
         */
        assert_non_null(strstr(t, "\tchain t/inbound {\n" SOURCE_ROUTE_DROPS("t")
                "\t\tip saddr . meta l4proto . th sport @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tip saddr . meta l4proto . th dport @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tip saddr . meta l4proto . th sport @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tip saddr . meta l4proto . th dport @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tmeta l4proto icmp ct state related jump t/errors_in\n"
                "\t\tmeta l4proto ipv6-icmp ct state related jump t/errors_in\n"
                "\t\tip saddr @t/gw_web_v4r counter name \"t/gw_web\" accept\n"
                "\t\ticmpv6 type 133-137 ip6 hoplimit 255 ip6 daddr ff02::/16 accept\n"
                "\t\ticmpv6 type 133-137 ip6 hoplimit 255 fib daddr type local accept\n"
                "\t\ticmpv6 type mld-listener-query ip6 hoplimit 1 ip6 daddr ff02::/16 accept\n"
                "\t\tip daddr 255.255.255.255 udp sport 67 udp dport 68 accept\n"
                "\t\tmeta nfproto ipv4 udp sport 67 udp dport 68 fib daddr type local accept\n"
                "\t\tip6 daddr fe80::/10 udp sport 547 udp dport 546 fib daddr type local accept\n"
                "\t\tiifname \"wan0\" counter name \"t/dropped_in/wan0\" drop\n"
                "\t\tiifname \"wan1\" counter name \"t/dropped_in/wan1\" drop\n"
                "\t\tcounter name \"t/dropped_in\" drop\n\t}\n\n"));
        /* Reject=tcp (default): TCP reset for TCP, the rest dropped. The whole chain: no link upkeep. */
        assert_non_null(strstr(t, "\tchain t/outbound {\n"
                "\t\tip daddr . meta l4proto . th dport @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tip daddr . meta l4proto . th sport @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tip daddr . meta l4proto . th dport @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tip daddr . meta l4proto . th sport @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tmeta l4proto icmp ct state related jump t/errors_out\n"
                "\t\tmeta l4proto ipv6-icmp ct state related jump t/errors_out\n"
                "\t\tip daddr @t/gw_web_v4r counter name \"t/gw_web\" accept\n"
                DROP_RULES_T
                "\t\toifname \"wan0\" meta l4proto tcp counter name \"t/dropped_out/wan0\" reject with tcp reset\n"
                "\t\toifname \"wan0\" counter name \"t/dropped_out/wan0\" drop\n"
                "\t\toifname \"wan1\" meta l4proto tcp counter name \"t/dropped_out/wan1\" reject with tcp reset\n"
                "\t\toifname \"wan1\" counter name \"t/dropped_out/wan1\" drop\n"
                "\t\tmeta l4proto tcp counter name \"t/dropped_out\" reject with tcp reset\n"
                "\t\tcounter name \"t/dropped_out\" drop\n\t}\n\n"));
        /*
         * ICMP errors, judged by the connection they quote (its conntrack tuples): a version 1
         * gateway's remote end as the original destination (opened here) or source, the port in
         * either role, the protocol the connection's (an error's own is ICMP).
         */
        assert_non_null(strstr(t, "\tchain t/errors_in {\n"
                "\t\tct direction reply ct original ip daddr . ct protocol . ct original proto-dst @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tct direction reply ct original ip daddr . ct protocol . ct original proto-src @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tct direction original ct original ip saddr . ct protocol . ct original proto-src @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tct direction original ct original ip saddr . ct protocol . ct original proto-dst @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"
                "\t\tct direction reply ct original ip daddr . ct protocol . ct original proto-dst @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tct direction reply ct original ip daddr . ct protocol . ct original proto-src @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tct direction original ct original ip saddr . ct protocol . ct original proto-src @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tct direction original ct original ip saddr . ct protocol . ct original proto-dst @t/gw_phone_v4r counter name \"t/gw_phone\" accept\n"
                "\t\tct direction reply ct original ip daddr @t/gw_web_v4r counter name \"t/gw_web\" accept\n"
                "\t\tct direction original ct original ip saddr @t/gw_web_v4r counter name \"t/gw_web\" accept\n"
                "\t}\n\n"
                "\tchain t/errors_out {\n"
                "\t\tct direction original ct original ip daddr . ct protocol . ct original proto-dst @t/gw_phone_v4 counter name \"t/gw_phone\" accept\n"));
        assert_non_null(strstr(t,
                "\t\tct direction original ct original ip daddr @t/gw_web_v4r counter name \"t/gw_web\" accept\n"
                "\t\tct direction reply ct original ip saddr @t/gw_web_v4r counter name \"t/gw_web\" accept\n"
                "\t}\n\n\tchain t/forward {\n"));
        /*
         * Forwarded traffic: never with a source address of this host (a forged one would pass as the
         * reply of a [Service] on the gateway's address), then the same as the gateway's own.
         */
        assert_non_null(strstr(t, "\tchain t/forward {\n"
                "\t\tfib saddr type local counter name \"t/dropped_out\" drop\n"
                "\t\tgoto t/outbound\n\t}\n\n"
                "\tchain t/local_out {\n"));
        /* The gateway's own traffic: its link upkeep, then the same as forwarded traffic. */
        assert_non_null(strstr(t, "\tchain t/local_out {\n"
                "\t\ticmpv6 type 133-137 ip6 hoplimit 255 ip6 daddr ff02::/16 accept\n"
                "\t\ticmpv6 type 133-137 ip6 hoplimit 255 ip6 daddr fe80::/10 accept\n"
                "\t\ticmpv6 type 133-137 meta skuid 0-4294967295 goto t/outbound\n"
                "\t\ticmpv6 type 133-137 ip6 hoplimit 255 accept\n"
                "\t\ticmpv6 type 131-132 ip6 hoplimit 1 ip6 daddr ff02::/16 accept\n"
                "\t\ticmpv6 type mld2-listener-report ip6 hoplimit 1 ip6 daddr ff02::/16 accept\n"
                "\t\tip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n"
                "\t\tip6 daddr ff02::1:2 udp sport 546 udp dport 547 accept\n"
                "\t\tgoto t/outbound\n\t}\n\n"
                "\tchain t/hold {\n"));
        /* The base chains come last, as the kernel lists them after a switch. */
        assert_non_null(strstr(t, "\tchain prerouting {\n"
                                  "\t\ttype filter hook prerouting priority filter; policy accept;\n"
                                  "\t\tiifname @t/uplinks jump t/inbound\n\t}\n\n"
                                  "\tchain forward {\n"
                                  "\t\ttype filter hook forward priority mangle; policy accept;\n"
                                  "\t\toifname @t/uplinks jump t/forward\n\t}\n\n"
                                  "\tchain output {\n"
                                  "\t\ttype filter hook output priority mangle; policy accept;\n"
                                  "\t\toifname @t/uplinks jump t/local_out\n\t}\n}\n"));
        policy_free(p);
}

static void test_bytecode(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n[Gateway g]\nAddress=2001:db8::1\n"
                                    "Ports=tcp:25 tcp:1000-1010\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *dump = NULL;

        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        dump = dump_of(r);
        /* What nft 1.0.6 emits for a hash set: ip6 saddr . meta l4proto . th sport @t/gw_g_v6 counter ... accept */
        assert_non_null(strstr(dump,
                "inet killswitch t/inbound\n"
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
                "  [ meta load l4proto => reg 2 ]\n"
                "  [ payload load 2b @ transport header + 0 => reg 13 ]\n"
                "  [ lookup reg 1 set t/gw_g_v6 ]\n"
                "  [ objref type 1 name t/gw_g ]\n"
                "  [ immediate reg 0 accept ]\n"));
        /*
         * An ICMP error of the gateway's connections, as nft 1.0.6 emits "ct direction reply ct
         * original ip6 daddr . ct original protocol . <port> @set" (no byteorder for the
         * connection's protocol, also for the interval set): the connection the error quotes.
         */
        assert_non_null(strstr(dump,
                "inet killswitch t/errors_in\n"
                "  [ ct load direction => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000001 ]\n"
                "  [ ct load dst_ip6 => reg 1 , dir original ]\n"
                "  [ ct load protocol => reg 2 , dir original ]\n"
                "  [ ct load proto_dst => reg 13 , dir original ]\n"
                "  [ lookup reg 1 set t/gw_g_v6r ]\n"
                "  [ objref type 1 name t/gw_g ]\n"
                "  [ immediate reg 0 accept ]\n"));
        /* and for an interval set, which converts the protocol: ... th sport @t/gw_g_v6r ... */
        assert_non_null(strstr(dump,
                "inet killswitch t/inbound\n"
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
                "  [ meta load l4proto => reg 2 ]\n"
                "  [ byteorder reg 2 = hton(reg 2, 2, 1) ]\n"
                "  [ payload load 2b @ transport header + 0 => reg 13 ]\n"
                "  [ lookup reg 1 set t/gw_g_v6r ]\n"
                "  [ objref type 1 name t/gw_g ]\n"
                "  [ immediate reg 0 accept ]\n"));
        assert_non_null(strstr(dump,
                "inet killswitch prerouting\n"
                "  [ meta load iifname => reg 1 ]\n"
                "  [ lookup reg 1 set t/uplinks ]\n"
                "  [ immediate reg 0 jump -> t/inbound ]\n"));
        assert_non_null(strstr(dump, "t/gw_g_v6 killswitch 0\n"));         /* a hash set */
        assert_non_null(strstr(dump, "t/gw_g_v6r killswitch 84\n"));       /* NFT_SET_INTERVAL | NFT_SET_CONCAT */
        /*
         * What nft 1.0.6 emits for each rule of the link upkeep and the tail (nft --debug=netlink):
         * inbound, only what is addressed to the gateway itself, ...
         */
        assert_non_null(strstr(dump,
                "inet killswitch t/inbound\n"       /* icmpv6 type 133-137 ip6 hoplimit 255 ip6 daddr ff02::/16 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp gte reg 1 0x00000085 ]\n"
                "  [ cmp lte reg 1 0x00000089 ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000000ff ]\n"
                "  [ payload load 2b @ network header + 24 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000002ff ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/inbound\n"       /* icmpv6 type 133-137 ip6 hoplimit 255 fib daddr type local accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp gte reg 1 0x00000085 ]\n"
                "  [ cmp lte reg 1 0x00000089 ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000000ff ]\n"
                "  [ fib daddr type => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/inbound\n"       /* icmpv6 type mld-listener-query ip6 hoplimit 1 ip6 daddr ff02::/16 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000082 ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000001 ]\n"
                "  [ payload load 2b @ network header + 24 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000002ff ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/inbound\n"       /* ip daddr 255.255.255.255 udp sport 67 udp dport 68 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ payload load 4b @ network header + 16 => reg 1 ]\n"
                "  [ cmp eq reg 1 0xffffffff ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000011 ]\n"
                "  [ payload load 4b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x44004300 ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/inbound\n"       /* meta nfproto ipv4 udp sport 67 udp dport 68 fib daddr type local accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000011 ]\n"
                "  [ payload load 4b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x44004300 ]\n"
                "  [ fib daddr type => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/inbound\n"       /* ip6 daddr fe80::/10 udp sport 547 udp dport 546 fib daddr type local accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ payload load 16b @ network header + 24 => reg 1 ]\n"
                "  [ bitwise reg 1 = ( reg 1 & 0x0000c0ff 0x00000000 0x00000000 0x00000000 ) ^ 0x00000000 0x00000000 0x00000000 0x00000000 ]\n"
                "  [ cmp eq reg 1 0x000080fe 0x00000000 0x00000000 0x00000000 ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000011 ]\n"
                "  [ payload load 4b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x22022302 ]\n"
                "  [ fib daddr type => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/inbound\n"));
        assert_non_null(strstr(dump,
                "inet killswitch t/inbound\n"       /* meta l4proto icmp ct state related jump t/errors_in */
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000001 ]\n"
                "  [ ct load state => reg 1 ]\n"
                "  [ bitwise reg 1 = ( reg 1 & 0x00000004 ) ^ 0x00000000 ]\n"
                "  [ cmp neq reg 1 0x00000000 ]\n"
                "  [ immediate reg 0 jump -> t/errors_in ]\n"));
        assert_non_null(strstr(dump,
                "inet killswitch t/inbound\n"       /* iifname "wan0" counter name "t/dropped_in/wan0" drop */
                "  [ meta load iifname => reg 1 ]\n"
                "  [ cmp eq reg 1 0x306e6177 0x00000000 0x00000000 0x00000000 ]\n"
                "  [ objref type 1 name t/dropped_in/wan0 ]\n"
                "  [ immediate reg 0 drop ]\n"
                "inet killswitch t/inbound\n"
                "  [ objref type 1 name t/dropped_in ]\n"
                "  [ immediate reg 0 drop ]\n"));
        /*
         * P/forward, what the gateway forwards (the forward hook only): a source address of this host
         * dropped (nft --debug=netlink of "fib saddr type local counter name ... drop"), then P/outbound.
         */
        assert_non_null(strstr(dump,
                "inet killswitch t/forward\n"
                "  [ fib saddr type => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ objref type 1 name t/dropped_out ]\n"
                "  [ immediate reg 0 drop ]\n"
                "inet killswitch t/forward\n"
                "  [ immediate reg 0 goto -> t/outbound ]\n"
                "inet killswitch t/local_out\n"));
        /* ... and P/local_out, what the gateway sends itself (the output hook only). */
        assert_non_null(strstr(dump,
                "inet killswitch t/local_out\n"       /* icmpv6 type 133-137 ip6 hoplimit 255 ip6 daddr ff02::/16 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp gte reg 1 0x00000085 ]\n"
                "  [ cmp lte reg 1 0x00000089 ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000000ff ]\n"
                "  [ payload load 2b @ network header + 24 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000002ff ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/local_out\n"       /* icmpv6 type 133-137 ip6 hoplimit 255 ip6 daddr fe80::/10 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp gte reg 1 0x00000085 ]\n"
                "  [ cmp lte reg 1 0x00000089 ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000000ff ]\n"
                "  [ payload load 16b @ network header + 24 => reg 1 ]\n"
                "  [ bitwise reg 1 = ( reg 1 & 0x0000c0ff 0x00000000 0x00000000 0x00000000 ) ^ 0x00000000 0x00000000 0x00000000 0x00000000 ]\n"
                "  [ cmp eq reg 1 0x000080fe 0x00000000 0x00000000 0x00000000 ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/local_out\n"       /* icmpv6 type 133-137 meta skuid 0-4294967295 goto t/outbound */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp gte reg 1 0x00000085 ]\n"
                "  [ cmp lte reg 1 0x00000089 ]\n"
                "  [ meta load skuid => reg 1 ]\n"
                "  [ byteorder reg 1 = hton(reg 1, 4, 4) ]\n"
                "  [ cmp gte reg 1 0x00000000 ]\n"
                "  [ cmp lte reg 1 0xffffffff ]\n"
                "  [ immediate reg 0 goto -> t/outbound ]\n"
                "inet killswitch t/local_out\n"       /* icmpv6 type 133-137 ip6 hoplimit 255 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp gte reg 1 0x00000085 ]\n"
                "  [ cmp lte reg 1 0x00000089 ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000000ff ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/local_out\n"       /* icmpv6 type 131-132 ip6 hoplimit 1 ip6 daddr ff02::/16 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp gte reg 1 0x00000083 ]\n"
                "  [ cmp lte reg 1 0x00000084 ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000001 ]\n"
                "  [ payload load 2b @ network header + 24 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000002ff ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/local_out\n"       /* icmpv6 type mld2-listener-report ip6 hoplimit 1 ip6 daddr ff02::/16 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000003a ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000008f ]\n"
                "  [ payload load 1b @ network header + 7 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000001 ]\n"
                "  [ payload load 2b @ network header + 24 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000002ff ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/local_out\n"       /* ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ payload load 4b @ network header + 16 => reg 1 ]\n"
                "  [ cmp eq reg 1 0xffffffff ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000011 ]\n"
                "  [ payload load 4b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x43004400 ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/local_out\n"       /* ip6 daddr ff02::1:2 udp sport 546 udp dport 547 accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x0000000a ]\n"
                "  [ payload load 16b @ network header + 24 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x000002ff 0x00000000 0x00000000 0x02000100 ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000011 ]\n"
                "  [ payload load 4b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x23022202 ]\n"
                "  [ immediate reg 0 accept ]\n"
                "inet killswitch t/local_out\n"       /* goto t/outbound */
                "  [ immediate reg 0 goto -> t/outbound ]\n"));
        /* No link upkeep in P/outbound, which the forward hook reaches. */
        assert_null(strstr(dump, "inet killswitch t/outbound\n  [ meta load nfproto => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000000a ]\n  [ meta load l4proto => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000003a ]\n"));
        assert_non_null(strstr(dump,
                "inet killswitch t/outbound\n"      /* oifname "wan0" meta l4proto tcp counter ... reject with tcp reset */
                "  [ meta load oifname => reg 1 ]\n"
                "  [ cmp eq reg 1 0x306e6177 0x00000000 0x00000000 0x00000000 ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000006 ]\n"
                "  [ objref type 1 name t/dropped_out/wan0 ]\n"
                "  [ reject type 1 code 0 ]\n"));
        ruleset_free(r);
        policy_free(p);

        p = parse("[Policy]\nReject=all\n[Uplinks]\nInterface=wan0\n"
                  "[Gateway g]\nAddress=192.0.2.1\nPorts=tcp:25\nPing=yes\n");
        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        free(dump);
        dump = dump_of(r);
        assert_non_null(strstr(dump,
                "inet killswitch t/outbound\n"      /* oifname "wan0" counter name ... reject with icmpx admin-prohibited */
                "  [ meta load oifname => reg 1 ]\n"
                "  [ cmp eq reg 1 0x306e6177 0x00000000 0x00000000 0x00000000 ]\n"
                "  [ objref type 1 name t/dropped_out/wan0 ]\n"
                "  [ reject type 2 code 3 ]\n"));
        assert_non_null(strstr(dump,
                "inet killswitch t/inbound\n"       /* ip saddr @t/gw_g_ping_v4 icmp type echo-request counter ... accept */
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ payload load 4b @ network header + 12 => reg 1 ]\n"
                "  [ lookup reg 1 set t/gw_g_ping_v4 ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000001 ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000008 ]\n"
                "  [ objref type 1 name t/gw_g ]\n"
                "  [ immediate reg 0 accept ]\n"));
        /* One address: a hash set (flags 0), not an interval set (4, NFT_SET_INTERVAL). */
        assert_non_null(strstr(dump, "t/gw_g_ping_v4 killswitch 0\n"));
        ruleset_free(r);
        policy_free(p);
}

static void test_counter_names(void **state)
{
        char buf[COMPILE_NAME_SIZE], small[8];
        char gw[POLICY_NAME_MAX + 1], pol[POLICY_NAME_MAX + 1];

        assert_int_equal(compile_counter_name(buf, sizeof(buf), "web-proxy", COUNTER_DROPPED_IN), 0);
        assert_string_equal(buf, "web-proxy/dropped_in");
        assert_int_equal(compile_gateway_counter_name(buf, sizeof(buf), "web-proxy", "dns"), 0);
        assert_string_equal(buf, "web-proxy/gw_dns");
        assert_int_equal(compile_counter_name(small, sizeof(small), "web-proxy", COUNTER_DROPPED_OUT), -ENOBUFS);
        assert_int_equal(compile_counter_name(buf, sizeof(buf), "1x", COUNTER_DROPPED_OUT), -EINVAL);
        assert_int_equal(compile_gateway_counter_name(buf, sizeof(buf), NULL, "x"), -EINVAL);
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "web-proxy", COUNTER_DROPPED_IN, "wan0"), 0);
        assert_string_equal(buf, "web-proxy/dropped_in/wan0");
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "p", COUNTER_DROPPED_OUT, "lte.0"), 0);
        assert_string_equal(buf, "p/dropped_out/lte.0");
        assert_int_equal(compile_uplink_counter_name(small, sizeof(small), "p", COUNTER_DROPPED_OUT, "wan0"),
                         -ENOBUFS);
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "p", "dropped", "wan0"), -EINVAL);
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "p", NULL, "wan0"), -EINVAL);
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "p", COUNTER_DROPPED_IN, ""), -EINVAL);
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "p", COUNTER_DROPPED_IN, NULL), -EINVAL);
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "p", COUNTER_DROPPED_IN,
                                                     "abcdefghijklmnop"), -EINVAL);
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), "9p", COUNTER_DROPPED_IN, "wan0"), -EINVAL);
        /* The longest names fit. */
        memset(gw, 'g', POLICY_NAME_MAX);
        gw[POLICY_NAME_MAX] = '\0';
        memset(pol, 'p', POLICY_NAME_MAX);
        pol[POLICY_NAME_MAX] = '\0';
        assert_int_equal(compile_gateway_counter_name(buf, sizeof(buf), pol, gw), 0);
        assert_int_equal(strlen(buf), COMPILE_NAME_MAX - strlen("_ping_v4r"));
        assert_int_equal(compile_uplink_counter_name(buf, sizeof(buf), pol, COUNTER_DROPPED_OUT, "abcdefghijklmno"),
                         0);
        assert_true(strlen(buf) < COMPILE_NAME_MAX);
        assert_int_equal(COMPILE_NAME_MAX, 77);
}

static void test_invalid_arguments(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n");
        struct ks_ruleset *r = NULL;
        char *t = NULL;
        char long_name[300];
        char *name;

        memset(long_name, 'x', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        assert_int_equal(compile_table(NULL, 1, NULL, TABLE, &r), -EINVAL);
        assert_int_equal(compile_table(pp(NULL), 1, NULL, TABLE, &r), -EINVAL);
        assert_int_equal(compile_table(pp(p), 1, NULL, NULL, &r), -EINVAL);
        assert_int_equal(compile_table(pp(p), 1, NULL, long_name, &r), -EINVAL);
        assert_int_equal(compile_table(pp(p), 1, NULL, TABLE, NULL), -EINVAL);
        /* The same policy twice. */
        assert_int_equal(compile_table(pp(p, p), 2, NULL, TABLE, &r), -EINVAL);
        /* Active must be one of the policies. */
        assert_int_equal(compile_table(pp(p), 1, "other", TABLE, &r), -ENOENT);
        assert_int_equal(compile_table(NULL, 0, "t", TABLE, &r), -ENOENT);
        assert_int_equal(compile_table(pp(p), 1, "1x", TABLE, &r), -EINVAL);
        assert_int_equal(compile_hook("1x", TABLE, &r), -EINVAL);
        assert_int_equal(compile_hook("t", NULL, &r), -EINVAL);
        assert_int_equal(compile_hook(NULL, long_name, &r), -EINVAL);
        assert_int_equal(compile_hook(NULL, TABLE, NULL), -EINVAL);
        assert_int_equal(compile_text(p, NULL, &t), -EINVAL);
        assert_int_equal(ruleset_to_batch(NULL, NULL, NULL), -EINVAL);
        assert_int_equal(ruleset_dump(NULL, stdout), -EINVAL);
        assert_null(r);
        assert_null(t);
        assert_null(ruleset_free(NULL));
        /* A name nft would read as a number. */
        name = p->name;
        p->name = (char *)"2x";
        assert_int_equal(compile_table(pp(p), 1, NULL, TABLE, &r), -EINVAL);
        assert_int_equal(compile_text(p, TABLE, &t), -EINVAL);
        p->name = name;
        policy_free(p);

        /* A gateway name longer than the parser allows would make a truncated name. */
        p = parse("[Uplinks]\nInterface=wan0\n[Gateway g]\nAddress=192.0.2.1\n");
        name = p->gateways[0].name;
        p->gateways[0].name = long_name;
        assert_int_equal(compile_table(pp(p), 1, NULL, TABLE, &r), -EINVAL);
        assert_int_equal(compile_text(p, TABLE, &t), -EINVAL);
        p->gateways[0].name = name;
        policy_free(p);
}

/* The longest policy and gateway names make the longest object names. */
static void test_longest_names(void **state)
{
        const char *pol = "Pppppppppppppppppppppppppppppppp", *gw = "gggggggggggggggggggggggggggggggg";
        _cleanup_free_ char *text = NULL, *dump = NULL, *t = NULL, *set = NULL;
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        struct ks_ruleset *r = NULL;

        assert_int_equal(strlen(pol), POLICY_NAME_MAX);
        assert_int_equal(strlen(gw), POLICY_NAME_MAX);
        assert_true(asprintf(&text, "[Uplinks]\nInterface=abcdefghijklmno\n[Gateway %s]\nAddress=192.0.2.1\n"
                             "Ports=tcp:1 tcp:10-20\nPing=yes\n", gw) > 0);
        assert_int_equal(policy_parse_string(text, "x.policy", pol, &p, &d), 0);
        assert_int_equal(compile_table(pp(p), 1, pol, TABLE, &r), 0);
        dump = dump_of(r);
        assert_true(asprintf(&set, "\n%s/gw_%s_ping_v4 " TABLE " ", pol, gw) > 0);
        assert_int_equal(strlen(set) - strlen(" " TABLE " ") - 1, COMPILE_NAME_MAX - 1);
        assert_non_null(strstr(dump, set));
        assert_int_equal(compile_text(p, TABLE, &t), 0);
        free(set);
        assert_true(asprintf(&set, "\tset %s/gw_%s_ping_v4 {\n", pol, gw) > 0);
        assert_non_null(strstr(t, set));
        /* The interval set's name is shorter. */
        free(set);
        assert_true(asprintf(&set, "\n%s/gw_%s_v4r " TABLE " ", pol, gw) > 0);
        assert_true(strlen(set) - strlen(" " TABLE " ") - 1 < COMPILE_NAME_MAX);
        assert_non_null(strstr(dump, set));
        ruleset_free(r);
        policy_free(p);

        /* The longest of all: the Ping= interval set of a connection-matched gateway. */
        free(text);
        free(dump);
        free(set);
        free(t);
        t = NULL;
        assert_true(asprintf(&text, "[Uplinks]\nInterface=abcdefghijklmno\n[Gateway %s]\nAddress=192.0.2.0/24\n"
                             "Ports=tcp:1\nLocal=10.0.0.1\nPing=yes\n", gw) > 0);
        assert_int_equal(policy_parse_string(text, "x.policy", pol, &p, &d), 0);
        assert_int_equal(compile_table(pp(p), 1, pol, TABLE, &r), 0);
        dump = dump_of(r);
        assert_true(asprintf(&set, "\n%s/gw_%s_ping_v4r " TABLE " ", pol, gw) > 0);
        assert_int_equal(strlen(set) - strlen(" " TABLE " ") - 1, COMPILE_NAME_MAX);
        assert_non_null(strstr(dump, set));
        assert_int_equal(compile_text(p, TABLE, &t), 0);
        free(set);
        assert_true(asprintf(&set, "\tset %s/gw_%s_ping_v4r {\n", pol, gw) > 0);
        assert_non_null(strstr(t, set));
        ruleset_free(r);
        policy_free(p);
}


/* ---- Link upkeep, Reject=, Ping=, [Management], host names -------------- */

/*
 * ICMP errors are judged by the connection they quote: a service's (and a connection-matched
 * gateway's) own lookups with the connection's protocol; an entry matched on connections without
 * Ports= has none (its own rules load only tuples, and match its errors already).
 */
static void test_icmp_errors(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n"
                                    "[Gateway all]\nAddress=any\nLocal=10.0.1.2\n"
                                    "[Service s]\nAddress=192.0.2.1\nPorts=tcp:25\n");
        _cleanup_free_ char *t = text_of(p);

        assert_non_null(strstr(t, "\tchain t/errors_in {\n"
                "\t\tct direction original ct original ip daddr . ct protocol . ct original proto-dst @t/svc_s_v4 counter name \"t/svc_s\" accept\n"
                "\t\tct direction original ct reply ip saddr . ct protocol . ct reply proto-src @t/svc_s_v4 counter name \"t/svc_s\" accept\n"
                "\t}\n\n"
                "\tchain t/errors_out {\n"
                "\t\tct direction reply ct original ip daddr . ct protocol . ct original proto-dst @t/svc_s_v4 counter name \"t/svc_s\" accept\n"
                "\t\tct direction reply ct reply ip saddr . ct protocol . ct reply proto-src @t/svc_s_v4 counter name \"t/svc_s\" accept\n"
                "\t}\n"));
        assert_non_null(strstr(t, "\t\tmeta l4proto ipv6-icmp ct state related jump t/errors_out\n"));
        policy_free(p);
}

static void test_options_off(void **state)
{
        struct ks_policy *p = parse("[Policy]\nKeepICMPErrors=no\nReject=none\n"
                                    "[Uplinks]\nInterface=wan0\nKeepNeighborDiscovery=no\nKeepDHCP=no\n"
                                    "[Gateway g]\nAddress=192.0.2.1\n");
        _cleanup_free_ char *t = text_of(p);

        assert_null(strstr(t, "icmpv6 type"));
        assert_null(strstr(t, "udp sport"));
        assert_null(strstr(t, "ct state"));
        assert_null(strstr(t, "errors_"));
        assert_null(strstr(t, "reject"));
        assert_non_null(strstr(t, "\tchain t/inbound {\n" SOURCE_ROUTE_DROPS("t")
                "\t\tip saddr @t/gw_g_v4 counter name \"t/gw_g\" accept\n"
                "\t\tiifname \"wan0\" counter name \"t/dropped_in/wan0\" drop\n"
                "\t\tcounter name \"t/dropped_in\" drop\n\t}\n"));
        assert_non_null(strstr(t, "\tchain t/outbound {\n"
                "\t\tip daddr @t/gw_g_v4 counter name \"t/gw_g\" accept\n"
                DROP_RULES_T
                "\t\toifname \"wan0\" counter name \"t/dropped_out/wan0\" drop\n"
                "\t\tcounter name \"t/dropped_out\" drop\n\t}\n"));
        assert_non_null(strstr(t, "\tchain t/local_out {\n\t\tgoto t/outbound\n\t}\n"));
        policy_free(p);

        /* One at a time. */
        p = parse("[Uplinks]\nInterface=wan0\nKeepDHCP=no\n");
        free(t);
        t = text_of(p);
        assert_non_null(strstr(t, "icmpv6 type 133-137 ip6 hoplimit 255 ip6 daddr ff02::/16 accept"));
        assert_non_null(strstr(t, "icmpv6 type mld2-listener-report"));
        assert_null(strstr(t, "udp sport"));
        assert_non_null(strstr(t, "ct state related"));
        policy_free(p);
        p = parse("[Uplinks]\nInterface=wan0\nKeepNeighborDiscovery=no\n");
        free(t);
        t = text_of(p);
        assert_null(strstr(t, "icmpv6 type"));
        assert_non_null(strstr(t, "\tchain t/local_out {\n"
                "\t\tip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n"
                "\t\tip6 daddr ff02::1:2 udp sport 546 udp dport 547 accept\n"
                "\t\tgoto t/outbound\n\t}\n"));
        policy_free(p);
}

static void test_reject_all(void **state)
{
        struct ks_policy *p = parse("[Policy]\nReject=all\n[Uplinks]\nInterface=wan0 ppp0\n");
        _cleanup_free_ char *t = text_of(p);

        assert_non_null(strstr(t,
                "\t\toifname \"wan0\" meta l4proto tcp counter name \"t/dropped_out/wan0\" reject with tcp reset\n"
                "\t\toifname \"wan0\" counter name \"t/dropped_out/wan0\" reject with icmpx admin-prohibited\n"
                "\t\toifname \"ppp0\" meta l4proto tcp counter name \"t/dropped_out/ppp0\" reject with tcp reset\n"
                "\t\toifname \"ppp0\" counter name \"t/dropped_out/ppp0\" reject with icmpx admin-prohibited\n"
                "\t\tmeta l4proto tcp counter name \"t/dropped_out\" reject with tcp reset\n"
                "\t\tcounter name \"t/dropped_out\" reject with icmpx admin-prohibited\n\t}\n"));
        /* Never answer the internet: inbound only drops. */
        assert_non_null(strstr(t,
                "\t\tiifname \"wan0\" counter name \"t/dropped_in/wan0\" drop\n"
                "\t\tiifname \"ppp0\" counter name \"t/dropped_in/ppp0\" drop\n"
                "\t\tcounter name \"t/dropped_in\" drop\n\t}\n"));
        policy_free(p);
}

static void test_ping_and_management(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n"
                                    "[Gateway all]\nAddress=192.0.2.1\nPing=yes\n"
                                    "[Gateway mail]\nAddress=192.0.2.25 2001:db8::25\nPorts=tcp:25\nPing=yes\n"
                                    "[Management]\nAddress=198.51.100.7\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *t = text_of(p), *dump = NULL;

        /* Without Ports= the address set already keeps ICMP: no ping set. */
        assert_null(strstr(t, "gw_all_ping"));
        assert_non_null(strstr(t, "\tset t/gw_mail_ping_v4 {\n\t\ttype ipv4_addr\n"
                                  "\t\telements = { 192.0.2.25 }\n\t}\n\n"
                                  "\tset t/gw_mail_ping_v6 {\n\t\ttype ipv6_addr\n"
                                  "\t\telements = { 2001:db8::25 }\n\t}\n"));
        assert_non_null(strstr(t,
                "\t\tip6 saddr . meta l4proto . th dport @t/gw_mail_v6 counter name \"t/gw_mail\" accept\n"
                "\t\tip saddr @t/gw_mail_ping_v4 icmp type echo-request counter name \"t/gw_mail\" accept\n"
                "\t\tip saddr @t/gw_mail_ping_v4 icmp type echo-reply counter name \"t/gw_mail\" accept\n"
                "\t\tip6 saddr @t/gw_mail_ping_v6 icmpv6 type echo-request counter name \"t/gw_mail\" accept\n"
                "\t\tip6 saddr @t/gw_mail_ping_v6 icmpv6 type echo-reply counter name \"t/gw_mail\" accept\n"));
        assert_non_null(strstr(t,
                "\t\tip6 daddr @t/gw_mail_ping_v6 icmpv6 type echo-reply counter name \"t/gw_mail\" accept\n"));
        /* [Management] is the gateway "management", SSH by default, no ping unless asked. */
        assert_non_null(strstr(t, "\tcounter t/gw_management {"));
        assert_non_null(strstr(t, "\t\telements = { 198.51.100.7 . tcp . 22 }\n"));
        assert_non_null(strstr(t,
                "\t\tip saddr . meta l4proto . th sport @t/gw_management_v4 counter name \"t/gw_management\" accept\n"));
        assert_null(strstr(t, "gw_management_ping"));
        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        dump = dump_of(r);
        /* Single addresses: a hash set, one element each (an interval set would hold 3). */
        assert_int_equal(count_elements(dump, "t/gw_mail_ping_v4"), 1);
        assert_int_equal(count_elements(dump, "t/gw_mail_ping_v6"), 1);
        ruleset_free(r);
        policy_free(p);
}

/*
 * Ping= of a connection-matched gateway keeps echo as its connections: only
 * with the Local= hosts (the conntrack original tuple, through masquerade), a
 * request only from the side that may open, and no other ICMP type.
 */
static void test_conn_ping(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n"
                                    "[Gateway relay]\nAddress=203.0.113.25 198.51.100.0/24 2001:db8:25::25\n"
                                    "Ports=tcp:25\nLocal=10.0.1.10\nDirection=out\nPing=yes\n"
                                    "[Gateway partner]\nAddress=192.0.2.7\nPorts=tcp:22\nDirection=in\nPing=yes\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *t = text_of(p), *dump = NULL;

        /* Exact pairs in a hash set, prefixes in an interval set; Local= has no IPv6: no v6 ping set. */
        assert_non_null(strstr(t, "\tset t/gw_relay_ping_v4 {\n\t\ttype ipv4_addr . ipv4_addr\n"
                                  "\t\telements = { 203.0.113.25 . 10.0.1.10 }\n\t}\n\n"
                                  "\tset t/gw_relay_ping_v4r {\n\t\ttype ipv4_addr . ipv4_addr\n\t\tflags interval\n"
                                  "\t\telements = { 198.51.100.0/24 . 10.0.1.10 }\n\t}\n"));
        assert_null(strstr(t, "gw_relay_ping_v6"));
        /* Direction=out: our echo requests go out, the relay's replies come in; nothing else. */
        assert_non_null(strstr(t,
                "\t\tct direction reply ct original ip daddr . ct original ip saddr @t/gw_relay_ping_v4 "
                "icmp type echo-reply counter name \"t/gw_relay\" accept\n"
                "\t\tct direction reply ct original ip daddr . ct original ip saddr @t/gw_relay_ping_v4r "
                "icmp type echo-reply counter name \"t/gw_relay\" accept\n"));
        assert_non_null(strstr(t,
                "\t\tct direction original ct original ip daddr . ct original ip saddr @t/gw_relay_ping_v4 "
                "icmp type echo-request counter name \"t/gw_relay\" accept\n"));
        assert_null(strstr(t, "ct direction original ct original ip saddr . ct reply ip saddr @t/gw_relay_ping"));
        assert_null(strstr(t, "meta l4proto icmp counter"));
        /* Without Local=: keyed on the peer alone, a hash set; Direction=in: the partner asks, we answer. */
        assert_non_null(strstr(t, "\tset t/gw_partner_ping_v4 {\n\t\ttype ipv4_addr\n"
                                  "\t\telements = { 192.0.2.7 }\n\t}\n"));
        assert_non_null(strstr(t,
                "\t\tct direction original ct original ip saddr @t/gw_partner_ping_v4 "
                "icmp type echo-request counter name \"t/gw_partner\" accept\n"));
        assert_non_null(strstr(t,
                "\t\tct direction reply ct original ip saddr @t/gw_partner_ping_v4 "
                "icmp type echo-reply counter name \"t/gw_partner\" accept\n"));
        assert_null(strstr(t, "ct original ip daddr @t/gw_partner_ping"));

        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        dump = dump_of(r);
        assert_non_null(strstr(dump, "\nt/gw_relay_ping_v4 killswitch 0\n"));       /* a hash set */
        assert_non_null(strstr(dump, "\nt/gw_relay_ping_v4r killswitch 84\n"));     /* interval, concat */
        assert_int_equal(count_elements(dump, "t/gw_relay_ping_v4"), 1);
        assert_non_null(strstr(dump,
                "inet killswitch t/outbound\n"
                "  [ ct load direction => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000000 ]\n"
                "  [ ct load dst_ip => reg 1 , dir original ]\n"
                "  [ ct load src_ip => reg 9 , dir original ]\n"
                "  [ lookup reg 1 set t/gw_relay_ping_v4 ]\n"
                "  [ meta load nfproto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000002 ]\n"
                "  [ meta load l4proto => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000001 ]\n"
                "  [ payload load 1b @ transport header + 0 => reg 1 ]\n"
                "  [ cmp eq reg 1 0x00000008 ]\n"
                "  [ objref type 1 name t/gw_relay ]\n"
                "  [ immediate reg 0 accept ]\n"));
        ruleset_free(r);
        policy_free(p);
}

static int fake_resolver(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata)
{
        struct ks_prefix *v = calloc(2, sizeof(*v));

        assert_non_null(v);
        v[0] = (struct ks_prefix) { .family = AF_INET, .addr = { 203, 0, 113, 9 }, .len = 32 };
        v[1] = (struct ks_prefix) { .family = AF_INET6, .addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9 }, .len = 128 };
        *ret = v;
        *ret_n = 2;
        return 0;
}

static void test_hostnames_pinned(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n"
                                    "[Gateway mail]\nAddress=mail.example.org 203.0.113.10\nPorts=tcp:25\n");
        struct ks_ruleset *r = NULL;
        struct ks_diags d = {};
        char *t = NULL;

        /* Not resolved yet: refused, never compiled without the name's addresses. */
        assert_int_equal(compile_table(pp(p), 1, NULL, TABLE, &r), -EINVAL);
        assert_int_equal(compile_text(p, TABLE, &t), -EINVAL);
        assert_null(r);
        assert_null(t);
        assert_int_equal(policy_resolve(p, fake_resolver, NULL, &d), 0);
        assert_int_equal(compile_table(pp(p), 1, NULL, TABLE, &r), 0);
        t = text_of(p);
        /* Merged with the numeric address: 203.0.113.9 and .10 are adjacent. */
        assert_non_null(strstr(t, "\t\telements = { 203.0.113.9-203.0.113.10 . tcp . 25 }\n"));
        assert_non_null(strstr(t, "\t\telements = { 2001:db8::9 . tcp . 25 }\n"));
        free(t);
        ruleset_free(r);
        policy_free(p);
}

/* ---- Normalisation ----------------------------------------------------- */

static void test_merge_overlaps(void **state)
{
        struct ks_policy *p = parse(
                "[Uplinks]\nInterface=wan0\n"
                "[Gateway m]\n"
                "Address=10.0.0.0/24 10.0.0.128/25 10.0.1.0/24 10.0.0.5 192.0.2.2 192.0.2.1\n"
                "Address=2001:db8:8000::/33 2001:db8::/33 ::1 2001:db8::1\n"
                "Ports=tcp:15-30 tcp:10-20 tcp:31 udp:53 udp:53 sctp:1-5 tcp:40\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *t = text_of(p), *dump = NULL;

        assert_non_null(strstr(t,
                "\t\telements = { 10.0.0.0/23 . tcp . 10-31,\n"
                "\t\t\t     10.0.0.0/23 . tcp . 40,\n"
                "\t\t\t     10.0.0.0/23 . udp . 53,\n"
                "\t\t\t     10.0.0.0/23 . sctp . 1-5,\n"
                "\t\t\t     192.0.2.1-192.0.2.2 . tcp . 10-31,\n"
                "\t\t\t     192.0.2.1-192.0.2.2 . tcp . 40,\n"
                "\t\t\t     192.0.2.1-192.0.2.2 . udp . 53,\n"
                "\t\t\t     192.0.2.1-192.0.2.2 . sctp . 1-5 }\n"));
        /* Merged first, then split: ::1 with a single port is exact. */
        assert_non_null(strstr(t,
                "\tset t/gw_m_v6 {\n\t\ttype ipv6_addr . inet_proto . inet_service\n"
                "\t\telements = { ::1 . tcp . 40,\n"
                "\t\t\t     ::1 . udp . 53 }\n"));
        assert_non_null(strstr(t,
                "\t\telements = { ::1 . tcp . 10-31,\n"
                "\t\t\t     ::1 . sctp . 1-5,\n"
                "\t\t\t     2001:db8::/32 . tcp . 10-31,\n"));
        assert_null(strstr(t, "set t/gw_m_v4 "));
        assert_int_equal(compile_table(pp(p), 1, NULL, TABLE, &r), 0);
        dump = dump_of(r);
        assert_int_equal(count_elements(dump, "t/gw_m_v4r"), 2 * 4);
        assert_int_equal(count_elements(dump, "t/gw_m_v6"), 2);
        assert_int_equal(count_elements(dump, "t/gw_m_v6r"), 2 + 4);
        ruleset_free(r);
        policy_free(p);
}

static void test_interval_elements(void **state)
{
        struct ks_policy *p = parse(
                "[Uplinks]\nInterface=wan0 wan1 wan0\n"
                "[Gateway a]\nAddress=10.0.0.0/8 10.1.0.0/16 192.0.2.1 192.0.2.3\n"
                "[Gateway all]\nAddress=0.0.0.0/0 ::/0\n"
                "[Gateway top]\nAddress=255.255.255.0/24 ffff::/16 ::/120\n"
                "[Gateway end]\nAddress=255.255.255.255 ::\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *t = text_of(p), *dump = NULL;

        assert_int_equal(compile_table(pp(p), 1, NULL, TABLE, &r), 0);
        dump = dump_of(r);
        assert_int_equal(count_elements(dump, "t/uplinks"), 2);
        /* The single addresses in the hash set; in the interval set a leading end at 0, start, end. */
        assert_int_equal(count_elements(dump, "t/gw_a_v4"), 2);
        assert_int_equal(count_elements(dump, "t/gw_a_v4r"), 1 + 2);
        assert_non_null(strstr(t, "\tset t/gw_a_v4 {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.1, 192.0.2.3 }"));
        assert_non_null(strstr(t, "\tset t/gw_a_v4r {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
                                  "\t\telements = { 10.0.0.0/8 }"));
        /* The whole space: one open start element, nothing before it. */
        assert_int_equal(count_elements(dump, "t/gw_all_v4r"), 1);
        assert_int_equal(count_elements(dump, "t/gw_all_v6r"), 1);
        assert_non_null(strstr(t, "elements = { 0.0.0.0/0 }"));
        assert_non_null(strstr(t, "elements = { ::/0 }"));
        /* Up to the last address: a leading end, no end element, marked open in the element's user data. */
        assert_int_equal(count_elements(dump, "t/gw_top_v4r"), 2);
        assert_non_null(strstr(dump, "element 00ffffff  : 0 [end]  userdata = { \\x01\\x04\\x01\\x00\\x00\\x00 }"));
        /* ::/120 starts at 0 (no leading end), then its end, then the open ffff::/16. */
        assert_int_equal(count_elements(dump, "t/gw_top_v6r"), 3);
        assert_non_null(strstr(t, "elements = { ::/120,\n\t\t\t     ffff::/16 }"));
        /* The first and the last address alone are exact: one element each, no interval. */
        assert_int_equal(count_elements(dump, "t/gw_end_v4"), 1);
        assert_int_equal(count_elements(dump, "t/gw_end_v6"), 1);
        assert_null(strstr(t, "gw_end_v4r"));
        assert_null(strstr(t, "gw_end_v6r"));
        assert_non_null(strstr(t, "\tset t/gw_end_v4 {\n\t\ttype ipv4_addr\n\t\telements = { 255.255.255.255 }"));
        assert_non_null(strstr(t, "\tset t/gw_end_v6 {\n\t\ttype ipv6_addr\n\t\telements = { :: }"));
        ruleset_free(r);
        policy_free(p);
}

/* ---- The split: exact entries in hash sets, ranges in interval sets ----- */

/* The element count of set `name` as ruleset_summarize() means it (what the read-back compares); -1 if absent. */
static long summary_elems(const struct ks_ruleset *r, const char *name)
{
        struct ks_summary s = {};
        struct summary_set *st;
        long n;

        assert_int_equal(ruleset_summarize(r, &s), 0);
        st = summary_set(&s, name, false);
        n = st ? (long)st->elems : -1;
        summary_clear(&s);
        return n;
}

static void test_split_kinds(void **state)
{
        struct ks_policy *p = parse(
                "[Uplinks]\nInterface=wan0\n"
                "[Gateway exact]\nAddress=192.0.2.9 192.0.2.1 2001:db8::1 198.51.100.7/32\n"
                "Ports=tcp:25 udp:53 tcp:80-80\n"
                "[Gateway range]\nAddress=10.0.0.0/8 2001:db8:1::/48\nPorts=tcp:1000-2000\n"
                "[Gateway mixed]\nAddress=192.0.2.100 10.0.0.0/8\nPorts=tcp:25 tcp:1000-2000\n"
                "[Gateway addr]\nAddress=192.0.2.1 192.0.2.2 192.0.2.5 10.0.0.0/8 2001:db8::/64\n"
                "[Gateway single]\nAddress=192.0.2.50\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *t = text_of(p), *dump = NULL;

        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        dump = dump_of(r);

        /* Exact only (a /32 and a range of one port are exact too): hash sets, no interval set. */
        assert_null(strstr(t, "gw_exact_v4r"));
        assert_null(strstr(t, "gw_exact_v6r"));
        assert_non_null(strstr(dump, "\nt/gw_exact_v4 killswitch 0\n"));
        assert_non_null(strstr(dump, "\nt/gw_exact_v6 killswitch 0\n"));
        assert_int_equal(count_elements(dump, "t/gw_exact_v4"), 3 * 3);
        assert_int_equal(summary_elems(r, "t/gw_exact_v4"), 3 * 3);
        assert_int_equal(summary_elems(r, "t/gw_exact_v6"), 3);
        assert_int_equal(summary_elems(r, "t/gw_exact_v4r"), -1);
        assert_non_null(strstr(t,
                "\tset t/gw_exact_v6 {\n\t\ttype ipv6_addr . inet_proto . inet_service\n"
                "\t\telements = { 2001:db8::1 . tcp . 25,\n"
                "\t\t\t     2001:db8::1 . udp . 53,\n"
                "\t\t\t     2001:db8::1 . tcp . 80 }\n\t}\n"));
        /*
         * The hash sets' rules for connections opened from this side (inbound: the gateway's port
         * as the source) of the gateways with Ports= in front of the ICMP-error jumps come first,
         * after the services: a kept flow of the last gateway misses in one lookup per gateway
         * before it, not two. Then every gateway's other rules, in file order.
         */
        assert_non_null(strstr(t, "\tchain t/inbound {\n" SOURCE_ROUTE_DROPS("t")
                "\t\tip saddr . meta l4proto . th sport @t/gw_exact_v4 counter name \"t/gw_exact\" accept\n"
                "\t\tip6 saddr . meta l4proto . th sport @t/gw_exact_v6 counter name \"t/gw_exact\" accept\n"
                "\t\tip saddr . meta l4proto . th sport @t/gw_mixed_v4 counter name \"t/gw_mixed\" accept\n"
                "\t\tip saddr . meta l4proto . th dport @t/gw_exact_v4 counter name \"t/gw_exact\" accept\n"
                "\t\tip6 saddr . meta l4proto . th dport @t/gw_exact_v6 counter name \"t/gw_exact\" accept\n"
                "\t\tip saddr . meta l4proto . th sport @t/gw_range_v4r"));

        /* Ranges only: interval sets, no hash set. */
        assert_null(strstr(t, "gw_range_v4 "));
        assert_null(strstr(t, "gw_range_v6 "));
        assert_null(strstr(dump, "\nt/gw_range_v4 "));
        assert_non_null(strstr(dump, "\nt/gw_range_v4r killswitch 84\n"));
        assert_int_equal(summary_elems(r, "t/gw_range_v4r"), 1);
        assert_int_equal(summary_elems(r, "t/gw_range_v6r"), 1);
        assert_int_equal(summary_elems(r, "t/gw_range_v4"), -1);

        /* Mixed: the exact entry in the hash set, every entry with a prefix or a port range in the other. */
        assert_non_null(strstr(t,
                "\tset t/gw_mixed_v4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n"
                "\t\telements = { 192.0.2.100 . tcp . 25 }\n\t}\n\n"
                "\tset t/gw_mixed_v4r {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\tflags interval\n"
                "\t\telements = { 10.0.0.0/8 . tcp . 25,\n"
                "\t\t\t     10.0.0.0/8 . tcp . 1000-2000,\n"
                "\t\t\t     192.0.2.100 . tcp . 1000-2000 }\n\t}\n"));
        assert_int_equal(summary_elems(r, "t/gw_mixed_v4"), 1);
        assert_int_equal(summary_elems(r, "t/gw_mixed_v4r"), 3);
        assert_null(strstr(t, "gw_mixed_v6"));
        /* Its head rule hoisted (above), then the hash set's other rule, the interval set's pair; one counter. */
        assert_non_null(strstr(t,
                "\t\tip daddr . meta l4proto . th dport @t/gw_mixed_v4 counter name \"t/gw_mixed\" accept\n"
                "\t\tip daddr . meta l4proto . th sport @t/gw_exact_v4 counter name \"t/gw_exact\" accept\n"));
        assert_non_null(strstr(t,
                "\t\tip daddr . meta l4proto . th sport @t/gw_mixed_v4 counter name \"t/gw_mixed\" accept\n"
                "\t\tip daddr . meta l4proto . th dport @t/gw_mixed_v4r counter name \"t/gw_mixed\" accept\n"
                "\t\tip daddr . meta l4proto . th sport @t/gw_mixed_v4r counter name \"t/gw_mixed\" accept\n"
                "\t\tmeta l4proto icmp ct state related jump t/errors_out\n"));

        /* Without Ports=: adjacent addresses merge into a range first; the rbtree counts its ends. */
        assert_non_null(strstr(t, "\tset t/gw_addr_v4 {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.5 }\n"));
        assert_non_null(strstr(t, "\tset t/gw_addr_v4r {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
                                  "\t\telements = { 10.0.0.0/8, 192.0.2.1-192.0.2.2 }\n"));
        assert_non_null(strstr(dump, "\nt/gw_addr_v4 killswitch 0\n"));
        assert_non_null(strstr(dump, "\nt/gw_addr_v4r killswitch 4\n"));
        assert_int_equal(summary_elems(r, "t/gw_addr_v4"), 1);
        assert_int_equal(summary_elems(r, "t/gw_addr_v4r"), 1 + 2 * 2);
        assert_int_equal(summary_elems(r, "t/gw_addr_v6r"), 1 + 2);
        assert_int_equal(summary_elems(r, "t/gw_addr_v6"), -1);
        assert_non_null(strstr(t,
                "\t\tip saddr @t/gw_addr_v4 counter name \"t/gw_addr\" accept\n"
                "\t\tip saddr @t/gw_addr_v4r counter name \"t/gw_addr\" accept\n"
                "\t\tip6 saddr @t/gw_addr_v6r counter name \"t/gw_addr\" accept\n"
                "\t\tip saddr @t/gw_single_v4 counter name \"t/gw_single\" accept\n"));
        assert_int_equal(summary_elems(r, "t/gw_single_v4"), 1);
        assert_null(strstr(t, "gw_single_v4r"));
        ruleset_free(r);
        policy_free(p);
}

/* ---- Batch ------------------------------------------------------------- */

struct msg_info {
        uint16_t type, flags;
        bool hook;              /* NFTA_CHAIN_HOOK */
        size_t n_attrs;
        char name[COMPILE_NAME_SIZE];   /* chain of a chain or rule message */
        char target[COMPILE_NAME_SIZE]; /* a rule's jump target, if any */
};

struct batch_stats {
        size_t msgs, newsetelem, elements, max_len;
        struct msg_info *info;  /* the first max_info messages */
        size_t max_info;
};

/* Elements in one NEWSETELEM message: the entries of its NFTA_SET_ELEM_LIST_ELEMENTS nest. */
static size_t msg_elements(const struct nlmsghdr *nlh)
{
        const struct nlattr *a, *e;
        size_t n = 0;

        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
                        continue;
                mnl_attr_for_each_nested(e, a)
                        n++;
        }
        return n;
}

/* The chain name of a jump in a rule's expressions, if any. */
static void rule_jump_target(const struct nlattr *exprs, char *buf, size_t size)
{
        const struct nlattr *e, *a, *d, *v, *c;

        mnl_attr_for_each_nested(e, exprs)
                mnl_attr_for_each_nested(a, e) {
                        if (mnl_attr_get_type(a) != NFTA_EXPR_DATA)
                                continue;
                        mnl_attr_for_each_nested(d, a) {
                                if (mnl_attr_get_type(d) != NFTA_IMMEDIATE_DATA)
                                        continue;
                                mnl_attr_for_each_nested(v, d) {
                                        if (mnl_attr_get_type(v) != NFTA_DATA_VERDICT)
                                                continue;
                                        mnl_attr_for_each_nested(c, v)
                                                if (mnl_attr_get_type(c) == NFTA_VERDICT_CHAIN)
                                                        snprintf(buf, size, "%s", mnl_attr_get_str(c));
                                }
                        }
                }
}

static void msg_info_of(const struct nlmsghdr *nlh, struct msg_info *mi)
{
        const struct nlattr *a;
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);

        memset(mi, 0, sizeof(*mi));
        mi->type = type;
        mi->flags = nlh->nlmsg_flags;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                uint16_t t = mnl_attr_get_type(a);

                mi->n_attrs++;
                if ((type == NFT_MSG_NEWCHAIN || type == NFT_MSG_DELCHAIN) && t == NFTA_CHAIN_HOOK)
                        mi->hook = true;
                else if ((type == NFT_MSG_NEWCHAIN || type == NFT_MSG_DELCHAIN) && t == NFTA_CHAIN_NAME)
                        snprintf(mi->name, sizeof(mi->name), "%s", mnl_attr_get_str(a));
                else if ((type == NFT_MSG_NEWRULE || type == NFT_MSG_DELRULE) && t == NFTA_RULE_CHAIN)
                        snprintf(mi->name, sizeof(mi->name), "%s", mnl_attr_get_str(a));
                else if (type == NFT_MSG_NEWRULE && t == NFTA_RULE_EXPRESSIONS)
                        rule_jump_target(a, mi->target, sizeof(mi->target));
        }
}

static void check_msg(const struct nlmsghdr *nlh, uint32_t seq, struct batch_stats *st)
{
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);

        assert_int_equal(NFNL_SUBSYS_ID(nlh->nlmsg_type), NFNL_SUBSYS_NFTABLES);
        assert_int_equal(nlh->nlmsg_seq, seq);
        assert_true(nlh->nlmsg_flags & NLM_F_ACK);
        assert_true(nlh->nlmsg_flags & NLM_F_REQUEST);
        switch (type) {
        case NFT_MSG_DELRULE:
        case NFT_MSG_DELCHAIN:
        case NFT_MSG_DELSETELEM:        /* a flush (compile_links_hook) */
                assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
                break;
        case NFT_MSG_NEWRULE:
                assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND);
                break;
        default:
                assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        }
        if (type == NFT_MSG_NEWSETELEM) {
                st->newsetelem++;
                st->elements += msg_elements(nlh);
        }
        if (st->msgs < st->max_info)
                msg_info_of(nlh, &st->info[st->msgs]);
        if (nlh->nlmsg_len > st->max_len)
                st->max_len = nlh->nlmsg_len;
        st->msgs++;
}

/* Check every message of b (from sequence number first_seq on) into st. */
static void batch_walk(struct nftnl_batch *b, uint32_t first_seq, struct batch_stats *st)
{
        int n = nftnl_batch_iovec_len(b);
        struct iovec iov[n];

        nftnl_batch_iovec(b, iov, (uint32_t)n);
        for (int i = 0; i < n; i++) {
                int len = (int)iov[i].iov_len;

                for (const struct nlmsghdr *nlh = iov[i].iov_base; mnl_nlmsg_ok(nlh, len);
                     nlh = mnl_nlmsg_next(nlh, &len))
                        check_msg(nlh, first_seq + (uint32_t)st->msgs, st);
                assert_int_equal(len, 0);
        }
}

static struct batch_stats batch_info(const struct ks_ruleset *r, uint32_t first_seq, struct msg_info *info,
                                     size_t max_info)
{
        struct nftnl_batch *b = nftnl_batch_alloc(32 * 4096, RULESET_BATCH_OVERRUN);
        struct batch_stats st = { .info = info, .max_info = max_info };
        uint32_t seq = first_seq;

        assert_non_null(b);
        assert_int_equal(ruleset_to_batch(r, b, &seq), 0);
        batch_walk(b, first_seq, &st);
        assert_int_equal(seq, first_seq + st.msgs);
        nftnl_batch_free(b);
        return st;
}

static struct batch_stats batch_of(const struct ks_ruleset *r, uint32_t first_seq)
{
        return batch_info(r, first_seq, NULL, 0);
}

static void test_batch_small(void **state)
{
        struct ks_policy *p = parse(
                "[Uplinks]\nInterface=wan0 wan1\n"
                "[Gateway phone]\nAddress=203.0.113.5\nPorts=udp:5060 tcp:5061 udp:10000-20000\n"
                "[Gateway mail]\nAddress=203.0.113.25 2001:db8:25::25\nPorts=tcp:25 tcp:465 tcp:587 tcp:993\n");
        struct ks_ruleset *r = NULL;
        struct msg_info mi[160];
        struct batch_stats st;

        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        st = batch_info(r, 100, mi, ELEMENTSOF(mi));
        /*
         * table, 2 + 2 + 2 * 2 counters, 5 sets (uplinks, phone's exact and range sets, mail's
         * two families) with one element message each, 7 chains (inbound, outbound, errors_in,
         * errors_out, forward, local_out, hold), rules: inbound 3 source-route drops and 6 of link
         * upkeep, outbound none; 2 of
         * ICMP errors and 4 * 2 of the gateways (two per set) in each; then the tail: inbound 2 + 1,
         * outbound (Reject=tcp) 2 * (2 + 1); errors_in and errors_out 4 * 4 each (four per set);
         * forward's local-source drop and its goto; local_out 8 of link upkeep and its goto; hold's
         * drop; 3 base chains + 3 rules.
         * The drop sensor: its overflow counter, 8 sets without elements (4 and their _first twins), 12 rules before the
         * outbound tail.
         */
        assert_int_equal(st.msgs, 1 + 8 + 5 * 2 + 7 + (3 + 6 + 2 + 8 + 3) + (2 + 8 + 6) + 2 * 16 + 2 + (8 + 1) + 1 + 3 +
                         3 + 1 + 8 + 12);
        assert_int_equal(st.newsetelem, 5);
        assert_int_equal(st.elements, 2 + 2 + 1 + 4 + 4);
        assert_int_equal(mi[0].type, NFT_MSG_NEWTABLE);
        for (size_t i = 1; i <= 9; i++)
                assert_int_equal(mi[i].type, NFT_MSG_NEWOBJ);
        for (size_t i = 20; i < 28; i++)
                assert_int_equal(mi[i].type, NFT_MSG_NEWSET);  /* the drop sensor's, after the gateways' */
        assert_int_equal(mi[28].type, NFT_MSG_NEWCHAIN);
        assert_string_equal(mi[28].name, "t/inbound");
        assert_false(mi[28].hook);
        assert_int_equal(mi[st.msgs - 6].type, NFT_MSG_NEWCHAIN);
        assert_string_equal(mi[st.msgs - 6].name, "prerouting");
        assert_true(mi[st.msgs - 6].hook);
        ruleset_free(r);
        policy_free(p);
}

/* Three policies staged; the message types of the whole table in order, and what is hooked. */
static void check_table(struct ks_policy *const *ps, size_t n, const char *active, size_t *ret_msgs,
                        char **ret_dump)
{
        struct ks_ruleset *r = NULL;
        struct msg_info mi[256];
        struct batch_stats st;
        size_t base = 0, chains = 0;

        assert_int_equal(compile_table((const struct ks_policy *const *)ps, n, active, TABLE, &r), 0);
        st = batch_info(r, 1, mi, ELEMENTSOF(mi));
        assert_true(st.msgs <= ELEMENTSOF(mi));
        assert_int_equal(mi[0].type, NFT_MSG_NEWTABLE);
        for (size_t i = 0; i < st.msgs; i++) {
                assert_true(mi[i].type != NFT_MSG_DELRULE && mi[i].type != NFT_MSG_DELCHAIN);
                if (mi[i].type != NFT_MSG_NEWCHAIN)
                        continue;
                chains++;
                if (mi[i].hook)
                        base++;
                else
                        assert_non_null(strchr(mi[i].name, '/'));
        }
        /* P/inbound, P/outbound, P/errors_in, P/errors_out, P/forward, P/local_out, P/hold */
        assert_int_equal(chains, 7 * n + base);
        if (!active) {
                assert_int_equal(base, 0);
        } else {
                static const char *const names[] = { CHAIN_PREROUTING, CHAIN_FORWARD, CHAIN_OUTPUT };
                _cleanup_free_ char *in = NULL, *out = NULL, *local = NULL;

                assert_true(asprintf(&in, "%s/inbound", active) > 0);
                assert_true(asprintf(&out, "%s/forward", active) > 0);
                assert_true(asprintf(&local, "%s/local_out", active) > 0);
                assert_int_equal(base, 3);
                /* The last six: per base chain, NEWCHAIN and its jump. */
                for (size_t c = 0; c < 3; c++) {
                        const struct msg_info *m = &mi[st.msgs - 6 + 2 * c];

                        assert_int_equal(m[0].type, NFT_MSG_NEWCHAIN);
                        assert_string_equal(m[0].name, names[c]);
                        assert_int_equal(m[1].type, NFT_MSG_NEWRULE);
                        assert_string_equal(m[1].name, names[c]);
                        assert_string_equal(m[1].target, c == 0 ? in : c == 1 ? out : local);
                }
        }
        *ret_msgs = st.msgs;
        *ret_dump = dump_of(r);
        ruleset_free(r);
}

static struct ks_policy *parse_named(const char *text, const char *name)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;

        assert_int_equal(policy_parse_string(text, "t.policy", name, &p, &d), 0);
        return p;
}

static void test_table_many(void **state)
{
        struct ks_policy *ps[3] = {
                parse_named("[Uplinks]\nInterface=wan0\n", "cut-all"),
                parse_named("[Uplinks]\nInterface=wan0 wan1\n[Gateway mail]\nAddress=203.0.113.25\nPorts=tcp:25\n",
                            "isolate"),
                parse_named("[Uplinks]\nInterface=lte0\n[Gateway proxy]\nAddress=2001:db8::8\n", "web-proxy"),
        };
        _cleanup_free_ char *none = NULL, *one = NULL, *last = NULL;
        size_t n_none, n_one, n_last;

        check_table(ps, 3, NULL, &n_none, &none);
        check_table(ps, 3, "isolate", &n_one, &one);
        check_table(ps, 3, "web-proxy", &n_last, &last);
        assert_int_equal(n_one, n_none + 6);
        assert_int_equal(n_last, n_none + 6);
        /* Every policy's objects, each under its own prefix; the same staged part whatever is active. */
        assert_true(strncmp(none, one, strlen(none)) == 0);
        assert_true(strncmp(none, last, strlen(none)) == 0);
        assert_non_null(strstr(none, "name cut-all/dropped_in use 0"));
        assert_non_null(strstr(none, "name isolate/gw_mail use 0"));
        assert_non_null(strstr(none, "\nweb-proxy/gw_proxy_v6 killswitch 0\n"));  /* one address: a hash set */
        assert_non_null(strstr(none, "inet killswitch cut-all/outbound use 0"));
        assert_non_null(strstr(none, "inet killswitch web-proxy/inbound\n"
                                     "  [ meta load nfproto => reg 1 ]\n"
                                     "  [ cmp eq reg 1 0x0000000a ]\n"
                                     "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
                                     "  [ lookup reg 1 set web-proxy/gw_proxy_v6 ]\n"
                                     "  [ objref type 1 name web-proxy/gw_proxy ]\n"
                                     "  [ immediate reg 0 accept ]\n"));
        assert_null(strstr(none, "prerouting"));
        assert_non_null(strstr(one + strlen(none),
                "inet killswitch prerouting use 0 type filter hook prerouting prio 0 policy accept"));
        assert_non_null(strstr(one + strlen(none),
                "inet killswitch forward use 0 type filter hook forward prio -150 policy accept"));
        assert_non_null(strstr(one + strlen(none),
                "inet killswitch output use 0 type filter hook output prio -150 policy accept"));
        assert_non_null(strstr(one + strlen(none), "inet killswitch prerouting\n"
                                                   "  [ meta load iifname => reg 1 ]\n"
                                                   "  [ lookup reg 1 set isolate/uplinks ]\n"
                                                   "  [ immediate reg 0 jump -> isolate/inbound ]\n"));
        assert_non_null(strstr(last + strlen(none), "inet killswitch output\n"
                                                    "  [ meta load oifname => reg 1 ]\n"
                                                    "  [ lookup reg 1 set web-proxy/uplinks ]\n"
                                                    "  [ immediate reg 0 jump -> web-proxy/local_out ]\n"));
        /* No policy at all: an empty table. */
        {
                struct ks_ruleset *r = NULL;
                struct batch_stats st;

                assert_int_equal(compile_table(NULL, 0, NULL, TABLE, &r), 0);
                st = batch_of(r, 1);
                assert_int_equal(st.msgs, 1);
                ruleset_free(r);
        }
        for (size_t i = 0; i < ELEMENTSOF(ps); i++)
                policy_free(ps[i]);
}

static void test_hook(void **state)
{
        struct ks_ruleset *r = NULL;
        struct msg_info mi[16];
        struct batch_stats st;
        _cleanup_free_ char *dump = NULL;
        static const char *const chains[] = { "prerouting", "forward", "output" };

        assert_int_equal(compile_hook("web-proxy", TABLE, &r), 0);
        st = batch_info(r, 7, mi, ELEMENTSOF(mi));
        assert_int_equal(st.msgs, 9);
        for (size_t c = 0; c < 3; c++) {
                const struct msg_info *m = &mi[3 * c];
                _cleanup_free_ char *target = NULL;

                assert_true(asprintf(&target, "web-proxy/%s", (const char *[]){ "inbound", "forward", "local_out" }[c]) > 0);
                /* NEWCHAIN with its hook, flags checked in check_msg: REQUEST|ACK|CREATE */
                assert_int_equal(m[0].type, NFT_MSG_NEWCHAIN);
                assert_string_equal(m[0].name, chains[c]);
                assert_true(m[0].hook);
                /* DELRULE with only the table and the chain: flushes the chain */
                assert_int_equal(m[1].type, NFT_MSG_DELRULE);
                assert_string_equal(m[1].name, chains[c]);
                assert_int_equal(m[1].n_attrs, 2);
                /* NEWRULE: the jump; REQUEST|ACK|CREATE|APPEND */
                assert_int_equal(m[2].type, NFT_MSG_NEWRULE);
                assert_string_equal(m[2].name, chains[c]);
                assert_string_equal(m[2].target, target);
        }
        dump = dump_of(r);
        assert_string_equal(dump,
                "inet killswitch prerouting use 0 type filter hook prerouting prio 0 policy accept packets 0 bytes 0\n"
                "delete rule inet killswitch prerouting\n"
                "inet killswitch prerouting\n"
                "  [ meta load iifname => reg 1 ]\n"
                "  [ lookup reg 1 set web-proxy/uplinks ]\n"
                "  [ immediate reg 0 jump -> web-proxy/inbound ]\n"
                "inet killswitch forward use 0 type filter hook forward prio -150 policy accept packets 0 bytes 0\n"
                "delete rule inet killswitch forward\n"
                "inet killswitch forward\n"
                "  [ meta load oifname => reg 1 ]\n"
                "  [ lookup reg 1 set web-proxy/uplinks ]\n"
                "  [ immediate reg 0 jump -> web-proxy/forward ]\n"
                "inet killswitch output use 0 type filter hook output prio -150 policy accept packets 0 bytes 0\n"
                "delete rule inet killswitch output\n"
                "inet killswitch output\n"
                "  [ meta load oifname => reg 1 ]\n"
                "  [ lookup reg 1 set web-proxy/uplinks ]\n"
                "  [ immediate reg 0 jump -> web-proxy/local_out ]\n");
        r = ruleset_free(r);
        free(dump);

        assert_int_equal(compile_hook(NULL, TABLE, &r), 0);
        st = batch_info(r, 1, mi, ELEMENTSOF(mi));
        assert_int_equal(st.msgs, 6);
        for (size_t c = 0; c < 3; c++) {
                const struct msg_info *m = &mi[2 * c];

                /* NEWCHAIN without hook: table and name only, REQUEST|ACK|CREATE */
                assert_int_equal(m[0].type, NFT_MSG_NEWCHAIN);
                assert_string_equal(m[0].name, chains[c]);
                assert_false(m[0].hook);
                assert_int_equal(m[0].n_attrs, 2);
                /* DELCHAIN: REQUEST|ACK, without NLM_F_NONREC: the kernel deletes the rules with it */
                assert_int_equal(m[1].type, NFT_MSG_DELCHAIN);
                assert_string_equal(m[1].name, chains[c]);
                assert_int_equal(m[1].n_attrs, 2);
        }
        dump = dump_of(r);
        assert_string_equal(dump,
                "inet killswitch prerouting use 0\n"
                "delete chain inet killswitch prerouting\n"
                "inet killswitch forward use 0\n"
                "delete chain inet killswitch forward\n"
                "inet killswitch output use 0\n"
                "delete chain inet killswitch output\n");
        ruleset_free(r);
}

/* The link layer: staged per policy, switched in O(1), unbound on restore; refused names. */
static void test_links(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n[Gateway mail]\nAddress=203.0.113.25\nPorts=tcp:25\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *dump = NULL;
        struct batch_stats st;
        struct msg_info mi[32];
        char name[64];

        /* Restore: the device chains go, whether they exist or not; nothing else. */
        assert_int_equal(compile_links_hook(NULL, NULL, 0, TABLE, &r), 0);
        dump = dump_of(r);
        assert_non_null(strstr(dump, "table " TABLE LINKS_TABLE_SUFFIX " netdev"));
        assert_non_null(strstr(dump, "delete chain netdev " TABLE LINKS_TABLE_SUFFIX " ingress"));
        assert_non_null(strstr(dump, "delete chain netdev " TABLE LINKS_TABLE_SUFFIX " egress"));
        assert_null(strstr(dump, "hook"));
        ruleset_free(r);
        r = NULL;
        assert_int_equal(compile_links_hook(p, (const char *const[]){ "0123456789abcdefg" }, 1, TABLE, &r), -EINVAL);
        assert_int_equal(compile_links_hook(p, (const char *const[]){ "" }, 1, TABLE, &r), -EINVAL);
        assert_int_equal(compile_links_table(pp(p), 1, p, NULL, 1, TABLE, 0, &r), -EINVAL);
        assert_null(r);
        assert_int_equal(compile_links_table_name(name, sizeof(name), TABLE), 0);
        assert_string_equal(name, "killswitch_links");

        /* The switch is O(1): a few messages, whatever the policy holds; wan0 once, mv0 joins. */
        assert_int_equal(compile_links_hook(p, (const char *const[]){ "mv0", "wan0" }, 2, TABLE, &r), 0);
        st = batch_info(r, 1, mi, ELEMENTSOF(mi));
        /* NEWTABLE, flush + refill of P/uplinks, per device chain NEWCHAIN, DELCHAIN, NEWCHAIN, jump. */
        assert_int_equal(st.msgs, 1 + 2 + 2 * 4);
        free(dump);
        dump = dump_of(r);
        assert_non_null(strstr(dump, "flush set inet killswitch t/uplinks"));
        assert_non_null(strstr(dump, "hook ingress prio -2147483648 policy accept packets 0 bytes 0 dev {  wan0  mv0  }"));
        assert_non_null(strstr(dump, "egress use 0 type filter hook unknown prio -2147483648"));
        assert_non_null(strstr(dump, "jump -> t/link_in"));
        ruleset_free(r);
        r = NULL;

        /* Staged: the drops counted on the inet table's names (status adds both up). */
        assert_int_equal(compile_links_table(pp(p), 1, NULL, NULL, 0, TABLE, 0, &r), 0);
        free(dump);
        dump = dump_of(r);
        assert_non_null(strstr(dump, "[ objref type 1 name t/dropped_in/wan0 ]"));
        assert_null(strstr(dump, "hook ingress"));
        ruleset_free(r);
        policy_free(p);
}

/* Where needle first occurs in hay after from (an offset), or fails. */
static size_t offset_of(const char *hay, size_t from, const char *needle)
{
        const char *at = strstr(hay + from, needle);

        if (!at)
                fail_msg("not found after offset %zu: %s", from, needle);
        return (size_t)(at - hay);
}

/*
 * The link chains' order: ARP, the entries kept by their ports alone (a
 * single port one compare), the gateways' lookups, then the rare packets'
 * rules (upkeep, ICMP errors by type), then the drops. All accept: the order
 * decides no verdict, only how many rules a kept packet passes first.
 */
static void test_links_order(void **state)
{
        struct ks_policy *p = parse("[Uplinks]\nInterface=wan0\n"
                                    "[Gateway mail]\nAddress=203.0.113.25\nPorts=tcp:25\n"
                                    "[Service web]\nAddress=192.0.2.10\nPorts=tcp:443 tcp:8000-8010\nFrom=any\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *dump = NULL;
        size_t at;

        assert_int_equal(compile_links_table(pp(p), 1, NULL, NULL, 0, TABLE, 0, &r), 0);
        dump = dump_of(r);
        at = offset_of(dump, 0, "netdev killswitch_links t/link_in\n"     /* ARP, on Ethernet if the frame is */
                                "  [ meta load protocol => reg 1 ]\n"
                                "  [ cmp eq reg 1 0x00000608 ]\n"
                                "  [ meta load iiftype => reg 1 ]\n"
                                "  [ cmp eq reg 1 0x00000001 ]\n"
                                "  [ payload load 2b @ link header + 12 => reg 1 ]\n"
                                "  [ cmp eq reg 1 0x00000608 ]\n"
                                "  [ immediate reg 0 accept ]\n"
                                "netdev killswitch_links t/link_in\n"
                                "  [ meta load protocol => reg 1 ]\n"
                                "  [ cmp eq reg 1 0x00000608 ]\n"
                                "  [ meta load iiftype => reg 1 ]\n"
                                "  [ cmp neq reg 1 0x00000001 ]\n"
                                "  [ immediate reg 0 accept ]\n"
                                "netdev killswitch_links t/link_in\n"     /* tcp dport 443 accept */
                                "  [ meta load l4proto => reg 1 ]\n"
                                "  [ cmp eq reg 1 0x00000006 ]\n"
                                "  [ payload load 2b @ transport header + 2 => reg 1 ]\n"
                                "  [ cmp eq reg 1 0x0000bb01 ]\n"
                                "  [ immediate reg 0 accept ]\n"
                                "netdev killswitch_links t/link_in\n"     /* tcp dport 8000-8010 accept */
                                "  [ meta load l4proto => reg 1 ]\n"
                                "  [ cmp eq reg 1 0x00000006 ]\n"
                                "  [ payload load 2b @ transport header + 2 => reg 1 ]\n"
                                "  [ cmp gte reg 1 0x0000401f ]\n"
                                "  [ cmp lte reg 1 0x00004a1f ]\n"
                                "  [ immediate reg 0 accept ]\n"
                                "netdev killswitch_links t/link_in\n");
        at = offset_of(dump, at, "[ lookup reg 1 set t/gw_mail_v4 ]");
        /* The service's fragments after the first: no port in them, no peer to match. */
        at = offset_of(dump, at, "netdev killswitch_links t/link_in\n"
                                 "  [ meta load protocol => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000008 ]\n"
                                 "  [ payload load 2b @ network header + 6 => reg 1 ]\n"
                                 "  [ bitwise reg 1 = ( reg 1 & 0x0000ff1f ) ^ 0x00000000 ]\n"
                                 "  [ cmp neq reg 1 0x00000000 ]\n"
                                 "  [ meta load l4proto => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000006 ]\n"
                                 "  [ immediate reg 0 accept ]\n"
                                 "netdev killswitch_links t/link_in\n"
                                 "  [ meta load protocol => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000dd86 ]\n"
                                 "  [ payload load 1b @ network header + 6 => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000002c ]\n"
                                 "  [ payload load 2b @ network header + 42 => reg 1 ]\n"
                                 "  [ bitwise reg 1 = ( reg 1 & 0x0000f8ff ) ^ 0x00000000 ]\n"
                                 "  [ cmp neq reg 1 0x00000000 ]\n"
                                 "  [ meta load l4proto => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000006 ]\n"
                                 "  [ immediate reg 0 accept ]\n");
        at = offset_of(dump, at, "[ cmp gte reg 1 0x00000085 ]");    /* icmpv6 type 133-137 */
        at = offset_of(dump, at, "[ cmp eq reg 1 0x00000003 ]");      /* icmp type 3 */
        at = offset_of(dump, at, "[ objref type 1 name t/dropped_in/wan0 ]");
        /*
         * Going out: first what meta protocol says checked against the frame
         * (its ethertype on Ethernet, the IP version elsewhere), then ARP, the
         * service's answers from port 443, the gateway, the errors quoting 443.
         */
        at = offset_of(dump, at, "netdev killswitch_links t/link_out\n"
                                 "  [ meta load protocol => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000008 ]\n"
                                 "  [ meta load oiftype => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000001 ]\n"
                                 "  [ payload load 2b @ link header + 12 => reg 1 ]\n"
                                 "  [ cmp neq reg 1 0x00000008 ]\n"
                                 "  [ objref type 1 name t/dropped_out ]\n"
                                 "  [ immediate reg 0 drop ]\n"
                                 "netdev killswitch_links t/link_out\n"
                                 "  [ meta load protocol => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000008 ]\n"
                                 "  [ meta load oiftype => reg 1 ]\n"
                                 "  [ cmp neq reg 1 0x00000001 ]\n"
                                 "  [ payload load 1b @ network header + 0 => reg 1 ]\n"
                                 "  [ bitwise reg 1 = ( reg 1 & 0x000000f0 ) ^ 0x00000000 ]\n"
                                 "  [ cmp neq reg 1 0x00000040 ]\n"
                                 "  [ objref type 1 name t/dropped_out ]\n"
                                 "  [ immediate reg 0 drop ]\n"
                                 "netdev killswitch_links t/link_out\n"
                                 "  [ meta load protocol => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000dd86 ]\n"
                                 "  [ meta load oiftype => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000001 ]\n"
                                 "  [ payload load 2b @ link header + 12 => reg 1 ]\n"
                                 "  [ cmp neq reg 1 0x0000dd86 ]\n"
                                 "  [ objref type 1 name t/dropped_out ]\n"
                                 "  [ immediate reg 0 drop ]\n"
                                 "netdev killswitch_links t/link_out\n"
                                 "  [ meta load protocol => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000dd86 ]\n"
                                 "  [ meta load oiftype => reg 1 ]\n"
                                 "  [ cmp neq reg 1 0x00000001 ]\n"
                                 "  [ payload load 1b @ network header + 0 => reg 1 ]\n"
                                 "  [ bitwise reg 1 = ( reg 1 & 0x000000f0 ) ^ 0x00000000 ]\n"
                                 "  [ cmp neq reg 1 0x00000060 ]\n"
                                 "  [ objref type 1 name t/dropped_out ]\n"
                                 "  [ immediate reg 0 drop ]\n"
                                 "netdev killswitch_links t/link_out\n"
                                 "  [ meta load protocol => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000608 ]\n"
                                 "  [ meta load oiftype => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000001 ]\n"
                                 "  [ payload load 2b @ link header + 12 => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000608 ]\n"
                                 "  [ immediate reg 0 accept ]\n");
        at = offset_of(dump, at, "netdev killswitch_links t/link_out\n"
                                 "  [ meta load l4proto => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x00000006 ]\n"
                                 "  [ payload load 2b @ transport header + 0 => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000bb01 ]\n");
        at = offset_of(dump, at, "[ lookup reg 1 set t/gw_mail_v4 ]");
        at = offset_of(dump, at, "  [ payload load 2b @ transport header + 30 => reg 1 ]\n"
                                 "  [ cmp eq reg 1 0x0000bb01 ]\n");
        offset_of(dump, at, "[ objref type 1 name t/dropped_out/wan0 ]");
        ruleset_free(r);
        policy_free(p);
}


/* The trip-wire's table: built like the main table's (dump, read-back summary), and its nft text. */
static void test_tripwire(void **state)
{
        static const char uplinks[][16] = { "wan0", "wan1" };
        struct tripwire_spec t = { .uplinks = uplinks, .n_uplinks = 2, .rate = 2048000, .log_group = 5 };
        _cleanup_free_ char *text = NULL, *dump = NULL;
        struct ks_ruleset *r = NULL;
        struct ks_summary s = {};
        const struct summary_chain *c;
        char *small = NULL;

        assert_int_equal(compile_tripwire(&t, &r), 0);
        dump = dump_of(r);
        check_golden("tripwire", "dump", dump);
        assert_int_equal(compile_tripwire_text(&t, &text), 0);
        check_golden("tripwire", "nft", text);

        /* What the read-back compares with the kernel's table. */
        assert_int_equal(ruleset_summarize(r, &s), 0);
        assert_int_equal(s.n_chains, 1);
        c = summary_chain(&s, TRIPWIRE_CHAIN, false);
        assert_non_null(c);
        assert_true(c->base);
        assert_int_equal(c->priority, TRIPWIRE_PRIORITY);
        assert_int_equal(c->rules, 1);
        assert_int_equal(s.n_sets, 1);
        assert_int_equal(summary_set(&s, TRIPWIRE_SET, false)->elems, 2);
        assert_int_equal(s.n_counters, 0);
        summary_clear(&s);
        ruleset_free(r);
        r = NULL;

        /* Rates as nft prints them: in kbytes or mbytes only when they divide. */
        t.n_uplinks = 1;
        t.rate = 1048576;
        assert_int_equal(compile_tripwire_text(&t, &small), 0);
        assert_non_null(strstr(small, "\"wan0\" }"));
        assert_non_null(strstr(small, "limit rate over 1 mbytes/second burst 1 mbytes limit rate 10/second log"));
        free(small);
        t.rate = 3000000;
        assert_int_equal(compile_tripwire_text(&t, &small), 0);
        assert_non_null(strstr(small, "over 3000000 bytes/second burst 3000000 bytes "));
        free(small);
        small = NULL;

        /* No uplinks, no rate, a rate the kernel cannot hold: refused. */
        t.rate = 0;
        assert_int_equal(compile_tripwire(&t, &r), -EINVAL);
        assert_int_equal(compile_tripwire_text(&t, &small), -EINVAL);
        t.rate = (uint64_t)UINT32_MAX + 1;
        assert_int_equal(compile_tripwire(&t, &r), -EINVAL);
        t.rate = 1000;
        t.n_uplinks = 0;
        assert_int_equal(compile_tripwire(&t, &r), -EINVAL);
        assert_null(r);
        assert_null(small);
}

/* 100,000 entries of each kind: the sets and the batch scale (its time is in tests/bench/bench-compile.c). */
static void test_100k_addresses(void **state)
{
        const size_t n = 100000;
        _cleanup_free_ char *text = big_policy_text(n), *dump = NULL;
        struct ks_policy *p;
        struct ks_ruleset *r = NULL;
        struct batch_stats st;

        assert_non_null(text);
        p = parse(text);
        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        dump = dump_of(r);
        assert_int_equal(count_elements(dump, "t/gw_big0_v4"), 2 * n);
        assert_int_equal(count_elements(dump, "t/gw_big1_v4r"), 1 + 2 * n);
        assert_null(strstr(dump, "\nt/gw_big0_v4r "));
        assert_null(strstr(dump, "\nt/gw_big1_v4 "));

        st = batch_of(r, 1);
        assert_int_equal(st.elements, 1 + 2 * n + 1 + 2 * n);
        /* Split into many messages, each below the 64 KiB attribute limit plus headers. */
        assert_true(st.newsetelem > 10);
        assert_true(st.max_len <= UINT16_MAX + 256);
        assert_true(st.max_len < RULESET_BATCH_OVERRUN);
        ruleset_free(r);
        policy_free(p);
}

/*
 * Staged in steps (stage.c): the first transaction holds every set, the big
 * ones empty; then steps of at most `budget` elements each, in messages of at
 * most 64 KiB, until every element is out, each exactly once.
 */
static struct batch_stats staged_steps(const struct ks_ruleset *r, size_t budget, size_t *ret_steps)
{
        struct nftnl_batch *b = nftnl_batch_alloc(32 * 4096, RULESET_BATCH_OVERRUN);
        struct ruleset_cursor c = { .max = 4096 };
        struct batch_stats st = {};
        uint32_t seq = 1;
        bool deferred = false;
        int more;

        assert_non_null(b);
        assert_int_equal(ruleset_to_batch_staged(r, b, &seq, c.max, NULL, false, &deferred), 0);
        assert_true(deferred);
        batch_walk(b, 1, &st);
        assert_true(st.elements < 4096);
        *ret_steps = 0;
        do {
                struct batch_stats step = {};
                uint32_t first = seq;

                nftnl_batch_free(b);
                b = nftnl_batch_alloc(32 * 4096, RULESET_BATCH_OVERRUN);
                assert_non_null(b);
                more = ruleset_rest_to_batch(r, &c, b, &seq, budget);
                assert_true(more >= 0);
                batch_walk(b, first, &step);
                assert_true(step.elements > 0 && step.elements <= budget);
                assert_int_equal(step.msgs, step.newsetelem);
                assert_true(step.max_len <= UINT16_MAX + 256);
                st.elements += step.elements;
                st.newsetelem += step.newsetelem;
                (*ret_steps)++;
        } while (more > 0);
        ruleset_cursor_clear(&c);
        nftnl_batch_free(b);
        return st;
}

/* Messages of one batch: rules (of chains whose names begin with "t/", with "u/"), elements. */
struct policy_msgs {
        size_t rules_t, rules_u, other_rules, chains_t, elements;
};

static struct policy_msgs policy_msgs(struct nftnl_batch *b, uint32_t first_seq)
{
        struct msg_info *info = calloc(8192, sizeof(*info));
        struct batch_stats st = { .info = info, .max_info = 8192 };
        struct policy_msgs pm = {};

        assert_non_null(info);
        batch_walk(b, first_seq, &st);
        assert_true(st.msgs <= st.max_info);
        for (size_t i = 0; i < st.msgs; i++) {
                bool t = strncmp(info[i].name, "t/", 2) == 0, u = strncmp(info[i].name, "u/", 2) == 0;

                if (info[i].type == NFT_MSG_NEWRULE)
                        *(t ? &pm.rules_t : u ? &pm.rules_u : &pm.other_rules) += 1;
                else if (info[i].type == NFT_MSG_NEWCHAIN && t)
                        pm.chains_t++;
        }
        pm.elements = st.elements;
        free(info);
        return pm;
}

static struct nftnl_batch *new_batch(void)
{
        struct nftnl_batch *b = nftnl_batch_alloc(32 * 4096, RULESET_BATCH_OVERRUN);

        assert_non_null(b);
        return b;
}

/*
 * A reload's staging in steps with `policies`: the first transaction holds
 * the policy kept ("u") whole and nothing of the other ("t"); the steps send
 * all of "t", rules and elements, each rule and element once; and
 * ruleset_policy_to_batch() sends what is left of "t" at once.
 */
static void test_staged_policies(void **state)
{
        _cleanup_free_ char *text = big_policy_text(3000);
        struct ks_policy *t, *u;
        struct ks_ruleset *r = NULL, *ru = NULL;
        struct ruleset_cursor c = { .max = 256, .keep = "u", .policies = true };
        struct nftnl_batch *b;
        struct policy_msgs all, first, sum = {}, alone;
        uint32_t seq = 1, from;
        bool deferred = false;
        size_t steps = 0;
        int more;

        assert_non_null(text);
        t = parse_named(text, "t");
        u = parse_named("[Uplinks]\nInterface=wan0\n[Gateway mail]\nAddress=203.0.113.25\nPorts=tcp:25\n", "u");
        assert_int_equal(compile_table(pp(t, u), 2, NULL, TABLE, &r), 0);
        assert_int_equal(compile_table(pp(u), 1, NULL, TABLE, &ru), 0);
        b = new_batch();
        assert_int_equal(ruleset_to_batch(r, b, &seq), 0);
        all = policy_msgs(b, 1);
        nftnl_batch_free(b);
        b = new_batch();
        seq = 1;
        assert_int_equal(ruleset_to_batch(ru, b, &seq), 0);
        alone = policy_msgs(b, 1);
        nftnl_batch_free(b);
        assert_true(all.rules_t > 10 && all.rules_u > 5 && all.elements > 6000);

        b = new_batch();
        seq = 1;
        assert_int_equal(ruleset_to_batch_staged(r, b, &seq, c.max, c.keep, c.policies, &deferred), 0);
        assert_true(deferred);
        first = policy_msgs(b, 1);
        nftnl_batch_free(b);
        assert_int_equal(first.rules_t, 0);
        assert_int_equal(first.chains_t, 0);
        assert_int_equal(first.rules_u, all.rules_u);
        assert_int_equal(first.elements, alone.elements);
        assert_true(ruleset_cursor_pending(r, &c, "t"));
        assert_false(ruleset_cursor_pending(r, &c, "u"));

        /* Steps of 300: a handful, then the rest of "t" at once. */
        for (; steps < 5; steps++) {
                b = new_batch();
                from = seq;
                more = ruleset_rest_to_batch(r, &c, b, &seq, 300);
                assert_int_equal(more, 1);
                struct policy_msgs pm = policy_msgs(b, from);
                nftnl_batch_free(b);
                assert_int_equal(pm.rules_u + pm.other_rules, 0);
                assert_true(pm.elements <= 300);
                assert_true(pm.rules_t * STEP_OP_WEIGHT + pm.elements <= 300 + STEP_OP_WEIGHT);
                sum.rules_t += pm.rules_t;
                sum.elements += pm.elements;
        }
        b = new_batch();
        from = seq;
        assert_int_equal(ruleset_policy_to_batch(r, &c, b, &seq, "t"), 0);
        struct policy_msgs rest = policy_msgs(b, from);
        nftnl_batch_free(b);
        assert_false(ruleset_cursor_pending(r, &c, "t"));
        assert_int_equal(sum.rules_t + rest.rules_t, all.rules_t);
        assert_int_equal(first.elements + sum.elements + rest.elements, all.elements);
        /* Nothing is left for the steps. */
        b = new_batch();
        assert_int_equal(ruleset_rest_to_batch(r, &c, b, &seq, 300), 0);
        nftnl_batch_free(b);
        ruleset_cursor_clear(&c);

        /* The steps alone send everything of "t", once. */
        c = (struct ruleset_cursor){ .max = 256, .keep = "u", .policies = true };
        sum = (struct policy_msgs){};
        do {
                b = new_batch();
                from = seq;
                more = ruleset_rest_to_batch(r, &c, b, &seq, 1000);
                assert_true(more >= 0);
                struct policy_msgs pm = policy_msgs(b, from);
                nftnl_batch_free(b);
                sum.rules_t += pm.rules_t;
                sum.chains_t += pm.chains_t;
                sum.elements += pm.elements;
        } while (more > 0);
        assert_int_equal(sum.rules_t, all.rules_t);
        assert_int_equal(sum.chains_t, all.chains_t);
        assert_int_equal(first.elements + sum.elements, all.elements);
        ruleset_cursor_clear(&c);
        ruleset_free(r);
        ruleset_free(ru);
        policy_free(t);
        policy_free(u);
}

static void test_staged_steps(void **state)
{
        const size_t n = 20000;
        _cleanup_free_ char *text = big_policy_text(n);
        struct ks_policy *p;
        struct ks_ruleset *r = NULL;
        struct batch_stats all, st;
        size_t steps;

        assert_non_null(text);
        p = parse(text);
        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        all = batch_of(r, 1);
        /* Small steps: one message each (the budget ends it), as many as the budget says. */
        st = staged_steps(r, 300, &steps);
        assert_int_equal(st.elements, all.elements);
        assert_true(steps >= all.elements / 300);
        assert_true(steps <= all.elements / 300 + 4);
        /* Large steps: several messages each, split below 64 KiB as in one go. */
        st = staged_steps(r, 100000, &steps);
        assert_int_equal(st.elements, all.elements);
        assert_true(steps <= 2);
        assert_true(st.newsetelem > 4);
        ruleset_free(r);
        policy_free(p);
}

/*
 * Connection-matched entries (policy v2): the key leaves out what is "any"
 * (From=any, Local=any, no Ports=), exact entries go to a hash set and the
 * rest to an interval set, and each match loads the tuple it names.
 */
static void test_conn_entries(void **state)
{
        struct ks_policy *p = parse(
                "[Uplinks]\nInterface=wan0\n"
                "[Gateway relay]\nAddress=203.0.113.25\nPorts=tcp:25 tcp:587\nLocal=10.0.1.25\nDirection=out\n"
                "[Gateway partner]\nAddress=198.51.100.0/28\nLocal=any\nDirection=in\n"
                "[Gateway old]\nAddress=192.0.2.7\nPorts=tcp:22\n"
                "[Service mx]\nAddress=192.0.2.10 10.0.1.10\nPorts=tcp:25\nFrom=any\n"
                "[Service pbx]\nAddress=192.0.2.5\nFrom=203.0.113.0/24 203.0.114.7\nPorts=udp:5060 udp:10000-20000\n");
        struct ks_ruleset *r = NULL;
        _cleanup_free_ char *t = text_of(p), *dump = NULL;

        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        dump = dump_of(r);

        /* relay: peer . local . proto . port, all exact: one hash set; only connections opened here. */
        assert_int_equal(summary_elems(r, "t/gw_relay_v4"), 2);
        assert_int_equal(summary_elems(r, "t/gw_relay_v4r"), -1);
        assert_non_null(strstr(t, "\t\ttype ipv4_addr . ipv4_addr . inet_proto . inet_service\n"
                                  "\t\telements = { 203.0.113.25 . 10.0.1.25 . tcp . 25,\n"));
        assert_non_null(strstr(t, "\t\tct direction reply ct original ip daddr . ct original ip saddr . meta l4proto . "
                                  "ct original proto-dst @t/gw_relay_v4 counter name \"t/gw_relay\" accept\n"));
        assert_non_null(strstr(t, "\t\tct direction original ct original ip daddr . ct original ip saddr . meta l4proto . "
                                  "ct original proto-dst @t/gw_relay_v4 counter name \"t/gw_relay\" accept\n"));
        assert_null(strstr(t, "ct direction original ct original ip saddr . ct reply ip saddr . meta l4proto . "
                              "ct original proto-dst @t/gw_relay_v4"));

        /* partner: Local=any and no Ports=: the peer alone, an rbtree; only connections it opens. */
        assert_non_null(strstr(t, "\tset t/gw_partner_v4r {\n\t\ttype ipv4_addr\n\t\tflags interval\n"));
        assert_non_null(strstr(t, "\t\tct direction original ct original ip saddr @t/gw_partner_v4r counter"));
        assert_non_null(strstr(t, "\t\tct direction reply ct original ip saddr @t/gw_partner_v4r counter"));
        assert_null(strstr(t, "ct original ip daddr @t/gw_partner"));

        /* old: no version 2 key, matched on packets as before. */
        assert_non_null(strstr(t, "\t\tip saddr . meta l4proto . th sport @t/gw_old_v4 counter"));

        /* mx: From=any left out; matched before DNAT (original) and after (reply), in and out. */
        assert_int_equal(summary_elems(r, "t/svc_mx_v4"), 2);
        assert_non_null(strstr(t, "\tset t/svc_mx_v4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n"));
        assert_non_null(strstr(t, "\t\tct direction original ct original ip daddr . meta l4proto . ct original "
                                  "proto-dst @t/svc_mx_v4 counter name \"t/svc_mx\" accept\n"
                                  "\t\tct direction original ct reply ip saddr . meta l4proto . ct reply proto-src "
                                  "@t/svc_mx_v4 counter name \"t/svc_mx\" accept\n"));
        assert_non_null(strstr(t, "\t\tct direction reply ct original ip daddr . meta l4proto . ct original "
                                  "proto-dst @t/svc_mx_v4 counter name \"t/svc_mx\" accept\n"));
        assert_non_null(strstr(dump, "  [ ct load direction => reg 1 ]\n"
                                     "  [ cmp eq reg 1 0x00000000 ]\n"
                                     "  [ ct load src_ip => reg 1 , dir reply ]\n"
                                     "  [ meta load l4proto => reg 9 ]\n"
                                     "  [ ct load proto_src => reg 10 , dir reply ]\n"
                                     "  [ lookup reg 1 set t/svc_mx_v4 ]\n"));

        /* pbx: From= a prefix and an address, a port and a range: split into both kinds. */
        assert_int_equal(summary_elems(r, "t/svc_pbx_v4"), 1);
        assert_int_equal(summary_elems(r, "t/svc_pbx_v4r"), 3);
        assert_non_null(strstr(t, "\t\telements = { 203.0.114.7 . 192.0.2.5 . udp . 5060 }\n"));
        assert_non_null(strstr(dump, "  [ ct load src_ip => reg 1 , dir original ]\n"
                                     "  [ ct load dst_ip => reg 9 , dir original ]\n"
                                     "  [ meta load l4proto => reg 10 ]\n"
                                     "  [ byteorder reg 10 = hton(reg 10, 2, 1) ]\n"
                                     "  [ ct load proto_dst => reg 11 , dir original ]\n"
                                     "  [ lookup reg 1 set t/svc_pbx_v4r ]\n"));
        /* No IPv6 at all: no From= address of that family. */
        assert_null(strstr(t, "svc_pbx_v6"));
        assert_non_null(strstr(t, "\tcounter t/svc_pbx {\n"));
        ruleset_free(r);
        policy_free(p);
}

/* The digest of a policy's table (ruleset_digest), compiled with `how`: 0 plain, 1 hooked, 2 held. */
static uint64_t digest_of(const char *text, int how)
{
        struct ks_policy *p = parse(text);
        struct ks_ruleset *r = NULL;
        uint64_t d = 0;

        if (how == 2)
                assert_int_equal(compile_table_held(pp(p), 1, p->name, TABLE, &r), 0);
        else
                assert_int_equal(compile_table(pp(p), 1, how ? p->name : NULL, TABLE, &r), 0);
        assert_int_equal(ruleset_digest(r, &d), 0);
        ruleset_free(r);
        policy_free(p);
        return d;
}

#define DIGEST_POLICY(uplink, addrs, ports) \
        "[Uplinks]\nInterface=" uplink "\n[Gateway mail]\nAddress=" addrs "\nPorts=" ports "\nPing=yes\n"

/*
 * A reload compiles without hooks on a thread; the loop then adds those of the
 * policy in force (ruleset_hold): the same messages as compile_table_held(),
 * the same summary, the same seal. Not a policy of the table: -ENOENT.
 */
static void test_hold_added(void **state)
{
        struct ks_policy *p = parse_named(DIGEST_POLICY("wan0", "203.0.113.25", "tcp:25"), "mail");
        struct ks_policy *q = parse_named(DIGEST_POLICY("wan1", "198.51.100.7", "tcp:587"), "other");
        const struct ks_policy *both[] = { p, q };
        struct ks_ruleset *held = NULL, *r = NULL;
        struct ks_summary want = {}, have = {};
        char *a, *b, msg[512];

        (void)state;
        assert_int_equal(compile_table_held(both, 2, "other", TABLE, &held), 0);
        assert_int_equal(compile_table(both, 2, NULL, TABLE, &r), 0);
        assert_int_equal(ruleset_summarize(r, &have), 0);
        assert_int_equal(ruleset_hold(r, TABLE, "nosuch", &have), -ENOENT);
        assert_int_equal(ruleset_hold(r, TABLE, "bad name", NULL), -EINVAL);
        assert_int_equal(ruleset_hold(r, TABLE, "other", &have), 0);
        a = dump_of(held);
        b = dump_of(r);
        assert_string_equal(a, b);
        assert_non_null(strstr(b, "jump -> other/hold"));
        assert_string_equal(ruleset_comment(r), ruleset_comment(held));
        assert_int_equal(ruleset_summarize(held, &want), 0);
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);
        assert_int_equal(summary_diff_hooks(&want, &have, msg, sizeof(msg)), 0);
        free(a);
        free(b);
        summary_clear(&want);
        summary_clear(&have);
        ruleset_free(held);
        ruleset_free(r);
        policy_free(p);
        policy_free(q);
}

/*
 * Adoption at start compares the digest of the rules (the shape says nothing
 * of a match): stable for the same policy whatever is hooked, different when
 * one expression differs, blind to the order the policy lists addresses in.
 */
static void test_digest(void **state)
{
        const char *base = DIGEST_POLICY("wan0", "203.0.113.25 198.51.100.7", "tcp:25 tcp:587");
        uint64_t d = digest_of(base, 0);
        struct ks_policy *p = parse(base), *q = parse(DIGEST_POLICY("wan9", "203.0.113.25 198.51.100.7",
                                                                     "tcp:25 tcp:587"));
        struct ks_ruleset *r = NULL, *s = NULL;
        struct ks_summary want = {}, have = {};
        char msg[512];

        assert_int_equal(digest_of(base, 0), d);
        assert_int_equal(digest_of(base, 1), d);
        assert_int_equal(digest_of(base, 2), d);
        /* Addresses in another order: the compiler sorts them, the elements are the same. */
        assert_int_equal(digest_of(DIGEST_POLICY("wan0", "198.51.100.7 203.0.113.25", "tcp:587 tcp:25"), 0), d);
        /* One element, one port, one interface name in a match: another digest. */
        assert_int_not_equal(digest_of(DIGEST_POLICY("wan0", "203.0.113.26 198.51.100.7", "tcp:25 tcp:587"), 0), d);
        assert_int_not_equal(digest_of(DIGEST_POLICY("wan0", "203.0.113.25 198.51.100.7", "tcp:25 tcp:588"), 0), d);
        assert_int_not_equal(digest_of(DIGEST_POLICY("wan9", "203.0.113.25 198.51.100.7", "tcp:25 tcp:587"), 0), d);

        /* Same shape (chains, rule counts, sets, counters), other rules: only the comment tells. */
        assert_int_equal(compile_table(pp(p), 1, "t", TABLE, &r), 0);
        assert_int_equal(compile_table(pp(q), 1, "t", TABLE, &s), 0);
        assert_non_null(ruleset_comment(r));
        assert_non_null(strstr(ruleset_comment(r), "killswitchd "));
        assert_non_null(strstr(ruleset_comment(r), " digest "));
        assert_string_not_equal(ruleset_comment(r), ruleset_comment(s));
        assert_int_equal(ruleset_summarize(r, &want), 0);
        assert_int_equal(ruleset_summarize(s, &have), 0);
        assert_string_equal(want.comment, ruleset_comment(r));
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "different version of the agent or its rules differ"));
        summary_set_comment(&have, want.comment);
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);
        /* Another version whose rules are the same (same digest): adopted; another digest: not. */
        snprintf(msg, sizeof(msg), "killswitchd 9.9.9%s", strstr(want.comment, " digest "));
        summary_set_comment(&have, msg);
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);
        summary_set_comment(&have, "killswitchd 0.0.0 digest 0000000000000000");
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), -EPROTO);
        summary_set_comment(&have, NULL);       /* a table of an agent before digests */
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), -EPROTO);
        summary_clear(&want);
        summary_clear(&have);
        ruleset_free(r);
        ruleset_free(s);
        r = s = NULL;

        /* The policies in another order (a reload appends a new one; a start reads them by name). */
        {
                struct ks_policy *a = parse_named(base, "alpha"), *b = parse_named(base, "beta");
                uint64_t ab = 0, ba = 0;

                assert_int_equal(compile_table(pp(a, b), 2, NULL, TABLE, &r), 0);
                assert_int_equal(compile_table(pp(b, a), 2, "alpha", TABLE, &s), 0);
                assert_int_equal(ruleset_digest(r, &ab), 0);
                assert_int_equal(ruleset_digest(s, &ba), 0);
                assert_int_equal(ab, ba);
                assert_int_not_equal(ab, d);
                ruleset_free(r);
                ruleset_free(s);
                r = s = NULL;
                policy_free(a);
                policy_free(b);
        }

        /* The link layer's table too, the same hooked or not. */
        assert_int_equal(compile_links_table(pp(p), 1, NULL, NULL, 0, TABLE, 0, &r), 0);
        assert_int_equal(compile_links_table(pp(p), 1, p, (const char *const[]){ "wanx" }, 1, TABLE, 0, &s), 0);
        assert_non_null(ruleset_comment(r));
        assert_string_equal(ruleset_comment(r), ruleset_comment(s));
        ruleset_free(r);
        ruleset_free(s);
        policy_free(p);
        policy_free(q);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden_policies),
                cmocka_unit_test(test_isolate_shape),
                cmocka_unit_test(test_bytecode),
                cmocka_unit_test(test_links),
                cmocka_unit_test(test_links_order),
                cmocka_unit_test(test_tripwire),
                cmocka_unit_test(test_counter_names),
                cmocka_unit_test(test_invalid_arguments),
                cmocka_unit_test(test_longest_names),
                cmocka_unit_test(test_icmp_errors),
                cmocka_unit_test(test_options_off),
                cmocka_unit_test(test_reject_all),
                cmocka_unit_test(test_ping_and_management),
                cmocka_unit_test(test_conn_ping),
                cmocka_unit_test(test_hostnames_pinned),
                cmocka_unit_test(test_merge_overlaps),
                cmocka_unit_test(test_interval_elements),
                cmocka_unit_test(test_split_kinds),
                cmocka_unit_test(test_batch_small),
                cmocka_unit_test(test_table_many),
                cmocka_unit_test(test_hook),
                cmocka_unit_test(test_digest),
                cmocka_unit_test(test_hold_added),
                cmocka_unit_test(test_100k_addresses),
                cmocka_unit_test(test_staged_steps),
                cmocka_unit_test(test_staged_policies),
                cmocka_unit_test(test_conn_entries),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
