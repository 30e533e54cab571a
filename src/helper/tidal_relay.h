/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The OSC relay between Tidal and SuperDirt: every GHCi the helper runs
 * sends to a UDP port the helper holds on 127.0.0.1; the relay forwards
 * the datagrams of the one that plays unchanged to the dirt address, up
 * to a cap on /dirt/play a second, and keeps each one's heartbeat (events
 * whose `s` is TIDAL_RELAY_BEAT and that GHCi's secret) for itself.
 */

#ifndef _TIDAL_RELAY_H_INCLUDED_
#define _TIDAL_RELAY_H_INCLUDED_


#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "tidal_osc.h"
#include "tidal_rate.h"
#include "tidal_sound.h"


#define TIDAL_RELAY_NFDS            2
#define TIDAL_RELAY_SOURCES         3          /* GHCis at most */
#define TIDAL_RELAY_SECRET_LEN      32         /* hex digits */

/* the boot file's heartbeat: s "tidal-helper-heartbeat-SECRET", 8 a cycle */
#define TIDAL_RELAY_BEAT            "tidal-helper-heartbeat-"
#define TIDAL_RELAY_BEATS_A_CYCLE   8


/*
 * One GHCi as the relay knows it: a datagram is its when it comes from
 * the address its heartbeat came from.  The heartbeat's sound carries
 * the GHCi's secret, which only the helper and that GHCi know (patterns
 * cannot read the environment), so no other process, and no pattern, can
 * pass for it.
 */
typedef struct {
    char                     secret[TIDAL_RELAY_SECRET_LEN + 1];
    struct sockaddr_in       addr;       /* where its heartbeats came from */
    unsigned                 known:1;    /* addr is set */

    uint64_t                 beats;
    int64_t                  beat;       /* ms of the last heartbeat */
    double                   time;       /* its OSC time (NTP seconds) */
    double                   cycle;      /* its cycle */
    double                   cps;        /* the tempo it was played at */
} tidal_relay_source_t;


/*
 * The relay began to drop /dirt/play over its cap of rate a second;
 * channel played the most of them lately (1 .. 16), 0: not known.
 */
typedef void (*tidal_relay_dropped_pt)(void *data, int channel,
    unsigned rate);

/* a batch of the room's sound, a notifications/tidal/sound (tidal_sound.h) */
typedef void (*tidal_relay_sound_pt)(void *data, const char *text,
    size_t len);


typedef struct {
    int                      in;         /* 127.0.0.1:port, from Tidal */
    int                      out;        /* connected to the dirt address */
    int                      port;

    tidal_relay_source_t     sources[TIDAL_RELAY_SOURCES];
    int                      playing;    /* whose datagrams go on; -1 */

    /* where SuperDirt's answers to a handshake go back to */
    struct sockaddr_storage  back;
    socklen_t                back_len;

    uint64_t                 beats;      /* every heartbeat seen */
    uint64_t                 forwarded;
    uint64_t                 foreign;    /* dropped: not a GHCi's */
    uint64_t                 foreign_told;
    int64_t                  foreign_warned;
    int64_t                  warned;
    char                     dirt[300];  /* "host:port", for messages */

    /* the cap on /dirt/play, and who played what lately */
    tidal_rate_t             rate;
    unsigned                 recent[TIDAL_OSC_CHANNELS + 1];
    unsigned                 before[TIDAL_OSC_CHANNELS + 1];
    int64_t                  recent_at;  /* ms the recent counts began */
    uint64_t                 dropped;    /* plays, in this burst */
    int64_t                  drop_first; /* ms; 0: none dropped lately */
    int64_t                  drop_last;
    tidal_relay_dropped_pt   on_drop;
    void                    *data;

    /* the sound of what goes on, gathered a Tidal frame at a time */
    tidal_sound_t            sound;
    int64_t                  sound_at;   /* ms the batch began; 0: none */
    tidal_relay_sound_pt     on_sound;
    void                    *sound_data;
} tidal_relay_t;


/* binds 127.0.0.1 on a free port; NULL with the reason in err */
tidal_relay_t *tidal_relay_create(const char *host, int port, char *err,
    size_t len);

/*
 * At most rate /dirt/play a second go on (0: no cap, as created); the
 * start of each burst of drops is logged and told to on_drop (may be
 * NULL) with data.
 */
void tidal_relay_limit(tidal_relay_t *r, unsigned rate,
    tidal_relay_dropped_pt on_drop, void *data);

/*
 * Every /dirt/play that goes on (or would, were SuperDirt there) is told
 * to on_sound with data, a batch a Tidal frame; NULL: none (as created).
 */
void tidal_relay_sound(tidal_relay_t *r, tidal_relay_sound_pt on_sound,
    void *data);

/* ms until a batch of sound is due (-1: none waits) */
int tidal_relay_timeout(tidal_relay_t *r);

/* sends the batch of sound when it is due */
void tidal_relay_tick(tidal_relay_t *r);

/* fills pfd with what to poll (TIDAL_RELAY_NFDS); returns n */
int tidal_relay_pollfds(tidal_relay_t *r, struct pollfd *pfd);

/* reads and forwards what the descriptors it asked for have */
void tidal_relay_process(tidal_relay_t *r, struct pollfd *pfd, int n);

/*
 * Source n (0 .. TIDAL_RELAY_SOURCES - 1) is a GHCi started anew with
 * this secret: what was known of it is forgotten.
 */
void tidal_relay_watch(tidal_relay_t *r, int n, const char *secret);

/* the datagrams of source n go to SuperDirt from now on (-1: none's) */
void tidal_relay_play(tidal_relay_t *r, int n);

void tidal_relay_destroy(tidal_relay_t *r);


#endif /* _TIDAL_RELAY_H_INCLUDED_ */
