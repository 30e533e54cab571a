/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The OSC relay between Tidal and SuperDirt.  OSC timetags are absolute,
 * so forwarding adds no timing error; what the relay gains is the sight
 * of every event, and with it each scheduler's heartbeat, which it counts
 * and drops instead of forwarding, and the power to hold back a flood.
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

#include <openssl/crypto.h>

#include "tidal_helper_log.h"
#include "tidal_osc.h"
#include "tidal_relay.h"


#define TIDAL_RELAY_PACKET_MAX   65536
#define TIDAL_RELAY_READS        256       /* datagrams per wakeup */
#define TIDAL_RELAY_RCVBUF       (1024 * 1024)
#define TIDAL_RELAY_WARN_EVERY   10000     /* ms between send warnings */
#define TIDAL_RELAY_DROPS_END    1000      /* ms without drops: over */
#define TIDAL_RELAY_WHOSE_MS     250       /* who played what, counted */

/*
 * Tidal sends a frame's events (1/20 s of them) at once: what came within
 * this many ms of a batch's first event goes out with it, about one batch
 * a frame, long before the events are due (tidal_latency ahead).
 */
#define TIDAL_RELAY_SOUND_GATHER 20
#define TIDAL_RELAY_SOUND_MAX    (256 * 1024)   /* bytes: sent at once */


static void tidal_relay_from_tidal(tidal_relay_t *r);
static int tidal_relay_beat(tidal_relay_t *r, tidal_osc_t *osc,
    struct sockaddr_in *from, int64_t now);
static int tidal_relay_source(tidal_relay_t *r, struct sockaddr_in *from);
static void tidal_relay_foreign(tidal_relay_t *r, struct sockaddr_in *from,
    int64_t now);
static void tidal_relay_from_dirt(tidal_relay_t *r);
static int tidal_relay_admit(tidal_relay_t *r, const tidal_osc_t *osc,
    int64_t now);
static void tidal_relay_warn(tidal_relay_t *r, const char *what, int err);
static void tidal_relay_sound_flush(tidal_relay_t *r);


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
    r->playing = -1;
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


void
tidal_relay_limit(tidal_relay_t *r, unsigned rate,
    tidal_relay_dropped_pt on_drop, void *data)
{
    tidal_rate_init(&r->rate, rate, tidal_helper_msec());
    r->on_drop = on_drop;
    r->data = data;
}


void
tidal_relay_sound(tidal_relay_t *r, tidal_relay_sound_pt on_sound,
    void *data)
{
    tidal_sound_init(&r->sound, TIDAL_RELAY_BEAT);
    r->on_sound = on_sound;
    r->sound_data = data;
}


int
tidal_relay_timeout(tidal_relay_t *r)
{
    int64_t  now;

    if (r->sound_at == 0) {
        return -1;
    }

    now = tidal_helper_msec();

    return now >= r->sound_at + TIDAL_RELAY_SOUND_GATHER
           ? 0 : (int) (r->sound_at + TIDAL_RELAY_SOUND_GATHER - now);
}


