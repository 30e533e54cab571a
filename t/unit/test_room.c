/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Unit tests of the room model: channels, events and their numbers, the
 * history ring, and the answers built from them, which must not depend on
 * whether the room numbered its events itself (tidal-helper --stdio) or
 * was read back from the zone's texts (a worker).
 */

#include <string.h>
#include <jansson.h>

#include "unit.h"
#include "tidal_room.h"


#define TS  1764108000123LL


static json_t *
structured(json_t *result)
{
    return json_object_get(result, "structuredContent");
}


static json_t *
parse(const char *text, size_t len)
{
    return json_loadb(text, len, 0, NULL);
}


/* json_equal(a, b), b stolen */

static int
same(json_t *a, json_t *b)
{
    int  eq;

    eq = json_equal(a, b);
    json_decref(b);

    return eq;
}


/* an event through the room; its notification parsed */

static json_t *
event(tidal_room_t *room, const char *type, json_t *fields, uint64_t *seq)
{
    char    *text;
    size_t   len;
    json_t  *msg;

    text = tidal_room_event(room, type, fields, TS, seq, &len);
    if (text == NULL) {
        return NULL;
    }

    CHECK_EQ(strlen(text), len);

    msg = parse(text, len);
    free(text);

    return msg;
}


UNIT_TEST(an_empty_room)
{
    json_t        *r, *sc, *sched;
    tidal_room_t   room;

    CHECK_EQ(tidal_room_init(&room), 0);

    r = tidal_room_get_state(&room, "running", NULL);
    sc = structured(r);
    CHECK_EQ(json_object_size(json_object_get(sc, "channels")), 0);
    CHECK(same(json_object_get(sc, "tempo"),
               json_pack("{s:f, s:f}", "cps", 0.5625, "bpm", 135.0)));
    CHECK_EQ(json_integer_value(json_object_get(sc, "seq")), 0);
    CHECK_STR(json_string_value(json_object_get(sc, "ghci")), "running");
    CHECK(json_object_get(sc, "scheduler") == NULL);
    CHECK(json_is_false(json_object_get(r, "isError")));
    json_decref(r);

    sched = json_pack("{s:i}", "heartbeats", 3);
    r = tidal_room_get_state(&room, "booting", sched);
    CHECK(json_equal(json_object_get(structured(r), "scheduler"), sched));
    json_decref(r);
    json_decref(sched);

    r = tidal_room_get_history(&room, 50);
    CHECK_EQ(json_array_size(json_object_get(structured(r), "history")), 0);
    json_decref(r);

    tidal_room_free(&room);
}


UNIT_TEST(channels_silent_muted_soloed)
{
    json_t        *st;
    tidal_room_t   room;

    CHECK_EQ(tidal_room_init(&room), 0);

    CHECK_EQ(tidal_room_channel_set(&room, 3, "sound \"bd\"", 0, 0), 0);
    st = tidal_room_channel_state(&room, 3);
    CHECK_STR(json_string_value(json_object_get(st, "pattern")),
              "sound \"bd\"");
    CHECK(json_is_false(json_object_get(st, "muted")));
    json_decref(st);

    /* silent and muted: kept, with "silence", shown as null */

    CHECK_EQ(tidal_room_channel_set(&room, 3, NULL, 1, 0), 0);
    CHECK_STR(json_string_value(json_object_get(tidal_room_channel(&room, 3),
                                                "pattern")), "silence");
    st = tidal_room_channel_state(&room, 3);
    CHECK(json_is_null(json_object_get(st, "pattern")));
    CHECK(json_is_true(json_object_get(st, "muted")));
    json_decref(st);

    /* silent and nothing else: gone */

    CHECK_EQ(tidal_room_channel_set(&room, 3, "silence", 0, 0), 0);
    CHECK(tidal_room_channel(&room, 3) == NULL);
    CHECK_EQ(json_object_size(room.channels), 0);

    st = tidal_room_channel_state(&room, 16);
    CHECK(same(st, json_pack("{s:n, s:b, s:b}", "pattern", "muted", 0,
                             "soloed", 0)));
    json_decref(st);

    tidal_room_free(&room);
}


