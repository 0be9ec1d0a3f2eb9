/* The configuration loader: settings tables, errors with file and line. */
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

#include <petrel/mem.h>

#include "cfg.h"
#include "server.h"

static char dir[64];
static char conf[128];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "%s", "/tmp/petrel-test-config-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(conf, sizeof(conf), "%s/petrel.conf", dir);
    char confd[128];
    snprintf(confd, sizeof(confd), "%s/conf.d", dir);
    return mkdir(confd, 0700);
}

static int teardown(void **state)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void write_confd(const char *name, const char *text)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/conf.d/%s", dir, name);
    write_text(path, text);
}

static void clear_confd(void)
{
    char cmd[192];
    snprintf(cmd, sizeof(cmd), "rm -f '%s'/conf.d/*", dir);
    assert_int_equal(system(cmd), 0);
}

static const char *load_error(const char *main_text)
{
    const char *error = NULL;
    write_text(conf, main_text);
    struct petrel_config *cfg = petrel_config_load(conf, &error);
    if (cfg != NULL) {
        petrel_config_unref(cfg);
        return NULL;
    }
    return error;
}

static void test_defaults(void **state)
{
    clear_confd();
    const char *error = NULL;
    write_text(conf, "server: { run_dir = \"/tmp/r\"; };\n");
    struct petrel_config *cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_string_equal(cfg->server.primary_domain, "localhost");
    assert_int_equal(cfg->server.workers, 16);
    assert_int_equal(cfg->server.shutdown_timeout, 10);
    assert_string_equal(cfg->server.pid_file, "/tmp/r/petreld.pid");
    assert_string_equal(cfg->server.control_socket, "/tmp/r/control.sock");
    assert_string_equal(cfg->tls.min_protocol, "TLSv1.2");
    assert_int_equal(cfg->nservices, 0);
    petrel_config_unref(cfg);
}

static void test_errors_name_file_line_setting(void **state)
{
    clear_confd();
    const char *e = load_error("server: {\n  workers = 0;\n};\n");
    assert_non_null(e);
    assert_non_null(strstr(e, "petrel.conf:2"));
    assert_non_null(strstr(e, "'workers'"));
    assert_non_null(strstr(e, "out of range"));

    e = load_error("server: {\n\n  wrokers = 3;\n};\n");
    assert_non_null(strstr(e, "petrel.conf:3"));
    assert_non_null(strstr(e, "unknown setting 'wrokers'"));

    e = load_error("bogus = 1;\n");
    assert_non_null(strstr(e, "unknown setting 'bogus'"));

    e = load_error("server: { user = 5; };\n");
    assert_non_null(strstr(e, "does not take a number"));

    e = load_error("log: { level = \"loud\"; };\n");
    assert_non_null(strstr(e, "allowed choices"));

    e = load_error("server: {\n workers = ;\n};\n"); /* syntax */
    assert_non_null(strstr(e, "petrel.conf:2"));

    e = load_error("log: { target = \"file\"; };\n");
    assert_non_null(strstr(e, "needs 'file'"));
}

static void test_service_and_listeners(void **state)
{
    clear_confd();
    write_confd("10-echo.conf",
                "module = \"echo\";\n"
                "max_errors = 4;\n"
                "rules = ( { action = \"deny\"; ips = \"192.0.2.0/24\"; priority = 5; } );\n"
                "listeners = (\n"
                "  { address = \"127.0.0.1:7025\"; tls = \"starttls\"; max_line = \"1k\";\n"
                "    idle_timeout = \"2m\"; peer_max_connections = 3; },\n"
                "  { address = \"[::1]:7026\"; }\n"
                ");\n"
                "settings: { greeting = \"hi\"; };\n");
    write_confd("20-off.conf", "module = \"other\";\nenabled = false;\n");
    write_confd("README", "not a conf file");
    const char *error = NULL;
    write_text(conf, "rules = ( { action = \"allow\"; ips = [\"any\"]; } );\n");
    struct petrel_config *cfg = petrel_config_load(conf, &error);
    if (cfg == NULL)
        fail_msg("%s", error);
    assert_int_equal(cfg->nservices, 1);
    struct petrel_service_cfg *svc = &cfg->services[0];
    assert_string_equal(svc->module, "echo");
    assert_int_equal(svc->max_errors, 4);
    assert_int_equal(svc->rules.n, 1);
    assert_false(svc->rules.v[0].allow);
    assert_int_equal(svc->nlisteners, 2);
    assert_int_equal(svc->listeners[0].tls_mode, PETREL_TLS_STARTTLS);
    assert_int_equal(svc->listeners[0].max_line, 1024);
    assert_int_equal(svc->listeners[0].idle_timeout, 120);
    assert_int_equal(svc->listeners[0].flow.peer_max_connections, 3);
    assert_int_equal(svc->listeners[1].addr.ss_family, AF_INET6);
    assert_int_equal(cfg->rules.n, 1);
    petrel_config_unref(cfg);
}

