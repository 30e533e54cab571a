/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Unit tests for the WebSocket codec (src/core/tidal_ws.c): client frames in,
 * events out, byte by byte and in one piece; server frames and handshake.
 */


#include <stdint.h>

#include "tidal_ws.h"
#include "unit.h"


/* the allocation failure test needs malloc to say no instead of dying */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}


#define FIN      0x80
#define TEXT     (FIN | TIDAL_WS_OP_TEXT)
#define CONT     (FIN | TIDAL_WS_OP_CONT)
#define CLOSE    (FIN | TIDAL_WS_OP_CLOSE)
#define PING     (FIN | TIDAL_WS_OP_PING)
#define PONG     (FIN | TIDAL_WS_OP_PONG)

/* length forms for client frames: shortest, or forced 16/64-bit */
#define LEN_MIN  0
#define LEN_16   16
#define LEN_64   64

#define MAX_RECS 64
#define BIG      (1 << 20)


typedef struct {
    tidal_ws_event_type_e   type;
    unsigned                code;
    size_t                  at;      /* input consumed when it came */
    size_t                  len;
    uint8_t                *data;
    const char             *reason;
} rec_t;


static rec_t     recs[MAX_RECS];
static size_t    nrecs;
static uint32_t  rng_state = 0x2545f491;

static const uint8_t  mask_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* each_cut() parses as a client (unmasked server frames) when set */
static int       client_side;


static uint32_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}


/* writes a client frame: header byte b0, masked unless told otherwise */

static size_t
client_frame_raw(uint8_t *buf, unsigned b0, int masked, const void *payload,
    size_t len, int form)
{
    size_t          n, i;
    const uint8_t  *pl;

    pl = payload;
    n = 0;
    buf[n++] = (uint8_t) b0;

    if (form == LEN_MIN && len < 126) {
        buf[n++] = (uint8_t) len;

    } else if (form != LEN_64 && len <= 0xffff) {
        buf[n++] = 126;
        buf[n++] = (uint8_t) (len >> 8);
        buf[n++] = (uint8_t) len;

    } else {
        buf[n++] = 127;

        for (i = 0; i < 8; i++) {
            buf[n++] = (uint8_t) ((uint64_t) len >> (56 - 8 * i));
        }
    }

    if (masked) {
        buf[1] |= 0x80;
        memcpy(&buf[n], mask_key, 4);
        n += 4;
    }

    for (i = 0; i < len; i++) {
        buf[n + i] = masked ? pl[i] ^ mask_key[i & 3] : pl[i];
    }

    return n + len;
}


static size_t
client_frame(uint8_t *buf, unsigned b0, const void *payload, size_t len)
{
    return client_frame_raw(buf, b0, 1, payload, len, LEN_MIN);
}


#define STR_FRAME(buf, b0, s)  client_frame(buf, b0, s, sizeof(s) - 1)


static void
recs_clear(void)
{
    size_t  i;

    for (i = 0; i < nrecs; i++) {
        free(recs[i].data);
    }

    nrecs = 0;
}


/*
 * Parses in with pieces of `chunk` bytes (0: all at once, -1: random),
 * each piece in a buffer of its own so that ASan sees any read past end.
 * Records every event with the input consumed so far.
 */

static void
run(tidal_ws_parser_t *p, const uint8_t *in, size_t n, long chunk)
{
    size_t                  off, len;
    uint8_t                *piece;
    const uint8_t          *pos;
    tidal_ws_event_t        ev;
    tidal_ws_event_type_e   t;

    recs_clear();

    for (off = 0; off < n; off += len) {
        len = (chunk == 0) ? n - off
              : (chunk < 0) ? 1 + rng() % 9 : (size_t) chunk;

        if (len > n - off) {
            len = n - off;
        }

        piece = malloc(len);
        memcpy(piece, &in[off], len);
        pos = piece;

        for ( ;; ) {
            t = tidal_ws_parse(p, &pos, piece + len, &ev);

            if (t == TIDAL_WS_AGAIN) {
                CHECK(pos == piece + len);
                break;
            }

            CHECK(pos >= piece && pos <= piece + len);
            CHECK_EQ(ev.type, t);

            if (nrecs == MAX_RECS) {
                break;
            }

            recs[nrecs].type = t;
            recs[nrecs].code = ev.code;
            recs[nrecs].at = off + (size_t) (pos - piece);
            recs[nrecs].len = ev.len;
            recs[nrecs].reason = ev.reason;
            recs[nrecs].data = malloc(ev.len + 1);
            if (ev.len) {
                memcpy(recs[nrecs].data, ev.data, ev.len);
            }
            nrecs++;

            if (t == TIDAL_WS_FAIL) {
                CHECK(ev.reason != NULL);
                free(piece);
                return;
            }
        }

        free(piece);
    }
}


static void
parser_init(tidal_ws_parser_t *p, size_t max)
{
    if (client_side) {
        tidal_ws_parser_init_client(p, max);

    } else {
        tidal_ws_parser_init(p, max);
    }
}


/* n bytes through a fresh parser in each way of cutting them */

typedef void (*check_fn)(const char *how, tidal_ws_parser_t *p);

static void
each_cut(const uint8_t *in, size_t n, size_t max, check_fn check)
{
    tidal_ws_parser_t  p;

    parser_init(&p, max);
    run(&p, in, n, 0);
    check("one piece", &p);
    tidal_ws_parser_free(&p);

    parser_init(&p, max);
    run(&p, in, n, 1);
    check("byte by byte", &p);
    tidal_ws_parser_free(&p);

    parser_init(&p, max);
    run(&p, in, n, -1);
    check("random pieces", &p);
    tidal_ws_parser_free(&p);
}


static size_t    want_code;
static size_t    want_at;


static void
check_fail(const char *how, tidal_ws_parser_t *p)
{
    const uint8_t     *pos;
    tidal_ws_event_t   ev;

    if (!CHECK(nrecs > 0 && recs[nrecs - 1].type == TIDAL_WS_FAIL)) {
        printf("    (%s)\n", how);
        return;
    }

    if (!CHECK_EQ(recs[nrecs - 1].code, want_code)
        || !CHECK_EQ(recs[nrecs - 1].at, want_at))
    {
        printf("    (%s: %s)\n", how, recs[nrecs - 1].reason);
    }

    /* dead for good, consuming nothing */
    pos = (const uint8_t *) "\x81";
    CHECK_EQ(tidal_ws_parse(p, &pos, pos + 1, &ev), TIDAL_WS_FAIL);
    CHECK_EQ(ev.code, want_code);
    CHECK(ev.reason == recs[nrecs - 1].reason);
    CHECK(*pos == 0x81);
    CHECK(!tidal_ws_parser_busy(p));
    CHECK(p->msg == NULL);
}


