/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "cleanup.h"
#include "netlink-cleanup.h"
#include "route.h"

static int oif_cb(const struct nlattr *attr, void *data)
{
        if (mnl_attr_get_type(attr) == RTA_OIF && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                *(uint32_t *)data = mnl_attr_get_u32(attr);
        return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
        if (nlh->nlmsg_type == RTM_NEWROUTE)
                mnl_attr_parse(nlh, sizeof(struct rtmsg), oif_cb, data);
        return MNL_CB_OK;
}

int route_lookup_ifname(int family, const void *addr, char ret_ifname[IFNAMSIZ])
{
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        char buf[8192] = {};
        struct nlmsghdr *nlh;
        struct rtmsg *rtm;
        uint32_t oif = 0, seq = (uint32_t)time(NULL);
        ssize_t len;
        int r;

        nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
                return -errno;
        nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETROUTE;
        nlh->nlmsg_flags = NLM_F_REQUEST;
        nlh->nlmsg_seq = seq;
        rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        rtm->rtm_family = (unsigned char)family;
        rtm->rtm_dst_len = family == AF_INET ? 32 : 128;
        mnl_attr_put(nlh, RTA_DST, family == AF_INET ? 4 : 16, addr);
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
        if (len < 0)
                return -errno;
        r = mnl_cb_run(buf, (size_t)len, seq, mnl_socket_get_portid(nl), route_cb, &oif);
        if (r < 0)
                return -errno;
        if (oif == 0 || !if_indextoname(oif, ret_ifname))
                return -ENETUNREACH;
        return 0;
}
