/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: per-worker fan-out - each worker keeps its clients in a
 * list, reads new events from the zone's ring once, frames each event
 * once and queues the same buffer for every client.  Workers wake each
 * other with one eventfd (or pipe) per worker, created by the master,
 * when one of them has published an event.
 */


#include "ngx_http_tidal.h"

#if (NGX_HTTP_TIDAL_HAVE_EVENTFD)
#include <sys/eventfd.h>
#endif


#define NGX_HTTP_TIDAL_FETCH  64

/*
 * A client whose send queue holds this much gets no more sound until it
 * has caught up (each batch it misses counted): sound never makes a
 * queue overflow, which would close the client.
 */
#define NGX_HTTP_TIDAL_SOUND_QUEUE  8
#define NGX_HTTP_TIDAL_SOUND_BYTES  (256 * 1024)

/* what the zone copies events into: kept between reads up to this size */
#define NGX_HTTP_TIDAL_READ_BUFFER  65536

/*
 * A worker's wake-up is an eventfd, or where there is none a pipe: the
 * worker watches the first fd of its slot, the others write to the last.
 * Writes of 8 bytes keep both kinds alike: a pipe takes them whole.
 */

#if (NGX_HTTP_TIDAL_HAVE_EVENTFD)
#define NGX_HTTP_TIDAL_WAKE_FDS  1
#else
#define NGX_HTTP_TIDAL_WAKE_FDS  2
#endif

#define ngx_http_tidal_wake_read_fd(tmcf, i)                                  \
    (tmcf)->wake_fds[(i) * NGX_HTTP_TIDAL_WAKE_FDS]
#define ngx_http_tidal_wake_write_fd(tmcf, i)                                 \
    (tmcf)->wake_fds[((i) + 1) * NGX_HTTP_TIDAL_WAKE_FDS - 1]


/*
 * How an event reaches a client: as it is, a tidal event notification for
 * those that asked for them, or as a notifications/message line for the
 * others (tidal_mcp.h).
 */
#define NGX_HTTP_TIDAL_AS_EVENT    0
#define NGX_HTTP_TIDAL_AS_MESSAGE  1

/* not yet worked out, for level[] */
#define NGX_HTTP_TIDAL_UNKNOWN     -2
#define NGX_HTTP_TIDAL_NO_LINE     -1


/*
 * Events read from the ring, each read as a line and framed at most once
 * for each form and kind of client that gets it; the bytes are the
 * worker's buffer's until the next read.
 */
typedef struct {
    ngx_uint_t                   n;
    uint64_t                     first;         /* the seq of events[0] */
    ngx_http_tidal_event_t       events[NGX_HTTP_TIDAL_FETCH];
    int                          level[NGX_HTTP_TIDAL_FETCH];
    char                        *line[NGX_HTTP_TIDAL_FETCH];
    size_t                       line_len[NGX_HTTP_TIDAL_FETCH];
    uint32_t                     resources[NGX_HTTP_TIDAL_FETCH];
    ngx_http_tidal_frame_t      *frames[2][NGX_HTTP_TIDAL_KINDS]
                                       [NGX_HTTP_TIDAL_FETCH];
} ngx_http_tidal_batch_t;


typedef struct {
    ngx_http_tidal_main_conf_t  *tmcf;
    ngx_queue_t                  clients;
    ngx_uint_t                   nclients;
    uint64_t                     next_seq;
    ngx_connection_t            *wake;
    ngx_event_t                  poll;
    ngx_event_t                  written;       /* posted after the writes */
    ngx_event_t                  pause;         /* tidal_fanout_delay */
    u_char                      *buf;           /* events read, unframed */
    size_t                       size;
} ngx_http_tidal_worker_t;


static ngx_int_t ngx_http_tidal_fanout_open_wake(ngx_fd_t *fds,
    ngx_log_t *log);
