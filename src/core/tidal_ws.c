/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * RFC 6455 codec: parses frames as their bytes arrive (masked client frames
 * on the server side, unmasked server frames on the client side), builds
 * frames for either side, computes and checks the handshake.
 */


#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "tidal_ws.h"


#define TIDAL_WS_ST_HEADER     0
#define TIDAL_WS_ST_PAYLOAD    1
#define TIDAL_WS_ST_CLOSED     2

/* a buffer that grew past this is given back once its message is out */
#define TIDAL_WS_KEEP_BUFFER   16384

#define TIDAL_WS_GUID          "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#define tidal_ws_is_control(op)  ((op) & 0x8)


static tidal_ws_event_type_e tidal_ws_header_byte(tidal_ws_parser_t *p,
    tidal_ws_event_t *ev);
static tidal_ws_event_type_e tidal_ws_first_byte(tidal_ws_parser_t *p,
    uint8_t b, tidal_ws_event_t *ev);
static tidal_ws_event_type_e tidal_ws_length_known(tidal_ws_parser_t *p,
    tidal_ws_event_t *ev);
static tidal_ws_event_type_e tidal_ws_header_end(tidal_ws_parser_t *p,
    tidal_ws_event_t *ev);
static tidal_ws_event_type_e tidal_ws_payload(tidal_ws_parser_t *p,
    const uint8_t *in, size_t n, size_t *used, tidal_ws_event_t *ev);
static tidal_ws_event_type_e tidal_ws_close_bytes(tidal_ws_parser_t *p,
    size_t start, size_t *used, tidal_ws_event_t *ev);
static tidal_ws_event_type_e tidal_ws_frame_end(tidal_ws_parser_t *p,
    tidal_ws_event_t *ev);
static tidal_ws_event_type_e tidal_ws_fail(tidal_ws_parser_t *p,
    tidal_ws_event_t *ev, uint16_t code, const char *reason);
static tidal_ws_event_type_e tidal_ws_event(tidal_ws_event_t *ev,
    tidal_ws_event_type_e type, uint16_t code, const uint8_t *data,
    size_t len);
static void tidal_ws_next_frame(tidal_ws_parser_t *p);
static void tidal_ws_release(tidal_ws_parser_t *p);
static int tidal_ws_base64_decode(uint8_t *out, size_t *out_len,
    const char *in, size_t len);
static int tidal_ws_base64_value(char c);
static int tidal_ws_header_is(const char *name, size_t len,
    const char *want);
static int tidal_ws_token_in(const char *list, size_t len,
    const char *token);


void
tidal_ws_parser_init(tidal_ws_parser_t *p, size_t max_message)
{
    memset(p, 0, sizeof(tidal_ws_parser_t));

    p->max_message = max_message;
    p->state = TIDAL_WS_ST_HEADER;
    p->hdr_need = 2;
}


void
tidal_ws_parser_init_client(tidal_ws_parser_t *p, size_t max_message)
{
    tidal_ws_parser_init(p, max_message);

    /* the mask stays all zero: unmasking leaves the payload as it is */
    p->from_server = 1;
}


void
tidal_ws_parser_free(tidal_ws_parser_t *p)
{
    tidal_ws_release(p);
}


tidal_ws_event_type_e
tidal_ws_parse(tidal_ws_parser_t *p, const uint8_t **pos, const uint8_t *end,
    tidal_ws_event_t *ev)
{
    size_t                 n, used;
    uint64_t               left;
    tidal_ws_event_type_e  rc;

    if (p->failed) {
        tidal_ws_event(ev, TIDAL_WS_FAIL, p->fail_code, NULL, 0);
        ev->reason = p->fail_reason;
        return TIDAL_WS_FAIL;
    }

    /* a peer sends nothing after its close frame: what comes is dropped */
    if (p->state == TIDAL_WS_ST_CLOSED) {
        *pos = end;
        return tidal_ws_event(ev, TIDAL_WS_AGAIN, 0, NULL, 0);
    }

    /* the previous call may have handed out a large message */
    if (!p->in_message && p->msg_cap > TIDAL_WS_KEEP_BUFFER) {
        tidal_ws_release(p);
    }

    while (*pos < end) {

        if (p->state == TIDAL_WS_ST_HEADER) {
            p->hdr[p->hdr_len++] = *(*pos)++;
            rc = tidal_ws_header_byte(p, ev);

        } else {
            left = p->frame_len - p->frame_done;
            n = end - *pos;

            if ((uint64_t) n > left) {
                n = (size_t) left;
            }

            rc = tidal_ws_payload(p, *pos, n, &used, ev);
            *pos += used;
        }

        if (rc != TIDAL_WS_AGAIN) {
            return rc;
        }
    }

    return tidal_ws_event(ev, TIDAL_WS_AGAIN, 0, NULL, 0);
}


