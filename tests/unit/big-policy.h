/* SPDX-License-Identifier: MIT */
#pragma once

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>

/*
 * A policy of 2 x n entries: gateway big0 has n single addresses with two ports
 * (a hash set), big1 n /31 prefixes with all traffic (an interval set). For the
 * compiler's unit test and its benchmark (tests/bench/bench-compile.c).
 */
static inline char *big_policy_text(size_t n)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        fputs("[Uplinks]\nInterface=wan0\n", f);
        for (int g = 0; g < 2; g++) {
                fprintf(f, "[Gateway big%d]\n", g);
                /* Gaps between them, so that nothing merges. */
                for (size_t i = 0; i < n; i++) {
                        uint32_t a = 0x0a000000u + (g == 0 ? 2 : 4) * (uint32_t)i;

                        fprintf(f, "Address=%u.%u.%u.%u%s\n", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff,
                                g == 0 ? "" : "/31");
                }
                if (g == 0)
                        fputs("Ports=tcp:25 udp:53\n", f);
        }
        if (fclose(f) != 0)
                return NULL;
        return buf;
}
