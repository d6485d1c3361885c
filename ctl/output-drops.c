/* SPDX-License-Identifier: MIT */
/*
 * `killswitchctl drops`: the drop sensor's tuples as a table, grouped by
 * source host, the host with the most cut packets first (the one that keeps
 * trying to get out), each host's tuples by packets. The agent sends them
 * sorted by packets (io.killswitch.Drops); the grouping is done here.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cleanup.h"
#include "output-drops.h"
#include "timespec.h"

struct drop_row {
        json_t *e;
        const char *source;
        uint64_t packets;               /* of this tuple */
        uint64_t source_packets;        /* of its source, all tuples */
        size_t source_rank;             /* first row of its source in the agent's order */
};

static const char *str(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static uint64_t uint_of(json_t *o, const char *key)
{
        json_int_t v = json_integer_value(json_object_get(o, key));

        return v > 0 ? (uint64_t) v : 0;
}

static int row_cmp(const void *a, const void *b)
{
        const struct drop_row *x = a, *y = b;

        if (x->source_packets != y->source_packets)
                return x->source_packets < y->source_packets ? 1 : -1;
        if (x->source_rank != y->source_rank)
                return x->source_rank < y->source_rank ? -1 : 1;
        if (x->packets != y->packets)
                return x->packets < y->packets ? 1 : -1;
        return 0;
}

/* The rows with their source's total, sorted: sources by packets, then each source's tuples. */
static struct drop_row *drops_rows(json_t *drops, size_t *ret_n)
{
        size_t n = json_array_size(drops);
        struct drop_row *rows = calloc(n + 1, sizeof(*rows));

        if (!rows)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                rows[i].e = json_array_get(drops, i);
                rows[i].source = str(rows[i].e, "source") ?: "?";
                rows[i].packets = uint_of(rows[i].e, "packets");
                rows[i].source_rank = i;
                /* Quadratic only in what the agent sent for display; a source's first row ranks it. */
                for (size_t j = 0; j < i; j++)
                        if (strcmp(rows[j].source, rows[i].source) == 0) {
                                rows[i].source_rank = rows[j].source_rank;
                                break;
                        }
        }
        for (size_t i = 0; i < n; i++)
                rows[rows[i].source_rank].source_packets += rows[i].packets;
        for (size_t i = 0; i < n; i++)
                rows[i].source_packets = rows[rows[i].source_rank].source_packets;
        qsort(rows, n, sizeof(*rows), row_cmp);
        *ret_n = n;
        return rows;
}

struct drop_cells {
        char port[8], packets[24], bytes[FORMAT_BYTES_MAX], first[64], last[64];
};

static int add_rows(struct table *t, struct drop_row *rows, size_t n, struct drop_cells *cells)
{
        for (size_t i = 0; i < n; i++) {
                json_t *e = rows[i].e, *port = json_object_get(e, "port");
                struct drop_cells *c = &cells[i];
                const char *row[8];

                if (json_is_integer(port))
                        snprintf(c->port, sizeof(c->port), "%" JSON_INTEGER_FORMAT, json_integer_value(port));
                snprintf(c->packets, sizeof(c->packets), "%" PRIu64, rows[i].packets);
                format_bytes(uint_of(e, "bytes"), c->bytes, sizeof(c->bytes));
                timespec_format_local(str(e, "first_seen"), c->first, sizeof(c->first));
                timespec_format_local(str(e, "last_seen"), c->last, sizeof(c->last));
                row[0] = rows[i].source;
                row[1] = str(e, "destination");
                row[2] = str(e, "protocol");
                row[3] = json_is_integer(port) ? c->port : "-";
                row[4] = c->packets;
                row[5] = c->bytes;
                row[6] = c->first;
                row[7] = c->last;
                if (table_add_row(t, row) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static void print_summary(FILE *f, json_t *reply, size_t shown)
{
        uint64_t tuples = uint_of(reply, "tuples"), overflow = uint_of(reply, "overflow");
        char since[64], bytes[FORMAT_BYTES_MAX];
        const char *from = str(reply, "since");

        format_bytes(uint_of(reply, "bytes"), bytes, sizeof(bytes));
        fprintf(f, "\n%" PRIu64 " inside host%s tried to get out: %" PRIu64 " packets (%s) cut in %" PRIu64
                " tuple%s", uint_of(reply, "sources"), uint_of(reply, "sources") == 1 ? "" : "s",
                uint_of(reply, "packets"), bytes, tuples, tuples == 1 ? "" : "s");
        if (shown < tuples)
                fprintf(f, ", %zu shown", shown);
        if (from)
                fprintf(f, ", %s %s", json_is_true(json_object_get(reply, "isolated")) ? "since" : "during the "
                        "isolation from", timespec_format_local(from, since, sizeof(since)));
        fputs(".\n", f);
        if (overflow)
                fprintf(f, "%" PRIu64 " more packets cut but not itemised: the sensor's table was full.\n", overflow);
}

int output_drops(FILE *f, json_t *reply, const struct output_flags *flags)
{
        static const char *const headers[] = { "SOURCE", "DESTINATION", "PROTO", "PORT", "PACKETS", "BYTES",
                                               "FIRST", "LAST" };
        json_t *drops = json_object_get(reply, "drops");
        struct drop_cells *cells = NULL;
        struct drop_row *rows;
        struct table *t = NULL;
        size_t n = 0;
        int r = -ENOMEM;

        rows = drops_rows(drops, &n);
        if (rows)
                cells = calloc(n + 1, sizeof(*cells));
        if (cells)
                t = table_new(ELEMENTSOF(headers), headers);
        if (t)
                r = add_rows(t, rows, n, cells);
        if (r >= 0) {
                table_print(t, f, flags->legend && n > 0);
                if (flags->legend && n == 0 && !str(reply, "since"))
                        fputs("Nothing cut: no isolation since the agent started.\n", f);
                else if (flags->legend && n == 0)
                        fputs("Nothing cut from this side.\n", f);
                if (flags->legend && (n > 0 || uint_of(reply, "overflow")))
                        print_summary(f, reply, n);
        }
        table_free(t);
        free(cells);
        free(rows);
        return r;
}
