/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: one WebSocket connection after the 101 - reads frames into
 * the codec, hands text messages to the MCP core, queues and writes
 * replies, keeps the heartbeat and closes as RFC 6455 asks.
 */


#include "ngx_http_tidal.h"


/* frames per writev; a socket rarely takes more in one call */
#define NGX_HTTP_TIDAL_WRITE_FRAMES  64


static ngx_int_t ngx_http_tidal_ws_attach(ngx_http_tidal_ws_t *ws,
    ngx_chain_t *unsent, ngx_buf_t *pipelined);
static json_t *ngx_http_tidal_ws_initialize(tidal_mcp_session_t *s,
    json_t *params);
static void ngx_http_tidal_ws_process(ngx_http_tidal_ws_t *ws,
    u_char *pos, u_char *last);
static ngx_int_t ngx_http_tidal_ws_message(ngx_http_tidal_ws_t *ws,
    const u_char *data, size_t len);
static ngx_int_t ngx_http_tidal_ws_send_numbered(ngx_http_tidal_ws_t *ws,
    ngx_uint_t opcode, uint64_t seq, const u_char *data, size_t len);
static ngx_int_t ngx_http_tidal_ws_send(ngx_http_tidal_ws_t *ws,
    ngx_uint_t opcode, const u_char *data, size_t len);
static ngx_int_t ngx_http_tidal_ws_flush(ngx_http_tidal_ws_t *ws);
static ngx_http_tidal_out_t *ngx_http_tidal_ws_out_alloc(ngx_log_t *log);
static void ngx_http_tidal_ws_drop_queue(ngx_http_tidal_ws_t *ws,
    ngx_uint_t all);
static json_t *ngx_http_tidal_ws_resource(tidal_mcp_session_t *s,
    int resource);



/* reads are parsed at once, so one buffer serves every connection */
static u_char  ngx_http_tidal_ws_buffer[16384];


ngx_int_t
ngx_http_tidal_websocket_start(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e role)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_pool_cleanup_t          *cln;
    ngx_http_tidal_ws_t         *ws;
    ngx_http_tidal_slot_t       *slot;
    ngx_http_tidal_main_conf_t  *tmcf;

    c = r->connection;
    tmcf = ngx_http_get_module_main_conf(r, ngx_tidal_module);

    /* counted before the 101: the one over the limit never upgrades */

    slot = NULL;

    if (ngx_http_tidal_zone_acquire(tmcf, &slot, c->log) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "tidal: tidal_max_connections (%ui) reached",
                      tmcf->max_connections);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /*
     * The client outlives its request, which is freed once the 101 is
     * out: what the client keeps comes from the connection's pool.
     */

    cln = ngx_pool_cleanup_add(c->pool, sizeof(ngx_http_tidal_ws_t));
    if (cln == NULL) {
        ngx_http_tidal_zone_release(tmcf, slot);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ws = cln->data;

    if (ngx_http_tidal_ws_init(ws, r, tlcf, role, c->pool) != NGX_OK) {
        ngx_memzero(ws, sizeof(ngx_http_tidal_ws_t));
        ngx_http_tidal_zone_release(tmcf, slot);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ws->slot = slot;

    ws->mcp.initialize_hook = ngx_http_tidal_ws_initialize;
    ws->mcp.resource_hook = ngx_http_tidal_ws_resource;
    ws->mcp.data = ws;

    cln->handler = ngx_http_tidal_ws_cleanup;

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

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "tidal: websocket open");

    /* the request goes: ngx_http_tidal_internals.c */

    ws->attach = ngx_http_tidal_ws_attach;

    return ngx_http_tidal_upgrade(r, ws);
}


/* what the socket did not take of the response header goes out first */

