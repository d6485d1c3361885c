/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <string.h>

#include <libnftnl/batch.h>

/*
 * Batches of netlink messages for one nftables transaction. Pages of 128 KiB;
 * a message may overrun a page by up to 64 KiB (set elements go out in
 * messages of up to 64 KiB), as nft does.
 *
 * libmnl 1.0.4 does not zero the padding after an attribute, so every message
 * is built on zeroed memory: no uninitialised bytes go to the kernel (valgrind
 * stays quiet and nothing of the heap leaks into netlink).
 */

#define BATCH_PAGE_SIZE (32u * 4096u)
#define BATCH_OVERRUN (UINT16_MAX + 4096u)

/* Zero the room for the next message (a message never exceeds BATCH_OVERRUN). */
static inline void batch_zero_next(struct nftnl_batch *b)
{
        memset(nftnl_batch_buffer(b), 0, BATCH_OVERRUN);
}

static inline struct nftnl_batch *batch_alloc(void)
{
        struct nftnl_batch *b = nftnl_batch_alloc(BATCH_PAGE_SIZE, BATCH_OVERRUN);

        if (b)
                batch_zero_next(b);
        return b;
}

/* Close the message just written and prepare zeroed room for the next. */
static inline int batch_next(struct nftnl_batch *b)
{
        if (nftnl_batch_update(b) < 0)
                return -1;
        batch_zero_next(b);
        return 0;
}
