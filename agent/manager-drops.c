/* SPDX-License-Identifier: MIT */
/*
 * The manager's part of the drop sensor (docs/design.md, "The drop sensor"):
 * read the kernel's P/drops_* sets into m->drops on demand and every
 * DROPS_SYNC_USEC while isolated, a journal summary every DROPS_JOURNAL_USEC
 * when something new was cut, and the bookkeeping around isolation, restore
 * and rebuilds of the table. Nothing of this runs while normal.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-journal.h>

#include "audit.h"
#include "cleanup.h"
#include "drops.h"
#include "fileio.h"
#include "log.h"
#include "manager.h"
#include "nft.h"
#include "timespec.h"
#include "timeutil.h"

#define DROPS_JOURNAL_USEC (5ULL * USEC_PER_MIN)
/* The periodic read takes at most 1 % of the loop: a slow read (full sets, a loaded machine) spaces them out. */
#define DROPS_SYNC_MAX_USEC USEC_PER_MIN
#define DROPS_SYNC_FACTOR 100
/* On-demand reads (status, drops) closer together than this use the last one. */
#define DROPS_FRESH_USEC USEC_PER_SEC
/* The totals of the last isolation, saved at its restore for `drops` and the report after a restart. */
#define DROPS_LAST_FILE "drops-last.json"
#define DROPS_SAVE_MAX 4096     /* tuples saved, most packets first; the rest's packets as overflow */
/* docs/audit.md: the drop sensor's summary. */
#define DROPS_MESSAGE_ID "a6d26acfd5974d3ba66e88abc690a52d"

int manager_drops_sync(struct ks_manager *m, bool force)
{
        struct nft_drop *reads = NULL;
        uint64_t overflow = 0, skipped = 0, now = now_realtime_usec(), start, mid;
        size_t n = 0;
        int r;

        if (!m->nft)
                return 0;
        if (!force && m->drops.synced_usec && now >= m->drops.synced_usec &&
            now - m->drops.synced_usec < DROPS_FRESH_USEC)
                return 0;
        start = now_usec(CLOCK_MONOTONIC);
        r = nft_read_drops(m->nft, TABLE_NAME, &reads, &n, &overflow, &skipped);
        mid = now_usec(CLOCK_MONOTONIC);
        if (r == 0)
                r = drops_merge(&m->drops, reads, n, overflow, skipped, now);
        free(reads);
        m->drops_read_usec = now_usec(CLOCK_MONOTONIC) - start;
        log_debug("Drop sensor read: %zu elements, %" PRIu64 " us from the kernel, %" PRIu64 " us to fold in", n,
                  mid - start, m->drops_read_usec - (mid - start));
        if (r < 0)
                log_warning_errno(r, "Could not read the drop sensor's sets of table inet %s: %m", TABLE_NAME);
        return r;
}

/* "192.0.2.7" / "2001:db8::7" */
const char *manager_drops_addr(const struct drop_entry *e, bool dst, char *buf, size_t size)
{
        if (!inet_ntop(e->key.family, dst ? e->key.dst : e->key.src, buf, (socklen_t)size))
                snprintf(buf, size, "?");
        return buf;
}

static void drops_journal(struct ks_manager *m, bool last)
{
        struct drops_totals t;
        char top[INET6_ADDRSTRLEN] = "", msg[512];
        bool journaled = false;

        drops_totals(&m->drops, &t);
        if (!last && t.packets + t.overflow == m->drops_logged_packets)
                return;         /* nothing new was cut since the last summary */
        m->drops_logged_packets = t.packets + t.overflow;
        if (t.top_source)
                manager_drops_addr(t.top_source, false, top, sizeof(top));
        snprintf(msg, sizeof(msg), "%s%zu inside host%s tried to get out: %" PRIu64 " packets cut in %zu tuples%s%s, "
                 "%" PRIu64 " more not itemised", last ? "During the isolation, " : "While isolated, ", t.sources,
                 t.sources == 1 ? "" : "s", t.packets, t.tuples, t.top_source ? ", most from " : "", top, t.overflow);
        /* As audit.c: the journal if journald runs, stderr otherwise (and under systemd, the journal anyway). */
        if (audit_journal_available(m->audit))
                journaled = sd_journal_send(
                        "MESSAGE=%s", msg, "MESSAGE_ID=" DROPS_MESSAGE_ID, "PRIORITY=%d", LOG_NOTICE,
                        "SYSLOG_IDENTIFIER=killswitchd", "KILLSWITCH_ACTION=drops",
                        "KILLSWITCH_POLICY=%s", m->state.policy ? m->state.policy : "",
                        "KILLSWITCH_DROPS_SOURCES=%zu", t.sources, "KILLSWITCH_DROPS_TUPLES=%zu", t.tuples,
                        "KILLSWITCH_DROPS_PACKETS=%" PRIu64, t.packets, "KILLSWITCH_DROPS_BYTES=%" PRIu64, t.bytes,
                        "KILLSWITCH_DROPS_OVERFLOW=%" PRIu64, t.overflow, "KILLSWITCH_DROPS_TOP_SOURCE=%s", top,
                        NULL) >= 0;
        if (!journaled || !getenv("JOURNAL_STREAM"))
                log_notice("%s", msg);
}