ngx_int_t
ngx_http_tidal_ws_take_unsent(ngx_http_tidal_ws_t *ws, ngx_chain_t *unsent)
{
    u_char                  *p;
    size_t                   len;
    ngx_chain_t             *cl;
    ngx_http_tidal_out_t    *o;
    ngx_http_tidal_frame_t  *f;

    len = 0;

    for (cl = unsent; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len == 0) {
        return NGX_OK;
    }

    f = ngx_alloc(offsetof(ngx_http_tidal_frame_t, data) + len,
                  ws->connection->log);
    if (f == NULL) {
        return NGX_ERROR;
    }

    o = ngx_http_tidal_ws_out_alloc(ws->connection->log);
    if (o == NULL) {
        ngx_free(f);
        return NGX_ERROR;
    }

    p = f->data;

    for (cl = unsent; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, ngx_buf_size(cl->buf));
    }

    f->refs = 1;
    f->channel = 0;
    f->close = 0;
    f->len = len;

    o->next = NULL;
    o->frame = f;
    o->sent = 0;

    ws->out = o;
    ws->out_last = &o->next;
    ws->out_count = 1;
    ws->out_bytes = len;

    return NGX_OK;
}


/*
 * What every client starts with, whatever its transport: its name
 * (tidal_name, from pool), an MCP session with the request's role, and
 * its timers, set as its transport needs them.
 */

ngx_int_t
ngx_http_tidal_ws_init(ngx_http_tidal_ws_t *ws, ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e role, ngx_pool_t *pool)
{
    ngx_str_t                    name;
    ngx_connection_t            *c;
    ngx_http_tidal_main_conf_t  *tmcf;

    c = r->connection;
    tmcf = ngx_http_get_module_main_conf(r, ngx_tidal_module);

    ngx_memzero(ws, sizeof(ngx_http_tidal_ws_t));

    ngx_str_null(&name);

    if (tlcf->name
        && ngx_http_complex_value(r, tlcf->name, &name) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a C string: it goes into JSON as "who" */

    ws->name.data = ngx_pnalloc(pool, name.len + 1);
    if (ws->name.data == NULL) {
        return NGX_ERROR;
    }

    ws->name.len = ngx_cpystrn(ws->name.data, name.data, name.len + 1)
                   - ws->name.data;

    ws->connection = c;
    ws->conf = tlcf;
    ws->main_conf = tmcf;
    ws->core_conf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    ws->out_last = &ws->out;

    tidal_ws_parser_init(&ws->parser, tlcf->max_message_size);
    tidal_mcp_session_init(&ws->mcp, tmcf->allow_raw
                                     ? &ngx_http_tidal_mcp_server_raw
                                     : &ngx_http_tidal_mcp_server,
                           role);

    ws->mcp.clock = ngx_http_tidal_clock;

    ws->heartbeat.handler = ngx_http_tidal_ws_heartbeat_handler;
    ws->heartbeat.data = ws;
    ws->heartbeat.log = c->log;
    ws->heartbeat.cancelable = 1;

    ws->metrics.handler = ngx_http_tidal_ws_metrics_handler;
    ws->metrics.data = ws;
    ws->metrics.log = c->log;
    ws->metrics.cancelable = 1;

    return NGX_OK;
}


/*
 * tidal/clock's: a clock read now, not nginx's cached time, which is as
 * old as the event loop's last wakeup.
 */

double
ngx_http_tidal_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_REALTIME, &ts);

    return (double) ts.tv_sec * 1000 + (double) ts.tv_nsec / 1000000;
}


/*
 * The connection is the client's once its request has gone
 * (ngx_http_tidal_upgrade()): what the socket did not take of the 101
 * goes out first, and frames the client sent right behind its request
 * are read before anything else.
 */

static ngx_int_t
ngx_http_tidal_ws_attach(ngx_http_tidal_ws_t *ws, ngx_chain_t *unsent,
    ngx_buf_t *pipelined)
{
    ngx_connection_t  *c;

    c = ws->connection;

    if (ngx_http_tidal_ws_take_unsent(ws, unsent) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pipelined->pos < pipelined->last) {
        ngx_http_tidal_ws_process(ws, pipelined->pos, pipelined->last);
        pipelined->pos = pipelined->last;
    }

    c->read->handler = ngx_http_tidal_ws_read_handler;
    c->write->handler = ngx_http_tidal_ws_write_handler;

    if (ws->conf->heartbeat_interval && !ws->close_sent) {
        ngx_add_timer(&ws->heartbeat, ws->conf->heartbeat_interval);
    }

    return NGX_OK;
}


/*
 * Reads frames; an event stream's client sends nothing there, so what
 * comes is dropped, and the end of its connection ends the stream.
 */