static void test_service_errors(void **state)
{
    clear_confd();
    write_confd("a.conf", "module = \"echo\";\nlisteners = ( { address = \"localhost\"; } );\n");
    const char *e = load_error("");
    assert_non_null(strstr(e, "a.conf:2"));
    assert_non_null(strstr(e, "ADDRESS:PORT"));

    clear_confd();
    write_confd("a.conf", "module = \"echo\";\n");
    write_confd("b.conf", "module = \"echo\";\n");
    e = load_error("");
    assert_non_null(strstr(e, "already enabled"));

    clear_confd();
    write_confd("a.conf", "enabled = true;\n");
    e = load_error("");
    assert_non_null(strstr(e, "required setting 'module'"));

    clear_confd();
    write_confd("a.conf", "module = \"../evil\";\n");
    e = load_error("");
    assert_non_null(strstr(e, "not a module name"));

    clear_confd();
    write_confd("a.conf",
                "module = \"x\";\nrules = ( { action = \"allow\"; ips = \"10.0.0.300\"; } );\n");
    e = load_error("");
    assert_non_null(strstr(e, "a.conf:2"));
    assert_non_null(strstr(e, "10.0.0.300"));

    clear_confd();
    write_confd("a.conf", "module = \"x\";\nlisteners = ( { address = \"127.0.0.1:1\"; "
                          "proxy_protocol = true; } );\n");
    e = load_error("");
    assert_non_null(strstr(e, "proxy_from"));
}

static void test_module_settings(void **state)
{
    struct modcfg {
        bool flag;
        long long size;
        char *name;
        char **list;
    };
    static const char *const names[] = {"alpha", "beta", NULL};
    static const struct petrel_setting table[] = {
        PETREL_SETTING_BOOL(struct modcfg, flag, "true"),
        PETREL_SETTING_SIZE(struct modcfg, size, "1M", 1, 1LL << 30),
        PETREL_SETTING_CHOICE(struct modcfg, name, "alpha", names),
        PETREL_SETTING_STRLIST(struct modcfg, list, NULL),
        PETREL_SETTINGS_END,
    };
    clear_confd();
    write_confd("m.conf",
                "module = \"m\";\nsettings: {\n size = \"64k\";\n list = [\"a\", \"b\"];\n};\n");
    const char *error = NULL;
    write_text(conf, "");
    struct petrel_config *cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_int_equal(
        petrel_config_apply_module(&cfg->services[0], table, sizeof(struct modcfg), &error), 0);
    struct modcfg *m = cfg->services[0].settings;
    assert_true(m->flag);
    assert_int_equal(m->size, 65536);
    assert_string_equal(m->name, "alpha");
    assert_string_equal(m->list[1], "b");
    assert_null(m->list[2]);
    petrel_config_unref(cfg);

    write_confd("m.conf", "module = \"m\";\nsettings: {\n\n name = \"gamma\";\n};\n");
    cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_int_equal(
        petrel_config_apply_module(&cfg->services[0], table, sizeof(struct modcfg), &error), -1);
    assert_non_null(strstr(error, "m.conf:4"));
    assert_non_null(strstr(error, "'name'"));
    petrel_config_unref(cfg);
}

