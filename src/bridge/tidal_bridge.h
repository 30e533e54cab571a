/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper --stdio --connect ws[s]://HOST:PORT/PATH: relays an MCP
 * stdio client to a room of the nginx module over a WebSocket, with no GHCi.
 */

#ifndef _TIDAL_BRIDGE_H_INCLUDED_
#define _TIDAL_BRIDGE_H_INCLUDED_


#include <signal.h>


#define TIDAL_BRIDGE_HEADERS_MAX  32


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


/* option parsing; -1 after saying what is wrong on stderr */
int tidal_bridge_set_url(tidal_bridge_conf_t *conf, const char *url);
int tidal_bridge_add_header(tidal_bridge_conf_t *conf, const char *header);

/*
 * Connects, relays until stdin ends (then closes with 1000) or the
 * connection does, or *quit is set by a signal; the exit status: 0 after
 * a normal close, 1 on any failure, said on stderr.  With conf->reconnect
 * a connection the server ended or lost is made again, and the session
 * resumed, until stdin ends or a signal.
 */
int tidal_bridge_run(const tidal_bridge_conf_t *conf,
    volatile sig_atomic_t *quit);


#endif /* _TIDAL_BRIDGE_H_INCLUDED_ */
