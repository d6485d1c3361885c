/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "cleanup.h"
#include "compile.h"
#include "lastgood.h"
#include "resolve.h"
#include "store.h"
#include "timeutil.h"

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
        struct ks_policy_entry *items = GREEDY_REALLOC(s->items, s->n + 1);
        struct ks_policy_entry *e;

        if (!items)
                return NULL;
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

static void scan_file_clear(struct store_file *f)
{
        free(f->name);
        free(f->path);
        policy_free(f->policy);
        diags_clear(&f->errors);
}

void store_scan_clear(struct store_scan *scan)
{
        for (size_t i = 0; i < scan->n; i++)
                scan_file_clear(&scan->files[i]);
        free(scan->files);
        *scan = (struct store_scan){};
}

/* The version `current` holds of policy `name`, or NULL. */
static const struct ks_policy *current_version(const struct ks_store *current, const char *name)
{
        for (size_t i = 0; current && i < current->n; i++)
                if (strcmp(current->items[i].name, name) == 0)
                        return current->items[i].policy;
        return NULL;
}

static bool store_has(const struct ks_store *current, const char *name)
{
        for (size_t i = 0; current && i < current->n; i++)
                if (strcmp(current->items[i].name, name) == 0)
                        return true;
        return false;
}

/*
 * Parse and resolve one file; the result replaces the loaded version only if
 * clean and different. A clean file's text is its last good version (lastgood).
 */
static int scan_one(struct store_file *f, const struct ks_store *current, const char *lastgood,
                    policy_resolver_t resolver, void *userdata)
{
        const struct ks_policy *old = current_version(current, f->name);
        _cleanup_free_ char *text = NULL;
        struct ks_policy *p = NULL;
        int r;

        r = policy_parse_file_text(f->path, &p, &text, &f->errors);
        /* Host names are resolved now and pinned: never again behind the admin's back. */
        if (r == 0 && (r = policy_resolve(p, resolver, userdata, &f->errors)) < 0)
                p = policy_free(p);
        if (r == -ENOMEM)
                return r;
        f->failed = r < 0;
        if (r < 0)
                return 0;
        if (lastgood)
                f->saved = lastgood_save(lastgood, f->name, text);
        if (old && policy_same(old, p)) {
                policy_free(p);         /* unchanged: the staged version stays current */
                f->unchanged = true;
                return 0;
        }
        f->policy = p;
        return 0;
}

static int is_policy_file(const struct dirent *d)
{
        size_t len = strlen(d->d_name);

        return d->d_name[0] != '.' && len > strlen(SUFFIX) &&
               strcmp(d->d_name + len - strlen(SUFFIX), SUFFIX) == 0;
}

int store_scan_dir(const char *dir, const struct ks_store *current, const char *lastgood,
                   policy_resolver_t resolver, void *userdata, struct store_scan *ret)
{
        struct store_scan scan = {};
        struct dirent **list = NULL;
        int n, r = 0;

        n = scandir(dir, &list, is_policy_file, alphasort);
        if (n < 0)
                return -errno;
        scan.files = calloc((size_t)n + 1, sizeof(*scan.files));
        if (!scan.files)
                r = -ENOMEM;
        for (int i = 0; i < n && r == 0; i++) {
                struct store_file *f = &scan.files[scan.n++];

                list[i]->d_name[strlen(list[i]->d_name) - strlen(SUFFIX)] = '\0';
                f->name = strdup(list[i]->d_name);
                if (!f->name || asprintf(&f->path, "%s/%s%s", dir, list[i]->d_name, SUFFIX) < 0) {
                        f->path = NULL;
                        r = -ENOMEM;
                        break;
                }
                r = scan_one(f, current, lastgood, resolver, userdata);
        }
        for (int i = 0; i < n; i++)
                free(list[i]);
        free(list);
        if (r < 0) {
                store_scan_clear(&scan);
                return r;
        }
        *ret = scan;
        return 0;
}

