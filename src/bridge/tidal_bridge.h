/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper --stdio --connect ws[s]://HOST:PORT/PATH: relays an MCP
 * stdio client to a room of the nginx module over a WebSocket, with no GHCi;
 * or another client of the room in the helper (--play).
 */

#ifndef _TIDAL_BRIDGE_H_INCLUDED_
#define _TIDAL_BRIDGE_H_INCLUDED_


#include <signal.h>
#include <stddef.h>
#include <stdint.h>


#define TIDAL_BRIDGE_HEADERS_MAX  32

/* the room's sound (TIDAL_MCP_SOUND_CAPABILITY), to a client that asks */
#define TIDAL_BRIDGE_SOUND_METHOD      "notifications/tidal/sound"


typedef struct {
    const char   *url;                  /* as given, for logs */
    char          host[256];            /* for getaddrinfo(), no brackets */
    char          port[6];
    char          authority[300];       /* the Host header */
    const char   *path;                 /* points into url */
    int           tls;                  /* wss:// */
    const char   *ca_file;              /* trusted instead of the system's */
    int           reconnect;            /* --reconnect */

    /* "Name: value" lines from --header, as given */
    const char   *headers[TIDAL_BRIDGE_HEADERS_MAX];
    int           nheaders;
} tidal_bridge_conf_t;


typedef struct tidal_bridge_s  tidal_bridge_t;


/*
 * Who speaks MCP through the bridge: by default the stdio client (lines
 * on stdin, messages to stdout); tidal_play.c is another.
 */
typedef struct {
    int        in;          /* its lines come on this descriptor, -1: none */

    /* a message from the room, or the bridge's error answer: 0; -1 ends */
    int      (*receive)(void *data, tidal_bridge_t *b, const uint8_t *p,
                        size_t len);

    /* the connection is up and the session, if any, resumed */
    void     (*ready)(void *data, tidal_bridge_t *b);

    /* while ready: does what is due; its next deadline, -1 for none */
    int64_t  (*timer)(void *data, tidal_bridge_t *b, int64_t now);

    void      *data;
} tidal_bridge_client_t;


/* option parsing; -1 after saying what is wrong on stderr */
int tidal_bridge_set_url(tidal_bridge_conf_t *conf, const char *url);
int tidal_bridge_add_header(tidal_bridge_conf_t *conf, const char *header);

/*
 * Connects, relays client (NULL: stdin and stdout) until its input ends (then closes with 1000) or the
 * connection does, or *quit is set by a signal; the exit status: 0 after
 * a normal close, 1 on any failure, said on stderr.  With conf->reconnect
 * a connection the server ended or lost is made again, and the session
 * resumed, until stdin ends or a signal.
 */
int tidal_bridge_run(const tidal_bridge_conf_t *conf,
    const tidal_bridge_client_t *client, volatile sig_atomic_t *quit);

/* the client's message, as a line of stdin is sent */
void tidal_bridge_send_message(tidal_bridge_t *b, const char *text,
    size_t len);

/* the client is done: the bridge closes (1000) and exits with status */
void tidal_bridge_end(tidal_bridge_t *b, int status);


#endif /* _TIDAL_BRIDGE_H_INCLUDED_ */