static void ngx_http_tidal_fanout_close_fds(void *data);
static void ngx_http_tidal_fanout_wake(ngx_http_tidal_main_conf_t *tmcf);
static void ngx_http_tidal_fanout_wake_handler(ngx_event_t *ev);
static void ngx_http_tidal_fanout_poll_handler(ngx_event_t *ev);
static void ngx_http_tidal_fanout_schedule(ngx_http_tidal_main_conf_t *tmcf);
static void ngx_http_tidal_fanout_written_handler(ngx_event_t *ev);
static void ngx_http_tidal_fanout_pause_handler(ngx_event_t *ev);
static void ngx_http_tidal_fanout_deliver(ngx_http_tidal_main_conf_t *tmcf);
static ngx_int_t ngx_http_tidal_fanout_fetch(ngx_http_tidal_main_conf_t *tmcf,
    uint64_t from, ngx_http_tidal_batch_t *b, uint64_t *next);
static ngx_int_t ngx_http_tidal_fanout_send(ngx_http_tidal_ws_t *ws,
    ngx_http_tidal_batch_t *b, ngx_uint_t from);
static void ngx_http_tidal_fanout_free(ngx_http_tidal_batch_t *b);
static ngx_int_t ngx_http_tidal_fanout_read(ngx_http_tidal_batch_t *b,
    ngx_uint_t i);
static ngx_int_t ngx_http_tidal_fanout_restore(ngx_http_tidal_ws_t *ws);
static void ngx_http_tidal_fanout_replay(ngx_http_tidal_ws_t *ws,
    uint64_t from);


static ngx_http_tidal_worker_t  ngx_http_tidal_worker;


/* the configuration with a zone, or NULL where fan-out has no work */

/*
 * The master makes one wake-up per worker before forking, so every
 * worker can wake every other.  A reload makes a new set for the new
 * workers; the old set is closed with the old cycle.
 */

ngx_int_t
ngx_http_tidal_fanout_init_module(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf)
{
    ngx_uint_t                   i;
    ngx_core_conf_t             *ccf;
    ngx_pool_cleanup_t          *cln;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    tmcf->nwake = ccf->worker_processes;
    tmcf->wake_fds = ngx_pcalloc(cycle->pool, tmcf->nwake
                                 * NGX_HTTP_TIDAL_WAKE_FDS * sizeof(ngx_fd_t));
    if (tmcf->wake_fds == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < tmcf->nwake * NGX_HTTP_TIDAL_WAKE_FDS; i++) {
        tmcf->wake_fds[i] = -1;
    }

    cln->handler = ngx_http_tidal_fanout_close_fds;
    cln->data = tmcf;

    for (i = 0; i < tmcf->nwake; i++) {
        if (ngx_http_tidal_fanout_open_wake(
                &tmcf->wake_fds[i * NGX_HTTP_TIDAL_WAKE_FDS], cycle->log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_tidal_fanout_open_wake(ngx_fd_t *fds, ngx_log_t *log)
{
#if (NGX_HTTP_TIDAL_HAVE_EVENTFD)

    fds[0] = eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC);

    if (fds[0] == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "tidal: eventfd() failed");
        return NGX_ERROR;
    }

#else

    ngx_uint_t  i;

    if (pipe(fds) == -1) {
        fds[0] = -1;
        fds[1] = -1;
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "tidal: pipe() failed");
        return NGX_ERROR;
    }

    for (i = 0; i < 2; i++) {
        if (ngx_nonblocking(fds[i]) == -1) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          "tidal: " ngx_nonblocking_n " failed");
            return NGX_ERROR;
        }

        if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) == -1) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          "tidal: fcntl(FD_CLOEXEC) failed");
            return NGX_ERROR;
        }
    }

#endif

    return NGX_OK;
}


static void
ngx_http_tidal_fanout_close_fds(void *data)
{
    ngx_http_tidal_main_conf_t  *tmcf = data;

    ngx_uint_t  i;

    for (i = 0; i < tmcf->nwake * NGX_HTTP_TIDAL_WAKE_FDS; i++) {
        if (tmcf->wake_fds[i] != -1) {
            (void) close(tmcf->wake_fds[i]);
        }
    }
}


