/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The room's sound as the workers send it on: each /dirt/play the relay
 * passes becomes a sound event, {"time", "channel", "params"}, and a
 * batch of them one notifications/tidal/sound, written here as JSON text
 * once for every worker and client.  Pure: OSC bytes in, text out.
 */

#ifndef _TIDAL_SOUND_H_INCLUDED_
#define _TIDAL_SOUND_H_INCLUDED_


#include <stddef.h>


typedef struct {
    char         *data;
    size_t        len;
    size_t        size;
    unsigned      events;        /* in the batch */
    unsigned      failed:1;      /* out of memory: the batch is lost */
    const char   *skip;          /* sounds that are not the room's */
    size_t        skip_len;
} tidal_sound_t;


/* an empty batch; plays whose s starts with skip are left out */
void tidal_sound_init(tidal_sound_t *b, const char *skip);

/* adds the /dirt/play of an OSC packet; how many */
unsigned tidal_sound_add(tidal_sound_t *b, const unsigned char *p, size_t n);

/*
 * The batch as one JSON-RPC notification (NUL-terminated, no newline),
 * valid until the next add; NULL when it holds no event.  The next add
 * starts a new batch.
 */
const char *tidal_sound_take(tidal_sound_t *b, size_t *len);

void tidal_sound_free(tidal_sound_t *b);


#endif /* _TIDAL_SOUND_H_INCLUDED_ */
