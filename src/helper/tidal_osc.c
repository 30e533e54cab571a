/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * OSC 1.0 packets as Tidal sends them to SuperDirt, read as far as the
 * relay needs: how many messages, how many /dirt/play whose sound starts
 * with a given prefix and from which channel, and the tempo, cycle and
 * time of the last of them, whether one is a handshake; and each
 * /dirt/play with its arguments, for the room's sound.  Pure: bytes in,
 * counts and arguments out.  And one bundle written, as --play sends the
 * room's sound to a local SuperDirt: arguments in, bytes out.
 */


#include <stdint.h>
#include <string.h>

#include "tidal_osc.h"


#define TIDAL_OSC_DEPTH  8         /* nested bundles */

/* the NTP era's start, 1900, in Unix seconds: -2208988800 */
#define TIDAL_OSC_NTP_UNIX  2208988800.0


/* what a walk over a packet does with each message, at its bundle's time */
typedef int (*tidal_osc_visit_pt)(void *data, const unsigned char *p,
    size_t n, uint64_t time);


typedef struct {
    const char         *sound;
    size_t              slen;
    tidal_osc_t        *osc;
} tidal_osc_scan_t;


typedef struct {
    tidal_osc_play_pt   play;
    void               *data;
} tidal_osc_each_t;


static int tidal_osc_bundle(const unsigned char *p, size_t n,
    tidal_osc_visit_pt visit, void *data, uint64_t time, int depth);
static int tidal_osc_message(void *data, const unsigned char *p, size_t n,
    uint64_t time);
static int tidal_osc_play(void *data, const unsigned char *p, size_t n,
    uint64_t time);
static int tidal_osc_address(const unsigned char *p, size_t n,
    const char **addr, size_t *len);
static int tidal_osc_string(const unsigned char *p, size_t n, size_t *off,
    const char **s, size_t *len);
static int tidal_osc_put_string(unsigned char *buf, size_t size,
    size_t *off, const char *s, size_t len);
static int tidal_osc_put_u32(unsigned char *buf, size_t size, size_t *off,
    uint32_t v);


int
tidal_osc_scan(const unsigned char *p, size_t n, const char *sound,
    tidal_osc_t *osc)
{
    tidal_osc_scan_t  scan;

    memset(osc, 0, sizeof(tidal_osc_t));
    osc->cycle = -1;

    scan.sound = sound;
    scan.slen = strlen(sound);
    scan.osc = osc;

    return tidal_osc_bundle(p, n, tidal_osc_message, &scan, 0, 0);
}


int
tidal_osc_plays(const unsigned char *p, size_t n, tidal_osc_play_pt play,
    void *data)
{
    tidal_osc_each_t  each;

    each.play = play;
    each.data = data;

    return tidal_osc_bundle(p, n, tidal_osc_play, &each, 0, 0);
}


double
tidal_osc_unix_time(uint64_t time)
{
    return (double) (time >> 32) - TIDAL_OSC_NTP_UNIX
           + (double) (time & 0xffffffff) / 4294967296.0;
}


