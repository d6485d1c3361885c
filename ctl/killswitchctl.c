/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "client.h"
#include "metrics.h"
#include "output.h"

#define CALL_TIMEOUT_SEC 30
/* io.killswitch.History: its default and maximum "n" (docs/protocol.md). */
#define HISTORY_DEFAULT_LINES 20
#define HISTORY_MAX_LINES 1000
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,       /* the agent refused or failed, or answered nothing */
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,  /* no connection to the agent */
};

enum {
        ARG_VERSION = 0x100,
        ARG_SOCKET,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_REASON,
        ARG_FORCE,
};

struct verb_args {
        const char *policy;
        const char *reason;
        bool force;
        int lines;              /* -n: entries of the history; -1 if not given */
};

struct verb {
        const char *name;
        int (*run)(json_t *parameters);  /* returns the exit status */
        const char *synopsis;  /* what follows the verb */
        const char *help;
        bool takes_policy;
        bool takes_reason;      /* a state change: also sends $SSH_CONNECTION */
        bool takes_force;
        bool takes_lines;
};

static const char *arg_socket;
static enum json_mode arg_json = JSON_OFF;
static bool arg_legend = true;

static const char *socket_path(void)
{
        const char *env = getenv("KILLSWITCH_SOCKET");

        if (arg_socket)
                return arg_socket;
        return env && *env ? env : SOCKET_PATH;
}

static struct output_flags output_flags(void)
{
        const char *no_color = getenv("NO_COLOR");
        const char *term = getenv("TERM");

        return (struct output_flags) {
                .color = isatty(STDOUT_FILENO) && !(no_color && *no_color) &&
                         !(term && strcmp(term, "dumb") == 0),
                .legend = arg_legend,
                .now = time(NULL),
        };
}

static const char *call_strerror(int r)
{
        switch (-r) {
        case ETIMEDOUT:
                return "killswitchd did not reply within " STRINGIFY(CALL_TIMEOUT_SEC) "s";
        case ECONNRESET:
        case EPIPE:
                return "killswitchd closed the connection without replying";
        case EBADMSG:
                return "killswitchd sent a malformed reply";
        case EMSGSIZE:
                return "the reply of killswitchd is too large";
        default:
                return strerror(-r);
        }
}

/*
 * Call method on the agent. On EXIT_OK *ret_reply holds the reply, which may
 * be an error reply; otherwise stderr says why there is none.
 */
static int call_raw(const char *method, json_t *parameters, json_t **ret_reply)
{
        uint64_t deadline = client_deadline(CALL_TIMEOUT_SEC * 1000000ULL);
        const char *path = socket_path();
        _cleanup_close_ int fd = -1;
        int r;

        fd = client_connect(path, deadline);
        if (fd < 0) {
                fprintf(stderr, "killswitchctl: cannot reach killswitchd at %s: %s.%s\n", path, strerror(-fd),
                        fd == -ENOENT || fd == -ECONNREFUSED ? " Is killswitchd running?" : "");
                return EXIT_UNREACHABLE;
        }
        r = client_call(fd, method, parameters, deadline, ret_reply);
        if (r < 0) {
                fprintf(stderr, "killswitchctl: %s: %s.\n", method, call_strerror(r));
                return EXIT_FAILED;
        }
        return EXIT_OK;
}

static int check_reply(json_t *reply)
{
        const char *error = reply_error(reply);
        const char *message;

        if (!error)
                return EXIT_OK;
        message = json_string_value(json_object_get(reply_parameters(reply), "message"));
        fputs("killswitchctl: ", stderr);
        fputs_safe(message && *message ? message : error, stderr);
        fputc('\n', stderr);
        return EXIT_FAILED;
}

/* Like call_raw(), but an error reply is said on stderr and fails. */
static int call(const char *method, json_t *parameters, json_t **ret_reply)
{
        int r;

        r = call_raw(method, parameters, ret_reply);
        if (r != EXIT_OK)
                return r;
        return check_reply(*ret_reply);
}

