/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the control protocol decoder (control_decode). The input is
 * a byte stream as a client would send it; it is split at NUL bytes like the
 * agent's framing does, and every piece is decoded. A decoded request must have
 * a method and an object of parameters; a refused one must say why.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_one(const char *buf, size_t len)
{
        struct control_request req = {};
        char err[256] = "";
        int r = control_decode(buf, len, &req, err, sizeof(err));

        if (r == 0) {
                char *dump;

                if (!req.root || !req.method || !json_is_object(req.parameters))
                        abort();
                dump = json_dumps(req.parameters, JSON_COMPACT);   /* what a handler may do with it */
                free(dump);
                control_request_clear(&req);
                if (req.root)
                        abort();
        } else if (r == -EBADMSG || r == -EMSGSIZE) {
                if (err[0] == '\0' || !memchr(err, '\0', sizeof(err)) || req.root)
                        abort();
        } else if (r != -ENOMEM) {
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data, *end = p + size;

        /* The last piece has no terminator: the agent would wait for it; decode it anyway. */
        while (p <= end) {
                const char *nul = memchr(p, '\0', (size_t)(end - p));
                size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);

                decode_one(p, len);
                if (!nul)
                        break;
                p = nul + 1;
        }
        return 0;
}
