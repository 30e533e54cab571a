/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * --play: a listener of the room, through the bridge's connection, that
 * sends each sound event to a local SuperDirt as an OSC bundle timed by
 * this machine's clock: the room's time less the clock offset (measured
 * NTP-style with tidal/clock) plus --latency.  An event that could only
 * play late is dropped and counted.
 */


#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "tidal_helper_log.h"
#include "tidal_bridge.h"
#include "tidal_mcp.h"
#include "tidal_osc.h"
#include "tidal_play.h"


#define TIDAL_PLAY_PROBES        8         /* tidal/clock requests a measure */
#define TIDAL_PLAY_MEASURE_EVERY 10000     /* ms from one measure to the next */
#define TIDAL_PLAY_PROBE_TIME    2000      /* ms for an answer */
#define TIDAL_PLAY_SAMPLES       6         /* the measures kept: a minute */
#define TIDAL_PLAY_REPORT_EVERY  10000     /* ms between reports of drops */
#define TIDAL_PLAY_PACKET_MAX    8192      /* one bundle */
#define TIDAL_PLAY_ARGS_MAX      256       /* names and values */

/* what the bridge answers a request it could not send */
#define TIDAL_PLAY_UNREACHABLE   -32000


/* one tidal/clock exchange; seconds */
typedef struct {
    double                    offset;     /* the room's clock minus ours */
    double                    delay;      /* the round trip, less the
                                             room's own time; -1: none */
} tidal_play_sample_t;


typedef struct {
    const tidal_play_conf_t  *conf;
    int                       fd;          /* UDP to SuperDirt, connected */
    unsigned                  n;           /* the ids of our requests */

    char                      init_id[32]; /* awaited */

    /* the clock: a measure is PROBES exchanges, one after the other */
    char                      probe_id[32];
    double                    probe_sent;  /* our clock, when it left */
    int64_t                   probe_deadline;
    unsigned                  probes;
    tidal_play_sample_t       measure;     /* its best so far */
    tidal_play_sample_t       samples[TIDAL_PLAY_SAMPLES]; /* recent bests */
    unsigned                  nsamples;
    int64_t                   next_measure;
    double                    offset;      /* the best recent sample's */

    /* what became of the events */
    uint64_t                  played;
    uint64_t                  late;
    uint64_t                  unclocked;   /* before the clock was known */
    uint64_t                  unsent;      /* SuperDirt's socket refused */
    uint64_t                  late_reported;
    uint64_t                  unsent_reported;
    int64_t                   next_report;

    unsigned                  init_sent:1;
    unsigned                  initialized:1;
    unsigned                  clock_known:1;
    unsigned                  clock_missing:1;  /* no tidal/clock: offset 0 */
} tidal_play_t;


static int tidal_play_socket(const tidal_play_conf_t *conf);
static void tidal_play_ready(void *data, tidal_bridge_t *b);
static int64_t tidal_play_timer(void *data, tidal_bridge_t *b, int64_t now);
static int tidal_play_receive(void *data, tidal_bridge_t *b,
    const uint8_t *p, size_t len);
static void tidal_play_answer(tidal_play_t *pl, tidal_bridge_t *b,
    json_t *msg, const char *id, double now);
static void tidal_play_probe(tidal_play_t *pl, tidal_bridge_t *b);
static void tidal_play_clock(tidal_play_t *pl, tidal_bridge_t *b,
    json_t *msg, double now);
static void tidal_play_measured(tidal_play_t *pl);
static void tidal_play_sound(tidal_play_t *pl, json_t *params, double now);
static void tidal_play_event(tidal_play_t *pl, json_t *event, double now);
static void tidal_play_report(tidal_play_t *pl);
static int tidal_play_request(tidal_play_t *pl, tidal_bridge_t *b,
    char *id, size_t size, const char *method, json_t *params);


