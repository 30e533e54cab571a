/*
 * ngx_tidal: the channel state in the zone - seeded from
 * tidal_state_file when a zone is created, read for tidal_get_state and
 * for session_restore snapshots.
 */


#include "ngx_http_tidal.h"
#include "tidal_state.h"


#define NGX_HTTP_TIDAL_STATE_FILE_MAX  (16 * 1024 * 1024)


static ngx_int_t ngx_http_tidal_state_store(ngx_http_tidal_main_conf_t *tmcf,
    json_t *state, ngx_log_t *log);
static json_t *ngx_http_tidal_state_read_file(ngx_str_t *path,
    ngx_log_t *log);


/* runs in the master when a zone is created: a bad file is only logged */

ngx_int_t
ngx_http_tidal_state_load(ngx_http_tidal_main_conf_t *tmcf, ngx_log_t *log)
{
    json_t     *state;
    ngx_int_t   rc;

    state = NULL;

    if (tmcf->state_file.len) {
        state = ngx_http_tidal_state_read_file(&tmcf->state_file, log);
    }

    if (state == NULL) {
        state = tidal_state_empty();
        if (state == NULL) {
            return NGX_ERROR;
        }
    }

    rc = ngx_http_tidal_state_store(tmcf, state, log);

    json_decref(state);

    return rc;
}


static json_t *
ngx_http_tidal_state_read_file(ngx_str_t *path, ngx_log_t *log)
{
    char             err[256];
    u_char          *buf;
    json_t          *state;
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno == NGX_ENOENT) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "tidal: no state file \"%V\" yet, starting "
                          "with an empty state", path);
        } else {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "tidal: cannot open state file \"%V\", starting "
                          "with an empty state", path);
        }

        return NULL;
    }

    state = NULL;
    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "tidal: cannot stat state file \"%V\"", path);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_TIDAL_STATE_FILE_MAX) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tidal: state file \"%V\" is larger than %d bytes, "
                      "ignored", path, NGX_HTTP_TIDAL_STATE_FILE_MAX);
        goto done;
    }

    buf = ngx_alloc((size_t) ngx_file_size(&fi) + 1, log);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, buf, (size_t) ngx_file_size(&fi));

    if (n == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "tidal: cannot read state file \"%V\"", path);
        goto done;
    }

    state = tidal_state_parse((char *) buf, (size_t) n, err, sizeof(err));

    if (state == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tidal: state file \"%V\" is corrupt (%s), starting "
                      "with an empty state", path, err);
    } else {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "tidal: state restored from \"%V\"", path);
    }

done:

    if (buf) {
        ngx_free(buf);
    }

    (void) ngx_close_file(fd);

    return state;
}


static ngx_int_t
ngx_http_tidal_state_store(ngx_http_tidal_main_conf_t *tmcf, json_t *state,
    ngx_log_t *log)
{
    char                    *text;
    size_t                   len;
    u_char                  *p, *old;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    text = json_dumps(state, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    p = ngx_slab_alloc_locked(tmcf->shpool, len);

    if (p) {
        ngx_memcpy(p, text, len);
        old = sh->state;
        sh->state = p;
        sh->state_len = len;

        if (old) {
            ngx_slab_free_locked(tmcf->shpool, old);
        }
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    free(text);

    if (p == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tidal: no room for the channel state in the zone");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the state document and the number of the last event it reflects */

json_t *
ngx_http_tidal_state_get(ngx_http_tidal_main_conf_t *tmcf, uint64_t *seq)
{
    char                     err[128];
    u_char                  *copy;
    size_t                   len;
    json_t                  *state;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    len = sh->state_len;
    copy = ngx_alloc(len ? len : 1, ngx_cycle->log);

    if (copy) {
        ngx_memcpy(copy, sh->state, len);
    }

    *seq = sh->next_seq - 1;

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    if (copy == NULL) {
        return NULL;
    }

    state = tidal_state_parse((char *) copy, len, err, sizeof(err));

    ngx_free(copy);

    if (state == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "tidal: channel state in the zone is unusable: %s",
                      err);
        state = tidal_state_empty();
    }

    return state;
}


/*
 * session_restore params: everything a client needs to show the room
 * as it is, numbered with the last event it includes.
 */

json_t *
ngx_http_tidal_state_snapshot(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t history)
{
    json_t      *state, *params, *tail;
    uint64_t     seq;
    ngx_time_t  *tp;

    state = ngx_http_tidal_state_get(tmcf, &seq);
    if (state == NULL) {
        return NULL;
    }

    tail = tidal_state_history(state, history);

    tp = ngx_timeofday();

    params = json_pack("{s:s, s:I, s:I, s:O, s:o, s:o*}",
                       "type", "session_restore",
                       "seq", (json_int_t) seq,
                       "timestamp",
                       (json_int_t) tp->sec * 1000 + tp->msec,
                       "channels", json_object_get(state, "channels"),
                       "tempo", tidal_state_tempo(state),
                       "history", tail);

    json_decref(state);

    return params;
}
