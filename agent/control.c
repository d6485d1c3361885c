/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "alloc.h"
#include "cleanup.h"
#include "control.h"
#include "error.h"
#include "log.h"
#include "timeutil.h"

struct conn {
        struct ks_control *ctl;
        struct conn *next, *prev;
        int fd;
        sd_event_source *io, *timer;
        sd_event_source *defer; /* more complete requests are buffered: handle them next round */
        struct ks_peer peer;
        char *in;               /* bytes read, not handled yet (CONTROL_MAX_REQUEST + 1 at most) */
        size_t in_len;
        char *out;              /* replies not yet written */
        size_t out_len, out_off;
        bool request_timer;     /* the timer counts CONTROL_REQUEST_USEC for the bytes in `in` */
        bool eof;               /* the peer sent all it will: answer what is buffered, then close */
        bool closing;           /* write what is pending, then close */
        bool throttled;         /* an untrusted caller over its CPU budget: the request waits */
        uint64_t drain_round;   /* the overdue round that served it last */
        struct control_call *call;      /* the request being answered later (control_defer) */
};

/* CPU time spent on untrusted callers' requests, paid back at a share of the clock (debt_pay). */
struct cpu_debt {
        uint64_t debt_usec;
        uint64_t stamp_usec;    /* CLOCK_MONOTONIC when debt_usec was last brought up to date */
};

/* An untrusted uid's, paid back at CONTROL_UID_CPU_SHARE. */
struct uid_budget {
        uid_t uid;
        struct cpu_debt cpu;
};

/* A warning about callers, said at most once per CONTROL_WARN_USEC, with how many times it was held back. */
struct warn_limit {
        uint64_t said_usec;
        unsigned held;
};

struct control_call {
        struct conn *conn;      /* NULL once the connection is gone */
        struct ks_control *ctl;
        uid_t uid;
        bool trusted;
        bool oneway;
};

struct ks_control {
        sd_event *event;
        sd_event_source *listen_io;
        int listen_fd;
        char *path;             /* NULL when the socket came from systemd */
        control_handler_t handler;
        void *userdata;
        dev_t sock_dev;         /* the socket file we bound, to notice it vanish or be replaced */
        ino_t sock_ino;
        sd_event_source *watch; /* inotify on our socket file: removed or replaced? */
        sd_event_source *retry; /* only while it cannot be created again */
        bool watch_warned;
        struct conn *conns;
        size_t n_conns;
        struct warn_limit full_warn;    /* "too many connections" */
        struct warn_limit uid_warn;     /* "uid N holds too many connections" */
        bool (*trusted)(const struct ks_peer *peer);
        bool (*urgent)(const char *method);
        struct uid_budget *budgets;
        size_t n_budgets;
        struct cpu_debt untrusted_cpu;  /* all untrusted uids together, paid back at CONTROL_UNTRUSTED_CPU_SHARE */
        size_t untrusted_queued;        /* bytes of replies queued for untrusted callers, not read yet */
        sd_event_source *throttle;      /* wakes throttled connections when their uid, or all, have paid */
        sd_event_source *overdue;       /* serves waiting requests the idle loop never reached */
        sd_event_source *drain;         /* ... in slices (on_drain) */
        uint64_t drain_round;           /* rounds started (on_overdue) */
};

bool peer_in_group(const struct ks_peer *p, gid_t gid)
{
        if (p->gid == gid)
                return true;
        for (size_t i = 0; i < p->n_groups; i++)
                if (p->groups[i] == gid)
                        return true;
        return false;
}

json_t *reply_ok(json_t *params)
{
        return json_pack("{s:o}", "parameters", params ? params : json_object());
}

json_t *reply_error(const char *id, json_t *extra, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        json_t *params = extra ? extra : json_object();

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (!params || json_object_set_new(params, "message", json_string(msg)) < 0) {
                json_decref(params);
                return NULL;
        }
        return json_pack("{s:s, s:o}", "error", id, "parameters", params);
}

void control_request_clear(struct control_request *r)
{
        json_decref(r->root);
        *r = (struct control_request){};
}

/* An optional boolean flag of a request: absent, true or false (not null). */
static bool flag_valid(const json_t *v)
{
        return !v || json_is_boolean(v);
}

