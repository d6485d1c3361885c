/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>

#include "alloc.h"
#include "audit.h"
#include "cleanup.h"
#include "fileio.h"
#include "log.h"
#include "syncer.h"
#include "timespec.h"
#include "timeutil.h"

#define JOURNAL_SOCKET   "/run/systemd/journal/socket"
#define LINE_MAX_BYTES   65536  /* a longer history line is corrupt */
#define FIELD_MAX_BYTES  4096   /* each string field of a history entry; keeps lines far below the above */
#define JOURNAL_FIELDS   20
#define LINES_UNKNOWN    SIZE_MAX
#define UIDS_LISTED      8      /* uids named in a summary of refusals */

/* The newest `cap` valid lines of the history, as read; a ring while reading. */
struct lines {
        char **items;
        size_t cap, start, n;
        size_t total;           /* lines in the file, corrupt ones too */
};

/*
 * Refusals of unprivileged callers in the current window: the first
 * AUDIT_REFUSED_BURST are recorded one by one, the rest only counted, and one
 * summary entry says how many there were (and whose) when the window ends.
 */
struct refusals {
        uint64_t window_usec;   /* CLOCK_MONOTONIC start of the window, 0: none open */
        uint64_t first_usec;    /* realtime of the first one suppressed */
        unsigned recorded, suppressed;
        int64_t uids[UIDS_LISTED];
        size_t n_uids;
};

struct ks_audit {
        char *state_dir;
        char *path;             /* STATE_DIR/history.jsonl */
        size_t max_lines, keep_lines;
        size_t n_lines;         /* lines in the file (corrupt ones too), LINES_UNKNOWN until counted */
        bool journal;
        bool cached;            /* `tail` holds the file's newest valid lines */
        struct lines tail;      /* what History serves from, capacity max_lines */
        struct refusals refusals;
        uint64_t refusals_window_usec;  /* AUDIT_REFUSED_WINDOW_USEC but in tests */
        sd_event_source *window_end;    /* writes the summary when the window is over, unasked */
        sd_event_source *sync;  /* fsync of the history once the loop is idle (audit_attach_event) */
        bool sync_dir;          /* the file was created: its directory too */
        struct ks_syncer *syncer;       /* that fsync, on a thread */
};

static void lines_clear(struct lines *l);
static void refusals_flush(struct ks_audit *a, bool force);

static const struct {
        const char *action;
        const char *message_id;
        int priority;
        bool history;
} kinds[_AUDIT_KIND_MAX] = {
        [AUDIT_ISOLATE]      = { "isolate",      "41d90b3879504f21a787909fd4c57407", LOG_NOTICE,  true  },
        [AUDIT_SWITCH]       = { "switch",       "24a5747f27414e468de56d6980557529", LOG_NOTICE,  true  },
        [AUDIT_RESTORE]      = { "restore",      "56f8071a301d4dcba2f374c65a5a5c1b", LOG_NOTICE,  true  },
        [AUDIT_REFUSED]      = { "refused",      "be1241ad9b3841e592aa6b37da47a9f9", LOG_WARNING, true  },
        [AUDIT_APPLY_FAILED] = { "apply-failed", "cd03ab5882264409ae054554e5c198fc", LOG_ERR,     true  },
        [AUDIT_TAMPER]       = { "tamper",       "aeafee148bc04aefa9022a56a8d70733", LOG_WARNING, true  },
        [AUDIT_REASSERT]     = { "reassert",     "8d24d8e737ff4fdc8d224a4320889b05", LOG_NOTICE,  true  },
        [AUDIT_RATE_LIMIT]   = { "rate-limit",   "9639e02167a74f7492b79d2a0979752d", LOG_CRIT,    true  },
        [AUDIT_RELOAD]       = { "reload",       "74060061c12b4f1fadb057930360e08a", LOG_INFO,    false },
        [AUDIT_FAIL_CLOSED]  = { "fail-closed",  "ff2db768debd407e9da0c5324a2a64c4", LOG_ERR,     true  },
        [AUDIT_SCHEDULE]     = { "schedule",     "51b27c2b389c45f68a2b02b6ea596994", LOG_NOTICE,  true  },
        [AUDIT_CANCEL]       = { "cancel",       "302842eeb1894535a2965c07b877a564", LOG_NOTICE,  true  },
        [AUDIT_CONFIRM]      = { "confirm",      "b97b0d030bc94603bf13da671c850bd4", LOG_NOTICE,  true  },
        [AUDIT_REVERT]       = { "revert",       "300fa2dd5d9a4ae1bb7f79e3ee4ea169", LOG_WARNING, true  },
        [AUDIT_TRIGGER]      = { "trigger",      "978aac191fee404599a326d3c1fd927e", LOG_WARNING, true  },
        [AUDIT_REQUEST]      = { "restore-request",  "9e1f68be33e741e29339b621d03bfb39", LOG_NOTICE,  true  },
        [AUDIT_APPROVE]      = { "restore-approve",  "b31acff2e842476bb2b354f5583d38ab", LOG_NOTICE,  true  },
        [AUDIT_OVERRIDE]     = { "restore-override", "b4ad57df205a46ffb39e5fdbb2889ae7", LOG_WARNING, true  },
        [AUDIT_EXPIRE]       = { "restore-expired",  "b3304f3d4b2944be9c84a508392d02a7", LOG_WARNING, true  },
        [AUDIT_LAST_GOOD]    = { "last-good",        "dc3983a8d97e4e5c8e872a0c73d444df", LOG_ERR,     true  },
        [AUDIT_REPEAT]       = { "isolate-again",    "60099a64b48a4610951ea40f6411b280", LOG_NOTICE,  true  },
};

