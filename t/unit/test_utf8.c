/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Unit tests for the incremental UTF-8 validator (src/core/tidal_utf8.c).
 */


#include <stdint.h>

#include "tidal_utf8.h"
#include "unit.h"


/*
 * The reference model knows UTF-8 only through its encoder: every scalar
 * value is encoded and its encoding and the encoding's proper prefixes
 * are marked in bitmaps.  Since UTF-8 is prefix-free, a string is a
 * prefix of valid UTF-8 exactly when a greedy split into encodings ends
 * in a proper prefix of one or in nothing.
 */

static uint8_t  *ref_complete[5];   /* by length; [4] indexed from F0 */
static uint8_t  *ref_partial[4];    /* proper prefixes, length 1..3 */


static size_t
ref_encode(uint32_t cp, uint8_t *b)
{
    if (cp < 0x80) {
        b[0] = (uint8_t) cp;
        return 1;
    }

    if (cp < 0x800) {
        b[0] = (uint8_t) (0xc0 | (cp >> 6));
        b[1] = (uint8_t) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        b[0] = (uint8_t) (0xe0 | (cp >> 12));
        b[1] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t) (0x80 | (cp & 0x3f));
        return 3;
    }

    b[0] = (uint8_t) (0xf0 | (cp >> 18));
    b[1] = (uint8_t) (0x80 | ((cp >> 12) & 0x3f));
    b[2] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
    b[3] = (uint8_t) (0x80 | (cp & 0x3f));
    return 4;
}


static uint64_t
ref_index(const uint8_t *b, size_t len)
{
    size_t    i;
    uint64_t  v;

    v = (len == 4) ? (uint64_t) (b[0] - 0xf0) : b[0];

    for (i = 1; i < len; i++) {
        v = (v << 8) | b[i];
    }

    return v;
}


static void
ref_mark(uint8_t *map, uint64_t i)
{
    map[i >> 3] |= (uint8_t) (1 << (i & 7));
}


static int
ref_test(const uint8_t *map, uint64_t i)
{
    return (map[i >> 3] >> (i & 7)) & 1;
}


static void
ref_build(void)
{
    size_t    len, k;
    uint8_t   b[4];
    uint32_t  cp;

    for (len = 1; len <= 4; len++) {
        ref_complete[len] = calloc(((len == 4) ? 5ULL << 24
                                               : 1ULL << (8 * len)) / 8, 1);
        if (len < 4) {
            ref_partial[len] = calloc((1ULL << (8 * len)) / 8, 1);
        }
    }

    for (cp = 0; cp <= 0x10ffff; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) {
            continue;
        }

        len = ref_encode(cp, b);
        ref_mark(ref_complete[len], ref_index(b, len));

        for (k = 1; k < len; k++) {
            ref_mark(ref_partial[k], ref_index(b, k));
        }
    }
}


static int
ref_is_complete(const uint8_t *b, size_t len)
{
    if (len == 4 && (b[0] < 0xf0 || b[0] > 0xf4)) {
        return 0;
    }

    return ref_test(ref_complete[len], ref_index(b, len));
}


/*
 * Returns the index of the first byte after which s is no prefix of valid
 * UTF-8, or -1; *complete tells whether s ends between code points.
 */

static long
ref_first_bad(const uint8_t *s, size_t n, int *complete)
{
    size_t  i, len, k;

    i = 0;

    while (i < n) {
        for (len = 1; len <= 4 && i + len <= n; len++) {
            if (ref_is_complete(&s[i], len)) {
                break;
            }
        }

        if (len <= 4 && i + len <= n) {
            i += len;
            continue;
        }

        k = 0;

        while (k < 3 && i + k < n
               && ref_test(ref_partial[k + 1], ref_index(&s[i], k + 1)))
        {
            k++;
        }

        if (i + k == n) {
            *complete = 0;
            return -1;
        }

        *complete = 0;
        return (long) (i + k);
    }

    *complete = 1;
    return -1;
}