static uint64_t drops_interval(const struct ks_manager *m)
{
        uint64_t usec = DROPS_SYNC_FACTOR * m->drops_read_usec;

        return usec < DROPS_SYNC_USEC ? DROPS_SYNC_USEC : usec > DROPS_SYNC_MAX_USEC ? DROPS_SYNC_MAX_USEC : usec;
}

static int on_drops_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct ks_manager *m = userdata;
        uint64_t now = now_monotonic_usec();
        int r;

        if (!m->state.isolated) {
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        manager_drops_sync(m, true);
        if (now - m->drops_journal_usec >= DROPS_JOURNAL_USEC) {
                m->drops_journal_usec = now;
                drops_journal(m, false);
        }
        /* A callback's error would only disable the source, silently: say so here, once. */
        r = sd_event_source_set_time(s, now_monotonic_usec() + drops_interval(m));
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ON);
        if (r < 0)
                log_warning_errno(r, "Could not re-arm the drop sensor's timer: %m; `drops` reads the kernel on "
                                  "demand only until the next isolation");
        return 0;
}

static void drops_timer_arm(struct ks_manager *m)
{
        uint64_t now = now_monotonic_usec();

        if (!m->drops_source) {
                if (sd_event_add_time(m->event, &m->drops_source, CLOCK_MONOTONIC, now + DROPS_SYNC_USEC, 0,
                                      on_drops_timer, m) < 0)
                        log_warning("Could not arm the drop sensor's timer: `drops` reads the kernel on demand only");
        } else {
                sd_event_source_set_time(m->drops_source, now + DROPS_SYNC_USEC);
                sd_event_source_set_enabled(m->drops_source, SD_EVENT_ON);
        }
        m->drops_journal_usec = now;
}

void manager_drops_isolated(struct ks_manager *m, bool fresh)
{
        if (fresh) {
                drops_reset(&m->drops, m->state.since_usec ? m->state.since_usec : now_realtime_usec());
                m->drops_logged_packets = 0;
        }
        drops_timer_arm(m);
}

static json_t *entry_json(const struct drop_entry *e)
{
        char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];

        return json_pack("{s:s, s:s, s:i, s:o, s:I, s:I, s:I, s:I}",
                         "source", manager_drops_addr(e, false, src, sizeof(src)),
                         "destination", manager_drops_addr(e, true, dst, sizeof(dst)), "proto", e->key.proto,
                         "port", e->key.has_port ? json_integer(e->key.port) : json_null(),
                         "packets", (json_int_t)e->packets, "bytes", (json_int_t)e->bytes,
                         "first_usec", (json_int_t)e->first_usec, "last_usec", (json_int_t)e->last_usec);
}

