/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>

#include "cleanup.h"
#include "monitor.h"

/* As nft monitor does: room for the events of a large transaction. */
#define EVENT_RCVBUF (16 * 1024 * 1024)
/* Rejoining the event group failed: tried again after this long. */
#define MONITOR_REJOIN_USEC (1000 * 1000)
/* Every nf_tables object message carries its table's name as attribute 1. */
#define NFTA_ANY_TABLE 1

struct ks_monitor {
        struct mnl_socket *nl;
        sd_event_source *io;
        char *table;
        monitor_cb_t cb;
        void *userdata;
        bool touched;           /* the transaction being reported touched our table */
        struct monitor_hook hooks[MONITOR_HOOKS_MAX];   /* device-bound chains it created */
        size_t n_hooks;
        pid_t self;
        uint32_t own_portid;    /* our nf_tables socket: its transactions are ours (0: unknown) */
        bool muted;             /* out of the event group (monitor_mute), or could not rejoin it */
        sd_event_source *lost;  /* a pending report of events that went unheard */
};

static bool is_object_event(uint16_t type)
{
        switch (type) {
        case NFT_MSG_NEWTABLE: case NFT_MSG_DELTABLE:
        case NFT_MSG_NEWCHAIN: case NFT_MSG_DELCHAIN:
        case NFT_MSG_NEWRULE: case NFT_MSG_DELRULE:
        case NFT_MSG_NEWSET: case NFT_MSG_DELSET:
        case NFT_MSG_NEWSETELEM: case NFT_MSG_DELSETELEM:
        case NFT_MSG_NEWOBJ: case NFT_MSG_DELOBJ:
        case NFT_MSG_NEWFLOWTABLE: case NFT_MSG_DELFLOWTABLE:
                return true;
        default:
                return false;
        }
}

/* Our table, or one of its companions named "<table>_*". */
static bool is_ours(const char *ours, const char *table)
{
        size_t len = strlen(ours);

        return strncmp(table, ours, len) == 0 && (table[len] == '\0' || table[len] == '_');
}

static int table_attr_cb(const struct nlattr *attr, void *data)
{
        if (mnl_attr_get_type(attr) == NFTA_ANY_TABLE && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                *(const char **)data = mnl_attr_get_str(attr);
        return MNL_CB_OK;
}

struct gen_info {
        uint32_t id, pid;
        const char *comm;
};

static int gen_attr_cb(const struct nlattr *attr, void *data)
{
        struct gen_info *g = data;

        switch (mnl_attr_get_type(attr)) {
        case NFTA_GEN_ID:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        g->id = ntohl(mnl_attr_get_u32(attr));
                break;
        case NFTA_GEN_PROC_PID:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        g->pid = ntohl(mnl_attr_get_u32(attr));
                break;
        case NFTA_GEN_PROC_NAME:
                if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                        g->comm = mnl_attr_get_str(attr);
                break;
        }
        return MNL_CB_OK;
}

static void report_generation(struct ks_monitor *m, const struct nlmsghdr *nlh)
{
        struct gen_info g = {};
        struct monitor_event ev = {};

        mnl_attr_parse(nlh, sizeof(struct nfgenmsg), gen_attr_cb, &g);
        /*
         * Ours: sent from our nf_tables socket (the event carries its port id), or by
         * our pid. The kernel reports the pid as seen from the initial pid namespace, so in
         * a container (systemd-nspawn, a pid namespace) the pid alone would call our own
         * transactions foreign, and the agent would fight itself until rate-limited.
         */
        if ((!m->touched && m->n_hooks == 0) || (m->own_portid && nlh->nlmsg_pid == m->own_portid) ||
            (pid_t)g.pid == m->self) {
                m->touched = false;
                m->n_hooks = 0;
                return;
        }
        ev.touched = m->touched;
        ev.hooks = m->hooks;
        ev.n_hooks = m->n_hooks;
        m->touched = false;
        m->n_hooks = 0;
        ev.generation = g.id;
        ev.pid = (pid_t)g.pid;
        snprintf(ev.comm, sizeof(ev.comm), "%s", g.comm ? g.comm : "?");
        m->cb(m->userdata, &ev);
}

struct chain_info {
        const char *table, *name, *dev;
        const struct nlattr *hook, *devs;
        uint32_t hooknum;
        bool has_hooknum;
};

static int chain_attr_cb(const struct nlattr *attr, void *data)
{
        struct chain_info *c = data;

        switch (mnl_attr_get_type(attr)) {
        case NFTA_CHAIN_TABLE:
                if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                        c->table = mnl_attr_get_str(attr);
                break;
        case NFTA_CHAIN_NAME:
                if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                        c->name = mnl_attr_get_str(attr);
                break;
        case NFTA_CHAIN_HOOK:
                if (mnl_attr_validate(attr, MNL_TYPE_NESTED) >= 0)
                        c->hook = attr;
                break;
        }
        return MNL_CB_OK;
}

static int hook_attr_cb(const struct nlattr *attr, void *data)
{
        struct chain_info *c = data;

        switch (mnl_attr_get_type(attr)) {
        case NFTA_HOOK_HOOKNUM:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
                        c->hooknum = ntohl(mnl_attr_get_u32(attr));
                        c->has_hooknum = true;
                }
                break;
        case NFTA_HOOK_DEV:
                if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                        c->dev = mnl_attr_get_str(attr);
                break;
        case NFTA_HOOK_DEVS:
                if (mnl_attr_validate(attr, MNL_TYPE_NESTED) >= 0)
                        c->devs = attr;
                break;
        }
        return MNL_CB_OK;
}

