/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper: what its parts share - the helper's MCP server (tools,
 * channel state, events), logging to stderr and the clock.
 */

#ifndef _TIDAL_HELPER_H_INCLUDED_
#define _TIDAL_HELPER_H_INCLUDED_


#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#include "tidal_mcp.h"


#define TIDAL_HELPER_VERSION  "0.1.0"

#define TIDAL_LOG_ERR     0
#define TIDAL_LOG_WARN    1
#define TIDAL_LOG_INFO    2
#define TIDAL_LOG_DEBUG   3


typedef struct tidal_helper_s  tidal_helper_t;
typedef struct tidal_super_s   tidal_helper_super_t;


/* --socket: the helper nginx runs */
typedef struct {
    const char            *path;              /* the unix socket */
    pid_t                  master;            /* exit when it is gone */
    uint64_t               generation;        /* of the nginx that ran it */
    const char            *config;            /* its settings' id */
} tidal_helper_socket_conf_t;


struct tidal_helper_s {
    tidal_mcp_session_t    session;
    tidal_mcp_server_t     server;

    tidal_helper_super_t  *ghci;              /* the supervisor */
    int                    eval_timeout;      /* ms, for messages */

    json_t                *state;             /* the tidal_state document */
    char                  *prev[17];          /* dN's previous pattern */
    char                   who_set[17][64];   /* who set dN's pattern */
    int                    last_channel;      /* the last one evaluated */
    uint64_t               seq;               /* of the last event */

    const char            *who;               /* the caller nginx names */
    unsigned               adopted:1;         /* state given by nginx */

    /* sends one JSON-RPC message (NUL-terminated, no newline) */
    void                 (*send)(tidal_helper_t *h, const char *text,
                                 size_t len);
};


/*
 * The helper's MCP server: the rows of the shared table that run in the
 * helper (no chat; raw evaluation only with allow_raw), for a session of
 * the given role.
 */
int tidal_helper_init(tidal_helper_t *h, tidal_role_e role, int allow_raw);

/* handles one incoming JSON-RPC message */
void tidal_helper_message(tidal_helper_t *h, const char *msg, size_t len);

/* the supervisor's callbacks; their data is the helper */
void tidal_helper_ghci_ready(tidal_helper_super_t *s, const char *reason);
void tidal_helper_ghci_error(tidal_helper_super_t *s, const char *message);
void tidal_helper_ghci_failed(tidal_helper_super_t *s, int channel,
    const char *why);
const char *tidal_helper_ghci_audible(tidal_helper_super_t *s, int channel);

/* the relay's: it began to drop /dirt/play over its cap; data is h */
void tidal_helper_dirt_dropped(void *data, int channel, unsigned rate);

void tidal_helper_free(tidal_helper_t *h);

/*
 * Takes a state document (the zone's, from nginx) as its own and plays
 * it, now or once GHCi is up; -1 with a reason when it is not valid.
 */
int tidal_helper_adopt(tidal_helper_t *h, const char *text, size_t len,
    char *err, size_t errlen);

/* serves nginx's workers on conf->path until *quit or the master exits */
int tidal_helper_socket(tidal_helper_t *h, tidal_helper_super_t *g,
    const tidal_helper_socket_conf_t *conf, volatile sig_atomic_t *quit);


/* one line to stderr: "tidal-helper[pid]: level: message" */
void tidal_helper_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* milliseconds of CLOCK_MONOTONIC */
int64_t tidal_helper_msec(void);

/* milliseconds since the epoch, for event timestamps */
int64_t tidal_helper_epoch_msec(void);


#endif /* _TIDAL_HELPER_H_INCLUDED_ */
