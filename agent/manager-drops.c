/* SPDX-License-Identifier: MIT */
/*
 * The manager's part of the drop sensor (docs/design.md, "The drop sensor"):
 * read the kernel's P/drops_* sets into m->drops on demand and every
 * DROPS_SYNC_USEC while isolated, on a thread (the loop only folds the result
 * in), a journal summary every DROPS_JOURNAL_USEC
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
#include "log.h"
#include "manager.h"
#include "nft.h"
#include "reaper.h"
#include "syncer.h"
#include "timespec.h"
#include "timeutil.h"
#include "worker.h"

#define DROPS_JOURNAL_USEC (5ULL * USEC_PER_MIN)
/* The periodic read takes at most 1 % of the loop: a slow read (full sets, a loaded machine) spaces them out. */
#define DROPS_SYNC_MAX_USEC USEC_PER_MIN
#define DROPS_SYNC_FACTOR 100
/* The totals of the last isolation, saved at its restore for `drops` and the report after a restart. */
#define DROPS_LAST_FILE "drops-last.json"
#define DROPS_SAVE_MAX 4096     /* tuples saved, most packets first; the rest's packets as overflow */
/* docs/audit.md: the drop sensor's summary. */
#define DROPS_MESSAGE_ID "a6d26acfd5974d3ba66e88abc690a52d"

/*
 * Reads of the kernel's sets off the loop: a read of full sets (65,536
 * elements) takes the kernel and libnftnl a few tenths of a second, and
 * isolate, restore and status must not wait for it. One read at a time, on a
 * worker thread with a netlink socket of its own; the loop folds its result
 * in. Requests that arrive during a read are served by the next one, which
 * starts when this one is folded in: no queue of reads, and memory bounded by
 * one read (NFT_DROPS_READ_MAX elements).
 */
struct drops_job {
        struct ks_manager *m;           /* for done only: work touches nothing but the fields below */
        struct ks_worker *worker;
        struct ks_nft *nft;             /* the reader's socket, lent to the thread for this read */
        uint64_t number;                /* reads started before and this one */
        uint64_t epoch;                 /* the reader's epoch at the start: a fold on the loop since makes it stale */
        uint64_t start_usec, end_usec;  /* CLOCK_MONOTONIC, on the thread */
        size_t n;                       /* elements read */
        struct drops_read *read;        /* sorted on the thread: the loop only merges */
        int r;
};

struct drops_waiter {
        drops_read_fn fn;
        void *userdata;
        uint64_t after;                 /* served by the first read numbered above this */
        struct drops_waiter *next;
};

struct drops_reader {
        struct drops_job *job;          /* the read running, or NULL */
        struct ks_nft *nft;             /* kept between reads: closing one costs the kernel milliseconds */
        uint64_t started, folded;       /* reads started; reads folded in */
        uint64_t epoch;
        uint64_t final_after;           /* a restore's last read: a read numbered above this; 0: none pending */
        uint64_t final_overflow;        /* the overflow counters at the restore (which resets them) */
        uint64_t restored_usec;         /* CLOCK_REALTIME of that restore */
        /*
         * An isolation that began before the restore's last read was folded in
         * did not wait for it: that read is split between the two
         * (drops_merge_split() at split_usec, halfway between the restore and
         * the isolation), and the last isolation's totals wait here for it.
         */
        bool carry;
        uint64_t split_usec;
        struct ks_drops last;
        struct drops_waiter *waiters;
};

static void job_free(struct drops_job *j)
{
        if (!j)
                return;
        worker_free(j->worker);
        nft_close(j->nft);
        drops_read_free(j->read);
        free(j);
}

static void job_reap(void *p)
{
        job_free(p);
}

static void job_work(void *userdata)
{
        struct drops_job *j = userdata;
        uint64_t realtime = now_realtime_usec(), overflow = 0, skipped = 0;
        struct nft_drop *reads = NULL;

        j->start_usec = now_usec(CLOCK_MONOTONIC);
        j->r = j->nft ? 0 : nft_open(&j->nft);
        if (j->r == 0)
                j->r = nft_read_drops(j->nft, TABLE_NAME, &reads, &j->n, &overflow, &skipped);
        /* A failed read may leave answers behind: the next read opens a new socket. */
        if (j->r < 0)
                j->nft = nft_close(j->nft);
        if (j->r == 0)
                j->r = drops_read_new(reads, j->n, overflow, skipped, realtime, &j->read);
        free(reads);
        j->end_usec = now_usec(CLOCK_MONOTONIC);
}

