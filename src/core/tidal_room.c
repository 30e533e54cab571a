/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The room model: what plays, what happened, and the numbers of events.
 * The helper's stdio mode owns a room; in nginx the zone numbers events
 * with tidal_room_event_write() and a worker answers from a room read
 * out of the zone.
 */


#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_mcp.h"
#include "tidal_protocol.h"
#include "tidal_room.h"
#include "tidal_tools.h"


#define TIDAL_ROOM_EVENT_METHOD                                               \
    "{\"jsonrpc\":\"2.0\",\"method\":\"" TIDAL_PROTOCOL_EVENT "%s\",\"params\":"
#define TIDAL_ROOM_EVENT_PARAMS                                               \
    "{\"type\":\"%s\",\"seq\":%" PRIu64 ",\"timestamp\":%" PRId64


/* what happened to the music: pattern_update is told again by pattern_eval */
static const char  *tidal_room_kept[] = {
    "pattern_eval", "channel_state", "tempo_change", "error",
    "ghci_restarted", NULL
};


static json_t *tidal_room_history_tail(tidal_room_t *room, size_t max);


int
tidal_room_init(tidal_room_t *room)
{
    memset(room, 0, sizeof(tidal_room_t));

    room->cps = TIDAL_STATE_DEFAULT_CPS;
    room->channels = json_object();

    return room->channels ? 0 : -1;
}


void
tidal_room_free(tidal_room_t *room)
{
    size_t  i;

    for (i = 0; i < room->nhistory; i++) {
        json_decref(room->history[(room->first + i) % TIDAL_ROOM_HISTORY_MAX]);
    }

    json_decref(room->channels);

    room->channels = NULL;
    room->first = 0;
    room->nhistory = 0;
}


int
tidal_room_load(tidal_room_t *room, json_t *state)
{
    size_t   i;
    json_t  *channels, *history;

    channels = json_deep_copy(json_object_get(state, "channels"));
    if (channels == NULL) {
        return -1;
    }

    tidal_room_free(room);

    room->channels = channels;
    room->cps = json_number_value(json_object_get(
                    json_object_get(state, "tempo"), "cps"));

    history = json_object_get(state, "history");

    for (i = 0; i < json_array_size(history); i++) {
        (void) tidal_room_history_add(room,
                                      json_incref(json_array_get(history, i)));
    }

    return 0;
}


json_t *
tidal_room_document(tidal_room_t *room, size_t history)
{
    return json_pack("{s:i, s:{s:f}, s:O, s:o*}",
                     "version", TIDAL_STATE_VERSION,
                     "tempo", "cps", room->cps,
                     "channels", room->channels,
                     "history", tidal_room_history_tail(room, history));
}


/* -- channels ---------------------------------------------------------- */


json_t *
tidal_room_channel(tidal_room_t *room, int channel)
{
    char  name[8];

    snprintf(name, sizeof(name), "d%d", channel);

    return json_object_get(room->channels, name);
}


/*
 * A silent channel keeps an entry only while it is muted or soloed, with
 * Tidal's own word for nothing, "silence".
 */

int
tidal_room_channel_set(tidal_room_t *room, int channel, const char *pattern,
    int muted, int soloed)
{
    char     name[8];
    json_t  *entry;

    snprintf(name, sizeof(name), "d%d", channel);

    if ((pattern == NULL || strcmp(pattern, "silence") == 0)
        && !muted && !soloed)
    {
        (void) json_object_del(room->channels, name);
        return 0;
    }

    entry = json_pack("{s:s, s:b, s:b}", "pattern",
                      pattern ? pattern : "silence", "muted", muted,
                      "soloed", soloed);

    return json_object_set_new(room->channels, name, entry);
}


json_t *
tidal_room_channel_state(tidal_room_t *room, int channel)
{
    json_t      *cur;
    const char  *pattern;

    cur = tidal_room_channel(room, channel);
    pattern = json_string_value(json_object_get(cur, "pattern"));

    if (pattern && strcmp(pattern, "silence") == 0) {
        pattern = NULL;
    }

    return json_pack("{s:s?, s:b, s:b}", "pattern", pattern,
                     "muted", json_is_true(json_object_get(cur, "muted")),
                     "soloed", json_is_true(json_object_get(cur, "soloed")));
}


json_t *
tidal_room_tempo(tidal_room_t *room)
{
    return json_pack("{s:f, s:f}", "cps", room->cps, "bpm", room->cps * 240);
}


/* -- events ------------------------------------------------------------ */


