/* SPDX-License-Identifier: MIT */
/*
 * The policy parser (killswitch.policy(5)).
 *
 * Hand-written rather than libinih: a diagnostic must carry the line it is
 * about, and values may end in a "# comment", neither of which inih gives us.
 * The parser never stops at the first problem; it records each one as
 * "FILE:LINE: message" and carries on, so that an admin fixes a file in one go.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* asprintf, vasprintf */
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "policy.h"

#define POLICY_SUFFIX ".policy"
/* A policy is a short text; anything bigger is a mistake, not a policy. */
#define POLICY_FILE_MAX (64u * 1024 * 1024)
/* Enough to fix a file in one go, few enough not to flood a terminal with a binary file. */
#define DIAGS_MAX 1000

void diags_clear(struct ks_diags *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++)
                free(d->msgs[i]);
        free(d->msgs);
        d->msgs = NULL;
        d->n = 0;
}

static int diags_addv(struct ks_diags *d, const char *file, unsigned line, const char *fmt, va_list ap)
{
        _cleanup_free_ char *msg = NULL;
        char *s, **m;
        int r;

        if (!d)
                return 0;
        if (vasprintf(&msg, fmt, ap) < 0)
                return -ENOMEM;
        if (line > 0)
                r = asprintf(&s, "%s:%u: %s", file, line, msg);
        else
                r = asprintf(&s, "%s: %s", file, msg);
        if (r < 0)
                return -ENOMEM;
        m = realloc(d->msgs, (d->n + 1) * sizeof(*m));
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        d->msgs = m;
        d->msgs[d->n++] = s;
        return 0;
}

int diags_add(struct ks_diags *d, const char *file, unsigned line, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diags_addv(d, file, line, fmt, ap);
        va_end(ap);
        return r;
}

static bool name_char_valid(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

/* Gateway names: [A-Za-z0-9_-]{1,32}. They never start an nft word ("P/gw_NAME"). */
static int gateway_name_valid(const char *name)
{
        size_t n;

        if (!name)
                return -EINVAL;
        n = strlen(name);
        if (n < 1 || n > POLICY_NAME_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!name_char_valid(name[i]))
                        return -EINVAL;
        return 0;
}

int policy_name_valid(const char *name)
{
        /* Policy names start the names of its nftables objects ("P/inbound"): nft reads a leading digit as a number. */
        if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
                return -EINVAL;
        return gateway_name_valid(name);
}

struct ks_policy *policy_free(struct ks_policy *p)
{
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_gateways; i++) {
                free(p->gateways[i].name);
                free(p->gateways[i].addrs);
                free(p->gateways[i].ports);
        }
        free(p->gateways);
        free(p->uplinks);
        free(p->description);
        free(p->path);
        free(p->name);
        free(p);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_policy *, policy_free)

/* Grow an array of n elements of size sz by one; the new element is zeroed. */
static int grow(void *arrayp, size_t *n, size_t sz)
{
        void **a = arrayp;
        void *b;

        /* Double at powers of two, so appending stays linear for 100k addresses. */
        if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) {
                size_t cap = *n == 0 ? 4 : *n * 2;

                if (cap > SIZE_MAX / sz)
                        return -ENOMEM;
                b = realloc(*a, cap * sz);
                if (!b)
                        return -ENOMEM;
                *a = b;
        }
        memset((char *)*a + *n * sz, 0, sz);
        (*n)++;
        return 0;
}

enum section {
        SECTION_NONE,           /* before the first header */
        SECTION_POLICY,
        SECTION_UPLINKS,
        SECTION_GATEWAY,
        SECTION_BAD,            /* after a broken header: its keys are skipped */
};

struct parser {
        const char *file;
        unsigned line;
        enum section section;
        size_t gateway;                 /* index of the current gateway */
        unsigned policy_line, uplinks_line, description_line;
        struct ks_policy *p;
        struct ks_diags *diags;
        size_t n_errors;
};

