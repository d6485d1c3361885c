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
        __attribute__((format(printf, 4, 0)));
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

static void hostnames_free(struct ks_hostname *h, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(h[i].name);
                free(h[i].addrs);
        }
        free(h);
}

static void service_free(struct ks_service *s)
{
        hostnames_free(s->hostnames, s->n_hostnames);
        hostnames_free(s->from_hostnames, s->n_from_hostnames);
        free(s->name);
        free(s->addrs);
        free(s->ports);
        free(s->from);
}

struct ks_policy *policy_free(struct ks_policy *p)
{
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_gateways; i++) {
                struct ks_gateway *g = &p->gateways[i];

                for (size_t j = 0; j < g->n_hostnames; j++) {
                        free(g->hostnames[j].name);
                        free(g->hostnames[j].addrs);
                }
                free(g->hostnames);
                free(g->name);
                free(g->addrs);
                free(g->ports);
                free(g->locals);
        }
        free(p->gateways);
        for (size_t i = 0; i < p->n_services; i++)
                service_free(&p->services[i]);
        free(p->services);
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
        SECTION_GATEWAY,        /* [Gateway NAME] or [Management]: ps->gateway */
        SECTION_BAD,            /* after a broken header: its keys are skipped */
};

struct parser {
        const char *file;
        unsigned line;
        enum section section;
        size_t gateway;                 /* index of the current gateway */
        unsigned policy_line, uplinks_line, management_line, description_line;
        /* Lines of single-valued keys, to report one given twice. */
        unsigned keep_nd_line, keep_dhcp_line, keep_icmp_line, reject_line;
        unsigned ping_line;             /* of the current gateway section */
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

/* A new gateway (or the [Management] one) named `name`, after reporting a name that is taken. */
static int gateway_add(struct parser *ps, const char *name, bool management)
{
        struct ks_policy *p = ps->p;
        struct ks_gateway *g;
        int r = 0;

        for (size_t i = 0; i < p->n_gateways && r == 0; i++) {
                const struct ks_gateway *o = &p->gateways[i];

                if (strcmp(o->name, name) != 0)
                        continue;
                if (management)
                        r = parser_error(ps, ps->line,
                                         "[Management]: the name \"" POLICY_MANAGEMENT_NAME "\" is taken by "
                                         "[Gateway " POLICY_MANAGEMENT_NAME "] (line %u); rename that gateway",
                                         o->line);
                else if (o->management)
                        r = parser_error(ps, ps->line,
                                         "[Gateway %s]: duplicate gateway name ([Management] on line %u is "
                                         "the gateway \"" POLICY_MANAGEMENT_NAME "\"); rename this gateway",
                                         name, o->line);
                else
                        r = parser_error(ps, ps->line,
                                         "[Gateway %s]: duplicate gateway name (first on line %u); "
                                         "merge the two sections or rename one",
                                         name, o->line);
                if (r == 0)
                        r = 1;
        }
        if (r < 0)
                return r;
        r = grow(&p->gateways, &p->n_gateways, sizeof(*p->gateways));
        if (r < 0)
                return r;
        g = &p->gateways[p->n_gateways - 1];
        g->line = ps->line;
        g->management = management;
        g->name = strdup(name);
        if (!g->name)
                return -ENOMEM;
        ps->gateway = p->n_gateways - 1;
        ps->section = SECTION_GATEWAY;
        ps->ping_line = 0;
        return 0;
}

static int section_gateway(struct parser *ps, const char *name)
{
        ps->section = SECTION_BAD;
        if (*name == '\0')
                return parser_error(ps, ps->line, "[Gateway] needs a name: [Gateway NAME]");
        if (gateway_name_valid(name) < 0)
                return parser_error(ps, ps->line,
                                    "[Gateway %s]: invalid gateway name; use 1-%d of A-Z a-z 0-9 _ -",
                                    name, POLICY_NAME_MAX);
        return gateway_add(ps, name, false);
}

static int section_management(struct parser *ps)
{
        ps->section = SECTION_BAD;
        if (ps->management_line > 0)
                return parser_error(ps, ps->line,
                                    "duplicate [Management] section (first on line %u); a policy has one",
                                    ps->management_line);
        ps->management_line = ps->line;
        return gateway_add(ps, POLICY_MANAGEMENT_NAME, true);
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
        if (strcmp(name, "Management") == 0)
                return section_management(ps);
        if (strncmp(name, "Gateway", 7) == 0 && (name[7] == '\0' || is_blank(name[7])))
                return section_gateway(ps, strip(name + 7));
        ps->section = SECTION_BAD;
        return parser_error(ps, ps->line,
                            "unknown section [%s]; expected [Policy], [Uplinks], [Management] or [Gateway NAME]",
                            name);
}

/* ---- Values ------------------------------------------------------------ */

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *s)
{
        const unsigned char *u = (const unsigned char *)s;

        while (*u) {
                uint32_t c;
                size_t n;

                if (*u < 0x80) {
                        u++;
                        continue;
                }
                if ((*u & 0xe0) == 0xc0) {
                        n = 1;
                        c = *u & 0x1f;
                } else if ((*u & 0xf0) == 0xe0) {
                        n = 2;
                        c = *u & 0x0f;
                } else if ((*u & 0xf8) == 0xf0) {
                        n = 3;
                        c = *u & 0x07;
                } else
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((u[i] & 0xc0) != 0x80)
                                return false;
                        c = c << 6 | (u[i] & 0x3f);
                }
                if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
                    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                        return false;
                u += n + 1;
        }
        return true;
}

