/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "alloc.h"
#include "cleanup.h"
#include "links.h"
#include "netlink-cleanup.h"



/* Room for the burst of a namespace full of links (a container host). */
#define LINKS_RCVBUF (4 * 1024 * 1024)

struct link {
        int ifindex;
        char name[IFNAMSIZ];
        char kind[16];          /* IFLA_INFO_KIND: "macvlan", "bridge", ... or "" */
        int lower;              /* IFLA_LINK within this namespace, 0 if none */
        int master;             /* IFLA_MASTER, 0 if none */
        bool tracked;           /* an uplink, by ifindex */
        bool cut;               /* tracked, or stacked on / enslaving a link of the cut */
};

struct ks_links {
        struct mnl_socket *nl;
        sd_event_source *io;
        links_cb_t cb;
        void *userdata;
        struct link *v;
        size_t n;
        char **names;           /* the policy's uplink names: whoever takes one is tracked */
        size_t n_names;
        int *adopted;           /* ifindexes tracked whatever their names (links_adopt) */
        size_t n_adopted;
};

static struct link *link_find(struct ks_links *l, int ifindex)
{
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].ifindex == ifindex)
                        return &l->v[i];
        return NULL;
}

static bool adopted(const struct ks_links *l, int ifindex)
{
        for (size_t i = 0; i < l->n_adopted; i++)
                if (l->adopted[i] == ifindex)
                        return true;
        return false;
}

static bool wanted_name(const struct ks_links *l, const char *name)
{
        for (size_t i = 0; i < l->n_names; i++)
                if (strcmp(l->names[i], name) == 0)
                        return true;
        return false;
}

/* Mark the cut: tracked links, then whatever is stacked on or enslaves one, until nothing changes. */
static void compute_cut(struct ks_links *l)
{
        bool changed = true;

        for (size_t i = 0; i < l->n; i++)
                l->v[i].cut = l->v[i].tracked;
        while (changed) {
                changed = false;
                for (size_t i = 0; i < l->n; i++) {
                        struct link *k = &l->v[i];
                        struct link *lower, *master;

                        if (!k->cut)
                                continue;
                        master = k->master ? link_find(l, k->master) : NULL;
                        if (master && !master->cut)
                                changed = master->cut = true;
                        for (size_t j = 0; j < l->n; j++) {
                                lower = &l->v[j];
                                if (!lower->cut && lower->lower == k->ifindex)
                                        changed = lower->cut = true;
                        }
                }
        }
}

struct link_msg {
        struct link link;
        bool has_name;
        bool other_netns;       /* IFLA_LINK names a link of another namespace (a veth's peer) */
};

static int info_cb(const struct nlattr *attr, void *data)
{
        struct link *k = data;

        if (mnl_attr_get_type(attr) == IFLA_INFO_KIND && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                snprintf(k->kind, sizeof(k->kind), "%s", mnl_attr_get_str(attr));
        return MNL_CB_OK;
}

static int attr_cb(const struct nlattr *attr, void *data)
{
        struct link_msg *m = data;

        switch (mnl_attr_get_type(attr)) {
        case IFLA_IFNAME:
                if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
                        snprintf(m->link.name, sizeof(m->link.name), "%s", mnl_attr_get_str(attr));
                        m->has_name = true;
                }
                break;
        case IFLA_LINK:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        m->link.lower = (int)mnl_attr_get_u32(attr);
                break;
        case IFLA_LINK_NETNSID:
                m->other_netns = true;
                break;
        case IFLA_MASTER:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        m->link.master = (int)mnl_attr_get_u32(attr);
                break;
        case IFLA_LINKINFO:
                mnl_attr_parse_nested(attr, info_cb, &m->link);
                break;
        }
        return MNL_CB_OK;
}

/* What changed in the cut, said for the audit; "" if nothing did. */
static void describe(const struct link *before, const struct link *now, const struct link *lower,
                     const struct link *master, char *what, size_t size)
{
        const char *kind = now->kind[0] ? now->kind : "link";

        if (before && before->cut && strcmp(before->name, now->name) != 0)
                snprintf(what, size, "link %s (ifindex %d) of the cut was renamed to %s", before->name,
                         now->ifindex, now->name);
        else if (now->tracked && (!before || !before->tracked))
                snprintf(what, size, "a link named like uplink %s appeared (%s, ifindex %d)", now->name, kind,
                         now->ifindex);
        else if (lower && lower->cut && now->cut && (!before || !before->cut))
                snprintf(what, size, "%s %s (ifindex %d) was stacked on %s", kind, now->name, now->ifindex,
                         lower->name);
        else if (master && master->cut && now->cut && !(before && before->master == now->master))
                snprintf(what, size, "%s %s (ifindex %d) took %s as a port", master->kind[0] ? master->kind :
                         "master", master->name, master->ifindex, now->name);
        else
                what[0] = '\0';
}