int
tidal_room_event_kept(const char *type)
{
    size_t  i;

    for (i = 0; tidal_room_kept[i]; i++) {
        if (strcmp(type, tidal_room_kept[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


int
tidal_room_event_channel(const char *type, json_t *fields)
{
    if (strcmp(type, "pattern_update") != 0
        && strcmp(type, "channel_state") != 0)
    {
        return 0;
    }

    return tidal_tools_channel(json_string_value(json_object_get(fields,
                                                                 "channel")));
}


size_t
tidal_room_event_size(const char *type, size_t len)
{
    size_t  n;

    n = strspn(type, "abcdefghijklmnopqrstuvwxyz0123456789_");

    if (n == 0 || n > TIDAL_ROOM_TYPE_MAX || type[n] != '\0') {
        return 0;
    }

    /* the head with its numbers at their longest, a comma, the fields */

    return sizeof(TIDAL_ROOM_EVENT_METHOD) + sizeof(TIDAL_ROOM_EVENT_PARAMS)
           + 2 * n + 2 * 20 + 1 + len;
}


size_t
tidal_room_event_write(char *buf, const char *type, uint64_t seq,
    int64_t timestamp, const char *fields, size_t len, size_t *params)
{
    int      n;
    char    *p;
    size_t   rest;

    n = sprintf(buf, TIDAL_ROOM_EVENT_METHOD, type);
    *params = (size_t) n;

    p = buf + n;
    p += sprintf(p, TIDAL_ROOM_EVENT_PARAMS, type, seq, timestamp);

    /* the fields go inside params, after type, seq and timestamp */

    rest = len > 2 ? len - 2 : 0;

    if (rest) {
        *p++ = ',';
        memcpy(p, fields + 1, rest);
        p += rest;
    }

    *p++ = '}';
    *p++ = '}';

    return (size_t) (p - buf);
}


char *
tidal_room_event(tidal_room_t *room, const char *type, json_t *fields,
    int64_t timestamp, uint64_t *seq, size_t *len)
{
    char    *text, *buf;
    size_t   size, params;
    json_t  *entry;

    buf = NULL;
    entry = NULL;
    text = json_dumps(fields, JSON_COMPACT);

    if (text == NULL) {
        goto done;
    }

    size = tidal_room_event_size(type, strlen(text));

    if (size == 0 || (buf = malloc(size + 1)) == NULL) {
        goto done;
    }

    room->seq++;
    *seq = room->seq;
    *len = tidal_room_event_write(buf, type, room->seq, timestamp, text,
                                  strlen(text), &params);
    buf[*len] = '\0';

    if (!tidal_room_event_kept(type)) {
        goto done;
    }

    /* the entry as clients read it: type, seq and timestamp first */

    entry = json_pack("{s:s, s:I, s:I}", "type", type,
                      "seq", (json_int_t) room->seq,
                      "timestamp", (json_int_t) timestamp);

    if (entry == NULL || json_object_update(entry, fields) != 0) {
        json_decref(entry);
        goto done;
    }

    (void) tidal_room_history_add(room, entry);

done:

    free(text);
    json_decref(fields);

    return buf;
}


int
tidal_room_history_add(tidal_room_t *room, json_t *entry)
{
    size_t  last;

    if (!json_is_object(entry)) {
        json_decref(entry);
        return -1;
    }

    if (room->nhistory == TIDAL_ROOM_HISTORY_MAX) {
        json_decref(room->history[room->first]);
        room->first = (room->first + 1) % TIDAL_ROOM_HISTORY_MAX;
        room->nhistory--;
    }

    last = (room->first + room->nhistory) % TIDAL_ROOM_HISTORY_MAX;
    room->history[last] = entry;
    room->nhistory++;

    return 0;
}


/* a new array of the newest max events */

static json_t *
tidal_room_history_tail(tidal_room_t *room, size_t max)
{
    size_t   i;
    json_t  *tail;

    tail = json_array();

    for (i = room->nhistory > max ? room->nhistory - max : 0;
         tail && i < room->nhistory;
         i++)
    {
        if (json_array_append(tail, room->history[(room->first + i)
                                                  % TIDAL_ROOM_HISTORY_MAX])
            != 0)
        {
            json_decref(tail);
            return NULL;
        }
    }

    return tail;
}


/* -- answers ----------------------------------------------------------- */


json_t *
tidal_room_get_state(tidal_room_t *room, const char *ghci, json_t *scheduler)
{
    json_t  *structured;

    structured = json_pack("{s:O, s:o, s:I, s:s}",
                           "channels", room->channels,
                           "tempo", tidal_room_tempo(room),
                           "seq", (json_int_t) room->seq,
                           "ghci", ghci);

    if (structured && scheduler
        && json_object_set(structured, "scheduler", scheduler) != 0)
    {
        json_decref(structured);
        return NULL;
    }

    return tidal_tools_result_structured(structured);
}


json_t *
tidal_room_get_history(tidal_room_t *room, size_t limit)
{
    return tidal_tools_result_structured(
               json_pack("{s:o*}", "history",
                         tidal_room_history_tail(room, limit)));
}


json_t *
tidal_room_resource(tidal_room_t *room, int resource)
{
    if (resource >= 1 && resource <= TIDAL_MCP_CHANNELS) {
        return tidal_room_channel_state(room, resource);
    }

    switch (resource) {

    case TIDAL_MCP_RESOURCE_STATE:
        return json_pack("{s:O, s:o, s:I}",
                         "channels", room->channels,
                         "tempo", tidal_room_tempo(room),
                         "seq", (json_int_t) room->seq);

    case TIDAL_MCP_RESOURCE_HISTORY:
        return json_pack("{s:o*}", "history",
                         tidal_room_history_tail(room,
                                                 TIDAL_ROOM_HISTORY_MAX));

    default:
        return NULL;
    }
}


/* everything a client needs to show the room, numbered as its last event */

json_t *
tidal_room_restore(tidal_room_t *room, size_t history, int64_t timestamp)
{
    return json_pack("{s:s, s:I, s:I, s:O, s:o, s:o*}",
                     "type", "session_restore",
                     "seq", (json_int_t) room->seq,
                     "timestamp", (json_int_t) timestamp,
                     "channels", room->channels,
                     "tempo", tidal_room_tempo(room),
                     "history", tidal_room_history_tail(room, history));
}
