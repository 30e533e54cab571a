/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Incremental UTF-8 validator that fails as soon as the bytes seen so far
 * cannot start a valid sequence (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).  Pure C.
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


#endif /* _TIDAL_UTF8_H_INCLUDED_ */