static int parser_error(struct parser *ps, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int parser_error(struct parser *ps, unsigned line, const char *fmt, ...)
{
        va_list ap;
        int r;

        ps->n_errors++;
        if (ps->n_errors > DIAGS_MAX)
                return 0;
        if (ps->n_errors == DIAGS_MAX)
                return diags_add(ps->diags, ps->file, line, "too many problems; fix the ones above first");
        va_start(ap, fmt);
        r = diags_addv(ps->diags, ps->file, line, fmt, ap);
        va_end(ap);
        return r;
}

static bool is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *strip(char *s)
{
        size_t n;

        while (is_blank(*s))
                s++;
        n = strlen(s);
        while (n > 0 && is_blank(s[n - 1]))
                s[--n] = '\0';
        return s;
}

/* An inline comment starts at a '#' that follows whitespace. */
static void cut_inline_comment(char *s)
{
        for (size_t i = 1; s[i]; i++)
                if (s[i] == '#' && is_blank(s[i - 1])) {
                        s[i] = '\0';
                        return;
                }
}

/* Next whitespace-separated word of *s, NUL-terminated in place; NULL at the end. */
static char *next_word(char **s)
{
        char *w = *s;

        while (is_blank(*w))
                w++;
        if (*w == '\0')
                return NULL;
        *s = w;
        while (**s && !is_blank(**s))
                (*s)++;
        if (**s)
                *(*s)++ = '\0';
        return w;
}

/* ---- Sections ---------------------------------------------------------- */

static int section_gateway(struct parser *ps, const char *name)
{
        struct ks_policy *p = ps->p;
        struct ks_gateway *g;
        int r;

        ps->section = SECTION_BAD;
        if (*name == '\0')
                return parser_error(ps, ps->line, "[Gateway] needs a name: [Gateway NAME]");
        if (gateway_name_valid(name) < 0)
                return parser_error(ps, ps->line,
                                    "[Gateway %s]: invalid gateway name; use 1-%d of A-Z a-z 0-9 _ -",
                                    name, POLICY_NAME_MAX);
        for (size_t i = 0; i < p->n_gateways; i++) {
                if (strcmp(p->gateways[i].name, name) != 0)
                        continue;
                r = parser_error(ps, ps->line,
                                 "[Gateway %s]: duplicate gateway name (first on line %u); "
                                 "merge the two sections or rename one",
                                 name, p->gateways[i].line);
                if (r < 0)
                        return r;
                break;
        }
        r = grow(&p->gateways, &p->n_gateways, sizeof(*p->gateways));
        if (r < 0)
                return r;
        g = &p->gateways[p->n_gateways - 1];
        g->line = ps->line;
        g->name = strdup(name);
        if (!g->name)
                return -ENOMEM;
        ps->gateway = p->n_gateways - 1;
        ps->section = SECTION_GATEWAY;
        return 0;
}

static int section_single(struct parser *ps, enum section s, const char *name, unsigned *seen)
{
        ps->section = s;
        if (*seen > 0)
                return parser_error(ps, ps->line,
                                    "duplicate [%s] section (first on line %u); a policy has one",
                                    name, *seen);
        *seen = ps->line;
        return 0;
}

static int parse_section(struct parser *ps, char *s)
{
        size_t n = strlen(s);
        char *name;

        if (n < 2 || s[n - 1] != ']') {
                ps->section = SECTION_BAD;
                return parser_error(ps, ps->line, "%s: section header must end with \"]\"", s);
        }
        s[n - 1] = '\0';
        name = strip(s + 1);
        if (strcmp(name, "Policy") == 0)
                return section_single(ps, SECTION_POLICY, "Policy", &ps->policy_line);
        if (strcmp(name, "Uplinks") == 0)
                return section_single(ps, SECTION_UPLINKS, "Uplinks", &ps->uplinks_line);
        if (strncmp(name, "Gateway", 7) == 0 && (name[7] == '\0' || is_blank(name[7])))
                return section_gateway(ps, strip(name + 7));
        ps->section = SECTION_BAD;
        return parser_error(ps, ps->line,
                            "unknown section [%s]; expected [Policy], [Uplinks] or [Gateway NAME]", name);
}

/* ---- Values ------------------------------------------------------------ */

static int value_description(struct parser *ps, const char *value)
{
        struct ks_policy *p = ps->p;

        if (ps->description_line > 0)
                return parser_error(ps, ps->line, "Description= given twice (first on line %u)",
                                    ps->description_line);
        ps->description_line = ps->line;
        p->description = strdup(value);
        return p->description ? 0 : -ENOMEM;
}

/* Linux dev_valid_name(), plus no wildcards: a set of names matches them literally. */
static const char *ifname_problem(const char *w)
{
        size_t n = strlen(w);

        if (n >= IFNAMSIZ)
                return "interface name longer than 15 characters";
        if (strcmp(w, ".") == 0 || strcmp(w, "..") == 0)
                return "\".\" and \"..\" are not interface names";
        if (strpbrk(w, "/:"))
                return "interface names cannot contain \"/\" or \":\"";
        if (strpbrk(w, "*?["))
                return "wildcards are not supported; list each interface";
        /* Linux would take these, but nft syntax (compile_text) cannot quote them. */
        for (size_t i = 0; i < n; i++)
                if (iscntrl((unsigned char)w[i]) || w[i] == '"' || w[i] == '\\')
                        return "interface names cannot contain quotes, backslashes or control characters";
        return NULL;
}

static int value_interface(struct parser *ps, char *value)
{
        struct ks_policy *p = ps->p;
        const char *problem;
        char *w;
        int r;

        while ((w = next_word(&value))) {
                bool dup = false;

                problem = ifname_problem(w);
                if (problem) {
                        r = parser_error(ps, ps->line, "Interface: \"%s\": %s", w, problem);
                        if (r < 0)
                                return r;
                        continue;
                }
                for (size_t i = 0; i < p->n_uplinks && !dup; i++)
                        dup = strcmp(p->uplinks[i], w) == 0;
                if (dup)
                        continue;
                r = grow(&p->uplinks, &p->n_uplinks, sizeof(*p->uplinks));
                if (r < 0)
                        return r;
                memcpy(p->uplinks[p->n_uplinks - 1], w, strlen(w) + 1);
        }
        return 0;
}

/* Parse a decimal number in [0, max] made of digits only. */
static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
        unsigned long v = 0;

        if (*s == '\0')
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long)(*s - '0');
                if (v > max)
                        return -ERANGE;
        }
        *ret = v;
        return 0;
}