int control_decode(const char *buf, size_t len, struct control_request *ret, char *err, size_t errsize)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_t *method, *params, *oneway, *more, *upgrade;
        json_error_t jerr;

        if (len > CONTROL_MAX_REQUEST) {
                snprintf(err, errsize, "Request too large: %zu bytes, at most %d", len, CONTROL_MAX_REQUEST);
                return -EMSGSIZE;
        }
        root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root && json_error_code(&jerr) == json_error_out_of_memory)
                return -ENOMEM;
        if (!root) {
                snprintf(err, errsize, "Malformed request: not a JSON object: %s (at byte %d)", jerr.text,
                         jerr.position);
                return -EBADMSG;
        }
        method = json_object_get(root, "method");
        params = json_object_get(root, "parameters");
        oneway = json_object_get(root, "oneway");
        more = json_object_get(root, "more");
        upgrade = json_object_get(root, "upgrade");
        if (!json_is_string(method) || (params && !json_is_object(params) && !json_is_null(params)) ||
            !flag_valid(oneway) || !flag_valid(more) || !flag_valid(upgrade)) {
                snprintf(err, errsize, "Malformed request: expected a JSON object with a string \"method\", an "
                         "object \"parameters\" and optionally booleans \"oneway\", \"more\", \"upgrade\"");
                return -EBADMSG;
        }
        /* "parameters": null is what clients send for none (the Varlink reference implementation does). */
        if (!params || json_is_null(params)) {
                params = json_object();
                if (json_object_set_new(root, "parameters", params) < 0)
                        return -ENOMEM;
        }
        *ret = (struct control_request){
                .method = json_string_value(method),
                .parameters = params,
                .oneway = json_is_true(oneway),
                .more = json_is_true(more),
                .upgrade = json_is_true(upgrade),
                .root = TAKE_PTR(root),
        };
        return 0;
}

static void conn_free(struct conn *c)
{
        struct ks_control *ctl = c->ctl;

        if (c->prev)
                c->prev->next = c->next;
        else
                ctl->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        ctl->n_conns--;
        if (c->call)
                c->call->conn = NULL;
        if (!c->peer.trusted)
                ctl->untrusted_queued -= c->out_len - c->out_off;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->defer);
        close(c->fd);
        free(c->peer.groups);
        free(c->in);
        free(c->out);
        free(c);
}

#define OOM_REPLY "{\"error\":\"" KS_ERR_INTERNAL "\",\"parameters\":{\"message\":\"Out of memory\"}}"

/* Queue a reply's text (NULL: out of memory). */
static int conn_queue_text(struct conn *c, const char *text)
{
        size_t len;
        char *out;

        text = text ? text : OOM_REPLY;
        len = strlen(text) + 1;         /* with the NUL that ends a Varlink message */
        if (c->out_len - c->out_off + len > CONTROL_MAX_REPLY)
                return -ENOBUFS;
        out = GREEDY_REALLOC(c->out, c->out_len + len);
        if (!out)
                return -ENOMEM;
        memcpy(out + c->out_len, text, len);
        c->out_len += len;
        if (!c->peer.trusted)
                c->ctl->untrusted_queued += len;
        return 0;
}

/* Queue a reply (NULL: out of memory); the caller keeps its reference. */
static int conn_queue(struct conn *c, json_t *reply)
{
        _cleanup_free_ char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

        return conn_queue_text(c, text);
}

/* A protocol violation: say why, then close once it is written. */
static int conn_refuse(struct conn *c, const char *why)
{
        _cleanup_(json_decrefp) json_t *reply = reply_error(KS_ERR_PROTOCOL, NULL, "%s", why);

        c->closing = true;
        return conn_queue(c, reply);
}

static struct uid_budget *budget_find(struct ks_control *ctl, uid_t uid)
{
        for (size_t i = 0; i < ctl->n_budgets; i++)
                if (ctl->budgets[i].uid == uid)
                        return &ctl->budgets[i];
        return NULL;
}

/* The debt after what the clock has paid back since, at 1/share of a CPU. */
static uint64_t debt_pay(struct cpu_debt *d, unsigned share)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC), paid = (now - d->stamp_usec) / share;

        d->debt_usec = d->debt_usec > paid ? d->debt_usec - paid : 0;
        d->stamp_usec = now;
        return d->debt_usec;
}

/* uid's debt (debt_pay); a paid-up uid is forgotten. */
static uint64_t budget_debt(struct ks_control *ctl, uid_t uid)
{
        struct uid_budget *b = budget_find(ctl, uid);

        if (!b)
                return 0;
        if (debt_pay(&b->cpu, CONTROL_UID_CPU_SHARE) > 0)
                return b->cpu.debt_usec;
        *b = ctl->budgets[--ctl->n_budgets];
        return 0;
}

/* CPU time spent for an untrusted uid: its debt, and that of all untrusted callers together. */
static void budget_charge(struct ks_control *ctl, uid_t uid, uint64_t cpu_usec)
{
        uint64_t debt = budget_debt(ctl, uid);
        struct uid_budget *b = budget_find(ctl, uid), *more;

        ctl->untrusted_cpu.debt_usec = debt_pay(&ctl->untrusted_cpu, CONTROL_UNTRUSTED_CPU_SHARE) + cpu_usec;
        if (!b) {
                /* One entry per uid in debt: they are paid back within seconds. */
                more = GREEDY_REALLOC(ctl->budgets, ctl->n_budgets + 1);
                if (!more)
                        return;
                b = &ctl->budgets[ctl->n_budgets++];
                *b = (struct uid_budget){ .uid = uid, .cpu.stamp_usec = now_usec(CLOCK_MONOTONIC) };
        }
        b->cpu.debt_usec = debt + cpu_usec;
}

/* Bytes of replies queued for uid's connections and not read yet. */
static size_t uid_queued(const struct ks_control *ctl, uid_t uid)
{
        size_t n = 0;

        for (const struct conn *o = ctl->conns; o; o = o->next)
                if (o->peer.uid == uid)
                        n += o->out_len - o->out_off;
        return n;
}

