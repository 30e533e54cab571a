/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: tidal_publish - a script POSTs a JSON object and everyone
 * receives it as a "custom" event, the object under "data", so a script
 * can add to the room but never forge one of the server's own events.
 */


#include "ngx_http_tidal.h"


static void ngx_http_tidal_publish_body(ngx_http_request_t *r);
static u_char *ngx_http_tidal_publish_read(ngx_http_request_t *r,
    size_t *len);


ngx_int_t
ngx_http_tidal_publish_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    /* client_max_body_size answers 413 before any of this */

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_tidal_publish_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_tidal_publish_body(ngx_http_request_t *r)
{
    u_char                      *body, *p;
    size_t                       len;
    json_t                      *data, *fields;
    uint64_t                     seq;
    ngx_int_t                    rc;
    json_error_t                 err;
    ngx_http_tidal_main_conf_t  *tmcf;
    u_char                       msg[256];

    tmcf = ngx_http_get_module_main_conf(r, ngx_tidal_module);

    body = ngx_http_tidal_publish_read(r, &len);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    data = json_loadb((char *) body, len, JSON_REJECT_DUPLICATES, &err);

    if (data == NULL) {
        p = ngx_snprintf(msg, sizeof(msg), "the body is not JSON: %s at "
                         "line %d, column %d\n", err.text, err.line,
                         err.column);
        rc = ngx_http_tidal_reply(r, NGX_HTTP_BAD_REQUEST, "text/plain",
                                  msg, p - msg);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (!json_is_object(data)) {
        json_decref(data);
        p = ngx_sprintf(msg, "the body must be a JSON object\n");
        rc = ngx_http_tidal_reply(r, NGX_HTTP_BAD_REQUEST, "text/plain",
                                  msg, p - msg);
        ngx_http_finalize_request(r, rc);
        return;
    }

    fields = json_pack("{s:o}", "data", data);
    if (fields == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_tidal_zone_publish(tmcf, "custom", fields,
                                     r->connection->log, &seq);
    json_decref(fields);

    if (rc == NGX_DECLINED) {
        p = ngx_sprintf(msg, "the event is too large for the event ring "
                        "(a quarter of it at most)\n");
        rc = ngx_http_tidal_reply(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "text/plain", msg, p - msg);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_tidal_fanout_published(tmcf);

    p = ngx_sprintf(msg, "{\"seq\":%uL}\n", seq);

    rc = ngx_http_tidal_reply(r, NGX_HTTP_OK, "application/json",
                                       msg, p - msg);
    ngx_http_finalize_request(r, rc);
}


/* the whole body in one piece, from memory or the temporary file */

static u_char *
ngx_http_tidal_publish_read(ngx_http_request_t *r, size_t *len)
{
    u_char       *body, *p;
    size_t        size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    size = 0;

    if (r->request_body == NULL) {
        *len = 0;
        return (u_char *) "";
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    body = ngx_pnalloc(r->pool, size + 1);
    if (body == NULL) {
        return NULL;
    }

    p = body;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n == NGX_ERROR) {
                return NULL;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    *len = p - body;

    return body;
}
