/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: everything the module does to nginx's request and connection
 * beyond nginx's public API, in one place.  An upgraded client outlives
 * its request: the request is freed once the 101 is out, as nginx frees
 * one for an idle keep-alive connection (ngx_http_set_keepalive()), and
 * the bare connection is closed as nginx closes one after a response
 * (ngx_http_set_lingering_close(), ngx_http_close_request()).  Those are
 * static in ngx_http_request.c, so the parts we need are copied here and
 * must follow nginx: the integration suite runs against Debian's 1.22.1
 * and mainline (make integration), and t/013 reads the debug lines below
 * from nginx built --with-debug.  Graceful shutdown reaches a client
 * through c->idle and c->close; the workers' wake-up is a connection that
 * nginx must not count as a client's.
 */


#include "ngx_http_tidal.h"


static void ngx_http_tidal_upgrade_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_tidal_detach(ngx_http_tidal_ws_t *ws,
    ngx_http_request_t *r);
static void ngx_http_tidal_free_buffers(ngx_connection_t *c,
    ngx_chain_t *cl);
static void ngx_http_tidal_set_lingering_close(ngx_connection_t *c);
static void ngx_http_tidal_lingering_close_handler(ngx_event_t *rev);
static void ngx_http_tidal_close_connection(ngx_http_tidal_ws_t *ws);


/*
 * After the 101 is queued (ngx_http_send_header()): the request is freed
 * by the first event after this handler has returned and nginx has let
 * go of it; the posted write event makes sure there is one.  Then
 * ws->attach() takes the connection over.  The extra reference is the
 * one ngx_http_finalize_request(r, NGX_DONE) gives back.
 */

ngx_int_t
ngx_http_tidal_upgrade(ngx_http_request_t *r, ngx_http_tidal_ws_t *ws)
{
    ngx_connection_t  *c;

    c = r->connection;

    r->main->count++;

    c->read->handler = ngx_http_tidal_upgrade_handler;
    c->write->handler = ngx_http_tidal_upgrade_handler;

    ngx_post_event(c->write, &ngx_posted_events);

    /*
     * graceful shutdown (quit, reload) calls the read handler of every
     * connection marked idle: ngx_close_idle_connections()
     */

    c->idle = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal upgrade: 101 queued, request count %d",
                   (int) r->main->count);

    return NGX_DONE;
}


static void
ngx_http_tidal_upgrade_handler(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_http_tidal_ws_t  *ws;

    c = ev->data;
    r = c->data;
    ws = ngx_http_get_module_ctx(r, ngx_tidal_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal upgrade handler: %s event, request count %d",
                   ev->write ? "write" : "read", (int) r->count);

    if (ngx_http_tidal_detach(ws, r) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }

    /* the client's own write handler sends what attach queued */

    c->write->handler(c->write);
}


/*
 * Frees the request and what HTTP kept for it, as nginx does for an idle
 * keep-alive connection, so an idle client holds only its connection, a
 * small pool and the ws struct: the request's pool, the header buffers
 * and the request struct are most of a client's memory otherwise.  The
 * access log gets its line now, with status 101.  What the socket did not
 * take of the 101 and what the client sent right behind its request go
 * to ws->attach() first, while the request still holds them.
 *
 * A module that holds something for as long as the request lives (a
 * limit_conn slot, for one) registered a cleanup for it: such a request
 * is kept, with its buffers, until the connection ends, and logged then.
 */

