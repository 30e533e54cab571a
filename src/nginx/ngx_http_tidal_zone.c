/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: the shared zone - the event ring every worker reads, where
 * every event of the room gets its number, and the connection count
 * shared by all workers.  It stores bytes and hands them out; who is
 * told of a new event is the fan-out's concern.
 */


#include "ngx_http_tidal.h"


static ngx_int_t ngx_http_tidal_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_tidal_zone_append(
    ngx_http_tidal_main_conf_t *tmcf, const char *type, json_t *fields,
    uint64_t hid, ngx_log_t *log, uint64_t *seqp);
static size_t ngx_http_tidal_ring_reserve(ngx_http_tidal_shctx_t *sh,
    size_t len);
static ngx_uint_t ngx_http_tidal_zone_reclaim(ngx_http_tidal_shctx_t *sh,
    ngx_log_t *log);


/* the master keeps this across reloads: a fresh zone then means resized */
static ngx_uint_t  ngx_http_tidal_zone_created;


char *
ngx_http_tidal_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tidal_main_conf_t *tmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (tmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        return "has an invalid size";
    }

    return ngx_http_tidal_zone_add(cf, tmcf, &value[1], size);
}


/* tidal_zone, or the implicit zone of a configuration without one */

char *
ngx_http_tidal_zone_add(ngx_conf_t *cf, ngx_http_tidal_main_conf_t *tmcf,
    ngx_str_t *name, size_t size)
{
    if (size < 16 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tidal_zone \"%V\" is too small, at least %uz "
                           "bytes are needed", name, 16 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    tmcf->shm_zone = ngx_shared_memory_add(cf, name, size,
                                           &ngx_tidal_module);
    if (tmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (tmcf->shm_zone->data) {
        return "uses a zone name already used by another tidal_zone";
    }

    tmcf->shm_zone->init = ngx_http_tidal_init_zone;
    tmcf->shm_zone->data = tmcf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_tidal_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_tidal_main_conf_t  *otmcf = data;

    size_t                       len;
    ngx_uint_t                   n;
    ngx_slab_pool_t             *shpool;
    ngx_http_tidal_shctx_t      *sh;
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = shm_zone->data;

    if (otmcf) {
        sh = otmcf->sh;

        if (sh->magic != NGX_HTTP_TIDAL_ZONE_MAGIC
            || sh->layout != NGX_HTTP_TIDAL_ZONE_LAYOUT)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "tidal_zone \"%V\" was laid out by another "
                          "version of ngx_tidal; change its size or "
                          "restart nginx", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        tmcf->sh = sh;
        tmcf->shpool = otmcf->shpool;

        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        tmcf->sh = shpool->data;
        tmcf->shpool = shpool;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_tidal_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;

    sh->magic = NGX_HTTP_TIDAL_ZONE_MAGIC;
    sh->layout = NGX_HTTP_TIDAL_ZONE_LAYOUT;

    /* half of the zone holds events, the rest sessions and state */

    sh->data_size = ngx_align(shm_zone->shm.size / 2 - ngx_pagesize, 8);

    for (n = 64; n < sh->data_size / 128; n <<= 1) { /* void */ }

    sh->nindex = n;
    sh->data = ngx_slab_alloc(shpool, sh->data_size);
    sh->index = ngx_slab_calloc(shpool,
                                n * sizeof(ngx_http_tidal_index_t));

    if (sh->data == NULL || sh->index == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "tidal_zone \"%V\" is too small for its event ring",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    sh->first_seq = 1;
    sh->next_seq = 1;

    ngx_rbtree_init(&sh->sessions, &sh->sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&sh->session_lru);

    len = sizeof(" in tidal_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in tidal_zone \"%V\"%Z",
                &shm_zone->shm.name);

    tmcf->sh = sh;
    tmcf->shpool = shpool;

    if (ngx_http_tidal_zone_created) {
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "tidal_zone \"%V\" was created anew because its "
                      "size changed; events and sessions start over, "
                      "state is reseeded from the state file",
                      &shm_zone->shm.name);
    }

    ngx_http_tidal_zone_created = 1;

    return ngx_http_tidal_state_load(tmcf, shm_zone->shm.log);
}


/*
 * Numbers one event and appends it as the complete JSON-RPC notification
 * text (tidal_room_event_write()), so that readers only copy and frame
 * it; its params, which the history keeps if the type is kept, are the
 * same bytes.  The number is given under the lock, which makes the
 * ring's order the order everyone sees.  NGX_DECLINED: too large for the
 * ring, or not a type.
 */

ngx_int_t
ngx_http_tidal_zone_publish(ngx_http_tidal_main_conf_t *tmcf,
    const char *type, json_t *fields, ngx_log_t *log, uint64_t *seqp)
{
    return ngx_http_tidal_zone_append(tmcf, type, fields, 0, log, seqp);
}


/*
 * An event the helper tells as a fact, named hid: numbered and published
 * by the first worker that brings it (NGX_OK), skipped by the others
 * (NGX_DONE).
 */

ngx_int_t
ngx_http_tidal_zone_publish_helper(ngx_http_tidal_main_conf_t *tmcf,
    const char *type, json_t *fields, uint64_t hid, ngx_log_t *log)
{
    return ngx_http_tidal_zone_append(tmcf, type, fields, hid, log, NULL);
}


/*
 * The number of the event the helper named hid, for the answer to the
 * call that caused it: the asking worker has read that event before the
 * answer, so it is published unless it did not fit the ring.  Else the
 * number of the last event.
 */

uint64_t
ngx_http_tidal_zone_helper_seq(ngx_http_tidal_main_conf_t *tmcf, uint64_t hid)
{
    uint64_t                 seq;
    ngx_http_tidal_index_t  *ix;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    /* the helper's numbers grow with the ring's */

    for (seq = sh->next_seq - 1; hid && seq >= sh->first_seq; seq--) {
        ix = &sh->index[seq & (sh->nindex - 1)];

        if (ix->hid == hid) {
            goto done;
        }

        if (ix->hid && ix->hid < hid) {
            break;
        }
    }

    seq = sh->next_seq - 1;

done:

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return seq;
}


static ngx_int_t
ngx_http_tidal_zone_append(ngx_http_tidal_main_conf_t *tmcf,
    const char *type, json_t *fields, uint64_t hid, ngx_log_t *log,
    uint64_t *seqp)
{
    char                    *text;
    size_t                   len, flen, offset, params;
    int64_t                  ms;
    uint64_t                 seq;
    ngx_int_t                rc;
    ngx_uint_t               kept, channel;
    ngx_time_t              *tp;
    ngx_http_tidal_index_t  *ix;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    text = json_dumps(fields, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    flen = ngx_strlen(text);
    len = tidal_room_event_size(type, flen);

    if (len == 0 || len > sh->data_size / 4) {
        ngx_free(text);
        return NGX_DECLINED;
    }

    kept = tidal_room_event_kept(type);
    channel = tidal_room_event_channel(type, fields);
    rc = NGX_OK;

    tp = ngx_timeofday();
    ms = (int64_t) tp->sec * 1000 + tp->msec;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    if (hid) {
        if (hid <= sh->helper_hid) {
            ngx_shmtx_unlock(&tmcf->shpool->mutex);
            ngx_free(text);
            return NGX_DONE;
        }

        sh->helper_hid = hid;
    }

    seq = sh->next_seq;
    offset = ngx_http_tidal_ring_reserve(sh, len);

    ix = &sh->index[seq & (sh->nindex - 1)];
    ix->seq = seq;
    ix->hid = hid;
    ix->offset = (uint32_t) offset;
    ix->len = (uint32_t) tidal_room_event_write((char *) sh->data + offset,
                                                type, seq, ms, text, flen,
                                                &params);
    ix->channel = (uint32_t) channel;

    sh->head = ngx_align(offset + ix->len, 8);
    sh->next_seq = seq + 1;

    if (tp->sec != sh->rate_time) {
        sh->rate = (tp->sec == sh->rate_time + 1) ? seq - sh->rate_seq : 0;
        sh->rate_time = tp->sec;
        sh->rate_seq = seq;
    }

    if (kept) {
        rc = ngx_http_tidal_state_history_locked(tmcf,
                                                 sh->data + offset + params,
                                                 ix->len - params - 1);
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    ngx_free(text);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "tidal: published %s #%uL", type, seq);

    if (kept) {
        if (rc == NGX_OK) {
            ngx_http_tidal_state_changed(tmcf);

        } else {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "tidal: no room for the history in the zone");
        }
    }

    if (seqp) {
        *seqp = seq;
    }

    return NGX_OK;
}


/*
 * Finds room for len bytes at head, wrapping to the start when the end
 * is too short, and forgets the oldest events that room overlaps.
 * Events lie in the buffer in the order of their numbers, so the oldest
 * is always the next to be overwritten.
 */

static size_t
ngx_http_tidal_ring_reserve(ngx_http_tidal_shctx_t *sh, size_t len)
{
    size_t                   head, wrap;
    ngx_http_tidal_index_t  *ix;

    head = sh->head;
    wrap = sh->data_size;

    if (head + len > sh->data_size) {
        wrap = head;
        head = 0;
    }

    while (sh->first_seq < sh->next_seq) {
        ix = &sh->index[sh->first_seq & (sh->nindex - 1)];

        if (sh->next_seq - sh->first_seq >= sh->nindex
            || ix->offset >= wrap
            || (ix->offset < head + len && ix->offset + ix->len > head))
        {
            sh->first_seq++;
            continue;
        }

        break;
    }

    return head;
}


/*
 * Copies the events from number from on into buf, as many as max and
 * its size bytes take, and says in events where each one lies; *next is
 * the number after the last one copied.  Only the copy is made under the
 * lock.  NGX_OK: up to the newest event; NGX_DONE: more are left;
 * NGX_AGAIN: nothing copied, the first event alone takes events[0].len
 * bytes; NGX_DECLINED: from has already left the ring, or was never
 * published.
 */

ngx_int_t
ngx_http_tidal_zone_fetch(ngx_http_tidal_main_conf_t *tmcf, uint64_t from,
    u_char *buf, size_t size, ngx_http_tidal_event_t *events,
    ngx_uint_t max, ngx_uint_t *n, uint64_t *next)
{
    size_t                   used;
    uint64_t                 seq;
    ngx_int_t                rc;
    ngx_http_tidal_index_t  *ix;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;
    rc = NGX_OK;
    used = 0;
    *n = 0;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    if (from < sh->first_seq || from > sh->next_seq) {
        *next = sh->next_seq;
        rc = NGX_DECLINED;
        goto done;
    }

    for (seq = from; seq < sh->next_seq; seq++) {
        ix = &sh->index[seq & (sh->nindex - 1)];

        if (*n == max || size - used < ix->len) {
            if (*n == 0) {
                events[0].len = ix->len;
                rc = NGX_AGAIN;

            } else {
                rc = NGX_DONE;
            }

            break;
        }

        events[*n].data = buf + used;
        events[*n].len = ix->len;
        events[*n].channel = ix->channel;

        ngx_memcpy(buf + used, sh->data + ix->offset, ix->len);
        used += ix->len;
        (*n)++;
    }

    *next = seq;

done:

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return rc;
}


uint64_t
ngx_http_tidal_zone_last_seq(ngx_http_tidal_main_conf_t *tmcf)
{
    uint64_t  seq;

    ngx_shmtx_lock(&tmcf->shpool->mutex);
    seq = tmcf->sh->next_seq - 1;
    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return seq;
}


/* this worker's slot: a free one, or one whose process is gone */

static ngx_http_tidal_slot_t  *ngx_http_tidal_my_slot;


ngx_int_t
ngx_http_tidal_zone_claim_slot(ngx_http_tidal_main_conf_t *tmcf,
    ngx_log_t *log)
{
    ngx_uint_t               i;
    ngx_http_tidal_slot_t   *slot;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    (void) ngx_http_tidal_zone_reclaim(sh, log);

    for (i = 0; i < NGX_HTTP_TIDAL_WORKER_SLOTS; i++) {
        slot = &sh->slots[i];

        if (slot->pid == 0 && ngx_atomic_cmp_set(&slot->pid, 0, ngx_pid)) {
            slot->clients = 0;
            ngx_http_tidal_my_slot = slot;
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "tidal: no free worker slot in the zone; this worker's "
                  "clients are counted but not shown per worker");

    return NGX_DECLINED;
}


/*
 * Counts one connection before the 101; NGX_BUSY at the limit.  The slot
 * remembers which process holds it, so a worker killed with SIGKILL
 * gives its count back.
 */

ngx_int_t
ngx_http_tidal_zone_acquire(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_slot_t **slot, ngx_log_t *log)
{
    ngx_uint_t               n, tries;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    for (tries = 0; /* void */; tries++) {

        n = ngx_atomic_fetch_add(&sh->connections, 1);

        if (tmcf->max_connections == 0 || n < tmcf->max_connections) {
            break;
        }

        (void) ngx_atomic_fetch_add(&sh->connections, -1);

        if (tries || ngx_http_tidal_zone_reclaim(sh, log) == 0) {
            return NGX_BUSY;
        }
    }

    *slot = ngx_http_tidal_my_slot;

    if (*slot) {
        (void) ngx_atomic_fetch_add(&(*slot)->clients, 1);
    }

    return NGX_OK;
}


void
ngx_http_tidal_zone_release(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_slot_t *slot)
{
    (void) ngx_atomic_fetch_add(&tmcf->sh->connections, -1);

    if (slot) {
        (void) ngx_atomic_fetch_add(&slot->clients, -1);
    }
}


static ngx_uint_t
ngx_http_tidal_zone_reclaim(ngx_http_tidal_shctx_t *sh, ngx_log_t *log)
{
    ngx_pid_t                pid;
    ngx_uint_t               i, n, clients;
    ngx_http_tidal_slot_t   *slot;

    n = 0;

    for (i = 0; i < NGX_HTTP_TIDAL_WORKER_SLOTS; i++) {
        slot = &sh->slots[i];
        pid = (ngx_pid_t) slot->pid;

        if (pid == 0 || pid == ngx_pid
            || kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        clients = slot->clients;

        if (!ngx_atomic_cmp_set(&slot->pid, pid, 0)) {
            continue;
        }

        slot->clients = 0;

        if (clients) {
            (void) ngx_atomic_fetch_add(&sh->connections, -clients);

            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "tidal: reclaimed %ui connections of the exited "
                          "worker %P", clients, pid);
            n += clients;
        }
    }

    return n;
}
