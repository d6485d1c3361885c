/* SPDX-License-Identifier: MIT */
#include <ctype.h>
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
#include "output-drops.h"
#include "fleet.h"
#include "metrics.h"
#include "output.h"
#include "report.h"
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
        EXIT_WAITING = 4,      /* restore: recorded, waiting for a second person ([Restore] Approvals=2) */
        EXIT_OPEN = 5,         /* status: the state says isolated, but no cut is in force */
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
        ARG_OUTPUT,
        ARG_DUMP_VERBS,
        ARG_TOP,
        ARG_SINCE,
};

/* The options that only some verbs take: bits of struct verb.options, rows of verb_options[]. */
enum verb_opt {
        VERB_OPT_REASON,
        VERB_OPT_FORCE,
        VERB_OPT_LINES,
        VERB_OPT_FOR,
        VERB_OPT_UNTIL,
        VERB_OPT_CONFIRM,
        VERB_OPT_IN,
        VERB_OPT_AT,
        VERB_OPT_OUTPUT,
        VERB_OPT_TOP,
        VERB_OPT_SINCE,
        _VERB_OPT_MAX,
};
#define OPT(x) (1u << VERB_OPT_##x)

struct verb_option {
        const char *name;       /* the long option, without "--" */
        char short_name;
        int id;                 /* what getopt_long() returns */
        const char *metavar;    /* the argument; NULL for none */
        bool or_next;           /* the synopsis offers this or the next one: [--for D|--until T] */
        const char *help;       /* lines after the first are indented under it */
};

static const struct verb_option verb_options[_VERB_OPT_MAX] = {
        [VERB_OPT_REASON] = {
                .name = "reason", .id = ARG_REASON, .metavar = "TEXT",
                .help = "Why: recorded with the change, shown by status",
        },
        [VERB_OPT_FORCE] = {
                .name = "force", .id = ARG_FORCE,
                .help = "isolate: even if it cuts your own SSH session ($SSH_CONNECTION);\n"
                        "restore: as root, without the second person [Restore] Approvals=2 asks for",
        },
        [VERB_OPT_LINES] = {
                .name = "lines", .short_name = 'n', .id = 'n', .metavar = "N",
                .help = "Show the last N entries (default " STRINGIFY(HISTORY_DEFAULT_LINES) ", at most "
                        STRINGIFY(HISTORY_MAX_LINES) ")",
        },
        [VERB_OPT_FOR] = {
                .name = "for", .id = ARG_FOR, .metavar = "DURATION", .or_next = true,
                .help = "Restore by itself after DURATION (90s, 15m, 2h, 1h30m, 1d)",
        },
        [VERB_OPT_UNTIL] = {
                .name = "until", .id = ARG_UNTIL, .metavar = "TIME",
                .help = "isolate: restore by itself at TIME (18:00, 2026-12-01 18:00, RFC 3339);\n"
                        "report: the window ends at TIME",
        },
        [VERB_OPT_CONFIRM] = {
                .name = "confirm", .id = ARG_CONFIRM, .metavar = "DURATION",
                .help = "Commit-confirmed: unless 'killswitchctl confirm' comes within\n"
                        "DURATION, go back to the previous state",
        },
        [VERB_OPT_IN] = {
                .name = "in", .id = ARG_IN, .metavar = "DURATION", .or_next = true,
                .help = "Do not restore now: restore after DURATION (while isolated)",
        },
        [VERB_OPT_AT] = {
                .name = "at", .id = ARG_AT, .metavar = "TIME",
                .help = "Do not restore now: restore at TIME (local time unless given)",
        },
        [VERB_OPT_OUTPUT] = {
                .name = "output", .short_name = 'o', .id = 'o', .metavar = "FILE",
                .help = "Write FILE atomically (a new file beside it, then a rename)",
        },
        [VERB_OPT_TOP] = {
                .name = "top", .id = ARG_TOP, .metavar = "N",
                .help = "Show the N tuples with the most packets (default: all)",
        },
        [VERB_OPT_SINCE] = {
                .name = "since", .id = ARG_SINCE, .metavar = "TIME",
                .help = "From TIME (07:00: the last such time; 2026-12-01 07:00, RFC 3339)\n"
                        "or that long ago (10m, 1h):\n"
                        "report: the window from then, instead of the last isolation;\n"
                        "drops: the tuples seen since then",
        },
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
        const char *output;             /* metrics --output: a file, written here (never with -H) */
        int top;                        /* drops --top: tuples; -1 if not given */
        const char *since;              /* report, drops --since: an RFC 3339 UTC instant */
        const char *until;              /* report --until: the same */
        char restore_at_buf[TIMESPEC_RFC3339_MAX];
        char since_buf[TIMESPEC_RFC3339_MAX];
        char until_buf[TIMESPEC_RFC3339_MAX];
};

