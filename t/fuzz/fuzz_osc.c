/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * libFuzzer target for the relay's OSC reader: whatever Tidal (or anyone
 * on 127.0.0.1) sends to the relay, nothing is read past the packet, and
 * the counts stay consistent - every heartbeat is a /dirt/play, every
 * /dirt/play a message.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_osc.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t      *copy;
    tidal_osc_t   osc;

    /* an exact-size copy, so ASan sees a read past the end */

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    (void) tidal_osc_scan(copy, size, "tidal-helper-heartbeat", &osc);

    if (osc.sounds > osc.plays || osc.plays > osc.messages || osc.cps < 0) {
        fprintf(stderr, "fuzz_osc: %u sounds, %u plays, %u messages, "
                "cps %g\n", osc.sounds, osc.plays, osc.messages, osc.cps);
        abort();
    }

    free(copy);

    return 0;
}
