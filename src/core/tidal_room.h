/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The room: its channels, tempo and history, the numbering of its
 * events, and the answers of tidal_get_state, tidal_get_history and
 * session_restore built from them.  Pure C with jansson: tidal-helper
 * --stdio keeps one room, a worker reads one out of the zone, so both
 * answer alike by construction.
 */

#ifndef _TIDAL_ROOM_H_INCLUDED_
#define _TIDAL_ROOM_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "tidal_state.h"


#define TIDAL_ROOM_HISTORY_MAX  TIDAL_STATE_HISTORY_MAX
#define TIDAL_ROOM_TYPE_MAX     32        /* bytes of an event's type */


typedef struct {
    json_t      *channels;     /* "dN": {"pattern", "muted", "soloed"} */
    double       cps;
    uint64_t     seq;          /* of the last event */

    /* the newest events, oldest first, a ring */
    json_t      *history[TIDAL_ROOM_HISTORY_MAX];
    size_t       first;
    size_t       nhistory;
} tidal_room_t;


/* an empty room at Tidal's default tempo; -1 without memory */
int tidal_room_init(tidal_room_t *room);

void tidal_room_free(tidal_room_t *room);

/*
 * Takes the channels, tempo and history of a checked tidal_state
 * document (borrowed) in place of the room's; -1 without memory.
 */
int tidal_room_load(tidal_room_t *room, json_t *state);

/* the room as a tidal_state document with its newest history events */
json_t *tidal_room_document(tidal_room_t *room, size_t history);


/* dN's entry (borrowed); NULL: silent, neither muted nor soloed */
json_t *tidal_room_channel(tidal_room_t *room, int channel);

/* pattern NULL or "silence": silent; -1 without memory */
int tidal_room_channel_set(tidal_room_t *room, int channel,
    const char *pattern, int muted, int soloed);

/* {"pattern": text or null, "muted": bool, "soloed": bool} */
json_t *tidal_room_channel_state(tidal_room_t *room, int channel);

/* {"cps": c, "bpm": c * 240}: Tidal counts four beats to a cycle */
json_t *tidal_room_tempo(tidal_room_t *room);


/* whether the history keeps events of this type */
int tidal_room_event_kept(const char *type);

/* the channel (1 .. 16) whose state an event changes, or 0 */
int tidal_room_event_channel(const char *type, json_t *fields);

/*
 * The bytes tidal_room_event_write() may need for fields of len bytes,
 * 0 when type is not the name of a type ([a-z0-9_], at most
 * TIDAL_ROOM_TYPE_MAX).
 */
size_t tidal_room_event_size(const char *type, size_t len);

/*
 * Writes event number seq as the text every client receives:
 * {"jsonrpc":"2.0","method":"notifications/tidal/TYPE","params":
 * {"type":"TYPE","seq":SEQ,"timestamp":MS, ...the fields}}, where fields
 * is the compact text of a JSON object.  Returns the text's length; the
 * params, which are the history's entry, begin at *params and end one
 * byte before the text does.
 */
size_t tidal_room_event_write(char *buf, const char *type, uint64_t seq,
    int64_t timestamp, const char *fields, size_t len, size_t *params);

/*
 * Numbers an event of the room, keeps it in the history if its type is
 * kept, and returns its notification text (malloc'ed, *len bytes and a
 * NUL), or NULL without memory or with a bad type; fields is stolen.
 * *seq is its number.
 */
char *tidal_room_event(tidal_room_t *room, const char *type, json_t *fields,
    int64_t timestamp, uint64_t *seq, size_t *len);

/*
 * Appends an event's params to the history, the oldest leaves it past
 * the limit; entry is stolen.  -1 when it is not an object.
 */
int tidal_room_history_add(tidal_room_t *room, json_t *entry);


/*
 * CallToolResults: tidal_get_state, with GHCi's status and, when given
 * (borrowed), how Tidal's scheduler does; tidal_get_history with the
 * newest limit events.  NULL without memory.
 */
json_t *tidal_room_get_state(tidal_room_t *room, const char *ghci,
    json_t *scheduler);
json_t *tidal_room_get_history(tidal_room_t *room, size_t limit);

/*
 * The text of resource 1 .. TIDAL_MCP_RESOURCE_HISTORY as resources/read
 * gives it: a channel's state; tidal://state {"channels", "tempo",
 * "seq"}; tidal://history {"history": [the newest events]}.  NULL for
 * another number (tidal://chat is the transport's: the room keeps no
 * chat) or without memory.
 */
json_t *tidal_room_resource(tidal_room_t *room, int resource);

/* the params of a session_restore with the newest history events */
json_t *tidal_room_restore(tidal_room_t *room, size_t history,
    int64_t timestamp);


#endif /* _TIDAL_ROOM_H_INCLUDED_ */