static int call_and_print(const char *method, json_t *parameters, int (*print)(json_t *params))
{
        _cleanup_json_ json_t *reply = NULL;
        int r;

        r = call(method, parameters, &reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json != JSON_OFF) {
                output_json(stdout, reply_parameters(reply), arg_json);
                return EXIT_OK;
        }
        return print(reply_parameters(reply));
}

static int print_status(json_t *status)
{
        struct output_flags flags = output_flags();

        output_status(stdout, status, &flags);
        return EXIT_OK;
}

static int print_isolated(json_t *status)
{
        output_isolated(stdout, status);
        return EXIT_OK;
}

static int print_restored(json_t *status)
{
        output_restored(stdout, status);
        return EXIT_OK;
}

static int print_policies(json_t *params)
{
        struct output_flags flags = output_flags();

        if (output_policies(stdout, stderr, params, &flags) < 0) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(ENOMEM));
                return EXIT_FAILED;
        }
        return EXIT_OK;
}

static int print_history(json_t *params)
{
        struct output_flags flags = output_flags();

        if (output_history(stdout, json_object_get(params, "entries"), &flags) < 0) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(ENOMEM));
                return EXIT_FAILED;
        }
        return EXIT_OK;
}

static int print_ruleset(json_t *params)
{
        output_ruleset(stdout, params);
        return EXIT_OK;
}

static int status_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Status", parameters, print_status);
}

static int isolate_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Isolate", parameters, print_isolated);
}

static int restore_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Restore", parameters, print_restored);
}

static int policies_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Policies", parameters, print_policies);
}

static int show_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Show", parameters, print_ruleset);
}

/* --json prints the entries alone: an array, oldest first. */
static int history_main(json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL;
        int r;

        r = call("io.killswitch.History", parameters, &reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json == JSON_OFF)
                return print_history(reply_parameters(reply));
        output_json(stdout, json_object_get(reply_parameters(reply), "entries") ?: json_array(), arg_json);
        return EXIT_OK;
}

/*
 * Prometheus text exposition of the status, for node_exporter's textfile
 * collector. Without an answer from the agent it still prints killswitch_up 0,
 * so that a file written from it says so, and exits as any other verb would.
 */
static int metrics_main(json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL, *samples = NULL;
        int r;

        r = call("io.killswitch.Status", parameters, &reply);
        samples = metrics_from_status(r == EXIT_OK ? reply_parameters(reply) : NULL);
        if (!samples) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(ENOMEM));
                return EXIT_FAILED;
        }
        if (arg_json != JSON_OFF)
                output_json(stdout, samples, arg_json);
        else
                metrics_print(stdout, samples);
        return r;
}

/* ReloadFailed still loaded every good file: show those, then the failures on stderr. */
static int reload_main(json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL;
        const char *error;
        int r;

        r = call_raw("io.killswitch.Reload", parameters, &reply);
        if (r != EXIT_OK)
                return r;
        error = reply_error(reply);
        if (error && strcmp(error, "io.killswitch.ReloadFailed") != 0)
                return check_reply(reply);

        if (arg_json != JSON_OFF)
                output_json(stdout, reply_parameters(reply), arg_json);
        else
                output_loaded(stdout, reply_parameters(reply));
        if (!error)
                return EXIT_OK;
        fflush(stdout);
        check_reply(reply);
        output_failed(stderr, json_object_get(reply_parameters(reply), "failed"), NULL, false);
        return EXIT_FAILED;
}

static const struct verb verbs[] = {
        { "status",   status_main,   "",                         "Show the state, the policy in force and its counters", false, false, false, false },
        { "isolate",  isolate_main,  "[POLICY] [--reason TEXT] [--force]", "Cut the uplinks; keep the policy's gateways",         true,  true, true, false },
        { "restore",  restore_main,  "[--reason TEXT]",          "Lift the isolation; open the uplinks",                false, true, false, false },
        { "policies", policies_main, "",                         "List the loaded policies and those that failed",     false, false, false, false },
        { "show",     show_main,     "[POLICY]",                 "Print the nftables ruleset POLICY compiles to",      true,  false, false, false },
        { "reload",   reload_main,   "",                         "Re-read the policy files",                           false, false, false, false },
        { "history",  history_main,  "[-n N]",                   "Show the last state changes: who, when, what, why",  false, false, false, true },
        { "metrics",  metrics_main,  "",                         "Print the status as Prometheus metrics",             false, false, false, false },
};

