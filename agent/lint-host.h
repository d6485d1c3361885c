/* SPDX-License-Identifier: MIT */
#pragma once

#include "policy.h"
#include "store.h"

/*
 * The warnings of policy-lint.c for every loaded policy of store, against this
 * host now (its addresses and interfaces: the first 256 of each, enough for a
 * gateway; beyond, a warning may be missed). Added to warnings as
 * "FILE:LINE: warning: ..."; killswitchd --check prints them, the agent logs
 * them at each load and reload and Reload returns them. 0 or -ENOMEM.
 */
int lint_host_store(const struct ks_store *store, struct ks_diags *warnings);
