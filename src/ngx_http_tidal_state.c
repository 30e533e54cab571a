/*
 * ngx_tidal: the channel state in the zone - seeded from
 * tidal_state_file when a zone is created, replaced by the helper's after
 * every change (and written back to the file), read for tidal_get_state,
 * channel resources and session_restore snapshots.
 */


#include "ngx_http_tidal.h"
#include "tidal_state.h"


#define NGX_HTTP_TIDAL_STATE_FILE_MAX  (16 * 1024 * 1024)


static ngx_int_t ngx_http_tidal_state_store(ngx_http_tidal_main_conf_t *tmcf,
    json_t *state, ngx_log_t *log);
static json_t *ngx_http_tidal_state_read_file(ngx_str_t *path,
    ngx_log_t *log);
static json_t *ngx_http_tidal_state_locked(
    ngx_http_tidal_main_conf_t *tmcf);
static ngx_int_t ngx_http_tidal_state_store_locked(
    ngx_http_tidal_main_conf_t *tmcf, json_t *doc, char **text,
    ngx_log_t *log);
static void ngx_http_tidal_state_write(ngx_http_tidal_main_conf_t *tmcf,
    const char *text, uint64_t version, ngx_log_t *log);


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


/* {"pattern": text or null, "muted": bool, "soloed": bool} of dN */

json_t *
ngx_http_tidal_state_channel(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t channel)
{
    char         name[8];
    json_t      *state, *cur, *result;
    uint64_t     seq;
    const char  *pattern;

    state = ngx_http_tidal_state_get(tmcf, &seq);
    if (state == NULL) {
        return NULL;
    }

    ngx_sprintf((u_char *) name, "d%ui%Z", channel);

    cur = json_object_get(json_object_get(state, "channels"), name);
    pattern = json_string_value(json_object_get(cur, "pattern"));

    if (pattern && ngx_strcmp(pattern, "silence") == 0) {
        pattern = NULL;
    }

    result = json_pack("{s:s?, s:b, s:b}", "pattern", pattern,
                       "muted", json_is_true(json_object_get(cur, "muted")),
                       "soloed",
                       json_is_true(json_object_get(cur, "soloed")));

    json_decref(state);

    return result;
}


/*
 * The helper's state after its events, numbered hid: the first worker to
 * bring it stores it in the zone (NGX_OK: and then writes the state
 * file); a copy already superseded is NGX_DONE.  The history stays the
 * zone's, whose entries carry the room's event numbers.
 */

