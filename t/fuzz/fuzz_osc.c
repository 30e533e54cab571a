/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * libFuzzer target for the relay's OSC reader: whatever Tidal (or anyone
 * on 127.0.0.1) sends to the relay, nothing is read past the packet, and
 * the counts stay consistent - every heartbeat is a /dirt/play, every
 * /dirt/play a message and counted for one channel (or none).  The same
 * bytes go through the argument reader (tidal_osc_args_*), which every
 * argument it returns keeps within the packet, and through the sound
 * encoder (tidal_sound_*), whose batch is one JSON-RPC notification
 * with no more events than the packet has plays and no control byte.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_osc.h"
#include "tidal_sound.h"
#include "tidal_protocol.h"


static void fuzz_osc_args(const uint8_t *p, size_t n);
static void fuzz_osc_sound(const uint8_t *p, size_t n);
static void fuzz_osc_count(void *data, uint64_t time, const unsigned char *p,
    size_t n);


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

    fuzz_osc_args(copy, size);
    fuzz_osc_sound(copy, size);

    free(copy);

    return 0;
}


/* the bytes as one message: each argument within them, or an error */

static void
fuzz_osc_args(const uint8_t *p, size_t n)
{
    int               rc;
    size_t            count;
    tidal_osc_arg_t   arg;
    tidal_osc_args_t  args;

    if (tidal_osc_args_start(&args, p, n) != 0) {
        return;
    }

    for (count = 0; (rc = tidal_osc_args_next(&args, &arg)) == 1; count++) {
        if ((arg.type == 's' || arg.type == 'S')
            && (arg.s == NULL || (const uint8_t *) arg.s < p
                || (const uint8_t *) arg.s + arg.len >= p + n
                || arg.s[arg.len] != '\0' || strlen(arg.s) != arg.len))
        {
            fprintf(stderr, "fuzz_osc: a string outside the packet\n");
            abort();
        }

        if (args.off > n || count > n) {
            fprintf(stderr, "fuzz_osc: read past the packet\n");
            abort();
        }
    }

    /*
     * after the last argument, no more; (after an error the reader is
     * not sticky: its callers stop at the first -1)
     */

    if (rc == 0 && tidal_osc_args_next(&args, &arg) != 0) {
        fprintf(stderr, "fuzz_osc: the reader went on after %d\n", rc);
        abort();
    }
}


/*
 * The relay passes on what tidal_osc_scan() refuses too, so the bound on
 * the events is the plays tidal_osc_plays() finds, not scan's count.
 */

static void
fuzz_osc_sound(const uint8_t *p, size_t n)
{
    size_t         i, len, events;
    unsigned       added, plays;
    const char    *text, *at;
    tidal_sound_t  b;

    plays = 0;
    (void) tidal_osc_plays(p, n, fuzz_osc_count, &plays);

    tidal_sound_init(&b, "tidal-helper-heartbeat-");

    added = tidal_sound_add(&b, p, n);
    text = tidal_sound_take(&b, &len);

    if (added > plays || (text == NULL) != (added == 0)) {
        fprintf(stderr, "fuzz_osc: %u sound events, %u plays, text %s\n",
                added, plays, text ? "yes" : "no");
        abort();
    }

    if (text != NULL) {
        events = 0;

        for (at = text; (at = strstr(at, "{\"time\":")) != NULL; at++) {
            events++;
        }

        if (len != strlen(text)
            || strncmp(text, TIDAL_PROTOCOL_SOUND_HEAD,
                       sizeof(TIDAL_PROTOCOL_SOUND_HEAD) - 1) != 0
            || strcmp(text + len - (sizeof(TIDAL_PROTOCOL_SOUND_TAIL) - 1),
                      TIDAL_PROTOCOL_SOUND_TAIL) != 0
            || events < added)
        {
            fprintf(stderr, "fuzz_osc: a batch of %u: %s\n", added, text);
            abort();
        }

        for (i = 0; i < len; i++) {
            if ((unsigned char) text[i] < 0x20) {
                fprintf(stderr, "fuzz_osc: a control byte in %s\n", text);
                abort();
            }
        }
    }

    tidal_sound_free(&b);
}


static void
fuzz_osc_count(void *data, uint64_t time, const unsigned char *p, size_t n)
{
    unsigned  *plays = data;

    (void) time;
    (void) p;
    (void) n;

    (*plays)++;
}