void
ngx_http_tidal_ws_read_handler(ngx_event_t *rev)
{
    ssize_t               n;
    ngx_connection_t     *c;
    ngx_http_tidal_ws_t  *ws;

    c = rev->data;
    ws = c->data;

    if (ngx_http_tidal_shutdown_asked(c)) {
        /* graceful shutdown or reload: ask the client to reconnect */
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
                          ws->kind == NGX_HTTP_TIDAL_WS
                          ? "tidal: client closed connection without "
                            "a close frame"
                          : "tidal: client closed its event stream");
            ngx_http_tidal_ws_finish(ws, 0);
            return;
        }

        if (ws->kind == NGX_HTTP_TIDAL_WS) {
            ngx_http_tidal_ws_process(ws, ngx_http_tidal_ws_buffer,
                                      ngx_http_tidal_ws_buffer + n);
        }

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


void
ngx_http_tidal_ws_write_handler(ngx_event_t *wev)
{
    ngx_connection_t     *c;
    ngx_http_tidal_ws_t  *ws;

    c = wev->data;
    ws = c->data;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "tidal: client timed out reading");
        c->timedout = 1;
        ngx_http_tidal_ws_finish(ws, 0);
        return;
    }

    ngx_http_tidal_ws_after_write(ws);
}


void
ngx_http_tidal_ws_heartbeat_handler(ngx_event_t *ev)
{
    u_char                stamp[NGX_INT64_LEN];
    size_t                len;
    ngx_http_tidal_ws_t  *ws;

    ws = ev->data;

    if (ws->kind != NGX_HTTP_TIDAL_WS) {
        /* an event stream's comment keeps proxies from timing it out */
        (void) ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_PING, NULL, 0);
        ngx_add_timer(&ws->heartbeat, ws->conf->heartbeat_interval);

    } else if (ws->awaiting_pong) {
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

    c = ws->connection;
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
    ngx_uint_t        joining;
    tidal_mcp_out_t   out;

    joining = !ws->mcp.initialized;

    if (tidal_mcp_handle(&ws->mcp, (const char *) data, len, &out) != 0) {
        return NGX_ERROR;
    }

    if (out.action == TIDAL_MCP_CALL) {

        rc = ngx_http_tidal_tool_call(ws, out.tool, out.args, &out.checked,
                                      out.id, &result);

        if (rc == NGX_DONE) {
            /* the helper answers later */
            tidal_mcp_out_free(&out);
            return NGX_OK;
        }

        if (rc != NGX_OK) {
            tidal_mcp_out_free(&out);
            return NGX_ERROR;
        }

        out.reply = tidal_mcp_tool_reply(out.id, result, &out.reply_len);
        if (out.reply == NULL) {
            tidal_mcp_out_free(&out);
            return NGX_ERROR;
        }

        /* a chat line is heard before its answer, as a pattern is */

        ngx_http_tidal_fanout_catch_up(ws);
    }

    rc = NGX_OK;

    if (out.reply) {
        rc = ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_TEXT,
                                    (u_char *) out.reply, out.reply_len);
    }

    tidal_mcp_out_free(&out);

    if (joining && ws->mcp.initialized && rc == NGX_OK) {

        /* events follow the initialize response, never precede it */

        ngx_http_tidal_fanout_join(ws, ws->resume_from);

        if (ws->conf->metrics_interval) {
            ngx_add_timer(&ws->metrics, ws->conf->metrics_interval);
        }
    }

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/*
 * The initialize hook: a client that presents a live session id resumes
 * it and is replayed what it missed after its TIDAL_META_LAST_SEQ; anyone
 * else gets a new session.  Nothing in the id says whose it was.
 */