static struct drops_reader *reader_get(struct ks_manager *m)
{
        if (!m->drops_reader)
                m->drops_reader = calloc(1, sizeof(*m->drops_reader));
        return m->drops_reader;
}

/* What a fold on the loop does to a read still running: it would count what the loop counted. */
static void reader_invalidate(struct ks_manager *m)
{
        if (m->drops_reader)
                m->drops_reader->epoch++;
}

static int fold_failed(int r)
{
        return log_warning_errno(r, "Could not fold in the drop sensor's read: %m");
}

/* The last isolation's final read, after the next one began: split between the two. */
static int fold_carried(struct ks_manager *m, struct drops_read *read)
{
        struct drops_reader *rd = m->drops_reader;
        int r = drops_merge_split(&m->drops, read, rd->split_usec, true);

        if (r == 0) {
                drops_read_add_overflow(read, rd->final_overflow);     /* the restore reset the counters */
                r = drops_merge_split(&rd->last, read, rd->split_usec, false);
        }
        return r;
}

/* Fold a read in; final: it started after the restore (the restore reset the overflow counters). */
static int fold(struct ks_manager *m, struct drops_read *read, bool final)
{
        struct drops_reader *rd = m->drops_reader;

        if (final && rd && rd->final_after && rd->carry)
                return fold_carried(m, read);
        if (final && rd && rd->final_after)
                drops_read_add_overflow(read, rd->final_overflow);
        return drops_merge_read(&m->drops, read);
}

/* A read on the loop, with the loop's socket: before a rebuild empties the sets, or when no thread starts. */
static int sync_now(struct ks_manager *m)
{
        struct drops_read *read = NULL;
        struct nft_drop *reads = NULL;
        uint64_t overflow = 0, skipped = 0, realtime = now_realtime_usec(), start = now_usec(CLOCK_MONOTONIC);
        size_t n = 0;
        int r;

        if (!m->nft)
                return 0;
        reader_invalidate(m);
        r = nft_read_drops(m->nft, TABLE_NAME, &reads, &n, &overflow, &skipped);
        if (r == 0)
                r = drops_read_new(reads, n, overflow, skipped, realtime, &read);
        if (r == 0 && (r = fold(m, read, true)) < 0)
                fold_failed(r);
        else if (r < 0)
                log_warning_errno(r, "Could not read the drop sensor's sets of table inet %s: %m", TABLE_NAME);
        drops_read_free(read);
        free(reads);
        m->drops_read_usec = now_usec(CLOCK_MONOTONIC) - start;
        return r;
}

static void drops_journal(struct ks_manager *m, const struct ks_drops *d, bool last);
static void drops_save(struct ks_manager *m, const struct ks_drops *d);
static int reader_start(struct ks_manager *m);

/* The restore's last read is folded in: summary, saved totals, and the sets emptied for the next isolation. */
static void finish_restore(struct ks_manager *m)
{
        struct drops_reader *rd = m->drops_reader;
        struct ks_error e = {};

        rd->final_after = 0;
        if (rd->carry) {
                /* The sets count for the isolation in force: they stay, its baseline is in m->drops. */
                drops_journal(m, &rd->last, true);
                drops_save(m, &rd->last);
                drops_free(&rd->last);
                rd->carry = false;
                return;
        }
        drops_journal(m, &m->drops, true);
        drops_save(m, &m->drops);
        /* The next isolation starts from empty sets; the totals of this one stay for `drops` and the report. */
        if (nft_flush_drops(m->nft, TABLE_NAME, &e) < 0)
                log_warning("Could not empty the drop sensor's sets: %s", e.msg);
        drops_forget_kernel(&m->drops);
        reader_invalidate(m);
}

static void serve_waiters(struct ks_manager *m, uint64_t number, int r)
{
        struct drops_reader *rd = m->drops_reader;
        struct drops_waiter **p = &rd->waiters;

        while (*p) {
                struct drops_waiter *w = *p;

                if (w->after >= number) {
                        p = &w->next;
                        continue;
                }
                *p = w->next;
                w->fn(m, w->userdata, r);
                free(w);
        }
}

