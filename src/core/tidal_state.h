/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The channel state document (patterns, tempo, history) as kept in the
 * zone and in tidal_state_file: validation and defaults.  Pure C with
 * jansson, so a corrupt file is unit-tested and fuzzed directly.
 */

#ifndef _TIDAL_STATE_H_INCLUDED_
#define _TIDAL_STATE_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>


#define TIDAL_STATE_VERSION      1
#define TIDAL_STATE_CHANNELS     16
#define TIDAL_STATE_DEFAULT_CPS  0.5625        /* Tidal's own default */
#define TIDAL_STATE_HISTORY_MAX  1000
#define TIDAL_STATE_PATTERN_MAX  65536


/* {"version":1,"tempo":{"cps":0.5625},"channels":{},"history":[]} */
json_t *tidal_state_empty(void);

/*
 * Parses and checks a state document; returns it normalized, or NULL
 * with a one-line reason in err.
 */
json_t *tidal_state_parse(const char *text, size_t len, char *err,
    size_t errlen);


#endif /* _TIDAL_STATE_H_INCLUDED_ */