UNIT_TEST(events_are_numbered_and_the_history_keeps_the_music)
{
    char           *text;
    size_t          len;
    json_t         *msg, *p, *r, *h;
    uint64_t        seq;
    tidal_room_t    room;
    static const char  expect[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tidal/pattern_eval\","
        "\"params\":{\"type\":\"pattern_eval\",\"seq\":2,"
        "\"timestamp\":1764108000123,\"channel\":\"d1\","
        "\"pattern\":\"sound \\\"bd\\\"\",\"who\":\"alice\",\"ok\":true,"
        "\"error\":null}}";

    CHECK_EQ(tidal_room_init(&room), 0);

    msg = event(&room, "pattern_update",
                json_pack("{s:s, s:s, s:s}", "channel", "d1",
                          "pattern", "sound \"bd\"", "who", "alice"), &seq);
    CHECK_EQ(seq, 1);
    CHECK_STR(json_string_value(json_object_get(msg, "method")),
              "notifications/tidal/pattern_update");
    json_decref(msg);

    text = tidal_room_event(&room, "pattern_eval",
                            json_pack("{s:s, s:s, s:s, s:b, s:n}",
                                      "channel", "d1",
                                      "pattern", "sound \"bd\"",
                                      "who", "alice", "ok", 1, "error"),
                            TS, &seq, &len);
    CHECK_EQ(seq, 2);
    CHECK_EQ(len, sizeof(expect) - 1);
    CHECK_STR(text, expect);
    free(text);

    msg = event(&room, "chat", json_pack("{s:s, s:s}", "who", "bob",
                                         "text", "hi"), &seq);
    CHECK_EQ(seq, 3);
    json_decref(msg);

    msg = event(&room, "tempo_change",
                json_pack("{s:f, s:f, s:s}", "cps", 1.0, "bpm", 240.0,
                          "who", "bob"), &seq);
    p = json_object_get(msg, "params");
    CHECK_EQ(json_integer_value(json_object_get(p, "seq")), 4);
    CHECK_EQ(json_integer_value(json_object_get(p, "timestamp")), TS);
    CHECK_STR(json_string_value(json_object_get(p, "type")), "tempo_change");
    json_decref(msg);

    /* neither pattern_update (pattern_eval says it) nor chat */

    CHECK_EQ(room.nhistory, 2);
    CHECK_EQ(room.seq, 4);

    r = tidal_room_get_history(&room, 50);
    h = json_object_get(structured(r), "history");
    CHECK_EQ(json_array_size(h), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(h, 0),
                                                "type")), "pattern_eval");
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(h, 0),
                                                "seq")), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(h, 0),
                                                "who")), "alice");
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(h, 1),
                                                "seq")), 4);
    json_decref(r);

    r = tidal_room_get_history(&room, 1);
    h = json_object_get(structured(r), "history");
    CHECK_EQ(json_array_size(h), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(h, 0),
                                                "type")), "tempo_change");
    json_decref(r);

    r = tidal_room_get_state(&room, "running", NULL);
    CHECK_EQ(json_integer_value(json_object_get(structured(r), "seq")), 4);
    json_decref(r);

    tidal_room_free(&room);
}