/* the failure comes with code after exactly `at` bytes, however cut */

static void
expect_fail(const uint8_t *in, size_t n, size_t max, unsigned code,
    size_t at)
{
    want_code = code;
    want_at = at;
    each_cut(in, n, max, check_fail);
}


typedef struct {
    tidal_ws_event_type_e   type;
    unsigned                code;
    const void             *data;
    size_t                  len;
} want_t;


static const want_t  *want;
static size_t         nwant;


/* the events in want, the last one after all n bytes */

static void
check_events(const char *how, tidal_ws_parser_t *p)
{
    size_t  i;

    if (!CHECK_EQ(nrecs, nwant)) {
        printf("    (%s: %s)\n", how,
               (nrecs && recs[nrecs - 1].reason) ? recs[nrecs - 1].reason
                                                 : "");
        return;
    }

    for (i = 0; i < nwant; i++) {
        if (!CHECK_EQ(recs[i].type, want[i].type)
            || !CHECK_EQ(recs[i].code, want[i].code)
            || !CHECK_EQ(recs[i].len, want[i].len)
            || !CHECK_MEM(recs[i].data, want[i].data, want[i].len))
        {
            printf("    (%s, event %zu)\n", how, i);
        }
    }

    if (nwant > 0) {
        CHECK_EQ(recs[nwant - 1].at, want_at);
    }

    CHECK(!tidal_ws_parser_busy(p));
}


static void
expect_events(const uint8_t *in, size_t n, size_t max, const want_t *w,
    size_t nw)
{
    want = w;
    nwant = nw;
    want_at = n;
    each_cut(in, n, max, check_events);
}


static void
expect_text(const uint8_t *in, size_t n, size_t max, const void *text,
    size_t len)
{
    want_t  w;

    w.type = TIDAL_WS_TEXT;
    w.code = 0;
    w.data = text;
    w.len = len;

    expect_events(in, n, max, &w, 1);
}


/* fills len bytes of text mixing 1- to 4-byte code points */

static void
fill_text(uint8_t *buf, size_t len)
{
    size_t  i, k;

    static const char  *cps[] = { "a", "\xc3\xa9", "\xe2\x82\xac",
                                  "\xf0\x9f\x8e\xb5", "z" };

    i = 0;

    while (i < len) {
        k = rng() % 5;

        if (i + strlen(cps[k]) > len) {
            k = 0;
        }

        memcpy(&buf[i], cps[k], strlen(cps[k]));
        i += strlen(cps[k]);
    }
}


UNIT_TEST(text_frame)
{
    uint8_t  buf[64];
    size_t   n;

    n = STR_FRAME(buf, TEXT, "hello");
    expect_text(buf, n, 100, "hello", 5);

    n = STR_FRAME(buf, TEXT, "Gr\xc3\xbc\xc3\x9f \xf0\x9f\x8e\xb5");
    expect_text(buf, n, 100, "Gr\xc3\xbc\xc3\x9f \xf0\x9f\x8e\xb5", 11);
}


UNIT_TEST(payload_sizes)
{
    size_t    i, n, hl;
    uint8_t  *text, *buf;

    static const size_t  sizes[] = { 0, 1, 125, 126, 127, 65535, 65536,
                                     100000 };

    text = malloc(100000);
    buf = malloc(100000 + TIDAL_WS_MAX_HEADER);

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        fill_text(text, sizes[i]);
        n = client_frame(buf, TEXT, text, sizes[i]);

        hl = (sizes[i] < 126) ? 6 : (sizes[i] <= 0xffff) ? 8 : 14;
        CHECK_EQ(n, hl + sizes[i]);
        CHECK_EQ(buf[1] & 0x7f, (sizes[i] < 126) ? sizes[i]
                                : (sizes[i] <= 0xffff) ? 126 : 127);

        expect_text(buf, n, BIG, text, sizes[i]);

        /* exactly at the limit is still allowed */
        expect_text(buf, n, sizes[i], text, sizes[i]);
    }

    free(text);
    free(buf);
}


UNIT_TEST(non_minimal_lengths_accepted)
{
    size_t   n;
    uint8_t  buf[64];

    n = client_frame_raw(buf, TEXT, 1, "hi", 2, LEN_16);
    CHECK_EQ(n, 2 + 2 + 4 + 2);
    expect_text(buf, n, 100, "hi", 2);

    n = client_frame_raw(buf, TEXT, 1, "hi", 2, LEN_64);
    CHECK_EQ(n, 2 + 8 + 4 + 2);
    expect_text(buf, n, 100, "hi", 2);

    n = client_frame_raw(buf, PING, 1, "hi", 2, LEN_MIN);
    CHECK_EQ(n, 2 + 4 + 2);
}


UNIT_TEST(zero_length_text)
{
    size_t             n;
    uint8_t            buf[64];
    const uint8_t     *pos;
    tidal_ws_event_t   ev;
    tidal_ws_parser_t  p;

    n = client_frame(buf, TEXT, "", 0);
    expect_text(buf, n, 0, "", 0);

    tidal_ws_parser_init(&p, 0);
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_TEXT);
    CHECK_EQ(ev.len, 0);
    CHECK(ev.data != NULL);
    tidal_ws_parser_free(&p);

    /* fragmented, all fragments empty */
    n = client_frame(buf, TIDAL_WS_OP_TEXT, "", 0);
    n += client_frame(&buf[n], TIDAL_WS_OP_CONT, "", 0);
    n += client_frame(&buf[n], CONT, "", 0);
    expect_text(buf, n, 0, "", 0);
}


UNIT_TEST(one_event_per_call)
{
    size_t             n, a, b;
    uint8_t            buf[64];
    const uint8_t     *pos;
    tidal_ws_event_t   ev;
    tidal_ws_parser_t  p;

    a = STR_FRAME(buf, PING, "1");
    b = a + STR_FRAME(&buf[a], TEXT, "two");
    n = b + STR_FRAME(&buf[b], PONG, "3");

    tidal_ws_parser_init(&p, 100);
    pos = buf;

    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_PING);
    CHECK(pos == buf + a);
    CHECK_MEM(ev.data, "1", 1);

    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_TEXT);
    CHECK(pos == buf + b);
    CHECK_EQ(ev.len, 3);
    CHECK_MEM(ev.data, "two", 3);

    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_PONG);
    CHECK(pos == buf + n);
    CHECK_MEM(ev.data, "3", 1);

    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_AGAIN);
    CHECK(pos == buf + n);

    tidal_ws_parser_free(&p);
}


