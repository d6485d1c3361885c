/* SPDX-License-Identifier: MIT */
/* killswitch.conf: every key good and bad, with the line of each problem. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"

struct parsed {
        struct ks_conf c;
        struct ks_diags d;
};

static void parse(const char *text, struct parsed *p)
{
        memset(p, 0, sizeof(*p));
        assert_int_equal(conf_parse_string(text, "k.conf", &p->c, &p->d), 0);
}

static void done(struct parsed *p)
{
        conf_clear(&p->c);
        diags_clear(&p->d);
}

/* Exactly one problem, starting with `prefix` ("k.conf:3: Rate"). */
static void expect_error(const char *text, const char *prefix)
{
        struct parsed p;

        parse(text, &p);
        if (p.d.n != 1 || strncmp(p.d.msgs[0], prefix, strlen(prefix)) != 0)
                fail_msg("expected one problem \"%s...\", got %zu: %s", prefix, p.d.n, p.d.n ? p.d.msgs[0] : "");
        done(&p);
}

static void test_good(void **unused)
{
        struct parsed p;

        parse("# triggers\n"
              "[PathTrigger panic]\n"
              "Path=/run/killswitch/panic   # the panic button\n"
              "Policy=isolate\n"
              "\n"
              "[PathTrigger ids]\n"
              "Path = /var/lib/wazuh/isolate\n"
              "; no Policy=: the default\n"
              "[Heartbeat]\n"
              "Timeout=5min\n"
              "Policy=mailonly\n"
              "[EgressTripwire]\n"
              "Rate=50M\n"
              "For=30s\n"
              "Policy=isolate\n"
              "LogGroup=77\n", &p);
        assert_int_equal(p.d.n, 0);
        assert_int_equal(p.c.n_paths, 2);
        assert_string_equal(p.c.paths[0].name, "panic");
        assert_string_equal(p.c.paths[0].path, "/run/killswitch/panic");
        assert_string_equal(p.c.paths[0].policy, "isolate");
        assert_int_equal(p.c.paths[0].line, 2);
        assert_int_equal(p.c.paths[0].path_line, 3);
        assert_int_equal(p.c.paths[0].policy_line, 4);
        assert_string_equal(p.c.paths[1].path, "/var/lib/wazuh/isolate");
        assert_string_equal(p.c.paths[1].policy, DEFAULT_TRIGGER_POLICY);
        assert_int_equal(p.c.paths[1].path_line, 7);
        assert_int_equal(p.c.paths[1].policy_line, 6);
        assert_true(p.c.heartbeat.enabled);
        assert_int_equal(p.c.heartbeat.timeout_usec, 300ULL * 1000000);
        assert_string_equal(p.c.heartbeat.policy, "mailonly");
        assert_int_equal(p.c.heartbeat.policy_line, 11);
        assert_true(p.c.tripwire.enabled);
        assert_int_equal(p.c.tripwire.rate, 50000000);
        assert_int_equal(p.c.tripwire.for_usec, 30ULL * 1000000);
        assert_int_equal(p.c.tripwire.log_group, 77);
        done(&p);

        parse("", &p);
        assert_int_equal(p.d.n, 0);
        assert_int_equal(p.c.n_paths, 0);
        assert_false(p.c.heartbeat.enabled);
        assert_false(p.c.tripwire.enabled);
        done(&p);

        parse("[Heartbeat]\nTimeout=366d\n[EgressTripwire]\nRate=5M\nFor=366d\n", &p);
        assert_int_equal(p.d.n, 0);
        assert_int_equal(p.c.heartbeat.timeout_usec, 366ULL * 86400 * 1000000);
        assert_int_equal(p.c.tripwire.for_usec, 366ULL * 86400 * 1000000);
        done(&p);

        parse("[EgressTripwire]\nRate=400Mbit\nFor=1m\n", &p);
        assert_int_equal(p.d.n, 0);
        assert_int_equal(p.c.tripwire.rate, 50000000);
        assert_int_equal(p.c.tripwire.log_group, CONF_DEFAULT_LOG_GROUP);
        assert_string_equal(p.c.tripwire.policy, DEFAULT_TRIGGER_POLICY);
        done(&p);
}