/* Who may call a verb's method: docs/killswitchctl.1.scd, PERMISSIONS; the agent decides (methods.c). */
enum verb_access {
        ACCESS_ANYONE,          /* any local user who can reach the socket */
        ACCESS_ADMIN,           /* root or the group killswitch */
};

struct verb {
        const char *name;
        const char *method;             /* the Varlink method it calls */
        enum verb_access access;
        bool takes_policy;              /* [POLICY] */
        unsigned options;               /* OPT(...) */
        int (*print)(json_t *params);   /* the reply as text; returns the exit status */
        int (*run)(const struct verb *verb, json_t *parameters);  /* NULL: call, then print (or --json) */
        const char *help;
};

static const char *arg_socket;
static enum json_mode arg_json = JSON_OFF;
static const char *arg_output;          /* metrics --output FILE */
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
        return strcmp(error, "io.killswitch.WaitingForApproval") == 0 ? EXIT_WAITING : EXIT_FAILED;
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
        return output_status_applied(status) ? EXIT_OK : EXIT_OPEN;
}

static int print_isolated(json_t *status)
{
        output_isolated(stdout, status);
        return EXIT_OK;
}

/*
 * Restored, or scheduled (as asked, or an approved request's own time); else nothing changed
 * (still isolated, nothing scheduled: an approval of a request that asked for nothing any more),
 * which is said, and fails, with --json too.
 */
static int restore_main(const struct verb *verb, json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL;
        bool asked_schedule = json_object_get(parameters, "restore_in") || json_object_get(parameters, "restore_at");
        json_t *status;
        int r;

        r = call(verb->method, parameters, &reply);
        if (r != EXIT_OK)
                return r;
        status = reply_parameters(reply);
        if (arg_json != JSON_OFF)
                output_json(stdout, status, arg_json);
        else
                output_restored(stdout, status, asked_schedule);
        if (output_restore_done(status))
                return EXIT_OK;
        fflush(stdout);
        fputs("killswitchctl: Nothing changed: still isolated with policy ", stderr);
        fputs_safe(json_string_value(json_object_get(status, "policy")) ?: "?", stderr);
        fputs(" and no restore is scheduled (see 'killswitchctl status' and 'killswitchctl history').\n", stderr);
        return EXIT_FAILED;
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

/* --json prints the entries alone: an array, oldest first. */
static int history_main(const struct verb *verb, json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL;
        int r;

        r = call(verb->method, parameters, &reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json == JSON_OFF)
                return verb->print(reply_parameters(reply));
        output_json(stdout, json_object_get(reply_parameters(reply), "entries") ?: json_array(), arg_json);
        return EXIT_OK;
}

static int print_drops(json_t *params)
{
        struct output_flags flags = output_flags();

        if (output_drops(stdout, params, &flags) < 0) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(ENOMEM));
                return EXIT_FAILED;
        }
        return EXIT_OK;
}

/* --json prints {"drops": [...], "overflow": N}, as docs/killswitchctl.1.scd says. */
static int drops_main(const struct verb *verb, json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL, *out = NULL;
        json_t *p;
        int r;

        r = call(verb->method, parameters, &reply);
        if (r != EXIT_OK)
                return r;
        p = reply_parameters(reply);
        if (arg_json == JSON_OFF)
                return verb->print(p);
        out = json_pack("{s:O, s:O}", "drops", json_object_get(p, "drops") ?: json_array(),
                        "overflow", json_object_get(p, "overflow") ?: json_integer(0));
        if (!out)
                return EXIT_FAILED;
        output_json(stdout, out, arg_json);
        return EXIT_OK;
}

/*
 * Prometheus text exposition of the status, for node_exporter's textfile
 * collector. Without an answer from the agent it still prints killswitch_up 0,
 * so that a file written from it says so, and exits as any other verb would.
 */
