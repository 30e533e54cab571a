/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: MCP Streamable HTTP (2025-11-25) on the tidal_mcp location,
 * beside WebSocket - POST a JSON-RPC message, GET the session's event
 * stream (ngx_http_tidal_sse.c), DELETE the session.  A session lives in
 * the zone, so each request may reach any worker; a message is handled by
 * the same MCP core as a WebSocket's.
 */


#include "ngx_http_tidal.h"


/* nginx 1.22 has no names for these */
#define NGX_HTTP_TIDAL_NOT_ACCEPTABLE      406
#define NGX_HTTP_TIDAL_UPGRADE_REQUIRED    426

/* the codes the MCP SDKs give these transport errors */
#define NGX_HTTP_TIDAL_RPC_SERVER_ERROR    -32000
#define NGX_HTTP_TIDAL_RPC_NO_SESSION      -32001


/* a request refused before MCP: its status and JSON-RPC error */
typedef struct {
    ngx_uint_t                   status;
    int                          code;
    const char                  *message;
} ngx_http_tidal_http_problem_t;


static ngx_int_t ngx_http_tidal_http_post(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);
static void ngx_http_tidal_http_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_tidal_http_message(ngx_http_request_t *r);
static ngx_int_t ngx_http_tidal_http_clock(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, u_char *text, size_t len);
static ngx_int_t ngx_http_tidal_http_send_out(ngx_http_request_t *r,
    tidal_mcp_out_t *out);
static ngx_int_t ngx_http_tidal_http_read_body(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, u_char **text, size_t *len);
static ngx_http_tidal_ws_t *ngx_http_tidal_http_client(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e role);
static json_t *ngx_http_tidal_http_initialize(tidal_mcp_session_t *s,
    json_t *params);
static json_t *ngx_http_tidal_http_resource(tidal_mcp_session_t *s,
    int resource);
static void ngx_http_tidal_http_cleanup(void *data);
static ngx_int_t ngx_http_tidal_http_get(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);
static ngx_int_t ngx_http_tidal_http_delete(ngx_http_request_t *r);
static const ngx_http_tidal_http_problem_t *ngx_http_tidal_http_check(
    ngx_http_request_t *r, ngx_http_tidal_loc_conf_t *tlcf,
    ngx_uint_t initialize, u_char **id, tidal_role_e *role);
static ngx_int_t ngx_http_tidal_http_session_id(ngx_http_request_t *r,
    u_char **id);
static ngx_int_t ngx_http_tidal_http_version(ngx_http_request_t *r);
static ngx_uint_t ngx_http_tidal_http_accepts(ngx_http_request_t *r,
    const char *type, ngx_uint_t wildcards);
static ngx_int_t ngx_http_tidal_http_json(ngx_http_request_t *r,
    ngx_uint_t status, const u_char *data, size_t len);
static ngx_int_t ngx_http_tidal_http_error(ngx_http_request_t *r,
    ngx_uint_t status, int code, const char *message);


static ngx_str_t  ngx_http_tidal_session_key = ngx_string("Mcp-Session-Id");
static ngx_str_t  ngx_http_tidal_upgrade_key = ngx_string("Upgrade");
static ngx_str_t  ngx_http_tidal_websocket = ngx_string("websocket");
static ngx_str_t  ngx_http_tidal_get_help = ngx_string(
    "this MCP endpoint expects a WebSocket upgrade (subprotocol \"mcp\"), "
    "or MCP Streamable HTTP: POST, and GET with Accept: text/event-stream\n");
static ngx_str_t  ngx_http_tidal_allow_key = ngx_string("Allow");
static ngx_str_t  ngx_http_tidal_allow_value =
    ngx_string("GET, POST, DELETE, OPTIONS");