static void prefix_mask(struct ks_prefix *pfx, uint8_t *ret_network)
{
        size_t bytes = pfx->family == AF_INET ? 4 : 16;

        for (size_t i = 0; i < bytes; i++) {
                unsigned bits = pfx->len > i * 8 ? pfx->len - i * 8 : 0;
                uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

                ret_network[i] = pfx->addr[i] & mask;
        }
}

static int address_error(struct parser *ps, const char *w, const char *what)
{
        return parser_error(ps, ps->line, "Address: \"%s\": %s", w, what);
}

static int parse_address(struct parser *ps, char *w, struct ks_prefix *ret)
{
        struct ks_prefix pfx = {};
        uint8_t network[16];
        char *slash, buf[INET6_ADDRSTRLEN];
        unsigned long len, max;

        slash = strchr(w, '/');
        if (slash)
                *slash = '\0';
        if (inet_pton(AF_INET, w, pfx.addr) == 1)
                pfx.family = AF_INET;
        else if (inet_pton(AF_INET6, w, pfx.addr) == 1)
                pfx.family = AF_INET6;
        if (slash)
                *slash = '/';
        if (pfx.family == 0)
                return address_error(ps, w, "not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)");
        max = pfx.family == AF_INET ? 32 : 128;
        len = max;
        if (slash && parse_uint(slash + 1, max, &len) < 0)
                return parser_error(ps, ps->line, "Address: \"%s\": prefix length must be 0-%lu",
                                    w, max);
        pfx.len = (uint8_t)len;
        prefix_mask(&pfx, network);
        if (memcmp(network, pfx.addr, max / 8) != 0) {
                inet_ntop(pfx.family, network, buf, sizeof(buf));
                return parser_error(ps, ps->line,
                                    "Address: \"%s\": host bits set after the prefix; did you mean %s/%u?",
                                    w, buf, pfx.len);
        }
        *ret = pfx;
        return 1;
}

static int value_address(struct parser *ps, char *value)
{
        struct ks_gateway *g = &ps->p->gateways[ps->gateway];
        struct ks_prefix pfx;
        char *w;
        int r;

        while ((w = next_word(&value))) {
                r = parse_address(ps, w, &pfx);
                if (r <= 0) {
                        if (r < 0)
                                return r;
                        continue;
                }
                r = grow(&g->addrs, &g->n_addrs, sizeof(*g->addrs));
                if (r < 0)
                        return r;
                g->addrs[g->n_addrs - 1] = pfx;
        }
        return 0;
}

static int port_proto(const char *name)
{
        if (strcmp(name, "tcp") == 0)
                return IPPROTO_TCP;
        if (strcmp(name, "udp") == 0)
                return IPPROTO_UDP;
        if (strcmp(name, "sctp") == 0)
                return IPPROTO_SCTP;
        return -EINVAL;
}

