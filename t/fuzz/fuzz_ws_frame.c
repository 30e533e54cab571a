/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/* libFuzzer target: the frame parser gives the same events however cut. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_ws.h"


/*
 * Input: byte 0 and 1 pick max_message (0..300, or 1 MiB when byte 0 is
 * F0 or more), byte 2 seeds the generator that cuts the input.  The rest
 * is frame bytes, parsed by a server's parser and by a client's, each
 * once in one piece and once in random pieces; both event sequences must
 * be identical, and every event must keep the promises tidal_ws.h makes.
 */

#define FUZZ_BIG_MESSAGE   (1 << 20)


typedef struct {
    uint8_t    *data;
    size_t      len;
    size_t      cap;
} fuzz_log_t;


typedef struct {
    tidal_ws_parser_t   parser;
    fuzz_log_t          log;
    size_t              max;
    int                 closed;
    int                 failed;
} fuzz_run_t;


static uint32_t  fuzz_rng_state;


static void
fuzz_fail(const char *why)
{
    fprintf(stderr, "fuzz_ws_frame: %s\n", why);
    abort();
}


static uint32_t
fuzz_rng(void)
{
    fuzz_rng_state ^= fuzz_rng_state << 13;
    fuzz_rng_state ^= fuzz_rng_state >> 17;
    fuzz_rng_state ^= fuzz_rng_state << 5;
    return fuzz_rng_state;
}


static void
fuzz_log_add(fuzz_log_t *log, const void *p, size_t n)
{
    size_t   cap;
    uint8_t *data;

    if (log->len + n > log->cap) {
        cap = (log->cap + n) * 2;
        data = realloc(log->data, cap);
        if (data == NULL) {
            fuzz_fail("out of memory");
        }

        log->data = data;
        log->cap = cap;
    }

    if (n) {
        memcpy(&log->data[log->len], p, n);
        log->len += n;
    }
}


static int
fuzz_utf8_whole(const uint8_t *p, size_t n)
{
    tidal_utf8_t  u;

    tidal_utf8_init(&u);

    return tidal_utf8_feed(&u, p, n) == 0 && tidal_utf8_complete(&u);
}


/* checks one event against the header's promises and logs it */

static void
fuzz_event(fuzz_run_t *r, tidal_ws_event_type_e t, tidal_ws_event_t *ev)
{
    uint8_t  head[1 + 2 + sizeof(size_t)];

    if (ev->type != t) {
        fuzz_fail("ev.type differs from the return value");
    }

    if (r->closed) {
        fuzz_fail("event after CLOSE");
    }

    switch (t) {

    case TIDAL_WS_TEXT:
        if (ev->len > r->max || ev->code != 0) {
            fuzz_fail("TEXT longer than max_message or with a code");
        }

        if (ev->data == NULL || !fuzz_utf8_whole(ev->data, ev->len)) {
            fuzz_fail("TEXT that is not whole, valid UTF-8");
        }

        break;

    case TIDAL_WS_PING:
    case TIDAL_WS_PONG:
        if (ev->len > TIDAL_WS_MAX_CONTROL || ev->code != 0
            || (ev->len && ev->data == NULL))
        {
            fuzz_fail("PING/PONG payload over 125 bytes");
        }

        break;

    case TIDAL_WS_CLOSE:
        if (ev->len > TIDAL_WS_MAX_CONTROL - 2
            || (ev->len && ev->data == NULL)
            || !fuzz_utf8_whole(ev->data, ev->len))
        {
            fuzz_fail("CLOSE reason too long or not UTF-8");
        }

        if (ev->code == TIDAL_WS_CLOSE_NO_STATUS ? ev->len != 0
            : !tidal_ws_close_code_valid(ev->code))
        {
            fuzz_fail("CLOSE with a code no peer may send");
        }

        r->closed = 1;
        break;

    case TIDAL_WS_FAIL:
        if (ev->code != TIDAL_WS_CLOSE_PROTOCOL
            && ev->code != TIDAL_WS_CLOSE_UNSUPPORTED
            && ev->code != TIDAL_WS_CLOSE_INVALID_DATA
            && ev->code != TIDAL_WS_CLOSE_TOO_BIG
            && ev->code != TIDAL_WS_CLOSE_INTERNAL)
        {
            fuzz_fail("FAIL with an unexpected code");
        }

        if (ev->reason == NULL) {
            fuzz_fail("FAIL without a reason");
        }

        r->failed = 1;
        break;

    default:
        fuzz_fail("unknown event type");
    }

    head[0] = (uint8_t) t;
    head[1] = (uint8_t) (ev->code >> 8);
    head[2] = (uint8_t) ev->code;
    memcpy(&head[3], &ev->len, sizeof(size_t));

    fuzz_log_add(&r->log, head, sizeof(head));
    fuzz_log_add(&r->log, ev->data, ev->len);

    if (t == TIDAL_WS_FAIL) {
        fuzz_log_add(&r->log, ev->reason, strlen(ev->reason) + 1);
    }
}


