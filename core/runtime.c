/* State a configuration generation needs at run time beyond its settings:
 * TLS contexts and the counters of rules with flow limits. */
#include "config.h"

#include "rules.h"
#include "server.h"
#include "tls.h"

static void prepare_rules(struct petrel_rules *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].allow && petrel_flow_limited(&r->v[i].flow))
            r->v[i].state = petrel_flow_state_new();
    }
}

int petrel_runtime_prepare(struct petrel_config *cfg, const char **error_r)
{
    prepare_rules(&cfg->rules);
    for (size_t i = 0; i < cfg->nservices; i++) {
        prepare_rules(&cfg->services[i].rules);
        for (size_t j = 0; j < cfg->services[i].nlisteners; j++)
            prepare_rules(&cfg->services[i].listeners[j].rules);
    }
    return petrel_tls_prepare(cfg, error_r);
}
