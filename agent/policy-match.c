/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "policy-match.h"

void policy_kept_names(const struct ks_policy *p, char *buf, size_t size)
{
        size_t n = 0;

        if (size == 0)
                return;
        buf[0] = '\0';
        for (size_t i = 0; i < p->n_gateways && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "%s%s", i == 0 ? "gateways " : ", ", p->gateways[i].name);
        for (size_t i = 0; i < p->n_services && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "%s%s",
                                      i > 0 ? ", " : p->n_gateways > 0 ? "; services " : "services ",
                                      p->services[i].name);
}

bool policy_has_uplink(const struct ks_policy *p, const char *ifname)
{
        for (size_t i = 0; i < p->n_uplinks; i++)
                if (strcmp(p->uplinks[i], ifname) == 0)
                        return true;
        return false;
}

static bool prefix_contains(const struct ks_prefix *px, int family, const uint8_t *addr)
{
        unsigned bits = px->len, full = bits / 8, rest = bits % 8;

        if (px->family != family)
                return false;
        if (memcmp(px->addr, addr, full) != 0)
                return false;
        if (rest == 0)
                return true;
        return ((px->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static bool ports_match(const struct ks_gateway *gw, uint8_t proto, uint16_t rport, uint16_t lport)
{
        if (gw->n_ports == 0)
                return true;
        for (size_t i = 0; i < gw->n_ports; i++) {
                const struct ks_portrange *pr = &gw->ports[i];

                if (pr->proto != proto)
                        continue;
                if ((rport >= pr->low && rport <= pr->high) || (lport >= pr->low && lport <= pr->high))
                        return true;
        }
        return false;
}

static bool in_prefixes(const struct ks_prefix *v, size_t n, int family, const uint8_t *addr)
{
        for (size_t i = 0; i < n; i++)
                if (prefix_contains(&v[i], family, addr))
                        return true;
        return false;
}

/* lport is one of the ports (all ports without any). */
static bool port_listed(const struct ks_portrange *v, size_t n, uint8_t proto, uint16_t lport)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].proto == proto && lport >= v[i].low && lport <= v[i].high)
                        return true;
        return n == 0;
}

bool policy_keeps_inbound(const struct ks_policy *p, int family, const uint8_t *peer, const uint8_t *ours,
                          uint8_t proto, uint16_t rport, uint16_t lport)
{
        for (size_t i = 0; i < p->n_gateways; i++) {
                const struct ks_gateway *g = &p->gateways[i];

                if (!g->tracked) {
                        if (ports_match(g, proto, rport, lport) && in_prefixes(g->addrs, g->n_addrs, family, peer))
                                return true;
                        continue;
                }
                if (g->direction == KS_DIRECTION_OUT || !in_prefixes(g->addrs, g->n_addrs, family, peer) ||
                    !port_listed(g->ports, g->n_ports, proto, lport))
                        continue;
                if (g->n_locals == 0 || !ours || in_prefixes(g->locals, g->n_locals, family, ours))
                        return true;
        }
        for (size_t i = 0; i < p->n_services; i++) {
                const struct ks_service *s = &p->services[i];

                if ((s->n_from == 0 || in_prefixes(s->from, s->n_from, family, peer)) &&
                    (!ours || in_prefixes(s->addrs, s->n_addrs, family, ours)) &&
                    port_listed(s->ports, s->n_ports, proto, lport))
                        return true;
        }
        return false;
}