static ngx_int_t
ngx_http_tidal_detach(ngx_http_tidal_ws_t *ws, ngx_http_request_t *r)
{
    size_t                  len;
    ngx_buf_t              *b;
    ngx_chain_t            *cl;
    ngx_connection_t       *c;
    ngx_pool_cleanup_t     *cln;
    ngx_http_log_ctx_t     *ctx;
    ngx_http_connection_t  *hc;

    c = ws->connection;
    hc = r->http_connection;

    if (r != r->main || r->count != 1 || r->blocked) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "tidal: the upgraded request is still in use");
        return NGX_ERROR;
    }

    if (ws->core_conf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }

    len = 0;

    for (cl = r->out; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    b = r->header_in;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal detach: %uz bytes of the 101 unsent, "
                   "%uz bytes after the request",
                   len, (size_t) (b->last - b->pos));

    if (ws->attach(ws, len ? r->out : NULL, b) != NGX_OK) {
        return NGX_ERROR;
    }

    if (len) {
        r->out = NULL;

#if (NGX_HTTP_SSL)
        /* what TLS's buffer holds is written by ngx_http_tidal_flush_tls() */
        c->buffered &= NGX_SSL_BUFFERED;
#else
        c->buffered = 0;
#endif
    }

    c->data = ws;

    if (r->cleanup) {
        ws->kept = r;

    } else {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler) {
                ws->kept = r;
                break;
            }
        }
    }

    if (ws->kept) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "tidal detach: request kept, a module holds it "
                       "until the connection ends");
        return NGX_OK;
    }

    ngx_http_free_request(r, 0);

    ctx = c->log->data;
    ctx->current_request = NULL;

    c->log->action = NULL;
    c->destroyed = 0;

    b = c->buffer;

    if (b && ngx_pfree(c->pool, b->start) == NGX_OK) {
        b->start = NULL;
        b->pos = NULL;
        b->last = NULL;
        b->end = NULL;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal detach: hc free: %p, busy: %i", hc->free,
                   hc->nbusy);

    ngx_http_tidal_free_buffers(c, hc->free);
    hc->free = NULL;

    ngx_http_tidal_free_buffers(c, hc->busy);
    hc->busy = NULL;
    hc->nbusy = 0;

#if (NGX_HTTP_SSL)
    if (c->ssl && !(c->buffered & NGX_SSL_BUFFERED)) {
        ngx_ssl_free_buffer(c);
    }
#endif

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal detach: request freed");

    return NGX_OK;
}


/* large header buffers, which nginx keeps for the connection's next request */

static void
ngx_http_tidal_free_buffers(ngx_connection_t *c, ngx_chain_t *cl)
{
    ngx_chain_t  *ln;

    while (cl) {
        ln = cl;
        cl = cl->next;
        ngx_pfree(c->pool, ln->buf->start);
        ngx_free_chain(c->pool, ln);
    }
}


/*
 * Whether nginx's graceful shutdown has asked this connection to close
 * (ngx_close_idle_connections() sets c->close once and calls the read
 * handler); the flag is taken, so that the client is closed with 1001 as
 * the module decides, not at once.
 */

ngx_uint_t
ngx_http_tidal_shutdown_asked(ngx_connection_t *c)
{
    if (!c->close) {
        return 0;
    }

    c->close = 0;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal: graceful shutdown asks the client to go");

    return 1;
}


/*
 * What the client's queue left in TLS's buffer, which waits for more to
 * fill a record: NGX_OK when it is out, NGX_AGAIN, or NGX_ERROR.
 */

ngx_int_t
ngx_http_tidal_flush_tls(ngx_connection_t *c)
{
#if (NGX_HTTP_SSL)

    if (!(c->buffered & NGX_SSL_BUFFERED)) {
        return NGX_OK;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal: flushing TLS's buffer");

    if (!c->write->ready) {
        return NGX_AGAIN;
    }

    if (c->send_chain(c, NULL, 0) == NGX_CHAIN_ERROR) {
        c->error = 1;
        return NGX_ERROR;
    }

    if (c->buffered & NGX_SSL_BUFFERED) {
        return NGX_AGAIN;
    }

#endif

    return NGX_OK;
}


/*
 * Ends the connection.  After a close frame (linger) it lingers, as
 * nginx does after a response, to drain what the client still sends:
 * closing with unread data would reset the connection and could destroy
 * our close frame before the client reads it.  Lingering also while
 * exiting, for the 1001 close frame in flight.
 */

void
ngx_http_tidal_close(ngx_http_tidal_ws_t *ws, ngx_uint_t linger)
{
    ngx_connection_t  *c;

    c = ws->connection;

    c->idle = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal close: %s", linger && !ngx_terminate
                                      ? "lingering" : "now");

    if (linger && !ngx_terminate) {
        ws->lingering_time = ngx_time()
                             + (time_t) (ws->core_conf->lingering_time / 1000);

        ngx_http_tidal_set_lingering_close(c);
        return;
    }

    ngx_http_tidal_close_connection(ws);
}


static void
ngx_http_tidal_set_lingering_close(ngx_connection_t *c)
{
    ngx_event_t          *rev, *wev;
    ngx_http_tidal_ws_t  *ws;

    ws = c->data;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        ngx_int_t  rc;

        c->ssl->shutdown_without_free = 1;

        rc = ngx_ssl_shutdown(c);

        if (rc == NGX_ERROR) {
            ngx_http_tidal_close_connection(ws);
            return;
        }

        if (rc == NGX_AGAIN) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "tidal lingering close: TLS shutdown waits");

            c->ssl->handler = ngx_http_tidal_set_lingering_close;
            return;
        }
    }