/* feeds s one byte at a time; index of the byte that got -1, or -1 */

static long
bytewise_first_bad(const uint8_t *s, size_t n)
{
    size_t        i;
    tidal_utf8_t  u;

    tidal_utf8_init(&u);

    for (i = 0; i < n; i++) {
        if (tidal_utf8_feed(&u, &s[i], 1) != 0) {
            return (long) i;
        }
    }

    return -1;
}


static long
oneshot_first_bad(const uint8_t *s, size_t n, int *complete)
{
    size_t        used;
    tidal_utf8_t  u;

    tidal_utf8_init(&u);
    *complete = 0;

    if (tidal_utf8_scan(&u, s, n, &used) != 0) {
        return (long) used - 1;
    }

    *complete = tidal_utf8_complete(&u);
    return -1;
}


static uint32_t  rng_state = 0x9e3779b9;


static uint32_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}


#define BAD(s)  bytewise_first_bad((const uint8_t *) (s), sizeof(s) - 1)


UNIT_TEST(valid_boundaries)
{
    size_t        i;
    tidal_utf8_t  u;

    static const char  *valid[] = {
        "", "plain ASCII \x01\x7f",
        "\xc2\x80", "\xdf\xbf",                          /* U+0080 U+07FF */
        "\xe0\xa0\x80", "\xed\x9f\xbf",                  /* U+0800 U+D7FF */
        "\xee\x80\x80", "\xef\xbf\xbf",                  /* U+E000 U+FFFF */
        "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",       /* U+10000 U+10FFFF */
        "\xf1\x80\x80\x80\xf3\xbf\xbf\xbf",
        "Gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x8e\xb5"
    };

    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        tidal_utf8_init(&u);
        CHECK_EQ(tidal_utf8_feed(&u, (const uint8_t *) valid[i],
                                 strlen(valid[i])), 0);
        CHECK(tidal_utf8_complete(&u));
    }
}


UNIT_TEST(never_bytes_fail_at_once)
{
    uint8_t       c;
    unsigned      b;
    tidal_utf8_t  u;

    for (b = 0; b < 256; b++) {
        c = (uint8_t) b;
        tidal_utf8_init(&u);

        if (b == 0xc0 || b == 0xc1 || b >= 0xf5 || (b >= 0x80 && b < 0xc0)) {
            CHECK_EQ(tidal_utf8_feed(&u, &c, 1), -1);

        } else {
            CHECK_EQ(tidal_utf8_feed(&u, &c, 1), 0);
            CHECK_EQ(tidal_utf8_complete(&u), b < 0x80);
        }
    }

    /* and after a complete code point, not just at the start */
    CHECK_EQ(BAD("ab\xc3\xa9\xc0"), 4);
    CHECK_EQ(BAD("ab\xff"), 2);
}


UNIT_TEST(second_byte_ranges)
{
    CHECK_EQ(BAD("\xc0\x80"), 0);              /* overlong NUL */
    CHECK_EQ(BAD("\xc1\xbf"), 0);
    CHECK_EQ(BAD("\xe0\x80\x80"), 1);          /* overlong 3-byte */
    CHECK_EQ(BAD("\xe0\x9f\xbf"), 1);
    CHECK_EQ(BAD("\xe0\xa0\x80"), -1);
    CHECK_EQ(BAD("\xed\xa0\x80"), 1);          /* U+D800 */
    CHECK_EQ(BAD("\xed\xbf\xbf"), 1);          /* U+DFFF */
    CHECK_EQ(BAD("\xed\x9f\xbf"), -1);
    CHECK_EQ(BAD("\xf0\x80\x80\x80"), 1);      /* overlong 4-byte */
    CHECK_EQ(BAD("\xf0\x8f\xbf\xbf"), 1);
    CHECK_EQ(BAD("\xf0\x90\x80\x80"), -1);
    CHECK_EQ(BAD("\xf4\x90\x80\x80"), 1);      /* U+110000 */
    CHECK_EQ(BAD("\xf4\xbf\xbf\xbf"), 1);
    CHECK_EQ(BAD("\xf4\x8f\xbf\xbf"), -1);
}


