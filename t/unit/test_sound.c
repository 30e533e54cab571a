/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The room's sound as JSON (src/helper/tidal_sound.c): every OSC type a
 * value can have, floats in their shortest form, names and strings that
 * are not UTF-8 left out, the channel from tidalch, the params in the
 * order Tidal sent them, the heartbeat and timeless plays skipped, and
 * one batch per take.
 */

#include <stdint.h>

#include "unit.h"
#include "osc_packet.h"
#include "tidal_sound.h"


#define BEAT   "tidal-helper-heartbeat-"

/* bundle_head()'s timetag, 0xe8000000.12345678, as Unix time */
#define TIME   "1683325312.071111"

#define HEAD                                                                 \
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tidal/sound\","         \
    "\"params\":{\"type\":\"sound\",\"events\":["
#define TAIL   "]}}"


static void
put_f64(packet_t *pk, double d)
{
    uint64_t  u;

    memcpy(&u, &d, 8);
    put_u32(pk, (uint32_t) (u >> 32));
    put_u32(pk, (uint32_t) u);
}


/* a bundle around one message */
static void
bundled(packet_t *pk, const packet_t *msg)
{
    memset(pk, 0, sizeof(packet_t));
    bundle_head(pk);
    put_element(pk, msg);
}


/* the batch's text after adding the packets, or "" when take has none */
static const char *
batch(tidal_sound_t *b, const packet_t *pk, size_t n, unsigned *added)
{
    size_t       i, len;
    const char  *text;

    *added = 0;

    for (i = 0; i < n; i++) {
        *added += tidal_sound_add(b, pk[i].data, pk[i].len);
    }

    text = tidal_sound_take(b, &len);

    if (text == NULL) {
        return "";
    }

    CHECK_EQ(strlen(text), len);

    return text;
}


UNIT_TEST(every_value_type)
{
    packet_t       msg, pk;
    unsigned       added;
    tidal_sound_t  b;
    unsigned char  blob[4] = { 1, 2, 3, 4 };

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/play");
    put_str(&msg, ",sssfsisisfshsdsdsTsFsNsbsfsSsfsdsc");
    put_str(&msg, "s");
    put_str(&msg, "bd");
    put_str(&msg, "gain");
    put_f32(&msg, 1.1f);            /* 1.1, not 1.10000002384186 */
    put_str(&msg, "orbit");
    put_u32(&msg, 0);
    put_str(&msg, "tidalch");       /* the channel, not a param */
    put_u32(&msg, 2);
    put_str(&msg, "n");
    put_f32(&msg, 3.0f);
    put_str(&msg, "big");
    put_u32(&msg, 0x100);           /* 2^40 */
    put_u32(&msg, 0);
    put_str(&msg, "third");
    put_f64(&msg, 1.0 / 3);
    put_str(&msg, "tenth");
    put_f64(&msg, 0.1);
    put_str(&msg, "yes");
    put_str(&msg, "no");
    put_str(&msg, "nothing");
    put_str(&msg, "blob");          /* no JSON for it: left out */
    put_u32(&msg, 4);
    put_bytes(&msg, blob, 4);
    put_str(&msg, "tiny");
    put_f32(&msg, 1e-7f);
    put_str(&msg, "sym");
    put_str(&msg, "arpy");
    put_str(&msg, "neg");
    put_f32(&msg, -0.25f);
    put_str(&msg, "inf");
    put_f64(&msg, 1.0 / 0.0);
    put_str(&msg, "char");          /* 'c': left out */
    put_u32(&msg, 'x');

    bundled(&pk, &msg);

    tidal_sound_init(&b, BEAT);
    CHECK_STR(batch(&b, &pk, 1, &added),
              HEAD "{\"time\":" TIME ",\"channel\":\"d2\",\"params\":{"
              "\"s\":\"bd\",\"gain\":1.1,\"orbit\":0,\"n\":3.0,"
              "\"big\":1099511627776,\"third\":0.3333333333333333,"
              "\"tenth\":0.1,\"yes\":true,\"no\":false,\"nothing\":null,"
              "\"tiny\":1e-07,\"sym\":\"arpy\",\"neg\":-0.25,"
              "\"inf\":null}}" TAIL);
    CHECK_EQ(added, 1);
    tidal_sound_free(&b);
}


