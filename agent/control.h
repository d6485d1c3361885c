/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
#define CONTROL_ROOT_RESERVE  32        /* connections beyond the limit, for trusted callers only */
/*
 * Budgets of an untrusted caller (neither root nor in group killswitch), per
 * uid: connections, bytes of replies queued and not read yet, and CPU time
 * spent on its requests (CONTROL_UID_CPU_SHARE of a CPU on average, bursts up
 * to CONTROL_UID_CPU_BURST_USEC). Past the CPU budget its requests wait, and
 * while one of its calls is answered later (control_defer: work off the loop,
 * charged when done) its other requests wait for that answer.
 *
 * A user has as many uids as he likes (the 65,536 subordinate uids of
 * /etc/subuid, in a user namespace of his own): all untrusted callers together
 * also have budgets, whatever their uids. Replies queued for them, unread, at
 * most CONTROL_UNTRUSTED_QUEUED (past it, their calls get Busy), and their CPU
 * time CONTROL_UNTRUSTED_CPU_SHARE of a CPU (past it, all their requests
 * wait): twice one uid's, so that one greedy uid leaves the other half to
 * the others.
 */
#define CONTROL_UID_CONNS          16
#define CONTROL_UID_QUEUED         (2u * 1024u * 1024u)
#define CONTROL_UID_CPU_SHARE      10      /* 1/10 of a CPU */
#define CONTROL_UID_CPU_BURST_USEC (200ULL * 1000ULL)
#define CONTROL_UNTRUSTED_QUEUED          (16u * 1024u * 1024u)
#define CONTROL_UNTRUSTED_CPU_SHARE       5       /* 1/5 of a CPU */
#define CONTROL_UNTRUSTED_CPU_BURST_USEC  (400ULL * 1000ULL)
#define CONTROL_WARN_USEC     (60ULL * 1000000ULL)      /* a warning about callers said at most this often */
#define CONTROL_REQUEST_USEC  (10ULL * 1000000ULL)
#define CONTROL_IDLE_USEC     (60ULL * 1000000ULL)
#define CONTROL_WATCH_USEC    (2ULL * 1000000ULL)       /* retry period while the socket cannot be re-created */

struct ks_peer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t *groups;          /* supplementary groups (SO_PEERGROUPS) */
        size_t n_groups;
        bool trusted;           /* root or group killswitch when it connected (see control_set_trusted) */
};

bool peer_in_group(const struct ks_peer *p, gid_t gid);

/* Returns the whole reply object ({"parameters":...} or {"error":...}); NULL on out of memory. */
typedef json_t *(*control_handler_t)(void *userdata, const struct ks_peer *peer,
                                     const char *method, json_t *parameters);

/* A decoded request. `root` owns the rest: method and parameters live as long as it does. */
struct control_request {
        json_t *root;
        const char *method;
        json_t *parameters;     /* an object, never NULL after a successful decode ("null" is {}) */
        bool oneway;            /* no reply at all */
        bool more;              /* the client accepts several replies: it gets one, without "continues" */
        bool upgrade;           /* no method upgrades the connection: refused */
};

/*
 * Decode one request: the `len` bytes before its NUL terminator. Pure (no I/O),
 * fuzzed by tests/fuzz/fuzz-control.c. Returns 0 and fills *ret; -EMSGSIZE if
 * longer than CONTROL_MAX_REQUEST; -EBADMSG if it is not a JSON object with a
 * string "method", optional "parameters" (an object, or null for none) and
 * optional booleans "oneway", "more" and "upgrade" (err says why, for the ProtocolError reply); -ENOMEM. *ret is only
 * written on success; release it with control_request_clear().
 */
int control_decode(const char *buf, size_t len, struct control_request *ret, char *err, size_t errsize);
void control_request_clear(struct control_request *r);

struct ks_control;

/*
 * Listen on `path` (creating its directory, replacing a stale socket), or on the
 * socket passed by systemd socket activation if there is one.
 */
int control_new(sd_event *event, const char *path, control_handler_t handler, void *userdata,
                struct ks_control **ret);
struct ks_control *control_free(struct ks_control *c);

/*
 * Where we listen, for the log: the path we bound, or the path of the socket systemd
 * passed ("PATH (from systemd)"), whatever --socket said. Returns buf.
 */
const char *control_describe(struct ks_control *c, char *buf, size_t size);

/*
 * A call answered later (a reload, whose slow part runs off the loop): the
 * handler calls control_defer() with the peer it was given and returns NULL;
 * control_reply() answers once the result is known (the caller keeps its
 * reference of reply; NULL means out of memory) and frees the call. Meanwhile
 * the connection reads no further request; a reply to a client that has gone
 * is dropped. NULL if out of memory (the handler then answers at once).
 */
struct control_call;
struct control_call *control_defer(const struct ks_peer *peer);
void control_reply(struct control_call *call, json_t *reply);
/* The same with the reply's JSON text, made elsewhere (NULL means out of memory); the caller keeps text. */
void control_reply_text(struct control_call *call, const char *text);
/* The handler answers at once after all (its return value is the reply): forget the call. */
void control_undefer(struct control_call *call);
/* Its client has gone: nobody reads the reply (which need not be made, then). */
bool control_call_gone(const struct control_call *call);
/*
 * CPU time spent on the call off the loop, charged to its caller as the time
 * of a handler is (an untrusted uid's budget). Call it before control_reply().
 */
void control_charge(struct control_call *call, uint64_t cpu_usec);
/* Who gets the reserve and no budgets; without it, only uid 0. */
void control_set_trusted(struct ks_control *c, bool (*trusted)(const struct ks_peer *peer));
/*
 * The emergency methods (isolate, restore): their requests are handled as soon
 * as they are read; every other request waits until the loop has nothing more
 * urgent to do (an idle-priority event source), so that 100 clients asking for
 * status never queue in front of an isolation. Without it, all are handled at once.
 */
void control_set_urgent(struct ks_control *c, bool (*urgent)(const char *method));

/* A reply: {"parameters": params} (params is stolen). */
json_t *reply_ok(json_t *params);
/* An error reply: {"error": id, "parameters": {"message": ...}} (extra is stolen, may be NULL). */
json_t *reply_error(const char *id, json_t *extra, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