ngx_int_t
ngx_http_tidal_state_update(ngx_http_tidal_main_conf_t *tmcf, uint64_t hid,
    json_t *state, const char *ghci, ngx_pid_t ghci_pid, ngx_log_t *log)
{
    char                    *text;
    json_t                  *doc, *cur;
    uint64_t                 version;
    ngx_int_t                rc;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;
    text = NULL;
    version = 0;

    doc = json_deep_copy(state);
    if (doc == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    if (hid <= sh->helper_hid) {
        rc = NGX_DONE;
        goto done;
    }

    sh->helper_hid = hid;
    sh->ghci_pid = ghci_pid;

    if (ghci) {
        ngx_cpystrn(sh->ghci, (u_char *) ghci, sizeof(sh->ghci));
    }

    cur = ngx_http_tidal_state_locked(tmcf);

    if (cur == NULL
        || json_object_set(doc, "history", json_object_get(cur, "history"))
           != 0)
    {
        json_decref(cur);
        rc = NGX_ERROR;
        goto done;
    }

    json_decref(cur);

    rc = ngx_http_tidal_state_store_locked(tmcf, doc, &text, log);
    version = sh->state_version;

done:

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    json_decref(doc);

    if (rc == NGX_OK && tmcf->state_file.len) {
        ngx_http_tidal_state_write(tmcf, text, version, log);
    }

    free(text);

    return rc;
}


/* an event the worker published, for tidal_get_history, in seq order */

void
ngx_http_tidal_state_history(ngx_http_tidal_main_conf_t *tmcf, json_t *entry,
    ngx_log_t *log)
{
    char        *text;
    size_t       i;
    json_t      *doc, *history;
    uint64_t     version;
    ngx_int_t    rc;
    json_int_t   seq;

    text = NULL;
    rc = NGX_ERROR;
    version = 0;
    seq = json_integer_value(json_object_get(entry, "seq"));

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    doc = ngx_http_tidal_state_locked(tmcf);
    history = json_object_get(doc, "history");

    if (json_is_array(history)) {
        for (i = json_array_size(history); i > 0; i--) {
            if (json_integer_value(json_object_get(json_array_get(history,
                                                                  i - 1),
                                                   "seq"))
                < seq)
            {
                break;
            }
        }

        if (json_array_insert(history, i, entry) == 0) {
            while (json_array_size(history) > TIDAL_STATE_HISTORY_MAX) {
                json_array_remove(history, 0);
            }

            rc = ngx_http_tidal_state_store_locked(tmcf, doc, &text, log);
            version = tmcf->sh->state_version;
        }
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    json_decref(doc);

    if (rc == NGX_OK && tmcf->state_file.len) {
        ngx_http_tidal_state_write(tmcf, text, version, log);
    }

    free(text);
}


/* the zone's state document, parsed; the caller holds the mutex */

static json_t *
ngx_http_tidal_state_locked(ngx_http_tidal_main_conf_t *tmcf)
{
    char  err[128];

    return tidal_state_parse((char *) tmcf->sh->state, tmcf->sh->state_len,
                             err, sizeof(err));
}


/* replaces the zone's state text; *text gets a copy for the file */

static ngx_int_t
ngx_http_tidal_state_store_locked(ngx_http_tidal_main_conf_t *tmcf,
    json_t *doc, char **text, ngx_log_t *log)
{
    size_t                   len;
    u_char                  *p, *old;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    *text = json_dumps(doc, JSON_COMPACT);
    if (*text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(*text);

    p = ngx_slab_alloc_locked(tmcf->shpool, len);

    if (p == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tidal: no room for the channel state in the zone");
        return NGX_ERROR;
    }

    ngx_memcpy(p, *text, len);
    old = sh->state;
    sh->state = p;
    sh->state_len = len;
    sh->state_version++;

    if (old) {
        ngx_slab_free_locked(tmcf->shpool, old);
    }

    return NGX_OK;
}


/*
 * write, sync, rename: a crash leaves the old file or the new, not half;
 * and of two workers writing at once, the newer state is the one left
 */

static void
ngx_http_tidal_state_write(ngx_http_tidal_main_conf_t *tmcf, const char *text,
    uint64_t version, ngx_log_t *log)
{
    u_char     *tmp;
    size_t      len;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_str_t  *path;
    ngx_err_t   err;
    ngx_uint_t  stale;

    path = &tmcf->state_file;
    len = ngx_strlen(text);

    tmp = ngx_alloc(path->len + sizeof(".tmp.") + NGX_INT_T_LEN, log);
    if (tmp == NULL) {
        return;
    }

    ngx_sprintf(tmp, "%V.tmp.%P%Z", path, ngx_pid);

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "tidal: cannot write the state file: "
                      ngx_open_file_n " \"%s\" failed", tmp);
        ngx_free(tmp);
        return;
    }

    n = ngx_write_fd(fd, (void *) text, len);

    if (n != (ssize_t) len || fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "tidal: cannot write the state file \"%s\"", tmp);
        (void) ngx_close_file(fd);
        (void) ngx_delete_file(tmp);
        ngx_free(tmp);
        return;
    }

    (void) ngx_close_file(fd);

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    stale = (version <= tmcf->sh->state_file_version);
    err = 0;

    if (!stale) {
        if (ngx_rename_file(tmp, path->data) == NGX_FILE_ERROR) {
            err = ngx_errno;

        } else {
            tmcf->sh->state_file_version = version;
        }
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    if (err) {
        ngx_log_error(NGX_LOG_ERR, log, err,
                      "tidal: cannot write the state file: "
                      ngx_rename_file_n " \"%s\" to \"%V\" failed",
                      tmp, path);
    }

    if (stale || err) {
        (void) ngx_delete_file(tmp);
    }

    ngx_free(tmp);
}