UNIT_TEST(fragments_with_interleaved_control)
{
    size_t   n;
    uint8_t  buf[128];

    static const want_t  w[] = {
        { TIDAL_WS_PING, 0, "p1", 2 },
        { TIDAL_WS_PONG, 0, "", 0 },
        { TIDAL_WS_PING, 0, "", 0 },
        { TIDAL_WS_TEXT, 0, "Hello w\xc3\xb6rld!", 13 }
    };

    n = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "Hel");
    n += STR_FRAME(&buf[n], PING, "p1");
    n += STR_FRAME(&buf[n], TIDAL_WS_OP_CONT, "lo ");
    n += STR_FRAME(&buf[n], PONG, "");
    n += STR_FRAME(&buf[n], TIDAL_WS_OP_CONT, "");
    n += STR_FRAME(&buf[n], PING, "");

    /* the o-umlaut is split between the last two fragments */
    n += STR_FRAME(&buf[n], TIDAL_WS_OP_CONT, "w\xc3");
    n += STR_FRAME(&buf[n], CONT, "\xb6rld!");

    expect_events(buf, n, 13, w, 4);

    /* one byte less allowed: the last fragment no longer fits */
    expect_fail(buf, n, 12, TIDAL_WS_CLOSE_TOO_BIG, n - 5 - 4);
}


UNIT_TEST(code_point_split_over_three_fragments)
{
    size_t   n;
    uint8_t  buf[64];

    n = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "\xe2");
    n += STR_FRAME(&buf[n], TIDAL_WS_OP_CONT, "\x82");
    n += STR_FRAME(&buf[n], CONT, "\xac");
    expect_text(buf, n, 3, "\xe2\x82\xac", 3);
}


UNIT_TEST(busy)
{
    size_t             n, i;
    uint8_t            buf[64];
    const uint8_t     *pos;
    tidal_ws_event_t   ev;
    tidal_ws_parser_t  p;

    tidal_ws_parser_init(&p, 100);
    CHECK(!tidal_ws_parser_busy(&p));

    n = STR_FRAME(buf, PING, "x");

    for (i = 0; i < n; i++) {
        pos = &buf[i];
        tidal_ws_parse(&p, &pos, &buf[i + 1], &ev);
        CHECK_EQ(tidal_ws_parser_busy(&p), i + 1 < n);
    }

    n = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "ab");
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_AGAIN);
    CHECK(tidal_ws_parser_busy(&p));

    n = STR_FRAME(buf, PING, "");
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_PING);
    CHECK(tidal_ws_parser_busy(&p));

    n = STR_FRAME(buf, CONT, "c");
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_TEXT);
    CHECK_MEM(ev.data, "abc", 3);
    CHECK(!tidal_ws_parser_busy(&p));

    tidal_ws_parser_free(&p);
}


UNIT_TEST(header_errors)
{
    size_t    n;
    uint8_t   buf[64];
    unsigned  op;

    /* unmasked: known at the second byte */
    n = client_frame_raw(buf, TEXT, 0, "hello", 5, LEN_MIN);
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 2);
    n = client_frame_raw(buf, PING, 0, "", 0, LEN_MIN);
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 2);

    /* RSV bits: the first byte */
    n = STR_FRAME(buf, TEXT | 0x40, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);
    n = STR_FRAME(buf, TEXT | 0x20, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);
    n = STR_FRAME(buf, PING | 0x10, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);

    for (op = 0; op < 16; op++) {
        if ((op >= 3 && op <= 7) || op >= 0xb) {
            n = STR_FRAME(buf, FIN | op, "a");
            expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);
            n = STR_FRAME(buf, op, "a");
            expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);
        }
    }

    /* binary: unsupported, with or without FIN */
    n = STR_FRAME(buf, FIN | TIDAL_WS_OP_BINARY, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_UNSUPPORTED, 1);
    n = STR_FRAME(buf, TIDAL_WS_OP_BINARY, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_UNSUPPORTED, 1);

    /* fragmented control frames */
    n = STR_FRAME(buf, TIDAL_WS_OP_PING, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);
    n = STR_FRAME(buf, TIDAL_WS_OP_PONG, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);
    n = STR_FRAME(buf, TIDAL_WS_OP_CLOSE, "");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);

    /* control frames longer than 125: the second byte says so */
    memcpy(buf, "\x89\xfe\x00\x7e", 4);
    expect_fail(buf, 4, 1000, TIDAL_WS_CLOSE_PROTOCOL, 2);
    memcpy(buf, "\x8a\xff\x00\x00\x00\x00\x00\x00\x00\x01", 10);
    expect_fail(buf, 10, 1000, TIDAL_WS_CLOSE_PROTOCOL, 2);
    memcpy(buf, "\x88\xfe\x00\x02", 4);
    expect_fail(buf, 4, 1000, TIDAL_WS_CLOSE_PROTOCOL, 2);

    /* 64-bit length with the top bit: the first length byte */
    memcpy(buf, "\x81\xff\x80\x00\x00\x00\x00\x00\x00\x01", 10);
    expect_fail(buf, 10, BIG, TIDAL_WS_CLOSE_PROTOCOL, 3);
}


UNIT_TEST(fragmentation_errors)
{
    size_t   n, a;
    uint8_t  buf[64];

    n = STR_FRAME(buf, CONT, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);
    n = STR_FRAME(buf, TIDAL_WS_OP_CONT, "a");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 1);

    /* a continuation after the message was complete */
    a = STR_FRAME(buf, TEXT, "a");
    n = a + STR_FRAME(&buf[a], CONT, "b");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, a + 1);

    /* a new message before the fragmented one ended */
    a = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "a");
    n = a + STR_FRAME(&buf[a], TEXT, "b");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, a + 1);

    /* ... even with a ping in between */
    a = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "a");
    a += STR_FRAME(&buf[a], PING, "p");
    n = a + STR_FRAME(&buf[a], TIDAL_WS_OP_TEXT, "b");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, a + 1);
}


