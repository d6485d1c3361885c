/* SPDX-License-Identifier: MIT */
/* Unit tests of the policy parser: every rule of killswitch.policy(5), good and bad, with line numbers. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "policy-lint.h"
#include "policy-match.h"
#include "tap.h"
#include "policy.h"

#define FILE_NAME "t.policy"

/* A valid head to which each test appends the lines it is about. */
#define HEAD "[Uplinks]\nInterface=wan0\n"

static int parse(const char *text, struct ks_policy **ret, struct ks_diags *d)
{
        return policy_parse_string(text, FILE_NAME, "t", ret, d);
}

static struct ks_policy *parse_ok(const char *text)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        int r = parse(text, &p, &d);

        for (size_t i = 0; i < d.n; i++)
                tap_note("unexpected: %s\n", d.msgs[i]);
        assert_int_equal(r, 0);
        assert_int_equal(d.n, 0);
        assert_non_null(p);
        diags_clear(&d);
        return p;
}

/* Parse text that must fail with exactly the given diagnostics, in order. */
static void parse_fails(const char *text, ...)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        const char *want;
        va_list ap;
        size_t i = 0;

        assert_int_equal(parse(text, &p, &d), -EINVAL);
        assert_null(p);
        va_start(ap, text);
        while ((want = va_arg(ap, const char *))) {
                if (i >= d.n)
                        fail_msg("missing diagnostic: %s", want);
                assert_string_equal(d.msgs[i], want);
                i++;
        }
        va_end(ap);
        for (size_t j = i; j < d.n; j++)
                tap_note("extra: %s\n", d.msgs[j]);
        assert_int_equal(d.n, i);
        diags_clear(&d);
}

/* ---- Good input -------------------------------------------------------- */

static void test_issue_example(void **state)
{
        struct ks_policy *p = parse_ok(
                "[Policy]\n"
                "Description=Cut the internet uplinks; keep the SIP trunk and the mail relay\n"
                "\n"
                "[Uplinks]\n"
                "Interface=wan0 wan1            # space-separated, repeatable; Linux names (max 15 chars)\n"
                "\n"
                "[Gateway phone]                # any number of gateways, each with a unique name\n"
                "Address=203.0.113.5            # IPv4/IPv6 addresses or CIDR prefixes\n"
                "Ports=udp:5060 tcp:5061 udp:10000-20000   # proto:port or proto:low-high\n"
                "\n"
                "[Gateway mail]\n"
                "Address=203.0.113.25 2001:db8:25::25\n"
                "Ports=tcp:25 tcp:465 tcp:587 tcp:993\n");

        assert_string_equal(p->name, "t");
        assert_string_equal(p->path, FILE_NAME);
        assert_string_equal(p->description, "Cut the internet uplinks; keep the SIP trunk and the mail relay");
        assert_int_equal(p->n_uplinks, 2);
        assert_string_equal(p->uplinks[0], "wan0");
        assert_string_equal(p->uplinks[1], "wan1");
        assert_int_equal(p->n_gateways, 2);

        struct ks_gateway *g = &p->gateways[0];
        assert_string_equal(g->name, "phone");
        assert_int_equal(g->line, 7);
        assert_int_equal(g->n_addrs, 1);
        assert_int_equal(g->addrs[0].family, AF_INET);
        assert_int_equal(g->addrs[0].len, 32);
        assert_memory_equal(g->addrs[0].addr, ((uint8_t[]){ 203, 0, 113, 5 }), 4);
        assert_int_equal(g->n_ports, 3);
        assert_int_equal(g->ports[0].proto, IPPROTO_UDP);
        assert_int_equal(g->ports[0].low, 5060);
        assert_int_equal(g->ports[0].high, 5060);
        assert_int_equal(g->ports[1].proto, IPPROTO_TCP);
        assert_int_equal(g->ports[2].low, 10000);
        assert_int_equal(g->ports[2].high, 20000);

        g = &p->gateways[1];
        assert_string_equal(g->name, "mail");
        assert_int_equal(g->line, 11);
        assert_int_equal(g->n_addrs, 2);
        assert_int_equal(g->addrs[1].family, AF_INET6);
        assert_int_equal(g->addrs[1].len, 128);
        assert_memory_equal(g->addrs[1].addr,
                            ((uint8_t[]){ 0x20, 0x01, 0x0d, 0xb8, 0, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25 }), 16);
        assert_int_equal(g->n_ports, 4);
        policy_free(p);
}

static void test_comments(void **state)
{
        struct ks_policy *p = parse_ok(
                "# a comment\n"
                "; another comment\n"
                "   # indented comment\n"
                "\t; indented with a tab\n"
                "[Policy]   # after a header\n"
                "Description=keep#this and ; this too\t# but not this\n"
                HEAD
                "[Gateway a]\t# a tab before the comment\n"
                "Address=192.0.2.1 # 192.0.2.2\n");

        /* "#" after a blank ends the value; "#" inside a word and ";" after the start do not. */
        assert_string_equal(p->description, "keep#this and ; this too");
        assert_int_equal(p->gateways[0].n_addrs, 1);
        policy_free(p);
}

static void test_semicolon_is_not_inline_comment(void **state)
{
        parse_fails(HEAD "[Gateway a] ; comment?\nAddress=192.0.2.1 ; 192.0.2.2\n",
                    FILE_NAME ":3: [Gateway a] ; comment?: section header must end with \"]\"",
                    NULL);
}

static void test_inline_comment_kept_without_blank(void **state)
{
        struct ks_policy *p = parse_ok("[Policy]\nDescription=issue#42 fixed # comment\n" HEAD);

        assert_string_equal(p->description, "issue#42 fixed");
        policy_free(p);
}

static void test_whitespace_and_crlf(void **state)
{
        struct ks_policy *p = parse_ok(
                "[Uplinks]\r\n"
                "  Interface  =  wan0\t wan1  \r\n"
                "[ Gateway   gw ]\r\n"
                "Address = 192.0.2.1\r\n");

        assert_int_equal(p->n_uplinks, 2);
        assert_string_equal(p->uplinks[1], "wan1");
        assert_string_equal(p->gateways[0].name, "gw");
        policy_free(p);
}

static void test_repeated_keys_accumulate(void **state)
{
        struct ks_policy *p = parse_ok(
                "[Uplinks]\nInterface=wan0\nInterface=wan1 wan0\n"
                "[Gateway g]\nAddress=192.0.2.1\nAddress=2001:db8::/32 10.0.0.0/8\n"
                "Ports=tcp:1\nPorts=udp:2-3\n");

        assert_int_equal(p->n_uplinks, 2);              /* wan0 once */
        assert_int_equal(p->gateways[0].n_addrs, 3);
        assert_int_equal(p->gateways[0].addrs[1].len, 32);
        assert_int_equal(p->gateways[0].addrs[2].len, 8);
        assert_int_equal(p->gateways[0].n_ports, 2);
        policy_free(p);
}

static void test_gateway_without_ports_is_all_traffic(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Gateway web]\nAddress=192.0.2.0/24\n");

        assert_int_equal(p->gateways[0].n_ports, 0);
        assert_null(p->description);
        policy_free(p);
}

static void test_no_gateway_is_valid(void **state)
{
        struct ks_policy *p = parse_ok(HEAD);

        assert_int_equal(p->n_gateways, 0);
        policy_free(p);
}

static void test_limits_good(void **state)
{
        struct ks_policy *p = parse_ok(
                "[Uplinks]\nInterface=abcdefghijklmno x.y wan-0_1 ...\n"
                "[Gateway abcdefghijklmnopqrstuvwxyz-_0123]\n"
                "Address=0.0.0.0/0 ::/0 255.255.255.255 ::ffff:192.0.2.1 fe80::/10\n"
                "Ports=tcp:0 udp:65535 sctp:0-65535 tcp:7-7\n");

        assert_string_equal(p->uplinks[0], "abcdefghijklmno");
        assert_int_equal(p->gateways[0].addrs[0].len, 0);
        assert_int_equal(p->gateways[0].ports[1].high, 65535);
        assert_int_equal(p->gateways[0].ports[2].proto, IPPROTO_SCTP);
        policy_free(p);
}

