/*
 * ngx_tidal: one WebSocket connection after the 101 - reads frames into
 * the codec, hands text messages to the MCP core, queues and writes
 * replies, keeps the heartbeat and closes as RFC 6455 asks.
 */


#include "ngx_http_tidal.h"


typedef struct ngx_http_tidal_frame_s  ngx_http_tidal_frame_t;

struct ngx_http_tidal_frame_s {
    ngx_http_tidal_frame_t     *next;
    size_t                      len;
    size_t                      sent;
    u_char                      data[1];
};


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_tidal_loc_conf_t  *conf;

    tidal_ws_parser_t           parser;
    tidal_mcp_session_t         mcp;

    ngx_http_tidal_frame_t     *out;
    ngx_http_tidal_frame_t    **out_last;
    ngx_uint_t                  out_count;
    size_t                      out_bytes;

    ngx_event_t                 heartbeat;

    unsigned                    awaiting_pong:1;
    unsigned                    close_sent:1;
    unsigned                    finished:1;
} ngx_http_tidal_ws_t;


/* frames per writev; a socket rarely takes more in one call */
#define NGX_HTTP_TIDAL_WRITE_FRAMES  64


static void ngx_http_tidal_ws_read_handler(ngx_event_t *rev);
static void ngx_http_tidal_ws_write_handler(ngx_event_t *wev);
static void ngx_http_tidal_ws_heartbeat_handler(ngx_event_t *ev);
static void ngx_http_tidal_ws_process(ngx_http_tidal_ws_t *ws,
    u_char *pos, u_char *last);
static ngx_int_t ngx_http_tidal_ws_message(ngx_http_tidal_ws_t *ws,
    const u_char *data, size_t len);
static ngx_int_t ngx_http_tidal_ws_send(ngx_http_tidal_ws_t *ws,
    ngx_uint_t opcode, const u_char *data, size_t len);
static void ngx_http_tidal_ws_close(ngx_http_tidal_ws_t *ws, ngx_uint_t code,
    const char *reason);
static ngx_int_t ngx_http_tidal_ws_flush(ngx_http_tidal_ws_t *ws);
static void ngx_http_tidal_ws_after_write(ngx_http_tidal_ws_t *ws);
static void ngx_http_tidal_ws_finish(ngx_http_tidal_ws_t *ws,
    ngx_uint_t linger);
static void ngx_http_tidal_ws_drop_queue(ngx_http_tidal_ws_t *ws,
    ngx_uint_t all);
static void ngx_http_tidal_ws_cleanup(void *data);


/* reads are parsed at once, so one buffer serves every connection */
static u_char  ngx_http_tidal_ws_buffer[16384];


ngx_int_t
ngx_http_tidal_websocket_start(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    ngx_int_t             rc;
    ngx_connection_t     *c;
    ngx_pool_cleanup_t   *cln;
    ngx_http_tidal_ws_t  *ws;

    c = r->connection;

    ws = ngx_pcalloc(r->pool, sizeof(ngx_http_tidal_ws_t));
    if (ws == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ws->request = r;
    ws->conf = tlcf;
    ws->out_last = &ws->out;

    tidal_ws_parser_init(&ws->parser, tlcf->max_message_size);
    tidal_mcp_session_init(&ws->mcp, &ngx_http_tidal_mcp_server,
                           TIDAL_ROLE_PERFORMER);

    cln->handler = ngx_http_tidal_ws_cleanup;
    cln->data = ws;

    ngx_http_set_ctx(r, ws, ngx_tidal_module);

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->header_only = 1;
    r->keepalive = 0;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    r->main->count++;

    c->read->handler = ngx_http_tidal_ws_read_handler;
    c->write->handler = ngx_http_tidal_ws_write_handler;

    /* lets graceful shutdown reach every client to send 1001 */
    c->idle = 1;

    ws->heartbeat.handler = ngx_http_tidal_ws_heartbeat_handler;
    ws->heartbeat.data = ws;
    ws->heartbeat.log = c->log;
    ws->heartbeat.cancelable = 1;

    if (tlcf->heartbeat_interval) {
        ngx_add_timer(&ws->heartbeat, tlcf->heartbeat_interval);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "tidal: websocket open");

    /* frames a client sent right behind its request headers */

    if (r->header_in->pos < r->header_in->last) {
        ngx_http_tidal_ws_process(ws, r->header_in->pos, r->header_in->last);
        r->header_in->pos = r->header_in->last;

        /* our reference keeps ws alive even if this finishes it */

        ngx_http_tidal_ws_after_write(ws);

        if (ws->close_sent || ws->finished) {
            return NGX_DONE;
        }
    }

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_tidal_ws_finish(ws, 0);
    }

    return NGX_DONE;
}