void
tidal_relay_tick(tidal_relay_t *r)
{
    if (r->sound_at
        && tidal_helper_msec() >= r->sound_at + TIDAL_RELAY_SOUND_GATHER)
    {
        tidal_relay_sound_flush(r);
    }
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
tidal_relay_watch(tidal_relay_t *r, int n, const char *secret)
{
    tidal_relay_source_t  *src;

    src = &r->sources[n];

    memset(src, 0, sizeof(tidal_relay_source_t));
    snprintf(src->secret, sizeof(src->secret), "%s", secret);
}


void
tidal_relay_play(tidal_relay_t *r, int n)
{
    r->playing = n;
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

    tidal_sound_free(&r->sound);
    free(r);
}


/*
 * The datagrams of the playing GHCi go on unchanged, except one holding
 * only heartbeats: heartbeats are counted and dropped.  A datagram from
 * anywhere else (another GHCi of the helper's, or any local process) is
 * dropped.
 */

static void
tidal_relay_from_tidal(tidal_relay_t *r)
{
    int                  i, beat, n;
    int64_t              now;
    ssize_t              len;
    socklen_t            slen;
    tidal_osc_t          osc;
    unsigned char        buf[TIDAL_RELAY_PACKET_MAX];
    struct sockaddr_in   from;

    for (i = 0; i < TIDAL_RELAY_READS; i++) {
        slen = sizeof(from);
        len = recvfrom(r->in, buf, sizeof(buf), 0, (struct sockaddr *) &from,
                       &slen);

        if (len == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                tidal_helper_log(TIDAL_LOG_WARN, "OSC relay: recvfrom() "
                                 "failed: %s", strerror(errno));
            }

            return;
        }

        now = tidal_helper_msec();

        if (slen != sizeof(from) || from.sin_family != AF_INET) {
            tidal_relay_foreign(r, NULL, now);
            continue;
        }

        (void) tidal_osc_scan(buf, (size_t) len, TIDAL_RELAY_BEAT, &osc);

        beat = osc.sounds ? tidal_relay_beat(r, &osc, &from, now) : 0;

        if (beat && osc.sounds == osc.messages) {
            continue;
        }

        n = tidal_relay_source(r, &from);

        if (n == -1) {
            tidal_relay_foreign(r, &from, now);
            continue;
        }

        if (n != r->playing) {
            continue;       /* a spare's: it plays nothing of the room's */
        }

        if (osc.handshake) {
            memcpy(&r->back, &from, sizeof(from));
            r->back_len = sizeof(from);
        }

        if (osc.plays && !tidal_relay_admit(r, &osc, now)) {
            continue;
        }

        /* the room's sound, also when no SuperDirt listens here */

        if (osc.plays && r->on_sound
            && tidal_sound_add(&r->sound, buf, (size_t) len)
            && r->sound_at == 0)
        {
            r->sound_at = now;
        }

        if (r->sound.len > TIDAL_RELAY_SOUND_MAX) {
            tidal_relay_sound_flush(r);
        }

        if (send(r->out, buf, (size_t) len, 0) == -1) {
            tidal_relay_warn(r, "send", errno);
            continue;
        }

        r->forwarded++;
    }
}


/*
 * A heartbeat with a GHCi's secret: that GHCi is alive, and its address
 * is the one its datagrams come from.  1 when the secret was one's.
 */

static int
tidal_relay_beat(tidal_relay_t *r, tidal_osc_t *osc, struct sockaddr_in *from,
    int64_t now)
{
    int                    n;
    tidal_relay_source_t  *src;

    if (osc->rest_len != TIDAL_RELAY_SECRET_LEN) {
        return 0;
    }

    for (n = 0; n < TIDAL_RELAY_SOURCES; n++) {
        src = &r->sources[n];

        if (src->secret[0] != '\0'
            && CRYPTO_memcmp(src->secret, osc->rest,
                             TIDAL_RELAY_SECRET_LEN) == 0)
        {
            break;
        }
    }

    if (n == TIDAL_RELAY_SOURCES) {
        return 0;
    }

    if (!src->known || src->addr.sin_port != from->sin_port
        || src->addr.sin_addr.s_addr != from->sin_addr.s_addr)
    {
        tidal_helper_log(TIDAL_LOG_DEBUG, "OSC relay: GHCi %d sends from "
                         "%s:%d", n, inet_ntoa(from->sin_addr),
                         ntohs(from->sin_port));
        src->addr = *from;
        src->known = 1;
    }

    src->beats++;
    src->beat = now;
    r->beats++;

    if (osc->time && osc->cycle >= 0 && osc->cps > 0) {
        src->time = (double) (osc->time >> 32)
                    + (double) (osc->time & 0xffffffff) / 4294967296.0;
        src->cycle = osc->cycle;
        src->cps = osc->cps;
    }

    return 1;
}