/* ---- Bad input: structure ---------------------------------------------- */

static void test_unknown_section(void **state)
{
        parse_fails(HEAD "\n[Gateways x]\nAddress=nonsense\nwhatever\n[policy]\n",
                    FILE_NAME ":4: unknown section [Gateways x]; expected [Policy], [Uplinks], [Management], [Gateway NAME] or [Service NAME]",
                    FILE_NAME ":7: unknown section [policy]; expected [Policy], [Uplinks], [Management], [Gateway NAME] or [Service NAME]",
                    NULL);
}

static void test_broken_header(void **state)
{
        parse_fails(HEAD "[Policy\n[Policy] x\n",
                    FILE_NAME ":3: [Policy: section header must end with \"]\"",
                    FILE_NAME ":4: [Policy] x: section header must end with \"]\"",
                    NULL);
}

static void test_unknown_key(void **state)
{
        parse_fails("[Policy]\nName=x\n[Uplinks]\nInterfaces=wan0\nInterface=wan0\n[Gateway g]\nAdress=192.0.2.1\nAddress=192.0.2.1\n",
                    FILE_NAME ":2: unknown key \"Name\" in [Policy]; expected Description=, KeepICMPErrors= or Reject=",
                    FILE_NAME ":4: unknown key \"Interfaces\" in [Uplinks]; expected Interface=, KeepNeighborDiscovery= or KeepDHCP=",
                    FILE_NAME ":7: unknown key \"Adress\" in [Gateway g]; expected Address=, Ports=, Ping=, Local= or Direction=",
                    NULL);
}

static void test_key_outside_section(void **state)
{
        parse_fails("\n# comment\nInterface=wan0\n" HEAD,
                    FILE_NAME ":3: Interface= outside a section; put it under [Policy], [Uplinks], [Management], "
                    "[Gateway NAME] or [Service NAME]",
                    NULL);
}

static void test_line_without_equals(void **state)
{
        parse_fails(HEAD "Interface wan1\n= value\n",
                    FILE_NAME ":3: \"Interface wan1\": line without \"=\"; expected KEY=VALUE",
                    FILE_NAME ":4: missing key before \"=\"; expected KEY=VALUE",
                    NULL);
}

static void test_empty_value(void **state)
{
        parse_fails("[Policy]\nDescription=   # only a comment\n" HEAD "[Gateway g]\nAddress=192.0.2.1\nPorts=\n",
                    FILE_NAME ":2: Description= has an empty value",
                    FILE_NAME ":7: Ports= has an empty value",
                    NULL);
}

static void test_duplicate_sections(void **state)
{
        parse_fails("[Policy]\nDescription=a\n" HEAD "[Policy]\nDescription=b\n[Uplinks]\nInterface=wan1\n",
                    FILE_NAME ":5: duplicate [Policy] section (first on line 1); a policy has one",
                    FILE_NAME ":6: Description= given twice (first on line 2)",
                    FILE_NAME ":7: duplicate [Uplinks] section (first on line 3); a policy has one",
                    NULL);
}

static void test_duplicate_gateway(void **state)
{
        parse_fails(HEAD "[Gateway mail]\nAddress=192.0.2.1\n\n[Gateway mail]\nAddress=192.0.2.2\n",
                    FILE_NAME ":6: [Gateway mail]: duplicate gateway name (first on line 3); "
                    "merge the two sections or rename one",
                    NULL);
}

static void test_gateway_names(void **state)
{
        parse_fails(HEAD "[Gateway]\n[Gateway a/b]\n[Gateway abcdefghijklmnopqrstuvwxyz0123456]\n[Gateway two words]\n",
                    FILE_NAME ":3: [Gateway] needs a name: [Gateway NAME]",
                    FILE_NAME ":4: [Gateway a/b]: invalid gateway name; use 1-32 of A-Z a-z 0-9 _ -",
                    FILE_NAME ":5: [Gateway abcdefghijklmnopqrstuvwxyz0123456]: invalid gateway name; "
                    "use 1-32 of A-Z a-z 0-9 _ -",
                    FILE_NAME ":6: [Gateway two words]: invalid gateway name; use 1-32 of A-Z a-z 0-9 _ -",
                    NULL);
}

static void test_gateway_without_address(void **state)
{
        parse_fails(HEAD "[Gateway a]\nPorts=tcp:1\n[Gateway b]\nAddress=192.0.2.1\n[Gateway c]\n",
                    FILE_NAME ":3: [Gateway a] has no Address=; add the gateway's addresses",
                    FILE_NAME ":7: [Gateway c] has no Address=; add the gateway's addresses",
                    NULL);
}

static void test_no_uplink(void **state)
{
        parse_fails("[Policy]\nDescription=x\n[Uplinks]\n# none yet\n",
                    FILE_NAME ": no uplink: add an [Uplinks] section with Interface=NAME, "
                    "the interfaces that lead to the internet",
                    NULL);
        parse_fails("",
                    FILE_NAME ": no uplink: add an [Uplinks] section with Interface=NAME, "
                    "the interfaces that lead to the internet",
                    NULL);
}

/* ---- Bad input: values ------------------------------------------------- */

static void test_bad_interfaces(void **state)
{
        parse_fails("[Uplinks]\n"
                    "Interface=wan0 abcdefghijklmnop\n"
                    "Interface=a/b . ..\n"
                    "Interface=eth0:1 wan*\n"
                    "Interface=a\"b a\\b a\tb\001" "c\n",
                    FILE_NAME ":2: Interface: \"abcdefghijklmnop\": interface name longer than 15 characters",
                    FILE_NAME ":3: Interface: \"a/b\": interface names cannot contain \"/\" or \":\"",
                    FILE_NAME ":3: Interface: \".\": \".\" and \"..\" are not interface names",
                    FILE_NAME ":3: Interface: \"..\": \".\" and \"..\" are not interface names",
                    FILE_NAME ":4: Interface: \"eth0:1\": interface names cannot contain \"/\" or \":\"",
                    FILE_NAME ":4: Interface: \"wan*\": wildcards are not supported; list each interface",
                    FILE_NAME ":5: Interface: \"a\"b\": interface names cannot contain quotes, backslashes or control characters",
                    FILE_NAME ":5: Interface: \"a\\b\": interface names cannot contain quotes, backslashes or control characters",
                    FILE_NAME ":5: Interface: \"b\001" "c\": interface names cannot contain quotes, backslashes or control characters",
                    NULL);
}

static void test_bad_addresses(void **state)
{
        parse_fails(HEAD "[Gateway g]\n"
                    "Address=192.0.2.1 300.1.2.3 192.0.2 example.com/24 fe80::1%eth0\n"
                    "Address=10.0.0.0/33 2001:db8::/129 10.0.0.0/ 10.0.0.0/-1 10.0.0.0/8x\n",
                    FILE_NAME ":4: Address: \"300.1.2.3\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":4: Address: \"192.0.2\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":4: Address: \"example.com/24\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":4: Address: \"fe80::1%eth0\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":5: Address: \"10.0.0.0/33\": prefix length must be 0-32",
                    FILE_NAME ":5: Address: \"2001:db8::/129\": prefix length must be 0-128",
                    FILE_NAME ":5: Address: \"10.0.0.0/\": prefix length must be 0-32",
                    FILE_NAME ":5: Address: \"10.0.0.0/-1\": prefix length must be 0-32",
                    FILE_NAME ":5: Address: \"10.0.0.0/8x\": prefix length must be 0-32",
                    NULL);
}