static int metrics_main(const struct verb *verb, json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL, *samples = NULL;
        int r;

        r = call(verb->method, parameters, &reply);
        samples = metrics_from_status(r == EXIT_OK ? reply_parameters(reply) : NULL);
        if (!samples) {
                fprintf(stderr, "killswitchctl: %s\n", strerror(ENOMEM));
                return EXIT_FAILED;
        }
        if (arg_output) {
                int w = metrics_write_file(arg_output, samples, arg_json);

                if (w < 0) {
                        fprintf(stderr, "killswitchctl: cannot write %s: %s\n", arg_output, strerror(-w));
                        return EXIT_FAILED;
                }
        } else if (arg_json != JSON_OFF) {
                output_json(stdout, samples, arg_json);
        } else {
                metrics_print(stdout, samples);
        }
        return r;
}

/* ReloadFailed still loaded every good file: show those, then the failures on stderr. */
static int reload_main(const struct verb *verb, json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL;
        const char *error;
        int r;

        r = call_raw(verb->method, parameters, &reply);
        if (r != EXIT_OK)
                return r;
        error = reply_error(reply);
        if (error && strcmp(error, "io.killswitch.ReloadFailed") != 0)
                return check_reply(reply);

        if (arg_json != JSON_OFF)
                output_json(stdout, reply_parameters(reply), arg_json);
        else
                output_loaded(stdout, reply_parameters(reply));
        if (arg_json == JSON_OFF) {
                fflush(stdout);
                output_warnings(stderr, reply_parameters(reply));
        }
        if (!error)
                return EXIT_OK;
        fflush(stdout);
        check_reply(reply);
        output_failed(stderr, json_object_get(reply_parameters(reply), "failed"), NULL, false);
        return EXIT_FAILED;
}

