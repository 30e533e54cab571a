/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper's MCP server (tidal_helper_tools.c): the tools, the
 * channel state and the events, for the stdio transport and for the
 * socket nginx's workers use (tidal_helper_socket.c).
 */

#ifndef _TIDAL_HELPER_TOOLS_H_INCLUDED_
#define _TIDAL_HELPER_TOOLS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "tidal_mcp.h"
#include "tidal_room.h"


typedef struct tidal_helper_s  tidal_helper_t;
typedef struct tidal_super_s   tidal_helper_super_t;


struct tidal_helper_s {
    tidal_mcp_session_t    session;
    tidal_mcp_server_t     server;

    tidal_helper_super_t  *ghci;              /* the supervisor */
    int                    eval_timeout;      /* ms, for messages */

    tidal_room_t           room;              /* history: --stdio only */
    char                   who_set[17][64];   /* who set dN's pattern */
    uint64_t               last_event;        /* its seq, or tidal/hid */

    const char            *who;               /* the caller nginx names */
    unsigned               adopted:1;         /* state given by nginx */

    /* sends one JSON-RPC message (NUL-terminated, no newline) */
    void                 (*send)(tidal_helper_t *h, const char *text,
                                 size_t len);

    /*
     * Socket mode: nginx's zone owns the room and numbers its events, so
     * an event goes there as it is (fields stolen); returns the
     * "tidal/hid" that names it.  NULL: the helper's own room numbers it.
     */
    uint64_t             (*publish)(tidal_helper_t *h, const char *type,
                                    json_t *fields);

    /*
     * Socket mode: a batch of the room's sound for every worker, as the
     * text its clients receive.  NULL: nobody listens.
     */
    void                 (*sound)(tidal_helper_t *h, const char *text,
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

/* the relay's: a batch of the room's sound; data is h */
void tidal_helper_sound(void *data, const char *text, size_t len);

void tidal_helper_free(tidal_helper_t *h);

/*
 * Takes a state document (the zone's, from nginx) as its own and plays
 * it, now or once GHCi is up; -1 with a reason when it is not valid.
 */
int tidal_helper_adopt(tidal_helper_t *h, const char *text, size_t len,
    char *err, size_t errlen);


#endif /* _TIDAL_HELPER_TOOLS_H_INCLUDED_ */