#endif

    rev = c->read;
    rev->handler = ngx_http_tidal_lingering_close_handler;

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_tidal_close_connection(ws);
        return;
    }

    wev = c->write;
    wev->handler = ngx_http_empty_handler;

    if (wev->active && (ngx_event_flags & NGX_USE_LEVEL_EVENT)) {
        if (ngx_del_event(wev, NGX_WRITE_EVENT, 0) != NGX_OK) {
            ngx_http_tidal_close_connection(ws);
            return;
        }
    }

    if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_connection_error(c, ngx_socket_errno,
                             ngx_shutdown_socket_n " failed");
        ngx_http_tidal_close_connection(ws);
        return;
    }

    c->close = 0;
    ngx_reusable_connection(c, 1);

    ngx_add_timer(rev, ws->core_conf->lingering_timeout);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal lingering close: write side shut, reading for "
                   "up to %M ms", ws->core_conf->lingering_timeout);

    if (rev->ready) {
        ngx_http_tidal_lingering_close_handler(rev);
    }
}


static void
ngx_http_tidal_lingering_close_handler(ngx_event_t *rev)
{
    ssize_t               n;
    ngx_msec_t            timer;
    ngx_connection_t     *c;
    ngx_http_tidal_ws_t  *ws;
    u_char                buffer[NGX_HTTP_LINGERING_BUFFER_SIZE];

    c = rev->data;
    ws = c->data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal lingering close handler: timed out %d, close %d",
                   (int) rev->timedout, (int) c->close);

    if (rev->timedout || c->close) {
        ngx_http_tidal_close_connection(ws);
        return;
    }

    timer = (ngx_msec_t) ws->lingering_time - (ngx_msec_t) ngx_time();
    if ((ngx_msec_int_t) timer <= 0) {
        ngx_http_tidal_close_connection(ws);
        return;
    }

    do {
        n = c->recv(c, buffer, NGX_HTTP_LINGERING_BUFFER_SIZE);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "tidal lingering read: %z", n);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_tidal_close_connection(ws);
            return;
        }

    } while (rev->ready);

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_tidal_close_connection(ws);
        return;
    }

    timer *= 1000;

    if (timer > ws->core_conf->lingering_timeout) {
        timer = ws->core_conf->lingering_timeout;
    }

    ngx_add_timer(rev, timer);
}


/*
 * The client's memory goes with the connection's pool.  A timed-out
 * client is reset when reset_timedout_connection says so, as
 * ngx_http_free_request() does; a kept request is freed (and logged)
 * now.
 */

static void
ngx_http_tidal_close_connection(ngx_http_tidal_ws_t *ws)
{
    ngx_connection_t  *c;
    struct linger      linger;

    c = ws->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "tidal close connection: timed out %d, kept request %p",
                   (int) c->timedout, ws->kept);

    if (c->timedout && ws->core_conf->reset_timedout_connection) {
        linger.l_onoff = 1;
        linger.l_linger = 0;

        if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER,
                       (const void *) &linger, sizeof(struct linger)) == -1)
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, ngx_socket_errno,
                          "setsockopt(SO_LINGER) failed");
        }
    }

    if (ws->kept) {
        ngx_http_free_request(ws->kept, 0);
    }

    ngx_http_close_connection(c);
}


/*
 * A connection for an fd of the module's own (a worker's wake-up):
 * marked as a channel, as nginx marks the master's channel to its
 * workers, so that an exiting worker does not report it as an "open
 * socket left" (ngx_worker_process_exit()).
 */

ngx_connection_t *
ngx_http_tidal_wake_connection(ngx_fd_t fd, ngx_event_handler_pt handler,
    void *data, ngx_log_t *log)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NULL;
    }

    c->read->handler = handler;
    c->read->log = log;
    c->read->channel = 1;
    c->write->channel = 1;
    c->data = data;

    /*
     * graceful shutdown calls the read handler of an idle connection at
     * once (c->close): the fan-out ends what nginx would not reach
     */

    c->idle = 1;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_free_connection(c);
        return NULL;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "tidal: wake-up fd %d watched", fd);

    return c;
}
