/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

int ks_error_set(struct ks_error *e, int r, const char *id, const char *fmt, ...)
{
        va_list ap;

        if (!e)
                return r;
        e->id = id;
        e->error = r < 0 ? -r : r;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        return r;
}
