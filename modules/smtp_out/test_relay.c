/* Relay hosts: Postfix's relayhost syntax, the credentials file (its text
 * and its permissions), base64 for AUTH, and which next hop a domain
 * takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtp_out.h"

static void relay_syntax(void **state)
{
    (void)state;
    struct smtp_relay_addr a;
    assert_true(smtp_relay_parse("relay.example.org", &a));
    assert_string_equal(a.host, "relay.example.org");
    assert_true(a.mx);
    assert_int_equal(a.port, 0);
    assert_true(smtp_relay_parse("relay.example.org:587", &a));
    assert_string_equal(a.host, "relay.example.org");
    assert_true(a.mx);
    assert_int_equal(a.port, 587);
    assert_true(smtp_relay_parse("[mx.internal]:2525", &a));
    assert_string_equal(a.host, "mx.internal");
    assert_false(a.mx);
    assert_int_equal(a.port, 2525);
    assert_true(smtp_relay_parse("[192.0.2.1]", &a));
    assert_string_equal(a.host, "192.0.2.1");
    assert_int_equal(a.port, 0);
    assert_true(smtp_relay_parse("[2001:db8::1]:25", &a));
    assert_string_equal(a.host, "2001:db8::1");
    assert_true(smtp_relay_parse("[IPv6:2001:db8::1]", &a));
    assert_string_equal(a.host, "2001:db8::1");
    static const char *const bad[] = {
        "",           ":25",          "host:",      "host:0",  "host:65536",  "host:25x",
        "[host",      "[]:25",        "[host]x",    "[host]:", "2001:db8::1", "ho st",
        "host:25:26", "host:1234567", "[ho st]:25", "host/x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (smtp_relay_parse(bad[i], &a))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(smtp_relay_parse(longname, &a));
}

static void credentials_text(void **state)
{
    (void)state;
    struct smtp_credentials c;
    const char *err = NULL;
    static const char ok[] = "# the relay's account\n\nuser@example.org  pass word \r\n";
    assert_true(smtp_credentials_parse(ok, sizeof(ok) - 1, &c, &err));
    assert_string_equal(c.user, "user@example.org");
    assert_string_equal(c.pass, "pass word "); /* the rest of the line */
    assert_true(smtp_credentials_parse("u\tp", 3, &c, &err));
    assert_string_equal(c.pass, "p");
    static const char *const bad[] = {"",           "# nothing\n",  "useronly\n", "user \n",
                                      "a b\nc d\n", " user pass\n", "u p\x01q\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (smtp_credentials_parse(bad[i], strlen(bad[i]), &c, &err))
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(err);
    }
    char big[600];
    memset(big, 'x', sizeof(big));
    big[300] = ' ';
    assert_false(smtp_credentials_parse(big, sizeof(big), &c, &err));
    /* NUL bytes are bounded by len, never read past */
    assert_false(smtp_credentials_parse("u\0p", 3, &c, &err));
}

static void credentials_file(void **state)
{
    (void)state;
    char path[] = "/tmp/petrel-test-credsXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "relayuser secret\n", 17), 17);
    close(fd);
    struct smtp_credentials c;
    char err[256];
    assert_int_equal(chmod(path, 0600), 0);
    if (geteuid() != 0) { /* as root the owner must be root: mkstemp's is */
        assert_true(smtp_credentials_load(path, &c, err, sizeof(err)));
        assert_string_equal(c.user, "relayuser");
        assert_string_equal(c.pass, "secret");
    }
    assert_int_equal(chmod(path, 0640), 0);
    assert_false(smtp_credentials_load(path, &c, err, sizeof(err)));
    assert_non_null(strstr(err, "group or others"));
    assert_int_equal(chmod(path, 0604), 0);
    assert_false(smtp_credentials_load(path, &c, err, sizeof(err)));
    unlink(path);
    assert_false(smtp_credentials_load(path, &c, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
}

static void base64(void **state)
{
    (void)state;
    char out[16];
    assert_true(smtp_base64(out, sizeof(out), (const unsigned char *)"", 0));
    assert_string_equal(out, "");
    assert_true(smtp_base64(out, sizeof(out), (const unsigned char *)"f", 1));
    assert_string_equal(out, "Zg==");
    assert_true(smtp_base64(out, sizeof(out), (const unsigned char *)"fo", 2));
    assert_string_equal(out, "Zm8=");
    assert_true(smtp_base64(out, sizeof(out), (const unsigned char *)"\0u\0p", 4));
    assert_string_equal(out, "AHUAcA==");
    assert_false(smtp_base64(out, 8, (const unsigned char *)"foobar", 6)); /* 8 + NUL */
    assert_true(smtp_base64(out, 9, (const unsigned char *)"foobar", 6));
    assert_string_equal(out, "Zm9vYmFy");
}

static void routes(void **state)
{
    (void)state;
    struct smtp_relay_domain doms[] = {
        {.domain = "example.org", .host = "[mx.internal]:2525", .tls = "starttls"},
        {.domain = "secure.example", .host = "[10.0.0.1]", .tls = "implicit"},
    };
    struct smtp_out_config cfg = {.port = 25, .relay_host = "", .relay_tls = "starttls"};
    cfg.relay_domains.count = 2;
    cfg.relay_domains.items = doms;
    struct smtp_route r;
    smtp_route_for(&cfg, "other.test", true, &r);
    assert_false(r.relay);
    assert_true(r.addr.mx);
    assert_string_equal(r.addr.host, "other.test");
    assert_false(r.auth); /* no relay host: no credentials sent */
    smtp_route_for(&cfg, "Example.ORG", true, &r);
    assert_true(r.relay && !r.addr.mx && !r.auth);
    assert_string_equal(r.addr.host, "mx.internal");
    assert_int_equal(r.addr.port, 2525);
    smtp_route_for(&cfg, "secure.example", false, &r);
    assert_true(r.implicit_tls);
    assert_int_equal(r.addr.port, 465);
    cfg.relay_host = "smart.example.net";
    smtp_route_for(&cfg, "other.test", true, &r);
    assert_true(r.relay && r.addr.mx && r.auth);
    assert_int_equal(r.addr.port, 25);
    struct smtp_route r2;
    smtp_route_for(&cfg, "third.test", true, &r2);
    assert_string_equal(r.key, r2.key); /* one relay: one cache key for every domain */
    smtp_route_for(&cfg, "example.org", true, &r2);
    assert_string_not_equal(r.key, r2.key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relay_syntax),     cmocka_unit_test(credentials_text),
        cmocka_unit_test(credentials_file), cmocka_unit_test(base64),
        cmocka_unit_test(routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