UNIT_TEST(continuation_and_lead_misplaced)
{
    CHECK_EQ(BAD("\x80"), 0);                  /* continuation, no lead */
    CHECK_EQ(BAD("a\xbf"), 1);
    CHECK_EQ(BAD("\xc3\xa9\x80"), 2);
    CHECK_EQ(BAD("\xc2\x41"), 1);              /* ASCII inside a sequence */
    CHECK_EQ(BAD("\xc2\xc2"), 1);              /* lead inside a sequence */
    CHECK_EQ(BAD("\xe1\x80\x41"), 2);
    CHECK_EQ(BAD("\xe1\x80\xe1"), 2);
    CHECK_EQ(BAD("\xf1\x80\x80\xc0"), 3);
    CHECK_EQ(BAD("\xf1\x80\x80\xf1"), 3);
    CHECK_EQ(BAD("\xf1\x80\x80\x80\x80"), 4);  /* one continuation too many */
}


UNIT_TEST(state_carries_across_calls)
{
    size_t        i;
    tidal_utf8_t  u;

    static const uint8_t  s[] = { 0xf0, 0x9f, 0x8e, 0xb5, 0xe2, 0x82, 0xac };

    tidal_utf8_init(&u);

    for (i = 0; i < sizeof(s); i++) {
        CHECK_EQ(tidal_utf8_feed(&u, &s[i], 1), 0);
        CHECK_EQ(tidal_utf8_complete(&u), i == 3 || i == 6);
    }

    /* the second byte decides even when it comes in a later call */
    tidal_utf8_init(&u);
    CHECK_EQ(tidal_utf8_feed(&u, (const uint8_t *) "\xed", 1), 0);
    CHECK_EQ(tidal_utf8_feed(&u, (const uint8_t *) "\xa0\x80", 2), -1);

    /* a zero-length feed changes nothing */
    tidal_utf8_init(&u);
    CHECK_EQ(tidal_utf8_feed(&u, (const uint8_t *) "\xe2", 1), 0);
    CHECK_EQ(tidal_utf8_feed(&u, NULL, 0), 0);
    CHECK(!tidal_utf8_complete(&u));
    CHECK_EQ(tidal_utf8_feed(&u, (const uint8_t *) "\x82\xac", 2), 0);
    CHECK(tidal_utf8_complete(&u));
}


UNIT_TEST(invalid_is_sticky)
{
    size_t        used;
    tidal_utf8_t  u;

    tidal_utf8_init(&u);
    CHECK_EQ(tidal_utf8_feed(&u, (const uint8_t *) "\xff", 1), -1);
    CHECK_EQ(tidal_utf8_feed(&u, (const uint8_t *) "abc", 3), -1);
    CHECK_EQ(tidal_utf8_feed(&u, NULL, 0), -1);
    CHECK(!tidal_utf8_complete(&u));

    CHECK_EQ(tidal_utf8_scan(&u, (const uint8_t *) "abc", 3, &used), -1);
    CHECK_EQ(used, 0);
}


UNIT_TEST(scan_stops_past_the_bad_byte)
{
    size_t        used;
    tidal_utf8_t  u;

    tidal_utf8_init(&u);
    CHECK_EQ(tidal_utf8_scan(&u, (const uint8_t *) "abc", 3, &used), 0);
    CHECK_EQ(used, 3);
    CHECK_EQ(tidal_utf8_scan(&u, (const uint8_t *) "d\xe0\x9f" "ef", 5,
                             &used), -1);
    CHECK_EQ(used, 3);
}


/* every string of 1, 2 and 3 bytes against the reference */