const char *audit_kind_to_string(enum audit_kind k)
{
        return (int)k >= 0 && k < _AUDIT_KIND_MAX ? kinds[k].action : NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_audit *, audit_free)

int audit_new(const char *state_dir, struct ks_audit **ret)
{
        _cleanup_(audit_freep) struct ks_audit *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        *a = (struct ks_audit){ .max_lines = AUDIT_HISTORY_MAX, .keep_lines = AUDIT_HISTORY_KEEP,
                                .n_lines = LINES_UNKNOWN, .journal = true,
                                .refusals_window_usec = AUDIT_REFUSED_WINDOW_USEC };
        a->state_dir = strdup(state_dir);
        a->path = strdup_printf("%s/%s", state_dir, AUDIT_HISTORY_FILE);
        if (!a->state_dir || !a->path)
                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

/* Make what history_append() wrote durable, off the loop (syncer.h): once the loop is idle. */
static int on_history_sync(sd_event_source *s, void *userdata)
{
        struct ks_audit *a = userdata;

        syncer_kick(a->syncer, a->sync_dir);
        a->sync_dir = false;
        return 0;
}

/* A window of refusals is over: its summary is written now, not at the next event. */
static int on_refusals_window_end(sd_event_source *s, uint64_t usec, void *userdata)
{
        refusals_flush(userdata, true);
        return 0;
}

int audit_attach_event(struct ks_audit *a, sd_event *event)
{
        int r = syncer_new(event, a->state_dir, AUDIT_HISTORY_FILE, "the history", &a->syncer);

        if (r >= 0)
                r = sd_event_add_defer(event, &a->sync, on_history_sync, a);

        if (r >= 0)
                r = sd_event_source_set_priority(a->sync, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->sync, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time(event, &a->window_end, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_SEC,
                                      on_refusals_window_end, a);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->window_end, SD_EVENT_OFF);
        if (r < 0) {
                a->sync = sd_event_source_disable_unref(a->sync);
                a->window_end = sd_event_source_disable_unref(a->window_end);
                a->syncer = syncer_free(a->syncer);
        }
        return r;
}

struct ks_audit *audit_free(struct ks_audit *a)
{
        if (!a)
                return NULL;
        refusals_flush(a, true);
        if (a->sync && sd_event_source_get_enabled(a->sync, NULL) > 0)
                syncer_kick(a->syncer, a->sync_dir);
        a->syncer = syncer_free(a->syncer);     /* waits for an fsync running, does one asked for */
        sd_event_source_disable_unref(a->sync);
        sd_event_source_disable_unref(a->window_end);
        lines_clear(&a->tail);
        free(a->state_dir);
        free(a->path);
        free(a);
        return NULL;
}

void audit_set_history_bounds(struct ks_audit *a, size_t max_lines, size_t keep_lines)
{
        lines_clear(&a->tail);
        a->cached = false;
        a->max_lines = max_lines;
        a->keep_lines = keep_lines < max_lines ? keep_lines : max_lines;
}

void audit_set_refusals_window(struct ks_audit *a, uint64_t usec)
{
        a->refusals_window_usec = usec;
}

void audit_set_journal(struct ks_audit *a, bool enabled)
{
        a->journal = enabled;
}

/* The event with what the caller left out filled in: command from /proc, client address, time. */
struct event_ctx {
        const struct audit_event *ev;
        char command[64];
        char ssh_client[128];
        char claimed_ssh_client[128];   /* an unprivileged caller's, unverified */
        char claimed_command[64];       /* the client's word, when /proc cannot tell */
        char who[512];
        char message[2048];
        char time[32];
        uint64_t usec;
};

static const char *read_comm(pid_t pid, char *buf, size_t size)
{
        char path[64];
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, (int)size, f))
                return NULL;
        buf[strcspn(buf, "\n")] = '\0';
        return buf;
}

