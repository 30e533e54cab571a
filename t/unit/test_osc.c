/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The relay's OSC reader: Tidal's bundles are counted right (plays, the
 * heartbeat's sound, the tempo, a handshake, the channel a play's tidalch
 * names), every argument type is
 * stepped over, and cut or malformed packets are refused without reading
 * past their end.  The writer (--play's bundles): the bytes SuperDirt
 * reads, read back by the reader, never past the buffer.
 */

#include <stdint.h>

#include "unit.h"
#include "osc_packet.h"
#include "tidal_osc.h"


#define BEAT    "tidal-helper-heartbeat-"
#define SECRET  "0123456789abcdef"


/* /dirt/play s=<sound> cps=<cps> orbit=0 cycle=12.5, as Tidal sends it */
static void
dirt_play(packet_t *pk, const char *sound, float cps)
{
    put_str(pk, "/dirt/play");
    put_str(pk, ",sssfsisf");
    put_str(pk, "s");
    put_str(pk, sound);
    put_str(pk, "cps");
    put_f32(pk, cps);
    put_str(pk, "orbit");
    put_u32(pk, 0);
    put_str(pk, "cycle");
    put_f32(pk, 12.5f);
}


/* /dirt/play s=<sound> then tidalch=<ch> with the type tag given */
static void
dirt_play_ch(packet_t *pk, const char *sound, char tag, int32_t ch)
{
    char  tags[8];

    snprintf(tags, sizeof(tags), ",sssss%c", tag);

    put_str(pk, "/dirt/play");
    put_str(pk, tags);
    put_str(pk, "s");
    put_str(pk, sound);
    put_str(pk, "orbit");
    put_str(pk, "not a number");
    put_str(pk, "tidalch");

    if (tag == 'f') {
        put_f32(pk, (float) ch);

    } else {
        put_u32(pk, (uint32_t) ch);
    }
}


/* a bundle around one /dirt/play */
static void
tidal_bundle(packet_t *pk, const char *sound, float cps)
{
    packet_t  msg;

    memset(&msg, 0, sizeof(msg));
    dirt_play(&msg, sound, cps);

    bundle_head(pk);
    put_u32(pk, (uint32_t) msg.len);
    put_bytes(pk, msg.data, msg.len);
}


UNIT_TEST(tidal_play)
{
    packet_t     pk;
    tidal_osc_t  osc;

    memset(&pk, 0, sizeof(pk));
    tidal_bundle(&pk, "bd", 2.0f);

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.messages, 1);
    CHECK_EQ(osc.plays, 1);
    CHECK_EQ(osc.sounds, 0);
    CHECK_EQ(osc.handshake, 0);

    /* a pattern's own tempo and cycle are not read: they are its to say */

    CHECK(osc.cps == 0);
    CHECK(osc.cycle == -1);
    CHECK(osc.time == 0);
}


UNIT_TEST(heartbeat)
{
    packet_t     pk;
    tidal_osc_t  osc;

    memset(&pk, 0, sizeof(pk));
    tidal_bundle(&pk, BEAT SECRET, 0.5625f);

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.messages, 1);
    CHECK_EQ(osc.sounds, 1);
    CHECK(osc.cps == 0.5625);
    CHECK(osc.cycle == 12.5);
    CHECK(osc.time == 0xe800000012345678ULL);
    CHECK_EQ(osc.rest_len, sizeof(SECRET) - 1);
    CHECK(memcmp(osc.rest, SECRET, sizeof(SECRET) - 1) == 0);

    /* a sound that is not the prefix (or is shorter) is not it */

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT "x", &osc), 0);
    CHECK_EQ(osc.sounds, 0);
    CHECK(osc.rest == NULL);

    memset(&pk, 0, sizeof(pk));
    tidal_bundle(&pk, "tidal-helper", 0.5625f);
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.sounds, 0);
}


UNIT_TEST(mixed_bundle)
{
    packet_t     pk, a, b;
    tidal_osc_t  osc;

    memset(&pk, 0, sizeof(pk));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    dirt_play(&a, BEAT SECRET, 1.0f);
    tidal_bundle(&b, "sn", 1.5f);   /* a nested bundle */

    bundle_head(&pk);
    put_u32(&pk, (uint32_t) a.len);
    put_bytes(&pk, a.data, a.len);
    put_u32(&pk, (uint32_t) b.len);
    put_bytes(&pk, b.data, b.len);

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.messages, 2);
    CHECK_EQ(osc.plays, 2);
    CHECK_EQ(osc.sounds, 1);
    CHECK(osc.cps == 1.0);
    CHECK(osc.time == 0xe800000012345678ULL);
}


