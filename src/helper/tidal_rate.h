/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * A token bucket: at most so many events a second, with a burst of a
 * tenth of a second's worth.  Pure: the caller passes the clock.
 */

#ifndef _TIDAL_RATE_H_INCLUDED_
#define _TIDAL_RATE_H_INCLUDED_


#include <stdint.h>


typedef struct {
    int64_t     rate;       /* events a second, 0: no cap */
    int64_t     burst;      /* in thousandths of an event */
    int64_t     tokens;     /* thousandths; below 0 after a large take */
    int64_t     at;         /* ms of the last refill */
} tidal_rate_t;


/* rate events a second (0: every event passes), full at now (ms) */
void tidal_rate_init(tidal_rate_t *r, unsigned rate, int64_t now);

/*
 * 1: n events pass at now (ms), and are counted; 0: they would exceed
 * the rate, and nothing is counted.  A take larger than the burst passes
 * when the bucket is full, and the next ones wait until it is paid for.
 */
int tidal_rate_take(tidal_rate_t *r, unsigned n, int64_t now);


#endif /* _TIDAL_RATE_H_INCLUDED_ */