static int
tidal_osc_bundle(const unsigned char *p, size_t n, tidal_osc_visit_pt visit,
    void *data, uint64_t time, int depth)
{
    int       i;
    size_t    off;
    uint32_t  size;

    if (n < 16 || memcmp(p, "#bundle", 8) != 0) {
        return visit(data, p, n, time);
    }

    if (depth == TIDAL_OSC_DEPTH) {
        return -1;
    }

    for (time = 0, i = 8; i < 16; i++) {
        time = time << 8 | p[i];
    }

    /* "#bundle\0", the timetag, then elements, each with its size */

    for (off = 16; off < n; off += size) {
        if (n - off < 4) {
            return -1;
        }

        size = (uint32_t) p[off] << 24 | (uint32_t) p[off + 1] << 16
               | (uint32_t) p[off + 2] << 8 | p[off + 3];
        off += 4;

        if (size == 0 || size > n - off
            || tidal_osc_bundle(p + off, size, visit, data, time, depth + 1)
               != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * A message: its address, its type tags, its arguments.  /dirt/play's
 * arguments are name, value pairs: `s` names the sound, `cps` the tempo,
 * `cycle` the cycle its event starts in, an integer `tidalch` the
 * channel (the first one counts).
 */

static int
tidal_osc_message(void *data, const unsigned char *p, size_t n,
    uint64_t time)
{
    tidal_osc_scan_t *scan = data;

    int                rc, play, match, channel;
    double             cps, cycle;
    size_t             len, klen, slen, rest_len;
    const char        *addr, *key, *rest, *sound;
    tidal_osc_t       *osc;
    tidal_osc_arg_t    arg;
    tidal_osc_args_t   args;

    osc = scan->osc;
    sound = scan->sound;
    slen = scan->slen;

    if (tidal_osc_address(p, n, &addr, &len) != 0) {
        return -1;
    }

    osc->messages++;

    play = (len == 10 && memcmp(addr, "/dirt/play", 10) == 0);

    if (play) {
        osc->plays++;
        osc->channel_plays[0]++;
    }

    if (len >= 15 && memcmp(addr, "/dirt/handshake", 15) == 0) {
        osc->handshake = 1;
    }

    if (tidal_osc_args_start(&args, p, n) != 0) {
        return 0;
    }

    match = 0;
    rest = NULL;
    rest_len = 0;
    cps = 0;
    cycle = -1;
    channel = 0;

    /* every message is read whole: a malformed one says it is not OSC */

    while ((rc = tidal_osc_pairs_next(&args, &key, &klen, &arg)) == 1) {

        if (!play) {
            continue;
        }

        if (klen == 1 && key[0] == 's' && arg.s != NULL
            && arg.len >= slen && memcmp(arg.s, sound, slen) == 0)
        {
            match = 1;
            rest = arg.s + slen;
            rest_len = arg.len - slen;

        } else if (klen == 3 && memcmp(key, "cps", 3) == 0 && arg.d > 0) {
            cps = arg.d;

        } else if (klen == 5 && memcmp(key, "cycle", 5) == 0 && arg.d >= 0) {
            cycle = arg.d;

        } else if (channel == 0) {
            channel = tidal_osc_channel_of(key, klen, &arg);

            if (channel) {
                osc->channel_plays[0]--;
                osc->channel_plays[channel]++;
            }
        }
    }

    if (rc == -1) {
        return -1;
    }

    if (match) {
        osc->sounds++;
        osc->rest = rest;
        osc->rest_len = rest_len;
        osc->cps = cps;
        osc->cycle = cycle;
        osc->time = time;
    }

    return 0;
}


static int
tidal_osc_play(void *data, const unsigned char *p, size_t n, uint64_t time)
{
    tidal_osc_each_t *each = data;

    size_t       len;
    const char  *addr;

    if (tidal_osc_address(p, n, &addr, &len) != 0) {
        return -1;
    }

    if (len == 10 && memcmp(addr, "/dirt/play", 10) == 0) {
        each->play(each->data, time, p, n);
    }

    return 0;
}


static int
tidal_osc_address(const unsigned char *p, size_t n, const char **addr,
    size_t *len)
{
    size_t  off;

    off = 0;

    if (tidal_osc_string(p, n, &off, addr, len) != 0 || (*addr)[0] != '/') {
        return -1;
    }

    return 0;
}


int
tidal_osc_args_start(tidal_osc_args_t *a, const unsigned char *p, size_t n)
{
    size_t       len;
    const char  *addr, *tags;

    a->p = p;
    a->n = n;
    a->off = 0;
    a->tags = "";
    a->ntags = 0;
    a->i = 0;

    if (tidal_osc_string(p, n, &a->off, &addr, &len) != 0 || a->off == n) {
        return -1;
    }

    if (tidal_osc_string(p, n, &a->off, &tags, &len) != 0 || tags[0] != ',') {
        a->i = 1;           /* next() answers -1: not OSC */
        return 0;
    }

    a->tags = tags + 1;
    a->ntags = len - 1;

    return 0;
}


int
tidal_osc_pairs_next(tidal_osc_args_t *a, const char **name, size_t *len,
    tidal_osc_arg_t *value)
{
    int              rc;
    tidal_osc_arg_t  arg;

    for ( ;; ) {
        rc = tidal_osc_args_next(a, &arg);

        if (rc != 1) {
            return rc;
        }

        rc = tidal_osc_args_next(a, value);

        if (rc != 1) {
            return rc;
        }

        if (arg.s != NULL) {
            *name = arg.s;
            *len = arg.len;
            return 1;
        }
    }
}


int
tidal_osc_channel_of(const char *name, size_t len,
    const tidal_osc_arg_t *value)
{
    if (len == 7 && memcmp(name, "tidalch", 7) == 0 && value->type == 'i'
        && value->d >= 1 && value->d <= TIDAL_OSC_CHANNELS)
    {
        return (int) value->d;
    }

    return 0;
}


int
tidal_osc_args_next(tidal_osc_args_t *a, tidal_osc_arg_t *arg)
{
    float                 f;
    size_t                off, n;
    uint32_t              u32, blob;
    uint64_t              u64;
    const unsigned char  *p;

    if (a->i > a->ntags) {
        return -1;
    }

    if (a->i == a->ntags) {
        return 0;
    }

    p = a->p;
    n = a->n;
    off = a->off;

    arg->type = a->tags[a->i++];
    arg->s = NULL;
    arg->len = 0;
    arg->d = 0;

    switch (arg->type) {

    case 's':
    case 'S':
        if (tidal_osc_string(p, n, &off, &arg->s, &arg->len) != 0) {
            return -1;
        }

        break;

    case 'i':
    case 'f':
    case 'c':
    case 'r':
    case 'm':
        if (n - off < 4) {
            return -1;
        }

        u32 = (uint32_t) p[off] << 24 | (uint32_t) p[off + 1] << 16
              | (uint32_t) p[off + 2] << 8 | p[off + 3];

        if (arg->type == 'f') {
            memcpy(&f, &u32, sizeof(f));
            arg->d = f;

        } else if (arg->type == 'i') {
            arg->d = (int32_t) u32;
        }

        off += 4;
        break;

    case 'h':
    case 't':
    case 'd':
        if (n - off < 8) {
            return -1;
        }

        u64 = (uint64_t) p[off] << 56 | (uint64_t) p[off + 1] << 48
              | (uint64_t) p[off + 2] << 40 | (uint64_t) p[off + 3] << 32
              | (uint64_t) p[off + 4] << 24 | (uint64_t) p[off + 5] << 16
              | (uint64_t) p[off + 6] << 8 | p[off + 7];

        if (arg->type == 'd') {
            memcpy(&arg->d, &u64, sizeof(arg->d));

        } else if (arg->type == 'h') {
            arg->d = (double) (int64_t) u64;
        }

        off += 8;
        break;

    case 'b':
        if (n - off < 4) {
            return -1;
        }

        blob = (uint32_t) p[off] << 24 | (uint32_t) p[off + 1] << 16
               | (uint32_t) p[off + 2] << 8 | p[off + 3];
        off += 4;

        if (blob > n - off || ((blob + 3) & ~3u) > n - off) {
            return -1;
        }

        off += (blob + 3) & ~3u;
        break;

    case 'T':
    case 'F':
    case 'N':
    case 'I':
        break;

    default:
        a->i = a->ntags + 1;
        return -1;
    }

    a->off = off;

    return 1;
}


/* a NUL-terminated string padded to 4 bytes, at *off */

static int
tidal_osc_string(const unsigned char *p, size_t n, size_t *off,
    const char **s, size_t *len)
{
    size_t                end;
    const unsigned char  *nul;

    if (*off >= n) {
        return -1;
    }

    nul = memchr(p + *off, '\0', n - *off);
    if (nul == NULL) {
        return -1;
    }

    *s = (const char *) p + *off;
    *len = (size_t) (nul - (p + *off));

    end = (size_t) (nul - p) + 1;
    end = (end + 3) & ~(size_t) 3;

    *off = end < n ? end : n;

    return 0;
}


/* -- writing ----------------------------------------------------------- */


uint64_t
tidal_osc_timetag(double unix_seconds)
{
    double    t, secs;
    uint64_t  frac;

    t = unix_seconds + TIDAL_OSC_NTP_UNIX;

    if (t <= 0) {
        /* 1 is "at once" in OSC; the epoch itself is as good as never */
        return 0;
    }

    secs = (double) (uint64_t) t;
    frac = (uint64_t) ((t - secs) * 4294967296.0);

    if (frac > 0xffffffff) {
        frac = 0xffffffff;
    }

    return (uint64_t) secs << 32 | frac;
}


size_t
tidal_osc_write_bundle(unsigned char *buf, size_t size, uint64_t time,
    const char *address, const tidal_osc_arg_t *args, size_t nargs)
{
    float     f;
    size_t    i, off, start;
    uint32_t  u32;

    if (size < 20 || nargs > 4096) {
        return 0;
    }

    memcpy(buf, "#bundle", 8);
    off = 8;

    if (tidal_osc_put_u32(buf, size, &off, (uint32_t) (time >> 32)) != 0
        || tidal_osc_put_u32(buf, size, &off, (uint32_t) time) != 0)
    {
        return 0;
    }

    /* the element's size, filled in at the end */
    off += 4;
    start = off;

    if (tidal_osc_put_string(buf, size, &off, address, strlen(address))
        != 0)
    {
        return 0;
    }

    /* the type tags: ',' and one a argument */

    if (size - off < nargs + 2) {
        return 0;
    }

    buf[off] = ',';

    for (i = 0; i < nargs; i++) {
        buf[off + 1 + i] = (unsigned char) args[i].type;
    }

    if (tidal_osc_put_string(buf, size, &off, (char *) buf + off, nargs + 1)
        != 0)
    {
        return 0;
    }

    for (i = 0; i < nargs; i++) {

        switch (args[i].type) {

        case 'i':
            u32 = (uint32_t) (int32_t) args[i].d;
            break;

        case 'f':
            f = (float) args[i].d;
            memcpy(&u32, &f, sizeof(u32));
            break;

        case 's':
            if (tidal_osc_put_string(buf, size, &off, args[i].s, args[i].len)
                != 0)
            {
                return 0;
            }

            continue;

        default:
            return 0;
        }

        if (tidal_osc_put_u32(buf, size, &off, u32) != 0) {
            return 0;
        }
    }

    u32 = (uint32_t) (off - start);
    start -= 4;
    (void) tidal_osc_put_u32(buf, size, &start, u32);

    return off;
}


/* s and its NUL, padded with NULs to 4 bytes; s may be at buf + *off */

static int
tidal_osc_put_string(unsigned char *buf, size_t size, size_t *off,
    const char *s, size_t len)
{
    size_t  padded;

    padded = (len + 4) & ~(size_t) 3;

    if (size - *off < padded) {
        return -1;
    }

    memmove(buf + *off, s, len);
    memset(buf + *off + len, 0, padded - len);
    *off += padded;

    return 0;
}


static int
tidal_osc_put_u32(unsigned char *buf, size_t size, size_t *off, uint32_t v)
{
    if (size - *off < 4) {
        return -1;
    }

    buf[*off] = (unsigned char) (v >> 24);
    buf[*off + 1] = (unsigned char) (v >> 16);
    buf[*off + 2] = (unsigned char) (v >> 8);
    buf[*off + 3] = (unsigned char) v;
    *off += 4;

    return 0;
}