/* "alice (uid 1001, pid 42, killswitchctl) from 192.0.2.7", or "nft (pid 777)", as far as known. */
static void format_who(struct event_ctx *c)
{
        const struct audit_event *ev = c->ev;
        const char *command = *c->command ? c->command : NULL;
        const char *name = ev->user ? ev->user : command;
        char uid_name[32], details[256] = "";
        size_t n = 0;

        snprintf(uid_name, sizeof(uid_name), "uid %" PRId64, ev->uid);
        if (ev->uid >= 0 && !(name && strcmp(name, uid_name) == 0))
                n += (size_t)snprintf(details + n, sizeof(details) - n, "%s", uid_name);
        if (ev->pid > 0 && n < sizeof(details))
                n += (size_t)snprintf(details + n, sizeof(details) - n, "%spid %d", n ? ", " : "", (int)ev->pid);
        if (command && name != command && n < sizeof(details))
                snprintf(details + n, sizeof(details) - n, "%s%s", n ? ", " : "", command);
        else if (*c->claimed_command && n < sizeof(details))
                snprintf(details + n, sizeof(details) - n, "%sclaims %s", n ? ", " : "", c->claimed_command);

        if (name)
                n = (size_t)snprintf(c->who, sizeof(c->who), "%s%s%s%s", name, *details ? " (" : "", details,
                                     *details ? ")" : "");
        else
                n = (size_t)snprintf(c->who, sizeof(c->who), "%s", *details ? details : "killswitchd");
        if (*c->ssh_client && n < sizeof(c->who))
                n += (size_t)snprintf(c->who + n, sizeof(c->who) - n, " from %s", c->ssh_client);
        if (*c->claimed_ssh_client && n < sizeof(c->who))
                n += (size_t)snprintf(c->who + n, sizeof(c->who) - n, " (claims to come from %s, unverified)",
                                      c->claimed_ssh_client);
        if (ev->origin && n < sizeof(c->who))
                snprintf(c->who + n, sizeof(c->who) - n, " on behalf of %s", ev->origin);
}