static void test_host_bits(void **state)
{
        parse_fails(HEAD "[Gateway g]\n"
                    "Address=203.0.113.7/24 2001:db8::1/64 192.0.2.128/25\n"
                    "Address=10.1.2.3/0\n",
                    FILE_NAME ":4: Address: \"203.0.113.7/24\": host bits set after the prefix; "
                    "did you mean 203.0.113.0/24?",
                    FILE_NAME ":4: Address: \"2001:db8::1/64\": host bits set after the prefix; "
                    "did you mean 2001:db8::/64?",
                    FILE_NAME ":5: Address: \"10.1.2.3/0\": host bits set after the prefix; did you mean 0.0.0.0/0?",
                    NULL);
}

static void test_bad_ports(void **state)
{
        parse_fails(HEAD "[Gateway g]\nAddress=192.0.2.1\n"
                    "Ports=tcp:70000 udp:20000-10000 icmp:1\n"
                    "Ports=5060 tcp:smtp tcp: tcp:1- tcp:-5 TCP:25\n"
                    "Ports=udp:1-65536 tcp:+1 tcp:1-2-3\n",
                    FILE_NAME ":5: Ports: \"tcp:70000\": port out of range 0-65535",
                    FILE_NAME ":5: Ports: \"udp:20000-10000\": reversed range; did you mean udp:10000-20000?",
                    FILE_NAME ":5: Ports: \"icmp:1\": unknown protocol \"icmp\"; use tcp, udp or sctp",
                    FILE_NAME ":6: Ports: \"5060\": expected PROTO:PORT or PROTO:LOW-HIGH, e.g. udp:5060",
                    FILE_NAME ":6: Ports: \"tcp:smtp\": \"smtp\" is not a port number 0-65535",
                    FILE_NAME ":6: Ports: \"tcp:\": \"\" is not a port number 0-65535",
                    FILE_NAME ":6: Ports: \"tcp:1-\": \"\" is not a port number 0-65535",
                    FILE_NAME ":6: Ports: \"tcp:-5\": \"\" is not a port number 0-65535",
                    FILE_NAME ":6: Ports: \"TCP:25\": unknown protocol \"TCP\"; use tcp, udp or sctp",
                    FILE_NAME ":7: Ports: \"udp:1-65536\": port out of range 0-65535",
                    FILE_NAME ":7: Ports: \"tcp:+1\": \"+1\" is not a port number 0-65535",
                    FILE_NAME ":7: Ports: \"tcp:1-2-3\": \"2-3\" is not a port number 0-65535",
                    NULL);
}

static void test_all_problems_collected(void **state)
{
        parse_fails("[Policy]\n"                          /* 1 */
                    "Description=x\n"                     /* 2 */
                    "Colour=blue\n"                       /* 3 */
                    "[Uplinks]\n"                         /* 4 */
                    "Interface=averyveryverylongname\n"   /* 5 */
                    "[Gateway phone]\n"                   /* 6 */
                    "Address=203.0.113.5/24\n"            /* 7 */
                    "Ports=tcp:70000\n"                   /* 8 */
                    "[Gateway phone]\n"                   /* 9 */
                    "Address=203.0.113.6\n",              /* 10 */
                    FILE_NAME ":3: unknown key \"Colour\" in [Policy]; expected Description=, KeepICMPErrors= or Reject=",
                    FILE_NAME ":5: Interface: \"averyveryverylongname\": interface name longer than 15 characters",
                    FILE_NAME ":7: Address: \"203.0.113.5/24\": host bits set after the prefix; "
                    "did you mean 203.0.113.0/24?",
                    FILE_NAME ":8: Ports: \"tcp:70000\": port out of range 0-65535",
                    FILE_NAME ":9: [Gateway phone]: duplicate gateway name (first on line 6); "
                    "merge the two sections or rename one",
                    FILE_NAME ": no uplink: add an [Uplinks] section with Interface=NAME, "
                    "the interfaces that lead to the internet",
                    NULL);
}

static void test_diags_cap(void **state)
{
        _cleanup_free_ char *text = NULL;
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        size_t n = 5000;

        text = malloc(n * 6 + 1);
        assert_non_null(text);
        for (size_t i = 0; i < n; i++)
                memcpy(text + i * 6, "junk\n\n", 6);
        text[n * 6] = '\0';
        assert_int_equal(parse(text, &p, &d), -EINVAL);
        assert_int_equal(d.n, INI_DIAGS_MAX + 1);
        assert_string_equal(d.msgs[INI_DIAGS_MAX - 1], FILE_NAME ":39: \"junk\": line without \"=\"; expected KEY=VALUE");
        /* Every line is a problem, and so is the missing uplink. */
        assert_string_equal(d.msgs[INI_DIAGS_MAX], FILE_NAME ": ... and 4981 more problems; fix the ones above first "
                            "(is this the right file?)");
        diags_clear(&d);
}

/* A file that is no policy (a link to /etc/shadow): its lines are quoted cut short, and only so many. */
static void test_not_a_policy(void **state)
{
#define SECRET "root:$6$Ab3dEfGhIjKlMnOp$QrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyz"
        parse_fails(SECRET ":20228:0:99999:7:::\n" SECRET "=x\n[" SECRET "]\n[" SECRET "\n[Policy]\n" SECRET "=x\n",
                    FILE_NAME ":1: \"root:$6$Ab3dEfGhIjKlMnOp$QrStUvWxYz01234...\": line without \"=\"; "
                    "expected KEY=VALUE",
                    FILE_NAME ":2: root:$6$Ab3dEfGhIjKlMnOp$QrStUvWxYz01234...= outside a section; put it under "
                    "[Policy], [Uplinks], [Management], [Gateway NAME] or [Service NAME]",
                    FILE_NAME ":3: unknown section [root:$6$Ab3dEfGhIjKlMnOp$QrStUvWxYz01234...]; expected [Policy], "
                    "[Uplinks], [Management], [Gateway NAME] or [Service NAME]",
                    FILE_NAME ":4: [root:$6$Ab3dEfGhIjKlMnOp$QrStUvWxYz0123...: section header must end with \"]\"",
                    FILE_NAME ":6: unknown key \"root:$6$Ab3dEfGhIjKlMnOp$QrStUvWxYz01234...\" in [Policy]; expected "
                    "Description=, KeepICMPErrors= or Reject=",
                    FILE_NAME ": no uplink: add an [Uplinks] section with Interface=NAME, the interfaces that lead to "
                    "the internet",
                    NULL);
#undef SECRET
        /* A multi-byte character is not cut in two. */
        parse_fails("0123456789012345678901234567890123456789\xc3\xa9tait\n",
                    FILE_NAME ":1: \"0123456789012345678901234567890123456789...\": line without \"=\"; "
                    "expected KEY=VALUE",
                    FILE_NAME ": no uplink: add an [Uplinks] section with Interface=NAME, the interfaces that lead to "
                    "the internet",
                    NULL);
        parse_fails("012345678901234567890123456789012345678\xc3\xa9tait\n",
                    FILE_NAME ":1: \"012345678901234567890123456789012345678...\": line without \"=\"; "
                    "expected KEY=VALUE",
                    FILE_NAME ": no uplink: add an [Uplinks] section with Interface=NAME, the interfaces that lead to "
                    "the internet",
                    NULL);
}

/* An Address= line with an invalid value was reported: not again as "has no Address=" (a false hint). */
static void test_invalid_address_no_cascade(void **state)
{
        parse_fails(HEAD "[Gateway a]\nAddress=203.0.113.7/24\nPorts=tcp:25\n"
                    "[Service s]\nAddress=mail..example.org\nPorts=tcp:25\n"
                    "[Gateway b]\nPorts=tcp:25\n",
                    FILE_NAME ":4: Address: \"203.0.113.7/24\": host bits set after the prefix; did you mean "
                    "203.0.113.0/24?",
                    FILE_NAME ":7: Address: \"mail..example.org\": empty label in host name",
                    FILE_NAME ":9: [Gateway b] has no Address=; add the gateway's addresses",
                    NULL);
}


