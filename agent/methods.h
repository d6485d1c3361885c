/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>

#include "control.h"

/*
 * The Varlink methods of io.killswitch (docs/protocol.md): decode parameters,
 * check the caller's right to call, call the manager, encode the reply.
 * userdata is the struct ks_manager.
 */
json_t *methods_dispatch(void *userdata, const struct ks_peer *peer, const char *method, json_t *parameters);

/* Root or a member of group killswitch: may change the state; trusted by the control socket's budgets. */
bool methods_peer_privileged(const struct ks_peer *peer);
/* The emergency methods, handled before anything else waiting (control_set_urgent): Isolate, Restore. */
bool methods_urgent(const char *method);

struct ks_manager;
/* Add the status object's counters (gateways, services, dropped, dropped_by_uplink) of the policy in force to o. */
void methods_add_counters(struct ks_manager *m, json_t *o);