static const struct verb *find_verb(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

static void print_options_help(void)
{
        printf("  -h --help          Show this help\n"
               "     --version       Show the version\n"
               "     --socket PATH   Talk to killswitchd at PATH (default: $KILLSWITCH_SOCKET,\n"
               "                     or %s)\n"
               "     --json[=MODE]   Print the reply as JSON; MODE is pretty (default) or short\n"
               "     --no-legend     Omit column headers and summary lines\n", SOCKET_PATH);
}

static void help(void)
{
        char left[64];

        printf("killswitchctl [OPTIONS...] VERB [ARGS...]\n\n"
               "Query and control killswitchd, the network isolation agent.\n\n"
               "Verbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                snprintf(left, sizeof(left), "%s %s", verbs[i].name, verbs[i].synopsis);
                printf("  %-34s %s\n", left, verbs[i].help);
        }
        printf("\nOptions:\n");
        print_options_help();
        printf("\nWithout a VERB, status is shown. See killswitchctl(1).\n");
}

static void verb_help(const struct verb *verb)
{
        printf("killswitchctl [OPTIONS...] %s%s%s\n\n%s.\n\nOptions:\n", verb->name,
               *verb->synopsis ? " " : "", verb->synopsis, verb->help);
        if (verb->takes_reason)
                printf("     --reason TEXT   Why: recorded with the change, shown by status\n");
        if (verb->takes_force)
                printf("     --force         Isolate even if it cuts your own SSH session ($SSH_CONNECTION)\n");
        if (verb->takes_lines)
                printf("  -n --lines N       Show the last N entries (default %d, at most %d)\n",
                       HISTORY_DEFAULT_LINES, HISTORY_MAX_LINES);
        print_options_help();
}

static int usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *verb, const char *fmt, ...)
{
        va_list ap;

        fputs("killswitchctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "; see 'killswitchctl %s%s--help'.\n", verb ?: "", verb ? " " : "");
        return -EINVAL;
}

/* getopt_long() with opterr = 0 returned '?' or ':' for the option just parsed. */
static int option_error(int c, int argc, char *argv[], const char *verb)
{
        const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

        if (c == ':')
                return usage_error(verb, "option '%s' needs an argument", arg);
        if (optopt > 0 && optopt < 0x80 && arg[0] == '-' && arg[1] != '-')
                return usage_error(verb, "unknown option '-%c'", optopt);
        if (optopt > 0 && strchr(arg, '='))
                return usage_error(verb, "option '%.*s' takes no argument", (int) strcspn(arg, "="), arg);
        return usage_error(verb, "unknown option '%s'", arg);
}

/* Options valid before and after the verb. Returns 1 if c was one, 0 if not, < 0 if bad. */
static int parse_global_option(int c, const char *value, const char *verb)
{
        switch (c) {
        case ARG_SOCKET:
                if (!*value)
                        return usage_error(verb, "--socket needs a path");
                arg_socket = value;
                return 1;
        case ARG_JSON:
                if (!value || strcmp(value, "pretty") == 0)
                        arg_json = JSON_PRETTY;
                else if (strcmp(value, "short") == 0)
                        arg_json = JSON_SHORT;
                else
                        return usage_error(verb, "unknown --json mode '%s', expected pretty or short", value);
                return 1;
        case ARG_NO_LEGEND:
                arg_legend = false;
                return 1;
        default:
                return 0;
        }
}

#define GLOBAL_OPTIONS                                                  \
        { "help",      no_argument,       NULL, 'h'           },       \
        { "socket",    required_argument, NULL, ARG_SOCKET    },       \
        { "json",      optional_argument, NULL, ARG_JSON      },       \
        { "no-legend", no_argument,       NULL, ARG_NO_LEGEND }

/* Returns 1 to go on with the verb at argv[optind], 0 to exit successfully, < 0 on a usage error. */
static int parse_argv(int argc, char *argv[])
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                r = parse_global_option(c, optarg, NULL);
                if (r != 0) {
                        if (r < 0)
                                return r;
                        continue;
                }
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("killswitchctl %s\n", VERSION);
                        return 0;
                default:
                        return option_error(c, argc, argv, NULL);
                }
        }
        return 1;
}