int
tidal_ws_parser_busy(const tidal_ws_parser_t *p)
{
    if (p->failed || p->state == TIDAL_WS_ST_CLOSED) {
        return 0;
    }

    return p->in_message || p->hdr_len > 0
           || p->state == TIDAL_WS_ST_PAYLOAD;
}


/*
 * Each header byte is checked as it arrives, so that a bad frame is
 * refused at the first byte that shows it is bad.
 */

static tidal_ws_event_type_e
tidal_ws_header_byte(tidal_ws_parser_t *p, tidal_ws_event_t *ev)
{
    size_t                 i, mask_len;
    uint8_t                b;
    unsigned               len7;
    tidal_ws_event_type_e  rc;

    b = p->hdr[p->hdr_len - 1];

    if (p->hdr_len == 1) {
        return tidal_ws_first_byte(p, b, ev);
    }

    /* a client masks every frame, a server none (RFC 6455 5.1) */
    mask_len = p->from_server ? 0 : 4;

    if (p->hdr_len == 2) {
        if (p->from_server && (b & 0x80)) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "masked frame from the server");
        }

        if (!p->from_server && !(b & 0x80)) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "unmasked frame");
        }

        len7 = b & 0x7f;

        if (tidal_ws_is_control(p->opcode) && len7 > TIDAL_WS_MAX_CONTROL) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "control frame longer than 125 bytes");
        }

        if (len7 == 126) {
            p->hdr_need = 2 + 2 + mask_len;
            return TIDAL_WS_AGAIN;
        }

        if (len7 == 127) {
            p->hdr_need = 2 + 8 + mask_len;
            return TIDAL_WS_AGAIN;
        }

        p->hdr_need = 2 + mask_len;
        p->frame_len = len7;

        rc = tidal_ws_length_known(p, ev);

        if (rc != TIDAL_WS_AGAIN || p->hdr_len < p->hdr_need) {
            return rc;
        }

        return tidal_ws_header_end(p, ev);
    }

    if (p->hdr_len == 3 && p->hdr_need == 2 + 8 + mask_len
        && (b & 0x80))
    {
        return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                             "64-bit length with the high bit set");
    }

    if (p->hdr_len == p->hdr_need - mask_len) {
        p->frame_len = 0;

        for (i = 2; i < p->hdr_len; i++) {
            p->frame_len = (p->frame_len << 8) | p->hdr[i];
        }

        rc = tidal_ws_length_known(p, ev);

        if (rc != TIDAL_WS_AGAIN || p->hdr_len < p->hdr_need) {
            return rc;
        }

        return tidal_ws_header_end(p, ev);
    }

    if (p->hdr_len < p->hdr_need) {
        return TIDAL_WS_AGAIN;
    }

    return tidal_ws_header_end(p, ev);
}


static tidal_ws_event_type_e
tidal_ws_first_byte(tidal_ws_parser_t *p, uint8_t b, tidal_ws_event_t *ev)
{
    p->fin = b >> 7;
    p->opcode = b & 0x0f;

    /* no extension is ever negotiated, so no RSV bit has a meaning */
    if (b & 0x70) {
        return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                             "reserved bits set");
    }

    switch (p->opcode) {

    case TIDAL_WS_OP_TEXT:
        if (p->in_message) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "text frame inside a fragmented message");
        }

        p->in_message = 1;
        p->msg_len = 0;
        tidal_utf8_init(&p->utf8);
        break;

    case TIDAL_WS_OP_CONT:
        if (!p->in_message) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "continuation frame without a message");
        }

        break;

    case TIDAL_WS_OP_BINARY:
        return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_UNSUPPORTED,
                             "binary frames are not supported");

    case TIDAL_WS_OP_CLOSE:
    case TIDAL_WS_OP_PING:
    case TIDAL_WS_OP_PONG:
        if (!p->fin) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "fragmented control frame");
        }

        p->ctl_len = 0;
        tidal_utf8_init(&p->ctl_utf8);
        break;

    default:
        return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                             "reserved opcode");
    }

    return TIDAL_WS_AGAIN;
}