/* PETREL_SETTING_IPSET: a list or one string, parsed once by the core's
 * ipset; refusals name the element as the core's networks settings do;
 * unset is an empty set, never NULL; FIXED compares the parsed sets. */
static void test_ipset_setting(void **state)
{
    struct modcfg {
        const struct petrel_ipset *nets;
        const struct petrel_ipset *none;
        const struct petrel_ipset *one;
    };
    static const struct petrel_setting table[] = {
        PETREL_SETTING_IPSET_F(struct modcfg, nets, NULL, PETREL_SETTING_FIXED),
        PETREL_SETTING_IPSET(struct modcfg, none, NULL),
        PETREL_SETTING_IPSET(struct modcfg, one, "127.0.0.1"),
        PETREL_SETTINGS_END,
    };
    clear_confd();
    write_confd("m.conf", "module = \"m\";\nsettings: {\n nets = [\"10.0.0.0/8\", "
                          "\"2001:db8::/32\", \"192.0.2.10-192.0.2.20\"];\n};\n");
    const char *error = NULL;
    write_text(conf, "");
    struct petrel_config *cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_int_equal(
        petrel_config_apply_module(&cfg->services[0], table, sizeof(struct modcfg), &error), 0);
    const struct modcfg *m = cfg->services[0].settings;
    assert_true(petrel_ipset_contains_text(m->nets, "10.1.2.3"));
    assert_true(petrel_ipset_contains_text(m->nets, "::ffff:10.1.2.3")); /* a mapped client */
    assert_true(petrel_ipset_contains_text(m->nets, "2001:db8::25"));
    assert_true(petrel_ipset_contains_text(m->nets, "192.0.2.15"));
    assert_false(petrel_ipset_contains_text(m->nets, "192.0.2.21"));
    assert_false(petrel_ipset_contains_text(m->nets, "11.0.0.1"));
    assert_false(petrel_ipset_contains_text(m->nets, "not an address"));
    assert_false(petrel_ipset_contains_text(m->nets, NULL));
    assert_non_null(m->none);
    assert_false(petrel_ipset_contains_text(m->none, "10.1.2.3"));
    assert_true(petrel_ipset_contains_text(m->one, "127.0.0.1"));
    assert_false(petrel_ipset_contains_text(NULL, "127.0.0.1"));

    /* The same list is no change to a FIXED setting; another one is. */
    struct petrel_config *again = petrel_config_load(conf, &error);
    assert_non_null(again);
    assert_int_equal(
        petrel_config_apply_module(&again->services[0], table, sizeof(struct modcfg), &error), 0);
    assert_null(petrel_settings_fixed_changed(table, m, again->services[0].settings));
    petrel_config_unref(again);
    write_confd("m.conf", "module = \"m\";\nsettings: {\n nets = \"10.0.0.0/9\";\n};\n");
    again = petrel_config_load(conf, &error);
    assert_non_null(again);
    assert_int_equal(
        petrel_config_apply_module(&again->services[0], table, sizeof(struct modcfg), &error), 0);
    const struct modcfg *m2 = again->services[0].settings;
    assert_false(petrel_ipset_contains_text(m2->nets, "10.200.0.1"));
    assert_string_equal(petrel_settings_fixed_changed(table, m, m2), "nets");
    petrel_config_unref(again);
    petrel_config_unref(cfg);

    write_confd("m.conf", "module = \"m\";\nsettings: {\n\n nets = [\"10.0.0.1\", "
                          "\"10.0.0.0/33\"];\n};\n");
    cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_int_equal(
        petrel_config_apply_module(&cfg->services[0], table, sizeof(struct modcfg), &error), -1);
    assert_non_null(
        strstr(error, "m.conf:4: setting 'nets': '10.0.0.0/33': invalid prefix length"));
    petrel_config_unref(cfg);

    write_confd("m.conf", "module = \"m\";\nsettings: {\n nets = 10;\n};\n");
    cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_int_equal(
        petrel_config_apply_module(&cfg->services[0], table, sizeof(struct modcfg), &error), -1);
    assert_non_null(strstr(error, "setting 'nets' does not take a number"));
    petrel_config_unref(cfg);
}