ngx_int_t
ngx_http_tidal_fanout_init_process(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf)
{
    ngx_connection_t            *c;
    ngx_http_tidal_worker_t     *w;

    w = &ngx_http_tidal_worker;

    w->tmcf = tmcf;
    ngx_queue_init(&w->clients);
    w->next_seq = ngx_http_tidal_zone_last_seq(tmcf) + 1;

    (void) ngx_http_tidal_zone_claim_slot(tmcf, cycle->log);

    /* a safety net: events published by workers of another generation */

    w->poll.handler = ngx_http_tidal_fanout_poll_handler;
    w->poll.data = w;
    w->poll.log = cycle->log;
    w->poll.cancelable = 1;

    ngx_add_timer(&w->poll, 1000);

    w->written.handler = ngx_http_tidal_fanout_written_handler;
    w->written.data = w;
    w->written.log = cycle->log;

    w->pause.handler = ngx_http_tidal_fanout_pause_handler;
    w->pause.data = w;
    w->pause.log = cycle->log;
    w->pause.cancelable = 1;

    if (tmcf->wake_fds == NULL || ngx_worker >= tmcf->nwake) {
        return NGX_OK;
    }

    c = ngx_http_tidal_wake_connection(
            ngx_http_tidal_wake_read_fd(tmcf, ngx_worker),
            ngx_http_tidal_fanout_wake_handler, w, cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    w->wake = c;

    return NGX_OK;
}


/*
 * An event this worker published into the zone: its own clients get it
 * now (or after the pause), the other workers are woken to read it.
 */

void
ngx_http_tidal_fanout_published(ngx_http_tidal_main_conf_t *tmcf)
{
    ngx_http_tidal_fanout_schedule(tmcf);
    ngx_http_tidal_fanout_wake(tmcf);
}


static void
ngx_http_tidal_fanout_wake(ngx_http_tidal_main_conf_t *tmcf)
{
    uint64_t    one;
    ngx_uint_t  i;

    if (tmcf->wake_fds == NULL) {
        return;
    }

    one = 1;

    for (i = 0; i < tmcf->nwake; i++) {
        if (i == ngx_worker) {
            continue;
        }

        /* EAGAIN: a full counter or pipe, that worker is woken already */

        if (write(ngx_http_tidal_wake_write_fd(tmcf, i), &one, sizeof(one))
            == -1 && ngx_errno != NGX_EAGAIN)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                          "tidal: write() to the wake-up of worker %ui "
                          "failed", i);
        }
    }
}


static void
ngx_http_tidal_fanout_wake_handler(ngx_event_t *ev)
{
    uint64_t                  count;
    ngx_connection_t         *c;
    ngx_http_tidal_worker_t  *w;

    c = ev->data;
    w = c->data;

    if (c->close) {
        /* graceful shutdown: ngx_close_idle_connections() */
        c->close = 0;
        ngx_http_tidal_fanout_exiting();
        return;
    }

    while (read(c->fd, &count, sizeof(count)) == sizeof(count)) {
        /* void */
    }

    ngx_http_tidal_fanout_schedule(w->tmcf);
}


static void
ngx_http_tidal_fanout_poll_handler(ngx_event_t *ev)
{
    ngx_http_tidal_worker_t  *w = ev->data;

    if (ngx_exiting) {
        ngx_http_tidal_fanout_exiting();
        return;
    }

    ngx_http_tidal_fanout_deliver(w->tmcf);

    ngx_add_timer(ev, 1000);
}


/*
 * An event published while the worker is idle goes out at once.  After
 * a fan-out the worker pauses for tidal_fanout_delay, counted from when
 * its writes are done: the events published meanwhile go out together,
 * in one write per client instead of one per event and client, which is
 * most of what a delivery costs during a burst.
 */

static void
ngx_http_tidal_fanout_schedule(ngx_http_tidal_main_conf_t *tmcf)
{
    ngx_http_tidal_worker_t  *w;

    w = &ngx_http_tidal_worker;

    if (w->tmcf != tmcf) {
        return;
    }

    if ((w->written.posted || w->pause.timer_set) && !ngx_exiting) {
        /* the pause handler delivers them */
        return;
    }

    ngx_http_tidal_fanout_deliver(tmcf);
}


static void
ngx_http_tidal_fanout_written_handler(ngx_event_t *ev)
{
    ngx_http_tidal_worker_t  *w = ev->data;

    if (ngx_exiting) {
        return;
    }

    /* the writes took a while: the pause starts now, not at the event */

    ngx_time_update();

    ngx_add_timer(&w->pause, w->tmcf->fanout_delay);
}


static void
ngx_http_tidal_fanout_pause_handler(ngx_event_t *ev)
{
    ngx_http_tidal_worker_t  *w = ev->data;

    ngx_http_tidal_fanout_deliver(w->tmcf);
}