static int print_cancelled(json_t *status)
{
        output_cancelled(stdout, status);
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

/*
 * The report, and what was cut per inside host from the drop sensor when the agent has it and the
 * caller may read it (root or group killswitch); --json: the Report reply with "drops" added.
 */
static int report_main(const struct verb *verb, json_t *parameters)
{
        _cleanup_json_ json_t *reply = NULL, *dreply = NULL, *dparams = NULL;
        struct output_flags flags = output_flags();
        const char *note = NULL, *derr;
        json_t *report, *drops = NULL;
        int r;

        r = call(verb->method, parameters, &reply);
        if (r != EXIT_OK)
                return r;
        report = reply_parameters(reply);
        dparams = json_pack("{s:i}", "top", 1000);
        if (dparams && json_object_get(parameters, "since"))
                json_object_set(dparams, "since", json_object_get(parameters, "since"));
        if (dparams && call_raw("io.killswitch.Drops", dparams, &dreply) == EXIT_OK) {
                derr = reply_error(dreply);
                if (!derr)
                        drops = reply_parameters(dreply);
                else if (strcmp(derr, "org.varlink.service.MethodNotFound") == 0)
                        note = "this agent has no drop sensor";
                else if (strcmp(derr, "io.killswitch.PermissionDenied") == 0)
                        note = "the drop sensor needs root or group killswitch";
                else
                        note = json_string_value(json_object_get(reply_parameters(dreply), "message")) ?: derr;
        } else {
                note = "the drop sensor did not answer";
        }
        if (arg_json != JSON_OFF) {
                json_object_set(report, "drops", drops ? drops : json_null());
                output_json(stdout, report, arg_json);
                return EXIT_OK;
        }
        if (output_report(stdout, report, drops, note, &flags) < 0)
                return EXIT_FAILED;
        return EXIT_OK;
}

static const struct verb verbs[] = {
        {
                .name = "status", .method = "io.killswitch.Status", .access = ACCESS_ANYONE,
                .print = print_status,
                .help = "Show the state, the policy in force and its counters",
        },
        {
                .name = "isolate", .method = "io.killswitch.Isolate", .access = ACCESS_ADMIN,
                .takes_policy = true,
                .options = OPT(REASON) | OPT(FOR) | OPT(UNTIL) | OPT(CONFIRM) | OPT(FORCE),
                .print = print_isolated,
                .help = "Cut the uplinks; keep the policy's gateways and services",
        },
        {
                .name = "restore", .method = "io.killswitch.Restore", .access = ACCESS_ADMIN,
                .options = OPT(REASON) | OPT(IN) | OPT(AT) | OPT(FORCE),
                .run = restore_main,
                .help = "Lift the isolation (now, or at a time)",
        },
        {
                .name = "cancel", .method = "io.killswitch.Cancel", .access = ACCESS_ADMIN,
                .options = OPT(REASON),
                .print = print_cancelled,
                .help = "Drop the scheduled restore (and a restore request); stay isolated",
        },
        {
                .name = "confirm", .method = "io.killswitch.Confirm", .access = ACCESS_ADMIN,
                .print = print_confirmed,
                .help = "Keep a commit-confirmed isolation (no revert)",
        },
        {
                .name = "heartbeat", .method = "io.killswitch.Heartbeat", .access = ACCESS_ADMIN,
                .print = print_heartbeat,
                .help = "Push back the dead man's switch of killswitch.conf",
        },
        {
                .name = "policies", .method = "io.killswitch.Policies", .access = ACCESS_ANYONE,
                .print = print_policies,
                .help = "List the loaded policies and those that failed",
        },
        {
                .name = "show", .method = "io.killswitch.Show", .access = ACCESS_ANYONE,
                .takes_policy = true,
                .print = print_ruleset,
                .help = "Print the nftables ruleset POLICY compiles to",
        },
        {
                .name = "reload", .method = "io.killswitch.Reload", .access = ACCESS_ADMIN,
                .run = reload_main,
                .help = "Re-read the policy files",
        },
        {
                /* --json prints the entries alone. */
                .name = "history", .method = "io.killswitch.History", .access = ACCESS_ANYONE,
                .options = OPT(LINES),
                .print = print_history,
                .run = history_main,
                .help = "Show the last state changes: who, when, what, why",
        },
        {
                /* --json prints the Report reply with "drops" (the Drops reply, or null) added. */
                .name = "report", .method = "io.killswitch.Report", .access = ACCESS_ANYONE,
                .options = OPT(UNTIL) | OPT(SINCE),
                .run = report_main,
                .help = "Write the incident report of the last isolation (Markdown)",
        },
        {
                /* --json prints the tuples and the overflow alone. */
                .name = "drops", .method = "io.killswitch.Drops", .access = ACCESS_ADMIN,
                .options = OPT(TOP) | OPT(SINCE),
                .print = print_drops,
                .run = drops_main,
                .help = "Show what the isolation cut: which inside host tried to reach whom",
        },
        {
                .name = "metrics", .method = "io.killswitch.Status", .access = ACCESS_ANYONE,
                .run = metrics_main, .options = OPT(OUTPUT),
                .help = "Print the status as Prometheus metrics",
        },
};

static const struct verb *find_verb(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

/* The verb whose name is the first n characters of s, or NULL. */
static const struct verb *verb_find_n(const char *s, size_t n)
{
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strlen(verbs[i].name) == n && strncmp(verbs[i].name, s, n) == 0)
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

#define GLOBAL_OPTIONS                                                  \
        { "help",      no_argument,       NULL, 'h'           },       \
        { "socket",    required_argument, NULL, ARG_SOCKET    },       \
        { "json",      optional_argument, NULL, ARG_JSON      },       \
        { "no-legend", no_argument,       NULL, ARG_NO_LEGEND },       \
        FLEET_LONG_OPTIONS

/* "--reason TEXT", "-n N": an option as the synopsis names it. */
static void option_synopsis(const struct verb_option *o, char *buf, size_t size)
{
        if (o->short_name)
                snprintf(buf, size, "-%c%s%s", o->short_name, o->metavar ? " " : "", o->metavar ?: "");
        else
                snprintf(buf, size, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ?: "");
}

/* "[POLICY] [--reason TEXT] [--for DURATION|--until TIME] ...", from the table: --help and the man page. */
static void verb_synopsis(const struct verb *verb, char *buf, size_t size)
{
        char word[64];
        bool open = false;
        size_t n;

        snprintf(buf, size, "%s", verb->takes_policy ? "[POLICY]" : "");
        for (size_t i = 0; i < _VERB_OPT_MAX; i++) {
                if (!(verb->options & (1u << i)))
                        continue;
                option_synopsis(&verb_options[i], word, sizeof(word));
                n = strlen(buf);
                snprintf(buf + n, size - n, "%s%s", open ? "|" : *buf ? " [" : "[", word);
                /* [--for D|--until T]: the next option is the alternative, if the verb takes it too. */
                open = verb_options[i].or_next && i + 1 < _VERB_OPT_MAX && (verb->options & (1u << (i + 1)));
                n = strlen(buf);
                if (!open)
                        snprintf(buf + n, size - n, "]");
        }
}

static void help(void)
{
        char left[160], synopsis[128];

        printf("killswitchctl [OPTIONS...] VERB [ARGS...]\n\n"
               "Query and control killswitchd, the network isolation agent.\n\n"
               "Verbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                verb_synopsis(&verbs[i], synopsis, sizeof(synopsis));
                snprintf(left, sizeof(left), "%s %s", verbs[i].name, synopsis);
                if (strlen(left) > 34)
                        printf("  %s\n  %-34s %s\n", left, "", verbs[i].help);
                else
                        printf("  %-34s %s\n", left, verbs[i].help);
        }
        printf("\nOptions:\n");
        print_options_help();
        printf("\nWithout a VERB, status is shown. See killswitchctl(1).\n");
}

/*
 * The lines of an option's help that concern `verb`: a line "isolate: ..."
 * only under isolate (without its "isolate: "), lines without a verb's name
 * under every verb. Into buf; false if it did not fit.
 */
static bool option_help_for(const char *help, const char *verb, char *buf, size_t size)
{
        size_t used = 0;

        buf[0] = '\0';
        for (const char *line = help; *line;) {
                size_t n = strcspn(line, "\n"), v = strcspn(line, ": \n");
                bool named = line[v] == ':' && line[v + 1] == ' ' && verb_find_n(line, v);
                int k = 0;

                if (!named)
                        k = snprintf(buf + used, size - used, "%s%.*s", used ? "\n" : "", (int)n, line);
                else if (strlen(verb) == v && strncmp(line, verb, v) == 0)
                        k = snprintf(buf + used, size - used, "%s%c%.*s", used ? "\n" : "",
                                     used ? line[v + 2] : toupper((unsigned char)line[v + 2]), (int)(n - v - 3),
                                     line + v + 3);
                if (k < 0 || (size_t)k >= size - used)
                        return false;
                used += (size_t)k;
                /* A verb's line ends in ";" before the next verb's: not in its own help. */
                if (named && used && buf[used - 1] == ';')
                        buf[--used] = '\0';
                line += n + (line[n] == '\n');
        }
        return true;
}

/* "     --for DURATION  Restore by itself after ...", continuation lines indented under the text. */
static void verb_option_help(const struct verb_option *o, const char *verb)
{
        char left[64], text[1024];
        const char *h = option_help_for(o->help, verb, text, sizeof(text)) ? text : o->help;

        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ?: "");
        if (o->short_name)
                printf("  -%c ", o->short_name);
        else
                printf("     ");
        if (strlen(left) > 15)
                printf("%s\n%21s", left, "");
        else
                printf("%-16s", left);
        for (size_t n; (n = strcspn(h, "\n")), h[n] == '\n'; h += n + 1)
                printf("%.*s\n%21s", (int) n, h, "");
        printf("%s\n", h);
}

static void verb_help(const struct verb *verb)
{
        char synopsis[128];

        verb_synopsis(verb, synopsis, sizeof(synopsis));
        printf("killswitchctl [OPTIONS...] %s%s%s\n\n%s.\n\nOptions:\n", verb->name,
               *synopsis ? " " : "", synopsis, verb->help);
        for (size_t i = 0; i < _VERB_OPT_MAX; i++)
                if (verb->options & (1u << i))
                        verb_option_help(&verb_options[i], verb->name);
        print_options_help();
}

/* "--reason= " or "-n= --lines= ": the words of an option for --dump-verbs; "=": it takes an argument. */
static void dump_option(char short_name, const char *name, bool argument)
{
        if (short_name)
                printf(" -%c%s", short_name, argument ? "=" : "");
        printf(" --%s%s", name, argument ? "=" : "");
}

/*
 * Hidden: the verb table as data, one verb per line, tab-separated: the name,
 * the method, who may call it (anyone, admin), "policy" or "-" for the
 * argument, the synopsis ("-" if none), then its options ("--reason=" takes
 * an argument; "-" if none). Then a line "*" with the options valid before
 * and after any verb, and a line "-" with those valid only without a verb. completion/generate.sh builds the bash completion from it; the unit
 * test tests/unit/test-verbs.sh checks the man page and the completion with it.
 */
static void dump_verbs(void)
{
        static const struct option global[] = { GLOBAL_OPTIONS };
        char synopsis[128];

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                const struct verb *v = &verbs[i];

                verb_synopsis(v, synopsis, sizeof(synopsis));
                printf("%s\t%s\t%s\t%s\t%s\t", v->name, v->method, v->access == ACCESS_ADMIN ? "admin" : "anyone",
                       v->takes_policy ? "policy" : "-", *synopsis ? synopsis : "-");
                if (v->options == 0)
                        printf(" -");
                for (size_t j = 0; j < _VERB_OPT_MAX; j++)
                        if (v->options & (1u << j))
                                dump_option(verb_options[j].short_name, verb_options[j].name, verb_options[j].metavar);
                printf("\n");
        }
        printf("*\t-\t-\t-\t-\t");
        for (size_t i = 0; i < ELEMENTSOF(global); i++)
                dump_option(global[i].val > 0 && global[i].val < 0x80 ? (char) global[i].val : 0, global[i].name,
                            global[i].has_arg == required_argument);
        printf(" --json=pretty --json=short\n");
        printf("-\t-\t-\t-\t-\t --version\n");
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

/* Returns 1 to go on with the verb at argv[optind], 0 to exit successfully, < 0 on a usage error. */
static int parse_argv(int argc, char *argv[])
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "version", no_argument, NULL, ARG_VERSION },
                { "dump-verbs", no_argument, NULL, ARG_DUMP_VERBS },
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
                case ARG_DUMP_VERBS:
                        dump_verbs();
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
        if (errno != 0 || end == s || *end != '\0' || v < 1 || v > HISTORY_MAX_LINES)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* An option of verb_options[] as errors name it: "--for", "-n". */