/*
 * The declared length decides before any payload arrives whether the
 * message may grow that much; room for the whole frame is made at once.
 */

static tidal_ws_event_type_e
tidal_ws_length_known(tidal_ws_parser_t *p, tidal_ws_event_t *ev)
{
    size_t    need, cap;
    uint8_t  *buf;

    if (tidal_ws_is_control(p->opcode)) {
        if (p->opcode == TIDAL_WS_OP_CLOSE && p->frame_len == 1) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "close frame with a 1-byte payload");
        }

        return TIDAL_WS_AGAIN;
    }

    /* msg_len never exceeds max_message, so this cannot wrap */
    if (p->frame_len > (uint64_t) (p->max_message - p->msg_len)) {
        return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_TOO_BIG,
                             "message too big");
    }

    need = p->msg_len + (size_t) p->frame_len;

    if (need <= p->msg_cap) {
        return TIDAL_WS_AGAIN;
    }

    /* doubling keeps many small fragments from copying the message often */
    if (p->msg_cap > p->max_message / 2) {
        cap = p->max_message;

    } else {
        cap = p->msg_cap * 2;
    }

    if (cap < need) {
        cap = need;
    }

    buf = realloc(p->msg, cap);
    if (buf == NULL) {
        return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_INTERNAL,
                             "out of memory for the message");
    }

    p->msg = buf;
    p->msg_cap = cap;

    return TIDAL_WS_AGAIN;
}


static tidal_ws_event_type_e
tidal_ws_header_end(tidal_ws_parser_t *p, tidal_ws_event_t *ev)
{
    if (!p->from_server) {
        memcpy(p->mask, &p->hdr[p->hdr_need - 4], 4);
    }

    p->frame_done = 0;
    p->state = TIDAL_WS_ST_PAYLOAD;

    if (p->frame_len == 0) {
        return tidal_ws_frame_end(p, ev);
    }

    return TIDAL_WS_AGAIN;
}


static tidal_ws_event_type_e
tidal_ws_payload(tidal_ws_parser_t *p, const uint8_t *in, size_t n,
    size_t *used, tidal_ws_event_t *ev)
{
    size_t    i, start, ok;
    uint8_t  *dst;

    if (tidal_ws_is_control(p->opcode)) {
        start = p->ctl_len;
        dst = &p->ctl[start];

    } else {
        start = p->msg_len;
        dst = &p->msg[start];
    }

    for (i = 0; i < n; i++) {
        dst[i] = in[i] ^ p->mask[(p->frame_done + i) & 3];
    }

    *used = n;

    if (tidal_ws_is_control(p->opcode)) {
        p->ctl_len += n;

        if (p->opcode == TIDAL_WS_OP_CLOSE
            && tidal_ws_close_bytes(p, start, used, ev) == TIDAL_WS_FAIL)
        {
            return TIDAL_WS_FAIL;
        }

    } else {
        if (tidal_utf8_scan(&p->utf8, dst, n, &ok) != 0) {
            *used = ok;
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_INVALID_DATA,
                                 "invalid UTF-8 in a text message");
        }

        p->msg_len += n;
    }

    p->frame_done += n;

    if (p->frame_done == p->frame_len) {
        return tidal_ws_frame_end(p, ev);
    }

    return TIDAL_WS_AGAIN;
}


/* checks close payload bytes from start on, which have just arrived */

static tidal_ws_event_type_e
tidal_ws_close_bytes(tidal_ws_parser_t *p, size_t start, size_t *used,
    tidal_ws_event_t *ev)
{
    size_t    from, ok;
    unsigned  code;

    if (start < 2 && p->ctl_len >= 2) {
        code = (p->ctl[0] << 8) | p->ctl[1];

        if (!tidal_ws_close_code_valid(code)) {
            *used = 2 - start;
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_PROTOCOL,
                                 "invalid close code");
        }
    }

    from = (start > 2) ? start : 2;

    if (p->ctl_len > from
        && tidal_utf8_scan(&p->ctl_utf8, &p->ctl[from], p->ctl_len - from,
                           &ok)
           != 0)
    {
        *used = from - start + ok;
        return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_INVALID_DATA,
                             "invalid UTF-8 in a close reason");
    }

    return TIDAL_WS_AGAIN;
}