/* An error reply instead of the call when untrusted callers, or this one's uid, leave too many replies unread. */
static json_t *conn_over_budget(struct conn *c)
{
        size_t queued;

        if (c->peer.trusted)
                return NULL;
        if (c->ctl->untrusted_queued >= CONTROL_UNTRUSTED_QUEUED)
                return reply_error(KS_ERR_BUSY, NULL, "Too many unread replies of users outside group killswitch: "
                                   "%zu bytes; try again later", c->ctl->untrusted_queued);
        if ((queued = uid_queued(c->ctl, c->peer.uid)) < CONTROL_UID_QUEUED)
                return NULL;
        return reply_error(KS_ERR_BUSY, NULL, "Too many unread replies: %zu bytes for uid %u; read them "
                           "first", queued, (unsigned)c->peer.uid);
}

static void conn_run(struct conn *c, bool readable, bool idle);
static void overdue_arm(struct ks_control *ctl);

static int on_throttle(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct ks_control *ctl = userdata;

        for (struct conn *c = ctl->conns, *next; c; c = next) {
                next = c->next;
                if (c->throttled) {
                        c->throttled = false;
                        conn_run(c, false, false);
                }
        }
        return 0;
}

/*
 * Wake the throttled connections in `wait` µs (on_throttle); a wake-up armed
 * already stays if it comes sooner, or always unless `sooner`.
 */
static int throttle_arm(struct ks_control *ctl, uint64_t wait, bool sooner)
{
        uint64_t armed;
        int r;

        if (!ctl->throttle)
                return sd_event_add_time_relative(ctl->event, &ctl->throttle, CLOCK_MONOTONIC, wait, 0, on_throttle,
                                                  ctl);
        if (!sooner && sd_event_source_get_enabled(ctl->throttle, NULL) > 0 &&
            sd_event_source_get_time(ctl->throttle, &armed) >= 0 && armed <= now_usec(CLOCK_MONOTONIC) + wait)
                return 0;
        r = sd_event_source_set_time_relative(ctl->throttle, wait);
        return r < 0 ? r : sd_event_source_set_enabled(ctl->throttle, SD_EVENT_ONESHOT);
}

/* Is a call of uid being answered later (its work, off the loop, not charged yet)? */
static bool uid_has_call(const struct ks_control *ctl, uid_t uid)
{
        for (const struct conn *o = ctl->conns; o; o = o->next)
                if (o->call && o->peer.uid == uid)
                        return true;
        return false;
}

/* How long an untrusted caller must wait before the CPU time spent on its uid, or on all of them, is paid back. */
static uint64_t budget_wait(struct ks_control *ctl, uid_t uid)
{
        uint64_t debt = budget_debt(ctl, uid), all = debt_pay(&ctl->untrusted_cpu, CONTROL_UNTRUSTED_CPU_SHARE);
        uint64_t wait = 0;

        if (debt > CONTROL_UID_CPU_BURST_USEC)
                wait = (debt - CONTROL_UID_CPU_BURST_USEC) * CONTROL_UID_CPU_SHARE;
        if (all > CONTROL_UNTRUSTED_CPU_BURST_USEC && (all - CONTROL_UNTRUSTED_CPU_BURST_USEC) *
                                                              CONTROL_UNTRUSTED_CPU_SHARE > wait)
                wait = (all - CONTROL_UNTRUSTED_CPU_BURST_USEC) * CONTROL_UNTRUSTED_CPU_SHARE;
        return wait;
}

/*
 * Must c's next request wait: for its uid, or all untrusted callers, to pay
 * back CPU time (woken by a timer then), or for its uid's call answered later
 * (woken by its reply)?
 */
static bool conn_must_wait(struct conn *c)
{
        struct ks_control *ctl = c->ctl;
        uint64_t wait;

        if (c->peer.trusted)
                return false;
        if (uid_has_call(ctl, c->peer.uid)) {
                c->throttled = true;
                return true;
        }
        wait = budget_wait(ctl, c->peer.uid);
        if (wait == 0)
                return false;
        c->throttled = throttle_arm(ctl, wait, false) >= 0;     /* cannot wait: serve it rather than hang it */
        return c->throttled;
}

/* Decode one request, call the handler, queue the reply (unless oneway). */
static int conn_dispatch(struct conn *c, const char *buf, size_t len)
{
        _cleanup_(json_decrefp) json_t *reply = NULL;
        struct control_request req;
        char err[256];
        int r;

        r = control_decode(buf, len, &req, err, sizeof(err));
        if (r == -ENOMEM)
                return conn_queue(c, NULL);
        if (r < 0) {
                log_debug("Control client (pid %d): %s", (int)c->peer.pid, err);
                return conn_refuse(c, err);
        }
        /* No method here upgrades the connection to another protocol: say so, and speak Varlink on. */
        if (req.upgrade)
                reply = reply_error(KS_ERR_PARAM, json_pack("{s:s}", "parameter", "upgrade"),
                                    "%s does not upgrade the connection: call it without \"upgrade\"", req.method);
        else
                reply = conn_over_budget(c) ?: c->ctl->handler(c->ctl->userdata, &c->peer, req.method,
                                                               req.parameters);
        if (c->call)
                c->call->oneway = req.oneway;
        /* With "more", the single reply is the last one (no "continues"), as Varlink allows. */
        r = req.oneway || c->call ? 0 : conn_queue(c, reply);
        control_request_clear(&req);
        return r;
}