static const char *option_name(const struct verb_option *o, char *buf, size_t size)
{
        if (o->short_name)
                snprintf(buf, size, "-%c", o->short_name);
        else
                snprintf(buf, size, "--%s", o->name);
        return buf;
}

/*
 * --for/--in and --confirm: a duration, checked here and sent as typed (the
 * agent counts it on its clock). --until/--at: a time, local here unless it
 * says otherwise, sent as an absolute RFC 3339 UTC instant.
 */
static int parse_duration_option(const struct verb *verb, const char *name, const char *value, const char **ret)
{
        char why[TIMESPEC_PROBLEM_MAX];
        uint64_t usec = 0;
        int r = timespec_parse_duration(value, &usec);

        if (r == -EINVAL)
                return usage_error(verb->name, "%s: \"%s\": %s; %s", name, value,
                                   timespec_duration_problem(value, why, sizeof(why)) ?: "not a duration",
                                   TIMESPEC_DURATION_HELP);
        if (r == 0 && usec < USEC_PER_SEC)
                return usage_error(verb->name, "%s: \"%s\" is shorter than 1s, the least killswitchd takes", name,
                                   value);
        if (r < 0 || usec > TIMESPEC_SCHEDULE_MAX_USEC)
                return usage_error(verb->name, "%s: \"%s\" is longer than a year (366d), the most killswitchd "
                                   "takes", name, value);
        *ret = value;
        return 0;
}

