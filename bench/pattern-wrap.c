/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * pattern-wrap: prints the GHCi block tidal-helper sends for
 * tidal_eval {"channel": "dN", "pattern": PATTERN}, made by the helper's
 * own code (src/core/tidal_pattern.c), so that bench/eval-latency types
 * into a bare GHCi exactly what the helper types.
 *
 * Usage: pattern-wrap CHANNEL PATTERN      e.g. pattern-wrap 1 'sound "bd"'
 * Exit status 0; 1 when the sandbox refuses the pattern; 2 on misuse.
 *
 * Build: cc -O2 -Isrc/core -o pattern-wrap bench/pattern-wrap.c \
 *            src/core/tidal_pattern.c src/core/tidal_utf8.c
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_pattern.h"


int
main(int argc, char **argv)
{
    int     channel;
    char    err[512], head[8], *text;
    size_t  len;

    if (argc != 3) {
        fprintf(stderr, "usage: pattern-wrap CHANNEL PATTERN\n");
        return 2;
    }

    channel = atoi(argv[1]);
    len = strlen(argv[2]);

    /* the helper checks before it wraps (tidal_helper_eval) */

    if (tidal_pattern_check(argv[2], len, err, sizeof(err)) != 0) {
        fprintf(stderr, "pattern-wrap: refused: %s\n", err);
        return 1;
    }

    snprintf(head, sizeof(head), "d%d", channel);

    text = tidal_pattern_wrap(head, channel, argv[2], len, &len);
    if (text == NULL) {
        fprintf(stderr, "pattern-wrap: channel %d is not 1..16\n", channel);
        return 2;
    }

    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        free(text);
        return 2;
    }

    free(text);

    return 0;
}
