/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <libmnl/libmnl.h>

#include "alloc.h"
#include "cleanup.h"
#include "conntrack.h"
#include "netlink-cleanup.h"
#include "nfnl.h"

/* Kernel dump messages can be larger than a page: room for the largest. */
#define DUMP_BUFFER_SIZE 65536

/* Original tuples (raw CTA_TUPLE_ORIG attributes) and zones of the offloaded entries. */
struct victims {
        struct victim {
                void *tuple;
                uint16_t tuple_len;
                uint8_t family;
                uint16_t zone;  /* network byte order, 0 = default */
        } *items;
        size_t n;
        int error;
};

static int ct_attr_cb(const struct nlattr *attr, void *data)
{
        const struct nlattr **tb = data;
        int type = mnl_attr_get_type(attr);

        if (mnl_attr_type_valid(attr, CTA_MAX) > 0)
                tb[type] = attr;
        return MNL_CB_OK;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
        const struct nlattr *tb[CTA_MAX + 1] = {};
        const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
        struct victims *v = data;
        struct victim *items;

        mnl_attr_parse(nlh, sizeof(*nfg), ct_attr_cb, tb);
        if (!tb[CTA_STATUS] || !tb[CTA_TUPLE_ORIG] ||
            !(ntohl(mnl_attr_get_u32(tb[CTA_STATUS])) & IPS_OFFLOAD))
                return MNL_CB_OK;
        items = GREEDY_REALLOC(v->items, v->n + 1);
        if (!items) {
                v->error = -ENOMEM;
                return MNL_CB_OK;
        }
        items[v->n] = (struct victim){
                .tuple = malloc(tb[CTA_TUPLE_ORIG]->nla_len),
                .tuple_len = tb[CTA_TUPLE_ORIG]->nla_len,
                .family = nfg->nfgen_family,
                .zone = tb[CTA_ZONE] ? mnl_attr_get_u16(tb[CTA_ZONE]) : 0,
        };
        if (!items[v->n].tuple) {
                v->error = -ENOMEM;
                return MNL_CB_OK;
        }
        memcpy(items[v->n].tuple, tb[CTA_TUPLE_ORIG], tb[CTA_TUPLE_ORIG]->nla_len);
        v->n++;
        return MNL_CB_OK;
}

static struct nlmsghdr *ct_msg(char *buf, size_t size, uint16_t type, uint16_t flags, uint8_t family, uint32_t seq)
{
        return nfnl_put_header(buf, size, NFNL_SUBSYS_CTNETLINK, (uint8_t)type, flags, family, 0, seq);
}

/* Send nlh, run cb over the answer until done or acknowledged. */
static int talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
        _cleanup_free_ char *buf = malloc(DUMP_BUFFER_SIZE);
        uint32_t seq = nlh->nlmsg_seq, portid = mnl_socket_get_portid(nl);
        int r;

        if (!buf)
                return -ENOMEM;
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        do {
                ssize_t len = mnl_socket_recvfrom(nl, buf, DUMP_BUFFER_SIZE);

                if (len < 0)
                        return -errno;
                r = mnl_cb_run(buf, (size_t)len, seq, portid, cb, data);
        } while (r > MNL_CB_STOP);
        return r < 0 ? -errno : 0;
}

static int delete_victim(struct mnl_socket *nl, const struct victim *vi, uint32_t seq)
{
        char buf[8192];
        struct nlmsghdr *nlh = ct_msg(buf, sizeof(buf), IPCTNL_MSG_CT_DELETE, NLM_F_ACK, vi->family, seq);
        int r;

        memcpy(mnl_nlmsg_get_payload_tail(nlh), vi->tuple, vi->tuple_len);
        nlh->nlmsg_len += MNL_ALIGN(vi->tuple_len);
        if (vi->zone)
                mnl_attr_put_u16(nlh, CTA_ZONE, vi->zone);
        r = talk(nl, nlh, NULL, NULL);
        return r == -ENOENT ? 0 : r;    /* gone meanwhile: fine */
}

int conntrack_flush_offloaded(unsigned *ret_deleted)
{
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        struct victims v = {};
        char buf[8192];
        uint32_t seq = (uint32_t)time(NULL);
        unsigned deleted = 0;
        int r;

        nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
        if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
                return -errno;
        r = talk(nl, ct_msg(buf, sizeof(buf), IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC, seq++), dump_cb, &v);
        if (r == 0)
                r = v.error;
        for (size_t i = 0; i < v.n; i++) {
                if (r == 0 && delete_victim(nl, &v.items[i], seq++) == 0)
                        deleted++;
                free(v.items[i].tuple);
        }
        free(v.items);
        if (ret_deleted)
                *ret_deleted = deleted;
        return r;
}
