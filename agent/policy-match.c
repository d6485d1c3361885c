/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "policy-match.h"

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

const struct ks_gateway *policy_keeping_gateway(const struct ks_policy *p, int family, const uint8_t *addr,
                                                uint8_t proto, uint16_t rport, uint16_t lport)
{
        for (size_t i = 0; i < p->n_gateways; i++) {
                const struct ks_gateway *gw = &p->gateways[i];

                if (!ports_match(gw, proto, rport, lport))
                        continue;
                for (size_t j = 0; j < gw->n_addrs; j++)
                        if (prefix_contains(&gw->addrs[j], family, addr))
                                return gw;
        }
        return NULL;
}
