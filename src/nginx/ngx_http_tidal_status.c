/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: tidal_status, the zone's figures as JSON for dashboards,
 * and the metrics every client receives each tidal_metrics_interval.
 */


#include "ngx_http_tidal.h"


static json_t *ngx_http_tidal_status_workers(ngx_http_tidal_shctx_t *sh);
static void ngx_http_tidal_proc_usage(ngx_pid_t pid, double *cpu,
    uint64_t *rss);


ngx_int_t
ngx_http_tidal_status_handler(ngx_http_request_t *r)
{
    char                        *text;
    json_t                      *status;
    ngx_int_t                    rc;
    ngx_http_tidal_main_conf_t  *tmcf;

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_tidal_module);

    if (tmcf->sh == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tidal: tidal_status needs a tidal_zone");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = ngx_http_tidal_status_json(tmcf);
    if (status == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    text = json_dumps(status, JSON_COMPACT);
    json_decref(status);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_tidal_reply(r, NGX_HTTP_OK, "application/json",
                              (u_char *) text, ngx_strlen(text));
    free(text);

    return rc;
}


json_t *
ngx_http_tidal_status_json(ngx_http_tidal_main_conf_t *tmcf)
{
    json_t                  *workers;
    uint64_t                 first, last, rate;
    ngx_uint_t               sessions;
    ngx_http_tidal_shctx_t  *sh;

    sh = tmcf->sh;

    ngx_shmtx_lock(&tmcf->shpool->mutex);

    first = sh->first_seq;
    last = sh->next_seq - 1;
    rate = (ngx_time() <= sh->rate_time + 1) ? sh->rate : 0;
    sessions = sh->nsessions;

    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    workers = ngx_http_tidal_status_workers(sh);

    return json_pack("{s:s, s:I, s:I, s:o*, s:{s:I, s:I}, s:I, s:I, "
                     "s:{s:I, s:I}}",
                     "version", NGX_TIDAL_VERSION,
                     "connections", (json_int_t) sh->connections,
                     "max_connections", (json_int_t) tmcf->max_connections,
                     "workers", workers,
                     "seq", "first", (json_int_t) first,
                            "last", (json_int_t) last,
                     "events_per_second", (json_int_t) rate,
                     "sessions", (json_int_t) sessions,
                     "zone", "size", (json_int_t) tmcf->shm_zone->shm.size,
                             "ring_bytes", (json_int_t) sh->data_size);
}


static json_t *
ngx_http_tidal_status_workers(ngx_http_tidal_shctx_t *sh)
{
    json_t      *workers;
    ngx_pid_t    pid;
    ngx_uint_t   i;

    workers = json_array();

    for (i = 0; workers && i < NGX_HTTP_TIDAL_WORKER_SLOTS; i++) {
        pid = (ngx_pid_t) sh->slots[i].pid;

        if (pid == 0 || (kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH)) {
            continue;
        }

        json_array_append_new(workers,
                              json_pack("{s:i, s:I}", "pid", (int) pid,
                                        "clients",
                                        (json_int_t) sh->slots[i].clients));
    }

    return workers;
}


/*
 * The metrics notification's params.  Reading /proc for every client
 * would cost more than the clients are worth: the figures are made at
 * most every 100 ms per worker and shared.
 */

json_t *
ngx_http_tidal_status_metrics(ngx_http_tidal_main_conf_t *tmcf)
{
    double                   cpu, total_cpu;
    uint64_t                 rss, total_rss;
    ngx_uint_t               i;
    ngx_time_t              *tp;
    ngx_pid_t                pid;
    json_t                  *status, *ghci;
    ngx_http_tidal_shctx_t  *sh;

    static json_t           *cached;
    static ngx_msec_t        cached_at;

    if (cached && ngx_current_msec - cached_at < 100) {
        return json_incref(cached);
    }

    sh = tmcf->sh;

    total_cpu = 0;
    total_rss = 0;

    ngx_http_tidal_proc_usage(getppid(), &total_cpu, &total_rss);

    for (i = 0; i < NGX_HTTP_TIDAL_WORKER_SLOTS; i++) {
        pid = (ngx_pid_t) sh->slots[i].pid;

        if (pid) {
            cpu = 0;
            rss = 0;
            ngx_http_tidal_proc_usage(pid, &cpu, &rss);
            total_cpu += cpu;
            total_rss += rss;
        }
    }

    status = ngx_http_tidal_status_json(tmcf);
    if (status == NULL) {
        return NULL;
    }

    ngx_shmtx_lock(&tmcf->shpool->mutex);
    pid = sh->ghci_pid;
    ngx_shmtx_unlock(&tmcf->shpool->mutex);

    ghci = NULL;

    if (pid) {
        cpu = 0;
        rss = 0;
        ngx_http_tidal_proc_usage(pid, &cpu, &rss);

        ghci = json_pack("{s:i, s:f, s:I}", "pid", (int) pid,
                         "cpu_seconds", cpu, "rss_bytes", (json_int_t) rss);
    }

    tp = ngx_timeofday();

    if (cached) {
        json_decref(cached);
    }

    cached = json_pack("{s:s, s:O, s:I, s:O, s:O, s:O, s:{s:f, s:I}, s:o?}",
                       "type", "metrics",
                       "seq", json_object_get(json_object_get(status, "seq"),
                                              "last"),
                       "timestamp", (json_int_t) tp->sec * 1000 + tp->msec,
                       "connections", json_object_get(status, "connections"),
                       "workers", json_object_get(status, "workers"),
                       "events_per_second",
                       json_object_get(status, "events_per_second"),
                       "nginx", "cpu_seconds", total_cpu,
                                "rss_bytes", (json_int_t) total_rss,
                       "ghci", ghci);

    json_decref(status);

    cached_at = ngx_current_msec;

    return cached ? json_incref(cached) : NULL;
}


/* user+system CPU seconds and resident bytes of one process */

static void
ngx_http_tidal_proc_usage(ngx_pid_t pid, double *cpu, uint64_t *rss)
{
    char           path[64], buf[1024], *p;
    ssize_t        n;
    ngx_fd_t       fd;
    unsigned long  utime, stime;
    long           pages;

    ngx_sprintf((u_char *) path, "/proc/%P/stat%Z", pid);

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf) - 1);
    (void) ngx_close_file(fd);

    if (n <= 0) {
        return;
    }

    buf[n] = '\0';

    /* the command name may hold spaces and parentheses: skip past it */

    p = strrchr(buf, ')');
    if (p == NULL) {
        return;
    }

    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
                      "%*d %*d %*d %*d %*d %*d %*u %*u %ld",
               &utime, &stime, &pages)
        == 3)
    {
        *cpu += (double) (utime + stime) / sysconf(_SC_CLK_TCK);
        *rss += (uint64_t) pages * ngx_pagesize;
    }
}