/* The standard sentence of each kind, for callers that give none. */
static void format_message(struct event_ctx *c)
{
        const struct audit_event *ev = c->ev;
        const char *p = ev->policy ? ev->policy : "(unknown)";
        const char *prev = ev->previous_policy ? ev->previous_policy : "(unknown)";
        char head[1024];
        size_t n = 0;

        switch (ev->kind) {
        case AUDIT_ISOLATE:
                snprintf(head, sizeof(head), "Isolated with policy %s by %s", p, c->who);
                break;
        case AUDIT_SWITCH:
                snprintf(head, sizeof(head), "Switched from policy %s to %s by %s", prev, p, c->who);
                break;
        case AUDIT_RESTORE:
                snprintf(head, sizeof(head), "Restored (uplinks open) by %s", c->who);
                break;
        case AUDIT_REFUSED:
                snprintf(head, sizeof(head), "Refused a request%s%s from %s", ev->policy ? " for policy " : "",
                         ev->policy ? ev->policy : "", c->who);
                break;
        case AUDIT_APPLY_FAILED:
                snprintf(head, sizeof(head), "Could not apply %s%s (requested by %s)",
                         ev->policy ? "policy " : "the normal state", ev->policy ? ev->policy : "", c->who);
                break;
        case AUDIT_TAMPER:
                snprintf(head, sizeof(head), "Foreign change to the killswitch table by %s", c->who);
                break;
        case AUDIT_REASSERT:
                snprintf(head, sizeof(head), "Re-asserted %s%s after a foreign change",
                         ev->policy ? "policy " : "the normal state", ev->policy ? ev->policy : "");
                break;
        case AUDIT_RATE_LIMIT:
                snprintf(head, sizeof(head), "Too many foreign changes to the killswitch table: re-assertion "
                         "paused (last change by %s)", c->who);
                break;
        case AUDIT_RELOAD:
                snprintf(head, sizeof(head), "Reloaded the policies");
                break;
        case AUDIT_FAIL_CLOSED:
                snprintf(head, sizeof(head), "Isolated with policy %s (fail-closed)", p);
                break;
        case AUDIT_SCHEDULE:
                snprintf(head, sizeof(head), "Scheduled by %s", c->who);
                break;
        case AUDIT_CANCEL:
                snprintf(head, sizeof(head), "Scheduled restore cancelled by %s", c->who);
                break;
        case AUDIT_CONFIRM:
                snprintf(head, sizeof(head), "Isolation with policy %s confirmed by %s", p, c->who);
                break;
        case AUDIT_REVERT:
                snprintf(head, sizeof(head), "Not confirmed in time: reverting to %s%s",
                         ev->previous_policy ? "policy " : "the normal state",
                         ev->previous_policy ? ev->previous_policy : "");
                break;
        case AUDIT_TRIGGER:
                snprintf(head, sizeof(head), "Trigger %s fired (policy %s)", ev->trigger ? ev->trigger : "?", p);
                break;
        case AUDIT_REQUEST:
                snprintf(head, sizeof(head), "Restore requested by %s: waiting for a second person", c->who);
                break;
        case AUDIT_APPROVE:
                snprintf(head, sizeof(head), "Restore approved by %s", c->who);
                break;
        case AUDIT_OVERRIDE:
                snprintf(head, sizeof(head), "Four-eyes rule overridden by %s (restore --force)", c->who);
                break;
        case AUDIT_EXPIRE:
                snprintf(head, sizeof(head), "Restore request lapsed: no second person approved it");
                break;
        case AUDIT_LAST_GOOD:
                snprintf(head, sizeof(head), "Policy %s does not load: its last good version is in use", p);
                break;
        case AUDIT_REPEAT:
                snprintf(head, sizeof(head), "Isolation with policy %s asked again by %s: already in force", p,
                         c->who);
                break;
        case _AUDIT_KIND_MAX:
                snprintf(head, sizeof(head), "Unknown audit event");
                break;
        }
        n = (size_t)snprintf(c->message, sizeof(c->message), "%s", head);
        if (ev->reason && n < sizeof(c->message))
                n += (size_t)snprintf(c->message + n, sizeof(c->message) - n, ": %s", ev->reason);
        if (ev->kept && *ev->kept && n < sizeof(c->message))
                n += (size_t)snprintf(c->message + n, sizeof(c->message) - n, " [kept: %s]", ev->kept);
        if (ev->error > 0 && n < sizeof(c->message))
                snprintf(c->message + n, sizeof(c->message) - n, " (%s)", strerror(ev->error));
}

static void event_ctx_init(struct event_ctx *c, const struct audit_event *ev)
{
        *c = (struct event_ctx){ .ev = ev, .usec = ev->since_usec ? ev->since_usec : now_realtime_usec() };
        if (ev->command)
                snprintf(c->command, sizeof(c->command), "%s", ev->command);
        else if (ev->pid > 0 && !read_comm(ev->pid, c->command, sizeof(c->command)))
                c->command[0] = '\0';
        if (!c->command[0] && ev->claimed_command)
                snprintf(c->claimed_command, sizeof(c->claimed_command), "%s", ev->claimed_command);
        /* Anyone may claim an ssh_connection: only a trusted caller's is shown as where it came from. */
        if (ev->ssh_client)
                snprintf(ev->unprivileged ? c->claimed_ssh_client : c->ssh_client, sizeof(c->ssh_client), "%.*s",
                         (int)strcspn(ev->ssh_client, " \t"), ev->ssh_client);
        timespec_format_rfc3339(c->usec, c->time, sizeof(c->time));
        format_who(c);
        if (ev->message)
                snprintf(c->message, sizeof(c->message), "%s", ev->message);
        else
                format_message(c);
}

