/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: the room in the zone - its channel state, seeded from
 * tidal_state_file when a zone is created and replaced by the helper's
 * after every change, and its history, which the zone's events fill;
 * written back to the file, and read as a room (src/core/tidal_room.c) for
 * tidal_get_state, tidal_get_history, channel resources and
 * session_restore snapshots.
 */


#include "ngx_http_tidal.h"


/* events are read from the ring this much at a time for tidal://chat */
#define NGX_HTTP_TIDAL_CHAT_BUFFER  65536
#include "tidal_room.h"


#define NGX_HTTP_TIDAL_STATE_FILE_MAX  (16 * 1024 * 1024)


static ngx_int_t ngx_http_tidal_state_store(ngx_http_tidal_main_conf_t *tmcf,
    json_t *state, ngx_log_t *log);
static void ngx_http_tidal_state_clean(ngx_str_t *path, ngx_log_t *log);
static json_t *ngx_http_tidal_state_chat(ngx_http_tidal_main_conf_t *tmcf);
static json_t *ngx_http_tidal_state_read_file(ngx_str_t *path,
    ngx_log_t *log);
static char *ngx_http_tidal_state_text(json_t *state);
static ngx_int_t ngx_http_tidal_state_set_locked(
    ngx_http_tidal_main_conf_t *tmcf, u_char *text, size_t len);
static u_char *ngx_http_tidal_state_file_text(
    ngx_http_tidal_main_conf_t *tmcf, size_t *len, uint64_t *version);
static void ngx_http_tidal_state_file_handler(ngx_event_t *ev);
static void ngx_http_tidal_state_write(ngx_http_tidal_main_conf_t *tmcf,
    u_char *text, size_t len, uint64_t version, ngx_log_t *log);


/* the worker's pending write of tidal_state_file, after a change */
static ngx_event_t  ngx_http_tidal_state_file_event;


/* runs in the master when a zone is created: a bad file is only logged */