/* The length of the first complete (NUL-terminated) request buffered, or -1. */
static ssize_t conn_next_request(const struct conn *c)
{
        const char *nul = c->in_len > 0 ? memchr(c->in, '\0', c->in_len) : NULL;

        return nul ? nul - c->in : -1;
}

/*
 * Handle buffered requests until one has queued a reply (the reply is written
 * before the next request is looked at: a client that does not read cannot make
 * us buffer without bound), at most CONTROL_BATCH oneway ones in a row (other
 * clients get their turn in between).
 */
#define CONTROL_BATCH 16

/* May the request of `len` bytes buffered in c be handled before the loop is idle? */
static bool conn_urgent(struct conn *c, size_t len)
{
        struct control_request req;
        char err[8];
        bool urgent;

        if (!c->ctl->urgent || control_decode(c->in, len, &req, err, sizeof(err)) < 0)
                return true;    /* no priorities, or a bad request: refused at once */
        urgent = c->ctl->urgent(req.method);
        control_request_clear(&req);
        return urgent;
}

/* idle: called when the loop has nothing more urgent to do; otherwise only urgent requests are handled. */
static int conn_process_input(struct conn *c, bool idle)
{
        uint64_t cpu;

        for (unsigned n = 0; n < CONTROL_BATCH && !c->closing && !c->call && c->out_len == c->out_off; n++) {
                ssize_t len = conn_next_request(c);
                int r;

                if (len < 0 || (!idle && !conn_urgent(c, (size_t)len)) || conn_must_wait(c))
                        break;
                cpu = now_usec(CLOCK_THREAD_CPUTIME_ID);
                r = conn_dispatch(c, c->in, (size_t)len);
                if (!c->peer.trusted)
                        budget_charge(c->ctl, c->peer.uid, now_usec(CLOCK_THREAD_CPUTIME_ID) - cpu);
                if (r < 0)
                        return r;
                memmove(c->in, c->in + len + 1, c->in_len - (size_t)len - 1);
                c->in_len -= (size_t)len + 1;
                c->request_timer = false;       /* what is left is the next request: its own 10 s */
        }
        if (c->in_len > CONTROL_MAX_REQUEST && !c->closing && conn_next_request(c) < 0) {
                char why[128];

                snprintf(why, sizeof(why), "Request too large: more than %d bytes without a NUL terminator",
                         CONTROL_MAX_REQUEST);
                return conn_refuse(c, why);
        }
        if (c->in_len == 0) {
                /* Nothing buffered: an idle connection holds no input buffer. */
                free(c->in);
                c->in = NULL;
        }
        return 0;
}

/* Read what one read() gives; returns 0 at EOF, 1 otherwise, negative errno on error. */
static int conn_read(struct conn *c)
{
        ssize_t n;

        if (!c->in) {
                c->in = malloc(CONTROL_MAX_REQUEST + 1);
                if (!c->in)
                        return -ENOMEM;
        }
        if (c->in_len >= CONTROL_MAX_REQUEST + 1)
                return 1;       /* full: handled (or refused) before we read again */
        n = read(c->fd, c->in + c->in_len, CONTROL_MAX_REQUEST + 1 - c->in_len);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 1 : -errno;
        if (n == 0)
                return 0;
        c->in_len += (size_t)n;
        return 1;
}

static int conn_write(struct conn *c)
{
        while (c->out_off < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                c->out_off += (size_t)n;
                if (!c->peer.trusted)
                        c->ctl->untrusted_queued -= (size_t)n;
        }
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_off = 0;
        return 0;
}

/*
 * Wait for what comes next: the peer reading our reply (EPOLLOUT), our own turn
 * for a request already buffered (the defer source), or more input. The timer
 * closes an idle connection after CONTROL_IDLE_USEC, and one whose request is
 * not complete CONTROL_REQUEST_USEC after its first byte (however slowly the
 * rest trickles in).
 */
static int conn_rearm(struct conn *c)
{
        bool pending_out = c->out_len > c->out_off;
        bool buffered = !c->closing && !c->call && conn_next_request(c) >= 0;
        uint32_t events = pending_out ? EPOLLOUT : c->closing || c->eof || buffered ? 0 : EPOLLIN;
        int r;

        if ((c->closing || (c->eof && !buffered)) && !pending_out && !c->call)
                return -ECONNRESET;
        if (sd_event_source_set_io_events(c->io, events) < 0)
                return -EIO;
        /* A peer that hung up while its call waits: epoll reports EPOLLHUP whatever we ask; look at it again
         * once the reply is there. */
        if (sd_event_source_set_enabled(c->io, c->eof && c->call && !pending_out ? SD_EVENT_OFF : SD_EVENT_ON) < 0)
                return -EIO;
        if (sd_event_source_set_enabled(c->defer, buffered && !pending_out && !c->throttled ? SD_EVENT_ONESHOT
                                                                                             : SD_EVENT_OFF) < 0)
                return -EIO;
        if (buffered && !pending_out && !c->throttled)
                overdue_arm(c->ctl);
        if (c->in_len == 0) {
                c->request_timer = false;
                r = sd_event_source_set_time_relative(c->timer, CONTROL_IDLE_USEC);
        } else if (!c->request_timer) {
                c->request_timer = true;
                r = sd_event_source_set_time_relative(c->timer, CONTROL_REQUEST_USEC);
        } else {
                r = 0;
        }
        return r < 0 ? -EIO : 0;
}