static void job_done(void *userdata)
{
        struct drops_job *j = userdata;
        struct ks_manager *m = j->m;
        struct drops_reader *rd = m->drops_reader;
        uint64_t fold_start = now_usec(CLOCK_MONOTONIC);
        bool final = rd->final_after && j->number > rd->final_after;
        int r = j->r;

        rd->job = NULL;
        rd->nft = TAKE_PTR(j->nft);
        /* A carried final read is not stale: the new isolation's start invalidated the reads before it. */
        if (r == 0 && (j->epoch == rd->epoch || (final && rd->carry)) && (r = fold(m, j->read, final)) < 0)
                fold_failed(r);
        else if (r < 0)
                log_warning_errno(r, "Could not read the drop sensor's sets of table inet %s: %m", TABLE_NAME);
        /* A stale read: the loop folded a later one in meanwhile, which counted all this one saw. */
        rd->folded = j->number;
        m->drops_read_usec = j->end_usec - j->start_usec;
        log_debug("Drop sensor read: %zu elements, %" PRIu64 " us from the kernel (on a thread), %" PRIu64
                  " us to fold in", j->n, j->end_usec - j->start_usec, now_usec(CLOCK_MONOTONIC) - fold_start);
        /* A read's transient megabytes are freed and given back to the system on a thread (reaper.c). */
        j->worker = worker_free(j->worker);
        reaper_add(m->reaper, j, job_reap);
        if (rd->final_after && rd->folded > rd->final_after)
                finish_restore(m);
        serve_waiters(m, rd->folded, r);
        if (rd->waiters || rd->final_after)
                reader_start(m);
}

/* Start a read if none runs. Only if no thread can be started, the read runs on the loop. */
static int reader_start(struct ks_manager *m)
{
        struct drops_reader *rd = reader_get(m);
        struct drops_job *j;
        int r;

        if (!rd)
                return -ENOMEM;
        if (rd->job)
                return 0;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (struct drops_job){ .m = m, .number = rd->started + 1, .epoch = rd->epoch };
        j->nft = TAKE_PTR(rd->nft);
        r = worker_start(m->event, job_work, job_done, j, &j->worker);
        if (r < 0) {
                rd->nft = TAKE_PTR(j->nft);
                free(j);
                log_warning_errno(r, "Could not start a thread to read the drop sensor's sets (%m): reading on "
                                  "the loop");
                sync_now(m);
                rd->started++;
                rd->folded = rd->started;
                if (rd->final_after && rd->folded > rd->final_after)
                        finish_restore(m);
                serve_waiters(m, rd->folded, 0);
                return 0;
        }
        rd->started++;
        rd->job = j;
        return 0;
}

int manager_drops_read_then(struct ks_manager *m, drops_read_fn fn, void *userdata)
{
        struct drops_reader *rd = reader_get(m);
        struct drops_waiter *w;

        if (!rd)
                return -ENOMEM;
        if (!m->state.isolated && !rd->final_after)
                return 1;       /* nothing counts: the totals are final */
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct drops_waiter){ .fn = fn, .userdata = userdata, .after = rd->started, .next = rd->waiters };
        rd->waiters = w;
        return reader_start(m);
}

bool manager_drops_reading(const struct ks_manager *m, uint64_t *ret_reads)
{
        const struct drops_reader *rd = m->drops_reader;

        *ret_reads = rd ? rd->folded : 0;
        return rd && rd->job;
}

/* The restore's last read is folded in (before a rebuild empties the sets, and at exit). */
static void settle_final(struct ks_manager *m)
{
        struct drops_reader *rd = m->drops_reader;

        while (rd && rd->final_after) {
                if (rd->job)
                        worker_finish(rd->job->worker);         /* done may start the next read */
                else if (reader_start(m) < 0) {
                        sync_now(m);
                        finish_restore(m);
                }
        }
}

/* Restored again before the last isolation's final read was folded in: that one is finished first. */
static void settle_carried(struct ks_manager *m)
{
        struct drops_reader *rd = m->drops_reader;

        if (rd && rd->carry) {
                log_info("Restoring while the last isolation's drop counts are still being read: reading them first");
                settle_final(m);
        }
}

void manager_drops_free(struct ks_manager *m)
{
        struct drops_reader *rd = m->drops_reader;

        if (!rd) {
                m->drops_syncer = syncer_free(m->drops_syncer);
                return;
        }
        /* Waiters are calls of the control socket, freed with it. */
        while (rd->waiters) {
                struct drops_waiter *w = rd->waiters;

                rd->waiters = w->next;
                free(w);
        }
        /* Stopped right after a restore: its last read is saved (drops-last.json) before we go. */
        settle_final(m);
        job_free(rd->job);
        nft_close(rd->nft);
        drops_free(&rd->last);
        free(rd);
        m->drops_reader = NULL;
        m->drops_syncer = syncer_free(m->drops_syncer);        /* after the last save above */
}

