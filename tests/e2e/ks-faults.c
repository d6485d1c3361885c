/* SPDX-License-Identifier: MIT */
/*
 * Test-only fault injection for killswitchd, loaded with LD_PRELOAD by
 * tests/e2e/test-robust.sh: while the file named by $KS_FAULT_FILE holds a
 * number N > 0, the next N sendmsg() calls on a NETLINK_NETFILTER socket (the
 * nf_tables batches; queries use sendto) fail with ENOBUFS, as when the kernel
 * cannot take the batch, and N is counted down in the file. Likewise
 * $KS_TIMER_FAULT_FILE for timerfd_settime() (EINVAL, as libfaketime causes
 * with times it shifted out of range): sd-event arms its timers with it.
 * And while $KS_SLOW_READ_FILE holds a number M > 0, every sendto() on a
 * NETLINK_NETFILTER socket from a thread other than the main one (the
 * queries of the agent's reading threads: the drop sensor's, the read-backs)
 * waits M milliseconds first: a slow read, on demand. And while
 * $KS_MUTE_HOLD_FILE holds a number H > 0, each time a netfilter socket
 * leaves a multicast group (the tamper monitor, muted for one of the agent's
 * big transactions: nft_set_quiet) the caller waits H milliseconds after it,
 * with "$KS_MUTE_HOLD_FILE.held" holding how many such waits have begun: a
 * window, on demand, for a foreign change that the monitor does not hear.
 * And while $KS_SLOW_SYNC_FILE holds a number S > 0, every fdatasync() of a
 * file named state.json waits S milliseconds first: a slow disk, on demand.
 * And while $KS_SLOW_FSYNC_FILE holds a number S > 0, every fsync() of a file
 * named $KS_SLOW_FSYNC_NAME does the same. And while $KS_SLOW_OPEN_FILE holds
 * a number O > 0, every open() of a path whose last component is
 * $KS_SLOW_OPEN_NAME (a policy file: the agent reads them with open and read)
 * waits O milliseconds first: a slow file system, or a slow parse. And while
 * $KS_SLOW_NTOP_FILE holds a number U > 0, every inet_ntop() waits U
 * microseconds first: printing a policy's addresses (killswitchctl show) made
 * as slow as needed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* The file named by $env, open, or -1. */
static int env_open(const char *env, int flags)
{
        const char *path = getenv(env);

        return path ? open(path, flags | O_CLOEXEC) : -1;
}

/* The number the file at fd starts with, or 0. */
static int read_number(int fd)
{
        char buf[32] = "";
        int n = 0;

        if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0 || sscanf(buf, "%d", &n) != 1)
                return 0;
        return n;
}

static int fault_take(const char *env)
{
        int fd = env_open(env, O_RDWR), n, len;
        char buf[32];

        if (fd < 0)
                return 0;
        n = read_number(fd);
        if (n > 0) {
                len = snprintf(buf, sizeof(buf), "%d\n", n - 1);
                if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) < 0)
                        n = 0;
        }
        close(fd);
        return n > 0;
}

static int is_nfnetlink(int fd)
{
        int domain = 0, proto = -1;
        socklen_t len = sizeof(domain);

        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_NETLINK)
                return 0;
        len = sizeof(proto);
        return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == NETLINK_NETFILTER;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
        static ssize_t (*real)(int, const struct msghdr *, int);

        if (!real)
                real = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
        if (is_nfnetlink(fd) && fault_take("KS_FAULT_FILE")) {
                errno = ENOBUFS;
                return -1;
        }
        return real(fd, msg, flags);
}

/* The number in $env's file, or 0. */
static int fault_value(const char *env)
{
        int fd = env_open(env, O_RDONLY), n;

        if (fd < 0)
                return 0;
        n = read_number(fd);
        close(fd);
        return n;
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
        static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
        int ms;

        if (!real)
                real = (ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))dlsym(
                        RTLD_NEXT, "sendto");
        if (getenv("KS_SLOW_READ_FILE") && syscall(SYS_gettid) != getpid() && is_nfnetlink(fd) &&
            (ms = fault_value("KS_SLOW_READ_FILE")) > 0) {
                struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

                nanosleep(&ts, NULL);
        }
        return real(fd, buf, len, flags, to, tolen);
}

