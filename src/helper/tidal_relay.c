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
#include "tidal_relay.h"


#define TIDAL_RELAY_PACKET_MAX   65536
#define TIDAL_RELAY_READS        256       /* datagrams per wakeup */
#define TIDAL_RELAY_RCVBUF       (1024 * 1024)
#define TIDAL_RELAY_DEPTH        8         /* nested bundles */
#define TIDAL_RELAY_WARN_EVERY   10000     /* ms between send warnings */


static void tidal_relay_from_tidal(tidal_relay_t *r);
static void tidal_relay_from_dirt(tidal_relay_t *r);
static void tidal_relay_warn(tidal_relay_t *r, const char *what, int err);
static int tidal_relay_scan(const unsigned char *p, size_t n,
    tidal_relay_osc_t *osc, int depth);
static int tidal_relay_message(const unsigned char *p, size_t n,
    tidal_relay_osc_t *osc);
static int tidal_relay_string(const unsigned char *p, size_t n, size_t *off,
    const char **s, size_t *len);


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
    int                 i;
    int64_t             now;
    ssize_t             n;
    socklen_t           slen;
    unsigned char       buf[TIDAL_RELAY_PACKET_MAX];
    tidal_relay_osc_t   osc;
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

        (void) tidal_relay_osc_scan(buf, (size_t) n, &osc);
        now = tidal_helper_msec();

        if (osc.cps > 0) {
            r->cps = osc.cps;
            r->cps_at = now;
        }

        if (osc.handshake) {
            memcpy(&r->back, &from, slen);
            r->back_len = slen;
        }

        if (osc.beats && osc.beats == osc.messages) {
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


/* -- OSC, as much as the relay needs ----------------------------------- */


int
tidal_relay_osc_scan(const unsigned char *p, size_t n, tidal_relay_osc_t *osc)
{
    memset(osc, 0, sizeof(tidal_relay_osc_t));

    return tidal_relay_scan(p, n, osc, 0);
}


static int
tidal_relay_scan(const unsigned char *p, size_t n, tidal_relay_osc_t *osc,
    int depth)
{
    size_t    off;
    uint32_t  size;

    if (n < 16 || memcmp(p, "#bundle", 8) != 0) {
        return tidal_relay_message(p, n, osc);
    }

    if (depth == TIDAL_RELAY_DEPTH) {
        return -1;
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
            || tidal_relay_scan(p + off, size, osc, depth + 1) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * A message: its address, its type tags, its arguments.  /dirt/play's
 * arguments are name, value pairs: `s` names the sound, `cps` the tempo.
 */

static int
tidal_relay_message(const unsigned char *p, size_t n, tidal_relay_osc_t *osc)
{
    int          play;
    float        f;
    double       d;
    size_t       off, len, tlen, klen, i;
    uint32_t     u32, blob;
    uint64_t     u64;
    const char  *addr, *tags, *s, *key;

    off = 0;

    if (tidal_relay_string(p, n, &off, &addr, &len) != 0 || addr[0] != '/') {
        return -1;
    }

    osc->messages++;

    play = (len == 10 && memcmp(addr, "/dirt/play", 10) == 0);

    if (play) {
        osc->plays++;
    }

    if (len >= 15 && memcmp(addr, "/dirt/handshake", 15) == 0) {
        osc->handshake = 1;
    }

    if (off == n) {
        return 0;
    }

    if (tidal_relay_string(p, n, &off, &tags, &tlen) != 0 || tags[0] != ',') {
        return -1;
    }

    key = NULL;
    klen = 0;

    for (i = 1; i < tlen; i++) {
        s = NULL;
        len = 0;
        d = 0;

        switch (tags[i]) {

        case 's':
        case 'S':
            if (tidal_relay_string(p, n, &off, &s, &len) != 0) {
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
            && len == sizeof(TIDAL_RELAY_BEAT) - 1
            && memcmp(s, TIDAL_RELAY_BEAT, len) == 0)
        {
            osc->beats++;

        } else if (klen == 3 && memcmp(key, "cps", 3) == 0 && d > 0) {
            osc->cps = d;
        }
    }

    return 0;
}


/* a NUL-terminated string padded to 4 bytes, at *off */

static int
tidal_relay_string(const unsigned char *p, size_t n, size_t *off,
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
