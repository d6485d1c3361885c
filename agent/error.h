/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * An error for the caller of a request: the Varlink error name and a sentence
 * that says what failed and what to do. Filled by the code that decides.
 */
struct ks_error {
        const char *id;       /* e.g. "io.killswitch.ApplyFailed" */
        int error;            /* positive errno, 0 if none */
        char msg[1024];
};

#define KS_ERR_PERMISSION  "io.killswitch.PermissionDenied"
#define KS_ERR_NO_POLICY   "io.killswitch.NoSuchPolicy"
#define KS_ERR_APPLY       "io.killswitch.ApplyFailed"
#define KS_ERR_STATE       "io.killswitch.StateNotSaved"
#define KS_ERR_LOCKOUT     "io.killswitch.WouldLockOut"
#define KS_ERR_PARAM       "org.varlink.service.InvalidParameter"
#define KS_ERR_RELOAD      "io.killswitch.ReloadFailed"
#define KS_ERR_PROTOCOL    "io.killswitch.ProtocolError"
#define KS_ERR_INTERNAL    "io.killswitch.InternalError"
#define KS_ERR_WAITING     "io.killswitch.WaitingForApproval"  /* four-eyes: a second person must restore */
#define KS_ERR_BUSY        "io.killswitch.Busy"        /* an untrusted caller over a budget (control.c) */
#define KS_ERR_NO_METHOD   "org.varlink.service.MethodNotFound"
#define KS_ERR_NO_INTERFACE "org.varlink.service.InterfaceNotFound"

/* Fill e (if not NULL) and return r, a negative errno. */
int ks_error_set(struct ks_error *e, int r, const char *id, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
