/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: killswitch.conf (conf_parse_string) and its rate syntax
 * (conf_parse_rate, fed every value after a '='). A parse never fails but for
 * memory; every diagnostic names the file; what is kept is complete.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_conf(const struct ks_conf *c, const struct ks_diags *d)
{
        for (size_t i = 0; i < d->n; i++)
                if (strncmp(d->msgs[i], "fuzz.conf", strlen("fuzz.conf")) != 0)
                        abort();
        for (size_t i = 0; i < c->n_paths; i++)
                if (!c->paths[i].name || !c->paths[i].path || !c->paths[i].policy || c->paths[i].path[0] != '/')
                        abort();
        if (c->n_paths > CONF_MAX_PATH_TRIGGERS)
                abort();
        if ((c->heartbeat.enabled && !c->heartbeat.policy) || (c->tripwire.enabled && !c->tripwire.policy))
                abort();
}

static void rates(const char *text)
{
        for (const char *eq = strchr(text, '='); eq; eq = strchr(eq + 1, '=')) {
                size_t len = strcspn(eq + 1, "\n");
                char *v = strndup(eq + 1, len);
                uint64_t rate;
                int r;

                if (!v)
                        return;
                r = conf_parse_rate(v, &rate);
                if (r != 0 && r != -EINVAL && r != -ERANGE)
                        abort();
                free(v);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct ks_conf c = {};
        struct ks_diags d = {};
        char *text = malloc(size + 1);
        int r;

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        r = conf_parse_string(text, "fuzz.conf", &c, &d);
        if (r == 0)
                check_conf(&c, &d);
        else if (r != -ENOMEM)
                abort();
        rates(text);
        conf_clear(&c);
        diags_clear(&d);
        free(text);
        return 0;
}
