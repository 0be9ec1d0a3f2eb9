/* Access rules and flow control (seed 3.3.2). Rules exist at three levels:
 * global, per service and per listener. The most specific level with a
 * matching enabled rule decides; within a level the lowest priority number
 * wins and a deny beats an allow of equal priority. No match: allow. */
#ifndef PETREL_CORE_RULES_H
#define PETREL_CORE_RULES_H

#include <stdbool.h>
#include <time.h>

#include "cfg.h"
#include "ipset.h"

struct petrel_flow_state;

struct petrel_flow_state *petrel_flow_state_new(void);
void petrel_flow_state_ref(struct petrel_flow_state *st);
void petrel_flow_state_unref(struct petrel_flow_state *st);

/* levels[0] is the most specific. NULL: no rule matched (default allow). */
const struct petrel_rule *petrel_rules_decide(const struct petrel_rules *const *levels,
                                              size_t nlevels, const struct petrel_ipaddr *peer);

/* One counted connection against one flow state. */
struct petrel_flow_hold {
    struct petrel_flow_state *st;
    bool peer_tracked;
};

/* Count a new connection against limits f; the per-address ones (IPv6 per
 * /64) unless peer_exempt. NULL if admitted (hold filled), else the reason
 * it was refused (static text). */
const char *petrel_flow_acquire(struct petrel_flow_state *st, const struct petrel_flow *f,
                                const struct petrel_ipaddr *peer, bool peer_exempt, time_t now,
                                struct petrel_flow_hold *hold);
void petrel_flow_release(struct petrel_flow_hold *hold, const struct petrel_ipaddr *peer);

static inline bool petrel_flow_limited(const struct petrel_flow *f)
{
    return f->max_connections || f->max_interval_connections || f->peer_max_connections ||
           f->peer_max_interval_connections;
}

#endif
