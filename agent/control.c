/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "cleanup.h"
#include "control.h"
#include "error.h"
#include "log.h"

struct conn {
        struct ks_control *ctl;
        struct conn *next, *prev;
        int fd;
        sd_event_source *io, *timer;
        struct ks_peer peer;
        char *in;               /* bytes of the request being read */
        size_t in_len;
        char *out;              /* replies not yet written */
        size_t out_len, out_off;
        bool closing;           /* write what is pending, then close */
};

struct ks_control {
        sd_event *event;
        sd_event_source *listen_io;
        int listen_fd;
        char *path;             /* NULL when the socket came from systemd */
        control_handler_t handler;
        void *userdata;
        struct conn *conns;
        size_t n_conns;
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
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        close(c->fd);
        free(c->peer.groups);
        free(c->in);
        free(c->out);
        free(c);
}

static int conn_queue(struct conn *c, json_t *reply)
{
        _cleanup_free_ char *text = NULL;
        size_t len;
        char *out;

        if (!reply)
                text = strdup("{\"error\":\"" KS_ERR_INTERNAL "\",\"parameters\":{\"message\":\"Out of memory\"}}");
        else
                text = json_dumps(reply, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        len = strlen(text) + 1;         /* with the NUL that ends a Varlink message */
        if (c->out_len - c->out_off + len > CONTROL_MAX_REPLY)
                return -ENOBUFS;
        out = realloc(c->out, c->out_len + len);
        if (!out)
                return -ENOMEM;
        memcpy(out + c->out_len, text, len);
        c->out = out;
        c->out_len += len;
        return 0;
}

/* Decode one request, call the handler, queue the reply (unless oneway). */
static int conn_dispatch(struct conn *c, const char *buf, size_t len)
{
        _cleanup_(json_decrefp) json_t *req = NULL, *reply = NULL;
        json_t *method, *params;
        json_error_t jerr;

        req = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        method = json_object_get(req, "method");
        params = json_object_get(req, "parameters");
        if (!json_is_object(req) || !json_is_string(method) || (params && !json_is_object(params))) {
                c->closing = true;
                reply = reply_error(KS_ERR_PROTOCOL, NULL,
                                    "Malformed request: expected a JSON object with a string \"method\" and "
                                    "an object \"parameters\"%s%s", req ? "" : ": ", req ? "" : jerr.text);
                return conn_queue(c, reply);
        }
        if (!params) {
                json_object_set_new(req, "parameters", json_object());
                params = json_object_get(req, "parameters");
        }
        reply = c->ctl->handler(c->ctl->userdata, &c->peer, json_string_value(method), params);
        if (json_is_true(json_object_get(req, "oneway")))
                return 0;
        return conn_queue(c, reply);
}

/* Handle every complete (NUL-terminated) request in the input buffer. */
static int conn_process_input(struct conn *c)
{
        size_t start = 0;
        char *nul;

        while (!c->closing && (nul = memchr(c->in + start, '\0', c->in_len - start))) {
                int r = conn_dispatch(c, c->in + start, (size_t)(nul - (c->in + start)));

                if (r < 0)
                        return r;
                start = (size_t)(nul - c->in) + 1;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if (c->in_len > CONTROL_MAX_REQUEST && !c->closing) {
                c->closing = true;
                return conn_queue(c, reply_error(KS_ERR_PROTOCOL, NULL,
                                                 "Request too large: more than %d bytes without a NUL "
                                                 "terminator", CONTROL_MAX_REQUEST));
        }
        return 0;
}

/* Read what is there; returns 0 at EOF, 1 if more may come, negative errno on error. */
static int conn_read(struct conn *c)
{
        for (;;) {
                ssize_t n;

                if (!c->in) {
                        c->in = malloc(CONTROL_MAX_REQUEST + 2);
                        if (!c->in)
                                return -ENOMEM;
                }
                n = read(c->fd, c->in + c->in_len, CONTROL_MAX_REQUEST + 1 - c->in_len);
                if (n < 0)
                        return errno == EAGAIN ? 1 : errno == EINTR ? 1 : -errno;
                if (n == 0)
                        return 0;
                c->in_len += (size_t)n;
                if (conn_process_input(c) < 0)
                        return -EIO;
                if (c->closing || c->out_len > c->out_off)
                        return 1;
        }
}

static int conn_write(struct conn *c)
{
        while (c->out_off < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                c->out_off += (size_t)n;
        }
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_off = 0;
        return 0;
}

/* Wait for input only when no reply is pending (back-pressure); arm the matching timeout. */
static int conn_rearm(struct conn *c)
{
        bool pending_out = c->out_len > c->out_off;
        uint32_t events = pending_out ? EPOLLOUT : c->closing ? 0 : EPOLLIN;

        if (c->closing && !pending_out)
                return -ECONNRESET;
        if (sd_event_source_set_io_events(c->io, events) < 0)
                return -EIO;
        return sd_event_source_set_time_relative(c->timer, c->in_len > 0 ? CONTROL_REQUEST_USEC
                                                                          : CONTROL_IDLE_USEC);
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct conn *c = userdata;
        int r = 1;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                r = conn_read(c);
                if (r == 0 && c->out_len == c->out_off)
                        goto out_close;
                if (r == 0)
                        c->closing = true;
        }
        if (r < 0 || conn_write(c) < 0 || conn_rearm(c) < 0)
                goto out_close;
        return 0;
out_close:
        conn_free(c);
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
                r = sd_event_add_io(ctl->event, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(ctl->event, &c->timer, CLOCK_MONOTONIC, CONTROL_IDLE_USEC, 0,
                                               on_conn_timeout, c);
        if (r < 0)
                conn_free(c);
        return r;
}

static int on_listen_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_control *ctl = userdata;

        for (;;) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_warning_errno(-errno, "Failed to accept a control connection: %m");
                        return 0;
                }
                if (ctl->n_conns >= CONTROL_MAX_CONNS) {
                        log_warning("Too many control connections (%d), refusing a new one", CONTROL_MAX_CONNS);
                        close(cfd);
                        continue;
                }
                if (conn_new(ctl, cfd) < 0)
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

static int mkdir_parent(const char *path)
{
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Another agent answering on this path? Then do not steal its socket. */
static bool socket_in_use(const struct sockaddr_un *sa)
{
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        return fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
}

static int listen_fd_bind(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        r = mkdir_parent(path);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (socket_in_use(&sa))
                return -EADDRINUSE;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        /* Anyone may connect; each method checks the caller's credentials. */
        if (chmod(path, 0666) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int control_new(sd_event *event, const char *path, control_handler_t handler, void *userdata,
                struct ks_control **ret)
{
        struct ks_control *ctl;
        int fd, r;

        ctl = calloc(1, sizeof(*ctl));
        if (!ctl)
                return -ENOMEM;
        *ctl = (struct ks_control){ .event = event, .handler = handler, .userdata = userdata, .listen_fd = -1 };
        fd = listen_fd_activated();
        if (fd == -ENOENT) {
                fd = listen_fd_bind(path);
                ctl->path = fd >= 0 ? strdup(path) : NULL;
                if (fd >= 0 && !ctl->path)
                        fd = -ENOMEM;
        } else if (fd >= 0) {
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        ctl->listen_fd = fd;
        r = fd < 0 ? fd : sd_event_add_io(event, &ctl->listen_io, fd, EPOLLIN, on_listen_io, ctl);
        if (r < 0) {
                control_free(ctl);
                return r;
        }
        *ret = ctl;
        return 0;
}

struct ks_control *control_free(struct ks_control *ctl)
{
        if (!ctl)
                return NULL;
        while (ctl->conns)
                conn_free(ctl->conns);
        sd_event_source_disable_unref(ctl->listen_io);
        if (ctl->listen_fd >= 0)
                close(ctl->listen_fd);
        if (ctl->path)
                unlink(ctl->path);
        free(ctl->path);
        free(ctl);
        return NULL;
}