static void test_rate(void **unused)
{
        uint64_t v;

        assert_int_equal(conf_parse_rate("12345", &v), 0);
        assert_int_equal(v, 12345);
        assert_int_equal(conf_parse_rate("50M", &v), 0);
        assert_int_equal(v, 50000000);
        assert_int_equal(conf_parse_rate("50MB/s", &v), 0);
        assert_int_equal(v, 50000000);
        assert_int_equal(conf_parse_rate("800K", &v), 0);
        assert_int_equal(v, 800000);
        assert_int_equal(conf_parse_rate("1.5G", &v), 0);
        assert_int_equal(v, 1500000000);
        assert_int_equal(conf_parse_rate("1Mi", &v), 0);
        assert_int_equal(v, 1048576);
        assert_int_equal(conf_parse_rate("400Mbit", &v), 0);
        assert_int_equal(v, 50000000);
        assert_int_equal(conf_parse_rate("10Mbit/s", &v), 0);
        assert_int_equal(v, 1250000);
        assert_int_equal(conf_parse_rate("8bits", &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(conf_parse_rate("", &v), -EINVAL);
        assert_int_equal(conf_parse_rate("M", &v), -EINVAL);
        assert_int_equal(conf_parse_rate("50X", &v), -EINVAL);
        assert_int_equal(conf_parse_rate("-5M", &v), -EINVAL);
        assert_int_equal(conf_parse_rate("5M/h", &v), -EINVAL);
        assert_int_equal(conf_parse_rate("0", &v), -ERANGE);
        assert_int_equal(conf_parse_rate("4bit", &v), -ERANGE);
        assert_int_equal(conf_parse_rate("99999999999999999999", &v), -ERANGE);
}

/* A fraction, as systemd takes it: Timeout=1.5h is 90 min. */
static void test_fraction(void **unused)
{
        struct parsed p;

        parse("[Heartbeat]\nTimeout=1.5h\n", &p);
        assert_int_equal(p.d.n, 0);
        assert_int_equal(p.c.heartbeat.timeout_usec, 5400ULL * 1000000);
        done(&p);
}

static void test_bad(void **unused)
{
        expect_error("[Nonsense]\n", "k.conf:1: unknown section [Nonsense]; expected [PathTrigger NAME], [Heartbeat], [EgressTripwire] or [Restore]");
        expect_error("\n[Heartbeat\n", "k.conf:2: [Heartbeat: section header must end with \"]\"");
        expect_error("Timeout=5s\n", "k.conf:1: Timeout= outside a section; put it under [PathTrigger NAME]");
        expect_error("[Heartbeat]\nTimeout=5s\nTimeout\n", "k.conf:3: \"Timeout\": line without \"=\"; expected KEY=VALUE");
        expect_error("[Heartbeat]\nTimeout=5s\nBogus=1\n", "k.conf:3: unknown key \"Bogus\" in [Heartbeat]; expected Timeout= or Policy=");
        expect_error("[Heartbeat]\nTimeout=\n", "k.conf:2: Timeout= has an empty value");
        expect_error("[Heartbeat]\nTimeout=soon\n", "k.conf:2: Timeout: \"soon\": not a duration");
        expect_error("[Heartbeat]\nTimeout=1y\n", "k.conf:2: Timeout: \"1y\": unknown unit \"y\"");
        expect_error("[Heartbeat]\nTimeout=500ms\n", "k.conf:2: Timeout: \"500ms\": must be at least 1s");
        expect_error("[Heartbeat]\nPolicy=isolate\n", "k.conf:1: [Heartbeat] needs Timeout=");
        expect_error("[Heartbeat]\nTimeout=367d\n", "k.conf:2: Timeout: \"367d\": too long; at most a year (366d)");
        expect_error("[Heartbeat]\nTimeout=99999999999999999999d\n", "k.conf:2: Timeout: \"99999999999999999999d\": too long");
        expect_error("[Heartbeat]\nTimeout=5000000000000h\n", "k.conf:2: Timeout: \"5000000000000h\": too long");
        expect_error("[Heartbeat]\nTimeout=5s\nPolicy=9lives\n", "k.conf:3: Policy: \"9lives\": not a policy name");
        expect_error("[Heartbeat]\nTimeout=5s\n[Heartbeat]\nTimeout=6s\n", "k.conf:3: duplicate [Heartbeat] section (first on line 1); killswitch.conf has one");
        expect_error("[Heartbeat x]\nTimeout=5s\n", "k.conf:1: [Heartbeat] takes no name");
        expect_error("[PathTrigger]\nPath=/run/x\n", "k.conf:1: [PathTrigger] needs a name: [PathTrigger NAME]");
        expect_error("[PathTrigger a b]\nPath=/run/x\n", "k.conf:1: [PathTrigger NAME]");
        expect_error("[PathTrigger p]\nPolicy=isolate\n", "k.conf:1: [PathTrigger p] needs Path=");
        expect_error("[PathTrigger p]\nPath=run/x\n", "k.conf:2: Path: \"run/x\": must be an absolute");
        expect_error("[PathTrigger p]\nPath=/run/../x\n", "k.conf:2: Path: \"/run/../x\"");
        expect_error("[PathTrigger p]\nPath=/run/x/\n", "k.conf:2: Path: \"/run/x/\"");
        expect_error("[PathTrigger p]\nPath=/\n", "k.conf:2: Path: \"/\"");
        expect_error("[PathTrigger p]\nPath=/run/x\nColor=red\n", "k.conf:3: unknown key \"Color\" in [PathTrigger p]; expected Path= or Policy=");
        expect_error("[PathTrigger p]\nPath=/a\n[PathTrigger p]\nPath=/b\n",
                     "k.conf:3: [PathTrigger p]: duplicate name (first on line 1)");
        expect_error("[EgressTripwire]\nFor=30s\n", "k.conf:1: [EgressTripwire] needs Rate=");
        expect_error("[EgressTripwire]\nRate=5M\n", "k.conf:1: [EgressTripwire] needs For=");
        expect_error("[EgressTripwire]\nRate=fast\nFor=3s\n", "k.conf:2: Rate: \"fast\": not a rate");
        expect_error("[EgressTripwire]\nRate=0\nFor=3s\n", "k.conf:2: Rate: \"0\": out of range");
        expect_error("[EgressTripwire]\nRate=5G\nFor=3s\n", "k.conf:2: Rate: \"5G\"");
        expect_error("[EgressTripwire]\nRate=5M\nFor=0\n", "k.conf:3: For: \"0\": must be at least 1s");
        expect_error("[EgressTripwire]\nRate=5M\nFor=53w\n", "k.conf:3: For: \"53w\": too long; at most a year (366d)");
        expect_error("[Restore]\nApprovalTimeout=400d\n", "k.conf:2: ApprovalTimeout: \"400d\": too long");
        expect_error("[EgressTripwire]\nRate=5M\nFor=3s\nLogGroup=0\n", "k.conf:4: LogGroup: \"0\"");
        expect_error("[EgressTripwire]\nRate=5M\nFor=3s\nLogGroup=70000\n", "k.conf:4: LogGroup: \"70000\"");
        expect_error("[EgressTripwire]\nRate=5M\nFor=3s\nWhen=now\n", "k.conf:4: unknown key \"When\" in [EgressTripwire]; expected Rate=, For=, Policy= or LogGroup=");
}

/* The rules of policies (one tokenizer): comments after headers, ';' lines, tabs, CRLF. */
static void test_policy_syntax(void **unused)
{
        struct parsed p;

        parse("\t; indented\r\n"
              "[PathTrigger\tpanic ]   # after a header\r\n"
              "Path=/run/issue#42\t# comment\r\n"
              "[ Heartbeat ]\n"
              "  Timeout = 5min  \n", &p);
        assert_int_equal(p.d.n, 0);
        assert_string_equal(p.c.paths[0].name, "panic");
        assert_string_equal(p.c.paths[0].path, "/run/issue#42");
        assert_int_equal(p.c.heartbeat.timeout_usec, 300ULL * 1000000);
        done(&p);

        /* Keys after a header that cannot be used are skipped: the header was reported. */
        expect_error("[Nonsense]\nTimeout\nBogus=1\n", "k.conf:1: unknown section [Nonsense]");
        expect_error("[PathTrigger p] ; x\nPath=/x\n", "k.conf:1: [PathTrigger p] ; x: section header must end with \"]\"");
}

/* A broken section is left out; the others stay. */
static void test_partial(void **unused)
{
        struct parsed p;

        parse("[PathTrigger good]\nPath=/run/good\n"
              "[PathTrigger bad]\nPath=relative\n"
              "[Heartbeat]\nTimeout=never\n"
              "[EgressTripwire]\nRate=1M\nFor=2s\n", &p);
        assert_int_equal(p.d.n, 2);
        assert_string_equal(p.d.msgs[0], "k.conf:4: Path: \"relative\": must be an absolute file name without \".\", "
                                         "\"..\" or a trailing \"/\", e.g. /run/killswitch/panic");
        assert_int_equal(strncmp(p.d.msgs[1], "k.conf:6: Timeout", 17), 0);
        assert_int_equal(p.c.n_paths, 1);
        assert_string_equal(p.c.paths[0].name, "good");
        assert_false(p.c.heartbeat.enabled);
        assert_true(p.c.tripwire.enabled);
        done(&p);
}

/* [Restore]: the defaults, the values, and a bad value never weakens the four-eyes rule. */
static void test_restore(void **unused)
{
        struct parsed p;

        parse("[Heartbeat]\nTimeout=5s\n", &p);
        assert_int_equal(p.c.restore.approvals, 0);             /* no [Restore]: one person, as before */
        assert_int_equal(p.c.restore.approval_timeout_usec, 0); /* the default */
        done(&p);

        parse("[Restore]\nApprovals=2\nApprovalTimeout=30min\n", &p);
        assert_int_equal(p.d.n, 0);
        assert_int_equal(p.c.restore.approvals, 2);
        assert_true(p.c.restore.approval_timeout_usec == 30ULL * 60 * 1000000ULL);
        done(&p);

        expect_error("[Restore]\nApprovals=3\n", "k.conf:2: Approvals: \"3\": must be 1 or 2");
        expect_error("[Restore]\nApprovalTimeout=soon\n", "k.conf:2: ApprovalTimeout: \"soon\": not a duration");
        expect_error("[Restore]\nApprovals=2\n[Restore]\nApprovals=1\n", "k.conf:3: duplicate [Restore]");

        /* A typo asks for two persons, not one; a bad timeout keeps the default. */
        parse("[Restore]\nApprovals=two\nApprovalTimeout=never\n", &p);
        assert_int_equal(p.d.n, 2);
        assert_int_equal(p.c.restore.approvals, 2);
        assert_int_equal(p.c.restore.approval_timeout_usec, 0);
        done(&p);
}

static void test_file(void **unused)
{
        struct ks_conf c = {};
        struct ks_diags d = {};

        assert_int_equal(conf_parse_file("/nonexistent/killswitch.conf", &c, &d), -ENOENT);
        assert_int_equal(d.n, 0);
        conf_clear(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),
                cmocka_unit_test(test_rate),
                cmocka_unit_test(test_fraction),
                cmocka_unit_test(test_bad),
                cmocka_unit_test(test_policy_syntax),
                cmocka_unit_test(test_partial),
                cmocka_unit_test(test_restore),
                cmocka_unit_test(test_file),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