static int
tidal_relay_source(tidal_relay_t *r, struct sockaddr_in *from)
{
    int                    n;
    tidal_relay_source_t  *src;

    for (n = 0; n < TIDAL_RELAY_SOURCES; n++) {
        src = &r->sources[n];

        if (src->known && src->addr.sin_port == from->sin_port
            && src->addr.sin_addr.s_addr == from->sin_addr.s_addr)
        {
            return n;
        }
    }

    return -1;
}


/* not a GHCi's: dropped, and said now and then */

static void
tidal_relay_foreign(tidal_relay_t *r, struct sockaddr_in *from, int64_t now)
{
    r->foreign++;

    if (r->foreign_warned && now - r->foreign_warned < TIDAL_RELAY_WARN_EVERY)
    {
        return;
    }

    tidal_helper_log(TIDAL_LOG_WARN, "OSC relay: dropped %llu datagram(s) "
                     "that no GHCi of the helper's sent, the last from %s:%d",
                     (unsigned long long) (r->foreign - r->foreign_told),
                     from ? inet_ntoa(from->sin_addr) : "?",
                     from ? ntohs(from->sin_port) : 0);

    r->foreign_told = r->foreign;
    r->foreign_warned = now;
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


/*
 * The cap on /dirt/play.  A pattern at a huge tempo (# cps 10000) would
 * send SuperDirt more than it can play; over the rate a packet is dropped
 * whole.  A burst of drops is reported once, as it begins, naming the
 * channel that played the most lately (its tidalch), counted over the
 * last quarter to half second so that a flood before, which ended a
 * second ago, is forgotten; its end, a second without drops, is logged
 * with the count.
 */

static int
tidal_relay_admit(tidal_relay_t *r, const tidal_osc_t *osc, int64_t now)
{
    int   ch, most;
    char  whose[32];

    if (now - r->recent_at >= TIDAL_RELAY_WHOSE_MS) {
        if (now - r->recent_at >= 2 * TIDAL_RELAY_WHOSE_MS) {
            memset(r->before, 0, sizeof(r->before));

        } else {
            memcpy(r->before, r->recent, sizeof(r->before));
        }

        memset(r->recent, 0, sizeof(r->recent));
        r->recent_at = now;
    }

    for (ch = 0; ch <= TIDAL_OSC_CHANNELS; ch++) {
        r->recent[ch] += osc->channel_plays[ch];
    }

    if (tidal_rate_take(&r->rate, osc->plays, now)) {

        if (r->drop_first && now - r->drop_last >= TIDAL_RELAY_DROPS_END) {
            tidal_helper_log(TIDAL_LOG_INFO, "OSC relay: %llu /dirt/play "
                             "dropped in %lld ms over %u a second",
                             (unsigned long long) r->dropped,
                             (long long) (r->drop_last - r->drop_first),
                             (unsigned) r->rate.rate);
            r->drop_first = 0;
        }

        return 1;
    }

    r->drop_last = now;

    if (r->drop_first) {
        r->dropped += osc->plays;
        return 0;
    }

    r->drop_first = now;
    r->dropped = osc->plays;

    /* plays without a tidalch (most = 0) leave the channel unknown */

    most = 0;

    for (ch = 1; ch <= TIDAL_OSC_CHANNELS; ch++) {
        if (r->recent[ch] + r->before[ch] > r->recent[most] + r->before[most])
        {
            most = ch;
        }
    }

    whose[0] = '\0';

    if (most) {
        snprintf(whose, sizeof(whose), ", most of them d%d's", most);
    }

    tidal_helper_log(TIDAL_LOG_WARN, "OSC relay: more than %u /dirt/play a "
                     "second%s: the excess is dropped",
                     (unsigned) r->rate.rate, whose);

    if (r->on_drop) {
        r->on_drop(r->data, most, (unsigned) r->rate.rate);
    }

    return 0;
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


static void
tidal_relay_sound_flush(tidal_relay_t *r)
{
    size_t       len;
    const char  *text;

    r->sound_at = 0;

    text = tidal_sound_take(&r->sound, &len);

    if (text) {
        r->on_sound(r->sound_data, text, len);
    }
}