/* ---- Link upkeep, ICMP, Reject=, Ping=, [Management] -------------------- */

static void test_defaults(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Gateway g]\nAddress=192.0.2.1\nPorts=tcp:25\n");

        assert_true(p->keep_neighbor_discovery);
        assert_true(p->keep_dhcp);
        assert_true(p->keep_icmp_errors);
        assert_int_equal(p->reject, KS_REJECT_TCP);
        assert_false(p->gateways[0].ping);
        assert_false(p->gateways[0].management);
        assert_int_equal(p->gateways[0].n_hostnames, 0);
        policy_free(p);
}

static void test_booleans(void **state)
{
        static const char *const yes[] = { "yes", "YES", "y", "true", "True", "t", "1", "on", "On" };
        static const char *const no[] = { "no", "No", "n", "false", "f", "0", "off", "OFF" };

        for (int v = 0; v < 2; v++)
                for (size_t i = 0; i < (v ? ELEMENTSOF(yes) : ELEMENTSOF(no)); i++) {
                        const char *w = v ? yes[i] : no[i];
                        _cleanup_free_ char *text = NULL;
                        struct ks_policy *p;

                        assert_true(asprintf(&text,
                                             "[Policy]\nKeepICMPErrors=%s\n"
                                             "[Uplinks]\nInterface=wan0\nKeepNeighborDiscovery=%s\nKeepDHCP=%s\n"
                                             "[Gateway g]\nAddress=192.0.2.1\nPing=%s # comment\n",
                                             w, w, w, w) > 0);
                        p = parse_ok(text);
                        assert_int_equal(p->keep_icmp_errors, v);
                        assert_int_equal(p->keep_neighbor_discovery, v);
                        assert_int_equal(p->keep_dhcp, v);
                        assert_int_equal(p->gateways[0].ping, v);
                        policy_free(p);
                }
}

static void test_bad_booleans(void **state)
{
        parse_fails("[Policy]\nKeepICMPErrors=maybe\n"
                    "[Uplinks]\nInterface=wan0\nKeepNeighborDiscovery=yes no\nKeepDHCP=2\n"
                    "KeepDHCP=yes\nKeepDHCP=no\n"
                    "[Gateway g]\nAddress=192.0.2.1\nPing=enable\nPing=yes\n"
                    "[Gateway h]\nAddress=192.0.2.2\nPing=yes\n",
                    FILE_NAME ":2: KeepICMPErrors: \"maybe\": not a boolean; use yes or no",
                    FILE_NAME ":5: KeepNeighborDiscovery: \"yes no\": not a boolean; use yes or no",
                    FILE_NAME ":6: KeepDHCP: \"2\": not a boolean; use yes or no",
                    FILE_NAME ":7: KeepDHCP= given twice (first on line 6)",
                    FILE_NAME ":8: KeepDHCP= given twice (first on line 6)",
                    FILE_NAME ":11: Ping: \"enable\": not a boolean; use yes or no",
                    FILE_NAME ":12: Ping= given twice (first on line 11)",
                    NULL);
}

static void test_reject(void **state)
{
        static const struct {
                const char *value;
                enum ks_reject reject;
        } ok[] = { { "tcp", KS_REJECT_TCP }, { "all", KS_REJECT_ALL }, { "none", KS_REJECT_NONE } };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_free_ char *text = NULL;
                struct ks_policy *p;

                assert_true(asprintf(&text, "[Policy]\nReject=%s\n" HEAD, ok[i].value) > 0);
                p = parse_ok(text);
                assert_int_equal(p->reject, ok[i].reject);
                policy_free(p);
        }
        parse_fails("[Policy]\nReject=udp\nReject=TCP\nReject=tcp\nReject=all\n" HEAD,
                    FILE_NAME ":2: Reject: \"udp\": expected tcp, all or none",
                    FILE_NAME ":3: Reject= given twice (first on line 2)",
                    FILE_NAME ":4: Reject= given twice (first on line 2)",
                    FILE_NAME ":5: Reject= given twice (first on line 2)",
                    NULL);
}

static void test_management(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Gateway mail]\nAddress=192.0.2.25\nPorts=tcp:25\n"
                                       "[Management]\nAddress=198.51.100.7 2001:db8::7\nPing=yes\n");
        struct ks_gateway *g;

        assert_int_equal(p->n_gateways, 2);
        g = &p->gateways[1];
        assert_string_equal(g->name, "management");
        assert_true(g->management);
        assert_true(g->ping);
        assert_int_equal(g->line, 6);
        assert_int_equal(g->n_addrs, 2);
        /* Ports= defaults to SSH. */
        assert_int_equal(g->n_ports, 1);
        assert_int_equal(g->ports[0].proto, IPPROTO_TCP);
        assert_int_equal(g->ports[0].low, 22);
        assert_int_equal(g->ports[0].high, 22);
        assert_false(p->gateways[0].management);
        policy_free(p);

        p = parse_ok("[Management]\nAddress=198.51.100.7\nPorts=tcp:2222 udp:60000-61000\n" HEAD);
        assert_int_equal(p->gateways[0].n_ports, 2);
        assert_int_equal(p->gateways[0].ports[0].low, 2222);
        assert_false(p->gateways[0].ping);
        policy_free(p);
}

static void test_bad_management(void **state)
{
        parse_fails(HEAD "[Management]\nPorts=tcp:22\nColour=red\n[Management]\nAddress=192.0.2.1\n",
                    FILE_NAME ":5: unknown key \"Colour\" in [Management]; expected Address=, Ports=, Ping=, Local= or Direction=",
                    FILE_NAME ":6: duplicate [Management] section (first on line 3); a policy has one",
                    FILE_NAME ":3: [Management] has no Address=; add the addresses the admins connect from",
                    NULL);
        parse_fails(HEAD "[Management]\nAddress=192.0.2.1\n[Gateway management]\nAddress=192.0.2.2\n",
                    FILE_NAME ":5: [Gateway management]: duplicate gateway name ([Management] on line 3 is the "
                    "gateway \"management\"); rename this gateway",
                    NULL);
        parse_fails(HEAD "[Gateway management]\nAddress=192.0.2.2\n[Management]\nAddress=192.0.2.1\n",
                    FILE_NAME ":5: [Management]: the name \"management\" is taken by [Gateway management] "
                    "(line 3); rename that gateway",
                    NULL);
}

static void test_description_utf8(void **state)
{
        struct ks_policy *p = parse_ok("[Policy]\nDescription=Coupure — Ünterbrechung 切断 🔌\n" HEAD);

        assert_string_equal(p->description, "Coupure — Ünterbrechung 切断 🔌");
        policy_free(p);
        /* Latin-1, a lone continuation byte, an overlong "/", a surrogate, beyond U+10FFFF, truncated. */
        static const char *const bad[] = { "caf\xe9", "a\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                           "ab\xe2\x82" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = NULL;

                assert_true(asprintf(&text, HEAD "[Policy]\nDescription=%s\n", bad[i]) > 0);
                parse_fails(text, FILE_NAME ":4: Description: not valid UTF-8; save the file as UTF-8", NULL);
        }
}

/* ---- Host names -------------------------------------------------------- */