UNIT_TEST(too_big_before_payload)
{
    size_t    n, a;
    want_t    w[2];
    uint8_t  *text, *buf;

    text = malloc(70000);
    buf = malloc(70000 + 64);
    fill_text(text, 100);
    fill_text(&text[100], 70000 - 100);

    /* the failure comes right after the length field, no mask needed */
    n = client_frame(buf, TEXT, text, 101);
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_TOO_BIG, 2);
    expect_fail(buf, 2, 100, TIDAL_WS_CLOSE_TOO_BIG, 2);

    n = client_frame_raw(buf, TEXT, 1, text, 101, LEN_16);
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_TOO_BIG, 4);

    n = client_frame_raw(buf, TEXT, 1, text, 101, LEN_64);
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_TOO_BIG, 10);

    n = client_frame(buf, TEXT, text, 65536);
    expect_fail(buf, n, 65535, TIDAL_WS_CLOSE_TOO_BIG, 10);

    n = client_frame(buf, TEXT, text, 1);
    expect_fail(buf, n, 0, TIDAL_WS_CLOSE_TOO_BIG, 2);

    /* a huge declared length never gets near malloc */
    memcpy(buf, "\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 10);
    expect_fail(buf, 10, BIG, TIDAL_WS_CLOSE_TOO_BIG, 10);

    /* fragments adding up: 60 + 40 fit in 100, 60 + 41 do not */
    a = client_frame(buf, TIDAL_WS_OP_TEXT, text, 60);
    n = a + client_frame(&buf[a], CONT, &text[60], 40);
    expect_text(buf, n, 100, text, 100);

    a = client_frame(buf, TIDAL_WS_OP_TEXT, text, 60);
    n = a + client_frame(&buf[a], CONT, &text[60], 41);
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_TOO_BIG, a + 2);

    /* control frames do not count against the message */
    w[0].type = TIDAL_WS_PING;
    w[0].code = 0;
    w[0].data = &text[1000];
    w[0].len = 125;
    w[1].type = TIDAL_WS_TEXT;
    w[1].code = 0;
    w[1].data = text;
    w[1].len = 100;

    a = client_frame(buf, TIDAL_WS_OP_TEXT, text, 60);
    a += client_frame(&buf[a], PING, &text[1000], 125);
    n = a + client_frame(&buf[a], CONT, &text[60], 40);
    expect_events(buf, n, 100, w, 2);

    free(text);
    free(buf);
}


UNIT_TEST(out_of_memory)
{
    uint8_t  buf[16];

    /* within the limit, but no allocator can satisfy it */
    printf("(AddressSanitizer warnings of a failed allocation expected)\n");
    fflush(stdout);

    memcpy(buf, "\x81\xff\x40\x00\x00\x00\x00\x00\x00\x00", 10);
    expect_fail(buf, 10, SIZE_MAX, TIDAL_WS_CLOSE_INTERNAL, 10);
}


UNIT_TEST(invalid_utf8_in_text)
{
    size_t   n, a;
    uint8_t  buf[64];

    /* refused at the bad byte, before the rest of the frame */
    n = STR_FRAME(buf, TEXT, "ab\xc0" "cd");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, 6 + 3);
    expect_fail(buf, 6 + 3, 100, TIDAL_WS_CLOSE_INVALID_DATA, 6 + 3);

    n = STR_FRAME(buf, TEXT, "x\xed\xa0\x80");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, 6 + 3);

    n = STR_FRAME(buf, TEXT, "\xf4\x90\x80\x80");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, 6 + 2);

    n = client_frame_raw(buf, TEXT, 1, "\x80zz", 3, LEN_16);
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, 8 + 1);

    /* the second fragment shows the first one's lead byte was wrong */
    a = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "ok\xe2");
    n = a + STR_FRAME(&buf[a], CONT, "A");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, a + 6 + 1);

    /* incomplete at the end of the message: at its last byte */
    n = STR_FRAME(buf, TEXT, "ab\xe2\x82");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, n);

    a = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "\xf0\x9f\x8e");
    n = a + STR_FRAME(&buf[a], CONT, "");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, n);

    /* but not at the end of a fragment */
    a = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "\xf0\x9f\x8e");
    n = a + STR_FRAME(&buf[a], CONT, "\xb5");
    expect_text(buf, n, 100, "\xf0\x9f\x8e\xb5", 4);
}


UNIT_TEST(control_payloads)
{
    size_t   n, i;
    want_t   w;
    uint8_t  buf[256], pl[125];

    /* not text: any bytes at all */
    for (i = 0; i < sizeof(pl); i++) {
        pl[i] = (uint8_t) (0xff - i);
    }

    w.type = TIDAL_WS_PING;
    w.code = 0;
    w.data = pl;
    w.len = 125;
    n = client_frame(buf, PING, pl, 125);
    expect_events(buf, n, 0, &w, 1);

    w.type = TIDAL_WS_PONG;
    w.len = 7;
    n = client_frame(buf, PONG, pl, 7);
    expect_events(buf, n, 0, &w, 1);

    w.type = TIDAL_WS_PING;
    w.len = 0;
    n = client_frame(buf, PING, pl, 0);
    expect_events(buf, n, 0, &w, 1);
}


UNIT_TEST(close_frames)
{
    size_t   n;
    want_t   w;
    uint8_t  buf[256], pl[125];

    w.type = TIDAL_WS_CLOSE;

    /* no payload: no status */
    w.code = TIDAL_WS_CLOSE_NO_STATUS;
    w.data = "";
    w.len = 0;
    n = STR_FRAME(buf, CLOSE, "");
    expect_events(buf, n, 0, &w, 1);

    w.code = 1000;
    n = STR_FRAME(buf, CLOSE, "\x03\xe8");
    expect_events(buf, n, 0, &w, 1);

    w.code = 1001;
    w.data = "bye \xe2\x82\xac";
    w.len = 7;
    n = STR_FRAME(buf, CLOSE, "\x03\xe9" "bye \xe2\x82\xac");
    expect_events(buf, n, 0, &w, 1);

    w.code = 1014;
    w.data = "";
    w.len = 0;
    n = STR_FRAME(buf, CLOSE, "\x03\xf6");
    expect_events(buf, n, 0, &w, 1);

    w.code = 4999;
    n = STR_FRAME(buf, CLOSE, "\x13\x87");
    expect_events(buf, n, 0, &w, 1);

    /* the longest reason */
    pl[0] = 0x0b;
    pl[1] = 0xb8;
    fill_text(&pl[2], 123);
    w.code = 3000;
    w.data = &pl[2];
    w.len = 123;
    n = client_frame(buf, CLOSE, pl, 125);
    expect_events(buf, n, 0, &w, 1);
}


UNIT_TEST(close_during_fragmented_message)
{
    size_t   n;
    uint8_t  buf[64];

    static const want_t  w[] = {
        { TIDAL_WS_CLOSE, 1000, "", 0 }
    };

    n = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "half");
    n += STR_FRAME(&buf[n], CLOSE, "\x03\xe8");
    expect_events(buf, n, 100, w, 1);
}


