/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>
#include <jansson.h>

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