static void test_hostnames(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Gateway mail]\n"
                                       "Address=mail.example.org 192.0.2.25 relay-2.example.org.\n"
                                       "Address=MAIL.example.org localhost x1 0x1g 1a.example\n"
                                       "[Management]\nAddress=jump.example.net\n");
        struct ks_gateway *g = &p->gateways[0];

        assert_int_equal(g->n_addrs, 1);
        /* Each name once per gateway (case does not matter), in order, with its line. */
        assert_int_equal(g->n_hostnames, 6);
        assert_string_equal(g->hostnames[0].name, "mail.example.org");
        assert_int_equal(g->hostnames[0].line, 4);
        assert_int_equal(g->hostnames[0].n_addrs, 0);
        assert_null(g->hostnames[0].addrs);
        assert_string_equal(g->hostnames[1].name, "relay-2.example.org.");
        assert_string_equal(g->hostnames[2].name, "localhost");
        assert_int_equal(g->hostnames[2].line, 5);
        assert_string_equal(g->hostnames[3].name, "x1");
        assert_string_equal(g->hostnames[4].name, "0x1g");
        assert_string_equal(g->hostnames[5].name, "1a.example");
        assert_int_equal(p->gateways[1].n_hostnames, 1);
        assert_int_equal(p->gateways[1].n_addrs, 0);
        policy_free(p);

        /* A gateway with only host names has an address. */
        p = parse_ok(HEAD "[Gateway a]\nAddress=a.example\n");
        assert_int_equal(p->gateways[0].n_hostnames, 1);
        policy_free(p);
}

static void test_bad_hostnames(void **state)
{
        _cleanup_free_ char *text = NULL, *want_label = NULL, *want_long = NULL;
        char label[65], name[256];

        parse_fails(HEAD "[Gateway g]\n"
                    "Address=mail_1.example.org -mail.example mail-.example a..b .a a.\n"
                    "Address=1.2.3.4.5 example.123 0x7f000001 127.1 mail.example.org:25 m\xc3\xa4il.example\n",
                    FILE_NAME ":4: Address: \"mail_1.example.org\": not an IPv4 or IPv6 address, "
                    "ADDRESS/PREFIXLEN or host name (letters, digits, \"-\" and dots)",
                    FILE_NAME ":4: Address: \"-mail.example\": a host name label cannot start with \"-\"",
                    FILE_NAME ":4: Address: \"mail-.example\": a host name label cannot end with \"-\"",
                    FILE_NAME ":4: Address: \"a..b\": empty label in host name",
                    FILE_NAME ":4: Address: \".a\": empty label in host name",
                    /* Numeric-looking words must be addresses: no top-level domain is all digits. */
                    FILE_NAME ":5: Address: \"1.2.3.4.5\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":5: Address: \"example.123\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":5: Address: \"0x7f000001\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":5: Address: \"127.1\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":5: Address: \"mail.example.org:25\": not an IPv4 or IPv6 address "
                    "(or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":5: Address: \"m\xc3\xa4il.example\": not an IPv4 or IPv6 address, "
                    "ADDRESS/PREFIXLEN or host name (letters, digits, \"-\" and dots)",
                    NULL);

        /* A label of 64 characters; a name of 254 (253 is the limit; a final dot does not count). */
        memset(label, 'a', 64);
        label[64] = '\0';
        memset(name, 'b', 254);
        for (size_t i = 63; i < 254; i += 64)
                name[i] = '.';
        name[254] = '\0';
        assert_true(asprintf(&text, HEAD "[Gateway g]\nAddress=%s.example %s\nAddress=%.253s %.253s.\n",
                             label, name, name, name) > 0);
        assert_true(asprintf(&want_label, FILE_NAME ":4: Address: \"%s.example\": "
                             "host name label longer than 63 characters", label) > 0);
        assert_true(asprintf(&want_long, FILE_NAME ":4: Address: \"%s\": host name longer than 253 characters",
                             name) > 0);
        parse_fails(text, want_label, want_long, NULL);
}

/* A fake resolver: "*.v4" has one IPv4 address, "*.both" two IPv4 (one twice) and one IPv6, others fail. */
struct fake {
        unsigned calls;
};

static int fake_resolver(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata)
{
        struct fake *f = userdata;
        size_t n = strlen(name);
        struct ks_prefix *v;

        f->calls++;
        if (n > 3 && strcasecmp(name + n - 3, ".v4") == 0) {
                v = calloc(1, sizeof(*v));
                assert_non_null(v);
                v[0] = (struct ks_prefix) { .family = AF_INET, .addr = { 192, 0, 2, 4 }, .len = 32 };
                *ret = v;
                *ret_n = 1;
                return 0;
        }
        if (n > 5 && strcmp(name + n - 5, ".both") == 0) {
                v = calloc(3, sizeof(*v));
                assert_non_null(v);
                v[0] = (struct ks_prefix) { .family = AF_INET, .addr = { 198, 51, 100, 1 }, .len = 32 };
                v[1] = (struct ks_prefix) { .family = AF_INET6, .addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 },
                                            .len = 128 };
                v[2] = v[0];
                *ret = v;
                *ret_n = 3;
                return 0;
        }
        if (strcmp(name, "empty.example") == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (strcmp(name, "bogus.example") == 0) {
                v = calloc(1, sizeof(*v));
                assert_non_null(v);
                v[0].family = AF_UNIX;
                *ret = v;
                *ret_n = 1;
                return 0;
        }
        if (strcmp(name, "timeout.example") == 0)
                return -EAGAIN;
        *ret_error = strdup("Name or service not known");
        return -ENOENT;
}

static void test_resolve(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Gateway a]\nAddress=192.0.2.1 mail.v4\nAddress=x.both\n"
                                       "[Gateway b]\nAddress=MAIL.V4\n"
                                       "[Management]\nAddress=x.both\n");
        struct ks_diags d = {};
        struct fake f = {};
        struct ks_gateway *g = &p->gateways[0];

        assert_int_equal(policy_resolve(p, fake_resolver, &f, &d), 0);
        assert_int_equal(d.n, 0);
        /* Each distinct name asked once. */
        assert_int_equal(f.calls, 2);
        /* Pinned in the gateway's addresses, after the numeric ones, and recorded per name (deduplicated). */
        assert_int_equal(g->n_addrs, 1 + 1 + 2);
        assert_memory_equal(g->addrs[1].addr, ((uint8_t[]){ 192, 0, 2, 4 }), 4);
        assert_int_equal(g->addrs[3].family, AF_INET6);
        assert_int_equal(g->hostnames[0].n_addrs, 1);
        assert_int_equal(g->hostnames[1].n_addrs, 2);
        assert_int_equal(g->hostnames[1].addrs[0].family, AF_INET);
        assert_int_equal(g->hostnames[1].addrs[1].family, AF_INET6);
        assert_int_equal(g->hostnames[1].addrs[1].len, 128);
        assert_int_equal(p->gateways[1].n_addrs, 1);
        assert_int_equal(p->gateways[2].n_addrs, 2);
        assert_true(p->gateways[2].management);
        /* Pinned names are never asked again. */
        assert_int_equal(policy_resolve(p, fake_resolver, &f, &d), 0);
        assert_int_equal(f.calls, 2);
        assert_int_equal(g->n_addrs, 4);
        policy_free(p);
}

static void test_resolve_fails(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Gateway a]\nAddress=mail.example.org ok.v4\n"
                                       "Address=timeout.example\n"
                                       "[Gateway b]\nAddress=192.0.2.1 empty.example\nAddress=mail.example.org\n"
                                       "[Management]\nAddress=bogus.example\n");
        struct ks_diags d = {};
        struct fake f = {};

        assert_int_equal(policy_resolve(p, fake_resolver, &f, &d), -EINVAL);
        assert_int_equal(f.calls, 5);
        assert_int_equal(d.n, 5);
        assert_string_equal(d.msgs[0], FILE_NAME ":4: Address: \"mail.example.org\": name does not resolve "
                                       "(Name or service not known)");
        assert_string_equal(d.msgs[1], FILE_NAME ":5: Address: \"timeout.example\": name does not resolve "
                                       "(Resource temporarily unavailable)");
        assert_string_equal(d.msgs[2], FILE_NAME ":7: Address: \"empty.example\": name does not resolve "
                                       "(no addresses)");
        assert_string_equal(d.msgs[3], FILE_NAME ":8: Address: \"mail.example.org\": name does not resolve "
                                       "(Name or service not known)");
        assert_string_equal(d.msgs[4], FILE_NAME ":10: Address: \"bogus.example\": name does not resolve "
                                       "(the resolver returned something that is not an address)");
        /* Nothing pinned: the policy is as parsed. */
        assert_int_equal(p->gateways[0].n_addrs, 0);
        assert_int_equal(p->gateways[0].hostnames[1].n_addrs, 0);
        assert_int_equal(p->gateways[1].n_addrs, 1);
        diags_clear(&d);
        assert_int_equal(policy_resolve(NULL, fake_resolver, &f, &d), -EINVAL);
        assert_int_equal(policy_resolve(p, NULL, &f, &d), -EINVAL);
        policy_free(p);
}

