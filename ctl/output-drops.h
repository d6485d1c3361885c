/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>
#include <jansson.h>

#include "output.h"

/*
 * io.killswitch.Drops as a table (ctl/output-drops.c): SOURCE, DESTINATION, PROTO,
 * PORT, PACKETS, BYTES, FIRST, LAST (local time), grouped by source, the
 * source with most packets first; then a summary line.
 */
int output_drops(FILE *f, json_t *reply, const struct output_flags *flags);
