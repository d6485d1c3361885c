/* SPDX-License-Identifier: MIT */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* asprintf(), pipe2() */
#endif

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"
#include "strv.h"

#define HOST_SPEC_MAX 255

static bool host_char_ok(unsigned char c)
{
        return isascii(c) && (isalnum(c) || strchr("._-:[]%@", c));
}

static int parse_port(const char *s)
{
        long v = 0;

        if (!*s || strlen(s) > 5)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                v = v * 10 + (*p - '0');
        }
        return v >= 1 && v <= 65535 ? 0 : -EINVAL;
}

/* Split "HOST[:PORT]", "[V6]:PORT", "[V6]" or a bare "V6" in place. */
static int split_port(char *host, char **ret_name, char **ret_port)
{
        char *colon, *close;

        if (host[0] == '[') {
                close = strchr(host, ']');
                if (!close || close == host + 1 || (close[1] && close[1] != ':'))
                        return -EINVAL;
                *close = '\0';
                *ret_name = host + 1;
                *ret_port = close[1] ? close + 2 : NULL;
                return 0;
        }
        colon = strchr(host, ':');
        if (colon && strchr(colon + 1, ':')) {
                *ret_name = host;   /* a bare IPv6 address: no port */
                *ret_port = NULL;
                return 0;
        }
        if (colon)
                *colon = '\0';
        *ret_name = host;
        *ret_port = colon ? colon + 1 : NULL;
        return 0;
}

int remote_host_parse(const char *spec, struct remote_host *ret)
{
        _cleanup_free_ char *copy = NULL;
        char *at, *host, *name, *port;
        struct remote_host h = {};

        if (!*spec || strlen(spec) > HOST_SPEC_MAX)
                return -EINVAL;
        for (const char *p = spec; *p; p++)
                if (!host_char_ok((unsigned char) *p))
                        return -EINVAL;
        copy = strdup(spec);
        if (!copy)
                return -ENOMEM;

        at = strchr(copy, '@');
        if (at && (at == copy || strchr(at + 1, '@') || copy[0] == '-'))
                return -EINVAL;
        if (at)
                *at = '\0';
        host = at ? at + 1 : copy;
        if (split_port(host, &name, &port) < 0 || !*name || name[0] == '-' ||
            strpbrk(name, "[]") || (port && parse_port(port) < 0))
                return -EINVAL;

        h.user = at ? strdup(copy) : NULL;
        h.name = strdup(name);
        h.port = port ? strdup(port) : NULL;
        if ((at && !h.user) || !h.name || (port && !h.port)) {
                remote_host_clear(&h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

void remote_host_clear(struct remote_host *h)
{
        free(h->user);
        free(h->name);
        free(h->port);
        *h = (struct remote_host) {};
}

char *shell_quote(const char *s)
{
        size_t n = 2;
        char *q, *p;

        for (const char *c = s; *c; c++)
                n += *c == '\'' ? 4 : 1;
        q = malloc(n + 1);
        if (!q)
                return NULL;
        p = q;
        *p++ = '\'';
        for (; *s; s++) {
                if (*s == '\'') {
                        memcpy(p, "'\\''", 4);
                        p += 4;
                } else
                        *p++ = *s;
        }
        *p++ = '\'';
        *p = '\0';
        return q;
}

/* A blank and the quoted word. */
static int put_word(FILE *f, const char *word)
{
        _cleanup_free_ char *q = shell_quote(word);

        if (!q)
                return -ENOMEM;
        return fprintf(f, " %s", q) < 0 ? -ENOMEM : 0;
}

char *remote_command(const char *origin, char *const remote[], char *const args[])
{
        _cleanup_free_ char *assignment = NULL;
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        int r = 0;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fputs("env", f);
        if (origin) {
                if (asprintf(&assignment, "KILLSWITCH_ORIGIN=%s", origin) < 0)
                        r = -ENOMEM;
                else
                        r = put_word(f, assignment);
        }
        for (char *const *w = remote; r == 0 && w && *w; w++)
                r = put_word(f, *w);
        for (char *const *w = args; r == 0 && w && *w; w++)
                r = put_word(f, *w);
        if (fclose(f) != 0 || r < 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

int ssh_command(char *const ssh[], char *const options[], unsigned connect_timeout_sec,
                const struct remote_host *h, const char *command, char ***ret_argv)
{
        _cleanup_strv_ char **argv = NULL;
        char timeout[64];
        int r = 0;

        snprintf(timeout, sizeof(timeout), "ConnectTimeout=%u", connect_timeout_sec);
        for (char *const *w = ssh; r == 0 && w && *w; w++)
                r = strv_push(&argv, *w);
        if (r == 0)
                r = strv_push(&argv, "-o") ?: strv_push(&argv, "BatchMode=yes");
        for (char *const *o = options; r == 0 && o && *o; o++)
                r = strv_push(&argv, "-o") ?: strv_push(&argv, *o);
        if (r == 0)
                r = strv_push(&argv, "-o") ?: strv_push(&argv, timeout) ?: strv_push(&argv, "-T");
        if (r == 0 && h->user)
                r = strv_push(&argv, "-l") ?: strv_push(&argv, h->user);
        if (r == 0 && h->port)
                r = strv_push(&argv, "-p") ?: strv_push(&argv, h->port);
        if (r == 0)
                r = strv_push(&argv, "--") ?: strv_push(&argv, h->name) ?: strv_push(&argv, command);
        if (r < 0)
                return r;
        *ret_argv = TAKE_PTR(argv);
        return 0;
}