/*
 * Brings every client of this worker up to the ring's head.  A worker
 * that finds its next event already overwritten cannot send a hole: its
 * clients get a snapshot of the whole state instead.
 */

static void
ngx_http_tidal_fanout_deliver(ngx_http_tidal_main_conf_t *tmcf)
{
    uint64_t                  next, first;
    ngx_int_t                 rc;
    ngx_uint_t                skip;
    ngx_queue_t              *q, *nq;
    ngx_http_tidal_ws_t      *ws;
    ngx_http_tidal_batch_t    batch;
    ngx_http_tidal_worker_t  *w;

    w = &ngx_http_tidal_worker;

    if (w->tmcf != tmcf) {
        return;
    }

    first = w->next_seq;

    for ( ;; ) {

        rc = ngx_http_tidal_fanout_fetch(tmcf, w->next_seq, &batch, &next);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "tidal: this worker fell behind the event ring "
                          "(next event %uL, head %uL); its clients get a "
                          "snapshot instead", w->next_seq, next);

            for (q = ngx_queue_head(&w->clients);
                 q != ngx_queue_sentinel(&w->clients);
                 q = nq)
            {
                nq = ngx_queue_next(q);
                ws = ngx_queue_data(q, ngx_http_tidal_ws_t, link);
                (void) ngx_http_tidal_fanout_restore(ws);
            }

            w->next_seq = next;
            break;
        }

        /* a client whose queue overflows leaves the list on the way */

        for (q = ngx_queue_head(&w->clients);
             q != ngx_queue_sentinel(&w->clients);
             q = nq)
        {
            nq = ngx_queue_next(q);
            ws = ngx_queue_data(q, ngx_http_tidal_ws_t, link);

            /* a client that resumed may already have some of them */

            skip = ws->next_seq > w->next_seq ? ws->next_seq - w->next_seq
                                              : 0;

            if (ngx_http_tidal_fanout_send(ws, &batch, skip) != NGX_OK) {
                continue;
            }

            if (ws->next_seq < next) {
                ws->next_seq = next;
            }
        }

        ngx_http_tidal_fanout_free(&batch);

        w->next_seq = next;

        if (rc != NGX_DONE) {
            break;
        }
    }

    /*
     * Writing may end a client, and the publisher may be one of them in
     * the middle of its own handler: the writes run as posted events,
     * one per client however many events arrived.
     */

    for (q = ngx_queue_head(&w->clients);
         q != ngx_queue_sentinel(&w->clients);
         q = ngx_queue_next(q))
    {
        ws = ngx_queue_data(q, ngx_http_tidal_ws_t, link);

        if (ws->out && !ws->connection->write->posted) {
            ngx_post_event(ws->connection->write,
                           &ngx_posted_events);
        }
    }

    if (w->next_seq != first && tmcf->fanout_delay && !ngx_exiting) {
        ngx_post_event(&w->written, &ngx_posted_events);
    }
}


/*
 * Called once the initialize response is queued: from now on the client
 * gets every event after ws->next_seq - 1.  A resumed client first gets
 * what it missed since from, or a snapshot when that is gone.
 */

void
ngx_http_tidal_fanout_join(ngx_http_tidal_ws_t *ws, uint64_t from)
{
    ngx_http_tidal_worker_t  *w;

    w = &ngx_http_tidal_worker;

    ws->joined = 1;
    ngx_queue_insert_tail(&w->clients, &ws->link);
    w->nclients++;

    if (from) {
        ngx_http_tidal_fanout_replay(ws, from);
    }
}


/*
 * Before a client gets the answer to its call, it gets the events the
 * call caused, even while the worker pauses between fan-outs.
 */

void
ngx_http_tidal_fanout_catch_up(ngx_http_tidal_ws_t *ws)
{
    if (ws->joined) {
        ngx_http_tidal_fanout_replay(ws, ws->next_seq);
    }
}


void
ngx_http_tidal_fanout_leave(ngx_http_tidal_ws_t *ws)
{
    if (ws->joined) {
        ws->joined = 0;
        ngx_queue_remove(&ws->link);
        ngx_http_tidal_worker.nclients--;
    }
}


