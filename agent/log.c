/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

void log_msg(int prio, int error, const char *fmt, ...)
{
        va_list ap;
        int saved = errno;

        if (prio == LOG_DEBUG && !getenv("KILLSWITCH_DEBUG"))
                return;
        if (getenv("JOURNAL_STREAM"))
                fprintf(stderr, "<%d>", prio);
        else if (prio <= LOG_WARNING)
                fputs(prio <= LOG_ERR ? "error: " : "warning: ", stderr);
        errno = error;  /* so that %m prints the error we were given */
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        errno = saved;
}