static int parse_time_option(const struct verb *verb, const char *name, const char *value, struct verb_args *args)
{
        uint64_t usec, now = (uint64_t) time(NULL) * USEC_PER_SEC;

        if (timespec_parse_time(value, now, &usec) < 0)
                return usage_error(verb->name, "%s: \"%s\" is not a time; %s", name, value, TIMESPEC_TIME_HELP);
        if (usec <= now)
                return usage_error(verb->name, "%s: %s has already passed", name, value);
        /* The agent's limit (methods.c), checked here too: a usage error like --in 367d, not a refusal. */
        if (usec - now > TIMESPEC_SCHEDULE_MAX_USEC)
                return usage_error(verb->name, "%s: %s is more than a year (366d) away, the most killswitchd takes",
                                   name, value);
        args->restore_at = timespec_format_rfc3339(usec, args->restore_at_buf, sizeof(args->restore_at_buf));
        return 0;
}

/*
 * report, drops --since, report --until: a time (local unless it says
 * otherwise), or a duration meaning that long ago. A window looks back: 07:00
 * is the last 07:00 (today's, or yesterday's before 07:00), and a --since
 * still ahead is a mistake.
 */
static int parse_window_option(const struct verb *verb, const char *name, const char *value, const char **ret,
                               char buf[static TIMESPEC_RFC3339_MAX])
{
        uint64_t usec, ago, now = (uint64_t) time(NULL) * USEC_PER_SEC;

        if (timespec_parse_duration(value, &ago) == 0)
                usec = ago < now ? now - ago : 0;
        else if (timespec_parse_time_past(value, now, &usec) < 0)
                return usage_error(verb->name, "%s: \"%s\" is neither a time nor a duration; %s", name, value,
                                   TIMESPEC_PAST_TIME_HELP);
        if (strcmp(name, "--since") == 0 && usec > now)
                return usage_error(verb->name, "--since: %s is in the future; give a time that has passed", value);
        *ret = timespec_format_rfc3339(usec, buf, TIMESPEC_RFC3339_MAX);
        return 0;
}