/*
 * Graceful shutdown reaches an HTTP/2 connection, but not its streams: an
 * event stream would hold its worker until the client leaves, so the
 * streams end here, as HTTP/1 ones do when nginx asks; their clients come
 * back elsewhere.  Called when the worker is told to go (the wake-up
 * connection is marked idle for that), and again by the poll timer.
 */

void
ngx_http_tidal_fanout_exiting(void)
{
    ngx_queue_t              *q, *nq;
    ngx_http_tidal_ws_t      *ws;
    ngx_http_tidal_worker_t  *w;

    w = &ngx_http_tidal_worker;

    if (w->tmcf == NULL) {
        return;
    }

    for (q = ngx_queue_head(&w->clients);
         q != ngx_queue_sentinel(&w->clients);
         q = nq)
    {
        nq = ngx_queue_next(q);
        ws = ngx_queue_data(q, ngx_http_tidal_ws_t, link);

        if (ws->request) {
            /* nginx 1.22 runs no posted event before a worker goes */
            ngx_http_tidal_ws_close(ws, TIDAL_WS_CLOSE_GOING_AWAY, NULL);
            ngx_http_tidal_ws_after_write(ws);
        }
    }
}


/*
 * Where a joining client starts: right after the last event published,
 * which this worker may not have delivered yet (it pauses between
 * fan-outs); deliver skips the events before a client's next_seq.
 */

uint64_t
ngx_http_tidal_fanout_position(void)
{
    ngx_http_tidal_worker_t  *w;

    w = &ngx_http_tidal_worker;

    if (w->tmcf == NULL) {
        return w->next_seq;
    }

    return ngx_http_tidal_zone_last_seq(w->tmcf) + 1;
}


ngx_uint_t
ngx_http_tidal_fanout_clients(void)
{
    return ngx_http_tidal_worker.nclients;
}


/*
 * A batch of the room's sound from the helper (TIDAL_PROTOCOL_SOUND_HEAD):
 * framed at most once per kind of client and queued at once, without the
 * ring, numbers or tidal_fanout_delay, to the clients that asked for it
 * and keep up; the others miss it.
 */

void
ngx_http_tidal_fanout_sound(const u_char *data, size_t len)
{
    ngx_uint_t                k;
    ngx_queue_t              *q, *nq;
    ngx_http_tidal_ws_t      *ws;
    ngx_http_tidal_frame_t   *frames[NGX_HTTP_TIDAL_KINDS];
    ngx_http_tidal_worker_t  *w;

    w = &ngx_http_tidal_worker;

    if (w->tmcf == NULL || ngx_exiting) {
        return;
    }

    ngx_memzero(frames, sizeof(frames));

    /* a client that fails on the way leaves the list */

    for (q = ngx_queue_head(&w->clients);
         q != ngx_queue_sentinel(&w->clients);
         q = nq)
    {
        nq = ngx_queue_next(q);
        ws = ngx_queue_data(q, ngx_http_tidal_ws_t, link);

        if (!ws->mcp.tidal_sound || ws->kind >= NGX_HTTP_TIDAL_KINDS
            || ws->answering || ws->close_sent
            || (ws->newest && *ws->newest != ws->stream))
        {
            continue;
        }

        if (ws->out_count >= ngx_min(NGX_HTTP_TIDAL_SOUND_QUEUE,
                                     ws->conf->queue_size / 2)
            || ws->out_bytes + len > ngx_min(NGX_HTTP_TIDAL_SOUND_BYTES,
                                             ws->conf->queue_bytes / 2))
        {
            ws->sound_dropped++;
            continue;
        }

        if (frames[ws->kind] == NULL) {
            frames[ws->kind] = ngx_http_tidal_frame_make(ws->kind,
                                   TIDAL_WS_OP_TEXT, 0, data, len,
                                   ngx_cycle->log);
            if (frames[ws->kind] == NULL) {
                break;
            }
        }

        if (ngx_http_tidal_ws_queue(ws, frames[ws->kind]) != NGX_OK) {
            continue;
        }

        if (!ws->connection->write->posted) {
            ngx_post_event(ws->connection->write, &ngx_posted_events);
        }
    }

    for (k = 0; k < NGX_HTTP_TIDAL_KINDS; k++) {
        if (frames[k]) {
            ngx_http_tidal_frame_release(frames[k]);
        }
    }
}