UNIT_TEST(the_history_is_a_ring_of_1000)
{
    int            i;
    size_t         len;
    json_t        *r, *h;
    uint64_t       seq;
    tidal_room_t   room;

    CHECK_EQ(tidal_room_init(&room), 0);

    for (i = 0; i < TIDAL_ROOM_HISTORY_MAX + 5; i++) {
        free(tidal_room_event(&room, "error",
                              json_pack("{s:i}", "message", i), TS, &seq,
                              &len));
    }

    CHECK_EQ(seq, TIDAL_ROOM_HISTORY_MAX + 5);
    CHECK_EQ(room.nhistory, TIDAL_ROOM_HISTORY_MAX);

    r = tidal_room_get_history(&room, 2000);
    h = json_object_get(structured(r), "history");
    CHECK_EQ(json_array_size(h), TIDAL_ROOM_HISTORY_MAX);
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(h, 0),
                                                "seq")), 6);
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(h, 999),
                                                "seq")), 1005);
    json_decref(r);

    CHECK_EQ(tidal_room_history_add(&room, json_string("no")), -1);
    CHECK_EQ(room.nhistory, TIDAL_ROOM_HISTORY_MAX);

    tidal_room_free(&room);
}


UNIT_TEST(event_texts_and_their_params)
{
    char     buf[512];
    size_t   len, params;
    json_t  *p;

    CHECK(tidal_room_event_size("custom", 2) > 0);
    CHECK_EQ(tidal_room_event_size("", 2), 0);
    CHECK_EQ(tidal_room_event_size("a\"b", 2), 0);
    CHECK_EQ(tidal_room_event_size("Chat", 2), 0);
    CHECK_EQ(tidal_room_event_size("abcdefghijklmnopqrstuvwxyz0123456", 2),
             0);
    CHECK(tidal_room_event_size("abcdefghijklmnopqrstuvwxyz012345", 2) > 0);

    /* no fields: no comma; the numbers at their longest fit */

    len = tidal_room_event_write(buf, "ghci_restarted", UINT64_MAX,
                                 INT64_MIN, "{}", 2, &params);
    buf[len] = '\0';
    CHECK(len < tidal_room_event_size("ghci_restarted", 2));
    CHECK_EQ(len, strlen(buf));
    CHECK(buf[len - 2] == '}' && buf[len - 1] == '}');

    /* jansson reads signed 64-bit numbers */

    len = tidal_room_event_write(buf, "ghci_restarted", INT64_MAX,
                                 INT64_MAX, "{}", 2, &params);

    p = parse(buf + params, len - params - 1);
    CHECK(p != NULL);
    CHECK_EQ(json_object_size(p), 3);
    json_decref(p);

    len = tidal_room_event_write(buf, "custom", 7, 9, "{\"data\":{\"a\":1}}",
                                 16, &params);
    buf[len] = '\0';
    CHECK_STR(buf + params - sizeof("\"params\":") + 1,
              "\"params\":{\"type\":\"custom\",\"seq\":7,\"timestamp\":9,"
              "\"data\":{\"a\":1}}}");
    CHECK_EQ(len, strlen(buf));
}


UNIT_TEST(which_channel_an_event_changes)
{
    json_t  *f;

    f = json_pack("{s:s}", "channel", "d3");
    CHECK_EQ(tidal_room_event_channel("pattern_update", f), 3);
    CHECK_EQ(tidal_room_event_channel("channel_state", f), 3);
    CHECK_EQ(tidal_room_event_channel("pattern_eval", f), 0);
    CHECK_EQ(tidal_room_event_channel("error", f), 0);
    json_decref(f);

    f = json_pack("{s:s}", "channel", "d17");
    CHECK_EQ(tidal_room_event_channel("channel_state", f), 0);
    json_decref(f);

    f = json_pack("{s:i}", "channel", 3);
    CHECK_EQ(tidal_room_event_channel("channel_state", f), 0);
    json_decref(f);
}


/*
 * A worker's room is the zone's state text and its history texts, the
 * params of the events the zone numbered: it answers as the room that
 * numbered them did.
 */

