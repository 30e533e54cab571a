/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * RFC 6455 WebSocket codec: incremental frame parser, frame encoder and
 * handshake helpers, for the server (the module) and the client (the
 * helper's bridge).  Pure C, no nginx types: bytes in, events out.
 */

#ifndef _TIDAL_WS_H_INCLUDED_
#define _TIDAL_WS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "tidal_utf8.h"


#define TIDAL_WS_OP_CONT              0x0
#define TIDAL_WS_OP_TEXT              0x1
#define TIDAL_WS_OP_BINARY            0x2
#define TIDAL_WS_OP_CLOSE             0x8
#define TIDAL_WS_OP_PING              0x9
#define TIDAL_WS_OP_PONG              0xa

#define TIDAL_WS_CLOSE_NORMAL         1000
#define TIDAL_WS_CLOSE_GOING_AWAY     1001
#define TIDAL_WS_CLOSE_PROTOCOL       1002
#define TIDAL_WS_CLOSE_UNSUPPORTED    1003
#define TIDAL_WS_CLOSE_NO_STATUS      1005
#define TIDAL_WS_CLOSE_INVALID_DATA   1007
#define TIDAL_WS_CLOSE_POLICY         1008
#define TIDAL_WS_CLOSE_TOO_BIG        1009
#define TIDAL_WS_CLOSE_INTERNAL       1011

#define TIDAL_WS_MAX_CONTROL          125
#define TIDAL_WS_MAX_HEADER           14     /* a masked 64-bit frame */
#define TIDAL_WS_ACCEPT_LEN           28


typedef enum {
    TIDAL_WS_AGAIN = 0,   /* input consumed, nothing complete yet */
    TIDAL_WS_TEXT,        /* a complete, valid UTF-8 text message */
    TIDAL_WS_PING,        /* payload in data/len, at most 125 bytes */
    TIDAL_WS_PONG,
    TIDAL_WS_CLOSE,       /* code (1005 when absent), reason in data/len */
    TIDAL_WS_FAIL         /* code is the close code to send; parser is dead */
} tidal_ws_event_type_e;


typedef struct {
    tidal_ws_event_type_e   type;
    uint16_t                code;
    const uint8_t          *data;     /* valid until the next parse call */
    size_t                  len;
    const char             *reason;   /* FAIL only: static text for logs */
} tidal_ws_event_t;


typedef struct {
    size_t                  max_message;

    /* frame header being assembled */
    uint8_t                 hdr[TIDAL_WS_MAX_HEADER];
    size_t                  hdr_len;
    size_t                  hdr_need;

    /* current frame */
    unsigned                state;
    unsigned                opcode;
    unsigned                fin;
    uint8_t                 mask[4];
    uint64_t                frame_len;
    uint64_t                frame_done;

    /* text message being reassembled across fragments */
    unsigned                in_message;
    uint8_t                *msg;
    size_t                  msg_len;
    size_t                  msg_cap;
    tidal_utf8_t            utf8;

    /* control frame payload */
    uint8_t                 ctl[TIDAL_WS_MAX_CONTROL];
    size_t                  ctl_len;
    tidal_utf8_t            ctl_utf8;     /* close reason */

    unsigned                from_server;  /* unmasked frames expected */
    unsigned                failed;
    uint16_t                fail_code;    /* repeated by later calls */
    const char             *fail_reason;
} tidal_ws_parser_t;


/* a server's parser: every frame must be masked */
void tidal_ws_parser_init(tidal_ws_parser_t *p, size_t max_message);

/* a client's parser: no frame may be masked; otherwise the same rules */
void tidal_ws_parser_init_client(tidal_ws_parser_t *p, size_t max_message);

void tidal_ws_parser_free(tidal_ws_parser_t *p);

/*
 * Consumes input from *pos up to end and stops after at most one event;
 * *pos is advanced past what was consumed.  Call again with the rest.
 * Masked client frames, or unmasked server frames after
 * tidal_ws_parser_init_client(); the other kind fails with 1002.
 *
 * An event's data points into the parser (TEXT: its message buffer,
 * PING/PONG/CLOSE: ctl) and stays valid until the next parse or free.
 * On FAIL *pos stops just past the byte that gave the error away.
 * After CLOSE the peer may send nothing more: later calls discard their
 * input and return AGAIN.
 */
tidal_ws_event_type_e tidal_ws_parse(tidal_ws_parser_t *p,
    const uint8_t **pos, const uint8_t *end, tidal_ws_event_t *ev);

/* 1 while a fragmented message or a frame is partially received */
int tidal_ws_parser_busy(const tidal_ws_parser_t *p);

/*
 * server frame header (FIN set, unmasked); returns its length, 2..10;
 * buf holds at least 10 bytes
 */
size_t tidal_ws_frame_header(uint8_t *buf, unsigned opcode, uint64_t len);

/*
 * client frame header (FIN set, masked with mask); returns its length,
 * 6..14; buf holds at least 14 bytes.  The payload that follows must be
 * masked with the same key: tidal_ws_mask().
 */
size_t tidal_ws_client_frame_header(uint8_t *buf, unsigned opcode,
    uint64_t len, const uint8_t mask[4]);

/* XORs a whole payload with a masking key, in place (both directions) */
void tidal_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4]);

/*
 * close payload: code + reason truncated to fit 125 bytes; returns length.
 * buf holds at least 125 bytes.  The reason (NUL-terminated, may be NULL)
 * is cut to its longest prefix of whole, valid UTF-8 code points.  Codes
 * that must not appear on the wire (0, 1005, 1006, 1015) give an empty
 * payload, so a received CLOSE's code can be echoed as it is.
 */
size_t tidal_ws_close_payload(uint8_t *buf, uint16_t code,
    const char *reason);

/* 1 if a peer may send this code in a close frame (RFC 6455 7.4) */
int tidal_ws_close_code_valid(unsigned code);

/* 1 if key is base64 of exactly 16 bytes (24 characters, "==" at end) */
int tidal_ws_key_valid(const char *key, size_t len);

/*
 * Sec-WebSocket-Accept for key; out gets 28 chars and a NUL; 0 on success,
 * -1 if OpenSSL fails.  The key is not checked: see tidal_ws_key_valid.
 */
int tidal_ws_accept(const char *key, size_t len,
    char out[TIDAL_WS_ACCEPT_LEN + 1]);

/*
 * Checks a server's handshake response, the bytes up to the empty line
 * (which may be left out), for the key we sent and the subprotocol we
 * offered (NULL: none).  0 when it accepts the upgrade; otherwise -1 with
 * *why, a static text for logs, and *status the HTTP status (0 when head
 * is not an HTTP response).
 */
int tidal_ws_response_check(const char *head, size_t len, const char *key,
    size_t key_len, const char *protocol, unsigned *status,
    const char **why);


#endif /* _TIDAL_WS_H_INCLUDED_ */