static int freed_derived;
static void count_free(void *derived)
{
    freed_derived++;
    free(derived);
}

/* petrel_ctx_config_ref and friends on a real generation: a reference
 * outlives the swap to the next generation, and the derived state goes
 * when the last reference does, once. */
static void test_config_snapshot(void **state)
{
    struct modcfg {
        long long n;
    };
    static const struct petrel_setting table[] = {
        PETREL_SETTING_INT(struct modcfg, n, "1", 0, 0),
        PETREL_SETTINGS_END,
    };
    clear_confd();
    write_confd("m.conf", "module = \"m\";\nsettings: {\n n = 7;\n};\n");
    write_text(conf, "");
    const char *error = NULL;
    struct petrel_config *first = petrel_config_load(conf, &error);
    assert_non_null(first);
    assert_int_equal(
        petrel_config_apply_module(&first->services[0], table, sizeof(struct modcfg), &error), 0);
    first->services[0].derived = petrel_strdup("seven");
    first->services[0].free_derived = count_free;
    struct petrel_ctx ctx = {.name = "m"};
    freed_derived = 0;
    petrel_server.cfg = first;

    struct petrel_config *gen = petrel_ctx_config_ref(&ctx);
    assert_ptr_equal(gen, first);
    const struct modcfg *m = petrel_config_settings(gen, &ctx);
    assert_int_equal(m->n, 7);
    assert_string_equal(petrel_config_derived(gen, &ctx), "seven");
    struct petrel_ctx other = {.name = "not-enabled"};
    assert_null(petrel_config_settings(gen, &other));
    assert_null(petrel_config_derived(NULL, &ctx));

    /* A reload swaps in the next generation and drops the server's
     * reference: the holder still reads the first one. */
    write_confd("m.conf", "module = \"m\";\nsettings: {\n n = 8;\n};\n");
    struct petrel_config *next = petrel_config_load(conf, &error);
    assert_non_null(next);
    assert_int_equal(
        petrel_config_apply_module(&next->services[0], table, sizeof(struct modcfg), &error), 0);
    petrel_server.cfg = next;
    petrel_config_unref(first);
    assert_int_equal(freed_derived, 0);
    assert_int_equal(m->n, 7);
    struct petrel_config *now = petrel_ctx_config_ref(&ctx);
    assert_int_equal(((const struct modcfg *)petrel_config_settings(now, &ctx))->n, 8);
    assert_null(petrel_config_derived(now, &ctx)); /* no derive: NULL */
    petrel_config_unref(now);

    petrel_config_unref(gen);
    assert_int_equal(freed_derived, 1);
    petrel_config_unref(NULL);
    petrel_server.cfg = NULL;
    assert_null(petrel_ctx_config_ref(&ctx));
    petrel_config_unref(next);
}

static void test_parse_helpers(void **state)
{
    long long v;
    assert_true(petrel_parse_duration("90", &v));
    assert_int_equal(v, 90);
    assert_true(petrel_parse_duration("5m", &v));
    assert_int_equal(v, 300);
    assert_true(petrel_parse_duration("1d", &v));
    assert_int_equal(v, 86400);
    assert_false(petrel_parse_duration("5 m", &v));
    assert_false(petrel_parse_duration("-5", &v));
    assert_false(petrel_parse_duration("5x", &v));
    assert_true(petrel_parse_size("10M", &v));
    assert_int_equal(v, 10485760);
    assert_false(petrel_parse_size("99999999999999999999", &v));
    assert_false(petrel_parse_size("9999999999999G", &v));

    struct sockaddr_storage ss;
    socklen_t len;
    assert_true(petrel_parse_listen_address("127.0.0.1:25", &ss, &len));
    assert_true(petrel_parse_listen_address("[::1]:993", &ss, &len));
    assert_true(petrel_parse_listen_address("*:110", &ss, &len));
    assert_false(petrel_parse_listen_address("127.0.0.1:65536", &ss, &len));
    assert_false(petrel_parse_listen_address("127.0.0.1:", &ss, &len));
    assert_false(petrel_parse_listen_address("::1:25", &ss, &len));
    assert_false(petrel_parse_listen_address("[::1]25", &ss, &len));
}