UNIT_TEST(negative_and_large_integers)
{
    packet_t       msg, pk;
    unsigned       added;
    tidal_sound_t  b;

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/play");
    put_str(&msg, ",sisisf");
    put_str(&msg, "a");
    put_u32(&msg, (uint32_t) -5);
    put_str(&msg, "b");
    put_u32(&msg, 0x7fffffff);
    put_str(&msg, "c");
    put_f32(&msg, 16777216.0f);

    bundled(&pk, &msg);

    tidal_sound_init(&b, NULL);
    CHECK_STR(batch(&b, &pk, 1, &added),
              HEAD "{\"time\":" TIME ",\"params\":{"
              "\"a\":-5,\"b\":2147483647,\"c\":16777216.0}}" TAIL);
    tidal_sound_free(&b);
}


UNIT_TEST(text_that_is_not_utf8_is_dropped)
{
    packet_t       msg, pk;
    unsigned       added;
    tidal_sound_t  b;

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/play");
    put_str(&msg, ",sssssssssssi");
    put_str(&msg, "s");
    put_str(&msg, "caf\xc3\xa9");           /* UTF-8: kept as is */
    put_str(&msg, "vowel");
    put_str(&msg, "\xff\xfe");              /* not UTF-8: dropped */
    put_str(&msg, "cut");
    put_str(&msg, "a\xe2\x82");             /* a cut sequence: dropped */
    put_str(&msg, "quote");
    put_str(&msg, "a\"b\\c\x01");           /* escaped */
    put_str(&msg, "na\xefme");              /* a name not UTF-8: dropped */
    put_str(&msg, "x");
    put_str(&msg, "orbit");
    put_u32(&msg, 1);

    bundled(&pk, &msg);

    tidal_sound_init(&b, BEAT);
    CHECK_STR(batch(&b, &pk, 1, &added),
              HEAD "{\"time\":" TIME ",\"params\":{"
              "\"s\":\"caf\xc3\xa9\",\"quote\":\"a\\\"b\\\\c\\u0001\","
              "\"orbit\":1}}" TAIL);
    tidal_sound_free(&b);
}


UNIT_TEST(channel_from_tidalch)
{
    size_t         i;
    packet_t       msg[6], pk[6];
    unsigned       added;
    tidal_sound_t  b;

    static const struct {
        const char  *tags;
        uint32_t     first, second;
    } cases[6] = {
        { ",sisi", 16, 3 },     /* the first counts */
        { ",si", 17, 0 },       /* not a channel */
        { ",si", 0, 0 },
        { ",sf", 0, 0 },        /* not an integer: no channel */
        { ",sisi", 0, 4 },      /* the first was none: the second counts */
        { ",ss", 0, 0 },        /* a string: no channel */
    };

    tidal_sound_init(&b, BEAT);

    for (i = 0; i < 6; i++) {
        memset(&msg[i], 0, sizeof(packet_t));
        put_str(&msg[i], "/dirt/play");
        put_str(&msg[i], cases[i].tags);
        put_str(&msg[i], "tidalch");

        if (cases[i].tags[2] == 'f') {
            put_f32(&msg[i], 2.0f);

        } else if (cases[i].tags[2] == 's') {
            put_str(&msg[i], "d5");

        } else {
            put_u32(&msg[i], cases[i].first);
        }

        if (strlen(cases[i].tags) == 5) {
            put_str(&msg[i], "tidalch");
            put_u32(&msg[i], cases[i].second);
        }

        bundled(&pk[i], &msg[i]);
    }

    /* tidalch is never a param, whatever its type */

    CHECK_STR(batch(&b, pk, 6, &added),
              HEAD "{\"time\":" TIME ",\"channel\":\"d16\",\"params\":{}},"
              "{\"time\":" TIME ",\"params\":{}},"
              "{\"time\":" TIME ",\"params\":{}},"
              "{\"time\":" TIME ",\"params\":{}},"
              "{\"time\":" TIME ",\"channel\":\"d4\",\"params\":{}},"
              "{\"time\":" TIME ",\"params\":{}}" TAIL);
    CHECK_EQ(added, 6);
    tidal_sound_free(&b);
}


UNIT_TEST(order_and_pairs)
{
    packet_t       msg, pk;
    unsigned       added;
    tidal_sound_t  b;

    /*
     * The params in Tidal's order, not sorted; a pair whose name is not
     * a string is skipped whole; an odd name at the end has no value
     */

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/play");
    put_str(&msg, ",sfsfiisssfs");
    put_str(&msg, "speed");
    put_f32(&msg, 2.0f);
    put_str(&msg, "cutoff");
    put_f32(&msg, 2000.0f);
    put_u32(&msg, 7);               /* a name that is a number */
    put_u32(&msg, 8);
    put_str(&msg, "s");
    put_str(&msg, "sn");
    put_str(&msg, "pan");
    put_f32(&msg, 0.8f);
    put_str(&msg, "lonely");

    bundled(&pk, &msg);

    tidal_sound_init(&b, BEAT);
    CHECK_STR(batch(&b, &pk, 1, &added),
              HEAD "{\"time\":" TIME ",\"params\":{"
              "\"speed\":2.0,\"cutoff\":2000.0,\"s\":\"sn\",\"pan\":0.8}}" TAIL);
    tidal_sound_free(&b);
}


