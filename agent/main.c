/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "lint-host.h"
#include "log.h"
#include "manager.h"
#include "methods.h"
#include "methods-report.h"
#include "privs.h"
#include "store.h"
#include "triggers.h"

static void help(void)
{
        printf("Usage: killswitchd [OPTIONS]\n"
               "\n"
               "Network isolation agent: applies killswitch policies as one atomic nftables\n"
               "transaction on request of killswitchctl(1).\n"
               "\n"
               "  --config-dir DIR   policies are DIR/policies/NAME.policy (default %s)\n"
               "  --state-dir DIR    persisted state (default %s)\n"
               "  --socket PATH      control socket (default %s)\n"
               "  --protect MODE     owner (default): the kernel refuses other processes'\n"
               "                     changes to the table (kernel >= 6.9), plus the event monitor;\n"
               "                     monitor: the event monitor alone (re-asserts after changes)\n"
               "  --check            validate every policy and killswitch.conf, print problems as\n"
               "                     FILE:LINE: message, exit 1 if anything is broken; warnings\n"
               "                     (FILE:LINE: warning: ...) alone exit 0\n"
               "  -h --help          show this help\n"
               "  --version          show the version\n"
               "\n"
               "See killswitchd(8) and killswitch.policy(5).\n",
               CONFIG_DIR, STATE_DIR, SOCKET_PATH);
}

/* Warnings about the policies that loaded; they never fail the check. */
static void lint_policies(const struct ks_store *store)
{
        struct ks_diags w = {};

        if (lint_host_store(store, &w) < 0)
                fprintf(stderr, "Out of memory: the policies were not checked for warnings\n");
        for (size_t j = 0; j < w.n; j++)
                fprintf(stderr, "%s\n", w.msgs[j]);
        diags_clear(&w);
}

/* --check: parse every policy; exit status 1 if any is broken. */
static int check_policies(const char *config_dir)
{
        struct ks_store store = {};
        char *dir = NULL;
        size_t failed = 0;
        int r;

        if (asprintf(&dir, "%s/policies", config_dir) < 0)
                return EXIT_FAILURE;
        r = store_load_dir(&store, dir, NULL, NULL, &failed);
        if (r < 0) {
                fprintf(stderr, "%s: cannot read the policy directory: %s\n", dir, strerror(-r));
                free(dir);
                return EXIT_FAILURE;
        }
        for (size_t i = 0; i < store.n; i++) {
                for (size_t j = 0; j < store.items[i].errors.n; j++)
                        fprintf(stderr, "%s\n", store.items[i].errors.msgs[j]);
                if (store.items[i].policy)
                        printf("%s: ok\n", store.items[i].path);
        }
        /* Nothing to isolate with: the first emergency would fail. */
        if (store.n == 0) {
                fprintf(stderr, "%s: no *.policy files; add %s.policy, the policy 'killswitchctl isolate' "
                        "applies (see killswitch.policy(5))\n", dir, DEFAULT_POLICY);
                failed++;
        } else if (!store_find(&store, DEFAULT_POLICY)) {
                fprintf(stderr, "%s: warning: no %s.policy: 'killswitchctl isolate' without a policy name, the "
                        "triggers without Policy= and the fail-closed start need it\n", dir, DEFAULT_POLICY);
        }
        lint_policies(&store);
        /* killswitch.conf: its triggers against the policies just loaded. */
        {
                struct ks_conf conf = {};
                struct ks_diags diags = {};

                r = triggers_check(config_dir, &store, &conf, &diags);
                for (size_t i = 0; i < diags.n; i++)
                        fprintf(stderr, "%s\n", diags.msgs[i]);
                if (r == 0 && conf.file)
                        printf("%s: ok\n", conf.file);
                if (r != 0)
                        failed++;
                conf_clear(&conf);
                diags_clear(&diags);
        }
        store_clear(&store);
        free(dir);
        return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

enum { ARG_CONFIG_DIR = 0x100, ARG_STATE_DIR, ARG_SOCKET, ARG_CHECK, ARG_VERSION, ARG_PROTECT };

/* getopt_long() with opterr = 0 returned '?' or ':' for the option just parsed (as killswitchctl says it). */
static void option_error(int c, int argc, char *argv[])
{
        const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

        if (c == ':')
                fprintf(stderr, "killswitchd: option '%s' needs an argument\n", arg);
        else if (optopt > 0 && optopt < 0x80 && arg[0] == '-' && arg[1] != '-')
                fprintf(stderr, "killswitchd: unknown option '-%c'\n", optopt);
        else if (optopt > 0 && strchr(arg, '='))
                fprintf(stderr, "killswitchd: option '%.*s' takes no argument\n", (int)strcspn(arg, "="), arg);
        else
                fprintf(stderr, "killswitchd: unknown option '%s'\n", arg);
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "check", no_argument, NULL, ARG_CHECK },
                { "protect", required_argument, NULL, ARG_PROTECT },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        struct ks_options o = { .config_dir = CONFIG_DIR, .state_dir = STATE_DIR, .socket_path = SOCKET_PATH,
                                .kernel_owner = true,
                                .handlers = { .methods = methods_dispatch, .trusted = methods_peer_privileged,
                                              .urgent = methods_urgent, .restoring = report_save_last } };
        struct ks_manager *m = NULL;
        int c, r, check = 0;

        opterr = 0;     /* said below, with the program's name and not the path it was started by */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_CONFIG_DIR: o.config_dir = optarg; break;
                case ARG_STATE_DIR: o.state_dir = optarg; break;
                case ARG_SOCKET: o.socket_path = optarg; break;
                case ARG_CHECK: check = 1; break;
                case ARG_PROTECT:
                        if (strcmp(optarg, "owner") != 0 && strcmp(optarg, "monitor") != 0) {
                                fprintf(stderr, "killswitchd: --protect takes owner or monitor, not '%s'\n", optarg);
                                return 2;
                        }
                        o.kernel_owner = strcmp(optarg, "owner") == 0;
                        break;
                case 'h': help(); return EXIT_SUCCESS;
                case ARG_VERSION: printf("killswitchd %s\n", VERSION); return EXIT_SUCCESS;
                default:
                        option_error(c, argc, argv);
                        fprintf(stderr, "Try 'killswitchd --help'.\n");
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "killswitchd: unexpected argument '%s'. Try 'killswitchd --help'.\n", argv[optind]);
                return 2;
        }
        if (check)
                return check_policies(o.config_dir);

        /* Before any thread: capabilities are per thread. */
        r = privs_drop();
        if (r < 0)
                log_warning_errno(r, "Could not drop capabilities other than CAP_NET_ADMIN: %m");
        r = manager_new(&o, &m);
        if (r < 0) {
                log_error_errno(r, "Failed to start: %m");
                return EXIT_FAILURE;
        }
        r = manager_startup(m);
        if (r >= 0)
                r = manager_run(m);
        manager_free(m);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
