/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * OSC 1.0 packets as Tidal sends them to SuperDirt, read as far as the
 * relay needs: how many messages, how many /dirt/play whose sound starts
 * with a given prefix and from which channel, and the tempo, cycle and
 * time of the last of them, whether one is a handshake.  Pure: bytes in,
 * counts out.  And one bundle written, as --play sends the room's sound
 * to a local SuperDirt: values in, bytes out.
 */


#include <stdint.h>
#include <string.h>

#include "tidal_osc.h"


#define TIDAL_OSC_DEPTH  8         /* nested bundles */

/* seconds from 1900 (NTP's epoch, OSC's) to 1970 (Unix's) */
#define TIDAL_OSC_UNIX_EPOCH  2208988800.0


static int tidal_osc_bundle(const unsigned char *p, size_t n,
    const char *sound, size_t slen, tidal_osc_t *osc, uint64_t time,
    int depth);
static int tidal_osc_message(const unsigned char *p, size_t n,
    const char *sound, size_t slen, tidal_osc_t *osc, uint64_t time);
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
    memset(osc, 0, sizeof(tidal_osc_t));
    osc->cycle = -1;

    return tidal_osc_bundle(p, n, sound, strlen(sound), osc, 0, 0);
}


static int
tidal_osc_bundle(const unsigned char *p, size_t n, const char *sound,
    size_t slen, tidal_osc_t *osc, uint64_t time, int depth)
{
    int       i;
    size_t    off;
    uint32_t  size;

    if (n < 16 || memcmp(p, "#bundle", 8) != 0) {
        return tidal_osc_message(p, n, sound, slen, osc, time);
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
            || tidal_osc_bundle(p + off, size, sound, slen, osc, time,
                                depth + 1)
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
tidal_osc_message(const unsigned char *p, size_t n, const char *sound,
    size_t slen, tidal_osc_t *osc, uint64_t time)
{
    int          play, match, channel;
    float        f;
    double       d, cps, cycle;
    const char  *rest;
    size_t       rest_len;
    size_t       off, len, tlen, klen, i;
    uint32_t     u32, blob;
    uint64_t     u64;
    const char  *addr, *tags, *s, *key;

    off = 0;

    if (tidal_osc_string(p, n, &off, &addr, &len) != 0 || addr[0] != '/') {
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

    if (off == n) {
        return 0;
    }

    if (tidal_osc_string(p, n, &off, &tags, &tlen) != 0 || tags[0] != ',') {
        return -1;
    }

    key = NULL;
    klen = 0;
    match = 0;
    rest = NULL;
    rest_len = 0;
    cps = 0;
    cycle = -1;
    channel = 0;

    for (i = 1; i < tlen; i++) {
        s = NULL;
        len = 0;
        d = 0;

        switch (tags[i]) {

        case 's':
        case 'S':
            if (tidal_osc_string(p, n, &off, &s, &len) != 0) {
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

            if (tags[i] == 'f') {
                memcpy(&f, &u32, sizeof(f));
                d = f;

            } else if (tags[i] == 'i') {
                d = (int32_t) u32;
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

            if (tags[i] == 'd') {
                memcpy(&d, &u64, sizeof(d));
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
            return -1;
        }

        if (!play) {
            continue;
        }

        if ((i & 1) == 1) {
            /* a name */
            key = s;
            klen = len;
            continue;
        }

        if (key == NULL) {
            continue;
        }

        if (klen == 1 && key[0] == 's' && s != NULL
            && len >= slen && memcmp(s, sound, slen) == 0)
        {
            match = 1;
            rest = s + slen;
            rest_len = len - slen;

        } else if (klen == 3 && memcmp(key, "cps", 3) == 0 && d > 0) {
            cps = d;

        } else if (klen == 5 && memcmp(key, "cycle", 5) == 0 && d >= 0) {
            cycle = d;

        } else if (klen == 7 && memcmp(key, "tidalch", 7) == 0
                   && tags[i] == 'i' && channel == 0
                   && d >= 1 && d <= TIDAL_OSC_CHANNELS)
        {
            channel = (int) d;
            osc->channel_plays[0]--;
            osc->channel_plays[channel]++;
        }
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
tidal_osc_time(double unix_seconds)
{
    double    t, secs;
    uint64_t  frac;

    t = unix_seconds + TIDAL_OSC_UNIX_EPOCH;

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
            u32 = (uint32_t) args[i].i;
            break;

        case 'f':
            memcpy(&u32, &args[i].f, sizeof(u32));
            break;

        case 's':
            if (tidal_osc_put_string(buf, size, &off, args[i].s,
                                     strlen(args[i].s))
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
