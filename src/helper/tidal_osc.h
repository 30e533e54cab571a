/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Reading OSC packets (messages and bundles) as Tidal sends them to
 * SuperDirt, and writing one: pure, no sockets.
 */

#ifndef _TIDAL_OSC_H_INCLUDED_
#define _TIDAL_OSC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define TIDAL_OSC_CHANNELS  16


typedef struct {
    unsigned     messages;    /* OSC messages in the packet */
    unsigned     plays;       /* of them /dirt/play */
    unsigned     sounds;      /* of them with s = the prefix asked about */

    /*
     * the plays by the channel their integer argument tidalch names
     * (1 .. 16, the boot file's stamp); [0]: without one
     */
    unsigned     channel_plays[TIDAL_OSC_CHANNELS + 1];

    unsigned     handshake:1; /* a /dirt/handshake among them */

    /* of the last play counted in sounds: */
    const char  *rest;        /* its s after the prefix (in the packet) */
    size_t       rest_len;
    double       cps;         /* its tempo, 0: none */
    double       cycle;       /* its cycle, -1: none */
    uint64_t     time;        /* its bundle's timetag, 0: none */
} tidal_osc_t;


/*
 * What a packet (a message, or bundles nested at most 8 deep) holds:
 * 0, or -1 when it is not OSC as far as it could be read (osc then
 * counts what was read before).  Only the plays whose sound starts with
 * the prefix `sound` say their tempo, cycle and time.
 */
int tidal_osc_scan(const unsigned char *p, size_t n, const char *sound,
    tidal_osc_t *osc);


/* one argument of a message written: 'i', 'f' or 's' (NUL-terminated) */
typedef struct {
    char         type;
    int32_t      i;
    float        f;
    const char  *s;
} tidal_osc_arg_t;


/* Unix seconds as an OSC timetag (NTP 32.32 fixed point) */
uint64_t tidal_osc_time(double unix_seconds);

/*
 * A bundle at time holding one message, address with args: its length
 * in buf, or 0 when it does not fit in size bytes.
 */
size_t tidal_osc_write_bundle(unsigned char *buf, size_t size,
    uint64_t time, const char *address, const tidal_osc_arg_t *args,
    size_t nargs);


#endif /* _TIDAL_OSC_H_INCLUDED_ */
