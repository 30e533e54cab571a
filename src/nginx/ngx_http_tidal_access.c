/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: who may talk to the MCP endpoint - the Host check against
 * DNS rebinding, the Origin check, and CORS for browser clients.
 */


#include "ngx_http_tidal.h"


static ngx_int_t ngx_http_tidal_access_host(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);
static ngx_uint_t ngx_http_tidal_access_ip_literal(ngx_str_t *host);
static ngx_uint_t ngx_http_tidal_access_server_name(ngx_http_request_t *r,
    ngx_str_t *host);
static ngx_uint_t ngx_http_tidal_access_listed(ngx_array_t *names,
    ngx_str_t *host);
static ngx_uint_t ngx_http_tidal_access_name_match(ngx_str_t *name,
    ngx_str_t *host);
static ngx_int_t ngx_http_tidal_access_origin(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, ngx_str_t *origin);
static ngx_uint_t ngx_http_tidal_access_valid_name(ngx_str_t *name);


static ngx_str_t  ngx_http_tidal_access_allow_origin =
    ngx_string("Access-Control-Allow-Origin");
static ngx_str_t  ngx_http_tidal_access_vary = ngx_string("Vary");
static ngx_str_t  ngx_http_tidal_access_origin_name = ngx_string("Origin");
static ngx_str_t  ngx_http_tidal_access_expose =
    ngx_string("Access-Control-Expose-Headers");
static ngx_str_t  ngx_http_tidal_access_exposed =
    ngx_string("Mcp-Session-Id, MCP-Protocol-Version");
static ngx_str_t  ngx_http_tidal_access_allow = ngx_string("Allow");
static ngx_str_t  ngx_http_tidal_access_allow_methods =
    ngx_string("Access-Control-Allow-Methods");
static ngx_str_t  ngx_http_tidal_access_methods =
    ngx_string("GET, POST, DELETE, OPTIONS");
static ngx_str_t  ngx_http_tidal_access_allow_headers =
    ngx_string("Access-Control-Allow-Headers");
static ngx_str_t  ngx_http_tidal_access_headers =
    ngx_string("Content-Type, Accept, Authorization, Mcp-Session-Id, "
               "MCP-Protocol-Version, Last-Event-ID");
static ngx_str_t  ngx_http_tidal_access_max_age_name =
    ngx_string("Access-Control-Max-Age");

/* Chromium caps a preflight's lifetime at 2 hours, Firefox at 24 */
static ngx_str_t  ngx_http_tidal_access_max_age = ngx_string("7200");


/*
 * Host first: a DNS-rebinding page sends its own name as Host and as
 * Origin, so the Origin check alone (same host) would let it in.
 */

ngx_int_t
ngx_http_tidal_access_check(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    char              shown[NGX_HTTP_TIDAL_LOG_TEXT];
    ngx_table_elt_t  *origin;

    if (ngx_http_tidal_access_host(r, tlcf) != NGX_OK) {
        (void) tidal_utf8_escape(shown, sizeof(shown),
                                 (char *) r->headers_in.server.data,
                                 r->headers_in.server.len);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tidal: host \"%s\" not allowed; add it to "
                      "server_name or tidal_allow_host", shown);

        return NGX_HTTP_FORBIDDEN;
    }

    origin = ngx_http_tidal_find_header(r, "Origin", 6);

    if (origin != NULL
        && ngx_http_tidal_access_origin(r, tlcf, &origin->value) != NGX_OK)
    {
        (void) tidal_utf8_escape(shown, sizeof(shown),
                                 (char *) origin->value.data,
                                 origin->value.len);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "tidal: origin \"%s\" not allowed; add it to "
                      "tidal_allow_origin", shown);

        return NGX_HTTP_FORBIDDEN;
    }

    return NGX_OK;
}


/*
 * A browser always sends Host, so a request without one (HTTP/1.0) is
 * not a rebinding page's and passes; its Origin, if any, must then be
 * listed.  nginx has already cut the port, lowercased the name and
 * dropped a trailing dot (r->headers_in.server).
 */

