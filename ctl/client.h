/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <jansson.h>

#include "cleanup.h"

/*
 * The client side of the control protocol (docs/protocol.md): Varlink framing,
 * one JSON object followed by a NUL byte each way, over a Unix stream socket.
 * Nothing here prints; every function returns a negative errno on failure.
 */

/* json_decrefp() comes with jansson (it backs json_auto_t). */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Replies larger than this are refused with -EMSGSIZE. */
#define CLIENT_REPLY_MAX (16U * 1024U * 1024U)

/* An absolute CLOCK_MONOTONIC instant timeout_usec from now. */
uint64_t client_deadline(uint64_t timeout_usec);

/*
 * Connect to the agent's socket at path, giving up at deadline. Returns the
 * connected fd (SOCK_CLOEXEC). Any failure here means the agent is
 * unreachable: -ENOENT (no socket), -ECONNREFUSED (nobody listening),
 * -EACCES (no permission), -ETIMEDOUT (its queue stayed full), ...
 */
int client_connect(const char *path, uint64_t deadline);

/*
 * Send one call {"method":method,"parameters":parameters} on fd and read its
 * reply up to the NUL, giving up at deadline (-ETIMEDOUT). parameters may be
 * NULL for {}. On success *ret_reply holds the reply object, which may be an
 * error reply: see reply_error(). -EBADMSG if the reply is not a Varlink
 * reply, -ECONNRESET if the agent hung up before replying.
 */
int client_call(int fd, const char *method, json_t *parameters, uint64_t deadline, json_t **ret_reply);

/* The error name of a reply, or NULL if the call succeeded. */
const char *reply_error(json_t *reply);

/* The parameters object of a reply (borrowed); an empty object if absent. */
json_t *reply_parameters(json_t *reply);
