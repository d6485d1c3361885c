/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

/*
 * Make a file durable off the event loop: fsync it (and, if asked, its
 * directory), or replace it (syncer_replace()), on a thread. An fsync that has to wait for a journal commit took
 * 10-30 ms on a busy disk, and the loop answers no isolation meanwhile. Asked
 * again while one runs, one more follows it (covering everything written
 * until it starts). syncer_free() waits for the one running and does one
 * still asked for at once, on the caller's stack.
 */

struct ks_syncer;

/* The file dir/name (both copied); what names it in the warning a failed fsync or save logs. */
int syncer_new(sd_event *event, const char *dir, const char *name, const char *what, struct ks_syncer **ret);
/* Ask for an fsync of the file, and of its directory too if dir (the file was created or renamed). */
void syncer_kick(struct ks_syncer *s, bool dir);
/*
 * Replace the file with text (taken over) on the thread, durably
 * (write_file_atomic(): written beside it, fsynced, renamed over it, the
 * directory fsynced): readers see the old file until the rename. The rename
 * alone kept the loop up to 25 ms on a busy disk. Asked again while one runs,
 * the newest text follows it.
 */
void syncer_replace(struct ks_syncer *s, char *text, mode_t mode);
/*
 * syncer_replace() through *s, made on first use (syncer_new()); if it cannot
 * be made, the file is replaced at once, on the caller's stack. Logs a
 * failure, never fails.
 */
void syncer_save(struct ks_syncer **s, sd_event *event, const char *dir, const char *name, const char *what,
                 char *text, mode_t mode);
struct ks_syncer *syncer_free(struct ks_syncer *s);