/*
 * Requests that wait for an idle loop (control_set_urgent) wait at most
 * CONTROL_OVERDUE_USEC: a loop kept busy (a storm of connections, say) must
 * not starve them. The timer has the normal priority. Then every connection
 * with such a request is served once (a round), in slices of
 * CONTROL_SLICE_USEC, each a dispatch of its own just below the normal
 * priority: between two slices the loop accepts connections and reads
 * requests, so an urgent one waits for one slice at most, not the round (100
 * clients asking for the history took 40 ms in one dispatch).
 */
#define CONTROL_OVERDUE_USEC (100ULL * 1000ULL)
#define CONTROL_SLICE_USEC 1000ULL

/* Serve this round's connections until end (CLOCK_MONOTONIC); true when none is left. */
static bool serve_round(struct ks_control *ctl, uint64_t end)
{
        for (struct conn *c = ctl->conns, *next; c; c = next) {
                next = c->next;
                if (c->drain_round == ctl->drain_round || sd_event_source_get_enabled(c->defer, NULL) <= 0)
                        continue;
                if (now_usec(CLOCK_MONOTONIC) >= end)
                        return false;
                c->drain_round = ctl->drain_round;
                conn_run(c, false, true);
        }
        return true;
}

static int on_drain(sd_event_source *s, void *userdata)
{
        struct ks_control *ctl = userdata;

        if (!serve_round(ctl, now_usec(CLOCK_MONOTONIC) + CONTROL_SLICE_USEC))
                return 0;       /* the rest in the next slice */
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static int on_overdue(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct ks_control *ctl = userdata;

        ctl->drain_round++;
        if (!ctl->drain && (sd_event_add_defer(ctl->event, &ctl->drain, on_drain, ctl) < 0 ||
                            sd_event_source_set_priority(ctl->drain, SD_EVENT_PRIORITY_NORMAL + 1) < 0)) {
                ctl->drain = sd_event_source_disable_unref(ctl->drain);
                serve_round(ctl, UINT64_MAX);   /* no slices: the whole round now */
                return 0;
        }
        return sd_event_source_set_enabled(ctl->drain, SD_EVENT_ON);
}

static void overdue_arm(struct ks_control *ctl)
{
        if (!ctl->overdue) {
                if (sd_event_add_time_relative(ctl->event, &ctl->overdue, CLOCK_MONOTONIC, CONTROL_OVERDUE_USEC, 0,
                                               on_overdue, ctl) < 0)
                        ctl->overdue = NULL;
        } else if (sd_event_source_get_enabled(ctl->overdue, NULL) <= 0) {
                if (sd_event_source_set_time_relative(ctl->overdue, CONTROL_OVERDUE_USEC) >= 0)
                        sd_event_source_set_enabled(ctl->overdue, SD_EVENT_ONESHOT);
        }
}

/* Process input, write, rearm; on any failure the connection goes. */
static void conn_run(struct conn *c, bool readable, bool idle)
{
        int r = 1;

        if (readable && !c->eof) {
                r = conn_read(c);
                if (r == 0)
                        c->eof = true;
        }
        if (r >= 0 && (r = conn_process_input(c, idle)) >= 0 && (r = conn_write(c)) >= 0)
                r = conn_rearm(c);
        if (r < 0)
                conn_free(c);
}

struct control_call *control_defer(const struct ks_peer *peer)
{
        struct conn *c = (struct conn *)((char *)peer - offsetof(struct conn, peer));

        if (c->call)
                return NULL;
        c->call = calloc(1, sizeof(*c->call));
        if (c->call)
                *c->call = (struct control_call){ .conn = c, .ctl = c->ctl, .uid = c->peer.uid,
                                                  .trusted = c->peer.trusted };
        return c->call;
}

bool control_call_gone(const struct control_call *call)
{
        return !call->conn;
}

void control_charge(struct control_call *call, uint64_t cpu_usec)
{
        if (!call->trusted)
                budget_charge(call->ctl, call->uid, cpu_usec);
}

void control_undefer(struct control_call *call)
{
        if (call && call->conn)
                call->conn->call = NULL;
        free(call);
}

/*
 * The connection of a call answered now, or NULL if none wants the reply;
 * frees the call. Requests of an untrusted uid that waited for its call go on
 * from the loop (or wait for its CPU budget), not from here.
 */
static struct conn *call_end(struct control_call *call, bool *ret_oneway)
{
        struct conn *c = call ? call->conn : NULL;

        *ret_oneway = call && call->oneway;
        if (call && !call->trusted)
                (void)throttle_arm(call->ctl, 0, true); /* its waiting requests check again */
        free(call);
        if (c)
                c->call = NULL;
        return c;
}

/* Queued (r: conn_queue's result): send it. */
static void call_replied(struct conn *c, int r)
{
        if (r < 0) {
                conn_free(c);
                return;
        }
        conn_run(c, false, false);
}

void control_reply(struct control_call *call, json_t *reply)
{
        bool oneway;
        struct conn *c = call_end(call, &oneway);

        if (c)
                call_replied(c, oneway ? 0 : conn_queue(c, reply));
}

void control_reply_text(struct control_call *call, const char *text)
{
        bool oneway;
        struct conn *c = call_end(call, &oneway);

        if (c)
                call_replied(c, oneway ? 0 : conn_queue_text(c, text));
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        conn_run(userdata, revents & (EPOLLIN | EPOLLHUP | EPOLLERR), false);
        return 0;
}

static int on_conn_defer(sd_event_source *s, void *userdata)
{
        conn_run(userdata, false, true);
        return 0;
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct conn *c = userdata;

        log_debug("Control client (pid %d) timed out, closing", (int)c->peer.pid);
        conn_free(c);
        return 0;
}

static int peer_read(int fd, struct ks_peer *p)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);
        gid_t *groups = NULL;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        *p = (struct ks_peer){ .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
        len = 0;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno != ERANGE)
                return 0;       /* no supplementary groups known: primary gid only */
        if (len == 0)
                return 0;
        groups = malloc(len);
        if (!groups)
                return -ENOMEM;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
                free(groups);
                return -errno;
        }
        p->groups = groups;
        p->n_groups = len / sizeof(gid_t);
        return 0;
}