UNIT_TEST(exhaustive_up_to_three_bytes)
{
    int       ref_c, got_c;
    long      ref, got, wrong;
    size_t    len, k;
    uint8_t   s[3];
    uint32_t  v;

    wrong = 0;

    for (len = 1; len <= 3; len++) {
        for (v = 0; v < (1UL << (8 * len)); v++) {
            for (k = 0; k < len; k++) {
                s[k] = (uint8_t) (v >> (8 * (len - 1 - k)));
            }

            ref = ref_first_bad(s, len, &ref_c);
            got = oneshot_first_bad(s, len, &got_c);

            if (ref != got || (ref == -1 && ref_c != got_c)) {
                if (wrong++ < 5) {
                    printf("    %zu bytes %06lx: ref %ld/%d, got %ld/%d\n",
                           len, (unsigned long) v, ref, ref_c, got, got_c);
                }
            }
        }
    }

    CHECK_EQ(wrong, 0);
}


/* long mixed strings, fed whole and in random pieces */

UNIT_TEST(random_strings_against_reference)
{
    int           ref_c, got_c;
    long          ref, got, split_bad, wrong;
    size_t        n, len, k, i, off, chunk, used;
    uint8_t       s[64], b[4];
    uint32_t      cp, r;
    tidal_utf8_t  u;

    static const uint32_t  edges[] = {
        0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff,
        0x10000, 0x3ffff, 0x40000, 0xfffff, 0x100000, 0x10ffff
    };

    wrong = 0;

    for (n = 0; n < 200000; n++) {
        len = 0;

        while (len < 40) {
            r = rng() % 10;

            if (r < 6) {
                cp = (rng() % 3 == 0)
                     ? edges[rng() % (sizeof(edges) / sizeof(edges[0]))]
                     : rng() % 0x110000;

                if (cp >= 0xd800 && cp <= 0xdfff) {
                    cp = 0x41;
                }

                k = ref_encode(cp, b);

                /* sometimes a truncated code point */
                if (r == 5 && k > 1) {
                    k = 1 + rng() % (k - 1);
                }

                memcpy(&s[len], b, k);
                len += k;

            } else if (r < 8) {
                s[len++] = (uint8_t) rng();

            } else {
                s[len++] = (uint8_t) (0x80 + rng() % 0x40);
            }

            if (rng() % 8 == 0) {
                break;
            }
        }

        ref = ref_first_bad(s, len, &ref_c);
        got = oneshot_first_bad(s, len, &got_c);

        /* the same bytes in random pieces, each through scan */
        tidal_utf8_init(&u);
        split_bad = -1;

        for (off = 0; off < len; off += chunk) {
            chunk = 1 + rng() % 7;
            if (chunk > len - off) {
                chunk = len - off;
            }

            if (tidal_utf8_scan(&u, &s[off], chunk, &used) != 0) {
                split_bad = (long) (off + used) - 1;

                if (tidal_utf8_feed(&u, (const uint8_t *) "a", 1) != -1) {
                    split_bad = -2;
                }

                break;
            }

            if (used != chunk) {
                split_bad = -3;
                break;
            }
        }

        if (ref != got || ref != split_bad
            || (ref == -1 && (ref_c != got_c
                              || ref_c != tidal_utf8_complete(&u))))
        {
            if (wrong++ < 5) {
                printf("    ref %ld/%d, oneshot %ld/%d, split %ld:", ref,
                       ref_c, got, got_c, split_bad);

                for (i = 0; i < len; i++) {
                    printf(" %02x", s[i]);
                }

                printf("\n");
            }
        }
    }

    CHECK_EQ(wrong, 0);
}


/* -- tidal_utf8_escape, tidal_utf8_cut --------------------------------- */


/* in: a string literal, NULs and all */
#define check_escape(in, want)  check_escape_n(in, sizeof(in) - 1, want)

static void
check_escape_n(const char *in, size_t len, const char *want)
{
    char    out[256];
    size_t  n;

    n = tidal_utf8_escape(out, sizeof(out), in, len);

    CHECK_STR(out, want);
    CHECK_EQ(n, strlen(want));
}


