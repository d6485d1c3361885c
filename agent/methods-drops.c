/* SPDX-License-Identifier: MIT */
/*
 * io.killswitch.Drops and the status object's "drops" summary (the drop
 * sensor, docs/design.md): what the cut dropped from this side, per (source,
 * destination, protocol, destination port). The incident report builds on
 * the same: drops_json() is the reply of Drops.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "control.h"
#include "drops.h"
#include "error.h"
#include "manager.h"
#include "methods-drops.h"
#include "timespec.h"
#include "timeutil.h"

#define DROPS_TOP_DEFAULT 0             /* all */

/* The protocol as nft and /etc/protocols name it (no NSS lookup in the agent), else its number. */
const char *drops_proto_name(uint8_t proto, char *buf, size_t size)
{
        switch (proto) {
        case IPPROTO_ICMP:
                return "icmp";
        case IPPROTO_TCP:
                return "tcp";
        case IPPROTO_UDP:
                return "udp";
        case IPPROTO_ICMPV6:
                return "ipv6-icmp";
        case IPPROTO_SCTP:
                return "sctp";
        case IPPROTO_GRE:
                return "gre";
        case IPPROTO_ESP:
                return "esp";
        case IPPROTO_AH:
                return "ah";
        case IPPROTO_DCCP:
                return "dccp";
        case IPPROTO_UDPLITE:
                return "udplite";
        default:
                snprintf(buf, size, "%u", proto);
                return buf;
        }
}

static json_t *instant_json(uint64_t usec)
{
        char buf[TIMESPEC_RFC3339_MAX];

        return usec ? json_string(timespec_format_rfc3339(usec, buf, sizeof(buf))) : json_null();
}

static json_t *drop_json(const struct drop_entry *e)
{
        char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], proto[8];

        return json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:o, s:o}",
                         "source", manager_drops_addr(e, false, src, sizeof(src)),
                         "destination", manager_drops_addr(e, true, dst, sizeof(dst)),
                         "protocol", drops_proto_name(e->key.proto, proto, sizeof(proto)),
                         "port", e->key.has_port ? json_integer(e->key.port) : json_null(),
                         "packets", (json_int_t)e->packets, "bytes", (json_int_t)e->bytes,
                         "first_seen", instant_json(e->first_usec), "last_seen", instant_json(e->last_usec));
}

json_t *drops_json(struct ks_manager *m, uint64_t since_usec, size_t top)
{
        _cleanup_free_ const struct drop_entry **v = NULL;
        struct drops_totals t;
        json_t *a;
        size_t n = 0;

        if (drops_sorted(&m->drops, since_usec, top, &v, &n) < 0 || !(a = json_array()))
                return NULL;
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, drop_json(v[i]));
        drops_totals(&m->drops, &t);
        return json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:b}", "drops", a,
                         "overflow", (json_int_t)t.overflow, "tuples", (json_int_t)t.tuples,
                         "sources", (json_int_t)t.sources, "packets", (json_int_t)t.packets,
                         "bytes", (json_int_t)t.bytes, "since", instant_json(m->drops.since_usec),
                         "read", instant_json(m->drops.synced_usec), "isolated", m->state.isolated);
}

json_t *drops_summary_json(struct ks_manager *m)
{
        char top[INET6_ADDRSTRLEN];
        struct drops_totals t;
        uint64_t reads;
        bool reading = manager_drops_reading(m, &reads);

        drops_totals(&m->drops, &t);
        return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I}", "reading", reading,
                         "reads", (json_int_t)reads, "sources", (json_int_t)t.sources,
                         "tuples", (json_int_t)t.tuples, "packets", (json_int_t)t.packets,
                         "bytes", (json_int_t)t.bytes, "overflow", (json_int_t)t.overflow,
                         "top_source", t.top_source ? json_string(manager_drops_addr(t.top_source, false, top,
                                                                                       sizeof(top)))
                                                    : json_null(),
                         "top_source_packets", (json_int_t)t.top_source_packets);
}

struct drops_call {
        struct control_call *call;
        uint64_t since_usec;
        size_t top;
};

static void on_drops_read(struct ks_manager *m, void *userdata, int r)
{
        struct drops_call *c = userdata;
        _cleanup_(json_decrefp) json_t *reply = reply_ok(drops_json(m, c->since_usec, c->top));

        control_reply(c->call, reply);
        free(c);
}

/*
 * Always the kernel's counts of now: answered once a read that starts after
 * the call is folded in (it runs off the loop; calls during a read share the
 * next one). Root and group killswitch only: no budget to protect.
 */
static json_t *drops_answer(struct ks_manager *m, const struct ks_actor *a, uint64_t since_usec, size_t top)
{
        struct drops_call *c = a->peer ? calloc(1, sizeof(*c)) : NULL;
        int r;

        if (c)
                *c = (struct drops_call){ .call = control_defer(a->peer), .since_usec = since_usec, .top = top };
        r = c && c->call ? manager_drops_read_then(m, on_drops_read, c) : -ENOMEM;
        if (r == 0)
                return NULL;
        if (c && c->call)
                control_undefer(c->call);
        free(c);
        return reply_ok(drops_json(m, since_usec, top));
}

static json_t *param_error(const char *key, const char *what)
{
        return reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", key), "Parameter '%s' must be %s", key,
                           what);
}

json_t *method_drops(struct ks_manager *m, const struct ks_actor *a, json_t *params)
{
        json_t *top = json_object_get(params, "top"), *since = json_object_get(params, "since");
        uint64_t since_usec = 0;
        size_t n = DROPS_TOP_DEFAULT;

        if (top && !json_is_null(top)) {
                if (!json_is_integer(top) || json_integer_value(top) < 0 ||
                    json_integer_value(top) > DROPS_MAX_ENTRIES)
                        return param_error("top", "an integer from 0 (all) to 65536");
                n = (size_t)json_integer_value(top);
        }
        if (since && !json_is_null(since) &&
            (!json_is_string(since) || timespec_parse_rfc3339(json_string_value(since), &since_usec) < 0))
                return param_error("since", "an RFC 3339 instant, e.g. 2026-11-30T11:00:00Z");
        return drops_answer(m, a, since_usec, n);
}