ngx_int_t
ngx_http_tidal_http_handler(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    ngx_int_t  rc;

    /* browsers read the answers of the origins tidal_allow_origin names */

    if (ngx_http_tidal_access_cors(r, tlcf) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_POST) {
        return ngx_http_tidal_http_post(r, tlcf);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    switch (r->method) {

    case NGX_HTTP_GET:
        return ngx_http_tidal_http_get(r, tlcf);

    case NGX_HTTP_DELETE:
        return ngx_http_tidal_http_delete(r);

    default:
        if (ngx_http_tidal_add_header(r, &ngx_http_tidal_allow_key,
                                      &ngx_http_tidal_allow_value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_tidal_http_error(r, NGX_HTTP_NOT_ALLOWED,
                   NGX_HTTP_TIDAL_RPC_SERVER_ERROR,
                   "this MCP endpoint takes POST, GET and DELETE "
                   "(Streamable HTTP) or a WebSocket upgrade");
    }
}


/* -- POST: one JSON-RPC message ------------------------------------------ */

static ngx_int_t
ngx_http_tidal_http_post(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf)
{
    size_t                                n;
    ngx_int_t                             rc;
    ngx_str_t                            *type;
    const ngx_http_tidal_http_problem_t  *problem;

    static const ngx_http_tidal_http_problem_t  problems[] = {
        { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, NGX_HTTP_TIDAL_RPC_SERVER_ERROR,
          "a message is POSTed as Content-Type: application/json" },
        { NGX_HTTP_TIDAL_NOT_ACCEPTABLE, NGX_HTTP_TIDAL_RPC_SERVER_ERROR,
          "the client must accept both application/json and "
          "text/event-stream" },
        { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, TIDAL_MCP_INVALID_REQUEST,
          "the message is larger than tidal_max_message_size" }
    };

    n = sizeof("application/json") - 1;
    type = r->headers_in.content_type ? &r->headers_in.content_type->value
                                      : NULL;

    /* application/json, maybe with parameters: ";charset=utf-8" */

    if (type == NULL
        || type->len < n
        || ngx_strncasecmp(type->data, (u_char *) "application/json", n) != 0
        || (type->len > n && type->data[n] != ';' && type->data[n] != ' '))
    {
        problem = &problems[0];

    } else if (!ngx_http_tidal_http_accepts(r, "application/json", 1)
               || !ngx_http_tidal_http_accepts(r, "text/event-stream", 1))
    {
        problem = &problems[1];

    } else if (r->headers_in.content_length_n
               > (off_t) tlcf->max_message_size)
    {
        problem = &problems[2];

    } else {
        rc = ngx_http_read_client_request_body(r, ngx_http_tidal_http_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_tidal_http_error(r, problem->status, problem->code,
                                     problem->message);
}


static void
ngx_http_tidal_http_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_tidal_http_message(r);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * Checks the message and its session, hands it to the MCP core and sends
 * the answer: 200 with a response, 202 for a notification or a response,
 * or NGX_DONE while a tool's answer is awaited from the helper.
 */

static ngx_int_t
ngx_http_tidal_http_message(ngx_http_request_t *r)
{
    u_char                               *text, *id;
    size_t                                len;
    json_t                               *msg, *result, *method;
    ngx_str_t                             value;
    ngx_int_t                             rc;
    ngx_uint_t                            initialize;
    json_error_t                          err;
    tidal_role_e                          role;
    tidal_mcp_out_t                       out;
    ngx_http_tidal_ws_t                  *cl;
    ngx_http_tidal_loc_conf_t            *tlcf;
    ngx_http_tidal_main_conf_t           *tmcf;
    const ngx_http_tidal_http_problem_t  *problem;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_tidal_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_tidal_module);

    text = NULL;
    len = 0;

    rc = ngx_http_tidal_http_read_body(r, tlcf, &text, &len);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_tidal_http_error(r, rc, TIDAL_MCP_INVALID_REQUEST,
                   "the message is larger than tidal_max_message_size");
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_tidal_http_error(r, NGX_HTTP_BAD_REQUEST,
                   TIDAL_MCP_PARSE_ERROR, "Parse error: an empty body");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    msg = json_loadb((char *) text, len, JSON_DECODE_ANY, &err);

    if (msg == NULL) {
        return ngx_http_tidal_http_error(r, NGX_HTTP_BAD_REQUEST,
                   TIDAL_MCP_PARSE_ERROR, "Parse error: not JSON");
    }

    if (json_is_array(msg)) {
        json_decref(msg);
        return ngx_http_tidal_http_error(r, NGX_HTTP_BAD_REQUEST,
                   TIDAL_MCP_INVALID_REQUEST,
                   "Invalid Request: batches are not part of MCP "
                   "2025-11-25; send one message per POST");
    }

    if (!json_is_object(msg)) {
        json_decref(msg);
        return ngx_http_tidal_http_error(r, NGX_HTTP_BAD_REQUEST,
                   TIDAL_MCP_INVALID_REQUEST,
                   "Invalid Request: not a JSON-RPC message");
    }

    method = json_object_get(msg, "method");
    initialize = json_is_string(method)
                 && ngx_strcmp(json_string_value(method), "initialize") == 0;

    if (json_is_string(method)
        && ngx_strcmp(json_string_value(method), TIDAL_MCP_CLOCK_METHOD) == 0)
    {
        json_decref(msg);
        return ngx_http_tidal_http_clock(r, tlcf, text, len);
    }

    json_decref(msg);

    problem = ngx_http_tidal_http_check(r, tlcf, initialize, &id, &role);

    if (problem) {
        return ngx_http_tidal_http_error(r, problem->status, problem->code,
                                         problem->message);
    }

    cl = ngx_http_tidal_http_client(r, tlcf, role);
    if (cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!initialize) {
        if (ngx_http_tidal_session_load(tmcf, id, &cl->mcp) != NGX_OK) {
            return ngx_http_tidal_http_error(r, NGX_HTTP_NOT_FOUND,
                       NGX_HTTP_TIDAL_RPC_NO_SESSION,
                       "Session not found: it ended or expired; "
                       "initialize again");
        }

        ngx_memcpy(cl->session, id, NGX_HTTP_TIDAL_SESSION_ID_LEN);
        cl->has_session = 1;
    }

    if (tidal_mcp_handle(&cl->mcp, (char *) text, len, &out) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (initialize && cl->mcp.initialized && !cl->has_session) {
        tidal_mcp_out_free(&out);
        return ngx_http_tidal_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                   NGX_HTTP_TIDAL_RPC_SERVER_ERROR,
                   "no room for another session; try again later");
    }

    if (cl->has_session) {
        ngx_http_tidal_session_store(tmcf, cl->session, &cl->mcp,
                                     initialize ? cl->next_seq : 0);
    }

    if (out.action == TIDAL_MCP_CALL) {

        rc = ngx_http_tidal_tool_call(cl, out.tool, out.args, &out.checked,
                                      out.id, &result);

        if (rc == NGX_DONE) {
            tidal_mcp_out_free(&out);

            /* the helper answers later, in an event stream or as JSON */

            if (ngx_http_tidal_http_accepts(r, "text/event-stream", 0)) {
                rc = ngx_http_tidal_sse_answer_start(r, cl);

                if (rc == NGX_ERROR) {
                    ngx_http_tidal_helper_forget(cl);
                    return NGX_ERROR;
                }

                if (rc == NGX_OK) {
                    return NGX_DONE;
                }
            }

            cl->kind = NGX_HTTP_TIDAL_POST;
            r->read_event_handler = ngx_http_test_reading;

            return NGX_DONE;
        }

        if (rc != NGX_OK) {
            tidal_mcp_out_free(&out);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        out.reply = tidal_mcp_tool_reply(out.id, result, &out.reply_len);
        if (out.reply == NULL) {
            tidal_mcp_out_free(&out);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (out.reply != NULL && initialize && cl->has_session) {
        value.len = NGX_HTTP_TIDAL_SESSION_ID_LEN;
        value.data = cl->session;

        if (ngx_http_tidal_add_header(r, &ngx_http_tidal_session_key, &value)
            != NGX_OK)
        {
            tidal_mcp_out_free(&out);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_tidal_http_send_out(r, &out);
}


/*
 * What the MCP core made of a message: its reply as JSON, or 202 for a
 * notification or a response, which have none; out is released.
 */

static ngx_int_t
ngx_http_tidal_http_send_out(ngx_http_request_t *r, tidal_mcp_out_t *out)
{
    ngx_int_t  rc;

    if (out->reply == NULL) {
        tidal_mcp_out_free(out);
        r->header_only = 1;
        return ngx_http_tidal_http_json(r, NGX_HTTP_ACCEPTED, NULL, 0);
    }

    rc = ngx_http_tidal_http_json(r, NGX_HTTP_OK, (u_char *) out->reply,
                                  out->reply_len);

    tidal_mcp_out_free(out);

    return rc;
}


/*
 * tidal/clock needs no session, so a page can set its clock before it
 * joins: a role (any), nothing else; a session id sent is not looked at.
 */

static ngx_int_t
ngx_http_tidal_http_clock(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, u_char *text, size_t len)
{
    ngx_int_t             rc;
    tidal_role_e          role;
    tidal_mcp_out_t       out;
    tidal_mcp_session_t   mcp;

    rc = ngx_http_tidal_request_role(r, tlcf, &role);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_tidal_http_error(r, NGX_HTTP_FORBIDDEN,
                   NGX_HTTP_TIDAL_RPC_SERVER_ERROR,
                   "no role for this client; see tidal_role");
    }

    tidal_mcp_session_init(&mcp, &ngx_http_tidal_mcp_server, role);
    mcp.clock = ngx_http_tidal_clock;

    if (tidal_mcp_handle(&mcp, (char *) text, len, &out) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_tidal_http_send_out(r, &out);
}


/*
 * The body, whole, as one text from the request's pool: in memory, or in
 * the temporary file nginx wrote a large one to.  NGX_DECLINED: empty;
 * NGX_HTTP_REQUEST_ENTITY_TOO_LARGE; NGX_ERROR.
 */

static ngx_int_t
ngx_http_tidal_http_read_body(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, u_char **text, size_t *len)
{
    u_char       *p;
    size_t        size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_DECLINED;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        size += b->in_file ? (size_t) (b->file_last - b->file_pos)
                           : (size_t) (b->last - b->pos);
    }

    if (size > tlcf->max_message_size) {
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    p = ngx_pnalloc(r->pool, size + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *text = p;
    *len = size;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p += n;
    }

    *p = '\0';

    return NGX_OK;
}


/* a POST's client: its request's, for as long as the request lives */

static ngx_http_tidal_ws_t *
ngx_http_tidal_http_client(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e role)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_tidal_ws_t  *cl;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_tidal_ws_t));
    if (cln == NULL) {
        return NULL;
    }

    cl = cln->data;

    if (ngx_http_tidal_ws_init(cl, r, tlcf, role, r->pool) != NGX_OK) {
        ngx_memzero(cl, sizeof(ngx_http_tidal_ws_t));
        return NULL;
    }

    cln->handler = ngx_http_tidal_http_cleanup;

    cl->request = r;
    cl->kind = NGX_HTTP_TIDAL_POST;

    cl->mcp.initialize_hook = ngx_http_tidal_http_initialize;
    cl->mcp.resource_hook = ngx_http_tidal_http_resource;
    cl->mcp.data = cl;

    return cl;
}


/*
 * initialize over HTTP: a new session in the zone, named by the
 * Mcp-Session-Id header; its first event stream starts after the events
 * published so far.
 */

static json_t *
ngx_http_tidal_http_initialize(tidal_mcp_session_t *s, json_t *params)
{
    ngx_http_tidal_ws_t *cl = s->data;

    cl->next_seq = ngx_http_tidal_fanout_position();

    if (ngx_http_tidal_session_create(cl->main_conf, cl->session,
                                      ngx_http_tidal_who(cl), s->role,
                                      cl->connection->log)
        == NGX_OK)
    {
        cl->has_session = 1;
    }

    return json_pack("{s:s#, s:I, s:b, s:s}",
                     TIDAL_META_SESSION, cl->session,
                     (int) (cl->has_session ? NGX_HTTP_TIDAL_SESSION_ID_LEN
                                            : 0),
                     TIDAL_META_SEQ, (json_int_t) cl->next_seq - 1,
                     TIDAL_META_RESUMED, 0,
                     TIDAL_META_ROLE, tidal_mcp_role_name(s->role));
}


static json_t *
ngx_http_tidal_http_resource(tidal_mcp_session_t *s, int resource)
{
    ngx_http_tidal_ws_t *cl = s->data;

    return ngx_http_tidal_state_resource(cl->main_conf, resource);
}


/* a tool's answer from the helper, for a POST that waits for it */

void
ngx_http_tidal_http_answer(ngx_http_tidal_ws_t *cl, const u_char *data,
    size_t len)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = cl->request;
    c = r->connection;

    rc = ngx_http_tidal_http_json(r, NGX_HTTP_OK, data, len);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the request ends: answers still awaited go nowhere */

static void
ngx_http_tidal_http_cleanup(void *data)
{
    ngx_http_tidal_ws_t  *cl = data;

    if (cl->slot) {
        /* an answer's event stream, or its start */
        ngx_http_tidal_ws_cleanup(cl);
        return;
    }

    ngx_http_tidal_helper_forget(cl);

    if (cl->has_session) {
        ngx_http_tidal_session_release(cl->main_conf, cl->session);
        cl->has_session = 0;
    }
}


/* -- GET: the session's event stream ------------------------------------- */

static ngx_int_t
ngx_http_tidal_http_get(ngx_http_request_t *r, ngx_http_tidal_loc_conf_t *tlcf)
{
    u_char                               *id, *p, *last;
    uint64_t                              from;
    ngx_int_t                             rc;
    tidal_role_e                          role;
    ngx_table_elt_t                      *h;
    const ngx_http_tidal_http_problem_t  *problem;

    if (!ngx_http_tidal_http_accepts(r, "text/event-stream", 0)) {

        /* a browser or curl, most likely: say what the endpoint takes */

        if (ngx_http_tidal_add_header(r, &ngx_http_tidal_upgrade_key,
                                      &ngx_http_tidal_websocket)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");

        return ngx_http_tidal_reply(r, NGX_HTTP_TIDAL_UPGRADE_REQUIRED,
                   "text/plain", ngx_http_tidal_get_help.data,
                   ngx_http_tidal_get_help.len);
    }

    problem = ngx_http_tidal_http_check(r, tlcf, 0, &id, &role);

    if (problem) {
        return ngx_http_tidal_http_error(r, problem->status, problem->code,
                                         problem->message);
    }

    /* Last-Event-ID: the last seq the client has; it gets what follows */

    from = 0;
    h = ngx_http_tidal_find_header(r, "Last-Event-ID", 13);

    if (h) {
        p = h->value.data;
        last = p + h->value.len;

        if (p == last || last - p > (ssize_t) NGX_INT64_LEN - 1) {
            goto invalid;
        }

        for ( /* void */ ; p < last; p++) {
            if (*p < '0' || *p > '9') {
                goto invalid;
            }

            from = from * 10 + (*p - '0');
        }

        from++;
    }

    if (ngx_exiting || ngx_terminate) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    rc = ngx_http_tidal_sse_start(r, tlcf, role, id, from);

    if (rc == NGX_HTTP_NOT_FOUND) {
        return ngx_http_tidal_http_error(r, NGX_HTTP_NOT_FOUND,
                   NGX_HTTP_TIDAL_RPC_NO_SESSION,
                   "Session not found: it ended or expired; "
                   "initialize again");
    }

    return rc;

invalid:

    return ngx_http_tidal_http_error(r, NGX_HTTP_BAD_REQUEST,
               TIDAL_MCP_INVALID_REQUEST,
               "Bad Request: Last-Event-ID is not an event id of this "
               "server");
}


/* -- DELETE: the client ends its session --------------------------------- */

static ngx_int_t
ngx_http_tidal_http_delete(ngx_http_request_t *r)
{
    u_char                      *id;
    ngx_int_t                    rc;
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_tidal_module);

    rc = ngx_http_tidal_http_session_id(r, &id);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (id == NULL) {
        return ngx_http_tidal_http_error(r, NGX_HTTP_BAD_REQUEST,
                   TIDAL_MCP_INVALID_REQUEST,
                   "Bad Request: Mcp-Session-Id is required");
    }

    if (ngx_http_tidal_session_delete(tmcf, id) != NGX_OK) {
        return ngx_http_tidal_http_error(r, NGX_HTTP_NOT_FOUND,
                   NGX_HTTP_TIDAL_RPC_NO_SESSION, "Session not found");
    }

    /* its streams on every worker end at the next event */

    ngx_http_tidal_fanout_published(tmcf);

    r->header_only = 1;

    return ngx_http_tidal_http_json(r, NGX_HTTP_NO_CONTENT, NULL, 0);
}


/* -- headers -------------------------------------------------------------- */

/*
 * What every message and stream must bring: a session id (none before
 * initialize), a protocol version this server speaks and a role.  NULL,
 * with *id and *role, or the problem to answer.
 */

static const ngx_http_tidal_http_problem_t *
ngx_http_tidal_http_check(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, ngx_uint_t initialize, u_char **id,
    tidal_role_e *role)
{
    ngx_int_t  rc;

    static const ngx_http_tidal_http_problem_t  problems[] = {
        { NGX_HTTP_INTERNAL_SERVER_ERROR, TIDAL_MCP_INTERNAL_ERROR,
          "Internal error" },
        { NGX_HTTP_BAD_REQUEST, TIDAL_MCP_INVALID_REQUEST,
          "initialize starts a new session: send it without "
          "Mcp-Session-Id" },
        { NGX_HTTP_BAD_REQUEST, TIDAL_MCP_INVALID_REQUEST,
          "Bad Request: Mcp-Session-Id is not a session id" },
        { NGX_HTTP_BAD_REQUEST, TIDAL_MCP_INVALID_REQUEST,
          "Bad Request: Mcp-Session-Id is required after initialize" },
        { NGX_HTTP_BAD_REQUEST, TIDAL_MCP_INVALID_REQUEST,
          "Bad Request: unsupported MCP-Protocol-Version (this server "
          "speaks " TIDAL_MCP_LATEST_VERSION ", 2025-06-18 and "
          "2025-03-26)" },
        { NGX_HTTP_FORBIDDEN, NGX_HTTP_TIDAL_RPC_SERVER_ERROR,
          "no role for this client; see tidal_role" }
    };

    rc = ngx_http_tidal_http_session_id(r, id);

    if (rc == NGX_ERROR) {
        return &problems[0];
    }

    if (initialize && *id != NULL) {
        return &problems[1];
    }

    if (!initialize && *id == NULL) {
        return &problems[rc == NGX_DECLINED ? 2 : 3];
    }

    if (!initialize && ngx_http_tidal_http_version(r) != NGX_OK) {
        return &problems[4];
    }

    rc = ngx_http_tidal_request_role(r, tlcf, role);

    if (rc == NGX_ERROR) {
        return &problems[0];
    }

    if (rc != NGX_OK) {
        return &problems[5];
    }

    return NULL;
}


/*
 * The session the request names: NGX_OK with *id, or with *id NULL when
 * there is no Mcp-Session-Id; NGX_DECLINED (and *id NULL) for a value
 * that cannot be one of ours.
 */

static ngx_int_t
ngx_http_tidal_http_session_id(ngx_http_request_t *r, u_char **id)
{
    u_char           *p;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    *id = NULL;

    h = ngx_http_tidal_find_header(r, "Mcp-Session-Id", 14);

    if (h == NULL) {
        return NGX_OK;
    }

    if (h->value.len != NGX_HTTP_TIDAL_SESSION_ID_LEN) {
        return NGX_DECLINED;
    }

    p = h->value.data;

    for (i = 0; i < NGX_HTTP_TIDAL_SESSION_ID_LEN; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return NGX_DECLINED;
        }
    }

    *id = p;

    return NGX_OK;
}


/*
 * MCP-Protocol-Version, which a client sends after initialize: one this
 * server speaks (NGX_OK), or another (NGX_DECLINED: the caller answers
 * 400).  None: 2025-03-26, as the specification says.
 */

static ngx_int_t
ngx_http_tidal_http_version(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_http_tidal_find_header(r, "MCP-Protocol-Version", 20);

    if (h == NULL
        || tidal_mcp_version((char *) h->value.data, h->value.len) != NULL)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * Whether Accept takes a media type (or no Accept, which takes any):
 * the type itself or, with wildcards, its "type/" followed by "*", or
 * "*" "/" "*"; unless its q is 0.
 */

static ngx_uint_t
ngx_http_tidal_http_accepts(ngx_http_request_t *r, const char *type,
    ngx_uint_t wildcards)
{
    u_char           *p, *last, *start, *end, *q;
    size_t            len, major;
    ngx_table_elt_t  *h;

    h = ngx_http_tidal_find_header(r, "Accept", 6);

    if (h == NULL) {
        return wildcards;
    }

    len = ngx_strlen(type);
    major = (u_char *) ngx_strchr(type, '/') - (u_char *) type + 1;

    p = h->value.data;
    last = p + h->value.len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        start = p;

        while (p < last && *p != ',' && *p != ';') {
            p++;
        }

        end = p;

        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        /* its parameters: only q=0 (and q=0.0...) refuses */

        q = NULL;

        while (p < last && *p != ',') {
            if (*p == 'q' && p + 2 <= last && p[1] == '='
                && p[-1] != '-')
            {
                q = p + 2;
            }

            p++;
        }

        if (q && q < last && *q == '0') {
            for (q++; q < last && (*q == '.' || *q == '0'); q++) {
                /* void */
            }

            if (q == last || *q == ',' || *q == ' ' || *q == ';') {
                continue;
            }
        }

        if ((size_t) (end - start) == len
            && ngx_strncasecmp(start, (u_char *) type, len) == 0)
        {
            return 1;
        }

        if (wildcards
            && (((size_t) (end - start) == major + 1
                && ngx_strncasecmp(start, (u_char *) type, major) == 0
                && start[major] == '*')
                || (end - start == 3 && ngx_strncmp(start, "*/*", 3) == 0)))
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_tidal_http_json(ngx_http_request_t *r, ngx_uint_t status,
    const u_char *data, size_t len)
{
    if (r->header_only) {
        r->headers_out.status = status;
        r->headers_out.content_length_n = 0;
        return ngx_http_send_header(r);
    }

    return ngx_http_tidal_reply(r, status, "application/json", data, len);
}


/* an HTTP error with a JSON-RPC error body that answers no request */

static ngx_int_t
ngx_http_tidal_http_error(ngx_http_request_t *r, ngx_uint_t status, int code,
    const char *message)
{
    char       *text;
    size_t      len;
    ngx_int_t   rc;

    text = tidal_mcp_error_reply(NULL, code, message, &len);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_tidal_reply(r, status, "application/json", (u_char *) text,
                              len);
    free(text);

    return rc;
}