UNIT_TEST(nothing_after_close)
{
    size_t             n, a;
    uint8_t            buf[64];
    const uint8_t     *pos;
    tidal_ws_event_t   ev;
    tidal_ws_parser_t  p;

    a = STR_FRAME(buf, CLOSE, "");
    n = a + STR_FRAME(&buf[a], TEXT, "late");
    buf[n++] = 0xff;

    tidal_ws_parser_init(&p, 100);
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_CLOSE);
    CHECK(pos == buf + a);
    CHECK(!tidal_ws_parser_busy(&p));

    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_AGAIN);
    CHECK(pos == buf + n);
    CHECK(!tidal_ws_parser_busy(&p));
    tidal_ws_parser_free(&p);
}


UNIT_TEST(close_errors)
{
    size_t   n, i;
    uint8_t  buf[64], pl[8];

    static const unsigned  bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015,
                                     1016, 2000, 2999, 5000, 65535 };

    /* a 1-byte payload: the length byte says so */
    n = STR_FRAME(buf, CLOSE, "\x03");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 2);

    /* a code no peer may send: at its second byte */
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pl[0] = (uint8_t) (bad[i] >> 8);
        pl[1] = (uint8_t) bad[i];
        memcpy(&pl[2], "why", 3);

        n = client_frame(buf, CLOSE, pl, 5);
        expect_fail(buf, n, 100, TIDAL_WS_CLOSE_PROTOCOL, 6 + 2);
    }

    /* a reason that is not UTF-8: at the bad byte */
    n = STR_FRAME(buf, CLOSE, "\x03\xe8ok\xff!");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, 6 + 5);

    n = STR_FRAME(buf, CLOSE, "\x03\xe8\xed\xb0\x80");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, 6 + 4);

    /* or that stops inside a code point: at the last byte */
    n = STR_FRAME(buf, CLOSE, "\x03\xe8\xe2\x82");
    expect_fail(buf, n, 100, TIDAL_WS_CLOSE_INVALID_DATA, n);
}


UNIT_TEST(large_buffer_released_after_delivery)
{
    size_t             n;
    uint8_t           *text, *buf;
    const uint8_t     *pos;
    tidal_ws_event_t   ev;
    tidal_ws_parser_t  p;

    text = malloc(20000);
    buf = malloc(20000 + 64);
    fill_text(text, 20000);

    tidal_ws_parser_init(&p, BIG);

    n = client_frame(buf, TEXT, text, 20000);
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_TEXT);
    CHECK_EQ(ev.len, 20000);
    CHECK_MEM(ev.data, text, 20000);

    /* the next call, even with no input, gives the memory back */
    CHECK_EQ(tidal_ws_parse(&p, &pos, pos, &ev), TIDAL_WS_AGAIN);
    CHECK(p.msg == NULL);
    CHECK_EQ(p.msg_cap, 0);

    /* a small message keeps its buffer for the next one */
    n = client_frame(buf, TEXT, text, 100);
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_TEXT);
    CHECK_EQ(tidal_ws_parse(&p, &pos, pos, &ev), TIDAL_WS_AGAIN);
    CHECK(p.msg != NULL);
    CHECK(p.msg_cap >= 100 && p.msg_cap <= 16384);

    tidal_ws_parser_free(&p);
    CHECK(p.msg == NULL);
    tidal_ws_parser_free(&p);

    free(text);
    free(buf);
}


UNIT_TEST(buffer_never_above_max_message)
{
    size_t             n, i;
    uint8_t            buf[64];
    const uint8_t     *pos;
    tidal_ws_event_t   ev;
    tidal_ws_parser_t  p;

    tidal_ws_parser_init(&p, 1000);

    n = STR_FRAME(buf, TIDAL_WS_OP_TEXT, "x");
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_AGAIN);

    for (i = 1; i < 999; i++) {
        n = STR_FRAME(buf, TIDAL_WS_OP_CONT, "x");
        pos = buf;
        CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_AGAIN);
        CHECK(p.msg_cap <= 1000);
    }

    n = STR_FRAME(buf, CONT, "x");
    pos = buf;
    CHECK_EQ(tidal_ws_parse(&p, &pos, buf + n, &ev), TIDAL_WS_TEXT);
    CHECK_EQ(ev.len, 1000);
    CHECK(p.msg_cap <= 1000);

    tidal_ws_parser_free(&p);
}


UNIT_TEST(frame_header_encoding)
{
    uint8_t  h[TIDAL_WS_MAX_HEADER];

    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_TEXT, 0), 2);
    CHECK_MEM(h, "\x81\x00", 2);
    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_TEXT, 125), 2);
    CHECK_MEM(h, "\x81\x7d", 2);
    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_TEXT, 126), 4);
    CHECK_MEM(h, "\x81\x7e\x00\x7e", 4);
    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_PONG, 65535), 4);
    CHECK_MEM(h, "\x8a\x7e\xff\xff", 4);
    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_TEXT, 65536), 10);
    CHECK_MEM(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_CLOSE, 2), 2);
    CHECK_MEM(h, "\x88\x02", 2);
    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_PING, 0), 2);
    CHECK_MEM(h, "\x89\x00", 2);
    CHECK_EQ(tidal_ws_frame_header(h, TIDAL_WS_OP_TEXT, 0x0123456789abULL),
             10);
    CHECK_MEM(h, "\x81\x7f\x00\x00\x01\x23\x45\x67\x89\xab", 10);
}


/* the parser reads what the encoder writes, once the mask is added */

UNIT_TEST(frame_header_round_trip)
{
    size_t    i, j, hl, n;
    uint8_t  *text, *buf;

    static const size_t  sizes[] = { 0, 125, 126, 65535, 65536 };

    text = malloc(65536);
    buf = malloc(65536 + 64);

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        fill_text(text, sizes[i]);

        hl = tidal_ws_frame_header(buf, TIDAL_WS_OP_TEXT, sizes[i]);
        buf[1] |= 0x80;
        memcpy(&buf[hl], mask_key, 4);

        for (j = 0; j < sizes[i]; j++) {
            buf[hl + 4 + j] = text[j] ^ mask_key[j & 3];
        }

        n = hl + 4 + sizes[i];
        CHECK_EQ(n, client_frame(buf, TEXT, text, sizes[i]));
        expect_text(buf, n, BIG, text, sizes[i]);
    }

    free(text);
    free(buf);
}


