/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "compile.h"
#include "resolve.h"
#include "store.h"

#define SUFFIX ".policy"

static void entry_clear(struct ks_policy_entry *e)
{
        free(e->name);
        free(e->path);
        policy_free(e->policy);
        diags_clear(&e->errors);
        *e = (struct ks_policy_entry){};
}

struct ks_policy_entry *store_find(struct ks_store *s, const char *name)
{
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->items[i].name, name) == 0)
                        return &s->items[i];
        return NULL;
}

const struct ks_policy *store_get(struct ks_store *s, const char *name)
{
        struct ks_policy_entry *e = name ? store_find(s, name) : NULL;

        return e ? e->policy : NULL;
}

void store_clear(struct ks_store *s)
{
        for (size_t i = 0; i < s->n; i++)
                entry_clear(&s->items[i]);
        free(s->items);
        *s = (struct ks_store){};
}

static struct ks_policy_entry *store_add(struct ks_store *s, const char *name, const char *path)
{
        struct ks_policy_entry *items = reallocarray(s->items, s->n + 1, sizeof(*items));
        struct ks_policy_entry *e;

        if (!items)
                return NULL;
        s->items = items;
        e = &items[s->n];
        *e = (struct ks_policy_entry){ .name = strdup(name), .path = strdup(path) };
        if (!e->name || !e->path) {
                entry_clear(e);
                return NULL;
        }
        s->n++;
        return e;
}

/* Same ruleset? (Compared as compiled text: resolved host names included.) */
static bool policy_same(const struct ks_policy *a, const struct ks_policy *b)
{
        _cleanup_free_ char *ta = NULL, *tb = NULL;

        if (compile_text(a, "t", &ta) < 0 || compile_text(b, "t", &tb) < 0)
                return false;
        return strcmp(ta, tb) == 0 && !!a->description == !!b->description &&
               (!a->description || strcmp(a->description, b->description) == 0);
}

/* Parse one file into its entry: the new version replaces the old one only if it is clean. */
static int load_one(struct ks_store *s, const char *name, const char *path, bool *ret_failed)
{
        struct ks_policy_entry *e = store_find(s, name);
        struct ks_policy *p = NULL;
        int r;

        if (!e && !(e = store_add(s, name, path)))
                return -ENOMEM;
        diags_clear(&e->errors);
        r = policy_parse_file(path, &p, &e->errors);
        /* Host names are resolved now and pinned: never again behind the admin's back. */
        if (r == 0 && (r = policy_resolve(p, resolve_hostname, NULL, &e->errors)) < 0)
                p = policy_free(p);
        if (r == -ENOMEM)
                return r;
        *ret_failed = r < 0;
        if (r < 0)
                return 0;
        if (e->policy && policy_same(e->policy, p)) {
                policy_free(p);         /* unchanged: the staged version stays current */
                return 0;
        }
        policy_free(e->policy);
        e->policy = p;
        e->generation++;
        return 0;
}

static int is_policy_file(const struct dirent *d)
{
        size_t len = strlen(d->d_name);

        return d->d_name[0] != '.' && len > strlen(SUFFIX) &&
               strcmp(d->d_name + len - strlen(SUFFIX), SUFFIX) == 0;
}

/* Drop entries whose file no longer exists, except the one in force. */
static void drop_missing(struct ks_store *s, char **found, size_t n_found, const char *keep, size_t *failed)
{
        for (size_t i = 0; i < s->n;) {
                struct ks_policy_entry *e = &s->items[i];
                bool present = false;

                for (size_t j = 0; j < n_found && !present; j++)
                        present = strcmp(found[j], e->name) == 0;
                if (present) {
                        i++;
                        continue;
                }
                if (keep && strcmp(keep, e->name) == 0) {
                        diags_clear(&e->errors);
                        diags_add(&e->errors, e->path, 0,
                                  "file is gone; the loaded version stays in force until restore");
                        (*failed)++;
                        i++;
                        continue;
                }
                entry_clear(e);
                memmove(e, e + 1, (s->n - i - 1) * sizeof(*e));
                s->n--;
        }
}

int store_load_dir(struct ks_store *s, const char *dir, const char *keep, size_t *ret_failed)
{
        struct dirent **list = NULL;
        size_t failed = 0, n_found = 0;
        char **found;
        int n, r = 0;

        n = scandir(dir, &list, is_policy_file, alphasort);
        if (n < 0)
                return -errno;
        found = calloc((size_t)n + 1, sizeof(*found));
        if (!found)
                r = -ENOMEM;
        for (int i = 0; i < n && r == 0; i++) {
                _cleanup_free_ char *path = NULL;
                bool bad = false;

                list[i]->d_name[strlen(list[i]->d_name) - strlen(SUFFIX)] = '\0';
                if (asprintf(&path, "%s/%s%s", dir, list[i]->d_name, SUFFIX) < 0) {
                        r = -ENOMEM;
                        break;
                }
                r = load_one(s, list[i]->d_name, path, &bad);
                found[n_found++] = list[i]->d_name;
                failed += bad;
        }
        if (r == 0)
                drop_missing(s, found, n_found, keep, &failed);
        for (int i = 0; i < n; i++)
                free(list[i]);
        free(list);
        free(found);
        if (ret_failed)
                *ret_failed = failed;
        return r;
}
