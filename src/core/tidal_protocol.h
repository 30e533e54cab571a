/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The names ngx_tidal adds to MCP and the link between nginx's workers
 * and tidal-helper (newline-delimited JSON-RPC on the helper's unix
 * socket): methods, _meta keys, the events' prefix, and the defaults and
 * ranges of the helper's settings, which the tidal_* directives and the
 * helper's options both check.  Both sides include this one file.
 */

#ifndef _TIDAL_PROTOCOL_H_INCLUDED_
#define _TIDAL_PROTOCOL_H_INCLUDED_


#define TIDAL_PROTOCOL_STR_(x)       #x
#define TIDAL_PROTOCOL_STR(x)        TIDAL_PROTOCOL_STR_(x)


/*
 * The link's version, in tidal/hello and its answer: a reload may load a
 * rebuilt module next to a helper that is still running.  2: the helper's
 * events are facts, unnumbered; the zone numbers them.  3: the room's
 * sound (TIDAL_PROTOCOL_SOUND).
 */
#define TIDAL_PROTOCOL_VERSION       3

/* a worker's first message: its nginx's generation, settings and state */
#define TIDAL_PROTOCOL_HELLO         "tidal/hello"

/* the helper's channels and tempo, for the zone */
#define TIDAL_PROTOCOL_STATE         "tidal/state"

/*
 * Server events, notifications/tidal/<type>: what clients receive, and
 * what the helper sends the workers to publish.
 */
#define TIDAL_PROTOCOL_EVENT         "notifications/tidal/"
#define TIDAL_PROTOCOL_EVENT_LEN     (sizeof(TIDAL_PROTOCOL_EVENT) - 1)

/*
 * The room's sound: a batch of sound events, about one a Tidal frame,
 * from the helper to every worker as the very text the clients that
 * asked for it receive, so that a worker recognizes it by this start and
 * frames it without parsing it.  Never numbered, never in the ring.
 */
#define TIDAL_PROTOCOL_SOUND_HEAD                                             \
    "{\"jsonrpc\":\"2.0\",\"method\":\"" TIDAL_PROTOCOL_EVENT "sound\","      \
    "\"params\":{\"type\":\"sound\",\"events\":["
#define TIDAL_PROTOCOL_SOUND_TAIL    "]}}"


/*
 * In the params of each of the helper's messages: its number, so that of
 * the workers it reaches only the first publishes it.
 */
#define TIDAL_META_HID               "tidal/hid"

/* a tools/call's _meta from a worker: the caller's display name */
#define TIDAL_META_WHO               "tidal/who"

/* initialize's _meta: the client's (to resume) and the server's answer */
#define TIDAL_META_SESSION           "tidal/session"
#define TIDAL_META_LAST_SEQ          "tidal/last_seq"
#define TIDAL_META_SEQ               "tidal/seq"
#define TIDAL_META_RESUMED           "tidal/resumed"
#define TIDAL_META_ROLE              "tidal/role"


/* tidal_ghci, --ghci */
#define TIDAL_SETTING_GHCI           "ghci"

/* tidal_dirt_address, --dirt: SuperDirt */
#define TIDAL_SETTING_DIRT_HOST      "127.0.0.1"
#define TIDAL_SETTING_DIRT_PORT      57120
#define TIDAL_SETTING_DIRT_ADDRESS                                            \
    TIDAL_SETTING_DIRT_HOST ":" TIDAL_PROTOCOL_STR(TIDAL_SETTING_DIRT_PORT)

/* tidal_dirt_rate, --dirt-rate: /dirt/play a second; 0: no cap */
#define TIDAL_SETTING_DIRT_RATE      1000
#define TIDAL_SETTING_DIRT_RATE_MAX  1000000

/* tidal_eval_timeout, --eval-timeout: ms */
#define TIDAL_SETTING_EVAL_TIMEOUT       5000
#define TIDAL_SETTING_EVAL_TIMEOUT_MIN   100
#define TIDAL_SETTING_EVAL_TIMEOUT_MAX   600000

/* tidal_health_interval, --health-interval: ms; 0: no health checks */
#define TIDAL_SETTING_HEALTH_INTERVAL      5000
#define TIDAL_SETTING_HEALTH_INTERVAL_MAX  3600000

/*
 * tidal_latency, --latency: ms Tidal sends each event ahead of its time
 * (Tidal's oLatency); SuperDirt's and every listener's margin
 */
#define TIDAL_SETTING_LATENCY        100
#define TIDAL_SETTING_LATENCY_MIN    20
#define TIDAL_SETTING_LATENCY_MAX    10000

/* tidal_ghci_memory, --ghci-memory: GHCi's heap cap, or "off" */
#define TIDAL_SETTING_GHCI_MEMORY    "2g"


#endif /* _TIDAL_PROTOCOL_H_INCLUDED_ */
