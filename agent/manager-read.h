/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/*
 * Slow work that reads one loaded policy, off the event loop: what
 * `killswitchctl show` prints is compiled from it (100,000 entries take 0.3 s,
 * seconds on a busy machine, which the loop, and an isolation, would wait
 * for). work(p, userdata) runs on a thread at background priority
 * (worker_start_background), one read at a time, in the order asked, except
 * that a `low` read (an untrusted caller's) waits behind every other: root's
 * Show waits for the one running at most, never for a queue of other users'.
 * Then done(m, userdata, r) runs on the loop with what work returned. Meanwhile p
 * stays allocated: a reload that replaces it keeps the old version in
 * m->retired until no read runs or waits. skip(userdata), if not NULL, is
 * asked before work starts: true (the caller has gone) calls done with
 * -ECONNABORTED instead.
 */

struct ks_manager;
struct ks_policy;

typedef int (*manager_read_work_t)(const struct ks_policy *p, void *userdata);
typedef void (*manager_read_done_t)(struct ks_manager *m, void *userdata, int r);
typedef bool (*manager_read_skip_t)(void *userdata);

/*
 * Reads running or waiting at most (one per connection the control socket
 * takes), and of them `low` ones (untrusted callers' together, whatever their
 * uids: each holds its reply's memory when done); past either -EBUSY.
 */
#define MANAGER_READS_MAX     160
#define MANAGER_READS_LOW_MAX 4

int manager_read_policy(struct ks_manager *m, const struct ks_policy *p, bool low, manager_read_work_t work,
                        manager_read_skip_t skip, manager_read_done_t done, void *userdata);
/* A read runs or waits: the store's old versions must stay. */
bool manager_reads_pending(const struct ks_manager *m);
/*
 * At exit, before the store goes: waits for the read running (one policy's
 * work) and calls its done; the reads waiting get done with -ECANCELED.
 */
void manager_reads_stop(struct ks_manager *m);
