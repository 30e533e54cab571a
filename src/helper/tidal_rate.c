/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The relay's cap on /dirt/play: a token bucket counted in thousandths of
 * an event, refilled by the millisecond, so that any rate from 1 a second
 * up is exact without floating point.
 */


#include "tidal_rate.h"


#define TIDAL_RATE_BURST_MS  100


void
tidal_rate_init(tidal_rate_t *r, unsigned rate, int64_t now)
{
    r->rate = rate;

    /* Tidal sends a frame's events at once, every 50 ms */

    r->burst = (int64_t) rate * TIDAL_RATE_BURST_MS;

    if (r->burst < 1000) {
        r->burst = 1000;
    }

    r->tokens = r->burst;
    r->at = now;
}


int
tidal_rate_take(tidal_rate_t *r, unsigned n, int64_t now)
{
    int64_t  need;

    if (r->rate == 0) {
        return 1;
    }

    /* a clock that went back refills nothing */

    if (now > r->at) {
        r->tokens += (now - r->at) * r->rate;

        if (r->tokens > r->burst) {
            r->tokens = r->burst;
        }

        r->at = now;
    }

    need = (int64_t) n * 1000;

    if (r->tokens >= need || (need > r->burst && r->tokens == r->burst)) {
        r->tokens -= need;
        return 1;
    }

    return 0;
}