static tidal_ws_event_type_e
tidal_ws_frame_end(tidal_ws_parser_t *p, tidal_ws_event_t *ev)
{
    size_t          len;
    const uint8_t  *data;

    tidal_ws_next_frame(p);

    switch (p->opcode) {

    case TIDAL_WS_OP_PING:
        return tidal_ws_event(ev, TIDAL_WS_PING, 0, p->ctl, p->ctl_len);

    case TIDAL_WS_OP_PONG:
        return tidal_ws_event(ev, TIDAL_WS_PONG, 0, p->ctl, p->ctl_len);

    case TIDAL_WS_OP_CLOSE:
        if (p->ctl_len > 0 && !tidal_utf8_complete(&p->ctl_utf8)) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_INVALID_DATA,
                                 "close reason ends inside a UTF-8 "
                                 "sequence");
        }

        /* nothing may follow, so a half-received message is dropped now */
        tidal_ws_release(p);
        p->state = TIDAL_WS_ST_CLOSED;

        if (p->ctl_len == 0) {
            return tidal_ws_event(ev, TIDAL_WS_CLOSE, TIDAL_WS_CLOSE_NO_STATUS,
                                  p->ctl, 0);
        }

        return tidal_ws_event(ev, TIDAL_WS_CLOSE,
                              (uint16_t) ((p->ctl[0] << 8) | p->ctl[1]),
                              &p->ctl[2], p->ctl_len - 2);

    default:
        if (!p->fin) {
            return TIDAL_WS_AGAIN;
        }

        if (!tidal_utf8_complete(&p->utf8)) {
            return tidal_ws_fail(p, ev, TIDAL_WS_CLOSE_INVALID_DATA,
                                 "text message ends inside a UTF-8 "
                                 "sequence");
        }

        data = (p->msg != NULL) ? p->msg : (const uint8_t *) "";
        len = p->msg_len;

        /* the buffer stays as it is until the next call: data points in */
        p->in_message = 0;
        p->msg_len = 0;

        return tidal_ws_event(ev, TIDAL_WS_TEXT, 0, data, len);
    }
}


static tidal_ws_event_type_e
tidal_ws_fail(tidal_ws_parser_t *p, tidal_ws_event_t *ev, uint16_t code,
    const char *reason)
{
    p->failed = 1;
    p->fail_code = code;
    p->fail_reason = reason;

    /* a dead parser keeps no memory for a connection about to close */
    tidal_ws_release(p);

    tidal_ws_event(ev, TIDAL_WS_FAIL, code, NULL, 0);
    ev->reason = reason;

    return TIDAL_WS_FAIL;
}


static tidal_ws_event_type_e
tidal_ws_event(tidal_ws_event_t *ev, tidal_ws_event_type_e type,
    uint16_t code, const uint8_t *data, size_t len)
{
    ev->type = type;
    ev->code = code;
    ev->data = data;
    ev->len = len;
    ev->reason = NULL;

    return type;
}


static void
tidal_ws_next_frame(tidal_ws_parser_t *p)
{
    p->state = TIDAL_WS_ST_HEADER;
    p->hdr_len = 0;
    p->hdr_need = 2;
}


static void
tidal_ws_release(tidal_ws_parser_t *p)
{
    free(p->msg);

    p->msg = NULL;
    p->msg_len = 0;
    p->msg_cap = 0;
    p->in_message = 0;
}


size_t
tidal_ws_frame_header(uint8_t *buf, unsigned opcode, uint64_t len)
{
    size_t  i;

    buf[0] = (uint8_t) (0x80 | (opcode & 0x0f));

    if (len < 126) {
        buf[1] = (uint8_t) len;
        return 2;
    }

    if (len <= 0xffff) {
        buf[1] = 126;
        buf[2] = (uint8_t) (len >> 8);
        buf[3] = (uint8_t) len;
        return 4;
    }

    buf[1] = 127;

    for (i = 0; i < 8; i++) {
        buf[2 + i] = (uint8_t) (len >> (56 - 8 * i));
    }

    return 10;
}


size_t
tidal_ws_client_frame_header(uint8_t *buf, unsigned opcode, uint64_t len,
    const uint8_t mask[4])
{
    size_t  n;

    n = tidal_ws_frame_header(buf, opcode, len);

    buf[1] |= 0x80;
    memcpy(&buf[n], mask, 4);

    return n + 4;
}


