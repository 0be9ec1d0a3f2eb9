/* Reuse of a connection made for another destination (the connection
 * cache by address): which TLS state each level of the new job takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/mem.h>

#include "smtp_out.h"

static struct smtp_mx mx[1];
static struct smtp_tls_state tlsp;
static struct petrel_transport_msg msg;

static struct smtp_job job_at(enum smtp_tls_level level, const char *host)
{
    struct smtp_job job = {.msg = &msg, .mx = mx, .tlsp = &tlsp};
    petrel_strlcpy(mx[0].host, host, sizeof(mx[0].host));
    tlsp.level = level;
    msg.requiretls = false;
    return job;
}

static struct smtp_conn_info conn(enum smtp_tls_level made, bool tls, bool ca, bool dane)
{
    struct smtp_conn_info i = {.level = made, .tls = tls, .ca_verified = ca, .dane = dane};
    petrel_strlcpy(i.host, "mx.a.example", sizeof(i.host));
    return i;
}

static void levels(void **state)
{
    (void)state;
    const struct smtp_conn_info plain_none = conn(SMTP_TLS_NONE, false, false, false),
                                plain_may = conn(SMTP_TLS_MAY, false, false, false),
                                tls_unverified = conn(SMTP_TLS_MAY, true, false, false),
                                tls_verified = conn(SMTP_TLS_MAY, true, true, false),
                                tls_dane = conn(SMTP_TLS_DANE, true, false, true);
    struct smtp_job j = job_at(SMTP_TLS_NONE, "mx.b.example");
    assert_true(smtp_tlspolicy_reuse_ok(&j, &plain_none));
    assert_true(smtp_tlspolicy_reuse_ok(&j, &tls_unverified));
    j = job_at(SMTP_TLS_MAY, "mx.b.example");
    assert_false(smtp_tlspolicy_reuse_ok(&j, &plain_none)); /* STARTTLS may be offered */
    assert_true(smtp_tlspolicy_reuse_ok(&j, &plain_may));
    assert_true(smtp_tlspolicy_reuse_ok(&j, &tls_unverified));
    j = job_at(SMTP_TLS_ENCRYPT, "mx.b.example");
    assert_false(smtp_tlspolicy_reuse_ok(&j, &plain_may));
    assert_true(smtp_tlspolicy_reuse_ok(&j, &tls_unverified));
    static const enum smtp_tls_level verified[] = {SMTP_TLS_VERIFY, SMTP_TLS_STS};
    for (size_t i = 0; i < 2; i++) {
        j = job_at(verified[i], "mx.b.example"); /* another name: no proof */
        assert_false(smtp_tlspolicy_reuse_ok(&j, &tls_verified));
        j = job_at(verified[i], "MX.A.example");
        assert_true(smtp_tlspolicy_reuse_ok(&j, &tls_verified));
        assert_false(smtp_tlspolicy_reuse_ok(&j, &tls_unverified));
    }
    j = job_at(SMTP_TLS_DANE, "mx.a.example");
    assert_true(smtp_tlspolicy_reuse_ok(&j, &tls_dane));
    assert_false(smtp_tlspolicy_reuse_ok(&j, &tls_verified));
    j = job_at(SMTP_TLS_DANE, "mx.b.example");
    assert_false(smtp_tlspolicy_reuse_ok(&j, &tls_dane));
    j = job_at(SMTP_TLS_NONE, "mx.a.example");
    msg.requiretls = true; /* never: it has its own connection */
    assert_false(smtp_tlspolicy_reuse_ok(&j, &tls_dane));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