static ngx_int_t
ngx_http_tidal_access_host(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    ngx_str_t  *host;

    host = &r->headers_in.server;

    if (host->len == 0) {
        return NGX_OK;
    }

    /*
     * An attacker's name cannot resolve to an address that is already
     * the Host; "*.localhost" is left to tidal_allow_host, as not every
     * resolver keeps it on the loopback.
     */

    if (ngx_http_tidal_access_ip_literal(host)
        || (host->len == 9
            && ngx_strncasecmp(host->data, (u_char *) "localhost", 9) == 0))
    {
        return NGX_OK;
    }

    if (ngx_http_tidal_access_server_name(r, host)
        || ngx_http_tidal_access_listed(tlcf->allow_hosts, host))
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_uint_t
ngx_http_tidal_access_ip_literal(ngx_str_t *host)
{
#if (NGX_HAVE_INET6)
    u_char  addr6[16];
#endif

    if (host->data[0] == '[') {

#if (NGX_HAVE_INET6)
        return host->len > 2
               && host->data[host->len - 1] == ']'
               && ngx_inet6_addr(host->data + 1, host->len - 2, addr6)
                  == NGX_OK;
#else
        return 0;
#endif
    }

    return ngx_inet_addr(host->data, host->len) != INADDR_NONE;
}


/* the server block's own names (ngx_http_tidal_access_server_names()) */

static ngx_uint_t
ngx_http_tidal_access_server_name(ngx_http_request_t *r, ngx_str_t *host)
{
    ngx_str_t                  *name;
    ngx_uint_t                  i;
    ngx_http_tidal_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_tidal_module);

    if (tlcf->server_names == NULL) {
        return 0;
    }

    name = tlcf->server_names->elts;

    for (i = 0; i < tlcf->server_names->nelts; i++) {
        if (ngx_http_tidal_access_name_match(&name[i], host)) {
            return 1;
        }
    }

    return 0;
}


/*
 * A tidal_mcp location keeps a copy of its server block's names, as
 * server_name keeps them (lowercased, "$hostname" replaced): nginx keeps
 * its list only while it reads the configuration (cf->temp_pool).
 * Regular expressions, "" and "_" (the usual catch-all spellings) name no
 * host and are left out.
 */