/* ---- journal ---- */

static int add_field(struct iovec *iov, size_t *n, const char *name, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int add_field(struct iovec *iov, size_t *n, const char *name, const char *fmt, ...)
{
        _cleanup_free_ char *value = NULL;
        char *s;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&value, fmt, ap);
        va_end(ap);
        if (r < 0 || asprintf(&s, "%s=%s", name, value) < 0)
                return -ENOMEM;
        iov[*n] = (struct iovec){ .iov_base = s, .iov_len = strlen(s) };
        (*n)++;
        return 0;
}

static int add_opt(struct iovec *iov, size_t *n, const char *name, const char *value)
{
        return value && *value ? add_field(iov, n, name, "%s", value) : 0;
}

/* One structured entry; fields the event lacks are left out. */
static int journal_send(const struct event_ctx *c)
{
        const struct audit_event *ev = c->ev;
        struct iovec iov[JOURNAL_FIELDS];
        size_t n = 0;
        int r;

        if ((r = add_field(iov, &n, "MESSAGE", "%s", c->message)) < 0 ||
            (r = add_field(iov, &n, "PRIORITY", "%d", kinds[ev->kind].priority)) < 0 ||
            (r = add_field(iov, &n, "MESSAGE_ID", "%s", kinds[ev->kind].message_id)) < 0 ||
            (r = add_field(iov, &n, "SYSLOG_IDENTIFIER", "%s", "killswitchd")) < 0 ||
            (r = add_field(iov, &n, "KILLSWITCH_ACTION", "%s", kinds[ev->kind].action)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_POLICY", ev->policy)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_PREVIOUS_POLICY", ev->previous_policy)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_REASON", ev->reason)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_KEPT", ev->kept)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_USER", ev->user)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_COMMAND", c->command)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_SSH_CLIENT", c->ssh_client)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_CLAIMED_SSH_CLIENT", c->claimed_ssh_client)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_CLAIMED_COMMAND", c->claimed_command)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_TRIGGER", ev->trigger)) < 0 ||
            (r = add_opt(iov, &n, "KILLSWITCH_ORIGIN", ev->origin)) < 0)
                goto out_free;
        if (ev->uid >= 0 && (r = add_field(iov, &n, "KILLSWITCH_UID", "%" PRId64, ev->uid)) < 0)
                goto out_free;
        /* OBJECT_PID= makes journald add the process's OBJECT_COMM=, OBJECT_EXE=, ... while it lives. */
        if (ev->pid > 0 && ((r = add_field(iov, &n, "KILLSWITCH_PID", "%d", (int)ev->pid)) < 0 ||
                            (r = add_field(iov, &n, "OBJECT_PID", "%d", (int)ev->pid)) < 0))
                goto out_free;
        if (ev->error > 0 && (r = add_field(iov, &n, "ERRNO", "%d", ev->error)) < 0)
                goto out_free;
        r = sd_journal_sendv(iov, (int)n);
out_free:
        for (size_t i = 0; i < n; i++)
                free(iov[i].iov_base);
        return r;
}

/* ---- history ---- */

/* A JSON string of at most FIELD_MAX_BYTES; bytes that are not valid UTF-8 become '?'. */
static json_t *text_json(const char *s)
{
        _cleanup_free_ char *copy = NULL;
        size_t len;
        json_t *v;

        if (!s)
                return json_null();
        len = strlen(s);
        if (len > FIELD_MAX_BYTES) {
                len = FIELD_MAX_BYTES;
                while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
                        len--;   /* cut before a character, not inside one */
        }
        v = json_stringn(s, len);
        if (v)
                return v;
        copy = strndup(s, len);
        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if ((unsigned char)*p >= 0x80)
                        *p = '?';
        return json_string(copy);
}

