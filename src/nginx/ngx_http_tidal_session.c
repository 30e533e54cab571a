/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: client sessions in the zone, so that a client reconnecting
 * to any worker can resume.  Ids are 128 bits from OpenSSL's CSPRNG.  A
 * Streamable HTTP session also keeps its MCP state here, as each of its
 * requests may reach another worker.  Each session is a member of the
 * room, by name and role, as tidal_who lists them.
 */


#include "ngx_http_tidal.h"

#include <openssl/rand.h>


typedef struct {
    u_char                      color;
    u_char                      pad[7];
    ngx_queue_t                 queue;
    ngx_msec_t                  last_seen;
    ngx_uint_t                  connections;

    /* a Streamable HTTP session's (ngx_http_tidal_http.c) */
    ngx_atomic_t                newest;         /* its newest stream */
    ngx_uint_t                  streams;        /* GET streams open */
    uint64_t                    next_seq;       /* where a stream starts */
    uint32_t                    subscriptions;
    u_char                      initialized;
    u_char                      client_ready;
    u_char                      tidal_events;
    u_char                      tidal_sound;
    u_char                      log_level;
    u_char                      deleted;
    u_char                      role;           /* tidal_role_e */
    u_char                      version[16];
    char                        client_name[64];

    /* its member's name in the room: escaped, as it is a client's text */
    char                        who[NGX_HTTP_TIDAL_WHO_LEN];

    u_char                      id[NGX_HTTP_TIDAL_SESSION_ID_LEN];
} ngx_http_tidal_session_t;


static ngx_http_tidal_session_t *ngx_http_tidal_session_lookup(
    ngx_http_tidal_shctx_t *sh, u_char *id, uint32_t hash);
static ngx_http_tidal_session_t *ngx_http_tidal_session_find(
    ngx_http_tidal_shctx_t *sh, u_char *id, uint32_t hash);
static ngx_http_tidal_session_t *ngx_http_tidal_session_hold(
    ngx_http_tidal_main_conf_t *tmcf, u_char *id);
static void ngx_http_tidal_session_expire(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t all);
static void ngx_http_tidal_session_name(ngx_http_tidal_session_t *s,
    const char *who, tidal_role_e role);


/*
 * Whether nobody has held s for tidal_session_timeout.  last_seen is the
 * ngx_current_msec of the worker that last held it; each worker's is
 * cached, so another worker's may be a few ms ahead of ours: signed, such
 * a time counts as just now, not as some 49 days ago.
 */

#define ngx_http_tidal_session_timed_out(tmcf, s)                             \
    ((ngx_msec_int_t) (ngx_current_msec - (s)->last_seen)                    \
     >= (ngx_msec_int_t) (tmcf)->session_timeout)


/* the session an open stream holds, from its place in it */

#define ngx_http_tidal_session_of_stream(cl)                                  \
    ((ngx_http_tidal_session_t *)                                             \
         ((u_char *) (cl)->newest - offsetof(ngx_http_tidal_session_t,      \
                                             newest)))


/* a new session, held once, of the member who with role */

ngx_int_t
ngx_http_tidal_session_create(ngx_http_tidal_main_conf_t *tmcf, u_char *id,
    const char *who, tidal_role_e role, ngx_log_t *log)
{
    u_char                     bytes[NGX_HTTP_TIDAL_SESSION_ID_LEN / 2];
    size_t                     n;
    ngx_rbtree_node_t         *node;
    ngx_http_tidal_shctx_t    *sh;
    ngx_http_tidal_session_t  *s;

    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "tidal: RAND_bytes() failed, no session id");
        return NGX_ERROR;
    }

    ngx_hex_dump(id, bytes, sizeof(bytes));

    sh = tmcf->sh;
    n = offsetof(ngx_rbtree_node_t, color)
        + sizeof(ngx_http_tidal_session_t);

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    ngx_http_tidal_session_expire(tmcf, 0);

    node = ngx_slab_alloc_locked(tmcf->shpool, n);

    if (node == NULL) {
        ngx_http_tidal_session_expire(tmcf, 1);
        node = ngx_slab_alloc_locked(tmcf->shpool, n);
    }

    if (node == NULL) {
        ngx_shmtx_unlock(&tmcf->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "tidal: no room for another session in the zone");
        return NGX_DECLINED;
    }

    s = (ngx_http_tidal_session_t *) &node->color;
    ngx_memzero(s, sizeof(ngx_http_tidal_session_t));
    ngx_http_tidal_session_name(s, who, role);

    node->key = ngx_crc32_short(id, NGX_HTTP_TIDAL_SESSION_ID_LEN);
    ngx_memcpy(s->id, id, NGX_HTTP_TIDAL_SESSION_ID_LEN);
    s->connections = 1;
    s->last_seen = ngx_current_msec;

    ngx_rbtree_insert(&sh->sessions, node);
    ngx_queue_insert_head(&sh->session_lru, &s->queue);
    sh->nsessions++;

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return NGX_OK;
}