/* ---- Names and files --------------------------------------------------- */

static void test_name_valid(void **state)
{
        assert_int_equal(policy_name_valid("isolate"), 0);
        assert_int_equal(policy_name_valid("A-z_09"), 0);
        assert_int_equal(policy_name_valid("abcdefghijklmnopqrstuvwxyz012345"), 0);
        assert_int_equal(policy_name_valid("abcdefghijklmnopqrstuvwxyz0123456"), -EINVAL);
        assert_int_equal(policy_name_valid(""), -EINVAL);
        assert_int_equal(policy_name_valid("a.b"), -EINVAL);
        assert_int_equal(policy_name_valid("a b"), -EINVAL);
        assert_int_equal(policy_name_valid("../x"), -EINVAL);
        assert_int_equal(policy_name_valid(NULL), -EINVAL);
        /* A letter first: nft reads "1x/inbound" as a number. */
        assert_int_equal(policy_name_valid("x"), 0);
        assert_int_equal(policy_name_valid("Z9"), 0);
        assert_int_equal(policy_name_valid("1x"), -EINVAL);
        assert_int_equal(policy_name_valid("9"), -EINVAL);
        assert_int_equal(policy_name_valid("-x"), -EINVAL);
        assert_int_equal(policy_name_valid("_x"), -EINVAL);
}

/* Gateway names keep their old rule: they never start an nft word. */
static void test_gateway_name_digit(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Gateway 1st]\nAddress=192.0.2.1\n[Gateway -x]\nAddress=192.0.2.2\n");

        assert_string_equal(p->gateways[0].name, "1st");
        assert_string_equal(p->gateways[1].name, "-x");
        policy_free(p);
}

static void test_diags_add(void **state)
{
        struct ks_diags d = {};

        assert_int_equal(diags_add(&d, "f", 3, "x=%d", 1), 0);
        assert_int_equal(diags_add(&d, "f", 0, "whole file"), 0);
        assert_int_equal(diags_add(NULL, "f", 0, "ignored"), 0);
        assert_int_equal(d.n, 2);
        assert_string_equal(d.msgs[0], "f:3: x=1");
        assert_string_equal(d.msgs[1], "f: whole file");
        diags_clear(&d);
        assert_int_equal(d.n, 0);
        assert_null(d.msgs);
        diags_clear(NULL);
}

static char *write_temp(const char *dir, const char *name, const char *text, size_t len)
{
        char *path;
        int fd;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t)len);
        close(fd);
        return path;
}

static void test_parse_file(void **state)
{
        char dir[] = "/tmp/test-policy.XXXXXX";
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        char *path;

        assert_non_null(mkdtemp(dir));

        path = write_temp(dir, "web-only.policy", HEAD, strlen(HEAD));
        assert_int_equal(policy_parse_file(path, &p, &d), 0);
        assert_string_equal(p->name, "web-only");
        assert_string_equal(p->path, path);
        p = policy_free(p);
        unlink(path);
        free(path);

        path = write_temp(dir, "bad.policy", "[Uplinks]\nInterface=a/b\n", 24);
        assert_int_equal(policy_parse_file(path, &p, &d), -EINVAL);
        assert_int_equal(d.n, 2);
        assert_true(strncmp(d.msgs[0], path, strlen(path)) == 0);
        assert_string_equal(d.msgs[0] + strlen(path), ":2: Interface: \"a/b\": interface names cannot contain \"/\" or \":\"");
        diags_clear(&d);
        unlink(path);
        free(path);

        path = write_temp(dir, "nul.policy", HEAD "\0x", strlen(HEAD) + 2);
        assert_int_equal(policy_parse_file(path, &p, &d), -EINVAL);
        assert_int_equal(d.n, 1);
        assert_non_null(strstr(d.msgs[0], "nul.policy: contains a NUL byte"));
        diags_clear(&d);
        unlink(path);
        free(path);

        path = write_temp(dir, "bad name.policy", HEAD, strlen(HEAD));
        assert_int_equal(policy_parse_file(path, &p, &d), -EINVAL);
        assert_non_null(strstr(d.msgs[0], ": invalid policy name \"bad name\""));
        diags_clear(&d);
        unlink(path);
        free(path);

        path = write_temp(dir, "2nd.policy", HEAD, strlen(HEAD));
        assert_int_equal(policy_parse_file(path, &p, &d), -EINVAL);
        assert_int_equal(d.n, 1);
        assert_non_null(strstr(d.msgs[0], ": invalid policy name \"2nd\"; use a letter, then up to 31 of "
                                          "A-Z a-z 0-9 _ -, before \".policy\""));
        diags_clear(&d);
        unlink(path);
        free(path);

        path = write_temp(dir, "isolate.conf", HEAD, strlen(HEAD));
        assert_int_equal(policy_parse_file(path, &p, &d), -EINVAL);
        assert_non_null(strstr(d.msgs[0], "isolate.conf: not a policy file"));
        diags_clear(&d);
        unlink(path);
        free(path);

        assert_true(asprintf(&path, "%s/missing.policy", dir) > 0);
        assert_int_equal(policy_parse_file(path, &p, &d), -ENOENT);
        assert_non_null(strstr(d.msgs[0], "missing.policy: cannot open: No such file or directory"));
        diags_clear(&d);
        free(path);
        assert_null(p);
        rmdir(dir);
}

static void test_shipped_policy(void **state)
{
        const char *dir = getenv("POLICY_DIR");
        _cleanup_free_ char *path = NULL;
        struct ks_diags d = {};
        struct ks_policy *p = NULL;

        if (!dir)
                skip();
        assert_true(asprintf(&path, "%s/isolate.policy", dir) > 0);
        assert_int_equal(policy_parse_file(path, &p, &d), 0);
        assert_string_equal(p->name, "isolate");
        assert_non_null(p->description);
        assert_int_equal(p->n_uplinks, 2);
        assert_int_equal(p->n_gateways, 2);
        assert_string_equal(p->gateways[0].name, "sip-trunk");
        assert_string_equal(p->gateways[1].name, "relay");
        assert_true(p->gateways[1].tracked);
        assert_int_equal(p->gateways[1].direction, KS_DIRECTION_OUT);
        assert_int_equal(p->gateways[1].n_addrs, 2);
        assert_int_equal(p->gateways[1].n_locals, 2);
        assert_int_equal(p->gateways[1].n_ports, 2);
        assert_int_equal(p->n_services, 4);
        assert_string_equal(p->services[0].name, "pbx");
        assert_int_equal(p->services[0].n_from, 1);
        assert_string_equal(p->services[1].name, "mx");
        assert_string_equal(p->services[3].name, "notice");
        policy_free(p);
}

static void test_large_policy(void **state)
{
        size_t n = 100000, size = 0;
        _cleanup_free_ char *text = NULL;
        struct ks_policy *p;
        FILE *f = open_memstream(&text, &size);

        assert_non_null(f);
        fputs(HEAD "[Gateway big]\n", f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "Address=10.%zu.%zu.%zu\n", i >> 16, (i >> 8) & 0xff, i & 0xff);
        fclose(f);
        p = parse_ok(text);
        assert_int_equal(p->gateways[0].n_addrs, n);
        policy_free(p);
}