/* p is no longer in the store: freed, or kept in retired. */
static int retire(struct ks_policy *p, struct store_retired *retired)
{
        if (!p)
                return 0;
        if (!retired) {
                policy_free(p);
                return 0;
        }
        if (!GREEDY_REALLOC(retired->v, retired->n + 1))
                return -ENOMEM;
        retired->v[retired->n++] = p;
        return 0;
}

void store_retired_clear(struct store_retired *r)
{
        for (size_t i = 0; i < r->n; i++)
                policy_free(r->v[i]);
        free(r->v);
        *r = (struct store_retired){};
}

/* Move one file's result into its entry. */
static int apply_one(struct ks_store *s, struct store_file *f, struct store_retired *retired)
{
        struct ks_policy_entry *e = store_find(s, f->name);

        if (!e && !(e = store_add(s, f->name, f->path)))
                return -ENOMEM;
        e->in_memory = false;
        diags_clear(&e->errors);
        e->errors = f->errors;
        f->errors = (struct ks_diags){};
        e->save_error = f->saved;
        if (f->failed)
                return 0;
        e->lastgood_usec = 0;           /* the file's version (unchanged: the same rules as the copy's) */
        if (f->unchanged)
                return 0;
        if (retire(e->policy, retired) < 0)
                return -ENOMEM;
        e->policy = TAKE_PTR(f->policy);
        e->generation++;
        return 0;
}