static json_t *
ngx_http_tidal_ws_initialize(tidal_mcp_session_t *s, json_t *params)
{
    ngx_http_tidal_ws_t *ws = s->data;

    u_char                      *id;
    json_t                      *meta, *sid, *last;
    ngx_uint_t                   resumed, i;
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = ws->main_conf;
    resumed = 0;

    meta = json_object_get(params, "_meta");
    sid = json_object_get(meta, TIDAL_META_SESSION);
    last = json_object_get(meta, TIDAL_META_LAST_SEQ);

    if (json_is_string(sid)
        && json_string_length(sid) == NGX_HTTP_TIDAL_SESSION_ID_LEN)
    {
        id = (u_char *) json_string_value(sid);

        for (i = 0; i < NGX_HTTP_TIDAL_SESSION_ID_LEN; i++) {
            if (!((id[i] >= '0' && id[i] <= '9')
                  || (id[i] >= 'a' && id[i] <= 'f')))
            {
                break;
            }
        }

        if (i == NGX_HTTP_TIDAL_SESSION_ID_LEN
            && ngx_http_tidal_session_resume(tmcf, id, ngx_http_tidal_who(ws),
                                             s->role)
               == NGX_OK)
        {
            ngx_memcpy(ws->session, id, NGX_HTTP_TIDAL_SESSION_ID_LEN);
            ws->has_session = 1;
            resumed = 1;
        }
    }

    ws->next_seq = ngx_http_tidal_fanout_position();

    if (resumed) {
        /* a missing or impossible last_seq gets a snapshot */

        ws->resume_from = (json_is_integer(last)
                           && json_integer_value(last) >= 0)
                          ? (uint64_t) json_integer_value(last) + 1
                          : (uint64_t) -1;

    } else if (ngx_http_tidal_session_create(tmcf, ws->session,
                                             ngx_http_tidal_who(ws), s->role,
                                             ws->connection->log)
               == NGX_OK)
    {
        ws->has_session = 1;
    }

    return json_pack("{s:s#, s:I, s:b, s:s}",
                     TIDAL_META_SESSION, ws->session,
                     (int) (ws->has_session ? NGX_HTTP_TIDAL_SESSION_ID_LEN
                                            : 0),
                     TIDAL_META_SEQ,
                     (json_int_t) (resumed && json_is_integer(last)
                                   ? json_integer_value(last)
                                   : (json_int_t) ws->next_seq - 1),
                     TIDAL_META_RESUMED, (int) resumed,
                     TIDAL_META_ROLE, tidal_mcp_role_name(s->role));
}


/* resources/read of tidal://channel/dN: the zone's state of dN */

static json_t *
ngx_http_tidal_ws_resource(tidal_mcp_session_t *s, int resource)
{
    ngx_http_tidal_ws_t *ws = s->data;

    return ngx_http_tidal_state_resource(ws->main_conf, resource);
}


/* free queue entries, kept per worker: broadcasts queue one per client */
static ngx_http_tidal_out_t  *ngx_http_tidal_out_free;


ngx_http_tidal_frame_t *
ngx_http_tidal_frame_alloc(ngx_uint_t opcode, size_t len, u_char **payload,
    ngx_log_t *log)
{
    size_t                   hlen;
    ngx_http_tidal_frame_t  *f;

    f = ngx_alloc(offsetof(ngx_http_tidal_frame_t, data)
                  + TIDAL_WS_MAX_HEADER + len, log);
    if (f == NULL) {
        return NULL;
    }

    hlen = tidal_ws_frame_header(f->data, opcode, len);

    f->refs = 1;
    f->channel = 0;
    f->close = (opcode == TIDAL_WS_OP_CLOSE);
    f->len = hlen + len;
    *payload = f->data + hlen;

    return f;
}


/* a frame of data for a client of kind (NGX_HTTP_TIDAL_WS, ...) */

ngx_http_tidal_frame_t *
ngx_http_tidal_frame_make(ngx_uint_t kind, ngx_uint_t opcode, uint64_t seq,
    const u_char *data, size_t len, ngx_log_t *log)
{
    u_char                  *p;
    ngx_http_tidal_frame_t  *f;

    if (kind != NGX_HTTP_TIDAL_WS) {
        return ngx_http_tidal_sse_frame(kind, opcode, seq, data, len, log);
    }

    f = ngx_http_tidal_frame_alloc(opcode, len, &p, log);
    if (f == NULL) {
        return NULL;
    }

    ngx_memcpy(p, data, len);

    return f;
}


void
ngx_http_tidal_frame_release(ngx_http_tidal_frame_t *f)
{
    if (--f->refs == 0) {
        ngx_free(f);
    }
}


/*
 * Queues one frame.  A client whose queue is over tidal_message_queue_size
 * messages or tidal_message_queue_bytes is not reading: what it has not
 * started to receive is dropped and it is closed with 1008.
 */