void
tidal_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4])
{
    size_t  i;

    for (i = 0; i < len; i++) {
        data[i] ^= mask[i & 3];
    }
}


size_t
tidal_ws_close_payload(uint8_t *buf, uint16_t code, const char *reason)
{
    size_t        n, keep;
    tidal_utf8_t  utf8;

    if (code == 0
        || code == TIDAL_WS_CLOSE_NO_STATUS
        || code == 1006
        || code == 1015)
    {
        return 0;
    }

    buf[0] = (uint8_t) (code >> 8);
    buf[1] = (uint8_t) code;

    if (reason == NULL) {
        return 2;
    }

    /*
     * The peer fails the connection on a reason that is not UTF-8, so the
     * cut never splits a code point and stops before anything invalid.
     */

    tidal_utf8_init(&utf8);
    keep = 0;

    for (n = 0; n < TIDAL_WS_MAX_CONTROL - 2 && reason[n] != '\0'; n++) {

        if (tidal_utf8_feed(&utf8, (const uint8_t *) &reason[n], 1) != 0) {
            break;
        }

        if (tidal_utf8_complete(&utf8)) {
            keep = n + 1;
        }
    }

    memcpy(&buf[2], reason, keep);

    return 2 + keep;
}


int
tidal_ws_close_code_valid(unsigned code)
{
    /* 1012-1014 are IANA-registered after RFC 6455 and sent in practice */
    return (code >= 1000 && code <= 1003)
           || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}


int
tidal_ws_key_valid(const char *key, size_t len)
{
    size_t   n;
    uint8_t  raw[18];

    if (len != 24) {
        return 0;
    }

    if (tidal_ws_base64_decode(raw, &n, key, len) != 0) {
        return 0;
    }

    return n == 16;
}


int
tidal_ws_accept(const char *key, size_t len,
    char out[TIDAL_WS_ACCEPT_LEN + 1])
{
    int            ok;
    EVP_MD_CTX    *ctx;
    unsigned int   md_len;
    unsigned char  md[EVP_MAX_MD_SIZE];

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1
         && EVP_DigestUpdate(ctx, key, len) == 1
         && EVP_DigestUpdate(ctx, TIDAL_WS_GUID,
                             sizeof(TIDAL_WS_GUID) - 1) == 1
         && EVP_DigestFinal_ex(ctx, md, &md_len) == 1;

    EVP_MD_CTX_free(ctx);

    if (!ok || md_len != 20) {
        return -1;
    }

    if (EVP_EncodeBlock((unsigned char *) out, md, 20)
        != TIDAL_WS_ACCEPT_LEN)
    {
        return -1;
    }

    return 0;
}


/*
 * The client's side of RFC 6455 4.1: a 101, "Upgrade: websocket", an
 * "upgrade" token in Connection, the Accept that belongs to our key, no
 * extension (none was offered) and no subprotocol other than ours.
 */

