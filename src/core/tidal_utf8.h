/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Incremental UTF-8 validator that fails as soon as the bytes seen so far
 * cannot start a valid sequence (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), and what is built on it: text made safe for a
 * log line, text cut short on a character boundary.  Pure C.
 */

#ifndef _TIDAL_UTF8_H_INCLUDED_
#define _TIDAL_UTF8_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef struct {
    uint32_t    state;     /* 0: between code points */
} tidal_utf8_t;


#define tidal_utf8_init(u)      (u)->state = 0
#define tidal_utf8_complete(u)  ((u)->state == 0)

/* returns 0 while still possibly valid, -1 once invalid (sticky) */
int tidal_utf8_feed(tidal_utf8_t *u, const uint8_t *p, size_t n);

/*
 * As tidal_utf8_feed, and *used tells how far it got: n on 0; on -1 the
 * offset just past the byte that made the input invalid (0 if it already
 * was), so that a caller can stop consuming exactly there.
 */
int tidal_utf8_scan(tidal_utf8_t *u, const uint8_t *p, size_t n,
    size_t *used);

/*
 * src (len bytes) as one line of a log, in dst (size bytes, NUL-
 * terminated): valid UTF-8 stays as it is; \n, \r and \t become those
 * two characters, other control characters (C0, DEL, C1) and bytes that
 * are not UTF-8 become \xNN, so that no text can start a line of its
 * own.  What does not fit is left out, never half an escape or a
 * character.  Returns the length written.
 */
size_t tidal_utf8_escape(char *dst, size_t size, const char *src,
    size_t len);

/*
 * The length of the longest prefix of s (len bytes) of at most max bytes
 * that does not end inside a UTF-8 sequence.
 */
size_t tidal_utf8_cut(const char *s, size_t len, size_t max);


#endif /* _TIDAL_UTF8_H_INCLUDED_ */
