/* SPDX-License-Identifier: MIT */
#pragma once

#include <net/if.h>

/* The interface the kernel routes `addr` (AF_INET/AF_INET6, network order) through. */
int route_lookup_ifname(int family, const void *addr, char ret_ifname[IFNAMSIZ]);
