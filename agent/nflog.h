/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include <systemd/sd-event.h>

/*
 * An NFLOG group (nfnetlink_log): the kernel's "log group N" events, as a
 * callback per batch of events read. Used by the egress trip-wire; only the
 * fact that packets were logged matters, not their content (metadata only).
 */

struct ks_nflog;

/* Called when one or more packets were logged (also when events were lost: there were many). */
typedef void (*nflog_cb_t)(void *userdata);

int nflog_new(sd_event *event, uint16_t group, nflog_cb_t cb, void *userdata, struct ks_nflog **ret);
struct ks_nflog *nflog_free(struct ks_nflog *l);