/* parses one piece to its end, or until the parser fails */

static void
fuzz_piece(fuzz_run_t *r, const uint8_t *start, const uint8_t *end)
{
    uint16_t                code;
    const uint8_t          *pos, *before;
    tidal_ws_event_t        ev;
    tidal_ws_event_type_e   t;

    pos = start;

    while (!r->failed) {
        before = pos;
        t = tidal_ws_parse(&r->parser, &pos, end, &ev);

        if (pos < before || pos > end) {
            fuzz_fail("*pos moved outside the input");
        }

        if (r->parser.msg_cap > r->max) {
            fuzz_fail("message buffer larger than max_message");
        }

        if (t == TIDAL_WS_AGAIN) {
            if (pos != end) {
                fuzz_fail("AGAIN before the input was used up");
            }

            return;
        }

        fuzz_event(r, t, &ev);

        if (r->closed && tidal_ws_parser_busy(&r->parser)) {
            fuzz_fail("busy after CLOSE");
        }
    }

    /* failed for good, and consumes nothing more */
    code = ev.code;
    before = pos;

    if (tidal_ws_parse(&r->parser, &pos, end, &ev) != TIDAL_WS_FAIL
        || ev.code != code || pos != before
        || tidal_ws_parser_busy(&r->parser))
    {
        fuzz_fail("a failed parser came back to life");
    }
}


static void
fuzz_run_init(fuzz_run_t *r, size_t max, int client)
{
    memset(r, 0, sizeof(fuzz_run_t));
    r->max = max;

    if (client) {
        tidal_ws_parser_init_client(&r->parser, max);

    } else {
        tidal_ws_parser_init(&r->parser, max);
    }
}


static void
fuzz_run_free(fuzz_run_t *r)
{
    tidal_ws_parser_free(&r->parser);
    free(r->log.data);
}


static void fuzz_side(const uint8_t *in, size_t size, size_t max,
    int client);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t    max;
    uint32_t  seed;

    if (size < 3) {
        return 0;
    }

    max = (data[0] >= 0xf0) ? FUZZ_BIG_MESSAGE
                            : (size_t) (((data[0] << 8) | data[1]) % 301);
    seed = 0x9e3779b9u ^ ((uint32_t) data[2] << 8) ^ data[1];

    fuzz_rng_state = seed;
    fuzz_side(data + 3, size - 3, max, 0);

    fuzz_rng_state = seed;
    fuzz_side(data + 3, size - 3, max, 1);

    return 0;
}


static void
fuzz_side(const uint8_t *in, size_t size, size_t max, int client)
{
    size_t       off, n;
    uint8_t     *piece;
    fuzz_run_t   whole, cut;

    fuzz_run_init(&whole, max, client);
    fuzz_piece(&whole, in, in + size);

    /* each piece in a buffer of its own, so ASan sees reads past it */
    fuzz_run_init(&cut, max, client);

    for (off = 0; off < size && !cut.failed; off += n) {
        switch (fuzz_rng() % 4) {
        case 0:
            n = 1;
            break;
        case 1:
        case 2:
            n = 1 + fuzz_rng() % 16;
            break;
        default:
            n = 1 + fuzz_rng() % 256;
        }

        if (n > size - off) {
            n = size - off;
        }

        piece = malloc(n);
        if (piece == NULL) {
            fuzz_fail("out of memory");
        }

        memcpy(piece, &in[off], n);
        fuzz_piece(&cut, piece, piece + n);
        free(piece);
    }

    if (whole.log.len != cut.log.len
        || (whole.log.len
            && memcmp(whole.log.data, cut.log.data, whole.log.len) != 0))
    {
        fuzz_fail("events differ between one piece and random pieces");
    }

    if (tidal_ws_parser_busy(&whole.parser)
        != tidal_ws_parser_busy(&cut.parser))
    {
        fuzz_fail("busy differs between one piece and random pieces");
    }

    fuzz_run_free(&whole);
    fuzz_run_free(&cut);
}