/* "192.0.2.7" / "2001:db8::7" */
const char *manager_drops_addr(const struct drop_entry *e, bool dst, char *buf, size_t size)
{
        if (!inet_ntop(e->key.family, dst ? e->key.dst : e->key.src, buf, (socklen_t)size))
                snprintf(buf, size, "?");
        return buf;
}

static void drops_journal(struct ks_manager *m, const struct ks_drops *d, bool last)
{
        struct drops_totals t;
        char top[INET6_ADDRSTRLEN] = "", msg[512];
        bool journaled = false;

        drops_totals(d, &t);
        if (!last && t.packets + t.overflow == m->drops_logged_packets)
                return;         /* nothing new was cut since the last summary */
        if (!last)
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
                        "KILLSWITCH_POLICY=%s", !last && m->state.policy ? m->state.policy : "",
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
        reader_start(m);        /* folded in later; the summary below has the previous read */
        if (now - m->drops_journal_usec >= DROPS_JOURNAL_USEC) {
                m->drops_journal_usec = now;
                drops_journal(m, &m->drops, false);
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
        struct drops_reader *rd = m->drops_reader;

        /* The restore's last read still runs: this isolation does not wait for it (drops_merge_split). */
        if (fresh && rd && rd->final_after) {
                rd->carry = true;
                rd->split_usec = rd->restored_usec && rd->restored_usec < m->state.since_usec
                                         ? rd->restored_usec + (m->state.since_usec - rd->restored_usec) / 2
                                         : m->state.since_usec;
                rd->last = m->drops;
                m->drops = (struct ks_drops){};
        }
        if (fresh) {
                drops_reset(&m->drops, m->state.since_usec ? m->state.since_usec : now_realtime_usec());
                m->drops_logged_packets = 0;
                reader_invalidate(m);
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
static void drops_save(struct ks_manager *m, const struct ks_drops *d)
{
        _cleanup_free_ const struct drop_entry **v = NULL;
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *text = NULL;
        struct drops_totals t;
        json_t *a = json_array();
        uint64_t kept = 0;
        size_t n = 0;

        drops_totals(d, &t);
        if (!a || drops_sorted(d, 0, DROPS_SAVE_MAX, &v, &n) < 0) {
                json_decref(a);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                json_array_append_new(a, entry_json(v[i]));
                kept += v[i]->packets;
        }
        o = json_pack("{s:I, s:I, s:o}", "since_usec", (json_int_t)d->since_usec,
                      "overflow", (json_int_t)(t.overflow + t.packets - kept), "entries", a);
        if (!o || !(text = json_dumps(o, JSON_COMPACT))) {
                log_warning("Out of memory: the drop sensor's totals are not kept for a restart");
                return;
        }
        /* Replaced and made durable on a thread: it is not what a fail-closed start depends on. */
        syncer_save(&m->drops_syncer, m->event, m->state_dir, DROPS_LAST_FILE, "the drop sensor's totals",
                    TAKE_PTR(text), 0640);
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

/*
 * Restored: the sets count no more. Their last read runs on the thread like
 * any other (the restore does not wait for it); once it is folded in, the
 * summary is journaled, the totals saved and the sets emptied. `drops` waits
 * for it; an isolation that comes first finishes it before its switch.
 */
void manager_drops_restored(struct ks_manager *m)
{
        struct drops_reader *rd = reader_get(m);

        if (m->drops_source)
                sd_event_source_set_enabled(m->drops_source, SD_EVENT_OFF);
        if (!rd) {
                sync_now(m);
                drops_journal(m, &m->drops, true);
                drops_save(m, &m->drops);
                return;
        }
        settle_carried(m);
        /* A read still running may have seen the counters after the reset below: the last read counts all. */
        reader_invalidate(m);
        if (nft_read_drops_overflow(m->nft, TABLE_NAME, &rd->final_overflow) < 0)
                rd->final_overflow = m->drops.kernel_overflow;
        rd->final_after = rd->started;
        rd->restored_usec = now_realtime_usec();
        reader_start(m);
}

/* The sets are about to be emptied by a new table: read them on the loop first (reloads and repairs only). */
void manager_drops_before_rebuild(struct ks_manager *m)
{
        settle_final(m);
        if (m->state.isolated)
                sync_now(m);
}

void manager_drops_after_rebuild(struct ks_manager *m)
{
        drops_forget_kernel(&m->drops);
        reader_invalidate(m);
}