static size_t cut_count(const struct ks_links *l)
{
        size_t n = 0;

        for (size_t i = 0; i < l->n; i++)
                n += l->v[i].cut;
        return n;
}

static void on_newlink(struct ks_links *l, const struct nlmsghdr *nlh, char *what, size_t size)
{
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        struct link_msg m = { .link = { .ifindex = ifi->ifi_index } };
        struct link before = {}, *k = link_find(l, ifi->ifi_index);
        bool known = k != NULL;

        mnl_attr_parse(nlh, sizeof(*ifi), attr_cb, &m);
        if (!m.has_name)
                return;
        if (m.other_netns || m.link.lower == m.link.ifindex)
                m.link.lower = 0;
        if (!k) {
                if (!GREEDY_REALLOC(l->v, l->n + 1))
                        return;
                k = &l->v[l->n++];
                *k = m.link;
        } else {
                before = *k;
                m.link.tracked = k->tracked;
                m.link.cut = k->cut;
                *k = m.link;
        }
        if (wanted_name(l, k->name))
                k->tracked = true;
        compute_cut(l);
        k = link_find(l, ifi->ifi_index);
        describe(known ? &before : NULL, k, k->lower ? link_find(l, k->lower) : NULL,
                 k->master ? link_find(l, k->master) : NULL, what, size);
        /* The master of a link of the cut is reported when the port's message says so. */
        if (what[0] == '\0' && k->cut && !(known && before.cut))
                snprintf(what, size, "%s %s (ifindex %d) joined the cut", k->kind[0] ? k->kind : "link", k->name,
                         k->ifindex);
}

static void on_dellink(struct ks_links *l, const struct nlmsghdr *nlh, char *what, size_t size)
{
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        struct link *k = link_find(l, ifi->ifi_index);

        if (!k)
                return;
        if (k->cut)
                snprintf(what, size, "link %s (ifindex %d) of the cut was removed", k->name, k->ifindex);
        *k = l->v[--l->n];
        compute_cut(l);
}

struct dispatch {
        struct ks_links *l;
        bool report;
};

static int msg_cb(const struct nlmsghdr *nlh, void *data)
{
        struct dispatch *d = data;
        size_t was = cut_count(d->l);
        char what[256] = "";
        bool tamper;

        /* A bridge also reports its ports (family AF_BRIDGE), and "deletes" them when they leave it. */
        if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)) ||
            ((const struct ifinfomsg *)mnl_nlmsg_get_payload(nlh))->ifi_family == AF_BRIDGE)
                return MNL_CB_OK;
        if (nlh->nlmsg_type == RTM_NEWLINK)
                on_newlink(d->l, nlh, what, sizeof(what));
        else if (nlh->nlmsg_type == RTM_DELLINK)
                on_dellink(d->l, nlh, what, sizeof(what));
        if (!d->report || d->l->n_names == 0 || what[0] == '\0')
                return MNL_CB_OK;
        tamper = nlh->nlmsg_type == RTM_NEWLINK;
        if (tamper || cut_count(d->l) != was)
                d->l->cb(d->l->userdata, what, tamper);
        return MNL_CB_OK;
}

/* Every link as it is now (RTM_GETLINK dump on a socket of its own). */
static int links_dump(struct ks_links *l, bool report)
{
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        _cleanup_free_ char *buf = malloc(MNL_SOCKET_BUFFER_SIZE * 4);
        struct dispatch d = { .l = l, .report = report };
        uint32_t seq = (uint32_t)time(NULL);
        struct nlmsghdr *nlh;
        struct rtgenmsg *rt;
        int r;

        if (!buf)
                return -ENOMEM;
        nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
                return -errno;
        nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETLINK;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        nlh->nlmsg_seq = seq;
        rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
        rt->rtgen_family = AF_UNSPEC;
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        do {
                ssize_t len = mnl_socket_recvfrom(nl, buf, MNL_SOCKET_BUFFER_SIZE * 4);

                if (len < 0)
                        return -errno;
                r = mnl_cb_run(buf, (size_t)len, seq, mnl_socket_get_portid(nl), msg_cb, &d);
        } while (r > MNL_CB_STOP);
        return r < 0 ? -errno : 0;
}

