/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: the MCP location's request handler - checks an RFC 6455
 * upgrade (method, version, key) and answers 101, or explains in one
 * line what the endpoint expects.
 */


#include "ngx_http_tidal.h"


/* nginx 1.22 has no name and no status line for 426 */
#define NGX_HTTP_TIDAL_UPGRADE_REQUIRED  426


static ngx_int_t ngx_http_tidal_reject(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *header, ngx_str_t *value, const char *text);
static ngx_uint_t ngx_http_tidal_offers_mcp(ngx_http_request_t *r);


static ngx_str_t  ngx_http_tidal_upgrade_key = ngx_string("Upgrade");
static ngx_str_t  ngx_http_tidal_websocket = ngx_string("websocket");
static ngx_str_t  ngx_http_tidal_allow_key = ngx_string("Allow");
static ngx_str_t  ngx_http_tidal_allow_value = ngx_string("GET");
static ngx_str_t  ngx_http_tidal_version_key =
    ngx_string("Sec-WebSocket-Version");
static ngx_str_t  ngx_http_tidal_version_value = ngx_string("13");
static ngx_str_t  ngx_http_tidal_accept_key =
    ngx_string("Sec-WebSocket-Accept");
static ngx_str_t  ngx_http_tidal_protocol_key =
    ngx_string("Sec-WebSocket-Protocol");
static ngx_str_t  ngx_http_tidal_mcp_protocol = ngx_string("mcp");
static ngx_str_t  ngx_http_tidal_cors_key =
    ngx_string("Access-Control-Allow-Origin");
static ngx_str_t  ngx_http_tidal_cors_any = ngx_string("*");


ngx_int_t
ngx_http_tidal_handler(ngx_http_request_t *r)
{
    u_char                     *accept;
    ngx_int_t                   rc;
    tidal_role_e                role;
    ngx_str_t                   value;
    ngx_table_elt_t            *key, *version, *connection;
    ngx_http_tidal_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_tidal_module);

    rc = ngx_http_tidal_access_check(r, tlcf);

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* any page may read the refusal: tidal-client.js stops on it */

        return ngx_http_tidal_reject(r, rc, &ngx_http_tidal_cors_key,
                                     &ngx_http_tidal_cors_any,
                                     NGX_HTTP_TIDAL_ACCESS_DENIED);
    }

    if (r->headers_in.upgrade == NULL
        || !ngx_http_tidal_has_token(&r->headers_in.upgrade->value,
                                     "websocket", 9))
    {
        /* MCP Streamable HTTP: ngx_http_tidal_http.c */

        if (r->method == NGX_HTTP_OPTIONS) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_tidal_access_preflight(r, tlcf);
        }

        return ngx_http_tidal_http_handler(r, tlcf);
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_tidal_reject(r, NGX_HTTP_NOT_ALLOWED,
                   &ngx_http_tidal_allow_key, &ngx_http_tidal_allow_value,
                   "a WebSocket upgrade must use GET\n");
    }

    /* nginx 1.22 does not keep headers_in.connection */
    connection = ngx_http_tidal_find_header(r, "Connection", 10);

    if (r->http_version < NGX_HTTP_VERSION_11
        || connection == NULL
        || !ngx_http_tidal_has_token(&connection->value, "upgrade", 7))
    {
        return ngx_http_tidal_reject(r, NGX_HTTP_BAD_REQUEST, NULL, NULL,
                   "a WebSocket upgrade needs HTTP/1.1 and "
                   "\"Connection: Upgrade\"\n");
    }

    version = ngx_http_tidal_find_header(r, "Sec-WebSocket-Version", 21);

    if (version == NULL
        || version->value.len != 2
        || ngx_strncmp(version->value.data, "13", 2) != 0)
    {
        return ngx_http_tidal_reject(r, NGX_HTTP_TIDAL_UPGRADE_REQUIRED,
                   &ngx_http_tidal_version_key, &ngx_http_tidal_version_value,
                   "only WebSocket version 13 (RFC 6455) is supported\n");
    }

    key = ngx_http_tidal_find_header(r, "Sec-WebSocket-Key", 17);

    if (key == NULL
        || !tidal_ws_key_valid((char *) key->value.data, key->value.len))
    {
        return ngx_http_tidal_reject(r, NGX_HTTP_BAD_REQUEST, NULL, NULL,
                   "missing or invalid Sec-WebSocket-Key\n");
    }

    if (ngx_exiting || ngx_terminate) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    rc = ngx_http_tidal_request_role(r, tlcf, &role);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_tidal_reject(r, NGX_HTTP_FORBIDDEN, NULL, NULL,
                   "no role for this client; see tidal_role\n");
    }

    accept = ngx_pnalloc(r->pool, TIDAL_WS_ACCEPT_LEN + 1);
    if (accept == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (tidal_ws_accept((char *) key->value.data, key->value.len,
                        (char *) accept)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "tidal: computing Sec-WebSocket-Accept failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = accept;
    value.len = TIDAL_WS_ACCEPT_LEN;

    if (ngx_http_tidal_add_header(r, &ngx_http_tidal_upgrade_key,
                                  &ngx_http_tidal_websocket)
        != NGX_OK
        || ngx_http_tidal_add_header(r, &ngx_http_tidal_accept_key, &value)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_tidal_offers_mcp(r)
        && ngx_http_tidal_add_header(r, &ngx_http_tidal_protocol_key,
                                     &ngx_http_tidal_mcp_protocol)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_tidal_websocket_start(r, tlcf, role);
}


static ngx_int_t
ngx_http_tidal_reject(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *header, ngx_str_t *value, const char *text)
{
    if (header != NULL
        && ngx_http_tidal_add_header(r, header, value) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_TIDAL_UPGRADE_REQUIRED) {
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
    }

    return ngx_http_tidal_reply(r, status, "text/plain", (u_char *) text,
                                ngx_strlen(text));
}


static ngx_uint_t
ngx_http_tidal_offers_mcp(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Sec-WebSocket-Protocol") - 1
            && ngx_strncasecmp(h[i].key.data,
                               (u_char *) "Sec-WebSocket-Protocol",
                               sizeof("Sec-WebSocket-Protocol") - 1)
               == 0
            && ngx_http_tidal_has_token(&h[i].value, "mcp", 3))
        {
            return 1;
        }
    }
}


/*
 * Who is who is nginx's business (auth_request, map, certificates): the
 * role tidal_role gives this request.  NGX_DECLINED, logged, for a value
 * that names no role; the caller answers 403.
 */

ngx_int_t
ngx_http_tidal_request_role(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e *role)
{
    char       shown[NGX_HTTP_TIDAL_LOG_TEXT];
    ngx_str_t  value;

    *role = TIDAL_ROLE_PERFORMER;

    if (tlcf->role == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, tlcf->role, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (tidal_mcp_role_by_name((char *) value.data, value.len, role) == 0) {
        return NGX_OK;
    }

    /* the value may come from a request header */

    (void) tidal_utf8_escape(shown, sizeof(shown), (char *) value.data,
                             value.len);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "tidal: tidal_role gave \"%s\", not listener, "
                  "performer or admin; request refused", shown);

    return NGX_DECLINED;
}