static void
ngx_http_tidal_ws_read_handler(ngx_event_t *rev)
{
    ssize_t               n;
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_http_tidal_ws_t  *ws;

    c = rev->data;
    r = c->data;
    ws = ngx_http_get_module_ctx(r, ngx_tidal_module);

    if (c->close) {
        /* graceful shutdown or reload: ask the client to reconnect */
        c->close = 0;
        ngx_http_tidal_ws_close(ws, TIDAL_WS_CLOSE_GOING_AWAY,
                                "server shutting down");
        ngx_http_tidal_ws_after_write(ws);
        return;
    }

    if (ws->close_sent) {
        /* what follows our close frame is drained by lingering close */
        return;
    }

    for ( ;; ) {

        n = c->recv(c, ngx_http_tidal_ws_buffer,
                    sizeof(ngx_http_tidal_ws_buffer));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tidal: client closed connection without "
                          "a close frame");
            ngx_http_tidal_ws_finish(ws, 0);
            return;
        }

        ngx_http_tidal_ws_process(ws, ngx_http_tidal_ws_buffer,
                                  ngx_http_tidal_ws_buffer + n);

        if (ws->close_sent) {
            break;
        }
    }

    if (!ws->close_sent && ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_tidal_ws_finish(ws, 0);
        return;
    }

    ngx_http_tidal_ws_after_write(ws);
}


static void
ngx_http_tidal_ws_write_handler(ngx_event_t *wev)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_http_tidal_ws_t  *ws;

    c = wev->data;
    r = c->data;
    ws = ngx_http_get_module_ctx(r, ngx_tidal_module);

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "tidal: client timed out reading");
        c->timedout = 1;
        ngx_http_tidal_ws_finish(ws, 0);
        return;
    }

    ngx_http_tidal_ws_after_write(ws);
}


static void
ngx_http_tidal_ws_heartbeat_handler(ngx_event_t *ev)
{
    u_char                stamp[NGX_INT64_LEN];
    size_t                len;
    ngx_http_tidal_ws_t  *ws;

    ws = ev->data;

    if (ws->awaiting_pong) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "tidal: no pong within tidal_heartbeat_interval");
        ngx_http_tidal_ws_close(ws, TIDAL_WS_CLOSE_POLICY,
                                "no pong within heartbeat interval");

    } else {
        len = ngx_sprintf(stamp, "%M", ngx_current_msec) - stamp;

        if (ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_PING, stamp, len)
            == NGX_OK)
        {
            ws->awaiting_pong = 1;
            ngx_add_timer(&ws->heartbeat, ws->conf->heartbeat_interval);
        }
    }

    ngx_http_tidal_ws_after_write(ws);
}


/*
 * Feeds received bytes to the codec and acts on each event; replies and
 * close frames stay queued until the caller writes.
 */

static void
ngx_http_tidal_ws_process(ngx_http_tidal_ws_t *ws, u_char *pos,
    u_char *last)
{
    const uint8_t          *p;
    ngx_connection_t       *c;
    tidal_ws_event_t        ev;
    tidal_ws_event_type_e   type;

    c = ws->request->connection;
    p = pos;

    while (!ws->close_sent) {

        type = tidal_ws_parse(&ws->parser, &p, last, &ev);

        switch (type) {

        case TIDAL_WS_AGAIN:
            return;

        case TIDAL_WS_TEXT:
            if (ngx_http_tidal_ws_message(ws, ev.data, ev.len) != NGX_OK) {
                ngx_http_tidal_ws_close(ws, TIDAL_WS_CLOSE_INTERNAL,
                                        "internal error");
            }
            break;

        case TIDAL_WS_PING:
            (void) ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_PONG, ev.data,
                                          ev.len);
            break;

        case TIDAL_WS_PONG:
            ws->awaiting_pong = 0;
            break;

        case TIDAL_WS_CLOSE:
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "tidal: client close %ui", (ngx_uint_t) ev.code);

            ngx_http_tidal_ws_close(ws, ev.code, NULL);
            break;

        default: /* TIDAL_WS_FAIL */
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tidal: closing with %ui: %s",
                          (ngx_uint_t) ev.code, ev.reason);

            ngx_http_tidal_ws_close(ws, ev.code, ev.reason);
            break;
        }
    }
}