int
tidal_play_run(const tidal_bridge_conf_t *bridge,
    const tidal_play_conf_t *conf, volatile sig_atomic_t *quit)
{
    int                    rc;
    tidal_play_t           pl;
    tidal_bridge_client_t  client;

    memset(&pl, 0, sizeof(pl));
    pl.conf = conf;

    pl.fd = tidal_play_socket(conf);
    if (pl.fd == -1) {
        return 1;
    }

    tidal_helper_log(TIDAL_LOG_INFO, "playing the room at %s on SuperDirt "
                     "at %s:%d, latency %d ms", bridge->url,
                     conf->host, conf->port, conf->latency);

    memset(&client, 0, sizeof(client));
    client.in = -1;
    client.receive = tidal_play_receive;
    client.ready = tidal_play_ready;
    client.timer = tidal_play_timer;
    client.data = &pl;

    rc = tidal_bridge_run(bridge, &client, quit);

    tidal_play_report(&pl);

    tidal_helper_log(TIDAL_LOG_INFO, "played %llu events; dropped %llu late, "
                     "%llu before the clock was known, %llu that SuperDirt's "
                     "socket refused", (unsigned long long) pl.played,
                     (unsigned long long) pl.late,
                     (unsigned long long) pl.unclocked,
                     (unsigned long long) pl.unsent);

    close(pl.fd);

    return rc;
}


/* SuperDirt's address, once: a UDP socket connected to it */

static int
tidal_play_socket(const tidal_play_conf_t *conf)
{
    int               fd, rc;
    char              port[8];
    struct addrinfo   hints, *res, *ai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;

    snprintf(port, sizeof(port), "%d", conf->port);

    rc = getaddrinfo(conf->host, port, &hints, &res);
    if (rc != 0) {
        tidal_helper_log(TIDAL_LOG_ERR, "--play %s:%d: %s", conf->host,
                         conf->port, gai_strerror(rc));
        return -1;
    }

    fd = -1;

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK
                                   | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1) {
            continue;
        }

        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }

        close(fd);
        fd = -1;
    }

    freeaddrinfo(res);

    if (fd == -1) {
        tidal_helper_log(TIDAL_LOG_ERR, "--play %s:%d: no socket for it: %s",
                         conf->host, conf->port, strerror(errno));
    }

    return fd;
}


/*
 * The connection is up.  The first time, our initialize asks for the
 * sound; after a reconnect the bridge resumed the session with it, and
 * the clock is measured again (the room may be another machine now).
 */

static void
tidal_play_ready(void *data, tidal_bridge_t *b)
{
    tidal_play_t *pl = data;

    json_t  *params;

    pl->probe_id[0] = '\0';
    pl->next_measure = tidal_helper_msec();

    if (pl->init_sent) {
        pl->init_id[0] = '\0';
        pl->initialized = 1;
        return;
    }

    params = json_pack("{s:s, s:{s:{s:{}}}, s:{s:s, s:s}}",
                       "protocolVersion", TIDAL_MCP_LATEST_VERSION,
                       "capabilities", "experimental",
                       TIDAL_MCP_SOUND_CAPABILITY,
                       "clientInfo", "name", "tidal-helper --play",
                       "version", TIDAL_HELPER_VERSION);

    if (tidal_play_request(pl, b, pl->init_id, sizeof(pl->init_id),
                           "initialize", params)
        == 0)
    {
        pl->init_sent = 1;
    }
}


static int64_t
tidal_play_timer(void *data, tidal_bridge_t *b, int64_t now)
{
    tidal_play_t *pl = data;

    int64_t  next;

    if (now >= pl->next_report) {
        tidal_play_report(pl);
        pl->next_report = now + TIDAL_PLAY_REPORT_EVERY;
    }

    next = pl->next_report;

    if (!pl->initialized || pl->clock_missing) {
        return next;
    }

    if (pl->probe_id[0] != '\0' && now >= pl->probe_deadline) {
        tidal_helper_log(TIDAL_LOG_WARN, "no answer to tidal/clock within "
                         "%d ms", TIDAL_PLAY_PROBE_TIME);
        pl->probe_id[0] = '\0';
        tidal_play_measured(pl);
    }

    if (pl->probe_id[0] == '\0' && now >= pl->next_measure) {
        pl->probes = 0;
        pl->measure.delay = -1;
        tidal_play_probe(pl, b);
    }

    if (pl->probe_id[0] != '\0') {
        return (pl->probe_deadline < next) ? pl->probe_deadline : next;
    }

    return (pl->next_measure < next) ? pl->next_measure : next;
}


