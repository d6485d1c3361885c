/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
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

/*
 * Overwrite dir/name, a regular file of exactly strlen(text) bytes, with text
 * in place (one pwrite at offset 0), and with sync fdatasync it. Its size and
 * blocks stay the same, so unlike write_file_atomic() no metadata has to reach
 * the disk: on ext4 no journal commit, which would wait for every other file's
 * data ordered before it. -EAGAIN if the file is not such a file (write it
 * with write_file_atomic()). Atomic against a crash of the process only
 * within one page: keep the text at most a page long. A power loss during the
 * write may leave a mix of the old and the new text. Without sync the text is
 * on disk once fdatasync_file() returns.
 */
int write_file_in_place(const char *dir, const char *name, const char *text, bool sync);
int fdatasync_file(const char *dir, const char *name);
