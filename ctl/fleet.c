/* SPDX-License-Identifier: MIT */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* asprintf(), pipe2() */
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "alloc.h"
#include "client.h"
#include "fleet.h"
#include "remote.h"
#include "strv.h"
#include "timespec.h"
#include "timeutil.h"

extern char **environ;

/* The exit statuses of killswitchctl(1). */
enum {
        FLEET_EXIT_OK = 0,
        FLEET_EXIT_FAILED = 1,
        FLEET_EXIT_UNREACHABLE = 3,
        FLEET_EXIT_WAITING = 4,
};

#define SSH_EXIT_ERROR 255          /* ssh could not connect or log in, or lost the connection */
#define REMOTE_EXIT_UNREACHABLE 3   /* the remote killswitchctl could not reach its agent */
#define REMOTE_EXIT_WAITING 4       /* restore recorded there, waiting for a second person */
#define SHELL_EXIT_NOT_FOUND 127
#define STDERR_KEEP (64U * 1024U)   /* the tail of ssh's stderr kept for the error message */
#define READ_CHUNK 65536
#define REAP_POLL_MSEC 20
#define HOST_TIMEOUT_MAX_SEC 3600

struct buf {
        char *data;
        size_t len;
        bool overflow;
};

struct job {
        const char *host;     /* as given */
        pid_t pid;
        int fd[2];            /* ssh's stdout and stderr; -1 once closed */
        struct buf out[2];
        uint64_t deadline;
        int status;           /* from waitpid() */
        int error;            /* -errno if ssh could not be started */
        bool running, done, timed_out;
};

/* ---------------------------------------------------------------------------------------- */
/* Options */

static int add_host(struct fleet_options *o, const char *spec)
{
        struct remote_host h;
        int r;

        r = remote_host_parse(spec, &h);
        if (r < 0)
                return r;
        remote_host_clear(&h);
        if (strv_contains(o->hosts, spec))
                return 0;
        return strv_push(&o->hosts, spec);
}