/* "$env.held" holds n. */
static void mark_held(const char *env, int n)
{
        char path[4096], buf[32];
        int fd, len;

        if (snprintf(path, sizeof(path), "%s.held", getenv(env)) >= (int)sizeof(path))
                return;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        len = snprintf(buf, sizeof(buf), "%d\n", n);
        if (write(fd, buf, (size_t)len) != len)
                unlink(path);   /* the test then sees no window and fails */
        close(fd);
}

int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
        static int (*real)(int, int, int, const void *, socklen_t);
        static int held;
        int r, ms;

        if (!real)
                real = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
        r = real(fd, level, name, value, len);
        if (r == 0 && level == SOL_NETLINK && name == NETLINK_DROP_MEMBERSHIP && getenv("KS_MUTE_HOLD_FILE") &&
            is_nfnetlink(fd) && (ms = fault_value("KS_MUTE_HOLD_FILE")) > 0) {
                struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

                mark_held("KS_MUTE_HOLD_FILE", ++held);
                nanosleep(&ts, NULL);
        }
        return r;
}

int timerfd_settime(int fd, int flags, const struct itimerspec *new_value, struct itimerspec *old_value)
{
        static int (*real)(int, int, const struct itimerspec *, struct itimerspec *);

        if (!real)
                real = (int (*)(int, int, const struct itimerspec *, struct itimerspec *))dlsym(RTLD_NEXT,
                                                                                            "timerfd_settime");
        if (fault_take("KS_TIMER_FAULT_FILE")) {
                errno = EINVAL;
                return -1;
        }
        return real(fd, flags, new_value, old_value);
}

/* Does fd name a file called `name`? */
static int fd_named(int fd, const char *name)
{
        char link[64], path[4096];
        ssize_t n;
        const char *base;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof(path) - 1);
        if (n <= 0)
                return 0;
        path[n] = '\0';
        base = strrchr(path, '/');
        return strcmp(base ? base + 1 : path, name) == 0;
}

/* Wait the milliseconds $env holds if fd names a file called `name`. */
static void slow_sync(int fd, const char *name, const char *env)
{
        int ms;

        if (name && getenv(env) && fd_named(fd, name) && (ms = fault_value(env)) > 0) {
                struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

                nanosleep(&ts, NULL);
        }
}

int fdatasync(int fd)
{
        static int (*real)(int);

        if (!real)
                real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
        slow_sync(fd, "state.json", "KS_SLOW_SYNC_FILE");
        return real(fd);
}

int fsync(int fd)
{
        static int (*real)(int);

        if (!real)
                real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
        slow_sync(fd, getenv("KS_SLOW_FSYNC_NAME"), "KS_SLOW_FSYNC_FILE");
        return real(fd);
}

/* The agent's open() (64-bit file offsets: open64). */
int open64(const char *path, int flags, ...)
{
        static int (*real)(const char *, int, ...);
        const char *name = getenv("KS_SLOW_OPEN_NAME"), *base = strrchr(path, '/');
        mode_t mode = 0;
        int ms;

        if (!real)
                real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
        if (flags & (O_CREAT | O_TMPFILE)) {
                va_list ap;

                va_start(ap, flags);
                mode = va_arg(ap, mode_t);
                va_end(ap);
        }
        if (name && strcmp(base ? base + 1 : path, name) == 0 && (ms = fault_value("KS_SLOW_OPEN_FILE")) > 0) {
                struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

                nanosleep(&ts, NULL);
        }
        return real(path, flags, mode);
}

/* Addresses as text: what compiling a policy's ruleset text does once per address. */
const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
{
        static const char *(*real)(int, const void *, char *, socklen_t);
        int us;

        if (!real)
                real = (const char *(*)(int, const void *, char *, socklen_t))dlsym(RTLD_NEXT, "inet_ntop");
        if (getenv("KS_SLOW_NTOP_FILE") && (us = fault_value("KS_SLOW_NTOP_FILE")) > 0)
                nanosleep(&(struct timespec){ .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000L }, NULL);
        return real(af, src, dst, size);
}
