/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "client.h"
#include "timeutil.h"

uint64_t client_deadline(uint64_t timeout_usec)
{
        return now_monotonic_usec() + timeout_usec;
}

static uint64_t usec_left(uint64_t deadline)
{
        uint64_t now = now_monotonic_usec();

        return deadline > now ? deadline - now : 0;
}

/* Wait until fd is ready for events; POLLHUP and POLLERR are left to the next recv()/send(). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
        struct pollfd pfd = { .fd = fd, .events = events };
        uint64_t left;
        int r;

        for (;;) {
                left = usec_left(deadline);
                if (left == 0)
                        return -ETIMEDOUT;
                r = poll(&pfd, 1, (int) ((left + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                return (pfd.revents & POLLNVAL) ? -EBADF : 0;
        }
}

/*
 * A blocking connect() on a Unix socket waits while the listener's queue is
 * full, for as long as SO_SNDTIMEO allows; it then fails with EAGAIN.
 */
int client_connect(const char *path, uint64_t deadline)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        size_t len = strlen(path);
        uint64_t left = usec_left(deadline);
        struct timeval tv = {
                .tv_sec = (time_t) (left / USEC_PER_SEC),
                .tv_usec = (suseconds_t) (left % USEC_PER_SEC),
        };

        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        if (left == 0)
                return -ETIMEDOUT;
        memcpy(sa.sun_path, path, len);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0)
                return errno == EAGAIN ? -ETIMEDOUT : -errno;

        return TAKE_FD(fd);
}

static int send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
        ssize_t n;
        int r;

        while (len > 0) {
                n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        r = wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return -errno;
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

static int send_call(int fd, const char *method, json_t *parameters, uint64_t deadline)
{
        _cleanup_json_ json_t *call = NULL;
        _cleanup_free_ char *text = NULL;

        if (parameters)
                call = json_pack("{s:s, s:O}", "method", method, "parameters", parameters);
        else
                call = json_pack("{s:s, s:{}}", "method", method, "parameters");
        if (!call)
                return -ENOMEM;
        text = json_dumps(call, JSON_COMPACT);
        if (!text)
                return -ENOMEM;

        /* The NUL that ends the string is the message terminator. */
        return send_all(fd, text, strlen(text) + 1, deadline);
}

static int grow(char **buf, size_t *size)
{
        size_t n = *size ? *size * 2 : 4096;
        char *p;

        if (n > CLIENT_REPLY_MAX + 1)
                n = CLIENT_REPLY_MAX + 1;
        p = realloc(*buf, n);
        if (!p)
                return -ENOMEM;
        *buf = p;
        *size = n;
        return 0;
}

/* Read up to the first NUL; a reply to our single call is all we expect. */
static int recv_reply(int fd, uint64_t deadline, char **ret_buf, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, len = 0;
        char *nul;
        ssize_t n;
        int r;

        for (;;) {
                if (len == size) {
                        r = grow(&buf, &size);
                        if (r < 0)
                                return r;
                }
                n = recv(fd, buf + len, size - len, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        r = wait_fd(fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;

                nul = memchr(buf + len, 0, (size_t) n);
                if (nul) {
                        *ret_len = (size_t) (nul - buf);
                        *ret_buf = TAKE_PTR(buf);
                        return 0;
                }
                len += (size_t) n;
                if (len > CLIENT_REPLY_MAX)
                        return -EMSGSIZE;
        }
}

static int parse_reply(const char *buf, size_t len, json_t **ret_reply)
{
        _cleanup_json_ json_t *reply = NULL;
        json_t *error, *parameters;

        reply = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(reply))
                return -EBADMSG;
        error = json_object_get(reply, "error");
        if (error && !json_is_string(error))
                return -EBADMSG;
        parameters = json_object_get(reply, "parameters");
        if (parameters && !json_is_object(parameters))
                return -EBADMSG;
        if (!parameters && json_object_set_new(reply, "parameters", json_object()) < 0)
                return -ENOMEM;

        *ret_reply = TAKE_PTR(reply);
        return 0;
}

int client_call(int fd, const char *method, json_t *parameters, uint64_t deadline, json_t **ret_reply)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        r = send_call(fd, method, parameters, deadline);
        if (r < 0)
                return r;
        r = recv_reply(fd, deadline, &buf, &len);
        if (r < 0)
                return r;
        return parse_reply(buf, len, ret_reply);
}

const char *reply_error(json_t *reply)
{
        return json_string_value(json_object_get(reply, "error"));
}

json_t *reply_parameters(json_t *reply)
{
        return json_object_get(reply, "parameters");
}