static int add_host_list(struct fleet_options *o, const char *list, char *error, size_t size)
{
        _cleanup_free_ char *copy = strdup(list);
        char *p, *next;
        int r;

        if (!copy)
                return -ENOMEM;
        for (p = copy; p; p = next) {
                next = strchr(p, ',');
                if (next)
                        *next++ = '\0';
                r = add_host(o, p);
                if (r == -EINVAL)
                        snprintf(error, size, "invalid host '%s' in -H, expected [USER@]HOST[:PORT]", p);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* One host per line; blank lines and everything from a '#' on are ignored. */
static int read_hosts_file(struct fleet_options *o, const char *path, char *error, size_t size)
{
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t allocated = 0;
        unsigned n = 0, hosts = 0;
        char *s, *end;
        int r;

        f = strcmp(path, "-") == 0 ? fdopen(dup(STDIN_FILENO), "r") : fopen(path, "re");
        if (!f) {
                r = -errno;
                snprintf(error, size, "cannot read %s: %s", path, strerror(-r));
                return r;
        }
        while (getline(&line, &allocated, f) >= 0) {
                n++;
                line[strcspn(line, "#")] = '\0';
                s = line + strspn(line, " \t\r\n");
                end = s + strlen(s);
                while (end > s && strchr(" \t\r\n", end[-1]))
                        *--end = '\0';
                if (!*s)
                        continue;
                r = add_host(o, s);
                hosts++;
                if (r == -EINVAL)
                        snprintf(error, size, "%s:%u: invalid host '%s', expected [USER@]HOST[:PORT]", path, n, s);
                if (r < 0)
                        return r;
        }
        if (ferror(f)) {
                snprintf(error, size, "cannot read %s: %s", path, strerror(errno));
                return -EIO;
        }
        /* An empty file must not turn a fleet-wide command into a local one. */
        if (hosts == 0) {
                snprintf(error, size, "%s: no hosts", path);
                return -EINVAL;
        }
        return 0;
}

static int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret)
{
        unsigned long v;
        char *end;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end || s[0] == '-' || v < min || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/* --host-timeout: a duration as every other one ("45s", "2min", "90"), in whole seconds (rounded up). */
static int parse_host_timeout(const char *s, unsigned *ret)
{
        uint64_t usec;

        if (timespec_parse_duration(s, &usec) < 0 || usec < USEC_PER_SEC ||
            usec > (uint64_t) HOST_TIMEOUT_MAX_SEC * USEC_PER_SEC)
                return -EINVAL;
        *ret = (unsigned) ((usec + USEC_PER_SEC - 1) / USEC_PER_SEC);
        return 0;
}

int fleet_parse_option(struct fleet_options *o, int c, const char *value, char *error, size_t size)
{
        int r;

        switch (c) {
        case 'H':
                r = add_host_list(o, value, error, size);
                break;
        case FLEET_ARG_HOSTS_FILE:
                r = read_hosts_file(o, value, error, size);
                break;
        case FLEET_ARG_PARALLEL:
                r = parse_unsigned(value, 1, FLEET_PARALLEL_MAX, &o->parallel);
                if (r < 0)
                        snprintf(error, size, "--parallel needs a number from 1 to %d, not '%s'",
                                 FLEET_PARALLEL_MAX, value);
                break;
        case FLEET_ARG_HOST_TIMEOUT:
                r = parse_host_timeout(value, &o->timeout_sec);
                if (r < 0)
                        snprintf(error, size, "--host-timeout needs a duration from 1s to %ds (45s, 2min; a "
                                 "bare number is seconds), not '%s'", HOST_TIMEOUT_MAX_SEC, value);
                break;
        case FLEET_ARG_SSH_OPTION:
                r = *value && value[0] != '-' ? strv_push(&o->ssh_options, value) : -EINVAL;
                if (r == -EINVAL)
                        snprintf(error, size, "--ssh-option needs an ssh_config option such as "
                                 "'StrictHostKeyChecking=yes', not '%s'", value);
                break;
        default:
                return 0;
        }
        if (r == -ENOMEM)
                snprintf(error, size, "%s", strerror(ENOMEM));
        return r < 0 ? r : 1;
}

void fleet_options_clear(struct fleet_options *o)
{
        o->hosts = strv_free(o->hosts);
        o->ssh_options = strv_free(o->ssh_options);
}

void fleet_options_help(FILE *f)
{
        fprintf(f, "  -H --host HOST[,HOST...]  Run the verb on these hosts over ssh ([USER@]HOST[:PORT])\n"
                   "     --hosts-file FILE     ... and on those in FILE, one per line ('-': stdin)\n"
                   "     --parallel N          Ask at most N hosts at a time (default %d)\n"
                   "     --ssh-option OPTION   Pass '-o OPTION' to ssh\n"
                   "     --host-timeout TIME   Give up on a host after TIME (45s, 2min; default %ds)\n",
                FLEET_PARALLEL_DEFAULT, FLEET_TIMEOUT_DEFAULT_SEC);
}

/* ---------------------------------------------------------------------------------------- */
/* Running ssh */

/* $NAME split at blanks (no quoting), or fallback if unset or empty. */
static int words_from_env(const char *name, const char *fallback, char ***ret)
{
        const char *env = getenv(name);
        _cleanup_free_ char *copy = strdup(env && env[strspn(env, " \t")] ? env : fallback);
        _cleanup_strv_ char **words = NULL;
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                r = strv_push(&words, w);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(words);
        return 0;
}

/* "user@host" of whoever runs us, for the remote agents' audit. */
static char *origin_new(void)
{
        char host[HOST_NAME_MAX + 1] = "", uid[32];
        struct passwd *pw = getpwuid(getuid());
        char *s;

        snprintf(uid, sizeof(uid), "uid %u", (unsigned) getuid());
        if (gethostname(host, sizeof(host) - 1) < 0 || !*host)
                snprintf(host, sizeof(host), "localhost");
        if (asprintf(&s, "%s@%s", pw ? pw->pw_name : uid, host) < 0)
                return NULL;
        return s;
}

static void job_close(struct job *j)
{
        for (int i = 0; i < 2; i++)
                if (j->fd[i] >= 0) {
                        close(j->fd[i]);
                        j->fd[i] = -1;
                }
}

static int spawn(char *const argv[], int out, int err, pid_t *ret_pid)
{
        posix_spawn_file_actions_t fa;
        int r;

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, err, STDERR_FILENO);
        if (r == 0)
                r = posix_spawnp(ret_pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

static void close_pair(int p[2])
{
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0)
                        close(p[i]);
}

/* Start ssh for j; a failure is recorded in j, which is then done. */
static void job_start(struct job *j, char *const ssh[], const struct fleet_options *o, const char *command,
                      uint64_t timeout_usec)
{
        _cleanup_strv_ char **argv = NULL;
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        struct remote_host h;
        int r;

        j->fd[0] = j->fd[1] = -1;
        r = remote_host_parse(j->host, &h);
        if (r == 0) {
                r = ssh_command(ssh, o->ssh_options, FLEET_CONNECT_TIMEOUT_SEC, &h, command, &argv);
                remote_host_clear(&h);
        }
        if (r == 0 && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0))
                r = -errno;
        if (r == 0)
                r = spawn(argv, out[1], err[1], &j->pid);
        if (r < 0) {
                close_pair(out);
                close_pair(err);
                j->error = r;
                j->done = true;
                return;
        }
        close(out[1]);
        close(err[1]);
        j->fd[0] = out[0];
        j->fd[1] = err[0];
        j->deadline = now_monotonic_usec() + timeout_usec;
        j->running = true;
}

/* Append to b; beyond max, stdout is marked as overflowing and stderr keeps its tail. */
static void buf_append(struct buf *b, const char *data, size_t n, size_t max, bool keep_tail)
{
        char *p;

        if (b->overflow && !keep_tail)
                return;
        p = GREEDY_REALLOC(b->data, b->len + n + 1);
        if (!p) {
                b->overflow = true;
                return;
        }
        memcpy(b->data + b->len, data, n);
        b->len += n;
        if (b->len > max) {
                b->overflow = true;
                if (keep_tail) {
                        memmove(b->data, b->data + b->len - max, max);
                        b->len = max;
                }
        }
        b->data[b->len] = '\0';
}

static void job_read(struct job *j, int which)
{
        static char chunk[READ_CHUNK];
        ssize_t n;

        n = read(j->fd[which], chunk, sizeof(chunk));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                close(j->fd[which]);
                j->fd[which] = -1;
                return;
        }
        buf_append(&j->out[which], chunk, (size_t) n, which == 0 ? CLIENT_REPLY_MAX : STDERR_KEEP, which == 1);
}

