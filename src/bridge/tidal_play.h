/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper --connect ws[s]://HOST/PATH --play HOST:PORT: joins a room
 * as a listener and plays its sound on a local SuperDirt, in time.
 */

#ifndef _TIDAL_PLAY_H_INCLUDED_
#define _TIDAL_PLAY_H_INCLUDED_


#include <signal.h>

#include "tidal_bridge.h"


#define TIDAL_PLAY_LATENCY      100         /* ms, --latency's default */


typedef struct {
    char         host[256];         /* SuperDirt's, for getaddrinfo() */
    int          port;              /* 0: not --play */
    int          latency;           /* ms after the room's time */
} tidal_play_conf_t;


/*
 * Plays the room at bridge->url until a signal, or until the connection
 * ends without --reconnect: the exit status, as tidal_bridge_run()'s.
 */
int tidal_play_run(const tidal_bridge_conf_t *bridge,
    const tidal_play_conf_t *conf, volatile sig_atomic_t *quit);


#endif /* _TIDAL_PLAY_H_INCLUDED_ */
