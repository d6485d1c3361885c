/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

/*
 * Free large objects off the event loop. A staged table's ruleset holds every
 * element of its sets as libnftnl objects: freeing one of 100,000 entries
 * took the loop 5-45 ms, and an isolation waited meanwhile. reaper_add()
 * hands the object to a thread of low priority (worker_start_background());
 * if none can be started, it is freed at once. The thread then returns the
 * freed pages to the kernel (malloc_trim). reaper_free() waits for what is
 * still being freed.
 */

struct ks_reaper;

typedef void (*reaper_fn_t)(void *p);

int reaper_new(sd_event *event, struct ks_reaper **ret);
/* fn(p) on a thread; p NULL: nothing. r NULL: fn(p) at once. */
void reaper_add(struct ks_reaper *r, void *p, reaper_fn_t fn);
struct ks_reaper *reaper_free(struct ks_reaper *r);