/* Done once ssh has exited and closed its output; killed at the deadline. */
static void job_check(struct job *j, uint64_t now)
{
        if (!j->running)
                return;
        if (j->fd[0] < 0 && j->fd[1] < 0 && waitpid(j->pid, &j->status, WNOHANG) == j->pid) {
                j->running = false;
                j->done = true;
                return;
        }
        if (now < j->deadline)
                return;
        kill(j->pid, SIGKILL);
        job_close(j);
        while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR)
                ;
        j->timed_out = true;
        j->running = false;
        j->done = true;
}

/* Wait for output from the running jobs, or for the nearest deadline. */
static void jobs_wait(struct job *jobs, size_t n, size_t running)
{
        struct pollfd *pfd = calloc(2 * running + 1, sizeof(*pfd));
        struct job **owner = calloc(2 * running + 1, sizeof(*owner));
        uint64_t now = now_monotonic_usec(), wait_usec = UINT64_MAX, left;
        size_t k = 0;
        int timeout, r;

        for (size_t i = 0; i < n; i++) {
                if (!jobs[i].running)
                        continue;
                left = jobs[i].deadline > now ? jobs[i].deadline - now : 0;
                if (jobs[i].fd[0] < 0 && jobs[i].fd[1] < 0 && left > REAP_POLL_MSEC * 1000ULL)
                        left = REAP_POLL_MSEC * 1000ULL;   /* its output is closed: it is exiting */
                if (left < wait_usec)
                        wait_usec = left;
                for (int w = 0; w < 2 && pfd && owner; w++)
                        if (jobs[i].fd[w] >= 0) {
                                pfd[k] = (struct pollfd) { .fd = jobs[i].fd[w], .events = POLLIN };
                                owner[k++] = &jobs[i];
                        }
        }
        if (!pfd || !owner) {
                /* Out of memory: still make progress, slowly. */
                k = 0;
                wait_usec = REAP_POLL_MSEC * 1000ULL;
        }
        timeout = wait_usec == UINT64_MAX ? -1 : (int) ((wait_usec + 999) / 1000);
        r = poll(pfd, k, timeout);
        for (size_t i = 0; r > 0 && i < k; i++)
                if (pfd[i].revents)
                        job_read(owner[i], pfd[i].fd == owner[i]->fd[0] ? 0 : 1);
        free(pfd);
        free(owner);
}

