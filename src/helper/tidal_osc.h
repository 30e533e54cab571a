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


/* one argument of a message */
typedef struct {
    char                  type;     /* its OSC type tag */
    const char           *s;        /* 's', 'S': in the packet, NUL-ended */
    size_t                len;
    double                d;        /* 'i', 'h', 'f', 'd' as a number */
} tidal_osc_arg_t;


/* the arguments of one message, one after another */
typedef struct {
    const unsigned char  *p;
    size_t                n;
    size_t                off;
    const char           *tags;     /* after the ',' */
    size_t                ntags;
    size_t                i;
} tidal_osc_args_t;


/*
 * Each /dirt/play of a packet with its bundle's timetag (0: none) and
 * the message itself (p, n), to read with tidal_osc_args_start().
 */
typedef void (*tidal_osc_play_pt)(void *data, uint64_t time,
    const unsigned char *p, size_t n);


/*
 * What a packet (a message, or bundles nested at most 8 deep) holds:
 * 0, or -1 when it is not OSC as far as it could be read (osc then
 * counts what was read before).  Only the plays whose sound starts with
 * the prefix `sound` say their tempo, cycle and time.
 */
int tidal_osc_scan(const unsigned char *p, size_t n, const char *sound,
    tidal_osc_t *osc);

/*
 * Calls play for each /dirt/play of a packet, in order; 0, or -1 when
 * the packet is not OSC (play may have been called for what came before).
 */
int tidal_osc_plays(const unsigned char *p, size_t n, tidal_osc_play_pt play,
    void *data);

/* a message's arguments, after its address: 0, or -1 when it has none */
int tidal_osc_args_start(tidal_osc_args_t *a, const unsigned char *p,
    size_t n);

/* the next argument: 1, 0 after the last, -1 when it cannot be read */
int tidal_osc_args_next(tidal_osc_args_t *a, tidal_osc_arg_t *arg);

/*
 * The next name, value pair of a /dirt/play whose name is a string (a
 * pair named otherwise is passed over): 1, 0 after the last, -1 when an
 * argument cannot be read.
 */
int tidal_osc_pairs_next(tidal_osc_args_t *a, const char **name,
    size_t *len, tidal_osc_arg_t *value);

/* the channel (1..TIDAL_OSC_CHANNELS) a pair names, an integer tidalch */
int tidal_osc_channel_of(const char *name, size_t len,
    const tidal_osc_arg_t *value);

/* an OSC timetag (NTP seconds, 32.32) as Unix seconds */
double tidal_osc_unix_time(uint64_t time);

/* and back */
uint64_t tidal_osc_timetag(double unix_seconds);

/*
 * A bundle at time holding one message, address with args ('i' and 'f'
 * from d, 's' from s and len): its length in buf, or 0 when it does not
 * fit in size bytes.
 */
size_t tidal_osc_write_bundle(unsigned char *buf, size_t size,
    uint64_t time, const char *address, const tidal_osc_arg_t *args,
    size_t nargs);


#endif /* _TIDAL_OSC_H_INCLUDED_ */
