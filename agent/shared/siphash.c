/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

struct sip {
        uint64_t v0, v1, v2, v3;
};

static void sip_round(struct sip *s)
{
        s->v0 += s->v1;
        s->v1 = ROTL(s->v1, 13);
        s->v1 ^= s->v0;
        s->v0 = ROTL(s->v0, 32);
        s->v2 += s->v3;
        s->v3 = ROTL(s->v3, 16);
        s->v3 ^= s->v2;
        s->v0 += s->v3;
        s->v3 = ROTL(s->v3, 21);
        s->v3 ^= s->v0;
        s->v2 += s->v1;
        s->v1 = ROTL(s->v1, 17);
        s->v1 ^= s->v2;
        s->v2 = ROTL(s->v2, 32);
}

static void sip_word(struct sip *s, uint64_t m)
{
        s->v3 ^= m;
        sip_round(s);
        sip_round(s);
        s->v0 ^= m;
}

/* The words are little-endian whatever the host's byte order. */
static uint64_t load_le64(const uint8_t *p, size_t n)
{
        uint64_t w = 0;

        for (size_t i = 0; i < n; i++)
                w |= (uint64_t)p[i] << (8 * i);
        return w;
}

uint64_t siphash24(const struct siphash_key *key, const void *data, size_t len)
{
        struct sip s = {
                .v0 = key->k0 ^ 0x736f6d6570736575ULL,
                .v1 = key->k1 ^ 0x646f72616e646f6dULL,
                .v2 = key->k0 ^ 0x6c7967656e657261ULL,
                .v3 = key->k1 ^ 0x7465646279746573ULL,
        };
        const uint8_t *p = data;
        size_t whole = len & ~(size_t)7;

        for (size_t i = 0; i < whole; i += 8)
                sip_word(&s, load_le64(p + i, 8));
        sip_word(&s, load_le64(p + whole, len - whole) | (uint64_t)(len & 0xff) << 56);
        s.v2 ^= 0xff;
        for (int i = 0; i < 4; i++)
                sip_round(&s);
        return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
