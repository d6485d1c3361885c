/* SPDX-License-Identifier: MIT */
/*
 * Test-only fault injection for killswitchd, loaded with LD_PRELOAD by
 * tests/e2e/test-robust.sh: while the file named by $KS_FAULT_FILE holds a
 * number N > 0, the next N sendmsg() calls on a NETLINK_NETFILTER socket (the
 * nf_tables batches; queries use sendto) fail with ENOBUFS, as when the kernel
 * cannot take the batch, and N is counted down in the file. Likewise
 * $KS_TIMER_FAULT_FILE for timerfd_settime() (EINVAL, as libfaketime causes
 * with times it shifted out of range): sd-event arms its timers with it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

static int fault_take(const char *env)
{
        const char *path = getenv(env);
        char buf[32] = "";
        int fd, n = 0;
        ssize_t len;

        if (!path || (fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
                return 0;
        len = pread(fd, buf, sizeof(buf) - 1, 0);
        if (len > 0 && sscanf(buf, "%d", &n) == 1 && n > 0) {
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