static int value_description(struct parser *ps, const char *value)
{
        struct ks_policy *p = ps->p;

        if (ps->description_line > 0)
                return parser_error(ps, ps->line, "Description= given twice (first on line %u)",
                                    ps->description_line);
        ps->description_line = ps->line;
        /* It goes out in JSON (killswitchctl policies), which is UTF-8. */
        if (!utf8_valid(value))
                return parser_error(ps, ps->line, "Description: not valid UTF-8; save the file as UTF-8");
        p->description = strdup(value);
        return p->description ? 0 : -ENOMEM;
}

/* systemd's parse_boolean(): 1 yes y true t on, 0 no n false f off, any case. */
static int parse_boolean(const char *v)
{
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

/* A single-valued key: report it given twice, else remember its line. 1: go on; 0: reported. */
static int key_once(struct parser *ps, const char *key, unsigned *line)
{
        int r;

        if (*line > 0) {
                r = parser_error(ps, ps->line, "%s= given twice (first on line %u)", key, *line);
                return r < 0 ? r : 0;
        }
        *line = ps->line;
        return 1;
}

static int value_boolean(struct parser *ps, const char *key, const char *value, unsigned *line, bool *ret)
{
        int r, b;

        r = key_once(ps, key, line);
        if (r <= 0)
                return r;
        b = parse_boolean(value);
        if (b < 0)
                return parser_error(ps, ps->line, "%s: \"%s\": not a boolean; use yes or no", key, value);
        *ret = b;
        return 0;
}

static int value_reject(struct parser *ps, const char *value)
{
        static const struct {
                const char *name;
                enum ks_reject reject;
        } table[] = {
                { "tcp", KS_REJECT_TCP },
                { "all", KS_REJECT_ALL },
                { "none", KS_REJECT_NONE },
        };
        int r;

        r = key_once(ps, "Reject", &ps->reject_line);
        if (r <= 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(value, table[i].name) == 0) {
                        ps->p->reject = table[i].reject;
                        return 0;
                }
        return parser_error(ps, ps->line, "Reject: \"%s\": expected tcp, all or none", value);
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

#define HOSTNAME_MAX 253
#define HOSTNAME_LABEL_MAX 63

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/*
 * Does w look like a numeric address, so that it must parse as one? A ':'
 * (IPv6), a last label of digits only (RFC 1123 2.1, RFC 3696 2: a top-level
 * domain is never all-numeric; "300.1.2.3", "192.0.2"), or a form that
 * inet_aton() (and so getaddrinfo()) would read as IPv4 ("0x7f000001").
 */
static bool looks_numeric(const char *w)
{
        struct in_addr a;
        const char *last;
        size_t n = strlen(w);

        if (strchr(w, ':') || inet_aton(w, &a) != 0)
                return true;
        if (n > 0 && w[n - 1] == '.')
                n--;
        last = w + n;
        while (last > w && last[-1] != '.')
                last--;
        if (last == w + n)
                return false;
        for (const char *c = last; c < w + n; c++)
                if (!is_digit(*c))
                        return false;
        return true;
}

/* NULL if w is an RFC 1123 host name (an optional final dot allowed), else the problem. */
static const char *hostname_problem(const char *w)
{
        size_t n = strlen(w), label = 0;

        if (n > 0 && w[n - 1] == '.')
                n--;
        if (n > HOSTNAME_MAX)
                return "host name longer than 253 characters";
        for (size_t i = 0; i < n; i++) {
                char c = w[i];

                if (c == '.') {
                        if (label == 0)
                                return "empty label in host name";
                        if (w[i - 1] == '-')
                                return "a host name label cannot end with \"-\"";
                        label = 0;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-'))
                        return "not an IPv4 or IPv6 address, ADDRESS/PREFIXLEN or host name "
                               "(letters, digits, \"-\" and dots)";
                if (c == '-' && label == 0)
                        return "a host name label cannot start with \"-\"";
                if (++label > HOSTNAME_LABEL_MAX)
                        return "host name label longer than 63 characters";
        }
        if (label == 0)
                return "empty label in host name";
        if (w[n - 1] == '-')
                return "a host name label cannot end with \"-\"";
        return NULL;
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

/* A host name, unresolved; listed once per gateway (names compare case-insensitively). */
static int add_hostname(struct parser *ps, struct ks_gateway *g, const char *w)
{
        struct ks_hostname *h;
        int r;

        for (size_t i = 0; i < g->n_hostnames; i++)
                if (strcasecmp(g->hostnames[i].name, w) == 0)
                        return 0;
        r = grow(&g->hostnames, &g->n_hostnames, sizeof(*g->hostnames));
        if (r < 0)
                return r;
        h = &g->hostnames[g->n_hostnames - 1];
        h->line = ps->line;
        h->name = strdup(w);
        return h->name ? 0 : -ENOMEM;
}

static int value_address(struct parser *ps, char *value)
{
        struct ks_gateway *g = &ps->p->gateways[ps->gateway];
        struct ks_prefix pfx;
        const char *problem;
        char *w;
        int r;

        while ((w = next_word(&value))) {
                if (!strchr(w, '/') && !looks_numeric(w)) {
                        problem = hostname_problem(w);
                        r = problem ? address_error(ps, w, problem) : add_hostname(ps, g, w);
                        if (r < 0)
                                return r;
                        continue;
                }
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

static const char *const policy_keys[] = { "Description", "KeepICMPErrors", "Reject", NULL };
static const char *const uplinks_keys[] = { "Interface", "KeepNeighborDiscovery", "KeepDHCP", NULL };
static const char *const gateway_keys[] = { "Address", "Ports", "Ping", NULL };

static bool key_known(const struct parser *ps, const char *key)
{
        const char *const *keys = NULL;

        switch (ps->section) {
        case SECTION_POLICY:
                keys = policy_keys;
                break;
        case SECTION_UPLINKS:
                keys = uplinks_keys;
                break;
        case SECTION_GATEWAY:
                keys = gateway_keys;
                break;
        case SECTION_NONE:
        case SECTION_BAD:
                return false;
        }
        for (; *keys; keys++)
                if (strcmp(key, *keys) == 0)
                        return true;
        return false;
}

static int unknown_key(struct parser *ps, const char *key)
{
        const struct ks_gateway *g;

        switch (ps->section) {
        case SECTION_POLICY:
                return parser_error(ps, ps->line, "unknown key \"%s\" in [Policy]; "
                                    "expected Description=, KeepICMPErrors= or Reject=", key);
        case SECTION_UPLINKS:
                return parser_error(ps, ps->line, "unknown key \"%s\" in [Uplinks]; "
                                    "expected Interface=, KeepNeighborDiscovery= or KeepDHCP=", key);
        case SECTION_GATEWAY:
                g = &ps->p->gateways[ps->gateway];
                if (g->management)
                        return parser_error(ps, ps->line, "unknown key \"%s\" in [Management]; "
                                            "expected Address=, Ports= or Ping=", key);
                return parser_error(ps, ps->line, "unknown key \"%s\" in [Gateway %s]; "
                                    "expected Address=, Ports= or Ping=", key, g->name);
        case SECTION_NONE:
        case SECTION_BAD:
                break;
        }
        return 0;
}

static int parse_assignment(struct parser *ps, const char *key, char *value)
{
        struct ks_policy *p = ps->p;

        if (ps->section == SECTION_BAD)
                return 0;
        if (ps->section == SECTION_NONE)
                return parser_error(ps, ps->line,
                                    "%s= outside a section; put it under [Policy], [Uplinks], [Management] "
                                    "or [Gateway NAME]", key);
        if (!key_known(ps, key))
                return unknown_key(ps, key);
        if (*value == '\0')
                return parser_error(ps, ps->line, "%s= has an empty value", key);
        if (strcmp(key, "Description") == 0)
                return value_description(ps, value);
        if (strcmp(key, "KeepICMPErrors") == 0)
                return value_boolean(ps, key, value, &ps->keep_icmp_line, &p->keep_icmp_errors);
        if (strcmp(key, "Reject") == 0)
                return value_reject(ps, value);
        if (strcmp(key, "Interface") == 0)
                return value_interface(ps, value);
        if (strcmp(key, "KeepNeighborDiscovery") == 0)
                return value_boolean(ps, key, value, &ps->keep_nd_line, &p->keep_neighbor_discovery);
        if (strcmp(key, "KeepDHCP") == 0)
                return value_boolean(ps, key, value, &ps->keep_dhcp_line, &p->keep_dhcp);
        if (strcmp(key, "Address") == 0)
                return value_address(ps, value);
        if (strcmp(key, "Ping") == 0)
                return value_boolean(ps, key, value, &ps->ping_line, &p->gateways[ps->gateway].ping);
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

/* [Management] without Ports= keeps SSH. */
static int management_default_ports(struct ks_gateway *g)
{
        int r;

        if (g->n_ports > 0)
                return 0;
        r = grow(&g->ports, &g->n_ports, sizeof(*g->ports));
        if (r < 0)
                return r;
        g->ports[0] = (struct ks_portrange) { .proto = IPPROTO_TCP, .low = 22, .high = 22 };
        return 0;
}

/* Checks that need the whole file: every gateway has an address, the policy has an uplink. */
static int parse_finish(struct parser *ps)
{
        struct ks_policy *p = ps->p;
        int r;

        for (size_t i = 0; i < p->n_gateways; i++) {
                struct ks_gateway *g = &p->gateways[i];

                if (g->management) {
                        r = management_default_ports(g);
                        if (r < 0)
                                return r;
                }
                if (g->n_addrs > 0 || g->n_hostnames > 0)
                        continue;
                if (g->management)
                        r = parser_error(ps, g->line,
                                         "[Management] has no Address=; add the addresses the admins "
                                         "connect from");
                else
                        r = parser_error(ps, g->line,
                                         "[Gateway %s] has no Address=; add the gateway's addresses", g->name);
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
        p->keep_neighbor_discovery = true;
        p->keep_dhcp = true;
        p->keep_icmp_errors = true;
        p->reject = KS_REJECT_TCP;
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

/* ---- Host names ---------------------------------------------------------- */

/* One distinct name and what the resolver said about it. */
struct resolved {
        const char *name;               /* borrowed from the policy */
        struct ks_prefix *addrs;
        size_t n_addrs;
        char *error;                    /* NULL: resolved */
};

static void resolved_free(struct resolved *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].addrs);
                free(v[i].error);
        }
        free(v);
}

static bool prefix_equal(const struct ks_prefix *a, const struct ks_prefix *b)
{
        return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

/* Check and deduplicate what a resolver returned, in place. -EINVAL: something is not an address. */
static int resolved_clean(struct resolved *r)
{
        size_t out = 0;

        for (size_t i = 0; i < r->n_addrs; i++) {
                struct ks_prefix *a = &r->addrs[i];
                bool dup = false;

                if ((a->family != AF_INET && a->family != AF_INET6) ||
                    a->len > (a->family == AF_INET ? 32 : 128))
                        return -EINVAL;
                if (a->family == AF_INET)
                        memset(a->addr + 4, 0, 12);
                for (size_t j = 0; j < out && !dup; j++)
                        dup = prefix_equal(&r->addrs[j], a);
                if (!dup)
                        r->addrs[out++] = *a;
        }
        r->n_addrs = out;
        return 0;
}

static int resolve_one(struct resolved *r, policy_resolver_t resolver, void *userdata)
{
        char *error = NULL;
        int k;

        k = resolver(r->name, &r->addrs, &r->n_addrs, &error, userdata);
        if (k == -ENOMEM) {
                free(error);
                return -ENOMEM;
        }
        if (k >= 0 && r->n_addrs > 0 && !r->addrs)
                k = -EINVAL;
        if (k >= 0 && r->n_addrs == 0) {
                free(error);
                error = strdup("no addresses");
        } else if (k >= 0 && resolved_clean(r) < 0) {
                free(error);
                error = strdup("the resolver returned something that is not an address");
        } else if (k < 0 && !error)
                error = strdup(strerror(-k));
        else if (k >= 0) {
                free(error);
                return 0;
        }
        if (!error)
                return -ENOMEM;
        r->error = error;
        return 0;
}

/* Append n prefixes to an array. */
static int append_prefixes(struct ks_prefix **v, size_t *n, const struct ks_prefix *add, size_t n_add)
{
        struct ks_prefix *a;

        if (n_add == 0)
                return 0;
        if (*n > SIZE_MAX / sizeof(*a) - n_add)
                return -ENOMEM;
        a = realloc(*v, (*n + n_add) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        memcpy(a + *n, add, n_add * sizeof(*a));
        *v = a;
        *n += n_add;
        return 0;
}

int policy_resolve(struct ks_policy *p, policy_resolver_t resolver, void *userdata, struct ks_diags *diags)
{
        struct resolved *v = NULL;
        size_t n = 0, failed = 0;
        int k = 0;

        if (!p || !resolver)
                return -EINVAL;

        /* Ask once per distinct name that is not pinned yet. */
        for (size_t i = 0; k >= 0 && i < p->n_gateways; i++)
                for (size_t j = 0; k >= 0 && j < p->gateways[i].n_hostnames; j++) {
                        const struct ks_hostname *h = &p->gateways[i].hostnames[j];
                        bool seen = false;

                        if (h->n_addrs > 0)
                                continue;
                        for (size_t x = 0; x < n && !seen; x++)
                                seen = strcasecmp(v[x].name, h->name) == 0;
                        if (seen)
                                continue;
                        k = grow(&v, &n, sizeof(*v));
                        if (k < 0)
                                break;
                        v[n - 1].name = h->name;
                        k = resolve_one(&v[n - 1], resolver, userdata);
                }
        if (k < 0)
                goto finish;

        /* Report each use of a name that did not resolve, at its line. */
        for (size_t i = 0; k >= 0 && i < p->n_gateways; i++)
                for (size_t j = 0; k >= 0 && j < p->gateways[i].n_hostnames; j++) {
                        const struct ks_hostname *h = &p->gateways[i].hostnames[j];

                        for (size_t x = 0; x < n; x++) {
                                if (!v[x].error || strcasecmp(v[x].name, h->name) != 0)
                                        continue;
                                failed++;
                                k = diags_add(diags, p->path ? p->path : "<policy>", h->line,
                                              "Address: \"%s\": name does not resolve (%s)",
                                              h->name, v[x].error);
                                break;
                        }
                }
        if (k < 0 || failed > 0) {
                k = k < 0 ? k : -EINVAL;
                goto finish;
        }

        /* Pin. Only -ENOMEM can fail here, and may leave some names pinned: the caller drops p then. */
        for (size_t i = 0; i < p->n_gateways; i++) {
                struct ks_gateway *g = &p->gateways[i];

                for (size_t j = 0; j < g->n_hostnames; j++) {
                        struct ks_hostname *h = &g->hostnames[j];

                        for (size_t x = 0; x < n; x++) {
                                if (h->n_addrs > 0 || strcasecmp(v[x].name, h->name) != 0)
                                        continue;
                                /* Room in the gateway first: a hostname's addrs say "pinned". */
                                k = append_prefixes(&g->addrs, &g->n_addrs, v[x].addrs, v[x].n_addrs);
                                if (k < 0)
                                        goto finish;
                                k = append_prefixes(&h->addrs, &h->n_addrs, v[x].addrs, v[x].n_addrs);
                                if (k < 0) {
                                        g->n_addrs -= v[x].n_addrs;
                                        goto finish;
                                }
                                break;
                        }
                }
        }
finish:
        resolved_free(v, n);
        return k;
}