static json_t *entry_json(const struct event_ctx *c)
{
        const struct audit_event *ev = c->ev;

        return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                         "time", c->time,
                         "action", kinds[ev->kind].action,
                         "policy", text_json(ev->policy),
                         "previous_policy", text_json(ev->previous_policy),
                         "reason", text_json(ev->reason),
                         "kept", text_json(ev->kept),
                         "user", text_json(ev->user),
                         "uid", ev->uid >= 0 ? json_integer(ev->uid) : json_null(),
                         "pid", ev->pid > 0 ? json_integer(ev->pid) : json_null(),
                         "command", text_json(*c->command ? c->command : NULL),
                         "claimed_command", text_json(*c->claimed_command ? c->claimed_command : NULL),
                         "ssh_client", text_json(*c->ssh_client ? c->ssh_client : NULL),
                         "claimed_ssh_client", text_json(*c->claimed_ssh_client ? c->claimed_ssh_client : NULL),
                         "trigger", text_json(ev->trigger),
                         "origin", text_json(ev->origin),
                         "message", text_json(c->message),
                         "error", ev->error > 0 ? json_integer(ev->error) : json_null());
}

static void lines_clear(struct lines *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->items[(l->start + i) % l->cap]);
        free(l->items);
        *l = (struct lines){};
}

static const char *lines_get(const struct lines *l, size_t i)
{
        return l->items[(l->start + i) % l->cap];
}

static int lines_push(struct lines *l, const char *s, size_t len)
{
        char *copy;

        if (l->cap == 0)
                return 0;
        copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        if (l->n < l->cap) {
                l->items[(l->start + l->n++) % l->cap] = copy;
                return 0;
        }
        free(l->items[l->start]);
        l->items[l->start] = copy;
        l->start = (l->start + 1) % l->cap;
        return 0;
}

/* A line is an entry if it is a JSON object with a string "time" and "action". */
static json_t *parse_entry(const char *s, size_t len)
{
        json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);

        if (json_is_object(o) && json_is_string(json_object_get(o, "time")) &&
            json_is_string(json_object_get(o, "action")))
                return o;
        json_decref(o);
        return NULL;
}

/* The next line without its newline: 1, 0 at the end, -E2BIG for a line too long (skipped). */
static int read_line(FILE *f, char *buf, size_t size, size_t *ret_len)
{
        bool too_long = false;
        size_t len = 0;
        int c;

        while ((c = getc_unlocked(f)) != EOF && c != '\n') {
                if (len + 1 < size)
                        buf[len++] = (char)c;
                else
                        too_long = true;
        }
        if (c == EOF && len == 0 && !too_long)
                return ferror(f) ? -EIO : 0;
        buf[len] = '\0';
        *ret_len = len;
        return too_long ? -E2BIG : 1;
}

/* Read the history into l (capacity cap). A missing file is an empty history. */
static int history_scan(const char *path, size_t cap, struct lines *ret)
{
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *buf = NULL;
        struct lines l = { .cap = cap };
        size_t len;
        int r;

        f = fopen(path, "re");
        if (!f) {
                *ret = l;
                return errno == ENOENT ? 0 : -errno;
        }
        if (!(buf = malloc(LINE_MAX_BYTES)) || (cap > 0 && !(l.items = calloc(cap, sizeof(char *)))))
                return -ENOMEM;
        while ((r = read_line(f, buf, LINE_MAX_BYTES, &len)) != 0) {
                json_t *o;

                if (r == -EIO)
                        break;
                l.total++;
                if (r < 0 || !(o = parse_entry(buf, len)))
                        continue;   /* corrupt: skipped, never fatal */
                json_decref(o);
                r = lines_push(&l, buf, len);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                lines_clear(&l);
                return r;
        }
        *ret = l;
        return 0;
}

static bool line_is_refusal(const char *s)
{
        _cleanup_(json_decrefp) json_t *o = parse_entry(s, strlen(s));

        return o && strcmp(json_string_value(json_object_get(o, "action")), "refused") == 0;
}

/*
 * Replace the history by its newest keep_lines valid lines, atomically. Refusals
 * count apart: at most AUDIT_REFUSED_KEEP of them stay, so that however many
 * there were, they never push a state change out.
 */