static ngx_int_t
ngx_http_tidal_ws_message(ngx_http_tidal_ws_t *ws, const u_char *data,
    size_t len)
{
    json_t           *result;
    ngx_int_t         rc;
    tidal_mcp_out_t   out;

    if (tidal_mcp_handle(&ws->mcp, (const char *) data, len, &out) != 0) {
        return NGX_ERROR;
    }

    if (out.action == TIDAL_MCP_CALL) {

        /* no tool is run by this build; the table is empty */

        result = json_pack("{s:[{s:s,s:s}],s:b}",
                           "content", "type", "text",
                           "text", "this tool is not available", "isError",
                           1);

        out.reply = tidal_mcp_tool_reply(out.id, result, &out.reply_len);
        if (out.reply == NULL) {
            tidal_mcp_out_free(&out);
            return NGX_ERROR;
        }
    }

    rc = NGX_OK;

    if (out.reply) {
        rc = ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_TEXT,
                                    (u_char *) out.reply, out.reply_len);
    }

    tidal_mcp_out_free(&out);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/*
 * Queues one frame.  A client whose queue is over tidal_message_queue_size
 * messages or tidal_message_queue_bytes is not reading: what it has not
 * started to receive is dropped and it is closed with 1008.
 */

static ngx_int_t
ngx_http_tidal_ws_send(ngx_http_tidal_ws_t *ws, ngx_uint_t opcode,
    const u_char *data, size_t len)
{
    u_char                  *p;
    ngx_http_tidal_frame_t  *f;

    if (ws->close_sent) {
        return NGX_DECLINED;
    }

    if (opcode != TIDAL_WS_OP_CLOSE
        && (ws->out_count + 1 > ws->conf->queue_size
            || ws->out_bytes + len > ws->conf->queue_bytes))
    {
        ngx_log_error(NGX_LOG_WARN, ws->request->connection->log, 0,
                      "tidal: client send queue full (%ui messages, "
                      "%uz bytes), closing", ws->out_count, ws->out_bytes);

        ngx_http_tidal_ws_drop_queue(ws, 0);
        ngx_http_tidal_ws_close(ws, TIDAL_WS_CLOSE_POLICY,
                                "send queue full");
        return NGX_DECLINED;
    }

    f = ngx_alloc(offsetof(ngx_http_tidal_frame_t, data)
                  + TIDAL_WS_MAX_HEADER + len,
                  ws->request->connection->log);
    if (f == NULL) {
        return NGX_ERROR;
    }

    p = f->data + tidal_ws_frame_header(f->data, opcode, len);
    p = ngx_cpymem(p, data, len);

    f->next = NULL;
    f->len = p - f->data;
    f->sent = 0;

    *ws->out_last = f;
    ws->out_last = &f->next;
    ws->out_count++;
    ws->out_bytes += f->len;

    return NGX_OK;
}


static void
ngx_http_tidal_ws_close(ngx_http_tidal_ws_t *ws, ngx_uint_t code,
    const char *reason)
{
    size_t   len;
    uint8_t  payload[TIDAL_WS_MAX_CONTROL];

    if (ws->close_sent) {
        return;
    }

    if (code == TIDAL_WS_CLOSE_NO_STATUS) {
        len = 0;

    } else {
        len = tidal_ws_close_payload(payload, (uint16_t) code,
                                     reason ? reason : "");
    }

    /* without memory for the frame the connection just ends */

    (void) ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_CLOSE, payload, len);

    ws->close_sent = 1;

    if (ws->heartbeat.timer_set) {
        ngx_del_timer(&ws->heartbeat);
    }
}


/*
 * Writes what is queued; the 101 header goes first if the socket did not
 * take it whole.  Returns NGX_OK when the queue is empty, NGX_AGAIN when
 * the socket is full, NGX_ERROR when the connection broke.
 */

