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
#include "fleet.h"
#include "metrics.h"
#include "output.h"
#include "strv.h"
#include "timespec.h"

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
        ARG_FOR,
        ARG_UNTIL,
        ARG_CONFIRM,
        ARG_IN,
        ARG_AT,
};

/* Which schedule options a verb takes (struct verb.schedule). */
enum {
        SCHEDULE_ISOLATE = 1,   /* --for, --until, --confirm */
        SCHEDULE_RESTORE = 2,   /* --in, --at */
};

/* With -H, fleet_verb() passes every field on to the remote killswitchctl as an option. */
struct verb_args {
        const char *policy;
        const char *reason;
        bool force;
        int lines;              /* -n: entries of the history; -1 if not given */
        const char *restore_in;         /* --for / --in: a duration, sent as is (the agent's clock counts) */
        const char *restore_at;         /* --until / --at: an RFC 3339 UTC instant, from local time here */
        const char *confirm_in;         /* --confirm: a duration */
        char restore_at_buf[TIMESPEC_RFC3339_MAX];
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
        unsigned schedule;      /* SCHEDULE_* */
};

static const char *arg_socket;
static enum json_mode arg_json = JSON_OFF;
static bool arg_legend = true;
static struct fleet_options arg_fleet;   /* -H, --hosts-file, ...: see fleet_verb() */

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

static int print_cancelled(json_t *status)
{
        fputs("Scheduled restore cancelled: the isolation stays in force.\n", stdout);
        return EXIT_OK;
}

static int print_confirmed(json_t *status)
{
        output_confirmed(stdout, status);
        return EXIT_OK;
}

static int print_heartbeat(json_t *params)
{
        output_heartbeat(stdout, params, time(NULL));
        return EXIT_OK;
}

static int cancel_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Cancel", parameters, print_cancelled);
}

static int confirm_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Confirm", parameters, print_confirmed);
}

static int heartbeat_main(json_t *parameters)
{
        return call_and_print("io.killswitch.Heartbeat", parameters, print_heartbeat);
}

static const struct verb verbs[] = {
        { "status",   status_main,   "",                         "Show the state, the policy in force and its counters", false, false, false, false, 0 },
        { "isolate",  isolate_main,  "[POLICY] [--reason T] [--for D|--until T] [--confirm D] [--force]", "Cut the uplinks; keep the policy's gateways", true, true, true, false, SCHEDULE_ISOLATE },
        { "restore",  restore_main,  "[--reason TEXT] [--in D|--at T]", "Lift the isolation (now, or at a time)", false, true, false, false, SCHEDULE_RESTORE },
        { "cancel",   cancel_main,   "[--reason TEXT]",          "Drop the scheduled restore; stay isolated",           false, true, false, false, 0 },
        { "confirm",  confirm_main,  "",                         "Keep a commit-confirmed isolation (no revert)",       false, false, false, false, 0 },
        { "heartbeat", heartbeat_main, "",                       "Push back the dead man's switch of killswitch.conf",  false, false, false, false, 0 },
        { "policies", policies_main, "",                         "List the loaded policies and those that failed",     false, false, false, false, 0 },
        { "show",     show_main,     "[POLICY]",                 "Print the nftables ruleset POLICY compiles to",      true,  false, false, false, 0 },
        { "reload",   reload_main,   "",                         "Re-read the policy files",                           false, false, false, false, 0 },
        { "history",  history_main,  "[-n N]",                   "Show the last state changes: who, when, what, why",  false, false, false, true, 0 },
        { "metrics",  metrics_main,  "",                         "Print the status as Prometheus metrics",             false, false, false, false, 0 },
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
        fleet_options_help(stdout);
}