int
tidal_ws_response_check(const char *head, size_t len, const char *key,
    size_t key_len, const char *protocol, unsigned *status, const char **why)
{
    size_t       n, name_len, value_len;
    unsigned     upgrade, connection, accepted;
    const char  *p, *end, *eol, *colon, *value;
    char         accept[TIDAL_WS_ACCEPT_LEN + 1];

    *status = 0;
    end = head + len;

    /* "HTTP/1.x NNN" and an optional reason phrase */

    eol = memchr(head, '\n', len);
    if (eol == NULL) {
        eol = end;
    }

    n = (size_t) (eol - head);

    if (n < 12 || memcmp(head, "HTTP/1.", 7) != 0
        || head[7] < '0' || head[7] > '9' || head[8] != ' '
        || head[9] < '1' || head[9] > '5'
        || head[10] < '0' || head[10] > '9'
        || head[11] < '0' || head[11] > '9'
        || (n > 12 && head[12] != ' ' && head[12] != '\r'))
    {
        *why = "not an HTTP response";
        return -1;
    }

    *status = (unsigned) ((head[9] - '0') * 100 + (head[10] - '0') * 10
                          + (head[11] - '0'));

    if (*status != 101) {
        *why = "the server refused the upgrade";
        return -1;
    }

    if (tidal_ws_accept(key, key_len, accept) != 0) {
        *why = "cannot compute Sec-WebSocket-Accept";
        return -1;
    }

    upgrade = 0;
    connection = 0;
    accepted = 0;

    for (p = (eol < end) ? eol + 1 : end; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }

        n = (size_t) (eol - p);

        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }

        if (n == 0) {
            break;
        }

        colon = memchr(p, ':', n);

        if (colon == NULL || colon == p || p[0] == ' ' || p[0] == '\t') {
            *why = "a malformed header line";
            return -1;
        }

        name_len = (size_t) (colon - p);
        value = colon + 1;
        value_len = n - name_len - 1;

        while (value_len > 0 && (*value == ' ' || *value == '\t')) {
            value++;
            value_len--;
        }

        while (value_len > 0
               && (value[value_len - 1] == ' '
                   || value[value_len - 1] == '\t'))
        {
            value_len--;
        }

        if (tidal_ws_header_is(p, name_len, "Upgrade")) {
            if (!tidal_ws_header_is(value, value_len, "websocket")) {
                *why = "Upgrade is not \"websocket\"";
                return -1;
            }

            upgrade = 1;

        } else if (tidal_ws_header_is(p, name_len, "Connection")) {
            connection |= tidal_ws_token_in(value, value_len, "upgrade");

        } else if (tidal_ws_header_is(p, name_len, "Sec-WebSocket-Accept")) {
            if (accepted || value_len != TIDAL_WS_ACCEPT_LEN
                || memcmp(value, accept, TIDAL_WS_ACCEPT_LEN) != 0)
            {
                *why = "wrong Sec-WebSocket-Accept";
                return -1;
            }

            accepted = 1;

        } else if (tidal_ws_header_is(p, name_len,
                                      "Sec-WebSocket-Extensions"))
        {
            *why = "an extension that was not offered";
            return -1;

        } else if (tidal_ws_header_is(p, name_len,
                                      "Sec-WebSocket-Protocol"))
        {
            if (protocol == NULL
                || value_len != strlen(protocol)
                || memcmp(value, protocol, value_len) != 0)
            {
                *why = "a subprotocol that was not offered";
                return -1;
            }
        }
    }

    if (!upgrade) {
        *why = "no \"Upgrade: websocket\"";
        return -1;
    }

    if (!connection) {
        *why = "no \"Connection: upgrade\"";
        return -1;
    }

    if (!accepted) {
        *why = "no Sec-WebSocket-Accept";
        return -1;
    }

    *why = NULL;

    return 0;
}


static int
tidal_ws_header_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}


/* 1 if a comma-separated list holds token (case-insensitive) */

static int
tidal_ws_token_in(const char *list, size_t len, const char *token)
{
    size_t       n;
    const char  *p, *end, *comma;

    end = list + len;

    for (p = list; p < end; p = comma + 1) {
        comma = memchr(p, ',', (size_t) (end - p));
        if (comma == NULL) {
            comma = end;
        }

        while (p < comma && (*p == ' ' || *p == '\t')) {
            p++;
        }

        n = (size_t) (comma - p);

        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
            n--;
        }

        if (tidal_ws_header_is(p, n, token)) {
            return 1;
        }
    }

    return 0;
}


/*
 * Strict standard base64: length a multiple of 4, "=" only as the final
 * one or two characters.  out needs len / 4 * 3 bytes.
 */

static int
tidal_ws_base64_decode(uint8_t *out, size_t *out_len, const char *in,
    size_t len)
{
    int       v;
    size_t    i, n, pad;
    uint32_t  acc;

    if (len == 0 || len % 4 != 0) {
        return -1;
    }

    pad = 0;

    if (in[len - 1] == '=') {
        pad = (in[len - 2] == '=') ? 2 : 1;
    }

    n = 0;
    acc = 0;

    for (i = 0; i < len - pad; i++) {
        v = tidal_ws_base64_value(in[i]);
        if (v < 0) {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) v;

        if (i % 4 == 3) {
            out[n++] = (uint8_t) (acc >> 16);
            out[n++] = (uint8_t) (acc >> 8);
            out[n++] = (uint8_t) acc;
            acc = 0;
        }
    }

    /* the last group: 2 characters carry 1 byte, 3 characters 2 bytes */
    if (pad == 2) {
        out[n++] = (uint8_t) (acc >> 4);

    } else if (pad == 1) {
        out[n++] = (uint8_t) (acc >> 10);
        out[n++] = (uint8_t) (acc >> 2);
    }

    *out_len = n;

    return 0;
}


static int
tidal_ws_base64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}
