/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <libmnl/libmnl.h>

#include "cleanup.h"
#include "nfnl.h"
#include "nflog.h"

struct ks_nflog {
        struct mnl_socket *nl;
        sd_event_source *source;
        nflog_cb_t cb;
        void *userdata;
};

static int on_events(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_nflog *l = userdata;
        char buf[16384];
        ssize_t len;

        while ((len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) != 0) {
                const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
                int n = (int)len;
                bool any = false;

                if (len < 0) {
                        if (errno == ENOBUFS) { /* lost events: there were many */
                                l->cb(l->userdata);
                                continue;
                        }
                        break;  /* EAGAIN, EINTR */
                }
                for (; mnl_nlmsg_ok(nlh, n); nlh = mnl_nlmsg_next(nlh, &n))
                        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_ULOG &&
                            NFNL_MSG_TYPE(nlh->nlmsg_type) == NFULNL_MSG_PACKET)
                                any = true;
                if (any)
                        l->cb(l->userdata);
        }
        return 0;
}

/* One NFULNL_MSG_CONFIG request for group, acknowledged. */
static int config(struct mnl_socket *nl, uint16_t group, uint16_t attr, const void *data, size_t size)
{
        char buf[8192];
        uint32_t seq = (uint32_t)time(NULL);
        struct nlmsghdr *nlh = nfnl_put_header(buf, sizeof(buf), NFNL_SUBSYS_ULOG, NFULNL_MSG_CONFIG, NLM_F_ACK,
                                               AF_UNSPEC, group, seq);
        ssize_t len;

        mnl_attr_put(nlh, attr, size, data);
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
        if (len < 0)
                return -errno;
        return mnl_cb_run(buf, (size_t)len, seq, mnl_socket_get_portid(nl), NULL, NULL) < 0 ? -errno : 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_nflog *, nflog_free)

int nflog_new(sd_event *event, uint16_t group, nflog_cb_t cb, void *userdata, struct ks_nflog **ret)
{
        struct nfulnl_msg_config_cmd bind = { .command = NFULNL_CFG_CMD_BIND };
        struct nfulnl_msg_config_mode mode = { .copy_range = htonl(0), .copy_mode = NFULNL_COPY_META };
        _cleanup_(nflog_freep) struct ks_nflog *l = calloc(1, sizeof(*l));
        int r, size = 1 << 20;

        if (!l)
                return -ENOMEM;
        *l = (struct ks_nflog){ .cb = cb, .userdata = userdata };
        l->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
        if (!l->nl || mnl_socket_bind(l->nl, 0, MNL_SOCKET_AUTOPID) < 0)
                r = -errno;
        else if ((r = config(l->nl, group, NFULA_CFG_CMD, &bind, sizeof(bind))) == 0 &&
                 (r = config(l->nl, group, NFULA_CFG_MODE, &mode, sizeof(mode))) == 0) {
                setsockopt(mnl_socket_get_fd(l->nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
                r = sd_event_add_io(event, &l->source, mnl_socket_get_fd(l->nl), EPOLLIN, on_events, l);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

struct ks_nflog *nflog_free(struct ks_nflog *l)
{
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->source);
        if (l->nl)
                mnl_socket_close(l->nl);
        free(l);
        return NULL;
}