ngx_int_t
ngx_http_tidal_ws_queue(ngx_http_tidal_ws_t *ws, ngx_http_tidal_frame_t *f)
{
    ngx_http_tidal_out_t  *o;

    if (ws->close_sent) {
        return NGX_DECLINED;
    }

    if (!f->close
        && (ws->out_count + 1 > ws->conf->queue_size
            || ws->out_bytes + f->len > ws->conf->queue_bytes))
    {
        ngx_log_error(NGX_LOG_WARN, ws->connection->log, 0,
                      "tidal: client send queue full (%ui messages, "
                      "%uz bytes), closing", ws->out_count, ws->out_bytes);

        ngx_http_tidal_ws_drop_queue(ws, 0);
        ngx_http_tidal_ws_close(ws, TIDAL_WS_CLOSE_POLICY,
                                "send queue full");
        return NGX_DECLINED;
    }

    o = ngx_http_tidal_ws_out_alloc(ws->connection->log);
    if (o == NULL) {
        return NGX_ERROR;
    }

    f->refs++;

    o->next = NULL;
    o->frame = f;
    o->sent = 0;

    *ws->out_last = o;
    ws->out_last = &o->next;
    ws->out_count++;
    ws->out_bytes += f->len;

    return NGX_OK;
}


/*
 * notifications/resources/updated for a client subscribed to a resource
 * an event changed; one frame per resource, kind and worker serves all
 */

ngx_int_t
ngx_http_tidal_ws_updated(ngx_http_tidal_ws_t *ws, ngx_uint_t resource)
{
    char                    *text;
    size_t                   len;
    ngx_http_tidal_frame_t  *f;

    static ngx_http_tidal_frame_t
                            *frames[NGX_HTTP_TIDAL_KINDS][TIDAL_MCP_RESOURCES];

    f = frames[ws->kind][resource - 1];

    if (f == NULL) {
        text = tidal_mcp_resource_updated((int) resource, &len);
        if (text == NULL) {
            return NGX_ERROR;
        }

        f = ngx_http_tidal_frame_make(ws->kind, TIDAL_WS_OP_TEXT, 0,
                                      (u_char *) text, len,
                                      ws->connection->log);
        free(text);

        if (f == NULL) {
            return NGX_ERROR;
        }

        frames[ws->kind][resource - 1] = f;
    }

    return ngx_http_tidal_ws_queue(ws, f);
}


/*
 * A tool's answer that arrived later, from the helper: the events it
 * caused go first.
 */