ngx_int_t
ngx_http_tidal_state_load(ngx_http_tidal_main_conf_t *tmcf, ngx_log_t *log)
{
    json_t     *state;
    ngx_int_t   rc;

    state = NULL;

    if (tmcf->state_file.len) {
        ngx_http_tidal_state_clean(&tmcf->state_file, log);
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


/*
 * A worker killed while writing leaves its "PATH.tmp.PID" behind; one
 * whose process lives may be a write in progress, and stays.
 */

static void
ngx_http_tidal_state_clean(ngx_str_t *path, ngx_log_t *log)
{
    u_char      *pattern, *p;
    ngx_int_t    pid;
    ngx_str_t    name;
    ngx_glob_t   gl;

    pattern = ngx_alloc(path->len + sizeof(".tmp.*"), log);
    if (pattern == NULL) {
        return;
    }

    ngx_sprintf(pattern, "%V.tmp.*%Z", path);

    ngx_memzero(&gl, sizeof(ngx_glob_t));

    gl.pattern = pattern;
    gl.log = log;
    gl.test = 1;

    if (ngx_open_glob(&gl) != NGX_OK) {
        ngx_free(pattern);
        return;
    }

    while (ngx_read_glob(&gl, &name) == NGX_OK) {
        p = name.data + path->len + sizeof(".tmp.") - 1;
        pid = ngx_atoi(p, name.data + name.len - p);

        if (pid == NGX_ERROR || kill((pid_t) pid, 0) == 0
            || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        if (ngx_delete_file(name.data) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                          ngx_delete_file_n " \"%V\" failed", &name);
            continue;
        }

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "tidal: removed \"%V\", a state file process %i "
                      "did not finish writing", &name, pid);
    }

    ngx_close_glob(&gl);
    ngx_free(pattern);
}


static json_t *
ngx_http_tidal_state_read_file(ngx_str_t *path, ngx_log_t *log)
{
    char             err[256], shown[NGX_HTTP_TIDAL_LOG_TEXT];
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

        /* jansson quotes the file near the error */

        (void) tidal_utf8_escape(shown, sizeof(shown), err, ngx_strlen(err));

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tidal: state file \"%V\" is corrupt (%s), starting "
                      "with an empty state", path, shown);
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


/*
 * The state without its history, as the zone keeps it, malloc'ed text:
 * {"version":1,"tempo":{...},"channels":{...}}
 */

static char *
ngx_http_tidal_state_text(json_t *state)
{
    char    *text;
    json_t  *rest;

    rest = json_copy(state);

    if (rest == NULL) {
        return NULL;
    }

    (void) json_object_del(rest, "history");

    text = json_dumps(rest, JSON_COMPACT);
    json_decref(rest);

    return text;
}


/* the zone keeps the history entry by entry, apart from the rest */

static ngx_int_t
ngx_http_tidal_state_store(ngx_http_tidal_main_conf_t *tmcf, json_t *state,
    ngx_log_t *log)
{
    char       *text;
    size_t      i;
    json_t     *history;
    ngx_int_t   rc;

    history = json_object_get(state, "history");

    text = ngx_http_tidal_state_text(state);
    if (text == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    rc = ngx_http_tidal_state_set_locked(tmcf, (u_char *) text,
                                         ngx_strlen(text));
    free(text);

    for (i = 0; rc == NGX_OK && i < json_array_size(history); i++) {
        text = json_dumps(json_array_get(history, i), JSON_COMPACT);

        rc = text ? ngx_http_tidal_state_history_locked(tmcf,
                        (u_char *) text, ngx_strlen(text))
                  : NGX_ERROR;
        free(text);
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tidal: no room for the channel state in the zone");
    }

    return rc;
}


/*
 * The zone's room: its state and its newest history entries (up to
 * history) are copied under the lock and parsed outside it; its seq is
 * the last event's.  The room is initialized here, and empty when the
 * zone's state is unusable.
 */

ngx_int_t
ngx_http_tidal_state_room(ngx_http_tidal_main_conf_t *tmcf,
    tidal_room_t *room, ngx_uint_t history)
{
    char                     err[128];
    u_char                  *copy, *p;
    size_t                   len, *lens;
    json_t                  *state, *entry;
    uint64_t                 seq;
    ngx_uint_t               i, n, k;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    if (tidal_room_init(room) != 0) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    n = ngx_min(history, sh->nhistory);
    len = sh->state_len;

    for (i = sh->nhistory - n; i < sh->nhistory; i++) {
        len += sh->history[(sh->history_first + i)
                           % TIDAL_STATE_HISTORY_MAX].len;
    }

    copy = ngx_alloc(len + (n + 1) * sizeof(size_t) + 1, ngx_cycle->log);

    if (copy) {
        lens = (size_t *) copy;
        p = ngx_cpymem(copy + (n + 1) * sizeof(size_t), sh->state,
                       sh->state_len);
        lens[0] = sh->state_len;

        for (i = 0; i < n; i++) {
            k = (sh->history_first + sh->nhistory - n + i)
                % TIDAL_STATE_HISTORY_MAX;
            p = ngx_cpymem(p, sh->history[k].data, sh->history[k].len);
            lens[i + 1] = sh->history[k].len;
        }
    }

    seq = sh->next_seq - 1;

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    if (copy == NULL) {
        tidal_room_free(room);
        return NGX_ERROR;
    }

    room->seq = seq;

    lens = (size_t *) copy;
    p = copy + (n + 1) * sizeof(size_t);

    state = tidal_state_parse((char *) p, lens[0], err, sizeof(err));

    if (state == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "tidal: channel state in the zone is unusable: %s",
                      err);
        ngx_free(copy);
        return NGX_OK;
    }

    if (tidal_room_load(room, state) != 0) {
        json_decref(state);
        ngx_free(copy);
        tidal_room_free(room);
        return NGX_ERROR;
    }

    json_decref(state);

    p += lens[0];

    for (i = 0; i < n; i++) {
        entry = json_loadb((char *) p, lens[i + 1], 0, NULL);

        if (entry) {
            (void) tidal_room_history_add(room, entry);
        }

        p += lens[i + 1];
    }

    ngx_free(copy);

    return NGX_OK;
}


/* session_restore params: the room with its newest history events */

json_t *
ngx_http_tidal_state_snapshot(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t history)
{
    json_t        *params;
    ngx_time_t    *tp;
    tidal_room_t   room;

    if (ngx_http_tidal_state_room(tmcf, &room, history) != NGX_OK) {
        return NULL;
    }

    tp = ngx_timeofday();

    params = tidal_room_restore(&room, history,
                                (int64_t) tp->sec * 1000 + tp->msec);

    tidal_room_free(&room);

    return params;
}


/*
 * resources/read of a channel, tidal://state or tidal://history
 * (tidal_room_resource); NULL for tidal://chat, which the zone's room
 * does not hold
 */

json_t *
ngx_http_tidal_state_resource(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t resource)
{
    json_t        *result;
    tidal_room_t   room;

    if (resource == TIDAL_MCP_RESOURCE_CHAT) {
        return ngx_http_tidal_state_chat(tmcf);
    }

    if (ngx_http_tidal_state_room(tmcf, &room,
                                  resource == TIDAL_MCP_RESOURCE_HISTORY
                                  ? TIDAL_ROOM_HISTORY_MAX : 0)
        != NGX_OK)
    {
        return NULL;
    }

    result = tidal_room_resource(&room, (int) resource);

    tidal_room_free(&room);

    return result;
}


/*
 * tidal://chat: the chat lines still in the event ring, oldest first, as
 * {"chat": [{seq, timestamp, who, text}, ...]}; chat is not part of the
 * room's state, so what has left the ring is gone.
 */

static json_t *
ngx_http_tidal_state_chat(ngx_http_tidal_main_conf_t *tmcf)
{
    u_char                  *buf;
    json_t                  *chat, *ev, *params;
    uint64_t                 from, next;
    ngx_int_t                rc;
    ngx_uint_t               i, n;
    ngx_http_tidal_event_t   events[64];

    chat = json_array();
    buf = ngx_alloc(NGX_HTTP_TIDAL_CHAT_BUFFER, ngx_cycle->log);

    if (chat == NULL || buf == NULL) {
        json_decref(chat);
        ngx_free(buf);
        return NULL;
    }

    ngx_shmtx_lock(&tmcf->shpool->mutex);
    from = tmcf->sh->first_seq;
    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    do {
        rc = ngx_http_tidal_zone_fetch(tmcf, from, buf,
                                       NGX_HTTP_TIDAL_CHAT_BUFFER, events, 64,
                                       &n, &next);

        if (rc == NGX_DECLINED) {
            /* overwritten meanwhile: start again at the oldest */
            ngx_shmtx_lock(&tmcf->shpool->mutex);
            from = tmcf->sh->first_seq;
            ngx_shmtx_unlock(&tmcf->shpool->mutex);
            continue;
        }

        if (rc == NGX_AGAIN) {
            /* an event larger than the buffer is no chat line: skip it */
            from++;
            continue;
        }

        for (i = 0; i < n; i++) {
            ev = json_loadb((char *) events[i].data, events[i].len, 0, NULL);
            params = json_object_get(ev, "params");

            if (json_is_string(json_object_get(params, "type"))
                && ngx_strcmp(json_string_value(json_object_get(params,
                                                                "type")),
                              "chat") == 0)
            {
                (void) json_array_append_new(chat,
                           json_pack("{s:O?, s:O?, s:O?, s:O?}",
                                     "seq", json_object_get(params, "seq"),
                                     "timestamp",
                                     json_object_get(params, "timestamp"),
                                     "who", json_object_get(params, "who"),
                                     "text", json_object_get(params, "text")));
            }

            json_decref(ev);
        }

        from = next;

    } while (rc == NGX_DONE || rc == NGX_DECLINED || rc == NGX_AGAIN);

    ngx_free(buf);

    return json_pack("{s:o}", "chat", chat);
}


/*
 * The helper's channels and tempo after its events, numbered hid: the
 * first worker to bring them stores them in the zone (NGX_OK); a copy
 * already superseded is NGX_DONE.  The history is the zone's, whose
 * entries carry the room's event numbers.
 */

ngx_int_t
ngx_http_tidal_state_update(ngx_http_tidal_main_conf_t *tmcf, uint64_t hid,
    json_t *state, const char *ghci, ngx_pid_t ghci_pid, ngx_log_t *log)
{
    char                    *text;
    ngx_int_t                rc;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    text = ngx_http_tidal_state_text(state);
    if (text == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    if (hid <= sh->helper_hid) {
        rc = NGX_DONE;

    } else {
        sh->helper_hid = hid;
        sh->ghci_pid = ghci_pid;

        if (ghci) {
            ngx_cpystrn(sh->ghci, (u_char *) ghci, sizeof(sh->ghci));
        }

        rc = ngx_http_tidal_state_set_locked(tmcf, (u_char *) text,
                                             ngx_strlen(text));
    }

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    free(text);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tidal: no room for the channel state in the zone");

    } else if (rc == NGX_OK) {
        ngx_http_tidal_state_changed(tmcf);
    }

    return rc;
}


/* replaces the zone's state text; the caller holds the mutex */

static ngx_int_t
ngx_http_tidal_state_set_locked(ngx_http_tidal_main_conf_t *tmcf,
    u_char *text, size_t len)
{
    u_char                  *p;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    p = ngx_slab_alloc_locked(tmcf->shpool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, text, len);

    if (sh->state) {
        ngx_slab_free_locked(tmcf->shpool, sh->state);
    }

    sh->state = p;
    sh->state_len = len;
    sh->state_version++;

    return NGX_OK;
}


/*
 * Appends an event's params to the history, the oldest leaves it past
 * the limit; the caller holds the mutex.  The zone publishes under the
 * same lock, so the history is in the ring's order.
 */

ngx_int_t
ngx_http_tidal_state_history_locked(ngx_http_tidal_main_conf_t *tmcf,
    u_char *text, size_t len)
{
    u_char                  *p;
    ngx_uint_t               k;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    if (sh->nhistory == TIDAL_STATE_HISTORY_MAX) {
        ngx_slab_free_locked(tmcf->shpool,
                             sh->history[sh->history_first].data);
        sh->history_first = (sh->history_first + 1) % TIDAL_STATE_HISTORY_MAX;
        sh->nhistory--;
    }

    p = ngx_slab_alloc_locked(tmcf->shpool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, text, len);

    k = (sh->history_first + sh->nhistory) % TIDAL_STATE_HISTORY_MAX;
    sh->history[k].data = p;
    sh->history[k].len = len;
    sh->nhistory++;
    sh->state_version++;

    return NGX_OK;
}


/*
 * The state file follows the zone once the worker is done with what it
 * read: several changes in a row cost one write.
 */

void
ngx_http_tidal_state_changed(ngx_http_tidal_main_conf_t *tmcf)
{
    ngx_event_t  *ev;

    if (tmcf->state_file.len == 0) {
        return;
    }

    ev = &ngx_http_tidal_state_file_event;

    if (!ev->posted) {
        ev->handler = ngx_http_tidal_state_file_handler;
        ev->data = tmcf;
        ev->log = ngx_cycle->log;
        ngx_post_event(ev, &ngx_posted_events);
    }
}


static void
ngx_http_tidal_state_file_handler(ngx_event_t *ev)
{
    u_char                      *text;
    size_t                       len;
    uint64_t                     version;
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = ev->data;

    text = ngx_http_tidal_state_file_text(tmcf, &len, &version);

    if (text) {
        ngx_http_tidal_state_write(tmcf, text, len, version, ev->log);
        ngx_free(text);
    }
}


/*
 * The state document the file holds, put together from the zone's texts
 * under the lock, neither parsed nor serialized again: the state without
 * its closing brace, then "history" with every entry.
 */

static u_char *
ngx_http_tidal_state_file_text(ngx_http_tidal_main_conf_t *tmcf, size_t *len,
    uint64_t *version)
{
    u_char                  *text, *p;
    size_t                   size;
    ngx_uint_t               i, k;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    size = sh->state_len + sizeof(",\"history\":[]}");

    for (i = 0; i < sh->nhistory; i++) {
        size += sh->history[(sh->history_first + i)
                            % TIDAL_STATE_HISTORY_MAX].len + 1;
    }

    text = ngx_alloc(size, ngx_cycle->log);

    if (text) {
        p = ngx_cpymem(text, sh->state, sh->state_len - 1);
        p = ngx_cpymem(p, ",\"history\":[", sizeof(",\"history\":[") - 1);

        for (i = 0; i < sh->nhistory; i++) {
            k = (sh->history_first + i) % TIDAL_STATE_HISTORY_MAX;

            if (i) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, sh->history[k].data, sh->history[k].len);
        }

        *p++ = ']';
        *p++ = '}';
        *len = p - text;
    }

    *version = sh->state_version;

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    return text;
}


/*
 * write, sync, rename: a crash leaves the old file or the new, not half;
 * and of two workers writing at once, the newer state is the one left
 */

static void
ngx_http_tidal_state_write(ngx_http_tidal_main_conf_t *tmcf, u_char *text,
    size_t len, uint64_t version, ngx_log_t *log)
{
    u_char     *tmp;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_str_t  *path;
    ngx_err_t   err;
    ngx_uint_t  stale;

    /* another worker has already written this state or a newer one */

    ngx_shmtx_lock(&tmcf->shpool->mutex);
    stale = (version <= tmcf->sh->state_file_version);
    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    if (stale) {
        return;
    }

    path = &tmcf->state_file;

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

    n = ngx_write_fd(fd, text, len);

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