char *
ngx_http_tidal_access_server_names(ngx_conf_t *cf,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    ngx_str_t                 *name;
    ngx_uint_t                 i;
    ngx_http_server_name_t    *sn;
    ngx_http_core_srv_conf_t  *cscf;

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    tlcf->server_names = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (tlcf->server_names == NULL) {
        return NGX_CONF_ERROR;
    }

    sn = cscf->server_names.elts;

    for (i = 0; i < cscf->server_names.nelts; i++) {

#if (NGX_PCRE)
        if (sn[i].regex) {
            continue;
        }
#endif

        if (sn[i].name.len == 0
            || (sn[i].name.len == 1 && sn[i].name.data[0] == '_'))
        {
            continue;
        }

        name = ngx_array_push(tlcf->server_names);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        name->len = sn[i].name.len;
        name->data = ngx_pstrdup(cf->pool, &sn[i].name);
        if (name->data == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_tidal_access_listed(ngx_array_t *names, ngx_str_t *host)
{
    ngx_str_t   *name;
    ngx_uint_t   i;

    if (names == NULL) {
        return 0;
    }

    name = names->elts;

    for (i = 0; i < names->nelts; i++) {
        if (ngx_http_tidal_access_name_match(&name[i], host)) {
            return 1;
        }
    }

    return 0;
}


/*
 * nginx's three kinds of non-regex names (ngx_hash_add_key): exact,
 * "*.example.com" (any name below, not example.com itself),
 * ".example.com" (example.com and any name below) and "www.example.*"
 * (any name that goes on after "www.example.").
 */

static ngx_uint_t
ngx_http_tidal_access_name_match(ngx_str_t *name, ngx_str_t *host)
{
    size_t   len;
    u_char  *suffix;

    if (name->len == 0) {
        return 0;
    }

    if (name->data[0] == '*' || name->data[0] == '.') {

        suffix = (name->data[0] == '*') ? name->data + 1 : name->data;
        len = name->data + name->len - suffix;

        if (host->len > len
            && ngx_strncasecmp(host->data + host->len - len, suffix, len)
               == 0)
        {
            return 1;
        }

        return name->data[0] == '.'
               && host->len == len - 1
               && ngx_strncasecmp(host->data, suffix + 1, len - 1) == 0;
    }

    if (name->len > 2 && name->data[name->len - 1] == '*') {
        len = name->len - 1;

        return host->len > len
               && ngx_strncasecmp(host->data, name->data, len) == 0;
    }

    return host->len == name->len
           && ngx_strncasecmp(host->data, name->data, name->len) == 0;
}


/*
 * Listed origins pass; otherwise a page may talk to its own host (http
 * or https: a TLS-terminating proxy in front changes the scheme), but
 * only when that host passed the Host check.
 */

static ngx_int_t
ngx_http_tidal_access_origin(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, ngx_str_t *origin)
{
    u_char      *host;
    size_t       len;
    ngx_str_t   *allowed, *h;
    ngx_uint_t   i;

    if (tlcf->allow_origins) {
        allowed = tlcf->allow_origins->elts;

        for (i = 0; i < tlcf->allow_origins->nelts; i++) {

            if (allowed[i].len == 1 && allowed[i].data[0] == '*') {
                return NGX_OK;
            }

            if (allowed[i].len == origin->len
                && ngx_strncasecmp(allowed[i].data, origin->data,
                                   origin->len)
                   == 0)
            {
                return NGX_OK;
            }
        }
    }

    if (r->headers_in.host == NULL
        || ngx_http_tidal_access_host(r, tlcf) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (origin->len > 7
        && ngx_strncasecmp(origin->data, (u_char *) "http://", 7) == 0)
    {
        host = origin->data + 7;

    } else if (origin->len > 8
               && ngx_strncasecmp(origin->data, (u_char *) "https://", 8)
                  == 0)
    {
        host = origin->data + 8;

    } else {
        return NGX_DECLINED;
    }

    len = origin->data + origin->len - host;
    h = &r->headers_in.host->value;

    if (len == h->len && ngx_strncasecmp(host, h->data, len) == 0) {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * For the Streamable HTTP transport's answers: a browser page reads an
 * answer only when it names the page's origin.
 */

ngx_int_t
ngx_http_tidal_access_cors(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    ngx_table_elt_t  *origin;

    if (ngx_http_tidal_add_header(r, &ngx_http_tidal_access_vary,
                                  &ngx_http_tidal_access_origin_name)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    origin = ngx_http_tidal_find_header(r, "Origin", 6);

    if (origin == NULL
        || ngx_http_tidal_access_origin(r, tlcf, &origin->value) != NGX_OK)
    {
        return NGX_OK;
    }

    if (ngx_http_tidal_add_header(r, &ngx_http_tidal_access_allow_origin,
                                  &origin->value)
        != NGX_OK
        || ngx_http_tidal_add_header(r, &ngx_http_tidal_access_expose,
                                     &ngx_http_tidal_access_exposed)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* answers an OPTIONS request completely: a CORS preflight, or not */

ngx_int_t
ngx_http_tidal_access_preflight(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_tidal_access_check(r, tlcf);

    if (rc != NGX_OK) {
        return ngx_http_tidal_reply(r, rc, "text/plain",
                   (u_char *) NGX_HTTP_TIDAL_ACCESS_DENIED,
                   sizeof(NGX_HTTP_TIDAL_ACCESS_DENIED) - 1);
    }

    if (ngx_http_tidal_access_cors(r, tlcf) != NGX_OK
        || ngx_http_tidal_add_header(r, &ngx_http_tidal_access_allow,
                                     &ngx_http_tidal_access_methods)
           != NGX_OK
        || ngx_http_tidal_add_header(r,
                                     &ngx_http_tidal_access_allow_methods,
                                     &ngx_http_tidal_access_methods)
           != NGX_OK
        || ngx_http_tidal_add_header(r,
                                     &ngx_http_tidal_access_allow_headers,
                                     &ngx_http_tidal_access_headers)
           != NGX_OK
        || ngx_http_tidal_add_header(r, &ngx_http_tidal_access_max_age_name,
                                     &ngx_http_tidal_access_max_age)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_tidal_reply(r, NGX_HTTP_NO_CONTENT, "text/plain",
                                (u_char *) "", 0);
}


/* tidal_allow_host NAME ...: names as server_name takes them */

#define NGX_HTTP_TIDAL_HOST_ERR                                               \
    "has invalid name \"%V\": expected a host name without a port, "        \
    "\"*.example.com\", \".example.com\" or \"www.example.*\""

char *
ngx_http_tidal_access_allow_host(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_tidal_loc_conf_t *tlcf = conf;

    u_char      *p;
    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (tlcf->allow_hosts != NULL) {
        return "is duplicate";
    }

    tlcf->allow_hosts = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                         sizeof(ngx_str_t));
    if (tlcf->allow_hosts == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (!ngx_http_tidal_access_valid_name(&value[i])) {

            /* a returned text is printed after the directive's name */

            p = ngx_pnalloc(cf->pool,
                            value[i].len + sizeof(NGX_HTTP_TIDAL_HOST_ERR));
            if (p == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_sprintf(p, NGX_HTTP_TIDAL_HOST_ERR "%Z", &value[i]);

            return (char *) p;
        }

        name = ngx_array_push(tlcf->allow_hosts);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
        ngx_strlow(name->data, name->data, name->len);
    }

    return NGX_CONF_OK;
}


/*
 * Letters, digits, '-', '_' and dots between labels; '*' only as a whole
 * first or last label, as ngx_hash_add_key accepts wildcards.
 */

static ngx_uint_t
ngx_http_tidal_access_valid_name(ngx_str_t *name)
{
    u_char  *p, *last, c;

    p = name->data;
    last = p + name->len;

    if (name->len > 2 && p[0] == '*' && p[1] == '.') {
        p += 2;

    } else if (name->len > 1 && p[0] == '.') {
        p++;

    } else if (name->len > 2 && last[-1] == '*' && last[-2] == '.') {
        last -= 2;
    }

    if (p == last || *p == '.' || last[-1] == '.') {
        return 0;
    }

    for ( /* void */ ; p < last; p++) {
        c = *p;

        if (c == '.' && p[-1] == '.') {
            return 0;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
        {
            return 0;
        }
    }

    return 1;
}