/*
 * Is it time to say the warning w again (at most once per CONTROL_WARN_USEC)?
 * Then `held` says how many times it was held back since it was last said
 * ("" if none), for the end of the message.
 */
static bool warn_due(struct warn_limit *w, char *held, size_t size)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (w->said_usec && now - w->said_usec < CONTROL_WARN_USEC) {
                w->held++;
                return false;
        }
        held[0] = '\0';
        if (w->held)
                snprintf(held, size, "; %u more refused since it was last said", w->held);
        w->said_usec = now;
        w->held = 0;
        return true;
}

/*
 * An untrusted uid gets CONTROL_UID_CONNS connections, all of them together
 * CONTROL_MAX_CONNS; trusted callers (root, group killswitch) CONTROL_ROOT_RESERVE
 * more: local users holding every connection open must not keep the
 * administrators, nor the heartbeat, out. c is already counted.
 */
static bool conn_admit(struct ks_control *ctl, const struct conn *c)
{
        size_t others = ctl->n_conns - 1, same_uid = 0;
        char held[64];

        if (c->peer.trusted)
                return others < CONTROL_MAX_CONNS + CONTROL_ROOT_RESERVE;
        if (others >= CONTROL_MAX_CONNS) {
                if (warn_due(&ctl->full_warn, held, sizeof(held)))
                        log_warning("Too many control connections (%d): refusing new ones of users outside group "
                                    "killswitch until some close (said at most once a minute%s)", CONTROL_MAX_CONNS,
                                    held);
                return false;
        }
        for (const struct conn *o = ctl->conns; o; o = o->next)
                same_uid += o != c && o->peer.uid == c->peer.uid;
        if (same_uid < CONTROL_UID_CONNS)
                return true;
        if (warn_due(&ctl->uid_warn, held, sizeof(held)))
                log_warning("uid %u holds %d control connections: refusing more (said at most once a minute%s)",
                            (unsigned)c->peer.uid, CONTROL_UID_CONNS, held);
        return false;
}

static int conn_new(struct ks_control *ctl, int fd)
{
        struct conn *c = calloc(1, sizeof(*c));
        int r;

        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->ctl = ctl;
        c->fd = fd;
        c->next = ctl->conns;
        if (c->next)
                c->next->prev = c;
        ctl->conns = c;
        ctl->n_conns++;
        r = peer_read(fd, &c->peer);
        if (r >= 0)
                c->peer.trusted = c->peer.uid == 0 || (ctl->trusted && ctl->trusted(&c->peer));
        if (r >= 0 && !conn_admit(ctl, c))
                r = -EUSERS;
        if (r >= 0)
                r = sd_event_add_io(ctl->event, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(ctl->event, &c->timer, CLOCK_MONOTONIC, CONTROL_IDLE_USEC, 0,
                                               on_conn_timeout, c);
        if (r >= 0)
                r = sd_event_add_defer(ctl->event, &c->defer, on_conn_defer, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        if (r >= 0)     /* after every other pending event: see control_set_urgent() */
                r = sd_event_source_set_priority(c->defer, SD_EVENT_PRIORITY_IDLE);
        if (r < 0)
                conn_free(c);
        return r;
}

static int on_listen_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_control *ctl = userdata;
        int r;

        for (;;) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_warning_errno(-errno, "Failed to accept a control connection: %m");
                        return 0;
                }
                r = conn_new(ctl, cfd);
                if (r < 0 && r != -EUSERS)
                        log_warning("Failed to set up a control connection");
        }
}