static void
ngx_http_tidal_fanout_replay(ngx_http_tidal_ws_t *ws, uint64_t from)
{
    uint64_t                 next;
    ngx_int_t                rc;
    ngx_http_tidal_batch_t   batch;

    for ( ;; ) {

        rc = ngx_http_tidal_fanout_fetch(ws->main_conf, from, &batch, &next);

        if (rc == NGX_DECLINED) {
            (void) ngx_http_tidal_fanout_restore(ws);
            return;
        }

        (void) ngx_http_tidal_fanout_send(ws, &batch, 0);
        ngx_http_tidal_fanout_free(&batch);

        ws->next_seq = next;
        from = next;

        if (rc != NGX_DONE) {
            return;
        }
    }
}


/*
 * Up to NGX_HTTP_TIDAL_FETCH events from number from on: the zone copies
 * their bytes out under its lock; they are framed after it, once per kind
 * of client (ngx_http_tidal_fanout_send()).  NGX_OK: up to the newest
 * event; NGX_DONE: more are left; NGX_DECLINED: from has left the ring;
 * NGX_ERROR: no memory, nothing read.
 */

static ngx_int_t
ngx_http_tidal_fanout_fetch(ngx_http_tidal_main_conf_t *tmcf, uint64_t from,
    ngx_http_tidal_batch_t *b, uint64_t *next)
{
    size_t                    size;
    ngx_int_t                 rc;
    ngx_uint_t                i, got;
    ngx_http_tidal_worker_t  *w;

    w = &ngx_http_tidal_worker;

    b->n = 0;
    b->first = from;

    for ( ;; ) {
        rc = ngx_http_tidal_zone_fetch(tmcf, from, w->buf, w->size, b->events,
                                       NGX_HTTP_TIDAL_FETCH, &got, next);

        if (rc != NGX_AGAIN) {
            break;
        }

        /* the buffer is made at the first event, and grown for a large one */

        size = ngx_max(b->events[0].len, NGX_HTTP_TIDAL_READ_BUFFER);

        ngx_free(w->buf);

        w->buf = ngx_alloc(size, ngx_cycle->log);
        if (w->buf == NULL) {
            w->size = 0;
            *next = from;
            return NGX_ERROR;
        }

        w->size = size;
    }

    if (rc == NGX_DECLINED) {
        return rc;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "tidal: fan-out read %ui events from #%uL%s", got, from,
                   rc == NGX_DONE ? ", more left" : "");

    b->n = got;

    ngx_memzero(b->frames, sizeof(b->frames));
    ngx_memzero(b->line, sizeof(b->line));

    for (i = 0; i < got; i++) {
        b->level[i] = NGX_HTTP_TIDAL_UNKNOWN;
    }

    return rc;
}


/*
 * Queues a batch's events from number from on for one client, each framed
 * once per kind of client.  An event stream that is no longer its
 * session's newest ends instead: each event goes out on one stream.
 */