/* Run every job, at most parallel at a time. */
static void jobs_run(struct job *jobs, size_t n, char *const ssh[], const struct fleet_options *o,
                     const char *command)
{
        unsigned parallel = o->parallel ?: FLEET_PARALLEL_DEFAULT;
        uint64_t timeout_usec = (uint64_t) (o->timeout_sec ?: FLEET_TIMEOUT_DEFAULT_SEC) * 1000000ULL;
        size_t next = 0, running = 0, done = 0;
        uint64_t now;

        while (done < n) {
                while (running < parallel && next < n) {
                        job_start(&jobs[next], ssh, o, command, timeout_usec);
                        if (jobs[next++].running)
                                running++;
                        else
                                done++;
                }
                if (running == 0)
                        continue;
                jobs_wait(jobs, n, running);
                now = now_monotonic_usec();
                for (size_t i = 0; i < next; i++) {
                        if (!jobs[i].running)
                                continue;
                        job_check(&jobs[i], now);
                        if (jobs[i].done) {
                                running--;
                                done++;
                        }
                }
        }
}

/* ---------------------------------------------------------------------------------------- */
/* Results */

/* A JSON string of s, with every byte that is not ASCII as '?' if s is not UTF-8; null for NULL. */
static json_t *json_text(const char *s)
{
        _cleanup_free_ char *copy = NULL;
        json_t *v;

        if (!s)
                return json_null();
        v = json_string(s);
        if (v)
                return v;
        copy = strdup(s);
        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if ((unsigned char) *p >= 0x80)
                        *p = '?';
        return json_string(copy);
}

/* The last line of what ssh or the remote killswitchctl said, without "killswitchctl: ". */
static char *last_line(const struct buf *b)
{
        const char *start, *end;

        if (!b->data)
                return NULL;
        end = b->data + b->len;
        while (end > b->data && strchr(" \t\r\n", end[-1]))
                end--;
        start = end;
        while (start > b->data && start[-1] != '\n')
                start--;
        if (start == end)
                return NULL;
        if ((size_t) (end - start) > strlen("killswitchctl: ") &&
            strncmp(start, "killswitchctl: ", strlen("killswitchctl: ")) == 0)
                start += strlen("killswitchctl: ");
        return strndup(start, (size_t) (end - start));
}