/*
 * NGX_OK: the session exists and is now held once more, by the member
 * who with role (the connection resuming it is the one in the room now).
 */

ngx_int_t
ngx_http_tidal_session_resume(ngx_http_tidal_main_conf_t *tmcf, u_char *id,
    const char *who, tidal_role_e role)
{
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_hold(tmcf, id);

    if (s) {
        ngx_http_tidal_session_name(s, who, role);
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return s ? NGX_OK : NGX_DECLINED;
}


/*
 * Who is in the room: the live sessions (neither expired nor deleted),
 * the first max of them copied into members, most recently active
 * first.  Returns how many there are.  Only copies under the lock: the
 * caller makes its answer after.
 */

ngx_uint_t
ngx_http_tidal_session_members(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_member_t *members, ngx_uint_t max)
{
    ngx_uint_t                 n;
    ngx_queue_t               *q;
    ngx_http_tidal_member_t   *m;
    ngx_http_tidal_session_t  *s;

    n = 0;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    for (q = ngx_queue_head(&tmcf->sh->session_lru);
         q != ngx_queue_sentinel(&tmcf->sh->session_lru);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_tidal_session_t, queue);

        if (s->deleted
            || (s->connections == 0
                && ngx_http_tidal_session_timed_out(tmcf, s)))
        {
            continue;
        }

        if (n < max) {
            m = &members[n];
            ngx_memcpy(m->who, s->who, sizeof(m->who));
            m->role = (tidal_role_e) s->role;
            m->connected = s->connections ? 1 : 0;
        }

        n++;
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return n;
}


/* the live session id names, now held once more; under the zone's lock */

static ngx_http_tidal_session_t *
ngx_http_tidal_session_hold(ngx_http_tidal_main_conf_t *tmcf, u_char *id)
{
    ngx_http_tidal_session_t  *s;

    ngx_http_tidal_session_expire(tmcf, 0);

    s = ngx_http_tidal_session_lookup(tmcf->sh, id,
                ngx_crc32_short(id, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (s == NULL
        || (s->connections == 0
            && ngx_http_tidal_session_timed_out(tmcf, s)))
    {
        return NULL;
    }

    s->connections++;
    s->last_seen = ngx_current_msec;
    ngx_queue_remove(&s->queue);
    ngx_queue_insert_head(&tmcf->sh->session_lru, &s->queue);

    return s;
}


/*
 * A Streamable HTTP request's session: held (release it when the request
 * ends) and its MCP state copied into s.  NGX_DECLINED: unknown, expired
 * or deleted.
 */

ngx_int_t
ngx_http_tidal_session_load(ngx_http_tidal_main_conf_t *tmcf, u_char *id,
    tidal_mcp_session_t *s)
{
    ngx_http_tidal_session_t  *hs;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    hs = ngx_http_tidal_session_hold(tmcf, id);

    if (hs) {
        s->initialized = hs->initialized;
        s->client_ready = hs->client_ready;
        s->tidal_events = hs->tidal_events;
        s->tidal_sound = hs->tidal_sound;
        s->log_level = hs->log_level;
        s->subscriptions = hs->subscriptions;
        s->protocol_version = tidal_mcp_version((char *) hs->version,
                                  ngx_strnlen(hs->version,
                                              sizeof(hs->version)));
        ngx_memcpy(s->client_name, hs->client_name,
                   sizeof(s->client_name));
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return hs ? NGX_OK : NGX_DECLINED;
}


/* what a request changed of its session's MCP state; next_seq if not 0 */

void
ngx_http_tidal_session_store(ngx_http_tidal_main_conf_t *tmcf, u_char *id,
    tidal_mcp_session_t *s, uint64_t next_seq)
{
    ngx_http_tidal_session_t  *hs;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    hs = ngx_http_tidal_session_lookup(tmcf->sh, id,
                 ngx_crc32_short(id, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (hs) {
        hs->initialized = s->initialized ? 1 : 0;
        hs->client_ready = s->client_ready ? 1 : 0;
        hs->tidal_events = s->tidal_events ? 1 : 0;
        hs->tidal_sound = s->tidal_sound ? 1 : 0;
        hs->log_level = (u_char) s->log_level;
        hs->subscriptions = s->subscriptions;

        ngx_memzero(hs->version, sizeof(hs->version));

        if (s->protocol_version) {
            ngx_cpystrn(hs->version, (u_char *) s->protocol_version,
                        sizeof(hs->version));
        }

        ngx_memcpy(hs->client_name, s->client_name,
                   sizeof(hs->client_name));
        hs->client_name[sizeof(hs->client_name) - 1] = '\0';

        if (next_seq) {
            hs->next_seq = next_seq;
        }
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);
}


/*
 * DELETE: the session ends for every request that names it; streams that
 * still hold it see that they are no longer its newest and end too.
 */

ngx_int_t
ngx_http_tidal_session_delete(ngx_http_tidal_main_conf_t *tmcf, u_char *id)
{
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_lookup(tmcf->sh, id,
                ngx_crc32_short(id, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (s) {
        s->deleted = 1;
        s->last_seen = ngx_current_msec - tmcf->session_timeout;
        (void) ngx_atomic_fetch_add(&s->newest, 1);
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return s ? NGX_OK : NGX_DECLINED;
}


/*
 * A new event stream (GET) of a session: held, it becomes the session's
 * newest, so that each event goes out on one stream only; *next_seq is
 * where the session's last stream stopped.  The stream's place in the
 * session stays valid while it holds the session.
 */

ngx_int_t
ngx_http_tidal_session_stream(ngx_http_tidal_main_conf_t *tmcf, u_char *id,
    ngx_http_tidal_ws_t *cl, uint64_t *next_seq)
{
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_hold(tmcf, id);

    if (s) {
        cl->newest = &s->newest;
        cl->stream = ngx_atomic_fetch_add(&s->newest, 1) + 1;
        *next_seq = s->next_seq;
        s->streams++;
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return s ? NGX_OK : NGX_DECLINED;
}


/*
 * A POST answered as an event stream carries the events its call causes,
 * but only where no GET stream of the session is open to carry them:
 * NGX_BUSY then.  Otherwise as ngx_http_tidal_session_stream().
 */

ngx_int_t
ngx_http_tidal_session_answer_stream(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_ws_t *cl, uint64_t *next_seq)
{
    ngx_int_t                  rc;
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_lookup(tmcf->sh, cl->session,
                ngx_crc32_short(cl->session, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (s == NULL) {
        rc = NGX_DECLINED;

    } else if (s->streams) {
        rc = NGX_BUSY;

    } else {
        s->connections++;
        cl->newest = &s->newest;
        cl->stream = ngx_atomic_fetch_add(&s->newest, 1) + 1;
        *next_seq = s->next_seq;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return rc;
}


/*
 * What the session's later requests changed (logging/setLevel,
 * resources/subscribe) reaches its open stream: read without the lock,
 * as each is a word the zone's writers replace whole, and the stream's
 * hold keeps the session in place.
 */

void
ngx_http_tidal_session_refresh(ngx_http_tidal_ws_t *cl)
{
    volatile ngx_http_tidal_session_t  *s;

    s = ngx_http_tidal_session_of_stream(cl);

    cl->mcp.tidal_events = s->tidal_events;
    cl->mcp.tidal_sound = s->tidal_sound;
    cl->mcp.log_level = s->log_level;
    cl->mcp.subscriptions = s->subscriptions;
}


/*
 * A POST's stream has sent the events before next_seq: a GET stream that
 * opens meanwhile starts after them, so that none goes out twice.
 */

void
ngx_http_tidal_session_stream_at(ngx_http_tidal_ws_t *cl, uint64_t next_seq)
{
    ngx_http_tidal_session_t    *s;
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = cl->main_conf;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_of_stream(cl);

    if (s->newest == cl->stream && s->next_seq < next_seq) {
        s->next_seq = next_seq;
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);
}


/* the stream ends: the next one starts where it stopped */

void
ngx_http_tidal_session_stream_end(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_ws_t *cl)
{
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_lookup(tmcf->sh, cl->session,
                ngx_crc32_short(cl->session, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (s && s->newest == cl->stream && cl->next_seq) {
        s->next_seq = cl->next_seq;
    }

    if (s && !cl->answering && s->streams) {
        s->streams--;
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    cl->newest = NULL;

    ngx_http_tidal_session_release(tmcf, cl->session);
}


void
ngx_http_tidal_session_release(ngx_http_tidal_main_conf_t *tmcf, u_char *id)
{
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_find(tmcf->sh, id,
                ngx_crc32_short(id, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (s && s->connections) {
        s->connections--;

        if (s->deleted) {
            /* ngx_http_tidal_session_expire() frees it */
            ngx_shmtx_unlock(&tmcf->shpool->mutex);
            return;
        }

        s->last_seen = ngx_current_msec;
        ngx_queue_remove(&s->queue);
        ngx_queue_insert_head(&tmcf->sh->session_lru, &s->queue);
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);
}


static ngx_http_tidal_session_t *
ngx_http_tidal_session_lookup(ngx_http_tidal_shctx_t *sh, u_char *id,
    uint32_t hash)
{
    ngx_http_tidal_session_t  *s;

    s = ngx_http_tidal_session_find(sh, id, hash);

    return (s && !s->deleted) ? s : NULL;
}


/* a session, or one ended by DELETE that a stream still holds */

static ngx_http_tidal_session_t *
ngx_http_tidal_session_find(ngx_http_tidal_shctx_t *sh, u_char *id,
    uint32_t hash)
{
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_tidal_session_t  *s;

    node = sh->sessions.root;
    sentinel = sh->sessions.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        s = (ngx_http_tidal_session_t *) &node->color;

        if (ngx_memcmp(id, s->id, NGX_HTTP_TIDAL_SESSION_ID_LEN) == 0) {
            return s;
        }

        node = node->right;
    }

    return NULL;
}


/*
 * Ends sessions nobody has held for tidal_session_timeout, oldest first:
 * two at a time on the way, all of them when the zone is full.
 */

static void
ngx_http_tidal_session_expire(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t all)
{
    ngx_uint_t                 n, max;
    ngx_queue_t               *q;
    ngx_rbtree_node_t         *node;
    ngx_http_tidal_shctx_t    *sh;
    ngx_http_tidal_session_t  *s;

    sh = tmcf->sh;
    max = all ? sh->nsessions : 2;

    for (n = 0; n < max && !ngx_queue_empty(&sh->session_lru); n++) {

        q = ngx_queue_last(&sh->session_lru);
        s = ngx_queue_data(q, ngx_http_tidal_session_t, queue);

        ngx_queue_remove(q);

        if (s->connections) {
            /* held sessions never expire; look at them again later */
            ngx_queue_insert_head(&sh->session_lru, q);
            continue;
        }

        if (!ngx_http_tidal_session_timed_out(tmcf, s)) {
            ngx_queue_insert_tail(&sh->session_lru, q);
            return;
        }

        node = (ngx_rbtree_node_t *)
                   ((u_char *) s - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&sh->sessions, node);
        ngx_slab_free_locked(tmcf->shpool, node);
        sh->nsessions--;
    }
}


/* the session's member: who, escaped and cut to fit, or "anonymous" */

static void
ngx_http_tidal_session_name(ngx_http_tidal_session_t *s, const char *who,
    tidal_role_e role)
{
    size_t  len;

    len = (who && who[0]) ? tidal_utf8_escape(s->who, sizeof(s->who), who,
                                              ngx_strlen(who))
                          : 0;

    if (len == 0) {
        ngx_cpystrn((u_char *) s->who, (u_char *) "anonymous",
                    sizeof(s->who));
    }

    s->role = (u_char) role;
}
