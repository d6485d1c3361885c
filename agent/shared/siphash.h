/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash of len bytes.
 * Unlike FNV, nobody who does not know the 128-bit key can make two inputs
 * collide on purpose, so a sum of keyed hashes tells whether two sets hold
 * the same elements even against someone who chooses the elements.
 */
struct siphash_key {
        uint64_t k0, k1;
};

uint64_t siphash24(const struct siphash_key *key, const void *data, size_t len);