UNIT_TEST(a_room_read_back_from_texts_answers_the_same)
{
    int            i, n;
    char          *text, *doc, *texts[8], err[128];
    size_t         len, params, starts[8], lens[8];
    json_t        *state, *a, *b, *entry;
    uint64_t       seq;
    tidal_room_t   own, read;

    CHECK_EQ(tidal_room_init(&own), 0);

    (void) tidal_room_channel_set(&own, 1, "sound \"bd\"", 0, 1);
    (void) tidal_room_channel_set(&own, 2, NULL, 1, 0);
    own.cps = 0.75;

    n = 0;

    for (i = 0; i < 5; i++) {
        text = tidal_room_event(&own, i % 2 ? "pattern_update" : "error",
                                json_pack("{s:s, s:i}", "channel", "d1",
                                          "n", i),
                                TS + i, &seq, &len);

        /* the zone keeps the params of the kept ones as they are */

        if (tidal_room_event_kept(i % 2 ? "pattern_update" : "error")) {
            params = strstr(text, "\"params\":") - text + 9;
            texts[n] = text;
            starts[n] = params;
            lens[n] = len - params - 1;
            n++;

        } else {
            free(text);
        }
    }

    CHECK_EQ(n, 3);

    a = tidal_room_document(&own, 0);
    CHECK_EQ(json_array_size(json_object_get(a, "history")), 0);
    (void) json_object_del(a, "history");
    doc = json_dumps(a, JSON_COMPACT);
    json_decref(a);

    state = tidal_state_parse(doc, strlen(doc), err, sizeof(err));
    CHECK(state != NULL);
    free(doc);

    CHECK_EQ(tidal_room_init(&read), 0);
    CHECK_EQ(tidal_room_load(&read, state), 0);
    json_decref(state);

    for (i = 0; i < n; i++) {
        entry = parse(texts[i] + starts[i], lens[i]);
        CHECK(entry != NULL);
        CHECK_EQ(tidal_room_history_add(&read, entry), 0);
        free(texts[i]);
    }

    read.seq = own.seq;

    a = tidal_room_get_state(&own, "running", NULL);
    b = tidal_room_get_state(&read, "running", NULL);
    CHECK(json_equal(a, b));
    CHECK_EQ(json_object_size(json_object_get(structured(b), "channels")), 2);
    json_decref(a);
    json_decref(b);

    /* the same text too: the same keys in the same order */

    a = tidal_room_get_history(&own, 50);
    b = tidal_room_get_history(&read, 50);
    CHECK(json_equal(a, b));
    CHECK_STR(json_string_value(json_object_get(json_array_get(
                  json_object_get(a, "content"), 0), "text")),
              json_string_value(json_object_get(json_array_get(
                  json_object_get(b, "content"), 0), "text")));
    json_decref(a);
    json_decref(b);

    a = tidal_room_restore(&own, 2, TS);
    b = tidal_room_restore(&read, 2, TS);
    CHECK(json_equal(a, b));
    CHECK_STR(json_string_value(json_object_get(a, "type")),
              "session_restore");
    CHECK_EQ(json_integer_value(json_object_get(a, "seq")), 5);
    CHECK_EQ(json_array_size(json_object_get(a, "history")), 2);
    json_decref(a);
    json_decref(b);

    /* and the whole document, history included, survives a reload */

    a = tidal_room_document(&own, TIDAL_ROOM_HISTORY_MAX);
    doc = json_dumps(a, JSON_COMPACT);
    state = tidal_state_parse(doc, strlen(doc), err, sizeof(err));
    CHECK(json_equal(a, state));
    free(doc);
    json_decref(a);

    CHECK_EQ(tidal_room_load(&read, state), 0);
    CHECK_EQ(read.nhistory, 3);
    json_decref(state);

    tidal_room_free(&own);
    tidal_room_free(&read);
}


int
main(void)
{
    UNIT_RUN(an_empty_room);
    UNIT_RUN(channels_silent_muted_soloed);
    UNIT_RUN(events_are_numbered_and_the_history_keeps_the_music);
    UNIT_RUN(the_history_is_a_ring_of_1000);
    UNIT_RUN(event_texts_and_their_params);
    UNIT_RUN(which_channel_an_event_changes);
    UNIT_RUN(a_room_read_back_from_texts_answers_the_same);

    return unit_done("room");
}
