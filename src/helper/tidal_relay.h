/*
 * The OSC relay between Tidal and SuperDirt: Tidal sends to a UDP port
 * the helper holds on 127.0.0.1, the relay forwards every datagram
 * unchanged to the dirt address, up to a cap on /dirt/play a second, and
 * keeps the scheduler's heartbeat (events whose `s` is TIDAL_RELAY_BEAT)
 * for itself.
 */

#ifndef _TIDAL_RELAY_H_INCLUDED_
#define _TIDAL_RELAY_H_INCLUDED_


#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tidal_osc.h"
#include "tidal_rate.h"


#define TIDAL_RELAY_NFDS            2

/* the boot file's heartbeat: s "tidal-helper-heartbeat", 8 a cycle */
#define TIDAL_RELAY_BEAT            "tidal-helper-heartbeat"
#define TIDAL_RELAY_BEATS_A_CYCLE   8


/*
 * The relay began to drop /dirt/play over its cap of rate a second;
 * channel played the most of them lately (1 .. 16), 0: not known.
 */
typedef void (*tidal_relay_dropped_pt)(void *data, int channel,
    unsigned rate);


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

/* fills pfd with what to poll (TIDAL_RELAY_NFDS); returns n */
int tidal_relay_pollfds(tidal_relay_t *r, struct pollfd *pfd);

/* reads and forwards what the descriptors it asked for have */
void tidal_relay_process(tidal_relay_t *r, struct pollfd *pfd, int n);

void tidal_relay_destroy(tidal_relay_t *r);


#endif /* _TIDAL_RELAY_H_INCLUDED_ */
