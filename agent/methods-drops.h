/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* io.killswitch.Drops and the status object's "drops" (methods-drops.c). */

struct ks_manager;
struct ks_actor;

/* The reply of Drops: tuples last seen at or after since_usec (0: all), most packets first, at most top (0: all). */
json_t *drops_json(struct ks_manager *m, uint64_t since_usec, size_t top);
/* {sources, tuples, packets, bytes, overflow, top_source, top_source_packets} of the last read. */
json_t *drops_summary_json(struct ks_manager *m);
json_t *method_drops(struct ks_manager *m, const struct ks_actor *a, json_t *params);
/* "tcp", "udp", "icmp", "ipv6-icmp", ..., else the number into buf. */
const char *drops_proto_name(uint8_t proto, char *buf, size_t size);
