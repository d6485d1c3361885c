/* SPDX-License-Identifier: MIT */
/* policy-lint.c (pure) against what this host has now: getifaddrs(3), if_nameindex(3). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "lint-host.h"
#include "policy-lint.h"

struct host_info {
        struct ks_prefix addrs[256];
        const char *names[256];
        const char *bridges[256];
        struct ks_stacked stacked[256];
        char lowers[256][IFNAMSIZ];
        struct if_nameindex *ifs;
        struct ks_host_view view;
};

/* /sys/class/net/NAME/bridge exists for a bridge (the agent's namespace's sysfs). */
static bool is_bridge(const char *name)
{
        char path[64 + IFNAMSIZ];

        snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", name);
        return access(path, F_OK) == 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

/* NAME's lower devices: its sysfs entries lower_LOWER (vlan, macvlan, ipvlan, bond, bridge ports). */
static void read_lowers(struct host_info *h, const char *name)
{
        _cleanup_(closedirp) DIR *d = NULL;
        char path[64 + IFNAMSIZ];
        struct dirent *e;

        snprintf(path, sizeof(path), "/sys/class/net/%s", name);
        d = opendir(path);
        while (d && (e = readdir(d)) && h->view.n_stacked < ELEMENTSOF(h->stacked)) {
                size_t n = h->view.n_stacked;

                if (strncmp(e->d_name, "lower_", 6) != 0 || strlen(e->d_name + 6) >= IFNAMSIZ)
                        continue;
                strcpy(h->lowers[n], e->d_name + 6);
                h->stacked[n] = (struct ks_stacked){ .upper = name, .lower = h->lowers[n] };
                h->view.n_stacked++;
        }
}

static void host_info_read(struct host_info *h)
{
        struct ifaddrs *ifa = NULL;
        size_t n = 0;

        h->ifs = if_nameindex();
        for (size_t i = 0; h->ifs && h->ifs[i].if_name && n < ELEMENTSOF(h->names); i++)
                h->names[n++] = h->ifs[i].if_name;
        h->view.ifnames = h->names;
        h->view.n_ifnames = n;
        for (size_t i = 0; i < n; i++)
                if (is_bridge(h->names[i]))
                        h->bridges[h->view.n_bridges++] = h->names[i];
        h->view.bridges = h->bridges;
        for (size_t i = 0; i < n; i++)
                read_lowers(h, h->names[i]);
        h->view.stacked = h->stacked;
        n = 0;
        if (getifaddrs(&ifa) < 0)
                return;
        for (struct ifaddrs *a = ifa; a && n < ELEMENTSOF(h->addrs); a = a->ifa_next) {
                struct ks_prefix *px = &h->addrs[n];

                if (!a->ifa_addr || (a->ifa_addr->sa_family != AF_INET && a->ifa_addr->sa_family != AF_INET6))
                        continue;
                *px = (struct ks_prefix){ .family = a->ifa_addr->sa_family };
                if (px->family == AF_INET) {
                        memcpy(px->addr, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, 4);
                        px->len = 32;
                } else {
                        memcpy(px->addr, &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, 16);
                        px->len = 128;
                }
                n++;
        }
        freeifaddrs(ifa);
        h->view.addrs = h->addrs;
        h->view.n_addrs = n;
}

static void host_info_free(struct host_info *h)
{
        if (!h)
                return;
        if (h->ifs)
                if_freenameindex(h->ifs);
        free(h);
}

int lint_host_store(const struct ks_store *store, struct ks_diags *warnings)
{
        struct host_info *h = calloc(1, sizeof(*h));
        int r = 0;

        if (!h)
                return -ENOMEM;
        host_info_read(h);
        for (size_t i = 0; i < store->n && r >= 0; i++)
                if (store->items[i].policy)
                        r = policy_lint(store->items[i].policy, &h->view, warnings);
        host_info_free(h);
        return r < 0 ? r : 0;
}
