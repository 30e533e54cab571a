/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: client sessions in the zone, so that a client reconnecting
 * to any worker can resume.  Ids are 128 bits from OpenSSL's CSPRNG.
 */


#include "ngx_http_tidal.h"

#include <openssl/rand.h>


typedef struct {
    u_char                      color;
    u_char                      pad[7];
    ngx_queue_t                 queue;
    ngx_msec_t                  last_seen;
    ngx_uint_t                  connections;
    u_char                      id[NGX_HTTP_TIDAL_SESSION_ID_LEN];
} ngx_http_tidal_session_t;


static ngx_http_tidal_session_t *ngx_http_tidal_session_lookup(
    ngx_http_tidal_shctx_t *sh, u_char *id, uint32_t hash);
static void ngx_http_tidal_session_expire(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t all);


ngx_int_t
ngx_http_tidal_session_create(ngx_http_tidal_main_conf_t *tmcf, u_char *id,
    ngx_log_t *log)
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


/* NGX_OK: the session exists and is now held once more */

ngx_int_t
ngx_http_tidal_session_resume(ngx_http_tidal_main_conf_t *tmcf, u_char *id)
{
    ngx_int_t                  rc;
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    ngx_http_tidal_session_expire(tmcf, 0);

    s = ngx_http_tidal_session_lookup(tmcf->sh, id,
                ngx_crc32_short(id, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (s && (s->connections
              || ngx_current_msec - s->last_seen < tmcf->session_timeout))
    {
        s->connections++;
        s->last_seen = ngx_current_msec;
        ngx_queue_remove(&s->queue);
        ngx_queue_insert_head(&tmcf->sh->session_lru, &s->queue);
        rc = NGX_OK;

    } else {
        rc = NGX_DECLINED;
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return rc;
}


void
ngx_http_tidal_session_release(ngx_http_tidal_main_conf_t *tmcf, u_char *id)
{
    ngx_http_tidal_session_t  *s;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    s = ngx_http_tidal_session_lookup(tmcf->sh, id,
                ngx_crc32_short(id, NGX_HTTP_TIDAL_SESSION_ID_LEN));

    if (s && s->connections) {
        s->connections--;
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

        if (ngx_current_msec - s->last_seen < tmcf->session_timeout) {
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