/* The socket handed over by systemd (killswitchd.socket), if any. */
static int listen_fd_activated(void)
{
        int n = sd_listen_fds(1);

        if (n <= 0)
                return -ENOENT;
        if (n > 1 || sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
                return -EBADF;
        return SD_LISTEN_FDS_START;
}

/*
 * Is directory fd (its name for messages) safe to hold our socket? It must be
 * owned by root (or by us) and writable by no one else, or anyone could swap
 * the socket for another file between our bind() and our use of the path.
 * Directories above it may also be sticky and world-writable (/tmp): others
 * cannot rename what they do not own there.
 */
static int socket_dir_check(int fd, const char *name, bool last)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                log_error("Control socket directory %s is owned by uid %u: it must be owned by root", name,
                          (unsigned)st.st_uid);
                return -EPERM;
        }
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (last || !(st.st_mode & S_ISVTX))) {
                log_error("Control socket directory %s is writable by others (mode %04o): it must not be, or "
                          "they could replace the socket", name, (unsigned)(st.st_mode & 07777));
                return -EPERM;
        }
        return 0;
}

/*
 * The directory of the socket `path`, walked from / without following a symlink
 * and checked at each step (socket_dir_check); the last one is created if
 * missing. Returns its O_PATH fd; *ret_name: the socket's name in it.
 */
static int socket_dir_open(const char *path, const char **ret_name)
{
        _cleanup_free_ char *dir = strdup(path);
        _cleanup_close_ int fd = -1;
        char *slash, *component, *save = NULL;
        int r;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (path[0] != '/' || !slash[1]) {
                log_error("Control socket %s: not an absolute file name", path);
                return -EINVAL;
        }
        *slash = '\0';
        fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (component = strtok_r(dir, "/", &save); component; component = strtok_r(NULL, "/", &save)) {
                bool last = component + strlen(component) == slash;
                int next;

                if (strcmp(component, "..") == 0) {
                        log_error("Control socket %s: no .. components, please", path);
                        return -EINVAL;
                }
                next = openat(fd, component, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOENT && last && mkdirat(fd, component, 0755) == 0)
                        next = openat(fd, component, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0) {
                        r = -errno;
                        if (r == -ENOTDIR || r == -ELOOP)
                                log_error("Control socket %s: %s is a symbolic link or not a directory", path,
                                          component);
                        return r;
                }
                close(fd);
                fd = next;
                if (!last)
                        component[strlen(component)] = '/';     /* dir: the path so far, for messages */
                r = socket_dir_check(fd, dir, last);
                if (r < 0)
                        return r;
        }
        if (dir[0] == '\0' && (r = socket_dir_check(fd, "/", true)) < 0)
                return r;
        *ret_name = path + (slash - dir) + 1;
        return TAKE_FD(fd);
}

/* Another agent answering on this path? Then do not steal its socket. */
static bool socket_in_use(const struct sockaddr_un *sa)
{
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        return fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
}

/*
 * Bind a listening socket at path through its checked directory's fd (no
 * component can be swapped meanwhile), mode 0666 from the start: anyone may
 * connect, each method checks the caller's credentials; it is never chmod-ed
 * by name. A stale socket is replaced, a live one only if take_back (someone
 * else's sits where ours belongs); any other file is left alone.
 * *ret_st: the socket file bound.
 */