static void help(void)
{
        char left[96];

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
        if (verb->schedule & SCHEDULE_ISOLATE)
                printf("     --for DURATION  Restore by itself after DURATION (90s, 15m, 2h, 1h30m, 1d)\n"
                       "     --until TIME    Restore by itself at TIME (18:00, 2026-12-01 18:00, RFC 3339)\n"
                       "     --confirm DURATION\n"
                       "                     Commit-confirmed: unless 'killswitchctl confirm' comes within\n"
                       "                     DURATION, go back to the previous state\n");
        if (verb->schedule & SCHEDULE_RESTORE)
                printf("     --in DURATION   Do not restore now: restore after DURATION (while isolated)\n"
                       "     --at TIME       Do not restore now: restore at TIME (local time unless given)\n");
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
        char error[512];
        int r;

        r = fleet_parse_option(&arg_fleet, c, value, error, sizeof(error));
        if (r != 0)
                return r < 0 ? usage_error(verb, "%s", error) : 1;
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
        { "no-legend", no_argument,       NULL, ARG_NO_LEGEND },       \
        FLEET_LONG_OPTIONS

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
        while ((c = getopt_long(argc, argv, "+:h" FLEET_SHORT_OPTIONS, options, NULL)) >= 0) {
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

/*
 * --for/--in and --confirm: a duration, checked here and sent as typed (the
 * agent counts it on its clock). --until/--at: a time, local here unless it
 * says otherwise, sent as an absolute RFC 3339 UTC instant. Returns 1 if c was
 * one of them, 0 if not, < 0 on a usage error.
 */
static int parse_schedule_option(const struct verb *verb, int c, const char *value, struct verb_args *args)
{
        static const struct {
                int c;
                const char *name;
                unsigned schedule;
                bool time;
        } opts[] = {
                { ARG_FOR, "--for", SCHEDULE_ISOLATE, false },
                { ARG_UNTIL, "--until", SCHEDULE_ISOLATE, true },
                { ARG_CONFIRM, "--confirm", SCHEDULE_ISOLATE, false },
                { ARG_IN, "--in", SCHEDULE_RESTORE, false },
                { ARG_AT, "--at", SCHEDULE_RESTORE, true },
        };
        uint64_t usec, now = (uint64_t) time(NULL) * TIMESPEC_USEC_PER_SEC;

        for (size_t i = 0; i < ELEMENTSOF(opts); i++) {
                if (opts[i].c != c)
                        continue;
                if (!(verb->schedule & opts[i].schedule))
                        return usage_error(verb->name, "'%s' takes no %s", verb->name, opts[i].name);
                if (opts[i].time) {
                        if (timespec_parse_time(value, now, &usec) < 0)
                                return usage_error(verb->name, "%s: \"%s\" is not a time; %s", opts[i].name, value,
                                                   TIMESPEC_TIME_HELP);
                        if (usec <= now)
                                return usage_error(verb->name, "%s: %s has already passed", opts[i].name, value);
                        args->restore_at = timespec_format_rfc3339(usec, args->restore_at_buf,
                                                                   sizeof(args->restore_at_buf));
                } else {
                        if (timespec_parse_duration(value, &usec) < 0 || usec < TIMESPEC_USEC_PER_SEC)
                                return usage_error(verb->name, "%s: \"%s\" is not a duration of at least 1s; %s",
                                                   opts[i].name, value, TIMESPEC_DURATION_HELP);
                        if (c == ARG_CONFIRM)
                                args->confirm_in = value;
                        else
                                args->restore_in = value;
                }
                if (args->restore_in && args->restore_at)
                        return usage_error(verb->name, "give only one of %s", verb->schedule & SCHEDULE_ISOLATE
                                           ? "--for and --until" : "--in and --at");
                return 1;
        }
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
                { "for", required_argument, NULL, ARG_FOR },
                { "until", required_argument, NULL, ARG_UNTIL },
                { "confirm", required_argument, NULL, ARG_CONFIRM },
                { "in", required_argument, NULL, ARG_IN },
                { "at", required_argument, NULL, ARG_AT },
                {}
        };
        int c, r;

        optind = 0;   /* GNU getopt: start over, on a new argv */
        while ((c = getopt_long(argc, argv, ":hn:" FLEET_SHORT_OPTIONS, options, NULL)) >= 0) {
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
                r = parse_schedule_option(verb, c, optarg, args);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
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
        /* Who ran killswitchctl -H, and where (docs/fleet.md); if not UTF-8, left out. */
        if (verb->takes_reason && getenv("KILLSWITCH_ORIGIN") && *getenv("KILLSWITCH_ORIGIN"))
                (void) set_string(parameters, "origin", getenv("KILLSWITCH_ORIGIN"));
        if (args->lines >= 0 && json_object_set_new(parameters, "n", json_integer(args->lines)) < 0)
                return EXIT_FAILED;
        if (set_string(parameters, "restore_in", args->restore_in) < 0 ||
            set_string(parameters, "restore_at", args->restore_at) < 0 ||
            set_string(parameters, "confirm_in", args->confirm_in) < 0)
                return EXIT_FAILED;
        return verb->run(parameters);
}

/*
 * -H: the same verb on every host, run there by its own killswitchctl (docs/fleet.md).
 * Every field of struct verb_args must be passed on here as an option.
 */
static int fleet_verb(const struct verb *verb, const struct verb_args *args)
{
        struct output_flags flags = output_flags();
        bool isolate = verb->schedule & SCHEDULE_ISOLATE;
        _cleanup_strv_ char **argv = NULL;
        char lines[16];
        int r;

        if (arg_socket) {
                usage_error(verb->name, "--socket cannot be combined with -H or --hosts-file");
                return EXIT_USAGE;
        }
        snprintf(lines, sizeof(lines), "%d", args->lines);
        r = strv_push(&argv, "--json=short") ?: strv_push(&argv, verb->name);
        if (r == 0 && args->reason)
                r = strv_push(&argv, "--reason") ?: strv_push(&argv, args->reason);
        if (r == 0 && args->force)
                r = strv_push(&argv, "--force");
        if (r == 0 && args->lines >= 0)
                r = strv_push(&argv, "-n") ?: strv_push(&argv, lines);
        if (r == 0 && args->restore_in)
                r = strv_push(&argv, isolate ? "--for" : "--in") ?: strv_push(&argv, args->restore_in);
        /* Already an absolute instant: the time the user meant here, whatever the host's time zone. */
        if (r == 0 && args->restore_at)
                r = strv_push(&argv, isolate ? "--until" : "--at") ?: strv_push(&argv, args->restore_at);
        if (r == 0 && args->confirm_in)
                r = strv_push(&argv, "--confirm") ?: strv_push(&argv, args->confirm_in);
        if (r == 0 && args->policy)
                r = strv_push(&argv, "--") ?: strv_push(&argv, args->policy);
        if (r < 0) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        return fleet_main(&arg_fleet, argv, arg_json, &flags);
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
        r = fleet_enabled(&arg_fleet) ? fleet_verb(verb, &args) : run_verb(verb, &args);
        fleet_options_clear(&arg_fleet);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "killswitchctl: cannot write the output: %s\n", strerror(errno));
                return EXIT_FAILED;
        }
        return r;
}
