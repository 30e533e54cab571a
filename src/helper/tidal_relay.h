/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The OSC relay between Tidal and SuperDirt: Tidal sends to a UDP port
 * the helper holds on 127.0.0.1, the relay forwards every datagram
 * unchanged to the dirt address and keeps the scheduler's heartbeat
 * (events whose `s` is TIDAL_RELAY_BEAT) for itself.
 */

#ifndef _TIDAL_RELAY_H_INCLUDED_
#define _TIDAL_RELAY_H_INCLUDED_


#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>


#define TIDAL_RELAY_NFDS            2

/* the boot file's heartbeat: s "tidal-helper-heartbeat", 8 a cycle */
#define TIDAL_RELAY_BEAT            "tidal-helper-heartbeat"
#define TIDAL_RELAY_BEATS_A_CYCLE   8


typedef struct {
    int                      in;         /* 127.0.0.1:port, from Tidal */
    int                      out;        /* connected to the dirt address */
    int                      port;

    /* where SuperDirt's answers to a handshake go back to */
    struct sockaddr_storage  back;
    socklen_t                back_len;

    int64_t                  beat;       /* ms of the last heartbeat */
    uint64_t                 beats;
    double                   cps;        /* of the last /dirt/play */
    int64_t                  cps_at;

    uint64_t                 forwarded;
    int64_t                  warned;
    char                     dirt[300];  /* "host:port", for messages */
} tidal_relay_t;


/* binds 127.0.0.1 on a free port; NULL with the reason in err */
tidal_relay_t *tidal_relay_create(const char *host, int port, char *err,
    size_t len);

/* fills pfd with what to poll (TIDAL_RELAY_NFDS); returns n */
int tidal_relay_pollfds(tidal_relay_t *r, struct pollfd *pfd);

/* reads and forwards what the descriptors it asked for have */
void tidal_relay_process(tidal_relay_t *r, struct pollfd *pfd, int n);

void tidal_relay_destroy(tidal_relay_t *r);


#endif /* _TIDAL_RELAY_H_INCLUDED_ */
