/* Each loop's timer heap: connection deadlines and the timers modules add
 * (petrel/loop.h). A min-heap keyed by when an entry was last known due. */
#include "config.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <petrel/loop.h>
#include <petrel/mem.h>

#include "iothread.h"
#include "server.h"

struct petrel_timer {
    struct petrel_tnode node;
    struct petrel_loop *loop;
    unsigned ms;
    bool repeat;
    bool armed;   /* in its loop's hands (the post that arms it has run) */
    bool firing;  /* fn is running: a remove from it frees afterwards */
    bool removed; /* removed while firing, or before it was armed */
    petrel_timer_fn *fn;
    void *ctx;
};

static void heap_swap(struct petrel_loop *t, size_t a, size_t b)
{
    struct petrel_tnode *x = t->heap[a];
    t->heap[a] = t->heap[b];
    t->heap[b] = x;
    t->heap[a]->idx = a;
    t->heap[b]->idx = b;
}

static void heap_up(struct petrel_loop *t, size_t i)
{
    while (i > 0 && t->heap[(i - 1) / 2]->key > t->heap[i]->key) {
        heap_swap(t, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct petrel_loop *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->heap_len && t->heap[l]->key < t->heap[m]->key)
            m = l;
        if (r < t->heap_len && t->heap[r]->key < t->heap[m]->key)
            m = r;
        if (m == i)
            return;
        heap_swap(t, i, m);
        i = m;
    }
}

void petrel_tnode_remove(struct petrel_loop *t, struct petrel_tnode *n)
{
    size_t i = n->idx;
    if (i == SIZE_MAX)
        return;
    n->idx = SIZE_MAX;
    t->heap_len--;
    if (i == t->heap_len)
        return;
    t->heap[i] = t->heap[t->heap_len];
    t->heap[i]->idx = i;
    heap_down(t, i);
    heap_up(t, i);
}

/* Moving a deadline later costs nothing: the entry is re-keyed when it
 * surfaces. Only an earlier one is re-sorted now. */
void petrel_tnode_set(struct petrel_loop *t, struct petrel_tnode *n)
{
    if (n->idx != SIZE_MAX) {
        if (n->when < n->key) {
            n->key = n->when;
            heap_up(t, n->idx);
        }
        return;
    }
    if (t->heap_len == t->heap_cap) {
        t->heap_cap = t->heap_cap ? t->heap_cap * 2 : 64;
        t->heap = petrel_reallocarray(t->heap, t->heap_cap, sizeof(*t->heap));
    }
    n->key = n->when;
    n->idx = t->heap_len;
    t->heap[t->heap_len++] = n;
    heap_up(t, n->idx);
}

void petrel_timers_run(struct petrel_loop *t)
{
    while (t->heap_len > 0 && t->heap[0]->key <= t->now_ms) {
        struct petrel_tnode *n = t->heap[0];
        if (n->when > t->now_ms) {
            n->key = n->when;
            heap_down(t, 0);
            continue;
        }
        petrel_tnode_remove(t, n);
        n->fire(n);
    }
}

int petrel_timers_next_ms(const struct petrel_loop *t)
{
    int64_t most = t->stopping ? 100 : 1000; /* stopping: look at the count often */
    int64_t wait = t->heap_len > 0 ? t->heap[0]->key - t->now_ms : most;
    return wait <= 0 ? 0 : wait > most ? (int)most : (int)wait;
}

static void timer_fire(struct petrel_tnode *n);

/* Module timers still set when the loops are freed: the modules have
 * stopped and use no handle again. Connection deadlines go with their
 * connections, all closed by now. */
void petrel_timers_free(struct petrel_loop *t)
{
    for (size_t i = 0; i < t->heap_len; i++) {
        t->heap[i]->idx = SIZE_MAX;
        if (t->heap[i]->fire == timer_fire)
            free(t->heap[i]);
    }
    free(t->heap);
    t->heap = NULL;
    t->heap_len = t->heap_cap = 0;
}

/* --- the modules' timers --- */

static void timer_fire(struct petrel_tnode *n)
{
    struct petrel_timer *tm = (struct petrel_timer *)n;
    tm->firing = true;
    tm->fn(tm->ctx);
    tm->firing = false;
    if (tm->removed) {
        free(tm);
        return;
    }
    if (tm->repeat) {
        tm->node.when = tm->loop->now_ms + tm->ms;
        petrel_tnode_set(tm->loop, &tm->node);
    }
}

static void timer_arm(struct petrel_loop *t, void *arg)
{
    struct petrel_timer *tm = arg;
    tm->armed = true;
    if (tm->removed) {
        free(tm);
        return;
    }
    tm->node.when = t->now_ms + tm->ms;
    petrel_tnode_set(t, &tm->node);
}

static atomic_uint next_loop;

struct petrel_timer *petrel_timer_add(struct petrel_loop *loop, unsigned ms, bool repeat,
                                      petrel_timer_fn *fn, void *ctx)
{
    if (loop == NULL)
        loop = petrel_current_loop != NULL ? petrel_current_loop
                                           : petrel_loop_get(atomic_fetch_add(&next_loop, 1));
    if (loop == NULL)
        return NULL; /* no loops in this process (petrelctl, --check-config) */
    if (ms == 0)
        ms = 1; /* never due again within the timer run that set it */
    struct petrel_timer *tm = petrel_calloc(1, sizeof(*tm));
    tm->node.idx = SIZE_MAX;
    tm->node.fire = timer_fire;
    tm->loop = loop;
    tm->ms = ms;
    tm->repeat = repeat && ms > 0; /* a 0 ms period would spin the loop */
    tm->fn = fn;
    tm->ctx = ctx;
    if (petrel_current_loop == loop)
        timer_arm(loop, tm);
    else
        petrel_iothread_post(loop, timer_arm, tm);
    return tm;
}

void petrel_timer_reset(struct petrel_timer *tm, unsigned ms)
{
    tm->ms = ms > 0 ? ms : 1;
    petrel_tnode_remove(tm->loop, &tm->node);
    tm->node.when = tm->loop->now_ms + tm->ms;
    petrel_tnode_set(tm->loop, &tm->node);
}

static void timer_free_task(struct petrel_loop *t, void *arg)
{
    struct petrel_timer *tm = arg;
    petrel_tnode_remove(t, &tm->node);
    free(tm);
}

void petrel_timer_remove(struct petrel_timer *tm)
{
    if (tm == NULL)
        return;
    struct petrel_loop *t = tm->loop;
    if (petrel_current_loop != t && atomic_load(&t->running)) {
        /* Another thread: the loop frees it in turn (after the add, posted
         * earlier); until then a due callback may still run. */
        petrel_iothread_post(t, timer_free_task, tm);
        return;
    }
    if (tm->firing || !tm->armed) {
        tm->removed = true; /* freed when fn returns, or by the post arming it */
        return;
    }
    petrel_tnode_remove(t, &tm->node);
    free(tm);
}