/* ---- Version 2: [Service], Local=, Direction=, Address=any ------------- */

static void test_v2_keys(void **state)
{
        struct ks_policy *p = parse_ok(HEAD
                "[Gateway relay]\nAddress=203.0.113.25\nPorts=tcp:25\nLocal=10.0.1.25 fd00:1::/64\nDirection=out\n"
                "[Gateway web]\nAddress=any\nPorts=tcp:443\n"
                "[Gateway old]\nAddress=192.0.2.1\n"
                "[Service mx]\nAddress=192.0.2.10 mx.example.org\nPorts=tcp:25\n"
                "[Service pbx]\nAddress=192.0.2.5\nFrom=203.0.113.0/24 sip.example.org\nPorts=udp:5060\n");
        const struct ks_gateway *g = &p->gateways[0];

        assert_int_equal(p->n_gateways, 3);
        assert_true(g->tracked);
        assert_int_equal(g->direction, KS_DIRECTION_OUT);
        assert_int_equal(g->n_locals, 2);
        assert_int_equal(g->locals[1].family, AF_INET6);
        assert_int_equal(g->locals[1].len, 64);
        assert_int_equal(g->address_line, 4);
        g = &p->gateways[1];
        assert_true(g->tracked);
        assert_int_equal(g->direction, KS_DIRECTION_BOTH);
        assert_int_equal(g->n_addrs, 2);
        assert_int_equal(g->addrs[0].len, 0);
        assert_int_equal(g->addrs[1].family, AF_INET6);
        assert_int_equal(g->addrs[1].len, 0);
        assert_false(p->gateways[2].tracked);
        assert_int_equal(p->n_services, 2);
        assert_string_equal(p->services[0].name, "mx");
        assert_int_equal(p->services[0].line, 13);
        assert_int_equal(p->services[0].n_addrs, 1);
        assert_int_equal(p->services[0].n_hostnames, 1);
        assert_int_equal(p->services[0].n_from, 0);
        assert_int_equal(p->services[1].n_from, 1);
        assert_int_equal(p->services[1].n_from_hostnames, 1);
        assert_string_equal(p->services[1].from_hostnames[0].name, "sip.example.org");
        assert_int_equal(p->uplink_lines[0], 2);
        policy_free(p);
}

static void test_v2_errors(void **state)
{
        parse_fails("[Uplinks]\nInterface=wan0,wan1 wan2\n"
                    "[Gateway g]\nAddress=192.0.2.1\nLocal=inside.example.org 10.0.0.1/8\nDirection=outbound\n"
                    "[Service s]\nAddress=any\nFrom=192.0.2.300\n"
                    "[Service s]\nAddress=192.0.2.1\nPorts=tcp:25\n"
                    "[Service g]\nAddress=192.0.2.1\nPorts=tcp:25\n"
                    "[Service t]\nFrom=any\n",
                    FILE_NAME ":2: Interface: \"wan0,wan1\": a comma is not a separator here; separate the values "
                    "by blanks (Interface=wan0 wan1), or repeat the key",
                    FILE_NAME ":5: Local: \"inside.example.org\": host names are not supported here; write the addresses",
                    FILE_NAME ":5: Local: \"10.0.0.1/8\": host bits set after the prefix; did you mean 10.0.0.0/8?",
                    FILE_NAME ":6: Direction: \"outbound\": expected out (this side opens the connections), in (the "
                    "remote side does) or both",
                    FILE_NAME ":8: Address: \"any\": a service needs the addresses of ours it is reached at (the "
                    "public ones, or the inside ones a DNAT rule sends it to)",
                    FILE_NAME ":9: From: \"192.0.2.300\": not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)",
                    FILE_NAME ":10: [Service s]: duplicate service name (first on line 7); merge the two sections "
                    "or rename one",
                    FILE_NAME ":13: [Service g]: the name is taken by the gateway on line 3; rename one",
                    FILE_NAME ":7: [Service s] has no Ports=; add the ports it listens on, e.g. Ports=tcp:25",
                    FILE_NAME ":16: [Service t] has no Address=; add the addresses of ours the internet connects to",
                    FILE_NAME ":16: [Service t] has no Ports=; add the ports it listens on, e.g. Ports=tcp:25",
                    NULL);
        parse_fails(HEAD "[Gateway c]\nAddress=192.0.2.1,192.0.2.2\nPorts=tcp:25,tcp:587\n",
                    FILE_NAME ":4: Address: \"192.0.2.1,192.0.2.2\": a comma is not a separator here; separate the "
                    "values by blanks (Address=192.0.2.1 192.0.2.2), or repeat the key",
                    FILE_NAME ":5: Ports: \"tcp:25,tcp:587\": a comma is not a separator here; separate the values "
                    "by blanks (Ports=tcp:25 tcp:587), or repeat the key",
                    NULL);
        parse_fails(HEAD "[Service mx]\nAddress=192.0.2.10\n[Gateway mx]\nAddress=192.0.2.1\n"
                    "[Service bad name]\nAddress=192.0.2.1\nPorts=tcp:1\n",
                    FILE_NAME ":5: [Gateway mx]: the name is taken by the service on line 3; rename one",
                    FILE_NAME ":7: [Service bad name]: invalid service name; use 1-32 of A-Z a-z 0-9 _ -",
                    FILE_NAME ":3: [Service mx] has no Ports=; add the ports it listens on, e.g. Ports=tcp:25",
                    NULL);
}

static int v2_resolver(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata)
{
        struct ks_prefix *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        if (strcmp(name, "nx.example.org") == 0) {
                free(a);
                *ret_error = strdup("no such name");
                return -ENOENT;
        }
        a->family = AF_INET;
        a->len = 32;
        a->addr[0] = 192;
        a->addr[3] = (uint8_t)strlen(name);
        *ret = a;
        *ret_n = 1;
        return 0;
}

static void test_v2_resolve(void **state)
{
        struct ks_policy *p = parse_ok(HEAD "[Service pbx]\nAddress=pbx.example.org\nFrom=sip.example.org\n"
                                       "Ports=udp:5060\n");
        struct ks_diags d = {};

        assert_int_equal(policy_resolve(p, v2_resolver, NULL, &d), 0);
        assert_int_equal(p->services[0].n_addrs, 1);
        assert_int_equal(p->services[0].addrs[0].addr[3], strlen("pbx.example.org"));
        assert_int_equal(p->services[0].n_from, 1);
        assert_int_equal(p->services[0].from[0].addr[3], strlen("sip.example.org"));
        assert_int_equal(p->services[0].from_hostnames[0].n_addrs, 1);
        policy_free(p);
        p = parse_ok(HEAD "[Service pbx]\nAddress=192.0.2.5\nFrom=nx.example.org\nPorts=udp:5060\n");
        assert_int_equal(policy_resolve(p, v2_resolver, NULL, &d), -EINVAL);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.msgs[0], FILE_NAME ":5: From: \"nx.example.org\": name does not resolve (no such name)");
        diags_clear(&d);
        policy_free(p);
}