static int history_rotate(struct ks_audit *a)
{
        size_t len = 0, kept = 0, refused = 0, max_refused = a->keep_lines / 5 ?: 1;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ bool *keep = NULL;
        struct lines l;
        FILE *f;
        int r;

        r = history_scan(a->path, a->max_lines + 1, &l);
        if (r < 0)
                return r;
        keep = calloc(l.n + 1, sizeof(bool));
        f = keep ? open_memstream(&text, &len) : NULL;
        if (!f) {
                lines_clear(&l);
                return -ENOMEM;
        }
        for (size_t i = l.n; i-- > 0 && kept < a->keep_lines;) {
                bool is_refusal = line_is_refusal(lines_get(&l, i));

                if (is_refusal && refused >= (max_refused < AUDIT_REFUSED_KEEP ? max_refused : AUDIT_REFUSED_KEEP))
                        continue;
                keep[i] = true;
                kept++;
                refused += is_refusal;
        }
        for (size_t i = 0; i < l.n; i++)
                if (keep[i])
                        fprintf(f, "%s\n", lines_get(&l, i));
        r = fclose(f) == 0 && text ? 0 : -ENOMEM;
        if (r == 0)
                r = write_file_atomic(a->state_dir, AUDIT_HISTORY_FILE, text, 0640);
        if (r == 0)
                a->n_lines = kept;
        lines_clear(&l);
        lines_clear(&a->tail);  /* read again when asked */
        a->cached = false;
        return r;
}

/* Count the lines, once: after that the count is kept as we append. */
static int history_count(struct ks_audit *a)
{
        struct lines l;
        int r;

        if (a->n_lines != LINES_UNKNOWN)
                return 0;
        r = history_scan(a->path, 0, &l);
        if (r < 0)
                return r;
        a->n_lines = l.total;
        return 0;
}

static int history_append(struct ks_audit *a, const char *line)
{
        _cleanup_close_ int fd = -1;
        struct stat st;
        char last;
        int r;

        r = history_count(a);
        if (r < 0)
                return r;
        fd = open(a->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);   /* read: the last byte */
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        /* A crash mid-write left a line without its newline: end it, so that ours stays whole. */
        if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n' &&
            (r = write_all(fd, "\n", 1)) < 0)
                return r;
        r = write_all(fd, line, strlen(line));
        if (r < 0)
                return r;
        if (a->sync) {
                /* In the page cache it survives a crash of the agent; on disk once the loop is idle. */
                a->sync_dir |= st.st_size == 0;
                sd_event_source_set_enabled(a->sync, SD_EVENT_ONESHOT);
        } else {
                if (fsync(fd) < 0)
                        return -errno;
                if (st.st_size == 0 && (r = fsync_dir(a->state_dir)) < 0)
                        return r;
        }
        a->n_lines++;
        if (a->cached && lines_push(&a->tail, line, strcspn(line, "\n")) < 0) {
                lines_clear(&a->tail);
                a->cached = false;
        }
        if (a->n_lines > a->max_lines)
                return history_rotate(a);
        return 0;
}

static int history_record(struct ks_audit *a, const struct event_ctx *c)
{
        _cleanup_(json_decrefp) json_t *o = entry_json(c);
        _cleanup_free_ char *text = NULL, *line = NULL;

        if (!o || !(text = json_dumps(o, JSON_COMPACT)) || asprintf(&line, "%s\n", text) < 0)
                return -ENOMEM;
        return history_append(a, line);
}

/* The newest lines of the history in memory: read once, then kept up to date as we append. */
static int history_cache(struct ks_audit *a)
{
        int r;

        if (a->cached)
                return 0;
        r = history_scan(a->path, a->max_lines, &a->tail);
        if (r < 0)
                return r;
        if (!a->tail.items && a->max_lines > 0 && !(a->tail.items = calloc(a->max_lines, sizeof(char *))))
                return -ENOMEM;   /* no file yet */
        a->cached = true;
        return 0;
}

int audit_history(struct ks_audit *a, size_t n, json_t **ret_array)
{
        _cleanup_(json_decrefp) json_t *array = NULL;
        size_t first, bytes = 0;
        int r;

        if (!a)
                return -EINVAL;
        refusals_flush(a, false);
        r = history_cache(a);
        if (r < 0)
                return r;
        /* The newest n, as far as they fit in AUDIT_HISTORY_REPLY_MAX bytes (JSON, escapes counted). */
        for (first = a->tail.n; first > 0 && a->tail.n - first < n; first--) {
                bytes += strlen(lines_get(&a->tail, first - 1)) + 1;
                if (bytes > AUDIT_HISTORY_REPLY_MAX)
                        break;
        }
        array = json_array();
        for (size_t i = first; array && i < a->tail.n; i++) {
                const char *s = lines_get(&a->tail, i);

                if (json_array_append_new(array, parse_entry(s, strlen(s))) < 0)
                        json_decref(TAKE_PTR(array));
        }
        if (!array)
                return -ENOMEM;
        *ret_array = TAKE_PTR(array);
        return 0;
}

