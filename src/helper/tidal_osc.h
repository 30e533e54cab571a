/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Reading OSC packets (messages and bundles) as Tidal sends them to
 * SuperDirt: pure, no sockets.
 */

#ifndef _TIDAL_OSC_H_INCLUDED_
#define _TIDAL_OSC_H_INCLUDED_


#include <stddef.h>


typedef struct {
    unsigned    messages;     /* OSC messages in the packet */
    unsigned    plays;        /* of them /dirt/play */
    unsigned    sounds;       /* of them with s = the sound asked about */
    unsigned    handshake:1;  /* a /dirt/handshake among them */
    double      cps;          /* the last play's tempo, 0: none */
} tidal_osc_t;


/*
 * What a packet (a message, or bundles nested at most 8 deep) holds:
 * 0, or -1 when it is not OSC as far as it could be read (osc then
 * counts what was read before).
 */
int tidal_osc_scan(const unsigned char *p, size_t n, const char *sound,
    tidal_osc_t *osc);


#endif /* _TIDAL_OSC_H_INCLUDED_ */
