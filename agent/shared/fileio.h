/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Small file helpers for the state directory. All return 0 or a negative errno. */

int write_all(int fd, const void *buf, size_t len);
int fsync_dir(const char *dir);

/*
 * Replace dir/name with text, atomically and durably: write dir/.name.tmp,
 * fsync it, rename it over dir/name, fsync the directory. On failure the old
 * file is untouched and no temporary file stays behind.
 */
int write_file_atomic(const char *dir, const char *name, const char *text, mode_t mode);
