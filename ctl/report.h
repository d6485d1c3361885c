/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>
#include <jansson.h>

#include "output.h"

/*
 * killswitchctl report: the reply of io.killswitch.Report and, if the agent
 * has the drop sensor and the caller may read it, the reply of
 * io.killswitch.Drops (else NULL, and drops_note says why), as Markdown: a
 * person reads it and attaches it to the incident ticket. Text from the agent
 * is escaped (fputs_safe) and cannot break the table ("|" becomes "\|").
 */
int output_report(FILE *f, json_t *report, json_t *drops, const char *drops_note, const struct output_flags *flags);