UNIT_TEST(close_payload_encoding)
{
    char     reason[256];
    size_t   i, n, frame;
    want_t   w;
    uint8_t  pl[TIDAL_WS_MAX_CONTROL], buf[256];

    CHECK_EQ(tidal_ws_close_payload(pl, 1000, NULL), 2);
    CHECK_MEM(pl, "\x03\xe8", 2);
    CHECK_EQ(tidal_ws_close_payload(pl, 1000, ""), 2);
    CHECK_EQ(tidal_ws_close_payload(pl, 1001, "bye"), 5);
    CHECK_MEM(pl, "\x03\xe9" "bye", 5);
    CHECK_EQ(tidal_ws_close_payload(pl, 4000, "x"), 3);
    CHECK_MEM(pl, "\x0f\xa0x", 3);

    /* codes that never go on the wire give an empty payload */
    CHECK_EQ(tidal_ws_close_payload(pl, 0, "x"), 0);
    CHECK_EQ(tidal_ws_close_payload(pl, 1005, "x"), 0);
    CHECK_EQ(tidal_ws_close_payload(pl, 1006, "x"), 0);
    CHECK_EQ(tidal_ws_close_payload(pl, 1015, "x"), 0);

    /* ASCII is cut at 123 bytes */
    memset(reason, 'r', 200);
    reason[200] = '\0';
    CHECK_EQ(tidal_ws_close_payload(pl, 1011, reason), 125);
    CHECK_MEM(&pl[2], reason, 123);

    memset(reason, 'r', 123);
    reason[123] = '\0';
    CHECK_EQ(tidal_ws_close_payload(pl, 1011, reason), 125);

    /* 2-byte code points: 61 fit, the 62nd would be split */
    reason[0] = '\0';
    for (i = 0; i < 100; i++) {
        strcat(reason, "\xc3\xa9");
    }
    CHECK_EQ(tidal_ws_close_payload(pl, 1000, reason), 2 + 122);
    CHECK_MEM(&pl[2], reason, 122);

    /* 3-byte: exactly 41 fit */
    reason[0] = '\0';
    for (i = 0; i < 50; i++) {
        strcat(reason, "\xe2\x82\xac");
    }
    CHECK_EQ(tidal_ws_close_payload(pl, 1000, reason), 125);

    /* an ASCII byte first: 40 of them and 2 bytes unused */
    memmove(&reason[1], reason, strlen(reason) + 1);
    reason[0] = 'a';
    CHECK_EQ(tidal_ws_close_payload(pl, 1000, reason), 2 + 1 + 120);

    /* 4-byte: 30 fit */
    reason[0] = '\0';
    for (i = 0; i < 40; i++) {
        strcat(reason, "\xf0\x9f\x8e\xb5");
    }
    CHECK_EQ(tidal_ws_close_payload(pl, 1000, reason), 2 + 120);

    /* invalid UTF-8 in a reason is cut before it */
    CHECK_EQ(tidal_ws_close_payload(pl, 1000, "ab\xff" "cd"), 4);
    CHECK_EQ(tidal_ws_close_payload(pl, 1000, "ab\xe2\x82"), 4);

    /* and what comes out is a close frame the parser accepts */
    n = tidal_ws_close_payload(pl, 1000, reason);
    frame = client_frame(buf, CLOSE, pl, n);
    w.type = TIDAL_WS_CLOSE;
    w.code = 1000;
    w.data = reason;
    w.len = n - 2;
    expect_events(buf, frame, 0, &w, 1);
}


UNIT_TEST(close_code_validity)
{
    int       want;
    long      wrong;
    unsigned  c;

    CHECK(tidal_ws_close_code_valid(1000));
    CHECK(tidal_ws_close_code_valid(1003));
    CHECK(!tidal_ws_close_code_valid(1004));
    CHECK(!tidal_ws_close_code_valid(1005));
    CHECK(!tidal_ws_close_code_valid(1006));
    CHECK(tidal_ws_close_code_valid(1007));
    CHECK(tidal_ws_close_code_valid(1011));
    CHECK(tidal_ws_close_code_valid(1014));
    CHECK(!tidal_ws_close_code_valid(1015));
    CHECK(!tidal_ws_close_code_valid(2999));
    CHECK(tidal_ws_close_code_valid(3000));
    CHECK(tidal_ws_close_code_valid(4999));
    CHECK(!tidal_ws_close_code_valid(5000));

    wrong = 0;

    for (c = 0; c < 70000; c++) {
        want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014)
               || (c >= 3000 && c <= 4999);

        wrong += tidal_ws_close_code_valid(c) != want;
    }

    CHECK_EQ(wrong, 0);
}


#define KEY_VALID(s)  tidal_ws_key_valid(s, strlen(s))