static int port_number(struct parser *ps, const char *w, const char *s, uint16_t *ret)
{
        unsigned long v;
        int r;

        r = parse_uint(s, 65535, &v);
        if (r == -ERANGE)
                return parser_error(ps, ps->line, "Ports: \"%s\": port out of range 0-65535", w);
        if (r < 0)
                return parser_error(ps, ps->line, "Ports: \"%s\": \"%s\" is not a port number 0-65535",
                                    w, s);
        *ret = (uint16_t)v;
        return 1;
}

static int parse_port(struct parser *ps, char *w, struct ks_portrange *ret)
{
        _cleanup_free_ char *copy = strdup(w);
        struct ks_portrange pr = {};
        char *colon, *dash;
        int proto, r;

        if (!copy)
                return -ENOMEM;
        colon = strchr(copy, ':');
        if (!colon)
                return parser_error(ps, ps->line,
                                    "Ports: \"%s\": expected PROTO:PORT or PROTO:LOW-HIGH, e.g. udp:5060", w);
        *colon = '\0';
        proto = port_proto(copy);
        if (proto < 0)
                return parser_error(ps, ps->line, "Ports: \"%s\": unknown protocol \"%s\"; use tcp, udp or sctp",
                                    w, copy);
        pr.proto = (uint8_t)proto;
        dash = strchr(colon + 1, '-');
        if (dash)
                *dash = '\0';
        r = port_number(ps, w, colon + 1, &pr.low);
        if (r <= 0)
                return r;
        pr.high = pr.low;
        if (dash) {
                r = port_number(ps, w, dash + 1, &pr.high);
                if (r <= 0)
                        return r;
        }
        if (pr.low > pr.high)
                return parser_error(ps, ps->line, "Ports: \"%s\": reversed range; did you mean %s:%u-%u?",
                                    w, copy, pr.high, pr.low);
        *ret = pr;
        return 1;
}

static int value_ports(struct parser *ps, char *value)
{
        struct ks_gateway *g = &ps->p->gateways[ps->gateway];
        struct ks_portrange pr;
        char *w;
        int r;

        while ((w = next_word(&value))) {
                r = parse_port(ps, w, &pr);
                if (r <= 0) {
                        if (r < 0)
                                return r;
                        continue;
                }
                r = grow(&g->ports, &g->n_ports, sizeof(*g->ports));
                if (r < 0)
                        return r;
                g->ports[g->n_ports - 1] = pr;
        }
        return 0;
}

/* ---- Lines ------------------------------------------------------------- */

static bool key_known(const struct parser *ps, const char *key)
{
        switch (ps->section) {
        case SECTION_POLICY:
                return strcmp(key, "Description") == 0;
        case SECTION_UPLINKS:
                return strcmp(key, "Interface") == 0;
        case SECTION_GATEWAY:
                return strcmp(key, "Address") == 0 || strcmp(key, "Ports") == 0;
        case SECTION_NONE:
        case SECTION_BAD:
                break;
        }
        return false;
}

static int unknown_key(struct parser *ps, const char *key)
{
        switch (ps->section) {
        case SECTION_POLICY:
                return parser_error(ps, ps->line, "unknown key \"%s\" in [Policy]; expected Description=", key);
        case SECTION_UPLINKS:
                return parser_error(ps, ps->line, "unknown key \"%s\" in [Uplinks]; expected Interface=", key);
        case SECTION_GATEWAY:
                return parser_error(ps, ps->line, "unknown key \"%s\" in [Gateway %s]; expected Address= or Ports=",
                                    key, ps->p->gateways[ps->gateway].name);
        case SECTION_NONE:
        case SECTION_BAD:
                break;
        }
        return 0;
}

static int parse_assignment(struct parser *ps, const char *key, char *value)
{
        if (ps->section == SECTION_BAD)
                return 0;
        if (ps->section == SECTION_NONE)
                return parser_error(ps, ps->line,
                                    "%s= outside a section; put it under [Policy], [Uplinks] or [Gateway NAME]",
                                    key);
        if (!key_known(ps, key))
                return unknown_key(ps, key);
        if (*value == '\0')
                return parser_error(ps, ps->line, "%s= has an empty value", key);
        if (strcmp(key, "Description") == 0)
                return value_description(ps, value);
        if (strcmp(key, "Interface") == 0)
                return value_interface(ps, value);
        if (strcmp(key, "Address") == 0)
                return value_address(ps, value);
        return value_ports(ps, value);
}

