/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "metrics.h"
#include "output.h"

struct family {
        const char *name;
        const char *type;
        const char *help;
};

/* Printed in this order; a family without samples is left out. */
static const struct family families[] = {
        { "killswitch_up", "gauge",
          "Whether killswitchd answered the status query (1) or could not be reached (0)." },
        { "killswitch_isolated", "gauge",
          "1 while an isolation policy is in force, 0 in the normal state." },
        { "killswitch_state_since_seconds", "gauge",
          "Unix time of the last state change (isolate or restore)." },
        { "killswitch_last_apply_seconds", "gauge",
          "Duration of the last nftables transaction the agent applied, in seconds." },
        { "killswitch_gateway_packets_total", "counter",
          "Packets let through to and from a gateway of the policy in force." },
        { "killswitch_gateway_bytes_total", "counter",
          "Bytes let through to and from a gateway of the policy in force." },
        { "killswitch_service_packets_total", "counter",
          "Packets let through to and from a [Service] of the policy in force." },
        { "killswitch_service_bytes_total", "counter",
          "Bytes let through to and from a [Service] of the policy in force." },
        { "killswitch_dropped_packets_total", "counter",
          "Packets dropped on the uplinks by the policy in force." },
        { "killswitch_dropped_bytes_total", "counter",
          "Bytes dropped on the uplinks by the policy in force." },
        { "killswitch_drops_sources", "gauge",
          "Inside hosts whose packets the current (or last) isolation cut (the drop sensor)." },
        { "killswitch_drops_tuples", "gauge",
          "Distinct (source, destination, protocol, port) tuples the current (or last) isolation cut." },
        { "killswitch_drops_packets_total", "counter",
          "Packets from this side the current (or last) isolation cut, itemised per tuple." },
        { "killswitch_drops_bytes_total", "counter",
          "Bytes from this side the current (or last) isolation cut, itemised per tuple." },
        { "killswitch_drops_overflow_packets_total", "counter",
          "Packets cut but not itemised: the drop sensor's tables were full." },
        { "killswitch_reassertions_total", "counter",
          "Times the agent put its ruleset back after it was changed or removed behind its back." },
};

static int add_sample(json_t *samples, const char *name, json_t *labels, json_t *value)
{
        json_t *s;

        if (!labels)
                labels = json_object();
        s = json_pack("{s:s, s:o, s:o}", "name", name, "labels", labels, "value", value);
        if (!s)
                return -ENOMEM;
        return json_array_append_new(samples, s) < 0 ? -ENOMEM : 0;
}

static json_int_t counter(json_t *object, const char *key)
{
        json_int_t v = json_integer_value(json_object_get(object, key));

        return v > 0 ? v : 0;
}

