/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "lastgood.h"
#include "timeutil.h"

#define SUFFIX ".policy"

/* The copy's bytes are text already? Read and compared, without a digest: one read of what was written. */
static bool copy_holds(const char *path, const char *text)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        size_t len = strlen(text), off = 0;
        char buf[65536];
        struct stat st;
        ssize_t n;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) ||
            st.st_size != (off_t)len)
                return false;
        while (off < len) {
                n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || (size_t)n > len - off || memcmp(buf, text + off, (size_t)n) != 0)
                        return false;
                off += (size_t)n;
        }
        return true;
}

/* dir, root's only: created if missing, its mode put right if it is not (an admin's mkdir). */
static int ensure_dir(const char *dir)
{
        struct stat st;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (lstat(dir, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0)
                return -errno;
        return 0;
}

int lastgood_save(const char *dir, const char *name, const char *text)
{
        _cleanup_free_ char *file = NULL, *path = NULL;
        int r;

        if (asprintf(&file, "%s" SUFFIX, name) < 0 || asprintf(&path, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        if (copy_holds(path, text))
                return 0;
        r = ensure_dir(dir);
        if (r < 0)
                return r;
        return write_file_atomic(dir, file, text, 0600);
}

int lastgood_remove(const char *dir, const char *name)
{
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s" SUFFIX, dir, name) < 0)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

int lastgood_prune(const char *dir, bool (*has)(const char *name, void *userdata), void *userdata)
{
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        int r = 0;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                _cleanup_free_ char *name = NULL;

                if (len <= strlen(SUFFIX) || strcmp(de->d_name + len - strlen(SUFFIX), SUFFIX) != 0)
                        continue;
                name = strndup(de->d_name, len - strlen(SUFFIX));
                if (!name)
                        return -ENOMEM;
                if (!has(name, userdata) && unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
                        r = -errno;
        }
        return r;
}

int lastgood_load(const char *dir, const char *name, policy_resolver_t resolver, void *userdata,
                  struct ks_policy **ret, uint64_t *ret_saved_usec, struct ks_diags *diags)
{
        _cleanup_free_ char *path = NULL;
        struct ks_policy *p = NULL;
        struct stat st;
        int r;

        if (asprintf(&path, "%s/%s" SUFFIX, dir, name) < 0)
                return -ENOMEM;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? -ENOENT
                                       : diags_add(diags, path, 0, "cannot read the last good copy: %s",
                                                   strerror(errno)) < 0 ? -ENOMEM : -EIO;
        /* Only the agent writes there: anything but its own regular file is not a copy to trust. */
        if (!S_ISREG(st.st_mode))
                return diags_add(diags, path, 0, "the last good copy is not a regular file") < 0 ? -ENOMEM
                                                                                                  : -EINVAL;
        r = policy_parse_file(path, &p, diags);
        if (r == 0 && (r = policy_resolve(p, resolver, userdata, diags)) < 0)
                p = policy_free(p);
        if (r < 0)
                return r;
        *ret = p;
        *ret_saved_usec = (uint64_t)st.st_mtim.tv_sec * USEC_PER_SEC + (uint64_t)st.st_mtim.tv_nsec / 1000;
        return 0;
}
