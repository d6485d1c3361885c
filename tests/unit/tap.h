/* SPDX-License-Identifier: MIT */
#pragma once

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/*
 * A note in the test's output. The tests print TAP (CMOCKA_MESSAGE_OUTPUT=TAP),
 * so every line of it is a TAP comment ("# ..."): a bare line is not TAP and
 * breaks the count of meson and tests/run.sh.
 */
static inline void tap_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tap_note(const char *fmt, ...)
{
        char *msg = NULL, *line, *save = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;
        for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                print_message("# %s\n", line);
        free(msg);
}