static void add_hook(struct ks_monitor *m, int family, const struct chain_info *c, const char *dev)
{
        struct monitor_hook *h;
        const char *hook = family == NFPROTO_NETDEV ? (c->hooknum == NF_NETDEV_EGRESS ? "egress" : "ingress")
                                                   : "ingress";

        if (m->n_hooks == MONITOR_HOOKS_MAX)
                return;
        h = &m->hooks[m->n_hooks];
        snprintf(h->device, sizeof(h->device), "%s", dev);
        snprintf(h->what, sizeof(h->what), "%s table %s chain %s hook %s", family == NFPROTO_NETDEV ? "netdev" :
                 "inet", c->table ? c->table : "?", c->name ? c->name : "?", hook);
        /* The kernel names a single device both as NFTA_HOOK_DEV and in NFTA_HOOK_DEVS. */
        for (size_t i = 0; i < m->n_hooks; i++)
                if (strcmp(m->hooks[i].device, h->device) == 0 && strcmp(m->hooks[i].what, h->what) == 0)
                        return;
        m->n_hooks++;
}

/* A base chain of someone else's table on devices: netdev ingress/egress, inet ingress. */
static void note_device_chain(struct ks_monitor *m, const struct nlmsghdr *nlh, int family)
{
        struct chain_info c = {};
        const struct nlattr *a;

        mnl_attr_parse(nlh, sizeof(struct nfgenmsg), chain_attr_cb, &c);
        if (!c.hook || (c.table && is_ours(m->table, c.table)))
                return;
        mnl_attr_parse_nested(c.hook, hook_attr_cb, &c);
        if (!c.has_hooknum || (family == NFPROTO_INET && c.hooknum != NF_INET_INGRESS))
                return;
        if (c.dev)
                add_hook(m, family, &c, c.dev);
        if (c.devs)
                mnl_attr_for_each_nested(a, c.devs)
                        if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
                                add_hook(m, family, &c, mnl_attr_get_str(a));
}

static int event_cb(const struct nlmsghdr *nlh, void *data)
{
        struct ks_monitor *m = data;
        const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
        const char *table = NULL;

        if (type == NFT_MSG_NEWGEN) {
                report_generation(m, nlh);
                return MNL_CB_OK;
        }
        if (!is_object_event(type) || (nfg->nfgen_family != NFPROTO_INET && nfg->nfgen_family != NFPROTO_NETDEV))
                return MNL_CB_OK;
        if (type == NFT_MSG_NEWCHAIN)
                note_device_chain(m, nlh, nfg->nfgen_family);
        mnl_attr_parse(nlh, sizeof(*nfg), table_attr_cb, &table);
        if (table && is_ours(m->table, table))
                m->touched = true;
        return MNL_CB_OK;
}

static void report_overflow(struct ks_monitor *m)
{
        struct monitor_event ev = { .overflow = true };

        m->touched = false;
        m->n_hooks = 0;
        m->cb(m->userdata, &ev);
}

static int on_events(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_monitor *m = userdata;
        char buf[16384];

        for (;;) {
                ssize_t len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

                if (len < 0 && errno == ENOBUFS) {
                        report_overflow(m);
                        continue;
                }
                if (len <= 0)
                        return 0;
                mnl_cb_run(buf, (size_t)len, 0, 0, event_cb, m);
        }
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_monitor *, monitor_free)

int monitor_new(sd_event *event, const char *table, monitor_cb_t cb, void *userdata, struct ks_monitor **ret)
{
        _cleanup_(monitor_freep) struct ks_monitor *m = calloc(1, sizeof(*m));
        int group = NFNLGRP_NFTABLES, size = EVENT_RCVBUF, r;

        if (!m)
                return -ENOMEM;
        *m = (struct ks_monitor){ .cb = cb, .userdata = userdata, .self = getpid(), .table = strdup(table) };
        m->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (!m->table || !m->nl || mnl_socket_bind(m->nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
            mnl_socket_setsockopt(m->nl, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0)
                return m->table ? -errno : -ENOMEM;
        if (setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        r = sd_event_add_io(event, &m->io, mnl_socket_get_fd(m->nl), EPOLLIN, on_events, m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

void monitor_set_own_portid(struct ks_monitor *m, uint32_t portid)
{
        m->own_portid = portid;
}

int monitor_mute(struct ks_monitor *m, bool mute)
{
        int group = NFNLGRP_NFTABLES;

        if (mute == m->muted)
                return 0;
        if (mnl_socket_setsockopt(m->nl, mute ? NETLINK_DROP_MEMBERSHIP : NETLINK_ADD_MEMBERSHIP, &group,
                                  sizeof(group)) < 0)
                return -errno;
        m->muted = mute;
        return 0;
}

static void lost_after(struct ks_monitor *m, uint64_t usec);

/* Report from the loop (not from inside the transaction); rejoin first, if that failed. */
static int on_lost(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct ks_monitor *m = userdata;

        m->lost = sd_event_source_disable_unref(m->lost);
        if (monitor_mute(m, false) < 0)
                lost_after(m, MONITOR_REJOIN_USEC);     /* deaf: the table is checked again then */
        report_overflow(m);
        return 0;
}

static void lost_after(struct ks_monitor *m, uint64_t usec)
{
        if (!m->lost && sd_event_add_time_relative(sd_event_source_get_event(m->io), &m->lost, CLOCK_MONOTONIC,
                                                   usec, 0, on_lost, m) < 0)
                report_overflow(m);     /* no callback inside a transaction: but better now than never */
}

void monitor_lost(struct ks_monitor *m)
{
        lost_after(m, 0);
}

struct ks_monitor *monitor_free(struct ks_monitor *m)
{
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->io);
        sd_event_source_disable_unref(m->lost);
        if (m->nl)
                mnl_socket_close(m->nl);
        free(m->table);
        free(m);
        return NULL;
}