void
ngx_http_tidal_ws_reply(ngx_http_tidal_ws_t *ws, const u_char *data,
    size_t len)
{
    ngx_connection_t  *c;

    if (ws->kind == NGX_HTTP_TIDAL_POST) {
        ngx_http_tidal_http_answer(ws, data, len);
        return;
    }

    if (ws->answering) {
        ngx_http_tidal_sse_answer(ws, data, len);
        return;
    }

    c = ws->connection;

    ngx_http_tidal_fanout_catch_up(ws);

    if (ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_TEXT, data, len) == NGX_OK
        && !c->write->posted)
    {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


static ngx_http_tidal_out_t *
ngx_http_tidal_ws_out_alloc(ngx_log_t *log)
{
    ngx_http_tidal_out_t  *o;

    o = ngx_http_tidal_out_free;

    if (o) {
        ngx_http_tidal_out_free = o->next;
        return o;
    }

    return ngx_alloc(sizeof(ngx_http_tidal_out_t), log);
}


void
ngx_http_tidal_ws_dequeue(ngx_http_tidal_ws_t *ws)
{
    ngx_http_tidal_out_t  *o;

    o = ws->out;

    ws->out = o->next;
    ws->out_count--;
    ws->out_bytes -= o->frame->len - o->sent;

    ngx_http_tidal_frame_release(o->frame);

    o->next = ngx_http_tidal_out_free;
    ngx_http_tidal_out_free = o;
}


static ngx_int_t
ngx_http_tidal_ws_send(ngx_http_tidal_ws_t *ws, ngx_uint_t opcode,
    const u_char *data, size_t len)
{
    return ngx_http_tidal_ws_send_numbered(ws, opcode, 0, data, len);
}


ngx_int_t
ngx_http_tidal_ws_send_text(ngx_http_tidal_ws_t *ws, const u_char *data,
    size_t len)
{
    return ngx_http_tidal_ws_send(ws, TIDAL_WS_OP_TEXT, data, len);
}


/* an event numbered seq: an event stream names it (Last-Event-ID) */

ngx_int_t
ngx_http_tidal_ws_send_event(ngx_http_tidal_ws_t *ws, uint64_t seq,
    const u_char *data, size_t len)
{
    return ngx_http_tidal_ws_send_numbered(ws, TIDAL_WS_OP_TEXT, seq, data,
                                           len);
}


static ngx_int_t
ngx_http_tidal_ws_send_numbered(ngx_http_tidal_ws_t *ws, ngx_uint_t opcode,
    uint64_t seq, const u_char *data, size_t len)
{
    ngx_int_t                rc;
    ngx_http_tidal_frame_t  *f;

    if (ws->close_sent) {
        return NGX_DECLINED;
    }

    f = ngx_http_tidal_frame_make(ws->kind, opcode, seq, data, len,
                                  ws->connection->log);
    if (f == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_tidal_ws_queue(ws, f);

    ngx_http_tidal_frame_release(f);

    return rc;
}


void
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

    if (ws->metrics.timer_set) {
        ngx_del_timer(&ws->metrics);
    }

    ngx_http_tidal_fanout_leave(ws);

    /* whoever closed may not write now (a broadcast, for one) */

    if (!ws->connection->write->posted) {
        ngx_post_event(ws->connection->write, &ngx_posted_events);
    }
}


/*
 * Writes what is queued.  Returns NGX_OK when the queue is empty,
 * NGX_AGAIN when the socket is full, NGX_ERROR when the connection broke.
 */

static ngx_int_t
ngx_http_tidal_ws_flush(ngx_http_tidal_ws_t *ws)
{
    size_t                 sent;
    ngx_uint_t             i, n;
    ngx_buf_t              bufs[NGX_HTTP_TIDAL_WRITE_FRAMES];
    ngx_chain_t            links[NGX_HTTP_TIDAL_WRITE_FRAMES], *cl;
    ngx_connection_t      *c;
    ngx_http_tidal_out_t  *o;

    if (ws->request) {
        return ngx_http_tidal_sse_flush(ws);
    }

    c = ws->connection;

    while (ws->out) {

        if (!c->write->ready) {
            return NGX_AGAIN;
        }

        n = 0;

        for (o = ws->out; o && n < NGX_HTTP_TIDAL_WRITE_FRAMES; o = o->next) {
            ngx_memzero(&bufs[n], sizeof(ngx_buf_t));

            bufs[n].pos = o->frame->data + o->sent;
            bufs[n].last = o->frame->data + o->frame->len;
            bufs[n].start = o->frame->data;
            bufs[n].end = bufs[n].last;
            bufs[n].memory = 1;

            /* TLS's buffer would wait for more to fill a record */
            bufs[n].flush = 1;

            links[n].buf = &bufs[n];
            links[n].next = (o->next && n + 1 < NGX_HTTP_TIDAL_WRITE_FRAMES)
                            ? &links[n + 1] : NULL;
            n++;
        }

        cl = c->send_chain(c, links, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        /*
         * What left a buf is the socket's, or TLS's: ngx_ssl_send_chain()
         * copies into the connection's buffer and counts in c->sent only
         * what it writes from there, so c->sent would send copies again.
         */

        for (i = 0; i < n; i++) {
            o = ws->out;

            if (bufs[i].pos < bufs[i].last) {
                sent = (size_t) (bufs[i].pos - (o->frame->data + o->sent));
                o->sent += sent;
                ws->out_bytes -= sent;
                break;
            }

            ngx_http_tidal_ws_dequeue(ws);
        }

        if (ws->out == NULL) {
            ws->out_last = &ws->out;
            break;
        }

        if (cl != NULL) {
            return NGX_AGAIN;
        }
    }

    /* the queue is out, but maybe still in TLS's buffer: not yet sent */

    return ngx_http_tidal_flush_tls(c);
}


/*
 * Everything that writes ends here: flush, arm the send timeout while
 * the client is not taking data, and once our close frame has left,
 * finish the connection.
 */

void
ngx_http_tidal_ws_after_write(ngx_http_tidal_ws_t *ws)
{
    ngx_int_t    rc;
    ngx_event_t  *wev;

    wev = ws->connection->write;

    rc = ngx_http_tidal_ws_flush(ws);

    if (rc == NGX_ERROR) {
        ngx_http_tidal_ws_finish(ws, 0);
        return;
    }

    if (rc == NGX_AGAIN) {
        ngx_add_timer(wev, ws->core_conf->send_timeout);

        if (ngx_handle_write_event(wev, ws->core_conf->send_lowat)
            != NGX_OK)
        {
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
 * Ends the client: its timers and its place in the fan-out go, then the
 * connection, lingering after a close frame (ngx_http_tidal_close()).
 */

void
ngx_http_tidal_ws_finish(ngx_http_tidal_ws_t *ws, ngx_uint_t linger)
{
    ngx_connection_t  *c;

    c = ws->connection;

    if (ws->heartbeat.timer_set) {
        ngx_del_timer(&ws->heartbeat);
    }

    if (ws->metrics.timer_set) {
        ngx_del_timer(&ws->metrics);
    }

    ngx_http_tidal_fanout_leave(ws);

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ws->request) {
        ngx_http_tidal_sse_end(ws);
        return;
    }

    ngx_http_tidal_close(ws, linger);
}


static void
ngx_http_tidal_ws_drop_queue(ngx_http_tidal_ws_t *ws, ngx_uint_t all)
{
    ngx_http_tidal_out_t  *head;

    /* a frame partly written must be completed to keep the framing */

    head = NULL;

    if (!all && ws->out && ws->out->sent) {
        head = ws->out;
        ws->out = head->next;
    }

    while (ws->out) {
        ngx_http_tidal_ws_dequeue(ws);
    }

    ws->out_last = &ws->out;

    if (head) {
        head->next = NULL;
        ws->out = head;
        ws->out_last = &head->next;
    }
}


void
ngx_http_tidal_ws_cleanup(void *data)
{
    ngx_http_tidal_ws_t  *ws = data;

    if (ws->heartbeat.timer_set) {
        ngx_del_timer(&ws->heartbeat);
    }

    if (ws->metrics.timer_set) {
        ngx_del_timer(&ws->metrics);
    }

    if (ws->newest) {
        ngx_http_tidal_session_stream_end(ws->main_conf, ws);

    } else if (ws->has_session) {
        ngx_http_tidal_session_release(ws->main_conf, ws->session);
    }

    ngx_http_tidal_fanout_leave(ws);
    ngx_http_tidal_helper_forget(ws);

    ngx_http_tidal_zone_release(ws->main_conf, ws->slot);

    ngx_http_tidal_ws_drop_queue(ws, 1);
    tidal_ws_parser_free(&ws->parser);

    if (ws->pending.start) {
        ngx_free(ws->pending.start);
        ws->pending.start = NULL;
    }
}


/*
 * metrics go to each client on its own clock; the text is made once per
 * worker and interval and shared
 */

void
ngx_http_tidal_ws_metrics_handler(ngx_event_t *ev)
{
    int                   level;
    char                 *text, *line;
    size_t                len;
    json_t               *params;
    ngx_http_tidal_ws_t  *ws;

    ws = ev->data;

    /* a client without the tidal events gets them as debug lines */

    params = (ws->mcp.tidal_events
              || tidal_mcp_wants_event_message(&ws->mcp, TIDAL_MCP_LOG_DEBUG))
             ? ngx_http_tidal_status_metrics(ws->main_conf) : NULL;

    /* the client's own: sound it was too slow for */

    if (params && ws->mcp.tidal_sound
        && json_object_set_new(params, "sound_dropped",
                               json_integer((json_int_t) ws->sound_dropped))
           != 0)
    {
        json_decref(params);
        params = NULL;
    }

    if (params) {
        text = tidal_mcp_notification(TIDAL_PROTOCOL_EVENT "metrics",
                                      params, &len);

        if (text && !ws->mcp.tidal_events) {
            line = tidal_mcp_event_message(text, len, &level, &len);
            free(text);
            text = line;
        }

        if (text) {
            (void) ngx_http_tidal_ws_send_text(ws, (u_char *) text, len);
            free(text);
        }
    }

    if (!ws->close_sent) {
        ngx_add_timer(&ws->metrics, ws->conf->metrics_interval);
    }

    ngx_http_tidal_ws_after_write(ws);
}