static int listen_fd_bind(const char *path, bool take_back, struct stat *ret_st)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int dfd = -1, fd = -1;
        const char *name = NULL;
        struct stat st;
        mode_t mask;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        dfd = socket_dir_open(path, &name);
        if (dfd < 0)
                return dfd;
        if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd, name) >=
            sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        log_error("Control socket %s: a file that is not a socket is in the way; remove it", path);
                        return -EEXIST;
                }
                if (!take_back && socket_in_use(&sa))
                        return -EADDRINUSE;
                if (take_back)
                        log_error("Control socket %s was replaced by a socket of uid %u that is not this agent's: "
                                  "taking the path back (who else can write to its directory?)", path,
                                  (unsigned)st.st_uid);
                if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
                        return -errno;
        }
        mask = umask(0111);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(mask);
        if (r < 0 || listen(fd, SOMAXCONN) < 0 || fstatat(dfd, name, ret_st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static bool control_socket_ours(struct ks_control *ctl)
{
        struct stat st;

        return lstat(ctl->path, &st) == 0 && st.st_dev == ctl->sock_dev && st.st_ino == ctl->sock_ino;
}

/* Listen on fd instead of the current socket (connections already open stay). */
static int control_listen(struct ks_control *ctl, int fd)
{
        sd_event_source *io = NULL;
        int r = sd_event_add_io(ctl->event, &io, fd, EPOLLIN, on_listen_io, ctl);

        if (r < 0)
                return r;
        if (ctl->listen_io)
                on_listen_io(ctl->listen_io, ctl->listen_fd, EPOLLIN, ctl);     /* who is still queued */
        sd_event_source_disable_unref(ctl->listen_io);
        if (ctl->listen_fd >= 0)
                close(ctl->listen_fd);
        ctl->listen_io = io;
        ctl->listen_fd = fd;
        return 0;
}

/*
 * The socket file (or its directory) was removed or replaced behind our back
 * (a cleanup of /run, an admin): clients could no longer reach us although we
 * run. Bind it anew, unless another agent answers there now.
 */
static void check_socket(struct ks_control *ctl);

static int on_socket_event(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
        check_socket(userdata);
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        check_socket(userdata);
        return 0;
}

/* Watch our socket file: unlinking it (or its directory's removal) changes its link count. */
static int watch_socket(struct ks_control *ctl)
{
        ctl->watch = sd_event_source_disable_unref(ctl->watch);
        return sd_event_add_inotify(ctl->event, &ctl->watch, ctl->path,
                                    IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF, on_socket_event, ctl);
}

/*
 * Event-driven, so an idle agent never wakes up: only while the socket cannot
 * be created again does a timer retry every CONTROL_WATCH_USEC.
 */
static void check_socket(struct ks_control *ctl)
{
        struct stat st;
        int fd, r;

        if (control_socket_ours(ctl))
                return;
        /* Never yield the path: whoever put a socket there is not this agent, and we still run. */
        fd = listen_fd_bind(ctl->path, true, &st);
        r = fd < 0 ? fd : control_listen(ctl, fd);
        if (r < 0 && fd >= 0)
                close(fd);
        if (r == 0 && (ctl->sock_dev = st.st_dev, ctl->sock_ino = st.st_ino, r = watch_socket(ctl)) == 0) {
                log_warning("Control socket %s had vanished or was replaced: listening on it again", ctl->path);
                ctl->watch_warned = false;
                ctl->retry = sd_event_source_disable_unref(ctl->retry);
                return;
        }
        if (!ctl->watch_warned)
                log_error_errno(r < 0 ? r : -EIO, "Control socket %s has vanished and cannot be created again "
                                "(%m); retrying every %llu s", ctl->path, CONTROL_WATCH_USEC / 1000000ULL);
        ctl->watch_warned = true;
        ctl->retry = sd_event_source_disable_unref(ctl->retry);
        if (sd_event_add_time_relative(ctl->event, &ctl->retry, CLOCK_MONOTONIC, CONTROL_WATCH_USEC, 0, on_retry,
                                       ctl) < 0)
                log_error("Cannot watch control socket %s any more", ctl->path);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_control *, control_free)

int control_new(sd_event *event, const char *path, control_handler_t handler, void *userdata,
                struct ks_control **ret)
{
        _cleanup_(control_freep) struct ks_control *ctl = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        ctl = calloc(1, sizeof(*ctl));
        if (!ctl)
                return -ENOMEM;
        *ctl = (struct ks_control){ .event = event, .handler = handler, .userdata = userdata, .listen_fd = -1 };
        fd = listen_fd_activated();
        if (fd == -ENOENT) {
                fd = listen_fd_bind(path, false, &st);
                if (fd >= 0 && !(ctl->path = strdup(path)))
                        return -ENOMEM;
        } else if (fd >= 0) {
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        if (fd < 0)
                return fd;
        r = control_listen(ctl, fd);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        /* A socket from systemd is systemd's to keep; ours we watch. */
        if (ctl->path) {
                ctl->sock_dev = st.st_dev;
                ctl->sock_ino = st.st_ino;
                r = watch_socket(ctl);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(ctl);
        return 0;
}

void control_set_urgent(struct ks_control *ctl, bool (*urgent)(const char *method))
{
        ctl->urgent = urgent;
}

void control_set_trusted(struct ks_control *ctl, bool (*trusted)(const struct ks_peer *peer))
{
        ctl->trusted = trusted;
}

struct ks_control *control_free(struct ks_control *ctl)
{
        if (!ctl)
                return NULL;
        for (struct conn *c = ctl->conns, *next; c; c = next) {
                next = c->next;
                conn_free(c);
        }
        sd_event_source_disable_unref(ctl->throttle);
        sd_event_source_disable_unref(ctl->overdue);
        sd_event_source_disable_unref(ctl->drain);
        free(ctl->budgets);
        sd_event_source_disable_unref(ctl->watch);
        sd_event_source_disable_unref(ctl->retry);
        sd_event_source_disable_unref(ctl->listen_io);
        if (ctl->listen_fd >= 0)
                close(ctl->listen_fd);
        /* Only our own socket file: not one another agent bound since. */
        if (ctl->path && control_socket_ours(ctl))
                unlink(ctl->path);
        free(ctl->path);
        free(ctl);
        return NULL;
}

const char *control_describe(struct ks_control *ctl, char *buf, size_t size)
{
        struct sockaddr_un sa = {};
        socklen_t len = sizeof(sa);

        if (ctl->path)
                snprintf(buf, size, "%s", ctl->path);
        else if (getsockname(ctl->listen_fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_family == AF_UNIX &&
                 len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0])
                snprintf(buf, size, "%.*s (from systemd)", (int)(len - offsetof(struct sockaddr_un, sun_path)),
                         sa.sun_path);
        else
                snprintf(buf, size, "a socket from systemd");
        return buf;
}