/* kind "gateway" or "service": the status array "gateways"/"services", the metrics killswitch_KIND_*. */
static int add_gateways(json_t *samples, json_t *status, const char *kind)
{
        const char *policy = json_string_value(json_object_get(status, "policy")) ?: "";
        char key[16], packets[64], bytes[64];
        size_t i;
        json_t *g;
        int r = 0;

        snprintf(key, sizeof(key), "%ss", kind);
        snprintf(packets, sizeof(packets), "killswitch_%s_packets_total", kind);
        snprintf(bytes, sizeof(bytes), "killswitch_%s_bytes_total", kind);
        json_array_foreach(json_object_get(status, key), i, g) {
                const char *name = json_string_value(json_object_get(g, "name")) ?: "";

                r = add_sample(samples, packets, json_pack("{s:s, s:s}", "policy", policy, kind, name),
                               json_integer(counter(g, "packets")));
                if (r >= 0)
                        r = add_sample(samples, bytes, json_pack("{s:s, s:s}", "policy", policy, kind, name),
                                       json_integer(counter(g, "bytes")));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The drop sensor's totals (status "drops"), if the agent has one. */
static int add_drops(json_t *samples, json_t *drops)
{
        static const struct {
                const char *name, *key;
        } rows[] = {
                { "killswitch_drops_sources", "sources" },
                { "killswitch_drops_tuples", "tuples" },
                { "killswitch_drops_packets_total", "packets" },
                { "killswitch_drops_bytes_total", "bytes" },
                { "killswitch_drops_overflow_packets_total", "overflow" },
        };
        int r = 0;

        for (size_t i = 0; r >= 0 && json_is_object(drops) && i < ELEMENTSOF(rows); i++)
                r = add_sample(samples, rows[i].name, NULL, json_integer(counter(drops, rows[i].key)));
        return r;
}

static int add_status(json_t *samples, json_t *status)
{
        const char *state = json_string_value(json_object_get(status, "state")) ?: "";
        const char *since = json_string_value(json_object_get(status, "since"));
        json_t *apply = json_object_get(status, "apply_usec");
        json_t *dropped = json_object_get(status, "dropped");
        json_t *reassertions = json_object_get(status, "reassertions");
        time_t t;
        int r;

        r = add_sample(samples, "killswitch_isolated", NULL, json_integer(strcmp(state, "isolated") == 0));
        if (r >= 0 && since && parse_rfc3339(since, &t) >= 0)
                r = add_sample(samples, "killswitch_state_since_seconds", NULL, json_integer((json_int_t) t));
        if (r >= 0 && json_is_integer(apply))
                r = add_sample(samples, "killswitch_last_apply_seconds", NULL,
                               json_real((double) json_integer_value(apply) / 1e6));
        if (r >= 0)
                r = add_gateways(samples, status, "gateway");
        if (r >= 0)
                r = add_gateways(samples, status, "service");
        /* Counters of the ruleset in force: zero while nothing is dropped. */
        if (r >= 0)
                r = add_sample(samples, "killswitch_dropped_packets_total", NULL,
                               json_integer(counter(dropped, "packets")));
        if (r >= 0)
                r = add_sample(samples, "killswitch_dropped_bytes_total", NULL,
                               json_integer(counter(dropped, "bytes")));
        if (r >= 0)
                r = add_drops(samples, json_object_get(status, "drops"));
        if (r >= 0 && json_is_integer(reassertions))
                r = add_sample(samples, "killswitch_reassertions_total", NULL,
                               json_integer(counter(status, "reassertions")));
        return r;
}

json_t *metrics_from_status(json_t *status)
{
        json_t *samples = json_array();

        if (!samples)
                return NULL;
        if (add_sample(samples, "killswitch_up", NULL, json_integer(status != NULL)) < 0 ||
            (status && add_status(samples, status) < 0)) {
                json_decref(samples);
                return NULL;
        }
        return samples;
}

/* A label value with \, " and newline escaped, as the exposition format wants. */
static void print_label_value(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

static void print_sample(FILE *f, json_t *sample)
{
        json_t *labels = json_object_get(sample, "labels");
        json_t *value = json_object_get(sample, "value");
        const char *key;
        bool first = true;
        json_t *v;

        fputs(json_string_value(json_object_get(sample, "name")), f);
        json_object_foreach(labels, key, v) {
                fputs(first ? "{" : ",", f);
                fprintf(f, "%s=", key);
                print_label_value(f, json_string_value(v) ?: "");
                first = false;
        }
        if (!first)
                fputc('}', f);
        if (json_is_integer(value))
                fprintf(f, " %" JSON_INTEGER_FORMAT "\n", json_integer_value(value));
        else
                fprintf(f, " %.6f\n", json_number_value(value));
}

void metrics_print(FILE *f, json_t *samples)
{
        bool header;
        size_t i;
        json_t *s;

        for (size_t k = 0; k < ELEMENTSOF(families); k++) {
                header = false;
                json_array_foreach(samples, i, s) {
                        if (strcmp(json_string_value(json_object_get(s, "name")) ?: "", families[k].name) != 0)
                                continue;
                        if (!header)
                                fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", families[k].name, families[k].help,
                                        families[k].name, families[k].type);
                        header = true;
                        print_sample(f, s);
                }
        }
}

/* A new file in directory dfd with a random name like ".killswitch.prom.XXXXXXXX". */
static int open_temp(int dfd, const char *base, char *name, size_t size)
{
        for (unsigned tries = 0; tries < 16; tries++) {
                uint32_t rnd;
                int fd;

                if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return -errno;
                snprintf(name, size, ".%s.%08" PRIx32, base, rnd);
                fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd >= 0 || errno != EEXIST)
                        return fd >= 0 ? fd : -errno;
        }
        return -EEXIST;
}

int metrics_write_file(const char *path, json_t *samples, enum json_mode json)
{
        _cleanup_free_ char *copy = strdup(path), *copy2 = strdup(path);
        _cleanup_close_ int dfd = -1;
        char name[NAME_MAX + 1];
        const char *base;
        FILE *f;
        int fd, r;

        if (!copy || !copy2)
                return -ENOMEM;
        base = basename(copy2);
        if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strlen(base) > NAME_MAX - 10)
                return -EINVAL;
        dfd = open(dirname(copy), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = open_temp(dfd, base, name, sizeof(name));
        if (fd < 0)
                return fd;
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                goto out_unlink;
        }
        if (json != JSON_OFF)
                output_json(f, samples, json);
        else
                metrics_print(f, samples);
        /* The mode whatever the umask: node_exporter runs as another user. */
        r = fflush(f) == 0 && fchmod(fileno(f), 0644) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dfd, name, dfd, base) < 0)
                r = -errno;
        if (r == 0)
                return 0;
out_unlink:
        unlinkat(dfd, name, 0);
        return r;
}