/* report's window as a whole: the agent's rules (methods.c), as usage errors that name the options. */
static int check_window(const struct verb *verb, const struct verb_args *args)
{
        char a[TIMESPEC_LOCAL_MAX], b[TIMESPEC_LOCAL_MAX];
        uint64_t since = 0, until = 0;

        if (!args->until)
                return 0;
        if (!args->since)
                return usage_error(verb->name, "--until needs --since");
        if (timespec_parse_rfc3339(args->since, &since) == 0 && timespec_parse_rfc3339(args->until, &until) == 0 &&
            until < since)
                return usage_error(verb->name, "--until (%s) is before --since (%s)",
                                   timespec_format_local(args->until, a, sizeof(a)),
                                   timespec_format_local(args->since, b, sizeof(b)));
        return 0;
}

static int parse_top(const struct verb *verb, const char *value, struct verb_args *args)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < 1 || v > 65536)
                return usage_error(verb->name, "--top needs a number from 1 to 65536, not '%s'", value);
        args->top = (int) v;
        return 0;
}

/* Take option i of verb_options[], which the verb takes, into args. */
static int parse_verb_option(const struct verb *verb, enum verb_opt i, const char *value, struct verb_args *args)
{
        char name[32];
        int r = 0;

        option_name(&verb_options[i], name, sizeof(name));
        switch (i) {
        case VERB_OPT_REASON:
                args->reason = value;
                return 0;
        case VERB_OPT_FORCE:
                args->force = true;
                return 0;
        case VERB_OPT_LINES:
                if (parse_lines(value, &args->lines) < 0)
                        return usage_error(verb->name, "-n needs a number from 1 to %d, not '%s'",
                                           HISTORY_MAX_LINES, value);
                return 0;
        case VERB_OPT_FOR:
        case VERB_OPT_IN:
                r = parse_duration_option(verb, name, value, &args->restore_in);
                break;
        case VERB_OPT_CONFIRM:
                return parse_duration_option(verb, name, value, &args->confirm_in);
        case VERB_OPT_OUTPUT:
                args->output = arg_output = value;
                return 0;
        case VERB_OPT_TOP:
                return parse_top(verb, value, args);
        case VERB_OPT_UNTIL:
                if (!(verb->options & OPT(FOR)))
                        return parse_window_option(verb, name, value, &args->until, args->until_buf);
                r = parse_time_option(verb, name, value, args);
                break;
        case VERB_OPT_AT:
                r = parse_time_option(verb, name, value, args);
                break;
        case VERB_OPT_SINCE:
                return parse_window_option(verb, name, value, &args->since, args->since_buf);
        case _VERB_OPT_MAX:
                break;
        }
        if (r == 0 && args->restore_in && args->restore_at)
                return usage_error(verb->name, "give only one of %s",
                                   verb->options & OPT(FOR) ? "--for and --until" : "--in and --at");
        return r;
}