static int parse_lines(const char *s, int *ret)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v < 0 || v > HISTORY_MAX_LINES)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* Parse what follows the verb (argv[0]); options and arguments may be mixed. Same returns as parse_argv(). */
static int parse_verb_argv(const struct verb *verb, int argc, char *argv[], struct verb_args *args)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "reason", required_argument, NULL, ARG_REASON },
                { "force", no_argument, NULL, ARG_FORCE },
                { "lines", required_argument, NULL, 'n' },
                {}
        };
        int c, r;

        optind = 0;   /* GNU getopt: start over, on a new argv */
        while ((c = getopt_long(argc, argv, ":hn:", options, NULL)) >= 0) {
                r = parse_global_option(c, optarg, verb->name);
                if (r != 0) {
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c == 'h') {
                        verb_help(verb);
                        return 0;
                }
                if (c == ARG_REASON && verb->takes_reason) {
                        args->reason = optarg;
                        continue;
                }
                if (c == ARG_REASON)
                        return usage_error(verb->name, "'%s' takes no --reason", verb->name);
                if (c == ARG_FORCE && verb->takes_force) {
                        args->force = true;
                        continue;
                }
                if (c == ARG_FORCE)
                        return usage_error(verb->name, "'%s' takes no --force", verb->name);
                if (c == 'n' && verb->takes_lines) {
                        r = parse_lines(optarg, &args->lines);
                        if (r < 0)
                                return usage_error(verb->name, "-n needs a number from 0 to %d, not '%s'",
                                                   HISTORY_MAX_LINES, optarg);
                        continue;
                }
                if (c == 'n')
                        return usage_error(verb->name, "'%s' takes no -n", verb->name);
                return option_error(c, argc, argv, verb->name);
        }

        if (optind < argc && verb->takes_policy)
                args->policy = argv[optind++];
        if (optind < argc)
                return usage_error(verb->name, "unexpected argument '%s' for '%s'", argv[optind], verb->name);
        return 1;
}

static int set_string(json_t *object, const char *key, const char *value)
{
        json_t *v;

        if (!value)
                return 0;
        v = json_string(value);
        if (!v)
                return -EILSEQ;   /* jansson takes UTF-8 only */
        return json_object_set_new(object, key, v) < 0 ? -ENOMEM : 0;
}

static int run_verb(const struct verb *verb, const struct verb_args *args)
{
        _cleanup_json_ json_t *parameters = json_object();

        if (!parameters)
                return EXIT_FAILED;
        if (set_string(parameters, "policy", args->policy) < 0 ||
            set_string(parameters, "reason", args->reason) < 0) {
                usage_error(verb->name, "POLICY and --reason must be valid UTF-8");
                return EXIT_USAGE;
        }
        /* Lets the agent refuse a change that would cut this very session, and record where it came from. */
        if (verb->takes_reason && set_string(parameters, "ssh_connection", getenv("SSH_CONNECTION")) < 0)
                return EXIT_FAILED;
        if (args->force && json_object_set_new(parameters, "force", json_true()) < 0)
                return EXIT_FAILED;
        if (args->lines >= 0 && json_object_set_new(parameters, "n", json_integer(args->lines)) < 0)
                return EXIT_FAILED;
        return verb->run(parameters);
}

int main(int argc, char *argv[])
{
        static char *default_argv[] = { (char *) "status", NULL };
        struct verb_args args = { .lines = -1 };
        const struct verb *verb;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_OK;

        argc -= optind;
        argv += optind;
        if (argc == 0) {
                argc = 1;
                argv = default_argv;
        }
        verb = find_verb(argv[0]);
        if (!verb) {
                usage_error(NULL, "unknown verb '%s'", argv[0]);
                return EXIT_USAGE;
        }

        r = parse_verb_argv(verb, argc, argv, &args);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_OK;
        r = run_verb(verb, &args);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "killswitchctl: cannot write the output: %s\n", strerror(errno));
                return EXIT_FAILED;
        }
        return r;
}
