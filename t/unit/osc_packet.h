/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * OSC packets built by hand for the tests of what reads them
 * (test_osc.c, test_sound.c).
 */

#ifndef _TIDAL_OSC_PACKET_H_INCLUDED_
#define _TIDAL_OSC_PACKET_H_INCLUDED_


#include <stdint.h>
#include <string.h>


#define UNIT_UNUSED  __attribute__((unused))


typedef struct {
    unsigned char  data[2048];
    size_t         len;
} packet_t;


static UNIT_UNUSED void
put_bytes(packet_t *pk, const void *p, size_t n)
{
    memcpy(pk->data + pk->len, p, n);
    pk->len += n;
}


static UNIT_UNUSED void
put_u32(packet_t *pk, uint32_t v)
{
    unsigned char  b[4];

    b[0] = (unsigned char) (v >> 24);
    b[1] = (unsigned char) (v >> 16);
    b[2] = (unsigned char) (v >> 8);
    b[3] = (unsigned char) v;
    put_bytes(pk, b, 4);
}


/* a string with its NUL, padded to 4 bytes */
static UNIT_UNUSED void
put_str(packet_t *pk, const char *s)
{
    size_t  n;

    n = strlen(s) + 1;
    put_bytes(pk, s, n);

    while (n++ % 4) {
        put_bytes(pk, "", 1);
    }
}


static UNIT_UNUSED void
put_f32(packet_t *pk, float f)
{
    uint32_t  u;

    memcpy(&u, &f, 4);
    put_u32(pk, u);
}


/* a bundle's head: its timetag is 0xe8000000.12345678 */
static UNIT_UNUSED void
bundle_head(packet_t *pk)
{
    put_bytes(pk, "#bundle", 8);
    put_u32(pk, 0xe8000000);
    put_u32(pk, 0x12345678);
}


/* elements, each with its size, after a bundle's head */
static UNIT_UNUSED void
put_element(packet_t *pk, const packet_t *el)
{
    put_u32(pk, (uint32_t) el->len);
    put_bytes(pk, el->data, el->len);
}


#endif /* _TIDAL_OSC_PACKET_H_INCLUDED_ */
