/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: a Streamable HTTP session's event stream (GET, Server-Sent
 * Events) - the same client as a WebSocket's, with SSE frames: over
 * HTTP/1 it takes the connection over as a WebSocket does
 * (ngx_http_tidal_internals.c), over HTTP/2 its request stays and its
 * frames go through nginx's filters.
 */


#include "ngx_http_tidal.h"


/* how long a client waits before it reconnects, the SSE "retry:" field */
#define NGX_HTTP_TIDAL_SSE_RETRY  1000


static ngx_int_t ngx_http_tidal_sse_attach(ngx_http_tidal_ws_t *cl,
    ngx_chain_t *unsent, ngx_buf_t *pipelined);
static ngx_int_t ngx_http_tidal_sse_open(ngx_http_tidal_ws_t *cl,
    uint64_t from);
static void ngx_http_tidal_sse_request_handler(ngx_http_request_t *r);


/*
 * Opens the stream of a session the caller has checked: from is the
 * first event to send, 0 for new events only, (uint64_t) -1 for a
 * session_restore snapshot.
 */

ngx_int_t
ngx_http_tidal_sse_start(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e role, u_char *session,
    uint64_t from)
{
    uint64_t                     next_seq;
    ngx_int_t                    rc;
    ngx_pool_t                  *pool;
    ngx_connection_t            *c;
    ngx_pool_cleanup_t          *cln;
    ngx_http_tidal_ws_t         *cl;
    ngx_http_tidal_slot_t       *slot;
    ngx_http_tidal_main_conf_t  *tmcf;

    c = r->connection;
    tmcf = ngx_http_get_module_main_conf(r, ngx_tidal_module);

    slot = NULL;

    if (ngx_http_tidal_zone_acquire(tmcf, &slot, c->log) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "tidal: tidal_max_connections (%ui) reached",
                      tmcf->max_connections);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* an HTTP/1 stream outlives its request, an HTTP/2 one does not */

#if (NGX_HTTP_V2)
    pool = r->stream ? r->pool : c->pool;
#else
    pool = c->pool;
#endif

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_http_tidal_ws_t));
    if (cln == NULL) {
        ngx_http_tidal_zone_release(tmcf, slot);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl = cln->data;

    if (ngx_http_tidal_ws_init(cl, r, tlcf, role, pool) != NGX_OK) {
        ngx_memzero(cl, sizeof(ngx_http_tidal_ws_t));
        ngx_http_tidal_zone_release(tmcf, slot);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl->slot = slot;
    cl->kind = NGX_HTTP_TIDAL_SSE;

    ngx_memcpy(cl->session, session, NGX_HTTP_TIDAL_SESSION_ID_LEN);

    /* the session's MCP state, then the stream's hold on the session */

    if (ngx_http_tidal_session_load(tmcf, session, &cl->mcp) == NGX_OK) {
        ngx_http_tidal_session_release(tmcf, session);

        if (ngx_http_tidal_session_stream(tmcf, session, cl, &next_seq)
            == NGX_OK)
        {
            goto found;
        }
    }

    ngx_memzero(cl, sizeof(ngx_http_tidal_ws_t));
    ngx_http_tidal_zone_release(tmcf, slot);

    return NGX_HTTP_NOT_FOUND;

found:

    cln->handler = ngx_http_tidal_ws_cleanup;

    if (from == 0) {
        from = next_seq;
    }

    cl->resume_from = from;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->keepalive = 0;

    if (ngx_http_tidal_sse_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal: event stream open, from #%uL", from);

    ngx_http_set_ctx(r, cl, ngx_tidal_module);

#if (NGX_HTTP_V2)

    if (r->stream) {
        cl->request = r;

        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_tidal_sse_request_handler;

        if (ngx_http_tidal_sse_open(cl, from) != NGX_OK) {
            return NGX_ERROR;
        }

        r->main->count++;

        ngx_http_tidal_ws_after_write(cl);

        return NGX_DONE;
    }

#endif

    cl->kind = r->chunked ? NGX_HTTP_TIDAL_SSE_CHUNKED : NGX_HTTP_TIDAL_SSE;

    cl->attach = ngx_http_tidal_sse_attach;

    return ngx_http_tidal_upgrade(r, cl);
}


/*
 * A tools/call the helper answers later, from a client that takes an
 * event stream and has no GET stream open: the answer comes as an event
 * stream that carries the events published meanwhile, among them those
 * the call causes, then the answer (ngx_http_tidal_sse_answer()).
 * NGX_DECLINED: answer with JSON instead.
 */

ngx_int_t
ngx_http_tidal_sse_answer_start(ngx_http_request_t *r,
    ngx_http_tidal_ws_t *cl)
{
    uint64_t                     next_seq;
    ngx_int_t                    rc;
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = cl->main_conf;

    if (ngx_http_tidal_zone_acquire(tmcf, &cl->slot, r->connection->log)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    cl->answering = 1;

    rc = ngx_http_tidal_session_answer_stream(tmcf, cl, &next_seq);

    if (rc != NGX_OK) {
        ngx_http_tidal_zone_release(tmcf, cl->slot);
        cl->slot = NULL;
        cl->answering = 0;

        return NGX_DECLINED;
    }

    /* the stream holds the session now, the request's hold goes */

    ngx_http_tidal_session_release(tmcf, cl->session);
    cl->has_session = 0;

    cl->kind = NGX_HTTP_TIDAL_SSE;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_http_tidal_sse_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_set_ctx(r, cl, ngx_tidal_module);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_tidal_sse_request_handler;

    if (ngx_http_tidal_sse_open(cl, next_seq) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_tidal_ws_after_write(cl);

    return NGX_OK;
}


/* the helper's answer ends a POST's event stream, after its events */

void
ngx_http_tidal_sse_answer(ngx_http_tidal_ws_t *cl, const u_char *data,
    size_t len)
{
    ngx_http_tidal_fanout_catch_up(cl);

    (void) ngx_http_tidal_ws_send_text(cl, data, len);

    ngx_http_tidal_ws_close(cl, TIDAL_WS_CLOSE_NORMAL, NULL);
    ngx_http_tidal_ws_after_write(cl);
}


/* the stream's own headers: no cache and no proxy may hold its events */

ngx_int_t
ngx_http_tidal_sse_headers(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    return NGX_OK;
}


/* HTTP/1: the connection is the stream's once the request has gone */

static ngx_int_t
ngx_http_tidal_sse_attach(ngx_http_tidal_ws_t *cl, ngx_chain_t *unsent,
    ngx_buf_t *pipelined)
{
    ngx_connection_t  *c;

    c = cl->connection;

    if (ngx_http_tidal_ws_take_unsent(cl, unsent) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a client sends nothing on its stream's connection */

    pipelined->pos = pipelined->last;

    c->read->handler = ngx_http_tidal_ws_read_handler;
    c->write->handler = ngx_http_tidal_ws_write_handler;

    return ngx_http_tidal_sse_open(cl, cl->resume_from);
}


/*
 * The stream's first frame tells the client how soon to come back; then
 * it joins the fan-out, after what it missed.
 */

static ngx_int_t
ngx_http_tidal_sse_open(ngx_http_tidal_ws_t *cl, uint64_t from)
{
    ngx_http_tidal_frame_t  *f;

    f = ngx_http_tidal_sse_frame(cl->kind, TIDAL_WS_OP_CONT, 0, NULL, 0,
                                 cl->connection->log);
    if (f == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_tidal_ws_queue(cl, f) != NGX_OK) {
        ngx_http_tidal_frame_release(f);
        return NGX_ERROR;
    }

    ngx_http_tidal_frame_release(f);

    cl->next_seq = ngx_http_tidal_fanout_position();

    if (from > cl->next_seq) {
        /* an id this server never gave: a snapshot */
        from = (uint64_t) -1;
    }

    ngx_http_tidal_fanout_join(cl, from == cl->next_seq ? 0 : from);

    if (cl->conf->heartbeat_interval) {
        ngx_add_timer(&cl->heartbeat, cl->conf->heartbeat_interval);
    }

    if (cl->mcp.tidal_events && cl->conf->metrics_interval) {
        ngx_add_timer(&cl->metrics, cl->conf->metrics_interval);
    }

    return NGX_OK;
}


/*
 * An SSE frame for a client of kind: an event ("id:" when seq is not 0,
 * "data:" the JSON text, which never holds a line break), a comment (a
 * PING: keeps the stream alive), the "retry:" field (CONT), or the end of
 * the stream (CLOSE: the last chunk, or nothing).
 */

ngx_http_tidal_frame_t *
ngx_http_tidal_sse_frame(ngx_uint_t kind, ngx_uint_t opcode, uint64_t seq,
    const u_char *data, size_t len, ngx_log_t *log)
{
    u_char                  *p, *body;
    size_t                   size, n;
    ngx_http_tidal_frame_t  *f;

    /* "id: " seq "\n" "data: " data "\n\n", or less */
    size = sizeof("id: \n") - 1 + NGX_INT64_LEN + sizeof("data: \n\n") - 1
           + len + sizeof("retry: \n\n") - 1 + NGX_INT_T_LEN;

    /* the chunk's size line and its end */
    size += NGX_OFF_T_LEN + 4 + sizeof("0\r\n\r\n") - 1;

    f = ngx_alloc(offsetof(ngx_http_tidal_frame_t, data) + size, log);
    if (f == NULL) {
        return NULL;
    }

    f->refs = 1;
    f->channel = 0;
    f->close = (opcode == TIDAL_WS_OP_CLOSE);

    /* the body is made after room for its chunk's size line */

    body = f->data + NGX_OFF_T_LEN + 2;
    p = body;

    switch (opcode) {

    case TIDAL_WS_OP_CLOSE:
        break;

    case TIDAL_WS_OP_PING:
        p = ngx_cpymem(p, ":\n\n", 3);
        break;

    case TIDAL_WS_OP_CONT:
        p = ngx_sprintf(p, "retry: %ui\n\n",
                        (ngx_uint_t) NGX_HTTP_TIDAL_SSE_RETRY);
        break;

    default: /* TIDAL_WS_OP_TEXT */
        if (seq) {
            p = ngx_sprintf(p, "id: %uL\n", seq);
        }

        p = ngx_cpymem(p, "data: ", 6);
        p = ngx_cpymem(p, data, len);
        p = ngx_cpymem(p, "\n\n", 2);
        break;
    }

    n = p - body;

    if (kind != NGX_HTTP_TIDAL_SSE_CHUNKED) {
        ngx_memmove(f->data, body, n);
        f->len = n;
        return f;
    }

    if (f->close) {
        f->len = ngx_cpymem(f->data, "0\r\n\r\n", 5) - f->data;
        return f;
    }

    p = ngx_sprintf(f->data, "%xz\r\n", n);
    p = ngx_movemem(p, body, n);      /* the two may overlap */
    p = ngx_cpymem(p, "\r\n", 2);

    f->len = p - f->data;

    return f;
}


/* a stream whose request stays (HTTP/2, a POST) can write again */

static void
ngx_http_tidal_sse_request_handler(ngx_http_request_t *r)
{
    ngx_http_tidal_ws_t  *cl;

    cl = ngx_http_get_module_ctx(r, ngx_tidal_module);

    if (cl == NULL) {
        return;
    }

    if (r->connection->write->timedout) {
        r->connection->timedout = 1;
        ngx_http_tidal_ws_finish(cl, 0);
        return;
    }

    ngx_http_tidal_ws_after_write(cl);
}


/*
 * A stream whose request stays (HTTP/2, a POST): the queue goes through nginx's filters as one buffer at a time,
 * which the client owns until HTTP/2 has sent it (its pos reaches last).
 * NGX_OK: all is out; NGX_AGAIN; NGX_ERROR.
 */

ngx_int_t
ngx_http_tidal_sse_flush(ngx_http_tidal_ws_t *cl)
{
    u_char                *p;
    size_t                 size;
    ngx_int_t              rc;
    ngx_uint_t             last;
    ngx_buf_t             *b;
    ngx_http_tidal_out_t  *o;
    ngx_http_request_t    *r;

    r = cl->request;
    b = &cl->pending;

    for ( ;; ) {

        if (b->start) {
            rc = ngx_http_output_filter(r, NULL);

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (b->pos < b->last || b->last_buf) {
                if (b->last_buf && b->pos == b->last && rc == NGX_OK) {
                    return NGX_OK;
                }

                return NGX_AGAIN;
            }

            ngx_free(b->start);
            ngx_memzero(b, sizeof(ngx_buf_t));
        }

        if (cl->out == NULL) {
            return NGX_OK;
        }

        size = 0;
        last = 0;

        for (o = cl->out; o; o = o->next) {
            size += o->frame->len - o->sent;
        }

        p = ngx_alloc(size ? size : 1, cl->connection->log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        b->start = p;
        b->pos = p;

        while (cl->out) {
            o = cl->out;
            last |= o->frame->close;
            p = ngx_cpymem(p, o->frame->data + o->sent,
                           o->frame->len - o->sent);
            ngx_http_tidal_ws_dequeue(cl);
        }

        cl->out_last = &cl->out;

        b->last = p;
        b->end = p;
        b->memory = size ? 1 : 0;
        b->flush = 1;
        b->last_buf = last;
        b->tag = (ngx_buf_tag_t) &ngx_tidal_module;

        cl->pending_chain.buf = b;
        cl->pending_chain.next = NULL;

        rc = ngx_http_output_filter(r, &cl->pending_chain);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (last) {
            return (b->pos == b->last && rc == NGX_OK) ? NGX_OK : NGX_AGAIN;
        }

        if (b->pos < b->last) {
            return NGX_AGAIN;
        }
    }
}


/* a stream whose request stays ends with it */

void
ngx_http_tidal_sse_end(ngx_http_tidal_ws_t *cl)
{
    ngx_http_request_t  *r;

    r = cl->request;

    if (r == NULL) {
        return;
    }

    cl->request = NULL;

    ngx_http_finalize_request(r, r->connection->error ? NGX_ERROR : NGX_OK);
}