UNIT_TEST(handshake_and_other_messages)
{
    packet_t     pk;
    tidal_osc_t  osc;

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/dirt/handshake");
    put_str(&pk, ",");

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.messages, 1);
    CHECK_EQ(osc.plays, 0);
    CHECK_EQ(osc.handshake, 1);

    /* no type tags at all is OSC too */

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/dirt/handshake");
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.handshake, 1);

    /* s = the sound outside /dirt/play does not count */

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/other");
    put_str(&pk, ",ss");
    put_str(&pk, "s");
    put_str(&pk, BEAT SECRET);
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.messages, 1);
    CHECK_EQ(osc.sounds, 0);
}


UNIT_TEST(every_argument_type)
{
    packet_t       pk;
    tidal_osc_t    osc;
    uint64_t       u;
    double         d;
    unsigned char  blob[5] = { 1, 2, 3, 4, 5 };

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/dirt/play");
    put_str(&pk, ",sbshsdsTsFsNsIsisSscsrsmstss");
    put_str(&pk, "b");
    put_u32(&pk, 5);
    put_bytes(&pk, blob, 5);
    put_bytes(&pk, "\0\0\0", 3);
    put_str(&pk, "h");
    put_u32(&pk, 1);
    put_u32(&pk, 2);
    put_str(&pk, "cps");
    d = 0.75;
    memcpy(&u, &d, 8);
    put_u32(&pk, (uint32_t) (u >> 32));
    put_u32(&pk, (uint32_t) u);
    put_str(&pk, "T");
    put_str(&pk, "F");
    put_str(&pk, "N");
    put_str(&pk, "I");
    put_str(&pk, "i");
    put_u32(&pk, 7);
    put_str(&pk, "S");
    put_str(&pk, "symbol");
    put_str(&pk, "c");
    put_u32(&pk, 'x');
    put_str(&pk, "r");
    put_u32(&pk, 0xff0000ff);
    put_str(&pk, "m");
    put_u32(&pk, 0x90403c00);
    put_str(&pk, "t");
    put_u32(&pk, 0);
    put_u32(&pk, 1);
    put_str(&pk, "s");
    put_str(&pk, BEAT SECRET);

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.sounds, 1);
    CHECK(osc.cps == 0.75);
    CHECK(osc.time == 0);           /* a message alone has no time */
}


UNIT_TEST(channel_stamp)
{
    size_t       i;
    unsigned     sum;
    packet_t     pk, el[8];
    tidal_osc_t  osc;

    memset(&pk, 0, sizeof(pk));
    memset(el, 0, sizeof(el));

    dirt_play_ch(&el[0], "bd", 'i', 3);
    dirt_play_ch(&el[1], "sn", 'i', 16);
    dirt_play_ch(&el[2], "hh", 'i', 16);
    dirt_play_ch(&el[3], "cp", 'i', 17);       /* not a channel */
    dirt_play_ch(&el[4], "cp", 'i', 0);
    dirt_play_ch(&el[5], "cp", 'f', 2);        /* not an integer */
    dirt_play(&el[6], "arpy", 1.0f);           /* no stamp */

    /* two stamps: the first counts */
    dirt_play_ch(&el[7], "bd", 'i', 1);
    el[7].len = 0;
    put_str(&el[7], "/dirt/play");
    put_str(&el[7], ",sisi");
    put_str(&el[7], "tidalch");
    put_u32(&el[7], 1);
    put_str(&el[7], "tidalch");
    put_u32(&el[7], 2);

    bundle_head(&pk);

    for (i = 0; i < 8; i++) {
        put_element(&pk, &el[i]);
    }

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.plays, 8);
    CHECK_EQ(osc.channel_plays[0], 4);
    CHECK_EQ(osc.channel_plays[1], 1);
    CHECK_EQ(osc.channel_plays[2], 0);
    CHECK_EQ(osc.channel_plays[3], 1);
    CHECK_EQ(osc.channel_plays[16], 2);

    sum = 0;

    for (i = 0; i <= TIDAL_OSC_CHANNELS; i++) {
        sum += osc.channel_plays[i];
    }

    CHECK_EQ(sum, osc.plays);

    /* outside /dirt/play a tidalch names nothing */

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/other");
    put_str(&pk, ",si");
    put_str(&pk, "tidalch");
    put_u32(&pk, 5);

    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), 0);
    CHECK_EQ(osc.channel_plays[0], 0);
    CHECK_EQ(osc.channel_plays[5], 0);
}


