/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the policy parser (policy_parse_string), then, for a policy
 * that parses, host name pinning with a fake resolver and the compiler (the
 * staged table with it in force, the read-back shape, the nft text). Any crash,
 * leak, undefined behaviour or failed invariant is a bug.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "compile.h"
#include "policy.h"
#include "summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every host name resolves to one address per family, as a real resolver may answer. */
static int fake_resolver(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error,
                         void *userdata)
{
        struct ks_prefix *v = calloc(2, sizeof(*v));

        if (!v)
                return -ENOMEM;
        v[0] = (struct ks_prefix){ .family = AF_INET, .addr = { 203, 0, 113, (uint8_t)strlen(name) }, .len = 32 };
        v[1] = (struct ks_prefix){ .family = AF_INET6, .addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9 }, .len = 128 };
        *ret = v;
        *ret_n = 2;
        return 0;
}

static void compile_all(const struct ks_policy *p)
{
        const struct ks_policy *list[1] = { p };
        struct ks_ruleset *rs = NULL;
        struct ks_summary s = {};
        char *text = NULL;

        if (compile_table(list, 1, p->name, "killswitch", &rs) == 0) {
                struct nftnl_batch *b = batch_alloc();
                uint32_t seq = 1;

                if (ruleset_summarize(rs, &s) < 0)
                        abort();
                if (b && ruleset_to_batch(rs, b, &seq) < 0)
                        abort();
                if (b)
                        nftnl_batch_free(b);
        }
        if (compile_text(p, "killswitch", &text) == 0 && strstr(text, "table inet killswitch") == NULL)
                abort();
        free(text);
        summary_clear(&s);
        ruleset_free(rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct ks_policy *p = NULL;
        struct ks_diags d = {};
        char *text = malloc(size + 1);
        int r;

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        r = policy_parse_string(text, "fuzz.policy", "fuzz", &p, &d);
        if (r == 0 && !p)
                abort();
        if (r == -EINVAL && d.n == 0)
                abort();        /* refused without saying why */
        for (size_t i = 0; i < d.n; i++)
                if (strncmp(d.msgs[i], "fuzz.policy", strlen("fuzz.policy")) != 0)
                        abort();        /* every diagnostic names the file */
        if (r == 0 && policy_resolve(p, fake_resolver, NULL, &d) == 0)
                compile_all(p);
        policy_free(p);
        diags_clear(&d);
        free(text);
        return 0;
}
