/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * libFuzzer target for the relay's OSC reader: whatever Tidal (or anyone
 * on 127.0.0.1) sends to the relay, nothing is read past the packet, and
 * the counts stay consistent - every heartbeat is a /dirt/play, every
 * /dirt/play a message and counted for one channel (or none).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_osc.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t        i;
    uint8_t      *copy;
    unsigned      sum;
    tidal_osc_t   osc;

    /* an exact-size copy, so ASan sees a read past the end */

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    (void) tidal_osc_scan(copy, size, "tidal-helper-heartbeat-", &osc);

    sum = 0;

    for (i = 0; i <= TIDAL_OSC_CHANNELS; i++) {
        sum += osc.channel_plays[i];
    }

    if (osc.sounds > osc.plays || osc.plays > osc.messages || osc.cps < 0
        || sum != osc.plays
        || (osc.rest != NULL
            && ((const uint8_t *) osc.rest < copy
                || (const uint8_t *) osc.rest + osc.rest_len
                   > copy + size)))
    {
        fprintf(stderr, "fuzz_osc: %u sounds, %u plays (%u by channel), "
                "%u messages, cps %g\n", osc.sounds, osc.plays, sum,
                osc.messages, osc.cps);
        abort();
    }

    free(copy);

    return 0;
}