/* STATE_DIR/drops-last.json: the isolation's tuples with most packets, and what the rest counted. */
static void drops_save(struct ks_manager *m)
{
        _cleanup_free_ const struct drop_entry **v = NULL;
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *text = NULL;
        struct drops_totals t;
        json_t *a = json_array();
        uint64_t kept = 0;
        size_t n = 0;
        int r;

        drops_totals(&m->drops, &t);
        if (!a || drops_sorted(&m->drops, 0, DROPS_SAVE_MAX, &v, &n) < 0) {
                json_decref(a);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                json_array_append_new(a, entry_json(v[i]));
                kept += v[i]->packets;
        }
        o = json_pack("{s:I, s:I, s:o}", "since_usec", (json_int_t)m->drops.since_usec,
                      "overflow", (json_int_t)(t.overflow + t.packets - kept), "entries", a);
        if (!o || !(text = json_dumps(o, JSON_COMPACT))) {
                log_warning("Out of memory: the drop sensor's totals are not kept for a restart");
                return;
        }
        r = write_file_atomic(m->state_dir, DROPS_LAST_FILE, text, 0640);
        if (r < 0)
                log_warning("Could not save the drop sensor's totals in %s/%s: %s", m->state_dir, DROPS_LAST_FILE,
                            strerror(-r));
}

static bool addr_parse(json_t *v, int *family, uint8_t out[16])
{
        const char *s = json_string_value(v);

        if (!s)
                return false;
        *family = strchr(s, ':') ? AF_INET6 : AF_INET;
        memset(out, 0, 16);
        return inet_pton(*family, s, out) == 1;
}

static bool entry_parse(json_t *j, struct drop_entry *e)
{
        json_t *port = json_object_get(j, "port");
        json_int_t proto = json_integer_value(json_object_get(j, "proto"));
        int family, dfamily;

        *e = (struct drop_entry){};
        if (!addr_parse(json_object_get(j, "source"), &family, e->key.src) ||
            !addr_parse(json_object_get(j, "destination"), &dfamily, e->key.dst) || family != dfamily ||
            proto < 0 || proto > 255 || (!json_is_null(port) && !json_is_integer(port)) ||
            json_integer_value(port) < 0 || json_integer_value(port) > 65535)
                return false;
        e->key.family = (uint8_t)family;
        e->key.proto = (uint8_t)proto;
        e->key.has_port = json_is_integer(port);
        e->key.port = (uint16_t)json_integer_value(port);
        e->packets = (uint64_t)json_integer_value(json_object_get(j, "packets"));
        e->bytes = (uint64_t)json_integer_value(json_object_get(j, "bytes"));
        e->first_usec = (uint64_t)json_integer_value(json_object_get(j, "first_usec"));
        e->last_usec = (uint64_t)json_integer_value(json_object_get(j, "last_usec"));
        return true;
}

void manager_drops_load(struct ks_manager *m)
{
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        struct drop_entry *v;
        json_t *a, *j;
        size_t n = 0, i;

        if (m->state.isolated || asprintf(&path, "%s/%s", m->state_dir, DROPS_LAST_FILE) < 0)
                return;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        o = json_loadfd(fd, JSON_REJECT_DUPLICATES, NULL);
        a = json_object_get(o, "entries");
        if (!json_is_array(a) || json_array_size(a) > DROPS_SAVE_MAX) {
                log_warning("Ignoring %s: not the drop sensor's saved totals", path);
                return;
        }
        v = calloc(json_array_size(a) + 1, sizeof(*v));
        if (!v)
                return;
        json_array_foreach(a, i, j)
                if (entry_parse(j, &v[n]))
                        n++;
        drops_adopt(&m->drops, v, n, (uint64_t)json_integer_value(json_object_get(o, "since_usec")),
                    (uint64_t)json_integer_value(json_object_get(o, "overflow")));
}

void manager_drops_restored(struct ks_manager *m)
{
        struct ks_error e = {};

        manager_drops_sync(m, true);
        drops_journal(m, true);
        drops_save(m);
        if (m->drops_source)
                sd_event_source_set_enabled(m->drops_source, SD_EVENT_OFF);
        /* The next isolation starts from empty sets; the totals of this one stay for `drops` and the report. */
        if (nft_flush_drops(m->nft, TABLE_NAME, &e) < 0)
                log_warning("Could not empty the drop sensor's sets: %s", e.msg);
        drops_forget_kernel(&m->drops);
}

void manager_drops_before_rebuild(struct ks_manager *m)
{
        if (m->state.isolated)
                manager_drops_sync(m, true);
}

void manager_drops_after_rebuild(struct ks_manager *m)
{
        drops_forget_kernel(&m->drops);
}