bool audit_journal_available(const struct ks_audit *a)
{
        return (!a || a->journal) && access(JOURNAL_SOCKET, F_OK) == 0;
}

/* Journal (or stderr) and history, as it comes. */
static void audit_emit(struct ks_audit *a, const struct audit_event *ev)
{
        struct event_ctx c;
        bool journaled = false;
        int r;

        event_ctx_init(&c, ev);
        if ((!a || a->journal) && access(JOURNAL_SOCKET, F_OK) == 0)
                journaled = journal_send(&c) >= 0;
        /* Under systemd, stderr goes to the journal too: the structured entry says it all. */
        if (!journaled || !getenv("JOURNAL_STREAM"))
                log_msg(kinds[ev->kind].priority, 0, "%s", c.message);
        if (!a || !kinds[ev->kind].history)
                return;
        r = history_record(a, &c);
        if (r < 0) {
                a->n_lines = LINES_UNKNOWN;   /* count again next time */
                log_warning_errno(r, "Could not record the %s in the history %s: %m", kinds[ev->kind].action,
                                  a->path);
        }
}

/* ---- refusals of unprivileged callers: a burst one by one, then counted ---- */

/* The summary of the window's suppressed refusals, once it is over (or now if force). */
static void refusals_flush(struct ks_audit *a, bool force)
{
        struct refusals *rf = &a->refusals;
        char msg[512], when[TIMESPEC_RFC3339_MAX];
        size_t n;

        if (!rf->window_usec || (!force && now_monotonic_usec() - rf->window_usec < a->refusals_window_usec))
                return;
        if (rf->suppressed > 0) {
                n = (size_t)snprintf(msg, sizeof(msg), "Refused %u more requests of users outside group killswitch "
                                     "since %s, not recorded one by one (uid", rf->suppressed,
                                     timespec_format_rfc3339(rf->first_usec, when, sizeof(when)));
                for (size_t i = 0; i < rf->n_uids && n < sizeof(msg); i++)
                        n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s %" PRId64, i ? "," : "", rf->uids[i]);
                if (n < sizeof(msg))
                        snprintf(msg + n, sizeof(msg) - n, "%s)", rf->n_uids == UIDS_LISTED ? ", ..." : "");
                audit_emit(a, &(struct audit_event){ .kind = AUDIT_REFUSED, .uid = -1, .trigger = "ctl",
                                                     .message = msg, .error = EPERM });
        }
        *rf = (struct refusals){};
}

/* The summary comes when the window is over, even if nothing else happens (with an event loop). */
static void refusals_arm(struct ks_audit *a)
{
        int r;

        if (!a->window_end)
                return;
        r = sd_event_source_set_time(a->window_end, a->refusals.window_usec + a->refusals_window_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->window_end, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Could not time the summary of refusals (it comes with the next event): %m");
}

/* Record this refusal one by one? Otherwise it is counted for the window's summary. */
static bool refusal_admit(struct ks_audit *a, const struct audit_event *ev)
{
        struct refusals *rf = &a->refusals;
        bool listed = false;

        refusals_flush(a, false);
        if (!rf->window_usec) {
                rf->window_usec = now_monotonic_usec() ?: 1;
                refusals_arm(a);
        }
        if (rf->recorded < AUDIT_REFUSED_BURST) {
                rf->recorded++;
                return true;
        }
        if (rf->suppressed++ == 0)
                rf->first_usec = now_realtime_usec();
        for (size_t i = 0; i < rf->n_uids; i++)
                listed = listed || rf->uids[i] == ev->uid;
        if (!listed && rf->n_uids < UIDS_LISTED)
                rf->uids[rf->n_uids++] = ev->uid;
        return false;
}

void audit_log(struct ks_audit *a, const struct audit_event *ev)
{
        if (!audit_kind_to_string(ev->kind))
                return;
        if (a)
                refusals_flush(a, false);
        if (a && ev->kind == AUDIT_REFUSED && ev->unprivileged && !refusal_admit(a, ev))
                return;
        audit_emit(a, ev);
}