static ngx_int_t
ngx_http_tidal_ws_flush(ngx_http_tidal_ws_t *ws)
{
    off_t                    sent;
    size_t                   left;
    ngx_uint_t               n;
    ngx_buf_t                bufs[NGX_HTTP_TIDAL_WRITE_FRAMES];
    ngx_chain_t              links[NGX_HTTP_TIDAL_WRITE_FRAMES], *cl;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_tidal_frame_t  *f;

    r = ws->request;
    c = r->connection;

    if (r->out) {
        if (ngx_http_write_filter(r, NULL) == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (r->out) {
            return NGX_AGAIN;
        }
    }

    while (ws->out) {

        if (!c->write->ready) {
            return NGX_AGAIN;
        }

        n = 0;

        for (f = ws->out; f && n < NGX_HTTP_TIDAL_WRITE_FRAMES; f = f->next) {
            ngx_memzero(&bufs[n], sizeof(ngx_buf_t));

            bufs[n].pos = f->data + f->sent;
            bufs[n].last = f->data + f->len;
            bufs[n].start = f->data;
            bufs[n].end = bufs[n].last;
            bufs[n].memory = 1;

            links[n].buf = &bufs[n];
            links[n].next = (f->next && n + 1 < NGX_HTTP_TIDAL_WRITE_FRAMES)
                            ? &links[n + 1] : NULL;
            n++;
        }

        sent = c->sent;

        cl = c->send_chain(c, links, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        sent = c->sent - sent;

        while (sent > 0) {
            f = ws->out;
            left = f->len - f->sent;

            if ((off_t) left > sent) {
                f->sent += (size_t) sent;
                ws->out_bytes -= (size_t) sent;
                break;
            }

            sent -= left;
            ws->out_bytes -= left;
            ws->out_count--;

            ws->out = f->next;
            ngx_free(f);
        }

        if (ws->out == NULL) {
            ws->out_last = &ws->out;
            break;
        }

        if (cl != NULL) {
            return NGX_AGAIN;
        }
    }

    return NGX_OK;
}


/*
 * Everything that writes ends here: flush, arm the send timeout while
 * the client is not taking data, and once our close frame has left,
 * finish the connection.
 */

static void
ngx_http_tidal_ws_after_write(ngx_http_tidal_ws_t *ws)
{
    ngx_int_t                   rc;
    ngx_event_t                *wev;
    ngx_connection_t           *c;
    ngx_http_core_loc_conf_t   *clcf;

    c = ws->request->connection;
    wev = c->write;

    rc = ngx_http_tidal_ws_flush(ws);

    if (rc == NGX_ERROR) {
        ngx_http_tidal_ws_finish(ws, 0);
        return;
    }

    if (rc == NGX_AGAIN) {
        clcf = ngx_http_get_module_loc_conf(ws->request,
                                            ngx_http_core_module);

        ngx_add_timer(wev, clcf->send_timeout);

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_tidal_ws_finish(ws, 0);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    if (ws->close_sent) {
        ngx_http_tidal_ws_finish(ws, 1);
    }
}


/*
 * Ends the connection through nginx's request machinery, so it is logged
 * and, after a close frame, lingers to drain what the client still sends
 * (closing with unread data would reset the connection and could destroy
 * our close frame before the client reads it).
 */

static void
ngx_http_tidal_ws_finish(ngx_http_tidal_ws_t *ws, ngx_uint_t linger)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ws->request;
    c = r->connection;

    ws->finished = 1;

    if (ws->heartbeat.timer_set) {
        ngx_del_timer(&ws->heartbeat);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->idle = 0;
    r->keepalive = 0;
    /*
     * lingering also while exiting: closing with unread input would reset
     * the connection and destroy the 1001 close frame in flight
     */
    r->lingering_close = (linger && !ngx_terminate);

    if (!r->lingering_close) {
        c->read->eof = 1;
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_tidal_ws_drop_queue(ngx_http_tidal_ws_t *ws, ngx_uint_t all)
{
    ngx_http_tidal_frame_t  *f, *next, **keep;

    keep = &ws->out;

    /* a frame partly written must be completed to keep the framing */

    if (!all && ws->out && ws->out->sent) {
        keep = &ws->out->next;
    }

    for (f = *keep; f; f = next) {
        next = f->next;
        ws->out_count--;
        ws->out_bytes -= f->len - f->sent;
        ngx_free(f);
    }

    *keep = NULL;
    ws->out_last = keep;
}


static void
ngx_http_tidal_ws_cleanup(void *data)
{
    ngx_http_tidal_ws_t  *ws = data;

    if (ws->heartbeat.timer_set) {
        ngx_del_timer(&ws->heartbeat);
    }

    ngx_http_tidal_ws_drop_queue(ws, 1);
    tidal_ws_parser_free(&ws->parser);
}
