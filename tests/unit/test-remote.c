/* SPDX-License-Identifier: MIT */
/* killswitchctl -H: host specs as admins write them, shell quoting, the ssh command line. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "remote.h"
#include "strv.h"

static void host_ok(const char *spec, const char *user, const char *name, const char *port)
{
        struct remote_host h;

        assert_int_equal(remote_host_parse(spec, &h), 0);
        if (user)
                assert_string_equal(h.user, user);
        else
                assert_null(h.user);
        assert_string_equal(h.name, name);
        if (port)
                assert_string_equal(h.port, port);
        else
                assert_null(h.port);
        remote_host_clear(&h);
}

static void host_bad(const char *spec)
{
        struct remote_host h = { .name = (char *) "untouched" };

        assert_int_equal(remote_host_parse(spec, &h), -EINVAL);
        assert_string_equal(h.name, "untouched");
}

static void test_host(void **unused)
{
        host_ok("gw1", NULL, "gw1", NULL);
        host_ok("gw1.example.net", NULL, "gw1.example.net", NULL);
        host_ok("alice@gw1", "alice", "gw1", NULL);
        host_ok("alice@gw1:2222", "alice", "gw1", "2222");
        host_ok("192.0.2.1:22", NULL, "192.0.2.1", "22");
        host_ok("[2001:db8::1]:2222", NULL, "2001:db8::1", "2222");
        host_ok("root@[2001:db8::1]", "root", "2001:db8::1", NULL);
        host_ok("2001:db8::1", NULL, "2001:db8::1", NULL);
        host_ok("fe80::1%eth0", NULL, "fe80::1%eth0", NULL);

        host_bad("");
        host_bad("-oProxyCommand=x");
        host_bad("alice@-oProxyCommand=x");
        host_bad("-l@gw1");
        host_bad("@gw1");
        host_bad("a@b@gw1");
        host_bad("gw1 gw2");
        host_bad("gw1;reboot");
        host_bad("gw1$(x)");
        host_bad("gw1:");
        host_bad("gw1:0");
        host_bad("gw1:65536");
        host_bad("gw1:22x");
        host_bad("[2001:db8::1");
        host_bad("[]:22");
        host_bad("[2001:db8::1]x");
        host_bad("gw\xc3\xa9");
}

static void quoted(const char *s, const char *expected)
{
        char *q = shell_quote(s);

        assert_string_equal(q, expected);
        free(q);
}

static void test_quote(void **unused)
{
        quoted("", "''");
        quoted("isolate", "'isolate'");
        quoted("it's", "'it'\\''s'");
        quoted("$(touch x) `y` \"z\" \\ ; & | * ~\n", "'$(touch x) `y` \"z\" \\ ; & | * ~\n'");
}

static void test_command(void **unused)
{
        char *remote[] = { (char *) "/opt/ks/killswitchctl", (char *) "--socket", (char *) "/run/x y.sock", NULL };
        char *args[] = { (char *) "--json=short", (char *) "isolate", (char *) "--reason", (char *) "it's", NULL };
        char *ssh[] = { (char *) "ssh", (char *) "-F", (char *) "/etc/fleet.conf", NULL };
        char *options[] = { (char *) "StrictHostKeyChecking=yes", NULL };
        _cleanup_free_ char *command = NULL, *joined = NULL;
        _cleanup_strv_ char **argv = NULL;
        struct remote_host h;
        size_t len = 0;

        command = remote_command("alice@admin", remote, args);
        assert_string_equal(command, "env 'KILLSWITCH_ORIGIN=alice@admin' '/opt/ks/killswitchctl' '--socket' "
                            "'/run/x y.sock' '--json=short' 'isolate' '--reason' 'it'\\''s'");

        assert_int_equal(remote_host_parse("root@[2001:db8::1]:2222", &h), 0);
        assert_int_equal(ssh_command(ssh, options, 10, &h, command, &argv), 0);
        remote_host_clear(&h);
        for (char **a = argv; *a; a++)
                len += strlen(*a) + 1;
        joined = calloc(1, len + 1);
        assert_non_null(joined);
        for (char **a = argv; a[1]; a++) {     /* all but the command, checked below */
                strcat(joined, *a);
                strcat(joined, "|");
        }
        /* BatchMode first (it cannot be turned off), ConnectTimeout after the user's options (it can). */
        assert_string_equal(joined, "ssh|-F|/etc/fleet.conf|-o|BatchMode=yes|-o|StrictHostKeyChecking=yes|"
                            "-o|ConnectTimeout=10|-T|-l|root|-p|2222|--|2001:db8::1|");
        assert_string_equal(argv[strv_length(argv) - 1], command);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host),
                cmocka_unit_test(test_quote),
                cmocka_unit_test(test_command),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