static int parse_line(struct parser *ps, char *l)
{
        char *eq, *key, *value;

        l = strip(l);
        if (*l == '\0' || *l == '#' || *l == ';')
                return 0;
        cut_inline_comment(l);
        l = strip(l);
        if (*l == '[')
                return parse_section(ps, l);
        eq = strchr(l, '=');
        if (!eq) {
                if (ps->section == SECTION_BAD)
                        return 0;
                return parser_error(ps, ps->line, "\"%s\": line without \"=\"; expected KEY=VALUE", l);
        }
        *eq = '\0';
        key = strip(l);
        value = strip(eq + 1);
        if (*key == '\0')
                return parser_error(ps, ps->line, "missing key before \"=\"; expected KEY=VALUE");
        return parse_assignment(ps, key, value);
}

/* Checks that need the whole file: every gateway has an address, the policy has an uplink. */
static int parse_finish(struct parser *ps)
{
        struct ks_policy *p = ps->p;
        int r;

        for (size_t i = 0; i < p->n_gateways; i++) {
                if (p->gateways[i].n_addrs > 0)
                        continue;
                r = parser_error(ps, p->gateways[i].line,
                                 "[Gateway %s] has no Address=; add the gateway's addresses",
                                 p->gateways[i].name);
                if (r < 0)
                        return r;
        }
        if (p->n_uplinks == 0)
                return parser_error(ps, 0,
                                    "no uplink: add an [Uplinks] section with Interface=NAME, "
                                    "the interfaces that lead to the internet");
        return 0;
}

static int parse_text(struct parser *ps, char *text)
{
        char *l = text, *nl;
        int r;

        for (ps->line = 1; l; ps->line++) {
                nl = strchr(l, '\n');
                if (nl)
                        *nl = '\0';
                r = parse_line(ps, l);
                if (r < 0)
                        return r;
                l = nl ? nl + 1 : NULL;
        }
        return parse_finish(ps);
}

int policy_parse_string(const char *text, const char *file, const char *name,
                        struct ks_policy **ret, struct ks_diags *diags)
{
        _cleanup_(policy_freep) struct ks_policy *p = NULL;
        _cleanup_free_ char *copy = NULL;
        struct parser ps = { .file = file ? file : "<policy>", .diags = diags };
        int r;

        if (!text || !ret)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        copy = strdup(text);
        if (!p || !copy)
                return -ENOMEM;
        p->name = strdup(name ? name : "");
        p->path = strdup(ps.file);
        if (!p->name || !p->path)
                return -ENOMEM;
        ps.p = p;
        r = parse_text(&ps, copy);
        if (r < 0)
                return r;
        if (ps.n_errors > 0)
                return -EINVAL;
        *ret = TAKE_PTR(p);
        return 0;
}

static int read_text(int fd, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        ssize_t n;

        for (;;) {
                if (cap - len < 4096) {
                        char *b;

                        if (cap >= POLICY_FILE_MAX)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 16384;
                        b = realloc(buf, cap + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* "dir/isolate.policy" -> "isolate"; NULL if the file is not named NAME.policy. */
static char *policy_name_from_path(const char *path)
{
        const char *base = strrchr(path, '/');
        size_t n, sfx = strlen(POLICY_SUFFIX);

        base = base ? base + 1 : path;
        n = strlen(base);
        if (n <= sfx || strcmp(base + n - sfx, POLICY_SUFFIX) != 0)
                return NULL;
        return strndup(base, n - sfx);
}

int policy_parse_file(const char *path, struct ks_policy **ret, struct ks_diags *diags)
{
        _cleanup_free_ char *name = NULL, *text = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = 0;
        int r;

        if (!path || !ret)
                return -EINVAL;
        name = policy_name_from_path(path);
        if (!name)
                return diags_add(diags, path, 0, "not a policy file: the name must end in \".policy\"") < 0 ?
                       -ENOMEM : -EINVAL;
        if (policy_name_valid(name) < 0)
                return diags_add(diags, path, 0,
                                 "invalid policy name \"%s\"; use a letter, then up to %d of "
                                 "A-Z a-z 0-9 _ -, before \".policy\"",
                                 name, POLICY_NAME_MAX - 1) < 0 ? -ENOMEM : -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                return diags_add(diags, path, 0, "cannot open: %s", strerror(-r)) < 0 ? -ENOMEM : r;
        }
        r = read_text(fd, &text, &len);
        if (r < 0)
                return diags_add(diags, path, 0, "cannot read: %s", strerror(-r)) < 0 ? -ENOMEM : r;
        if (strlen(text) != len)
                return diags_add(diags, path, 0, "contains a NUL byte; a policy is a text file") < 0 ?
                       -ENOMEM : -EINVAL;
        return policy_parse_string(text, path, name, ret, diags);
}