/* Parse what follows the verb (argv[0]); options and arguments may be mixed. Same returns as parse_argv(). */
static int parse_verb_argv(const struct verb *verb, int argc, char *argv[], struct verb_args *args)
{
        static const struct option global[] = { GLOBAL_OPTIONS };
        struct option options[ELEMENTSOF(global) + _VERB_OPT_MAX + 1] = {};
        char shortopts[64] = ":h" FLEET_SHORT_OPTIONS;
        int c, r;

        memcpy(options, global, sizeof(global));
        for (size_t i = 0; i < _VERB_OPT_MAX; i++) {
                const struct verb_option *o = &verb_options[i];

                options[ELEMENTSOF(global) + i] = (struct option) {
                        o->name, o->metavar ? required_argument : no_argument, NULL, o->id
                };
                if (o->short_name)
                        snprintf(shortopts + strlen(shortopts), sizeof(shortopts) - strlen(shortopts), "%c%s",
                                 o->short_name, o->metavar ? ":" : "");
        }

        optind = 0;   /* GNU getopt: start over, on a new argv */
        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) >= 0) {
                char name[32];
                unsigned i;

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
                for (i = 0; i < _VERB_OPT_MAX && verb_options[i].id != c; i++)
                        ;
                if (i == _VERB_OPT_MAX)
                        return option_error(c, argc, argv, verb->name);
                if (!(verb->options & (1u << i)))
                        return usage_error(verb->name, "'%s' takes no %s", verb->name,
                                           option_name(&verb_options[i], name, sizeof(name)));
                r = parse_verb_option(verb, i, optarg, args);
                if (r < 0)
                        return r;
        }

        if (optind < argc && verb->takes_policy)
                args->policy = argv[optind++];
        if (optind < argc)
                return usage_error(verb->name, "unexpected argument '%s' for '%s'", argv[optind], verb->name);
        r = check_window(verb, args);
        return r < 0 ? r : 1;
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
        if ((verb->options & OPT(REASON)) && set_string(parameters, "ssh_connection", getenv("SSH_CONNECTION")) < 0)
                return EXIT_FAILED;
        /* For the audit where the agent cannot see this process (ProtectProc=invisible): recorded as claimed. */
        if ((verb->options & OPT(REASON)) && set_string(parameters, "command", "killswitchctl") < 0)
                return EXIT_FAILED;
        if (args->force && json_object_set_new(parameters, "force", json_true()) < 0)
                return EXIT_FAILED;
        /* Who ran killswitchctl -H, and where (docs/fleet.md); if not UTF-8, left out. */
        if ((verb->options & OPT(REASON)) && getenv("KILLSWITCH_ORIGIN") && *getenv("KILLSWITCH_ORIGIN"))
                (void) set_string(parameters, "origin", getenv("KILLSWITCH_ORIGIN"));
        if (args->lines >= 0 && json_object_set_new(parameters, "n", json_integer(args->lines)) < 0)
                return EXIT_FAILED;
        if (args->top >= 0 && json_object_set_new(parameters, "top", json_integer(args->top)) < 0)
                return EXIT_FAILED;
        if (set_string(parameters, "restore_in", args->restore_in) < 0 ||
            set_string(parameters, "restore_at", args->restore_at) < 0 ||
            set_string(parameters, "since", args->since) < 0 || set_string(parameters, "until", args->until) < 0 ||
            set_string(parameters, "confirm_in", args->confirm_in) < 0)
                return EXIT_FAILED;
        if (verb->run)
                return verb->run(verb, parameters);
        return call_and_print(verb->method, parameters, verb->print);
}

/*
 * -H: the same verb on every host, run there by its own killswitchctl (docs/fleet.md).
 * Every field of struct verb_args must be passed on here as an option.
 */
static int fleet_verb(const struct verb *verb, const struct verb_args *args)
{
        struct output_flags flags = output_flags();
        bool isolate = verb->options & OPT(FOR);
        _cleanup_strv_ char **argv = NULL;
        char lines[16], top[16];
        int r;

        if (arg_socket || args->output) {
                usage_error(verb->name, "%s cannot be combined with -H or --hosts-file",
                            arg_socket ? "--socket" : "--output");
                return EXIT_USAGE;
        }
        snprintf(lines, sizeof(lines), "%d", args->lines);
        snprintf(top, sizeof(top), "%d", args->top);
        r = strv_push(&argv, "--json=short") ?: strv_push(&argv, verb->name);
        if (r == 0 && args->reason)
                r = strv_push(&argv, "--reason") ?: strv_push(&argv, args->reason);
        if (r == 0 && args->force)
                r = strv_push(&argv, "--force");
        if (r == 0 && args->lines >= 0)
                r = strv_push(&argv, "-n") ?: strv_push(&argv, lines);
        if (r == 0 && args->top >= 0)
                r = strv_push(&argv, "--top") ?: strv_push(&argv, top);
        if (r == 0 && args->restore_in)
                r = strv_push(&argv, isolate ? "--for" : "--in") ?: strv_push(&argv, args->restore_in);
        /* Already an absolute instant: the time the user meant here, whatever the host's time zone. */
        if (r == 0 && args->restore_at)
                r = strv_push(&argv, isolate ? "--until" : "--at") ?: strv_push(&argv, args->restore_at);
        if (r == 0 && args->confirm_in)
                r = strv_push(&argv, "--confirm") ?: strv_push(&argv, args->confirm_in);
        if (r == 0 && args->since)
                r = strv_push(&argv, "--since") ?: strv_push(&argv, args->since);
        if (r == 0 && args->until)
                r = strv_push(&argv, "--until") ?: strv_push(&argv, args->until);
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
        struct verb_args args = { .lines = -1, .top = -1 };
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
