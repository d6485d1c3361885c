/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "privs.h"

#define KEEP (1u << CAP_NET_ADMIN)

/* No libcap: the two system calls and their version 3 structures are all it takes. */
static int caps_get(struct __user_cap_data_struct data[2])
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };

        return syscall(SYS_capget, &h, data) < 0 ? -errno : 0;
}

static int caps_set(struct __user_cap_data_struct data[2])
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };

        return syscall(SYS_capset, &h, data) < 0 ? -errno : 0;
}

/* Every capability but CAP_NET_ADMIN out of the bounding set (needs CAP_SETPCAP, so first). */
static int bounding_drop(void)
{
        for (unsigned long cap = 0; cap < 64; cap++) {
                int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

                if (in < 0)
                        break;          /* EINVAL: past the last capability the kernel knows */
                if (in == 0 || cap == CAP_NET_ADMIN)
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                        return -errno;
        }
        return 0;
}

int privs_drop(void)
{
        struct __user_cap_data_struct data[2];
        int r;

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        r = bounding_drop();
        if (r < 0)
                return r;
        r = caps_get(data);
        if (r < 0)
                return r;
        /* Under the unit's sandbox there is nothing left to drop, and capset() is outside its filter. */
        if ((data[0].permitted & ~KEEP) == 0 && data[1].permitted == 0 && data[0].inheritable == 0 &&
            data[1].inheritable == 0 && data[0].effective == data[0].permitted && data[1].effective == 0)
                return 0;
        data[0].permitted &= KEEP;
        data[0].effective = data[0].permitted;
        data[0].inheritable = 0;
        data[1] = (struct __user_cap_data_struct){};
        return caps_set(data);
}