UNIT_TEST(key_validation)
{
    CHECK(KEY_VALID("dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(KEY_VALID("x3JJHMbDL1EzLkh9GBhXDw=="));
    CHECK(KEY_VALID("AAAAAAAAAAAAAAAAAAAA+/==") == 1);

    /* length */
    CHECK(!KEY_VALID(""));
    CHECK(!KEY_VALID("dGhlIHNhbXBsZSBub25jZQ="));
    CHECK(!KEY_VALID("dGhlIHNhbXBsZSBub25jZQ==="));
    CHECK(!KEY_VALID("dGhlIHNhbXBsZSBub25jZQ== "));
    CHECK(!tidal_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 23));

    /* characters outside standard base64 */
    CHECK(!KEY_VALID("dGhlIHNhbXBsZSBub25jZQ-="));
    CHECK(!KEY_VALID("dGhlIHNhbXBsZSBu_25jZQ=="));
    CHECK(!KEY_VALID("dGhlIHNhbXBsZSBub25jZ*=="));
    CHECK(!KEY_VALID("dGhlIHNhbX sZSBub25jZQ=="));
    CHECK(!tidal_ws_key_valid("dGhlIHNhbXBsZSBu\0025jZQ==", 24));

    /* base64, but not of 16 bytes */
    CHECK(!KEY_VALID("AAAAAAAAAAAAAAAAAAAAAAA="));      /* 17 */
    CHECK(!KEY_VALID("AAAAAAAAAAAAAAAAAAAAAAAA"));      /* 18 */
    CHECK(!KEY_VALID("AAAAAAAAAAAAAAAAAAAA"));          /* 15 */
    CHECK(!KEY_VALID("AAAAAAAAAAAAAAAAAAAA===="));      /* 15, padded */

    /* padding anywhere but the end */
    CHECK(!KEY_VALID("AAAA=AAAAAAAAAAAAAAAAA=="));
    CHECK(!KEY_VALID("AAAAAAAAAAAAAAAAAAAAA=A="));
    CHECK(!KEY_VALID("========================"));
}


UNIT_TEST(accept_key)
{
    char  out[TIDAL_WS_ACCEPT_LEN + 1];

    memset(out, 'x', sizeof(out));
    CHECK_EQ(tidal_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    CHECK_EQ(tidal_ws_accept("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
    CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");

    /* only the given length counts */
    CHECK_EQ(tidal_ws_accept("dGhlIHNhbXBsZSBub25jZQ==trailing", 24, out),
             0);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}


/* -- the client side: the bridge parses server frames, masks its own -- */


static size_t
server_frame(uint8_t *buf, unsigned b0, const void *payload, size_t len,
    int form)
{
    return client_frame_raw(buf, b0, 0, payload, len, form);
}


UNIT_TEST(client_parses_unmasked_server_frames)
{
    size_t    n, i;
    uint8_t  *buf, *text;
    want_t    w[4];

    client_side = 1;

    buf = malloc(70000 + 64);
    text = malloc(70000);

    for (i = 0; i < 70000; i++) {
        text[i] = (uint8_t) ('a' + i % 26);
    }

    /* every length form, also the non-minimal ones */
    n = server_frame(buf, TEXT, "{\"jsonrpc\":\"2.0\"}", 17, LEN_MIN);
    expect_text(buf, n, 1024, "{\"jsonrpc\":\"2.0\"}", 17);

    n = server_frame(buf, TEXT, text, 300, LEN_MIN);
    CHECK_EQ(n, 4 + 300);
    expect_text(buf, n, 1024, text, 300);

    n = server_frame(buf, TEXT, text, 70000, LEN_MIN);
    CHECK_EQ(n, 10 + 70000);
    expect_text(buf, n, 70000, text, 70000);

    n = server_frame(buf, TEXT, text, 5, LEN_64);
    expect_text(buf, n, 1024, text, 5);

    n = server_frame(buf, TEXT, "", 0, LEN_MIN);
    expect_text(buf, n, 1024, "", 0);

    /* a fragmented message with a ping between, then a close */
    n = server_frame(buf, TIDAL_WS_OP_TEXT, "ab", 2, LEN_MIN);
    n += server_frame(buf + n, PING, "hb", 2, LEN_MIN);
    n += server_frame(buf + n, CONT, "cd", 2, LEN_16);
    n += server_frame(buf + n, PONG, "", 0, LEN_MIN);
    n += server_frame(buf + n, CLOSE, "\x03\xe9" "bye", 5, LEN_MIN);

    w[0].type = TIDAL_WS_PING;
    w[0].code = 0;
    w[0].data = "hb";
    w[0].len = 2;
    w[1].type = TIDAL_WS_TEXT;
    w[1].code = 0;
    w[1].data = "abcd";
    w[1].len = 4;
    w[2].type = TIDAL_WS_PONG;
    w[2].code = 0;
    w[2].data = "";
    w[2].len = 0;
    w[3].type = TIDAL_WS_CLOSE;
    w[3].code = 1001;
    w[3].data = "bye";
    w[3].len = 3;
    expect_events(buf, n, 1024, w, 4);

    /* a masked frame from a server fails at its second byte */
    n = client_frame(buf, TEXT, "hi", 2);
    expect_fail(buf, n, 1024, TIDAL_WS_CLOSE_PROTOCOL, 2);

    /* the same rules as for the server otherwise */
    n = server_frame(buf, TEXT, text, 300, LEN_MIN);
    expect_fail(buf, n, 299, TIDAL_WS_CLOSE_TOO_BIG, 4);

    n = server_frame(buf, FIN | TIDAL_WS_OP_BINARY, "x", 1, LEN_MIN);
    expect_fail(buf, n, 1024, TIDAL_WS_CLOSE_UNSUPPORTED, 1);

    n = server_frame(buf, TEXT, "\xff", 1, LEN_MIN);
    expect_fail(buf, n, 1024, TIDAL_WS_CLOSE_INVALID_DATA, 3);

    n = server_frame(buf, CLOSE, "\x03\xed", 2, LEN_MIN);   /* 1005 */
    expect_fail(buf, n, 1024, TIDAL_WS_CLOSE_PROTOCOL, 4);

    buf[0] = TEXT;
    buf[1] = 127;
    buf[2] = 0x80;
    expect_fail(buf, 3, 1024, TIDAL_WS_CLOSE_PROTOCOL, 3);

    free(buf);
    free(text);

    client_side = 0;
}


UNIT_TEST(client_frames_reach_a_server)
{
    size_t          i, k, n;
    uint8_t        *buf, *text;
    const uint8_t   key[4] = { 0xa1, 0x00, 0x5c, 0xff };
    const size_t    lens[] = { 0, 1, 125, 126, 65535, 65536, 70001 };
    const size_t    hdrs[] = { 6, 6, 6, 8, 8, 14, 14 };

    buf = malloc(70001 + TIDAL_WS_MAX_HEADER);
    text = malloc(70001);

    for (i = 0; i < 70001; i++) {
        text[i] = (uint8_t) ('A' + i % 31);
    }

    for (k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        n = tidal_ws_client_frame_header(buf, TIDAL_WS_OP_TEXT, lens[k],
                                         key);
        CHECK_EQ(n, hdrs[k]);
        CHECK_EQ(buf[0], TEXT);
        CHECK(buf[1] & 0x80);
        CHECK_MEM(&buf[n - 4], key, 4);

        memcpy(&buf[n], text, lens[k]);
        tidal_ws_mask(&buf[n], lens[k], key);

        if (lens[k] > 4) {
            CHECK_EQ(buf[n + 1], text[1] ^ 0x00);
            CHECK_EQ(buf[n + 3], text[3] ^ 0xff);
            CHECK_EQ(buf[n + 4], text[4] ^ 0xa1);
        }

        expect_text(buf, n + lens[k], 70001, text, lens[k]);
    }

    /* masking twice gives the payload back */
    memcpy(buf, "hello", 5);
    tidal_ws_mask(buf, 5, key);
    tidal_ws_mask(buf, 5, key);
    CHECK_MEM(buf, "hello", 5);

    /* a close 1000 as the bridge sends it */
    n = tidal_ws_client_frame_header(buf, TIDAL_WS_OP_CLOSE, 2, key);
    buf[n] = 0x03;
    buf[n + 1] = 0xe8;
    tidal_ws_mask(&buf[n], 2, key);
    CHECK_MEM(buf, "\x88\x82\xa1\x00\x5c\xff\xa2\xe8", 8);

    free(buf);
    free(text);
}


#define KEY  "dGhlIHNhbXBsZSBub25jZQ=="
#define OK_HEAD                                                              \
    "HTTP/1.1 101 Switching Protocols\r\n"                                   \
    "Server: nginx/1.22.1\r\n"                                               \
    "Upgrade: websocket\r\n"                                                 \
    "Connection: upgrade\r\n"                                                \
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"

static int
response(const char *head, const char *protocol, unsigned *status,
    const char **why)
{
    return tidal_ws_response_check(head, strlen(head), KEY, strlen(KEY),
                                   protocol, status, why);
}


UNIT_TEST(handshake_response_check)
{
    unsigned     status;
    const char  *why;

    CHECK_EQ(response(OK_HEAD "Sec-WebSocket-Protocol: mcp\r\n\r\n", "mcp",
                      &status, &why), 0);
    CHECK_EQ(status, 101);
    CHECK(why == NULL);

    /* no subprotocol chosen, bare LF, case and spacing, token lists */
    CHECK_EQ(response(OK_HEAD "\r\n", "mcp", &status, &why), 0);
    CHECK_EQ(response("HTTP/1.1 101\n" "upgrade:WebSocket\n"
                      "CONNECTION: keep-alive ,  Upgrade \n"
                      "sec-websocket-accept:  "
                      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\t\n\n",
                      NULL, &status, &why), 0);

    /* what follows the empty line is not looked at */
    CHECK_EQ(response(OK_HEAD "\r\nUpgrade: h2c\r\n", "mcp", &status, &why),
             0);

    /* refusals: the status is what the bridge shows */
    CHECK_EQ(response("HTTP/1.1 403 Forbidden\r\nServer: nginx\r\n\r\n",
                      "mcp", &status, &why), -1);
    CHECK_EQ(status, 403);
    CHECK_STR(why, "the server refused the upgrade");

    CHECK_EQ(response("HTTP/1.1 503 Service Temporarily Unavailable\r\n\r\n",
                      "mcp", &status, &why), -1);
    CHECK_EQ(status, 503);

    CHECK_EQ(response("HTTP/1.0 200\r\n\r\n", "mcp", &status, &why), -1);
    CHECK_EQ(status, 200);

    /* not HTTP */
    CHECK_EQ(response("SSH-2.0-OpenSSH_9.2\r\n", "mcp", &status, &why), -1);
    CHECK_EQ(status, 0);
    CHECK_STR(why, "not an HTTP response");
    CHECK_EQ(response("HTTP/1.1 1010 x\r\n\r\n", "mcp", &status, &why), -1);
    CHECK_EQ(status, 0);
    CHECK_EQ(response("HTTP/1.1 10\r\n\r\n", "mcp", &status, &why), -1);
    CHECK_EQ(response("", "mcp", &status, &why), -1);

    /* a 101 that is not a WebSocket upgrade for our key */
    CHECK_EQ(response("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                      "Connection: upgrade\r\n\r\n", "mcp", &status, &why),
             -1);
    CHECK_STR(why, "no Sec-WebSocket-Accept");
    CHECK_EQ(status, 101);

    CHECK_EQ(response("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                      "Connection: upgrade\r\n"
                      "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n"
                      "\r\n", "mcp", &status, &why), -1);
    CHECK_STR(why, "wrong Sec-WebSocket-Accept");

    CHECK_EQ(response(OK_HEAD "Sec-WebSocket-Accept: "
                      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", "mcp", &status,
                      &why), -1);
    CHECK_STR(why, "wrong Sec-WebSocket-Accept");

    CHECK_EQ(response("HTTP/1.1 101 OK\r\nUpgrade: h2c\r\n\r\n", "mcp",
                      &status, &why), -1);
    CHECK_STR(why, "Upgrade is not \"websocket\"");

    CHECK_EQ(response("HTTP/1.1 101 OK\r\nConnection: upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                      "\r\n", "mcp", &status, &why), -1);
    CHECK_STR(why, "no \"Upgrade: websocket\"");

    CHECK_EQ(response("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                      "Connection: upgrades\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                      "\r\n", "mcp", &status, &why), -1);
    CHECK_STR(why, "no \"Connection: upgrade\"");

    CHECK_EQ(response(OK_HEAD "Sec-WebSocket-Protocol: chat\r\n\r\n", "mcp",
                      &status, &why), -1);
    CHECK_STR(why, "a subprotocol that was not offered");
    CHECK_EQ(response(OK_HEAD "Sec-WebSocket-Protocol: mcp\r\n\r\n", NULL,
                      &status, &why), -1);

    CHECK_EQ(response(OK_HEAD "Sec-WebSocket-Extensions: "
                      "permessage-deflate\r\n\r\n", "mcp", &status, &why),
             -1);
    CHECK_STR(why, "an extension that was not offered");

    CHECK_EQ(response(OK_HEAD "X-Folded: a\r\n  b\r\n\r\n", "mcp", &status,
                      &why), -1);
    CHECK_STR(why, "a malformed header line");
    CHECK_EQ(response(OK_HEAD ": empty name\r\n\r\n", "mcp", &status, &why),
             -1);
}


int
main(void)
{
    UNIT_RUN(text_frame);
    UNIT_RUN(payload_sizes);
    UNIT_RUN(non_minimal_lengths_accepted);
    UNIT_RUN(zero_length_text);
    UNIT_RUN(one_event_per_call);
    UNIT_RUN(fragments_with_interleaved_control);
    UNIT_RUN(code_point_split_over_three_fragments);
    UNIT_RUN(busy);
    UNIT_RUN(header_errors);
    UNIT_RUN(fragmentation_errors);
    UNIT_RUN(too_big_before_payload);
    UNIT_RUN(out_of_memory);
    UNIT_RUN(invalid_utf8_in_text);
    UNIT_RUN(control_payloads);
    UNIT_RUN(close_frames);
    UNIT_RUN(close_during_fragmented_message);
    UNIT_RUN(nothing_after_close);
    UNIT_RUN(close_errors);
    UNIT_RUN(large_buffer_released_after_delivery);
    UNIT_RUN(buffer_never_above_max_message);
    UNIT_RUN(frame_header_encoding);
    UNIT_RUN(frame_header_round_trip);
    UNIT_RUN(close_payload_encoding);
    UNIT_RUN(close_code_validity);
    UNIT_RUN(key_validation);
    UNIT_RUN(accept_key);
    UNIT_RUN(client_parses_unmasked_server_frames);
    UNIT_RUN(client_frames_reach_a_server);
    UNIT_RUN(handshake_response_check);

    recs_clear();

    return unit_done("ws");
}