static int
tidal_play_receive(void *data, tidal_bridge_t *b, const uint8_t *p,
    size_t len)
{
    tidal_play_t *pl = data;

    double       now;
    json_t      *msg;
    const char  *method, *id;

    /* first: the clock's exchange ends when its answer is here */
    now = tidal_helper_unix_time();

    msg = json_loadb((const char *) p, len, 0, NULL);

    if (!json_is_object(msg)) {
        json_decref(msg);
        return 0;
    }

    method = json_string_value(json_object_get(msg, "method"));
    id = json_string_value(json_object_get(msg, "id"));

    if (method != NULL) {
        if (strcmp(method, TIDAL_BRIDGE_SOUND_METHOD) == 0) {
            tidal_play_sound(pl, json_object_get(msg, "params"), now);
        }

        /* the room's other messages are not ours to play */

    } else if (id != NULL) {
        tidal_play_answer(pl, b, msg, id, now);
    }

    json_decref(msg);

    return 0;
}


static void
tidal_play_answer(tidal_play_t *pl, tidal_bridge_t *b, json_t *msg,
    const char *id, double now)
{
    json_t      *error;
    const char  *why;
    static char  initialized[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

    if (pl->probe_id[0] != '\0' && strcmp(id, pl->probe_id) == 0) {
        tidal_play_clock(pl, b, msg, now);
        return;
    }

    if (pl->init_id[0] == '\0' || strcmp(id, pl->init_id) != 0) {
        return;
    }

    pl->init_id[0] = '\0';
    error = json_object_get(msg, "error");

    if (error == NULL) {
        tidal_helper_log(TIDAL_LOG_INFO, "joined the room as a listener");
        tidal_bridge_send_message(b, initialized, sizeof(initialized) - 1);
        pl->initialized = 1;
        return;
    }

    why = json_string_value(json_object_get(error, "message"));

    /* the bridge is reconnecting: it sends our initialize again itself */
    if (json_integer_value(json_object_get(error, "code"))
        == TIDAL_PLAY_UNREACHABLE)
    {
        tidal_helper_log(TIDAL_LOG_INFO, "initialize: %s", why ? why : "");
        return;
    }

    tidal_helper_log(TIDAL_LOG_ERR, "the room refused initialize: %s",
                     why ? why : "no reason given");
    tidal_bridge_end(b, 1);
}


static void
tidal_play_probe(tidal_play_t *pl, tidal_bridge_t *b)
{
    /* taken before the request leaves: it goes out in this call */
    pl->probe_sent = tidal_helper_unix_time();

    if (tidal_play_request(pl, b, pl->probe_id, sizeof(pl->probe_id),
                           TIDAL_MCP_CLOCK_METHOD, NULL)
        != 0)
    {
        pl->next_measure = tidal_helper_msec() + TIDAL_PLAY_MEASURE_EVERY;
        return;
    }

    pl->probe_deadline = tidal_helper_msec() + TIDAL_PLAY_PROBE_TIME;
}


/*
 * NTP's arithmetic (RFC 5905 8): t0 and t3 ours, receive and transmit the
 * room's (ms); the offset is exact when the way there takes as long as
 * the way back, so the sample with the shortest round trip is the best.
 */

static void
tidal_play_clock(tidal_play_t *pl, tidal_bridge_t *b, json_t *msg,
    double now)
{
    double                t0, t1, t2, t3;
    json_t               *result, *error;
    const char           *why;
    tidal_play_sample_t   s;

    pl->probe_id[0] = '\0';

    error = json_object_get(msg, "error");

    if (error != NULL) {
        if (json_integer_value(json_object_get(error, "code"))
            == TIDAL_MCP_METHOD_NOT_FOUND)
        {
            tidal_helper_log(TIDAL_LOG_WARN, "the room has no tidal/clock: "
                             "playing as if this machine's clock were the "
                             "room's (offset 0)");
            pl->clock_missing = 1;
            pl->clock_known = 1;
            pl->offset = 0;
            return;
        }

        why = json_string_value(json_object_get(error, "message"));
        tidal_helper_log(TIDAL_LOG_WARN, "tidal/clock failed: %s",
                         why ? why : "no reason given");
        tidal_play_measured(pl);
        return;
    }

    result = json_object_get(msg, "result");

    if (!json_is_number(json_object_get(result, "receive"))
        || !json_is_number(json_object_get(result, "transmit")))
    {
        tidal_helper_log(TIDAL_LOG_WARN, "tidal/clock answered without "
                         "receive and transmit");
        tidal_play_measured(pl);
        return;
    }

    t0 = pl->probe_sent;
    t1 = json_number_value(json_object_get(result, "receive")) / 1000;
    t2 = json_number_value(json_object_get(result, "transmit")) / 1000;
    t3 = now;

    s.offset = ((t1 - t0) + (t2 - t3)) / 2;
    s.delay = (t3 - t0) - (t2 - t1);

    if (s.delay < 0) {
        s.delay = 0;
    }

    if (pl->measure.delay < 0 || s.delay < pl->measure.delay) {
        pl->measure = s;
    }

    if (++pl->probes < TIDAL_PLAY_PROBES) {
        tidal_play_probe(pl, b);
        return;
    }

    tidal_play_measured(pl);
}


/* a measure is over: its best sample joins the recent ones */

static void
tidal_play_measured(tidal_play_t *pl)
{
    unsigned              i, n;
    tidal_play_sample_t  *best;

    /* a clock not known yet is worth trying again soon */
    pl->next_measure = tidal_helper_msec()
                       + (pl->clock_known ? TIDAL_PLAY_MEASURE_EVERY
                                          : TIDAL_PLAY_PROBE_TIME);

    if (pl->measure.delay < 0) {
        return;
    }

    pl->samples[pl->nsamples++ % TIDAL_PLAY_SAMPLES] = pl->measure;
    pl->measure.delay = -1;

    n = (pl->nsamples < TIDAL_PLAY_SAMPLES) ? pl->nsamples
                                            : TIDAL_PLAY_SAMPLES;
    best = &pl->samples[0];

    for (i = 1; i < n; i++) {
        if (pl->samples[i].delay < best->delay) {
            best = &pl->samples[i];
        }
    }

    tidal_helper_log(pl->clock_known ? TIDAL_LOG_DEBUG : TIDAL_LOG_INFO,
                     "the room's clock is %+.3f ms from ours (round trip "
                     "%.3f ms)", best->offset * 1000, best->delay * 1000);

    pl->offset = best->offset;
    pl->clock_known = 1;
}


/* {"type": "sound", "events": [{"time", "channel", "params"}, ...]} */

static void
tidal_play_sound(tidal_play_t *pl, json_t *params, double now)
{
    size_t   i;
    json_t  *events;

    events = json_object_get(params, "events");

    for (i = 0; i < json_array_size(events); i++) {
        tidal_play_event(pl, json_array_get(events, i), now);
    }
}


static void
tidal_play_event(tidal_play_t *pl, json_t *event, double now)
{
    int               err;
    double            at;
    size_t            n, len;
    json_t           *params, *value;
    json_int_t        i;
    const char       *name;
    tidal_osc_arg_t   args[TIDAL_PLAY_ARGS_MAX];
    unsigned char     packet[TIDAL_PLAY_PACKET_MAX];

    params = json_object_get(event, "params");

    if (!json_is_number(json_object_get(event, "time"))
        || !json_is_object(params))
    {
        tidal_helper_log(TIDAL_LOG_DEBUG, "a sound event without time or "
                         "params");
        return;
    }

    if (!pl->clock_known) {
        pl->unclocked++;
        return;
    }

    /* the room's time on our clock, later by --latency */
    at = json_number_value(json_object_get(event, "time")) - pl->offset
         + (double) pl->conf->latency / 1000;

    if (at < now) {
        pl->late++;
        return;
    }

    /* name, value pairs, each value of its JSON type */

    n = 0;

    json_object_foreach(params, name, value) {
        if (n + 2 > TIDAL_PLAY_ARGS_MAX) {
            tidal_helper_log(TIDAL_LOG_DEBUG, "a sound event with more than "
                             "%d params: the rest are not sent",
                             TIDAL_PLAY_ARGS_MAX / 2);
            break;
        }

        memset(&args[n], 0, 2 * sizeof(tidal_osc_arg_t));

        if (json_is_integer(value)) {
            i = json_integer_value(value);

            /* an int beyond OSC's 32 bits keeps its value as a float */
            args[n + 1].type = (i >= INT32_MIN && i <= INT32_MAX) ? 'i'
                                                                  : 'f';
            args[n + 1].d = (double) i;

        } else if (json_is_real(value)) {
            args[n + 1].type = 'f';
            args[n + 1].d = json_real_value(value);

        } else if (json_is_string(value)) {
            args[n + 1].type = 's';
            args[n + 1].s = json_string_value(value);
            args[n + 1].len = strlen(args[n + 1].s);

        } else if (json_is_boolean(value)) {
            args[n + 1].type = 'i';
            args[n + 1].d = json_is_true(value);

        } else {
            continue;
        }

        args[n].type = 's';
        args[n].s = name;
        args[n].len = strlen(name);
        n += 2;
    }

    len = tidal_osc_write_bundle(packet, sizeof(packet), tidal_osc_timetag(at),
                                 "/dirt/play", args, n);

    if (len == 0) {
        tidal_helper_log(TIDAL_LOG_DEBUG, "a sound event longer than %d "
                         "bytes of OSC was not sent", TIDAL_PLAY_PACKET_MAX);
        pl->unsent++;
        return;
    }

    if (send(pl->fd, packet, len, 0) == -1) {
        err = errno;

        /* SuperDirt not up yet (refused) is said once in a while */
        if (pl->unsent++ == 0) {
            tidal_helper_log(TIDAL_LOG_WARN, "sending to SuperDirt at %s:%d "
                             "failed: %s", pl->conf->host, pl->conf->port,
                             strerror(err));
        }

        return;
    }

    pl->played++;
}


/* the drops since the last report, if any */

static void
tidal_play_report(tidal_play_t *pl)
{
    if (pl->late > pl->late_reported) {
        tidal_helper_log(TIDAL_LOG_WARN, "dropped %llu late events (%llu in "
                         "all): they came after their time plus --latency "
                         "(%d ms)",
                         (unsigned long long) (pl->late - pl->late_reported),
                         (unsigned long long) pl->late, pl->conf->latency);
        pl->late_reported = pl->late;
    }

    if (pl->unsent > pl->unsent_reported) {
        tidal_helper_log(TIDAL_LOG_WARN, "%llu events not sent to SuperDirt "
                         "(%llu in all)",
                         (unsigned long long) (pl->unsent
                                               - pl->unsent_reported),
                         (unsigned long long) pl->unsent);
        pl->unsent_reported = pl->unsent;
    }
}


/* a request of ours, its id (a string, not the room's to confuse) in id */

static int
tidal_play_request(tidal_play_t *pl, tidal_bridge_t *b, char *id,
    size_t size, const char *method, json_t *params)
{
    char    *text;
    json_t  *msg;

    snprintf(id, size, "tidal-play:%u", ++pl->n);

    msg = json_pack("{s:s, s:s, s:s}", "jsonrpc", "2.0", "id", id,
                    "method", method);

    /* json_object_set_new() takes params, even when it fails */
    if (msg == NULL) {
        json_decref(params);

    } else if (params != NULL
               && json_object_set_new(msg, "params", params) != 0)
    {
        json_decref(msg);
        msg = NULL;
    }

    text = (msg != NULL) ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);

    if (text == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory for %s", method);
        id[0] = '\0';
        return -1;
    }

    tidal_bridge_send_message(b, text, strlen(text));
    free(text);

    return 0;
}
