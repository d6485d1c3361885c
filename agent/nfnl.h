/* SPDX-License-Identifier: MIT */
#pragma once

#include <arpa/inet.h>
#include <string.h>

#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>

/*
 * The header of an nfnetlink request (subsystem, message type, nfgenmsg) on
 * zeroed memory, for the netlink modules that do not use libnftnl (ctnetlink,
 * nfnetlink_log). res_id is in host order.
 */
static inline struct nlmsghdr *nfnl_put_header(char *buf, size_t size, uint8_t subsys, uint8_t type,
                                               uint16_t flags, uint8_t family, uint16_t res_id, uint32_t seq)
{
        struct nlmsghdr *nlh;
        struct nfgenmsg *nfg;

        memset(buf, 0, size);
        nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = (uint16_t)((subsys << 8) | type);
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        nlh->nlmsg_seq = seq;
        nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
        nfg->nfgen_family = family;
        nfg->version = NFNETLINK_V0;
        nfg->res_id = htons(res_id);
        return nlh;
}