static ngx_int_t
ngx_http_tidal_fanout_send(ngx_http_tidal_ws_t *ws, ngx_http_tidal_batch_t *b,
    ngx_uint_t from)
{
    u_char                   *data;
    size_t                    len;
    uint32_t                  updated;
    ngx_int_t                 rc;
    ngx_uint_t                i, r, as;
    ngx_http_tidal_frame_t  **f;

    if (ws->newest && *ws->newest != ws->stream) {

        /* a POST's stream still owes its answer */

        if (!ws->answering) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ws->connection->log, 0,
                           "tidal: a newer stream of the session took over");

            ngx_http_tidal_ws_close(ws, TIDAL_WS_CLOSE_GOING_AWAY, NULL);
        }

        return NGX_DECLINED;
    }

    if (ws->newest) {
        ngx_http_tidal_session_refresh(ws);
    }

    for (i = from; i < b->n; i++) {

        if (!ws->mcp.tidal_events || ws->mcp.subscriptions) {
            if (ngx_http_tidal_fanout_read(b, i) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        if (ws->mcp.tidal_events) {
            as = NGX_HTTP_TIDAL_AS_EVENT;
            data = b->events[i].data;
            len = b->events[i].len;

        } else if (b->level[i] != NGX_HTTP_TIDAL_NO_LINE
                   && tidal_mcp_wants_event_message(&ws->mcp, b->level[i]))
        {
            as = NGX_HTTP_TIDAL_AS_MESSAGE;
            data = (u_char *) b->line[i];
            len = b->line_len[i];

        } else {
            goto updated;
        }

        f = &b->frames[as][ws->kind][i];

        if (*f == NULL) {
            *f = ngx_http_tidal_frame_make(ws->kind, TIDAL_WS_OP_TEXT,
                                           b->first + i, data, len,
                                           ngx_cycle->log);
            if (*f == NULL) {
                return NGX_ERROR;
            }
        }

        rc = ngx_http_tidal_ws_queue(ws, *f);

        if (rc != NGX_OK) {
            return rc;
        }

    updated:

        updated = ws->mcp.subscriptions ? ws->mcp.subscriptions
                                          & b->resources[i]
                                        : 0;

        for (r = 1; updated; r++) {
            if (updated & TIDAL_MCP_RESOURCE_BIT(r)) {
                updated &= ~TIDAL_MCP_RESOURCE_BIT(r);

                rc = ngx_http_tidal_ws_updated(ws, r);

                if (rc != NGX_OK) {
                    return rc;
                }
            }
        }
    }

    if (ws->answering && b->n > from) {
        ngx_http_tidal_session_stream_at(ws, b->first + b->n);
    }

    return NGX_OK;
}


/*
 * What an event means to a client that did not ask for the tidal events:
 * its line and level, and the resources it changed; worked out once per
 * worker, and only when such a client gets it.
 */

static ngx_int_t
ngx_http_tidal_fanout_read(ngx_http_tidal_batch_t *b, ngx_uint_t i)
{
    int  level;

    if (b->level[i] != NGX_HTTP_TIDAL_UNKNOWN) {
        return NGX_OK;
    }

    b->resources[i] = tidal_mcp_event_resources((char *) b->events[i].data,
                                                b->events[i].len);

    level = NGX_HTTP_TIDAL_NO_LINE;

    b->line[i] = tidal_mcp_event_message((char *) b->events[i].data,
                                         b->events[i].len, &level,
                                         &b->line_len[i]);

    b->level[i] = b->line[i] ? level : NGX_HTTP_TIDAL_NO_LINE;

    return NGX_OK;
}


static void
ngx_http_tidal_fanout_free(ngx_http_tidal_batch_t *b)
{
    ngx_uint_t  i, k, as;

    for (i = 0; i < b->n; i++) {

        for (as = 0; as < 2; as++) {
            for (k = 0; k < NGX_HTTP_TIDAL_KINDS; k++) {
                if (b->frames[as][k][i]) {
                    ngx_http_tidal_frame_release(b->frames[as][k][i]);
                }
            }
        }

        free(b->line[i]);
    }

    /* a large event does not keep its memory */

    if (ngx_http_tidal_worker.size > NGX_HTTP_TIDAL_READ_BUFFER) {
        ngx_free(ngx_http_tidal_worker.buf);
        ngx_http_tidal_worker.buf = NULL;
        ngx_http_tidal_worker.size = 0;
    }
}


/*
 * A session_restore snapshot; the client goes on after what it holds.  A
 * client without the tidal events learns that each resource it watches
 * has changed.
 */

static ngx_int_t
ngx_http_tidal_fanout_restore(ngx_http_tidal_ws_t *ws)
{
    char        *text;
    size_t       len;
    json_t      *params;
    uint64_t     seq;
    ngx_uint_t   r;

    if (!ws->mcp.tidal_events) {
        ws->next_seq = ngx_http_tidal_fanout_position();

        for (r = 1; r <= TIDAL_MCP_RESOURCES; r++) {
            if ((ws->mcp.subscriptions & TIDAL_MCP_RESOURCE_BIT(r))
                && ngx_http_tidal_ws_updated(ws, r) != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    params = ngx_http_tidal_state_snapshot(ws->main_conf, 50);
    if (params == NULL) {
        return NGX_ERROR;
    }

    seq = (uint64_t) json_integer_value(json_object_get(params, "seq"));

    text = tidal_mcp_notification(TIDAL_PROTOCOL_EVENT "session_restore",
                                  params, &len);
    if (text == NULL) {
        return NGX_ERROR;
    }

    ws->next_seq = seq + 1;

    (void) ngx_http_tidal_ws_send_event(ws, seq, (u_char *) text, len);

    free(text);

    return NGX_OK;
}