UNIT_TEST(escape_keeps_text_on_one_line)
{
    check_escape("plain text", "plain text");
    check_escape("a\nb\rc\td", "a\\nb\\rc\\td");
    check_escape("x\n2026/01/01 00:00:00 [emerg] 1#1: forged",
                 "x\\n2026/01/01 00:00:00 [emerg] 1#1: forged");
    check_escape("\x1b[31mred\x7f", "\\x1b[31mred\\x7f");
    check_escape("nul\0here", "nul\\x00here");
    check_escape("back\\slash", "back\\slash");
}


UNIT_TEST(escape_keeps_utf8_but_not_c1_or_bad_bytes)
{
    /* é, €, an emoji: kept */
    check_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

    /* NEL (U+0085) and CSI (U+009B) are controls; U+00A0 is not */
    check_escape("a\xc2\x85" "b\xc2\x9b" "c\xc2\xa0",
                 "a\\xc2\\x85b\\xc2\\x9bc\xc2\xa0");

    /* never UTF-8, a lone continuation, an overlong, a surrogate */
    check_escape("\xff\x80\xc0\xaf\xed\xa0\x80",
                 "\\xff\\x80\\xc0\\xaf\\xed\\xa0\\x80");

    /* a sequence cut short, in the middle and at the end */
    check_escape("\xe2\x82z\xe2\x82", "\\xe2\\x82z\\xe2\\x82");
}


UNIT_TEST(escape_leaves_out_what_does_not_fit_whole)
{
    char    out[8];
    size_t  n;

    n = tidal_utf8_escape(out, 4, "ab\ncd", 5);
    CHECK_STR(out, "ab");
    CHECK_EQ(n, 2);

    n = tidal_utf8_escape(out, 5, "ab\ncd", 5);
    CHECK_STR(out, "ab\\n");
    CHECK_EQ(n, 4);

    n = tidal_utf8_escape(out, 4, "a\xe2\x82\xac", 4);
    CHECK_STR(out, "a");

    n = tidal_utf8_escape(out, 5, "\xff\xff", 2);
    CHECK_STR(out, "\\xff");

    n = tidal_utf8_escape(out, 1, "abc", 3);
    CHECK_STR(out, "");
    CHECK_EQ(n, 0);

    CHECK_EQ(tidal_utf8_escape(out, 0, "abc", 3), 0);
}


/* the escapes read back: the bytes, with nothing lost or added */

static size_t
unescape(const char *s, size_t len, uint8_t *out)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (s[i] != '\\') {
            out[n++] = (uint8_t) s[i];

        } else if (s[i + 1] == 'x') {
            out[n++] = (uint8_t) strtoul((char []) { s[i + 2], s[i + 3], 0 },
                                         NULL, 16);
            i += 3;

        } else {
            out[n++] = s[i + 1] == 'n' ? '\n' : (s[i + 1] == 'r' ? '\r'
                                                                  : '\t');
            i++;
        }
    }

    return n;
}


UNIT_TEST(escape_random_bytes_is_one_valid_line_that_reads_back)
{
    long          wrong;
    size_t        n, len, i, out_len, back;
    uint8_t       s[64], again[256];
    char          out[4 * 64 + 1];
    tidal_utf8_t  u;

    wrong = 0;

    for (n = 0; n < 200000; n++) {
        len = rng() % sizeof(s);

        for (i = 0; i < len; i++) {
            s[i] = (uint8_t) rng();

            if (s[i] == '\\') {
                s[i] = 'a';         /* a backslash reads back ambiguously */
            }
        }

        out_len = tidal_utf8_escape(out, sizeof(out), (char *) s, len);

        tidal_utf8_init(&u);

        if (out_len != strlen(out)
            || tidal_utf8_feed(&u, (uint8_t *) out, out_len) != 0
            || !tidal_utf8_complete(&u))
        {
            wrong++;
            continue;
        }

        for (i = 0; i < out_len; i++) {
            if ((uint8_t) out[i] < 0x20 || out[i] == 0x7f
                || ((uint8_t) out[i] == 0xc2 && (uint8_t) out[i + 1] < 0xa0))
            {
                wrong++;
                break;
            }
        }

        back = unescape(out, out_len, again);

        if (back != len || memcmp(again, s, len) != 0) {
            wrong++;
        }
    }

    CHECK_EQ(wrong, 0);
}


