/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The room's sound events, written as JSON by hand: floats in their
 * shortest form (0.8, not 0.800000011920929), the time in microseconds,
 * and no second pass through a JSON library for every batch.
 */


#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_osc.h"
#include "tidal_sound.h"
#include "tidal_utf8.h"
#include "tidal_protocol.h"


static void tidal_sound_play(void *data, uint64_t time,
    const unsigned char *p, size_t n);
static void tidal_sound_value(tidal_sound_t *b, const tidal_osc_arg_t *arg);
static int tidal_sound_text_ok(const char *s, size_t len);
static void tidal_sound_string(tidal_sound_t *b, const char *s, size_t len);
static void tidal_sound_printf(tidal_sound_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tidal_sound_append(tidal_sound_t *b, const char *s, size_t len);


void
tidal_sound_init(tidal_sound_t *b, const char *skip)
{
    memset(b, 0, sizeof(tidal_sound_t));

    b->skip = skip;
    b->skip_len = skip ? strlen(skip) : 0;
}


unsigned
tidal_sound_add(tidal_sound_t *b, const unsigned char *p, size_t n)
{
    unsigned  before;

    before = b->events;

    (void) tidal_osc_plays(p, n, tidal_sound_play, b);

    return b->events - before;
}


const char *
tidal_sound_take(tidal_sound_t *b, size_t *len)
{
    const char  *text;

    text = NULL;

    if (b->events && !b->failed) {
        tidal_sound_append(b, TIDAL_PROTOCOL_SOUND_TAIL,
                           sizeof(TIDAL_PROTOCOL_SOUND_TAIL) - 1);
        tidal_sound_append(b, "", 1);

        if (!b->failed) {
            text = b->data;
            *len = b->len - 1;
        }
    }

    b->len = 0;
    b->events = 0;
    b->failed = 0;

    return text;
}


void
tidal_sound_free(tidal_sound_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->size = 0;
}


/*
 * One /dirt/play: its name, value pairs become the event's params, all
 * but `tidalch`, which becomes its channel; a pair whose name is not a
 * string or whose value is not a number, a string or a boolean is left
 * out, as is the whole event when it is a heartbeat.
 */

static void
tidal_sound_play(void *data, uint64_t time, const unsigned char *p,
    size_t n)
{
    tidal_sound_t *b = data;

    int               rc, channel, first;
    size_t            start, klen;
    const char       *key;
    tidal_osc_arg_t   arg;
    tidal_osc_args_t  args;

    /* first the channel, and whether it is the room's at all */

    if (tidal_osc_args_start(&args, p, n) != 0) {
        return;
    }

    channel = 0;

    while ((rc = tidal_osc_pairs_next(&args, &key, &klen, &arg)) == 1) {

        if (klen == 1 && key[0] == 's' && arg.s && b->skip_len
            && arg.len >= b->skip_len
            && memcmp(arg.s, b->skip, b->skip_len) == 0)
        {
            return;
        }

        if (channel == 0) {
            channel = tidal_osc_channel_of(key, klen, &arg);
        }
    }

    if (rc != 0 || time == 0) {
        return;
    }

    start = b->len;

    if (b->events == 0) {
        b->len = 0;
        start = 0;
        tidal_sound_append(b, TIDAL_PROTOCOL_SOUND_HEAD,
                           sizeof(TIDAL_PROTOCOL_SOUND_HEAD) - 1);

    } else {
        tidal_sound_append(b, ",", 1);
    }

    tidal_sound_printf(b, "{\"time\":%.6f,", tidal_osc_unix_time(time));

    if (channel) {
        tidal_sound_printf(b, "\"channel\":\"d%d\",", channel);
    }

    tidal_sound_append(b, "\"params\":{", 10);

    (void) tidal_osc_args_start(&args, p, n);

    first = 1;

    while (tidal_osc_pairs_next(&args, &key, &klen, &arg) == 1) {

        if (!tidal_sound_text_ok(key, klen)
            || (klen == 7 && memcmp(key, "tidalch", 7) == 0))
        {
            continue;
        }

        if ((arg.type == 's' || arg.type == 'S')
            && !tidal_sound_text_ok(arg.s, arg.len))
        {
            continue;
        }

        if (strchr("sSifdhTFN", arg.type) == NULL) {
            continue;
        }

        if (!first) {
            tidal_sound_append(b, ",", 1);
        }

        first = 0;

        tidal_sound_string(b, key, klen);
        tidal_sound_append(b, ":", 1);
        tidal_sound_value(b, &arg);
    }

    tidal_sound_append(b, "}}", 2);

    if (b->failed) {
        b->len = start;
        return;
    }

    b->events++;
}


static void
tidal_sound_value(tidal_sound_t *b, const tidal_osc_arg_t *arg)
{
    int     prec;
    char    num[64];
    float   f;

    switch (arg->type) {

    case 's':
    case 'S':
        tidal_sound_string(b, arg->s, arg->len);
        return;

    case 'i':
    case 'h':
        tidal_sound_printf(b, "%.0f", arg->d);
        return;

    case 'T':
        tidal_sound_append(b, "true", 4);
        return;

    case 'F':
        tidal_sound_append(b, "false", 5);
        return;

    case 'N':
        tidal_sound_append(b, "null", 4);
        return;
    }

    if (!isfinite(arg->d)) {
        tidal_sound_append(b, "null", 4);
        return;
    }

    /* the shortest text that reads back as the same float or double */

    if (arg->type == 'f') {
        f = (float) arg->d;

        for (prec = 6; prec < 9; prec++) {
            snprintf(num, sizeof(num), "%.*g", prec, arg->d);

            if (strtof(num, NULL) == f) {
                break;
            }
        }

    } else {
        for (prec = 15; prec < 17; prec++) {
            snprintf(num, sizeof(num), "%.*g", prec, arg->d);

            if (strtod(num, NULL) == arg->d) {
                break;
            }
        }
    }

    /* a whole float keeps a point: JSON's type tells 'f' from 'i' */
    snprintf(num, sizeof(num), "%.*g", prec, arg->d);

    if (strpbrk(num, ".e") == NULL) {
        tidal_sound_printf(b, "%s.0", num);
        return;
    }

    tidal_sound_printf(b, "%s", num);
}


/* names and strings are sent only when they are UTF-8 */

static int
tidal_sound_text_ok(const char *s, size_t len)
{
    tidal_utf8_t  u;

    tidal_utf8_init(&u);

    return tidal_utf8_feed(&u, (const uint8_t *) s, len) == 0
           && tidal_utf8_complete(&u);
}


static void
tidal_sound_string(tidal_sound_t *b, const char *s, size_t len)
{
    size_t         i, from;
    unsigned char  c;

    tidal_sound_append(b, "\"", 1);

    for (from = 0, i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        tidal_sound_append(b, s + from, i - from);
        from = i + 1;

        if (c == '"' || c == '\\') {
            tidal_sound_printf(b, "\\%c", c);

        } else {
            tidal_sound_printf(b, "\\u%04x", c);
        }
    }

    tidal_sound_append(b, s + from, len - from);
    tidal_sound_append(b, "\"", 1);
}


static void
tidal_sound_printf(tidal_sound_t *b, const char *fmt, ...)
{
    int      n;
    char     text[128];
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);

    if (n < 0 || (size_t) n >= sizeof(text)) {
        b->failed = 1;
        return;
    }

    tidal_sound_append(b, text, (size_t) n);
}


static void
tidal_sound_append(tidal_sound_t *b, const char *s, size_t len)
{
    char    *data;
    size_t   size;

    if (b->failed) {
        return;
    }

    if (b->len + len > b->size) {
        size = b->size ? b->size : 4096;

        while (size < b->len + len) {
            size *= 2;
        }

        data = realloc(b->data, size);
        if (data == NULL) {
            b->failed = 1;
            return;
        }

        b->data = data;
        b->size = size;
    }

    memcpy(b->data + b->len, s, len);
    b->len += len;
}