/* Warnings of killswitchd --check, from the pure lint with a made-up host. */
static void test_v2_lint(void **state)
{
        struct ks_policy *p = parse_ok("[Uplinks]\nInterface=wan0 wan9\n"
                                       "[Gateway everyone]\nAddress=0.0.0.0/0\nPorts=tcp:25\n"
                                       "[Gateway ours]\nPorts=tcp:25\nAddress=198.51.100.1\n"
                                       "[Gateway local4]\nAddress=203.0.113.1 2001:db8::1\nLocal=10.0.0.1\n"
                                       "[Gateway out]\nAddress=any\nDirection=out\n"
                                       "[Gateway localany]\nAddress=any\nLocal=any\n"
                                       "[Service mx]\nAddress=198.51.100.1\nPorts=tcp:25\n");
        static const char *const ifs[] = { "lo", "wan0" };
        const struct ks_prefix host_addrs[] = { { .family = AF_INET, .addr = { 198, 51, 100, 1 }, .len = 32 } };
        const struct ks_host_view host = { host_addrs, 1, ifs, 2, NULL, 0, NULL, 0 };
        static const char *const bridges[] = { "wan0" };
        static const struct ks_stacked stacked[] = { { "wan0", "trunk0" }, { "lo", "x" } };
        const struct ks_host_view bridged = { host_addrs, 1, ifs, 2, bridges, 1, stacked, 1 };
        const struct ks_host_view on_trunk = { host_addrs, 1, ifs, 2, NULL, 0, stacked, 2 };
        struct ks_diags d = {};

        assert_int_equal(policy_lint(p, &host, &d), 5);
        assert_int_equal(d.n, 5);
        assert_non_null(strstr(d.msgs[0], FILE_NAME ":4: warning: gateway everyone keeps all addresses in both "
                                          "directions without Local="));
        assert_non_null(strstr(d.msgs[1], FILE_NAME ":8: warning: gateway ours: 198.51.100.1 is an address of this "
                                          "host"));
        assert_non_null(strstr(d.msgs[1], "use a [Service] section"));
        assert_non_null(strstr(d.msgs[2], FILE_NAME ":10: warning: gateway local4: Local= has no IPv6 address"));
        assert_non_null(strstr(d.msgs[3], FILE_NAME ":16: warning: gateway localany keeps all addresses"));
        assert_non_null(strstr(d.msgs[4], FILE_NAME ":2: warning: uplink wan9 does not exist now"));
        diags_clear(&d);
        /* wan0 a bridge: what it forwards between its ports is not cut. */
        assert_int_equal(policy_lint(p, &bridged, &d), 6);
        assert_non_null(strstr(d.msgs[4], FILE_NAME ":2: warning: uplink wan0 is a bridge: what it forwards "
                                          "between its ports"));
        diags_clear(&d);
        /* wan0 a macvlan (vlan, ipvlan) on trunk0: raw frames on trunk0 are not cut. A bridge's
         * ports (its lower devices) get the bridge's warning only. */
        assert_int_equal(policy_lint(p, &on_trunk, &d), 6);
        assert_non_null(strstr(d.msgs[4], FILE_NAME ":2: warning: uplink wan0 is stacked on trunk0: frames a "
                                          "process with CAP_NET_RAW writes on trunk0 itself are not cut; if trunk0 "
                                          "carries only internet traffic, name trunk0 as the uplink instead"));
        diags_clear(&d);
        /* Without a host view, only what the file says. */
        assert_int_equal(policy_lint(p, NULL, &d), 3);
        diags_clear(&d);
        policy_free(p);
}

/* The lockout check's question: does the policy keep a session the peer opened to us? */
static void test_v2_keeps_inbound(void **state)
{
        struct ks_policy *p = parse_ok(HEAD
                "[Gateway old]\nAddress=192.0.2.7\nPorts=tcp:22\n"
                "[Gateway out]\nAddress=192.0.2.8\nPorts=tcp:22\nDirection=out\n"
                "[Gateway local]\nAddress=192.0.2.9\nPorts=tcp:22\nLocal=10.0.0.1\n"
                "[Service ssh]\nAddress=198.51.100.1\nFrom=203.0.113.0/24\nPorts=tcp:22\n");
        const uint8_t old[4] = { 192, 0, 2, 7 }, out[4] = { 192, 0, 2, 8 }, local[4] = { 192, 0, 2, 9 };
        const uint8_t admin[4] = { 203, 0, 113, 9 }, ours[4] = { 198, 51, 100, 1 }, inside[4] = { 10, 0, 0, 1 };

        /* Matched on packets: either port. */
        assert_true(policy_keeps_inbound(p, AF_INET, old, ours, IPPROTO_TCP, 50000, 22));
        assert_true(policy_keeps_inbound(p, AF_INET, old, ours, IPPROTO_TCP, 22, 50000));
        /* Direction=out: the peer may not open anything. */
        assert_false(policy_keeps_inbound(p, AF_INET, out, ours, IPPROTO_TCP, 50000, 22));
        /* Local=: only to that host of ours (unknown: not checked). */
        assert_false(policy_keeps_inbound(p, AF_INET, local, ours, IPPROTO_TCP, 50000, 22));
        assert_true(policy_keeps_inbound(p, AF_INET, local, inside, IPPROTO_TCP, 50000, 22));
        assert_true(policy_keeps_inbound(p, AF_INET, local, NULL, IPPROTO_TCP, 50000, 22));
        /* A service: From=, its address, its port; never by the peer's port. */
        assert_true(policy_keeps_inbound(p, AF_INET, admin, ours, IPPROTO_TCP, 50000, 22));
        assert_false(policy_keeps_inbound(p, AF_INET, admin, inside, IPPROTO_TCP, 50000, 22));
        assert_false(policy_keeps_inbound(p, AF_INET, admin, ours, IPPROTO_TCP, 22, 2222));
        assert_false(policy_keeps_inbound(p, AF_INET, ours, ours, IPPROTO_TCP, 50000, 22));
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_issue_example),
                cmocka_unit_test(test_comments),
                cmocka_unit_test(test_semicolon_is_not_inline_comment),
                cmocka_unit_test(test_inline_comment_kept_without_blank),
                cmocka_unit_test(test_whitespace_and_crlf),
                cmocka_unit_test(test_repeated_keys_accumulate),
                cmocka_unit_test(test_gateway_without_ports_is_all_traffic),
                cmocka_unit_test(test_no_gateway_is_valid),
                cmocka_unit_test(test_limits_good),
                cmocka_unit_test(test_unknown_section),
                cmocka_unit_test(test_broken_header),
                cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_key_outside_section),
                cmocka_unit_test(test_line_without_equals),
                cmocka_unit_test(test_empty_value),
                cmocka_unit_test(test_duplicate_sections),
                cmocka_unit_test(test_duplicate_gateway),
                cmocka_unit_test(test_gateway_names),
                cmocka_unit_test(test_gateway_without_address),
                cmocka_unit_test(test_no_uplink),
                cmocka_unit_test(test_bad_interfaces),
                cmocka_unit_test(test_bad_addresses),
                cmocka_unit_test(test_host_bits),
                cmocka_unit_test(test_bad_ports),
                cmocka_unit_test(test_all_problems_collected),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_booleans),
                cmocka_unit_test(test_bad_booleans),
                cmocka_unit_test(test_reject),
                cmocka_unit_test(test_management),
                cmocka_unit_test(test_bad_management),
                cmocka_unit_test(test_description_utf8),
                cmocka_unit_test(test_hostnames),
                cmocka_unit_test(test_bad_hostnames),
                cmocka_unit_test(test_resolve),
                cmocka_unit_test(test_resolve_fails),
                cmocka_unit_test(test_diags_cap),
                cmocka_unit_test(test_not_a_policy),
                cmocka_unit_test(test_invalid_address_no_cascade),
                cmocka_unit_test(test_name_valid),
                cmocka_unit_test(test_gateway_name_digit),
                cmocka_unit_test(test_diags_add),
                cmocka_unit_test(test_parse_file),
                cmocka_unit_test(test_shipped_policy),
                cmocka_unit_test(test_large_policy),
                cmocka_unit_test(test_v2_keys),
                cmocka_unit_test(test_v2_errors),
                cmocka_unit_test(test_v2_resolve),
                cmocka_unit_test(test_v2_lint),
                cmocka_unit_test(test_v2_keeps_inbound),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