static char *job_error(const struct job *j, const char *ssh, json_t *reply, unsigned timeout_sec)
{
        _cleanup_free_ char *line = last_line(&j->out[1]);
        int code = WIFEXITED(j->status) ? WEXITSTATUS(j->status) : -1;
        char *s = NULL;
        int r;

        if (j->error)
                r = asprintf(&s, "cannot run %s: %s", ssh, strerror(-j->error));
        else if (j->timed_out)
                r = asprintf(&s, "no reply within %us, gave up (a change may or may not have been made)",
                             timeout_sec);
        else if (WIFSIGNALED(j->status))
                r = asprintf(&s, "%s was killed by signal %d", ssh, WTERMSIG(j->status));
        else if (code == 0 && j->out[0].overflow)
                r = asprintf(&s, "the reply is larger than %u bytes", CLIENT_REPLY_MAX);
        else if (code == 0 && !reply)
                r = asprintf(&s, "the remote killswitchctl printed no JSON%s%s", line ? ": " : "", line ?: "");
        else if (code == SHELL_EXIT_NOT_FOUND)
                r = asprintf(&s, "%s (is killswitchctl installed there? see KILLSWITCHCTL_REMOTE)",
                             line ?: "command not found");
        else if (line)
                return TAKE_PTR(line);
        else
                r = asprintf(&s, "exit status %d", code);
        return r < 0 ? NULL : s;
}

static const char *reply_string(json_t *reply, const char *key)
{
        return json_is_object(reply) ? json_string_value(json_object_get(reply, key)) : NULL;
}

/* {host, ok, exit_code, unreachable, waiting, state, since, policy, error, reply} */
static json_t *job_result(const struct job *j, const char *ssh, unsigned timeout_sec)
{
        bool exited = !j->error && !j->timed_out && WIFEXITED(j->status);
        int code = exited ? WEXITSTATUS(j->status) : -1;
        _cleanup_json_ json_t *reply = NULL;
        _cleanup_free_ char *error = NULL;
        bool ok, unreachable, waiting;

        if (exited && j->out[0].data && !j->out[0].overflow)
                reply = json_loadb(j->out[0].data, j->out[0].len, JSON_REJECT_DUPLICATES, NULL);
        ok = exited && code == 0 && reply;
        unreachable = !ok && (j->error || (exited && (code == SSH_EXIT_ERROR || code == REMOTE_EXIT_UNREACHABLE)));
        waiting = exited && code == REMOTE_EXIT_WAITING;
        if (!ok) {
                error = job_error(j, ssh, reply, timeout_sec);
                if (!error)
                        return NULL;
        }
        return json_pack("{s:o, s:b, s:o, s:b, s:b, s:o, s:o, s:o, s:o, s:O}",
                         "host", json_text(j->host),
                         "ok", ok,
                         "exit_code", exited ? json_integer(code) : json_null(),
                         "unreachable", unreachable,
                         "waiting", waiting,
                         "state", json_text(reply_string(reply, "state")),
                         "since", json_text(reply_string(reply, "since")),
                         "policy", json_text(reply_string(reply, "policy")),
                         "error", json_text(error),
                         "reply", reply ?: json_null());
}

/* ---------------------------------------------------------------------------------------- */
/* Output */

/* "3 hosts: 1 ok, 2 failed." — waiting hosts named only when there are any. */
static void print_summary(FILE *f, size_t n, size_t n_ok, size_t n_waiting)
{
        fprintf(f, "\n%zu %s: %zu ok, ", n, n == 1 ? "host" : "hosts", n_ok);
        if (n_waiting > 0)
                fprintf(f, "%zu waiting for a second person, ", n_waiting);
        fprintf(f, "%zu failed.\n", n - n_ok - n_waiting);
}

