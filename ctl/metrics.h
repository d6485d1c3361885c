/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>
#include <jansson.h>

#include "output.h"

/*
 * killswitchctl metrics: the status object of io.killswitch.Status as
 * Prometheus samples, for node_exporter's textfile collector.
 *
 * metrics_from_status() returns a new array of samples
 * {"name": "killswitch_...", "labels": {...}, "value": number}; status NULL
 * (the agent could not be asked) gives killswitch_up 0 alone. NULL on ENOMEM.
 * metrics_print() writes them in the text exposition format, each family with
 * its # HELP and # TYPE lines.
 */
json_t *metrics_from_status(json_t *status);
void metrics_print(FILE *f, json_t *samples);

/*
 * Write the samples (as text, or JSON unless json is JSON_OFF) to path,
 * atomically and safely in a directory others may write: a new file beside it
 * (O_EXCL|O_NOFOLLOW, a random name), mode 0644, synced, then renamed over
 * path. Never follows a symlink planted under a temporary name. Negative errno.
 */
int metrics_write_file(const char *path, json_t *samples, enum json_mode json);