UNIT_TEST(what_is_not_a_sound)
{
    size_t         i;
    packet_t       msg, pk[4];
    unsigned       added;
    tidal_sound_t  b;

    tidal_sound_init(&b, BEAT);

    /* the helper's heartbeat is not the room's */

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/play");
    put_str(&msg, ",ss");
    put_str(&msg, "s");
    put_str(&msg, BEAT "0123456789abcdef");
    bundled(&pk[0], &msg);

    /* another address */

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/handshake");
    put_str(&msg, ",ss");
    put_str(&msg, "s");
    put_str(&msg, "bd");
    bundled(&pk[1], &msg);

    /* a play outside a bundle: no time */

    memset(&pk[2], 0, sizeof(packet_t));
    put_str(&pk[2], "/dirt/play");
    put_str(&pk[2], ",ss");
    put_str(&pk[2], "s");
    put_str(&pk[2], "bd");

    /* a play whose arguments are cut */

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/play");
    put_str(&msg, ",sssf");
    put_str(&msg, "s");
    put_str(&msg, "bd");
    put_str(&msg, "gain");          /* and no float after it */
    bundled(&pk[3], &msg);

    for (i = 0; i < 4; i++) {
        CHECK_STR(batch(&b, &pk[i], 1, &added), "");
        CHECK_EQ(added, 0);
    }

    /* without a prefix to skip, the heartbeat is a sound like any */

    tidal_sound_free(&b);
    tidal_sound_init(&b, NULL);
    CHECK_STR(batch(&b, pk, 1, &added),
              HEAD "{\"time\":" TIME ",\"params\":{\"s\":\"" BEAT
              "0123456789abcdef\"}}" TAIL);
    tidal_sound_free(&b);
}


UNIT_TEST(one_batch_per_take)
{
    size_t         i;
    packet_t       msg, pk, two;
    unsigned       added;
    tidal_sound_t  b;
    const char    *text;

    memset(&msg, 0, sizeof(msg));
    put_str(&msg, "/dirt/play");
    put_str(&msg, ",ss");
    put_str(&msg, "s");
    put_str(&msg, "hh");

    /* two plays in one bundle: two events in one batch */

    memset(&two, 0, sizeof(two));
    bundle_head(&two);
    put_element(&two, &msg);
    put_element(&two, &msg);

    tidal_sound_init(&b, BEAT);
    CHECK_STR(batch(&b, &two, 1, &added),
              HEAD "{\"time\":" TIME ",\"params\":{\"s\":\"hh\"}},"
              "{\"time\":" TIME ",\"params\":{\"s\":\"hh\"}}" TAIL);
    CHECK_EQ(added, 2);

    /* a take empties it; an empty batch is no text */

    CHECK_STR(batch(&b, NULL, 0, &added), "");

    /* a large batch grows the buffer and stays whole */

    bundled(&pk, &msg);

    for (i = 0; i < 500; i++) {
        CHECK_EQ(tidal_sound_add(&b, pk.data, pk.len), 1);
    }

    text = batch(&b, NULL, 0, &added);
    CHECK(strncmp(text, HEAD, sizeof(HEAD) - 1) == 0);
    CHECK(strcmp(text + strlen(text) - 3, TAIL) == 0);
    CHECK_EQ(strlen(text), sizeof(HEAD) - 1 + sizeof(TAIL) - 1
             + 500 * strlen("{\"time\":" TIME ",\"params\":{\"s\":\"hh\"}}")
             + 499);

    tidal_sound_free(&b);
}


int
main(void)
{
    UNIT_RUN(every_value_type);
    UNIT_RUN(negative_and_large_integers);
    UNIT_RUN(text_that_is_not_utf8_is_dropped);
    UNIT_RUN(channel_from_tidalch);
    UNIT_RUN(order_and_pairs);
    UNIT_RUN(what_is_not_a_sound);
    UNIT_RUN(one_batch_per_take);

    return unit_done("sound");
}