static int print_table(FILE *f, json_t *results, bool legend)
{
        static const char *const headers[] = { "HOST", "RESULT", "STATE", "POLICY", "SINCE", "ERROR" };
        size_t n = json_array_size(results), n_ok = 0, n_waiting = 0, i;
        char (*since)[FORMAT_TIMESTAMP_MAX] = calloc(n + 1, sizeof(*since));
        struct table *t = table_new(ELEMENTSOF(headers), headers);
        json_t *e;
        int r = since && t ? 0 : -ENOMEM;

        json_array_foreach(results, i, e) {
                bool ok = json_is_true(json_object_get(e, "ok"));
                bool waiting = json_is_true(json_object_get(e, "waiting"));
                const char *cells[ELEMENTSOF(headers)];

                if (r < 0)
                        break;
                n_ok += ok;
                n_waiting += waiting;
                timespec_format_local(json_string_value(json_object_get(e, "since")), since[i], sizeof(since[i]));
                cells[0] = json_string_value(json_object_get(e, "host"));
                cells[1] = ok ? "ok" : waiting ? "waiting" : "failed";
                cells[2] = json_string_value(json_object_get(e, "state"));
                cells[3] = json_string_value(json_object_get(e, "policy"));
                cells[4] = since[i];
                cells[5] = json_string_value(json_object_get(e, "error"));
                r = table_add_row(t, cells);
        }
        if (r == 0) {
                table_print(t, f, legend);
                if (legend)
                        print_summary(f, n, n_ok, n_waiting);
        }
        table_free(t);
        free(since);
        return r;
}

/*
 * 0: every host succeeded; 4: the others are waiting for a second person
 * (restore with four eyes), nothing failed; 3: no host reached; else 1.
 */
static int exit_status(json_t *results)
{
        size_t i, failed = 0, unreachable = 0, waiting = 0;
        json_t *e;

        json_array_foreach(results, i, e) {
                if (json_is_true(json_object_get(e, "ok")))
                        continue;
                failed++;
                unreachable += json_is_true(json_object_get(e, "unreachable"));
                waiting += json_is_true(json_object_get(e, "waiting"));
        }
        if (failed == 0)
                return FLEET_EXIT_OK;
        if (waiting == failed)
                return FLEET_EXIT_WAITING;
        return unreachable == json_array_size(results) ? FLEET_EXIT_UNREACHABLE : FLEET_EXIT_FAILED;
}

static void jobs_free(struct job *jobs, size_t n)
{
        for (size_t i = 0; jobs && i < n; i++) {
                job_close(&jobs[i]);
                free(jobs[i].out[0].data);
                free(jobs[i].out[1].data);
        }
        free(jobs);
}

int fleet_main(const struct fleet_options *o, char *const args[], enum json_mode json,
               const struct output_flags *flags)
{
        _cleanup_strv_ char **ssh = NULL, **remote = NULL;
        _cleanup_free_ char *origin = NULL, *command = NULL;
        _cleanup_json_ json_t *results = json_array();
        size_t n = strv_length(o->hosts);
        struct job *jobs = NULL;
        int r;

        r = words_from_env("KILLSWITCH_SSH", "ssh", &ssh);
        if (r == 0)
                r = words_from_env("KILLSWITCHCTL_REMOTE", "killswitchctl", &remote);
        origin = origin_new();
        if (r == 0 && origin)
                command = remote_command(origin, remote, args);
        jobs = command && results ? calloc(n, sizeof(*jobs)) : NULL;
        if (!jobs) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(ENOMEM));
                return FLEET_EXIT_FAILED;
        }
        for (size_t i = 0; i < n; i++)
                jobs[i] = (struct job) { .host = o->hosts[i], .fd = { -1, -1 } };

        jobs_run(jobs, n, ssh, o, command);

        for (size_t i = 0; i < n && r == 0; i++)
                if (json_array_append_new(results, job_result(&jobs[i], ssh[0],
                                                              o->timeout_sec ?: FLEET_TIMEOUT_DEFAULT_SEC)) < 0)
                        r = -ENOMEM;
        jobs_free(jobs, n);
        if (r == 0 && json != JSON_OFF)
                output_json(stdout, results, json);
        else if (r == 0)
                r = print_table(stdout, results, flags->legend);
        if (r < 0) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(-r));
                return FLEET_EXIT_FAILED;
        }
        return exit_status(results);
}
