/* SPDX-License-Identifier: MIT */
#pragma once

#include <syslog.h>

/*
 * Logging for the agent: lines on stderr. Under systemd (JOURNAL_STREAM set)
 * each line carries a "<N>" priority prefix that journald understands.
 * log_*_errno() returns the negative errno it was given, so the edge that
 * decides can write `return log_error_errno(r, "...: %m");` — %m prints r.
 */

void log_msg(int prio, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...)   log_msg(LOG_ERR, 0, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, 0, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_NOTICE, 0, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_DEBUG, 0, __VA_ARGS__)

#define log_full_errno(prio, r, ...)                    \
        ({                                              \
                int _r_ = (r) < 0 ? -(r) : (r);         \
                log_msg((prio), _r_, __VA_ARGS__);      \
                -_r_;                                   \
        })
#define log_error_errno(r, ...)   log_full_errno(LOG_ERR, r, __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARNING, r, __VA_ARGS__)
