/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The OSC relay between Tidal and SuperDirt.  OSC timetags are absolute,
 * so forwarding adds no timing error; what the relay gains is the sight
 * of every event, and with it the scheduler's heartbeat, which it counts
 * and drops instead of forwarding.
 */


#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "tidal_helper.h"
#include "tidal_osc.h"
#include "tidal_relay.h"


#define TIDAL_RELAY_PACKET_MAX   65536
#define TIDAL_RELAY_READS        256       /* datagrams per wakeup */
#define TIDAL_RELAY_RCVBUF       (1024 * 1024)
#define TIDAL_RELAY_WARN_EVERY   10000     /* ms between send warnings */


static void tidal_relay_from_tidal(tidal_relay_t *r);
static void tidal_relay_from_dirt(tidal_relay_t *r);
static void tidal_relay_warn(tidal_relay_t *r, const char *what, int err);


tidal_relay_t *
tidal_relay_create(const char *host, int port, char *err, size_t len)
{
    int                  rc, size;
    char                 serv[16];
    socklen_t            slen;
    tidal_relay_t       *r;
    struct addrinfo      hints, *ai;
    struct sockaddr_in   sin;

    r = calloc(1, sizeof(tidal_relay_t));
    if (r == NULL) {
        snprintf(err, len, "out of memory");
        return NULL;
    }

    r->in = -1;
    r->out = -1;
    snprintf(r->dirt, sizeof(r->dirt), "%s:%d", host, port);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    snprintf(serv, sizeof(serv), "%d", port);

    rc = getaddrinfo(host, serv, &hints, &ai);
    if (rc != 0) {
        snprintf(err, len, "cannot resolve the dirt address %s: %s",
                 r->dirt, gai_strerror(rc));
        goto failed;
    }

    /* connected: SuperDirt's answers come back here, and only its */

    r->out = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);

    if (r->out == -1
        || connect(r->out, ai->ai_addr, ai->ai_addrlen) == -1)
    {
        snprintf(err, len, "cannot send to the dirt address %s: %s",
                 r->dirt, strerror(errno));
        freeaddrinfo(ai);
        goto failed;
    }

    freeaddrinfo(ai);

    r->in = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->in == -1) {
        snprintf(err, len, "socket() failed: %s", strerror(errno));
        goto failed;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    slen = sizeof(sin);

    if (bind(r->in, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || getsockname(r->in, (struct sockaddr *) &sin, &slen) == -1)
    {
        snprintf(err, len, "cannot bind the OSC relay on 127.0.0.1: %s",
                 strerror(errno));
        goto failed;
    }

    r->port = ntohs(sin.sin_port);

    /* Tidal sends a frame's events at once; the helper may be busy */

    size = TIDAL_RELAY_RCVBUF;

    if (setsockopt(r->in, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) == -1) {
        tidal_helper_log(TIDAL_LOG_DEBUG, "setsockopt(SO_RCVBUF) failed: %s",
                         strerror(errno));
    }

    tidal_helper_log(TIDAL_LOG_INFO, "OSC relay: 127.0.0.1:%d -> %s",
                     r->port, r->dirt);

    return r;

failed:

    tidal_relay_destroy(r);

    return NULL;
}


int
tidal_relay_pollfds(tidal_relay_t *r, struct pollfd *pfd)
{
    pfd[0].fd = r->in;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;

    pfd[1].fd = r->out;
    pfd[1].events = POLLIN;
    pfd[1].revents = 0;

    return 2;
}


void
tidal_relay_process(tidal_relay_t *r, struct pollfd *pfd, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (pfd[i].revents == 0) {
            continue;
        }

        if (pfd[i].fd == r->in) {
            tidal_relay_from_tidal(r);

        } else if (pfd[i].fd == r->out) {
            tidal_relay_from_dirt(r);
        }
    }
}


void
tidal_relay_destroy(tidal_relay_t *r)
{
    if (r == NULL) {
        return;
    }

    if (r->in >= 0) {
        close(r->in);
    }

    if (r->out >= 0) {
        close(r->out);
    }

    free(r);
}


/*
 * Every datagram goes on unchanged, except one holding only heartbeats:
 * that one is counted and dropped.
 */

static void
tidal_relay_from_tidal(tidal_relay_t *r)
{
    int                      i;
    int64_t                  now;
    ssize_t                  n;
    socklen_t                slen;
    tidal_osc_t              osc;
    unsigned char            buf[TIDAL_RELAY_PACKET_MAX];
    struct sockaddr_storage  from;

    for (i = 0; i < TIDAL_RELAY_READS; i++) {
        slen = sizeof(from);
        n = recvfrom(r->in, buf, sizeof(buf), 0, (struct sockaddr *) &from,
                     &slen);

        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                tidal_helper_log(TIDAL_LOG_WARN, "OSC relay: recvfrom() "
                                 "failed: %s", strerror(errno));
            }

            return;
        }

        (void) tidal_osc_scan(buf, (size_t) n, TIDAL_RELAY_BEAT, &osc);
        now = tidal_helper_msec();

        if (osc.cps > 0) {
            r->cps = osc.cps;
            r->cps_at = now;
        }

        if (osc.handshake) {
            memcpy(&r->back, &from, slen);
            r->back_len = slen;
        }

        if (osc.sounds && osc.sounds == osc.messages) {
            r->beat = now;
            r->beats++;
            continue;
        }

        if (send(r->out, buf, (size_t) n, 0) == -1) {
            tidal_relay_warn(r, "send", errno);
            continue;
        }

        r->forwarded++;
    }
}


/* SuperDirt answers a handshake to whoever sent it: to Tidal, then */

static void
tidal_relay_from_dirt(tidal_relay_t *r)
{
    int            i;
    ssize_t        n;
    unsigned char  buf[TIDAL_RELAY_PACKET_MAX];

    for (i = 0; i < TIDAL_RELAY_READS; i++) {
        n = recv(r->out, buf, sizeof(buf), 0);

        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                tidal_relay_warn(r, "recv", errno);
            }

            return;
        }

        if (r->back_len == 0) {
            continue;
        }

        if (sendto(r->in, buf, (size_t) n, 0, (struct sockaddr *) &r->back,
                   r->back_len)
            == -1)
        {
            tidal_helper_log(TIDAL_LOG_DEBUG, "OSC relay: an answer from %s "
                             "could not go back to Tidal: %s", r->dirt,
                             strerror(errno));
        }
    }
}


/* nobody listening at the dirt address is normal: say so now and then */

static void
tidal_relay_warn(tidal_relay_t *r, const char *what, int err)
{
    int64_t  now;

    now = tidal_helper_msec();

    if (r->warned && now - r->warned < TIDAL_RELAY_WARN_EVERY) {
        return;
    }

    r->warned = now;

    tidal_helper_log(TIDAL_LOG_WARN, "OSC relay: %s() to %s failed%s: %s",
                     what, r->dirt,
                     err == ECONNREFUSED ? " (is SuperDirt running?)" : "",
                     strerror(err));
}
