/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Newline-delimited messages on a descriptor: the helper's stdio
 * transport, its socket for nginx's workers and the bridge's stdin read
 * them alike, and write whole messages alike.
 */

#ifndef _TIDAL_LINES_H_INCLUDED_
#define _TIDAL_LINES_H_INCLUDED_


#include <stddef.h>


typedef void (*tidal_lines_handler_pt)(void *data, char *line, size_t len);


typedef struct {
    char      *data;
    size_t     len;
    size_t     size;
    size_t     max;              /* the longest line kept */
    unsigned   skipping:1;       /* the rest of a line too long */
} tidal_lines_t;


/*
 * Reads once from fd and hands every complete line to handler, NUL-
 * terminated in place, without its "\n" and a "\r" before it; empty
 * lines are skipped, a line longer than l->max is dropped with a warning
 * naming what it came from.  At the end of input the last line is handed
 * over even without its newline.  Returns 0, or -1 at the end of input
 * or on a read error (logged), -2 without memory.
 */
int tidal_lines_read(tidal_lines_t *l, int fd, const char *what,
    tidal_lines_handler_pt handler, void *data);

void tidal_lines_free(tidal_lines_t *l);

/* writes all of p, waiting when fd is non-blocking; 0, or -1 (errno) */
int tidal_write_all(int fd, const void *p, size_t len);


#endif /* _TIDAL_LINES_H_INCLUDED_ */