/* PETREL_SETTING_GROUPS: a list of groups, each filled from a sub-table
 * (tables at file scope: the macro's descriptor is a compound literal). */
struct server_elem {
    char *host;
    long long port;
    long long timeout;
    bool tls;
};

static const struct petrel_setting server_elem_settings[] = {
    PETREL_SETTING_STRING_F(struct server_elem, host, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_INT(struct server_elem, port, "389", 1, 65535),
    PETREL_SETTING_DURATION_F(struct server_elem, timeout, "5s", 1, 60, PETREL_SETTING_FIXED),
    PETREL_SETTING_BOOL(struct server_elem, tls, "false"),
    PETREL_SETTINGS_END,
};

struct pool_elem {
    char *name;
    struct petrel_setting_list servers;
};

static const struct petrel_setting pool_elem_settings[] = {
    PETREL_SETTING_STRING(struct pool_elem, name, "default"),
    PETREL_SETTING_GROUPS(struct pool_elem, servers, struct server_elem, server_elem_settings, 1,
                          0),
    PETREL_SETTINGS_END,
};

struct groups_cfg {
    long long n;
    struct petrel_setting_list connectors;
    struct petrel_setting_list pools;
    struct petrel_setting_list few;
};

static const struct petrel_setting groups_settings[] = {
    PETREL_SETTING_INT(struct groups_cfg, n, "1", 0, 10),
    PETREL_SETTING_GROUPS(struct groups_cfg, connectors, struct server_elem, server_elem_settings,
                          0, 0),
    PETREL_SETTING_GROUPS_F(struct groups_cfg, pools, struct pool_elem, pool_elem_settings, 0, 0,
                            PETREL_SETTING_FIXED),
    PETREL_SETTING_GROUPS(struct groups_cfg, few, struct server_elem, server_elem_settings, 0, 2),
    PETREL_SETTINGS_END,
};

/* Apply text as a module's settings group; -1 with error_r on a refusal. */
static int apply_groups(const char *text, struct groups_cfg *g, const char **error_r)
{
    config_t lc;
    config_init(&lc);
    assert_int_equal(config_read_string(&lc, text), CONFIG_TRUE);
    memset(g, 0, sizeof(*g));
    int r = petrel_settings_apply(config_root_setting(&lc), groups_settings, g, "conf.d/m.conf",
                                  NULL, error_r);
    config_destroy(&lc);
    if (r < 0)
        petrel_settings_free(groups_settings, g);
    return r;
}

static void test_groups_defaults(void **state)
{
    struct groups_cfg g;
    const char *error = NULL;
    /* Unset: an empty list. */
    assert_int_equal(apply_groups("n = 2;\n", &g, &error), 0);
    assert_int_equal(g.connectors.count, 0);
    assert_null(g.connectors.items);
    petrel_settings_free(groups_settings, &g);

    assert_int_equal(
        apply_groups("connectors = (\n { host = \"a\"; },\n"
                     " { host = \"b\"; port = 636; tls = true; timeout = \"1m\"; }\n);\n",
                     &g, &error),
        0);
    assert_int_equal(g.connectors.count, 2);
    const struct server_elem *c = g.connectors.items;
    assert_string_equal(c[0].host, "a");
    assert_int_equal(c[0].port, 389);
    assert_int_equal(c[0].timeout, 5);
    assert_false(c[0].tls);
    assert_string_equal(c[1].host, "b");
    assert_int_equal(c[1].port, 636);
    assert_int_equal(c[1].timeout, 60);
    assert_true(c[1].tls);
    petrel_settings_free(groups_settings, &g);
    assert_int_equal(g.connectors.count, 0);
    assert_null(g.connectors.items);
}

static void test_groups_empty_list(void **state)
{
    struct groups_cfg g;
    const char *error = NULL;
    assert_int_equal(apply_groups("connectors = ();\nfew = [];\n", &g, &error), 0);
    assert_int_equal(g.connectors.count, 0);
    assert_null(g.connectors.items);
    assert_int_equal(g.few.count, 0);
    petrel_settings_free(groups_settings, &g);
}

static void test_groups_min_max(void **state)
{
    struct groups_cfg g;
    const char *error = NULL;
    /* A number inside an element out of its range. */
    assert_int_equal(apply_groups("connectors = (\n { host = \"a\"; },\n"
                                  " { host = \"b\";\n   port = 70000; }\n);\n",
                                  &g, &error),
                     -1);
    assert_string_equal(error, "conf.d/m.conf:4: setting 'connectors[1].port' is out of range");
    /* Too many groups for max 2. */
    assert_int_equal(apply_groups("few = ( { host = \"a\"; }, { host = \"b\"; },\n"
                                  "  { host = \"c\"; } );\n",
                                  &g, &error),
                     -1);
    assert_string_equal(error, "conf.d/m.conf:1: setting 'few' has 3 groups, not 0 to 2");
    /* min 1: servers of a pool may not be empty, nor unset. */
    assert_int_equal(apply_groups("pools = ( { servers = (); } );\n", &g, &error), -1);
    assert_string_equal(error,
                        "conf.d/m.conf:1: setting 'pools[0].servers' has 0 groups, not 1 to 1024");
    assert_int_equal(apply_groups("pools = ( { name = \"x\"; } );\n", &g, &error), -1);
    assert_string_equal(error,
                        "conf.d/m.conf:1: setting 'pools[0].servers' has 0 groups, not 1 to 1024");
}

static void test_groups_bad_element(void **state)
{
    struct groups_cfg g;
    const char *error = NULL;
    assert_int_equal(apply_groups("connectors = (\n { host = \"a\"; },\n \"b\" );\n", &g, &error),
                     -1);
    assert_string_equal(error, "conf.d/m.conf:3: setting 'connectors[1]' must be a group { ... }");
    assert_int_equal(apply_groups("connectors = \"a\";\n", &g, &error), -1);
    assert_string_equal(error, "conf.d/m.conf:1: setting 'connectors' expects a list of groups ( { "
                               "... }, ... )");
    assert_int_equal(apply_groups("connectors = { host = \"a\"; };\n", &g, &error), -1);
    assert_non_null(strstr(error, "expects a list of groups"));
    assert_int_equal(
        apply_groups("connectors = (\n { host = \"a\";\n bogus = 1; }\n);\n", &g, &error), -1);
    assert_string_equal(error, "conf.d/m.conf:3: unknown setting 'connectors[0].bogus'");
    assert_int_equal(apply_groups("connectors = (\n { port = 1; }\n);\n", &g, &error), -1);
    assert_string_equal(error, "conf.d/m.conf:2: required setting 'connectors[0].host' is missing");
}

static void test_groups_nested_errors(void **state)
{
    struct groups_cfg g;
    const char *error = NULL;
    const char *text = "pools = (\n"
                       " { name = \"p0\"; servers = ( { host = \"a\"; } ); },\n"
                       " { name = \"p1\";\n"
                       "   servers = ( { host = \"b\"; },\n"
                       "               { host = \"c\"; tls = 3; } ); }\n"
                       ");\n";
    assert_int_equal(apply_groups(text, &g, &error), -1);
    assert_string_equal(
        error, "conf.d/m.conf:5: setting 'pools[1].servers[1].tls' does not take a number");

    /* The same, well formed, read back through both levels. */
    text = "pools = (\n { servers = ( { host = \"a\"; } ); },\n"
           " { name = \"p1\"; servers = ( { host = \"b\"; }, { host = \"c\"; } ); }\n);\n";
    assert_int_equal(apply_groups(text, &g, &error), 0);
    const struct pool_elem *p = g.pools.items;
    assert_int_equal(g.pools.count, 2);
    assert_string_equal(p[0].name, "default");
    assert_int_equal(p[1].servers.count, 2);
    assert_string_equal(((const struct server_elem *)p[1].servers.items)[1].host, "c");
    petrel_settings_free(groups_settings, &g);
}

/* The FIXED setting a reload from base to text would change, or NULL. */
static const char *fixed_change(const struct groups_cfg *base, const char *text)
{
    struct groups_cfg next;
    const char *error = NULL;
    assert_int_equal(apply_groups(text, &next, &error), 0);
    const char *changed = petrel_settings_fixed_changed(groups_settings, base, &next);
    petrel_settings_free(groups_settings, &next);
    return changed;
}

/* FIXED: a FIXED list compares every element; in a list that is not
 * FIXED, the FIXED settings of its elements count (timeout here). */
static void test_groups_fixed(void **state)
{
    struct groups_cfg a;
    const char *error = NULL;
    const char *base = "pools = ( { servers = ( { host = \"a\"; } ); } );\n"
                       "connectors = ( { host = \"x\"; } );\n";
    assert_int_equal(apply_groups(base, &a, &error), 0);
    assert_null(fixed_change(&a, base));
    assert_string_equal(fixed_change(&a,
                                     "pools = ( { servers = ( { host = \"a\"; port = 1; } ); } );\n"
                                     "connectors = ( { host = \"x\"; } );\n"),
                        "pools");
    /* connectors is not FIXED: its host may change, its timeout not. */
    assert_null(fixed_change(&a, "pools = ( { servers = ( { host = \"a\"; } ); } );\n"
                                 "connectors = ( { host = \"y\"; } );\n"));
    assert_string_equal(fixed_change(&a, "pools = ( { servers = ( { host = \"a\"; } ); } );\n"
                                         "connectors = ( { host = \"x\"; timeout = 9; } );\n"),
                        "connectors");
    petrel_settings_free(groups_settings, &a);
}

/* Through a module's conf.d file: filled with the generation and freed
 * with it (the leak check of the sanitizer builds sees the rest). */
static void test_groups_module(void **state)
{
    clear_confd();
    write_confd("m.conf", "module = \"m\";\nsettings: {\n connectors = (\n"
                          "  { host = \"a\"; },\n  { host = \"b\"; port = 0; }\n );\n};\n");
    write_text(conf, "");
    const char *error = NULL;
    struct petrel_config *cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_int_equal(petrel_config_apply_module(&cfg->services[0], groups_settings,
                                                sizeof(struct groups_cfg), &error),
                     -1);
    assert_non_null(strstr(error, "m.conf:5: setting 'connectors[1].port' is out of range"));
    petrel_config_unref(cfg);

    write_confd("m.conf", "module = \"m\";\nsettings: {\n connectors = (\n"
                          "  { host = \"a\"; },\n  { host = \"b\"; port = 10; }\n );\n};\n");
    cfg = petrel_config_load(conf, &error);
    assert_non_null(cfg);
    assert_int_equal(petrel_config_apply_module(&cfg->services[0], groups_settings,
                                                sizeof(struct groups_cfg), &error),
                     0);
    const struct groups_cfg *g = cfg->services[0].settings;
    assert_int_equal(g->connectors.count, 2);
    assert_int_equal(((const struct server_elem *)g->connectors.items)[1].port, 10);
    petrel_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors_name_file_line_setting),
        cmocka_unit_test(test_service_and_listeners),
        cmocka_unit_test(test_service_errors),
        cmocka_unit_test(test_module_settings),
        cmocka_unit_test(test_ipset_setting),
        cmocka_unit_test(test_config_snapshot),
        cmocka_unit_test(test_parse_helpers),
        cmocka_unit_test(test_groups_defaults),
        cmocka_unit_test(test_groups_empty_list),
        cmocka_unit_test(test_groups_min_max),
        cmocka_unit_test(test_groups_bad_element),
        cmocka_unit_test(test_groups_nested_errors),
        cmocka_unit_test(test_groups_fixed),
        cmocka_unit_test(test_groups_module),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