/* Drop entries whose file no longer exists, and their copies, except the one in force. */
static int drop_missing(struct ks_store *s, const struct store_scan *scan, const char *keep, const char *lastgood,
                        size_t *failed, struct store_retired *retired)
{
        for (size_t i = 0; i < s->n;) {
                struct ks_policy_entry *e = &s->items[i];
                bool present = false;

                for (size_t j = 0; j < scan->n && !present; j++)
                        present = strcmp(scan->files[j].name, e->name) == 0;
                if (present) {
                        i++;
                        continue;
                }
                if (keep && strcmp(keep, e->name) == 0 && e->in_memory) {
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
                if (retire(e->policy, retired) < 0)
                        return -ENOMEM;
                /* An unlink, on the loop: a copy left by a failure is only used for a file of that name. */
                if (lastgood)
                        (void)lastgood_remove(lastgood, e->name);
                e->policy = NULL;
                entry_clear(e);
                memmove(e, e + 1, (s->n - i - 1) * sizeof(*e));
                s->n--;
        }
        return 0;
}

int store_apply_scan(struct ks_store *s, struct store_scan *scan, const char *keep, const char *lastgood,
                     size_t *ret_failed, struct store_retired *retired)
{
        size_t failed = 0;
        int r;

        for (size_t i = 0; i < scan->n; i++) {
                r = apply_one(s, &scan->files[i], retired);
                if (r < 0)
                        return r;
                failed += scan->files[i].failed;
        }
        r = drop_missing(s, scan, keep, lastgood, &failed, retired);
        if (r < 0)
                return r;
        if (ret_failed)
                *ret_failed = failed;
        return 0;
}

int store_scan_policies(const struct store_scan *scan, const struct ks_store *current, const char *keep,
                        const struct ks_policy ***ret, size_t *ret_n)
{
        size_t cap = scan->n + (current ? current->n : 0) + 1, n = 0;
        const struct ks_policy **list = calloc(cap, sizeof(*list));

        if (!list)
                return -ENOMEM;
        /* The entries that stay, in store order: their new version, or the loaded one. */
        for (size_t i = 0; current && i < current->n; i++) {
                const struct ks_policy_entry *e = &current->items[i];
                const struct store_file *f = NULL;

                for (size_t j = 0; j < scan->n && !f; j++)
                        if (strcmp(scan->files[j].name, e->name) == 0)
                                f = &scan->files[j];
                if (!f && !(keep && strcmp(keep, e->name) == 0))
                        continue;
                if (f && f->policy)
                        list[n++] = f->policy;
                else if (e->policy)
                        list[n++] = e->policy;
        }
        /* Then the new files, in scan order. */
        for (size_t j = 0; j < scan->n; j++)
                if (scan->files[j].policy && !store_has(current, scan->files[j].name))
                        list[n++] = scan->files[j].policy;
        *ret = list;
        *ret_n = n;
        return 0;
}

int store_put(struct ks_store *s, const char *name, const char *path, struct ks_policy *p)
{
        struct ks_policy_entry *e = store_find(s, name);

        if (!e && !(e = store_add(s, name, path))) {
                policy_free(p);
                return -ENOMEM;
        }
        policy_free(e->policy);
        e->policy = p;
        e->generation++;
        e->lastgood_usec = 0;
        e->in_memory = true;
        return 0;
}

/* An entry without a good version gets its last good copy; its copy's problems are added to its errors. */
static int entry_fall_back(struct ks_policy_entry *e, const char *lastgood, struct resolve_budget *budget)
{
        uint64_t saved = 0;
        struct ks_policy *p = NULL;
        int r;

        if (e->policy)
                return 0;
        r = lastgood_load(lastgood, e->name, resolve_hostname_bounded, budget, &p, &saved, &e->errors);
        if (r < 0)
                return r;
        e->policy = p;
        e->lastgood_usec = saved;
        e->generation++;
        return 0;
}

static int fall_back(struct ks_store *s, const char *dir, const char *name, const char *lastgood, const char *why,
                     struct resolve_budget *budget)
{
        struct ks_policy_entry *e = store_find(s, name);
        _cleanup_free_ char *path = NULL;

        if (!e) {
                if (asprintf(&path, "%s/%s%s", dir, name, SUFFIX) < 0 || !(e = store_add(s, name, path)) ||
                    diags_add(&e->errors, path, 0, "%s", why) < 0)
                        return -ENOMEM;
        }
        return entry_fall_back(e, lastgood, budget);
}

int store_fall_back(struct ks_store *s, const char *dir, const char *name, const char *lastgood, const char *why)
{
        struct resolve_budget budget = RESOLVE_BUDGET_INIT;

        return fall_back(s, dir, name, lastgood, why, &budget);
}

/* At start, every policy without a good version (and keep, even without a file) from its last good copy. */
static int load_copies(struct ks_store *s, const char *dir, const char *keep, const char *lastgood, int dir_error,
                       struct resolve_budget *budget)
{
        char why[256];
        int r;

        for (size_t i = 0; i < s->n; i++)
                if (entry_fall_back(&s->items[i], lastgood, budget) == -ENOMEM)
                        return -ENOMEM;
        if (!keep || store_find(s, keep))
                return 0;
        if (dir_error < 0)
                snprintf(why, sizeof(why), "cannot read the policy directory: %s", strerror(-dir_error));
        else
                snprintf(why, sizeof(why), "file is gone");
        r = fall_back(s, dir, keep, lastgood, why, budget);
        return r == -ENOMEM ? r : 0;
}

struct prune_view {
        struct ks_store *store;
        const char *keep;
};

static bool copy_wanted(const char *name, void *userdata)
{
        const struct prune_view *v = userdata;

        return store_find(v->store, name) || (v->keep && strcmp(v->keep, name) == 0);
}

int store_load_dir(struct ks_store *s, const char *dir, const char *keep, const char *lastgood, size_t *ret_failed)
{
        struct resolve_budget budget = RESOLVE_BUDGET_INIT;
        struct store_scan scan = {};
        int r, k;

        r = store_scan_dir(dir, s, lastgood, resolve_hostname_bounded, &budget, &scan);
        if (r == 0)
                r = store_apply_scan(s, &scan, keep, lastgood, ret_failed, NULL);
        store_scan_clear(&scan);
        if (!lastgood || r == -ENOMEM)
                return r;
        /*
         * The directory was read: copies of files gone while the agent was down go too (not keep's). One
         * that cannot be removed stays unused unless a file of its name appears and breaks.
         */
        if (r == 0)
                (void)lastgood_prune(lastgood, copy_wanted, &(struct prune_view){ .store = s, .keep = keep });
        k = load_copies(s, dir, keep, lastgood, r, &budget);
        return k < 0 ? k : r;
}
