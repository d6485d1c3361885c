/* SPDX-License-Identifier: MIT */
/*
 * Warnings about policies that parse but keep more, or less, than their author
 * meant (issue 14): the traps an admin falls into when the internet must keep
 * reaching a service of the site. Pure.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "policy-lint.h"

struct lint {
        const struct ks_policy *p;
        struct ks_diags *d;
        int n;
};

static int __attribute__((format(printf, 3, 4))) warn(struct lint *l, unsigned line, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        l->n++;
        return diags_add(l->d, l->p->path ? l->p->path : "<policy>", line, "warning: %s", msg);
}

static bool has_any(const struct ks_prefix *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].len == 0)
                        return true;
        return false;
}

static bool has_family(const struct ks_prefix *v, size_t n, int family)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].family == family)
                        return true;
        return false;
}

static unsigned gateway_line(const struct ks_gateway *g)
{
        return g->address_line ? g->address_line : g->line;
}

/* Every address, both ways, no Local=: any internet host may open connections to every host of ours. */
static int lint_everyone(struct lint *l, const struct ks_gateway *g)
{
        if (!has_any(g->addrs, g->n_addrs) || g->direction != KS_DIRECTION_BOTH ||
            (g->n_locals > 0 && !has_any(g->locals, g->n_locals)))
                return 0;
        return warn(l, gateway_line(g),
                    "gateway %s keeps all addresses in both directions without Local=: every host on the "
                    "internet may open connections to every host of ours%s; to keep a service of ours "
                    "reachable use [Service], else set Direction=out or Local=",
                    g->name, g->tracked ? " on these ports" : " on these ports, and reach any port from them");
}

static int lint_own_address(struct lint *l, const struct ks_gateway *g, const struct ks_host_view *host)
{
        char buf[INET6_ADDRSTRLEN];

        for (size_t i = 0; i < g->n_addrs; i++)
                for (size_t j = 0; j < host->n_addrs; j++) {
                        const struct ks_prefix *a = &g->addrs[i], *h = &host->addrs[j];
                        size_t len = a->family == AF_INET ? 4 : 16;

                        if (a->family != h->family || a->len != len * 8 || memcmp(a->addr, h->addr, len) != 0)
                                continue;
                        inet_ntop(a->family, a->addr, buf, sizeof(buf));
                        return warn(l, gateway_line(g),
                                    "gateway %s: %s is an address of this host, and a gateway is a remote "
                                    "peer: this keeps nothing; to keep a service of ours reachable from the "
                                    "internet, use a [Service] section", g->name, buf);
                }
        return 0;
}

/* Local= that names no host of a family Address= has: those addresses keep nothing. */
static int lint_local_family(struct lint *l, const struct ks_gateway *g)
{
        static const struct { int af; const char *name; } fams[] = { { AF_INET, "IPv4" }, { AF_INET6, "IPv6" } };

        for (size_t i = 0; g->n_locals > 0 && i < sizeof(fams) / sizeof(fams[0]); i++)
                if (has_family(g->addrs, g->n_addrs, fams[i].af) && !has_family(g->locals, g->n_locals, fams[i].af))
                        return warn(l, gateway_line(g), "gateway %s: Local= has no %s address, so the %s "
                                    "addresses of Address= keep nothing", g->name, fams[i].name, fams[i].name);
        return 0;
}

static bool among(const char *const *names, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(names[i], name) == 0)
                        return true;
        return false;
}

/*
 * A bridge as an uplink: what it forwards between its ports (virtual machines
 * or containers bridged onto the internet's segment) passes neither its own
 * hooks nor, without br_netfilter, the inet chains. Its port to the internet,
 * as the uplink, is cut with the bridge (its master) for this host's traffic.
 * An uplink stacked on a lower device (a vlan on a trunk, a macvlan, a bond's
 * slaves): the link layer is bound to the uplink and what is stacked on it,
 * never to the lower device, which may carry other links (the LAN's vlan);
 * a packet socket on the lower device writes past the cut (the audit of the
 * cut, finding 2). Only the admin knows whether it carries anything else.
 */
static int lint_uplinks(struct lint *l, const struct ks_host_view *host)
{
        const struct ks_policy *p = l->p;
        int k = 0;

        for (size_t i = 0; k >= 0 && i < p->n_uplinks; i++) {
                unsigned line = p->uplink_lines ? p->uplink_lines[i] : 0;

                if (!among(host->ifnames, host->n_ifnames, p->uplinks[i]))
                        k = warn(l, line, "uplink %s does not exist now; it is cut as soon as it appears (a typo? "
                                 "`ip link` lists the interfaces)", p->uplinks[i]);
                else if (among(host->bridges, host->n_bridges, p->uplinks[i]))
                        k = warn(l, line, "uplink %s is a bridge: what it forwards between its ports (virtual "
                                 "machines, containers bridged onto it) is not cut; name its port to the "
                                 "internet instead (`bridge link` lists them): the cut then takes the bridge "
                                 "with it", p->uplinks[i]);
                for (size_t j = 0; k >= 0 && j < host->n_stacked; j++)
                        if (strcmp(host->stacked[j].upper, p->uplinks[i]) == 0 &&
                            !among(host->bridges, host->n_bridges, p->uplinks[i]))
                                k = warn(l, line, "uplink %s is stacked on %s: frames a process with CAP_NET_RAW "
                                         "writes on %s itself are not cut; if %s carries only internet traffic, "
                                         "name %s as the uplink instead (the cut takes what is stacked on it)",
                                         p->uplinks[i], host->stacked[j].lower, host->stacked[j].lower,
                                         host->stacked[j].lower, host->stacked[j].lower);
        }
        return k;
}

int policy_lint(const struct ks_policy *p, const struct ks_host_view *host, struct ks_diags *warnings)
{
        struct lint l = { .p = p, .d = warnings };
        int k = 0;

        if (!p)
                return -EINVAL;
        for (size_t i = 0; k >= 0 && i < p->n_gateways; i++) {
                const struct ks_gateway *g = &p->gateways[i];

                k = lint_everyone(&l, g);
                if (k >= 0 && host)
                        k = lint_own_address(&l, g, host);
                if (k >= 0)
                        k = lint_local_family(&l, g);
        }
        if (k >= 0 && host)
                k = lint_uplinks(&l, host);
        return k < 0 ? k : l.n;
}