UNIT_TEST(malformed)
{
    size_t       i;
    packet_t     pk, deep;
    tidal_osc_t  osc;

    /* every cut of a good packet: refused or read within its end */

    memset(&pk, 0, sizeof(pk));
    tidal_bundle(&pk, BEAT, 2.0f);

    for (i = 0; i < pk.len; i++) {
        unsigned char  *copy;

        copy = malloc(i ? i : 1);
        memcpy(copy, pk.data, i);
        (void) tidal_osc_scan(copy, i, BEAT, &osc);
        CHECK(osc.sounds == 0);
        free(copy);
    }

    CHECK_EQ(tidal_osc_scan((const unsigned char *) "", 0, BEAT, &osc), -1);

    /* an element larger than the bundle, or empty */

    memset(&pk, 0, sizeof(pk));
    bundle_head(&pk);
    put_u32(&pk, 64);
    put_str(&pk, "/x");
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), -1);

    memset(&pk, 0, sizeof(pk));
    bundle_head(&pk);
    put_u32(&pk, 0);
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), -1);

    /* no address, an unknown type tag, tags without their comma */

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "dirt/play");
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), -1);

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/dirt/play");
    put_str(&pk, ",sQ");
    put_str(&pk, "s");
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), -1);

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/dirt/play");
    put_str(&pk, "ss");
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), -1);

    /* a blob longer than the packet */

    memset(&pk, 0, sizeof(pk));
    put_str(&pk, "/dirt/play");
    put_str(&pk, ",b");
    put_u32(&pk, 0xfffffffe);
    CHECK_EQ(tidal_osc_scan(pk.data, pk.len, BEAT, &osc), -1);

    /* bundles nested 8 deep are read, 9 deep are not */

    memset(&deep, 0, sizeof(deep));
    dirt_play(&deep, BEAT, 1.0f);

    for (i = 0; i < 9; i++) {
        memset(&pk, 0, sizeof(pk));
        bundle_head(&pk);
        put_u32(&pk, (uint32_t) deep.len);
        put_bytes(&pk, deep.data, deep.len);
        deep = pk;

        CHECK_EQ(tidal_osc_scan(deep.data, deep.len, BEAT, &osc),
                 i < 8 ? 0 : -1);
    }
}


UNIT_TEST(write_bundle)
{
    size_t           n, i;
    uint64_t         t;
    tidal_osc_t      osc;
    unsigned char    buf[256];
    tidal_osc_arg_t  args[6];

    static const unsigned char  want[] =
        "#bundle\0" "\x83\xaa\x7e\x80" "\x80\x00\x00\x00"
        "\x00\x00\x00\x30"
        "/dirt/play\0\0" ",sssisf\0"
        "s\0\0\0" "bd\0\0"
        "tidalch\0" "\x00\x00\x00\x02"
        "n\0\0\0" "\x3f\xc0\x00\x00";

    /* 1970 + 0.5 s: 2208988800 = 0x83aa7e80 */
    t = tidal_osc_timetag(0.5);
    CHECK(t == ((uint64_t) 0x83aa7e80 << 32 | 0x80000000));

    /* 1 ms apart is 2^32 / 1000 apart */
    t = tidal_osc_timetag(1700000000.001) - tidal_osc_timetag(1700000000.0);
    CHECK(t > 4294967 - 2000 && t < 4294967 + 2000);

    args[0].type = 's';
    args[0].s = "s";
    args[0].len = 1;
    args[1].type = 's';
    args[1].s = "bd";
    args[1].len = 2;
    args[2].type = 's';
    args[2].s = "tidalch";
    args[2].len = 7;
    args[3].type = 'i';
    args[3].d = 2;
    args[4].type = 's';
    args[4].s = "n";
    args[4].len = 1;
    args[5].type = 'f';
    args[5].d = 1.5;

    n = tidal_osc_write_bundle(buf, sizeof(buf), tidal_osc_timetag(0.5),
                               "/dirt/play", args, 6);

    CHECK_EQ(n, sizeof(want) - 1);
    CHECK_MEM(buf, want, sizeof(want) - 1);

    CHECK_EQ(tidal_osc_scan(buf, n, "b", &osc), 0);
    CHECK_EQ(osc.plays, 1);
    CHECK_EQ(osc.sounds, 1);
    CHECK_EQ(osc.channel_plays[2], 1);
    CHECK(osc.time == tidal_osc_timetag(0.5));

    /* too small, at every length: 0, and nothing written past it */

    for (i = 0; i < n; i++) {
        memset(buf, 0xee, sizeof(buf));
        CHECK_EQ(tidal_osc_write_bundle(buf, i, 0, "/dirt/play", args, 6),
                 0);
        CHECK(buf[i] == 0xee);
    }

    args[1].type = 'x';
    CHECK_EQ(tidal_osc_write_bundle(buf, sizeof(buf), 0, "/dirt/play", args,
                                    6),
             0);
}


int
main(void)
{
    UNIT_RUN(tidal_play);
    UNIT_RUN(heartbeat);
    UNIT_RUN(mixed_bundle);
    UNIT_RUN(handshake_and_other_messages);
    UNIT_RUN(every_argument_type);
    UNIT_RUN(channel_stamp);
    UNIT_RUN(malformed);
    UNIT_RUN(write_bundle);

    return unit_done("osc");
}