static int on_events(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_links *l = userdata;
        struct dispatch d = { .l = l, .report = true };
        char buf[16384];

        for (;;) {
                ssize_t len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

                if (len < 0 && errno == ENOBUFS) {
                        /* Events were lost: read the links again, report what differs. */
                        links_dump(l, true);
                        continue;
                }
                if (len <= 0)
                        return 0;
                mnl_cb_run(buf, (size_t)len, 0, 0, msg_cb, &d);
        }
}

int links_new(sd_event *event, links_cb_t cb, void *userdata, struct ks_links **ret)
{
        struct ks_links *l = calloc(1, sizeof(*l));
        int size = LINKS_RCVBUF, r;

        if (!l)
                return -ENOMEM;
        l->cb = cb;
        l->userdata = userdata;
        l->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
        /* Subscribe before the dump, so that no change falls between the two. */
        if (!l->nl || mnl_socket_bind(l->nl, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
                r = -errno;
                links_free(l);
                return r;
        }
        if (setsockopt(mnl_socket_get_fd(l->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                setsockopt(mnl_socket_get_fd(l->nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        r = links_dump(l, false);
        if (r >= 0)
                r = sd_event_add_io(event, &l->io, mnl_socket_get_fd(l->nl), EPOLLIN, on_events, l);
        if (r < 0) {
                links_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

static void names_clear(struct ks_links *l)
{
        for (size_t i = 0; i < l->n_names; i++)
                free(l->names[i]);
        free(l->names);
        l->names = NULL;
        l->n_names = 0;
}

struct ks_links *links_free(struct ks_links *l)
{
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->io);
        if (l->nl)
                mnl_socket_close(l->nl);
        names_clear(l);
        free(l->adopted);
        free(l->v);
        free(l);
        return NULL;
}

int links_track(struct ks_links *l, const char (*names)[IFNAMSIZ], size_t n, bool reset)
{
        char **v = calloc(n + 1, sizeof(*v));

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(v[i] = strdup(names[i]))) {
                        for (size_t j = 0; j < i; j++)
                                free(v[j]);
                        free(v);
                        return -ENOMEM;
                }
        names_clear(l);
        l->names = v;
        l->n_names = n;
        /* Afresh (another policy) or none: the links adopted at start by ifindex were the old policy's. */
        if (n == 0 || reset) {
                free(l->adopted);
                l->adopted = NULL;
                l->n_adopted = 0;
        }
        for (size_t i = 0; i < l->n; i++)
                l->v[i].tracked = (!reset && l->v[i].tracked) || wanted_name(l, l->v[i].name) ||
                                  adopted(l, l->v[i].ifindex);
        compute_cut(l);
        return 0;
}

int links_cut(struct ks_links *l, const char ***ret, size_t *ret_n)
{
        const char **v = calloc(l->n + 1, sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].cut && !(l->v[i].tracked && wanted_name(l, l->v[i].name)))
                        v[n++] = l->v[i].name;
        *ret = v;
        *ret_n = n;
        return 0;
}

bool links_in_cut(struct ks_links *l, const char *name)
{
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].cut && strcmp(l->v[i].name, name) == 0)
                        return true;
        return wanted_name(l, name);
}

size_t links_tracked(struct ks_links *l, char (*names)[IFNAMSIZ], int *ifindexes, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < l->n; i++) {
                if (!l->v[i].tracked)
                        continue;
                if (n < max) {
                        snprintf(names[n], IFNAMSIZ, "%s", l->v[i].name);
                        ifindexes[n] = l->v[i].ifindex;
                }
                n++;
        }
        return n;
}

int links_adopt(struct ks_links *l, const char *name, int ifindex)
{
        struct link *k = link_find(l, ifindex);
        char what[256];

        if (!k || adopted(l, ifindex))
                return 0;
        if (!GREEDY_REALLOC(l->adopted, l->n_adopted + 1))
                return -ENOMEM;
        l->adopted[l->n_adopted++] = ifindex;
        k->tracked = true;
        compute_cut(l);
        if (strcmp(k->name, name) == 0)
                return 0;
        snprintf(what, sizeof(what), "uplink %s (ifindex %d) was renamed to %s while the agent was not running",
                 name, ifindex, k->name);
        l->cb(l->userdata, what, true);
        return 1;
}
