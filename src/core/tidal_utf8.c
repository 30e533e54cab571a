/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Incremental UTF-8 validation: a DFA over byte classes, fed piece by
 * piece; on the same tables, text escaped for a log line.
 */


#include <string.h>

#include "tidal_utf8.h"


/*
 * A state counts the continuation bytes still expected.  The lead bytes
 * whose second byte has a narrower range (E0, ED, F0, F4) get states of
 * their own, so overlongs, surrogates and code points above U+10FFFF are
 * refused at the second byte, the first one that gives them away.
 */

#define TIDAL_UTF8_ACCEPT   0    /* between code points, as in the header */
#define TIDAL_UTF8_NEED1    1
#define TIDAL_UTF8_NEED2    2
#define TIDAL_UTF8_NEED3    3
#define TIDAL_UTF8_E0       4    /* A0..BF, then one more */
#define TIDAL_UTF8_ED       5    /* 80..9F, then one more */
#define TIDAL_UTF8_F0       6    /* 90..BF, then two more */
#define TIDAL_UTF8_F4       7    /* 80..8F, then two more */
#define TIDAL_UTF8_REJECT   8
#define TIDAL_UTF8_STATES   9

/* byte classes: bytes that every state treats alike share one */
#define TIDAL_UTF8_C_ASCII  0    /* 00..7F */
#define TIDAL_UTF8_C_80     1    /* 80..8F */
#define TIDAL_UTF8_C_90     2    /* 90..9F */
#define TIDAL_UTF8_C_A0     3    /* A0..BF */
#define TIDAL_UTF8_C_BAD    4    /* C0 C1 F5..FF: never in UTF-8 */
#define TIDAL_UTF8_C_LEAD2  5    /* C2..DF */
#define TIDAL_UTF8_C_E0     6
#define TIDAL_UTF8_C_LEAD3  7    /* E1..EC EE EF */
#define TIDAL_UTF8_C_ED     8
#define TIDAL_UTF8_C_F0     9
#define TIDAL_UTF8_C_LEAD4  10   /* F1..F3 */
#define TIDAL_UTF8_C_F4     11
#define TIDAL_UTF8_CLASSES  12


static const uint8_t  tidal_utf8_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F, 90..9F, A0..BF */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0 C1 bad, C2..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0, E1..EC, ED, EE EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0, F1..F3, F4, F5..FF bad */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4
};


#define R  TIDAL_UTF8_REJECT

static const uint8_t  tidal_utf8_next[TIDAL_UTF8_STATES][TIDAL_UTF8_CLASSES] = {
    /*           00  80  90  A0 bad  C2  E0  E1  ED  F0  F1  F4 */
    /* ACCEPT */ { 0,  R,  R,  R,  R,  1,  4,  2,  5,  6,  3,  7 },
    /* NEED1 */  { R,  0,  0,  0,  R,  R,  R,  R,  R,  R,  R,  R },
    /* NEED2 */  { R,  1,  1,  1,  R,  R,  R,  R,  R,  R,  R,  R },
    /* NEED3 */  { R,  2,  2,  2,  R,  R,  R,  R,  R,  R,  R,  R },
    /* E0 */     { R,  R,  R,  1,  R,  R,  R,  R,  R,  R,  R,  R },
    /* ED */     { R,  1,  1,  R,  R,  R,  R,  R,  R,  R,  R,  R },
    /* F0 */     { R,  R,  2,  2,  R,  R,  R,  R,  R,  R,  R,  R },
    /* F4 */     { R,  2,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R },
    /* REJECT */ { R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R }
};

#undef R


int
tidal_utf8_scan(tidal_utf8_t *u, const uint8_t *p, size_t n, size_t *used)
{
    size_t    i;
    uint32_t  s;

    s = u->state;

    if (s == TIDAL_UTF8_REJECT) {
        *used = 0;
        return -1;
    }

    for (i = 0; i < n; i++) {
        s = tidal_utf8_next[s][tidal_utf8_class[p[i]]];

        if (s == TIDAL_UTF8_REJECT) {
            u->state = s;
            *used = i + 1;
            return -1;
        }
    }

    u->state = s;
    *used = n;

    return 0;
}


int
tidal_utf8_feed(tidal_utf8_t *u, const uint8_t *p, size_t n)
{
    size_t  used;

    return tidal_utf8_scan(u, p, n, &used);
}


/*
 * A log line is read by people and by tools that split on newlines: a
 * control character could end the line early and let the text after it
 * pass for a line of its own (C1's NEL is a newline to some).
 */

size_t
tidal_utf8_escape(char *dst, size_t size, const char *src, size_t len)
{
    int                   c1;
    char                  piece[8];
    size_t                i, j, k, n, out;
    uint32_t              s;
    const unsigned char  *p;
    static const char     hex[] = "0123456789abcdef";

    if (size == 0) {
        return 0;
    }

    p = (const unsigned char *) src;
    out = 0;

    for (i = 0; i < len; i += k) {

        /* k: how many bytes of src this piece stands for */

        s = tidal_utf8_next[TIDAL_UTF8_ACCEPT][tidal_utf8_class[p[i]]];

        for (k = 1; s != TIDAL_UTF8_ACCEPT && s != TIDAL_UTF8_REJECT
                    && i + k < len;
             k++)
        {
            s = tidal_utf8_next[s][tidal_utf8_class[p[i + k]]];
        }

        if (s != TIDAL_UTF8_ACCEPT) {
            k = 1;          /* not UTF-8: this byte alone, escaped */
        }

        /* a C1 control is the pair C2 80 .. C2 9F */

        c1 = (s == TIDAL_UTF8_ACCEPT && k == 2 && p[i] == 0xc2
              && p[i + 1] < 0xa0);

        n = 0;

        if (p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
            piece[n++] = '\\';
            piece[n++] = p[i] == '\n' ? 'n' : (p[i] == '\r' ? 'r' : 't');

        } else if (s != TIDAL_UTF8_ACCEPT || p[i] < 0x20 || p[i] == 0x7f
                   || c1)
        {
            for (j = 0; j < k; j++) {
                piece[n++] = '\\';
                piece[n++] = 'x';
                piece[n++] = hex[p[i + j] >> 4];
                piece[n++] = hex[p[i + j] & 0x0f];
            }

        } else {
            memcpy(piece, p + i, k);
            n = k;
        }

        if (out + n >= size) {
            break;
        }

        memcpy(dst + out, piece, n);
        out += n;
    }

    dst[out] = '\0';

    return out;
}


size_t
tidal_utf8_cut(const char *s, size_t len, size_t max)
{
    size_t  n;

    if (len <= max) {
        return len;
    }

    /*
     * s[n], the first byte left out, must not continue a sequence; none
     * has more than three continuation bytes
     */

    n = max;

    while (n > 0 && max - n < 3 && ((unsigned char) s[n] & 0xc0) == 0x80) {
        n--;
    }

    /* not UTF-8 there anyway */

    if (((unsigned char) s[n] & 0xc0) == 0x80) {
        return max;
    }

    return n;
}
