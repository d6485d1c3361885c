/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include <jansson.h>

#include "error.h"

/*
 * The incident report (io.killswitch.Report, killswitchctl report): for the
 * current or the last isolation, or a window, the history entries of it (the
 * timeline; refusals summed up), and what the policy kept (gateway and service
 * counters). The kernel's counters start from zero at every isolation, so a
 * restore first keeps them, in memory and in STATE_DIR/last-isolation.json
 * (replaced on a thread, not before the restore is answered): the report of
 * the last isolation has them after the restore and after a restart. What was cut
 * per inside host comes from the drop sensor (io.killswitch.Drops).
 */

#define REPORT_LAST_FILE "last-isolation.json"

struct ks_manager;

/* Before a restore resets the counters: save them with the isolation's policy and times. Logs, never fails. */
void report_save_last(struct ks_manager *m);

/* The report of [since, until] (realtime µs; since 0: the current or the last isolation; until 0: now). */
int report_build(struct ks_manager *m, uint64_t since, uint64_t until, json_t **ret, struct ks_error *e);