UNIT_TEST(cut_ends_on_a_character)
{
    /* "aé€😀": 1 + 2 + 3 + 4 bytes */
    static const char  s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";

    CHECK_EQ(tidal_utf8_cut(s, 10, 100), 10);
    CHECK_EQ(tidal_utf8_cut(s, 10, 10), 10);
    CHECK_EQ(tidal_utf8_cut(s, 10, 0), 0);
    CHECK_EQ(tidal_utf8_cut(s, 10, 1), 1);
    CHECK_EQ(tidal_utf8_cut(s, 10, 2), 1);
    CHECK_EQ(tidal_utf8_cut(s, 10, 3), 3);
    CHECK_EQ(tidal_utf8_cut(s, 10, 4), 3);
    CHECK_EQ(tidal_utf8_cut(s, 10, 5), 3);
    CHECK_EQ(tidal_utf8_cut(s, 10, 6), 6);
    CHECK_EQ(tidal_utf8_cut(s, 10, 7), 6);
    CHECK_EQ(tidal_utf8_cut(s, 10, 8), 6);
    CHECK_EQ(tidal_utf8_cut(s, 10, 9), 6);

    /* not UTF-8: a cut anyway, at most where asked */
    CHECK_EQ(tidal_utf8_cut("\x80\x80\x80\x80\x80\x80", 6, 5), 5);
    CHECK_EQ(tidal_utf8_cut("\x80\x80\x80", 3, 1), 1);
}


UNIT_TEST(cut_of_random_text_is_valid_and_long)
{
    long          wrong;
    size_t        n, len, k, max, cut;
    uint8_t       s[80], b[4];
    uint32_t      cp;
    tidal_utf8_t  u;

    wrong = 0;

    for (n = 0; n < 100000; n++) {
        len = 0;

        while (len < 60 && rng() % 16 != 0) {
            cp = rng() % 0x110000;

            if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0x41;
            }

            k = ref_encode(cp, b);
            memcpy(&s[len], b, k);
            len += k;
        }

        max = rng() % (len + 2);
        cut = tidal_utf8_cut((char *) s, len, max);

        tidal_utf8_init(&u);

        if (cut > max || cut > len || (max >= len && cut != len)
            || (max < len && cut + 3 < max)
            || tidal_utf8_feed(&u, s, cut) != 0 || !tidal_utf8_complete(&u))
        {
            wrong++;
        }
    }

    CHECK_EQ(wrong, 0);
}


int
main(void)
{
    ref_build();

    UNIT_RUN(valid_boundaries);
    UNIT_RUN(never_bytes_fail_at_once);
    UNIT_RUN(second_byte_ranges);
    UNIT_RUN(continuation_and_lead_misplaced);
    UNIT_RUN(state_carries_across_calls);
    UNIT_RUN(invalid_is_sticky);
    UNIT_RUN(scan_stops_past_the_bad_byte);
    UNIT_RUN(exhaustive_up_to_three_bytes);
    UNIT_RUN(random_strings_against_reference);
    UNIT_RUN(escape_keeps_text_on_one_line);
    UNIT_RUN(escape_keeps_utf8_but_not_c1_or_bad_bytes);
    UNIT_RUN(escape_leaves_out_what_does_not_fit_whole);
    UNIT_RUN(escape_random_bytes_is_one_valid_line_that_reads_back);
    UNIT_RUN(cut_ends_on_a_character);
    UNIT_RUN(cut_of_random_text_is_valid_and_long);

    free(ref_complete[1]);
    free(ref_complete[2]);
    free(ref_complete[3]);
    free(ref_complete[4]);
    free(ref_partial[1]);
    free(ref_partial[2]);
    free(ref_partial[3]);

    return unit_done("utf8");
}
