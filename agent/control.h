/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
#include <systemd/sd-event.h>

/*
 * The control socket: a Unix stream socket speaking Varlink framing (a JSON
 * object, then NUL). This module owns connections, framing, limits and peer
 * credentials; what a method does is the handler's business (methods.c).
 * Limits are documented in docs/protocol.md.
 */

#define CONTROL_MAX_REQUEST   65536
#define CONTROL_MAX_REPLY     (16u * 1024u * 1024u)
#define CONTROL_MAX_CONNS     128
#define CONTROL_REQUEST_USEC  (10ULL * 1000000ULL)
#define CONTROL_IDLE_USEC     (60ULL * 1000000ULL)

struct ks_peer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t *groups;          /* supplementary groups (SO_PEERGROUPS) */
        size_t n_groups;
};

bool peer_in_group(const struct ks_peer *p, gid_t gid);

/* Returns the whole reply object ({"parameters":...} or {"error":...}); NULL on out of memory. */
typedef json_t *(*control_handler_t)(void *userdata, const struct ks_peer *peer,
                                     const char *method, json_t *parameters);

struct ks_control;

/*
 * Listen on `path` (creating its directory, replacing a stale socket), or on the
 * socket passed by systemd socket activation if there is one.
 */
int control_new(sd_event *event, const char *path, control_handler_t handler, void *userdata,
                struct ks_control **ret);
struct ks_control *control_free(struct ks_control *c);

/* A reply: {"parameters": params} (params is stolen). */
json_t *reply_ok(json_t *params);
/* An error reply: {"error": id, "parameters": {"message": ...}} (extra is stolen, may be NULL). */
json_t *reply_error(const char *id, json_t *extra, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
