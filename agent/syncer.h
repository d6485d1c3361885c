/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include <systemd/sd-event.h>

/*
 * Make a file durable off the event loop: fsync it (and, if asked, its
 * directory) on a thread. An fsync that has to wait for a journal commit took
 * 10-30 ms on a busy disk, and the loop answers no isolation meanwhile. Asked
 * again while one runs, one more follows it (covering everything written
 * until it starts). syncer_free() waits for the one running and does one
 * still asked for at once, on the caller's stack.
 */

struct ks_syncer;

/* path and dir are copied; what names the file in the warning a failed fsync logs. */
int syncer_new(sd_event *event, const char *path, const char *dir, const char *what, struct ks_syncer **ret);
/* Ask for an fsync of the file, and of its directory too if dir (the file was created or renamed). */
void syncer_kick(struct ks_syncer *s, bool dir);
struct ks_syncer *syncer_free(struct ks_syncer *s);
