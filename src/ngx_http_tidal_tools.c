/*
 * ngx_tidal: the MCP tools a worker answers itself (their table is
 * src/tidal_tools.c).  The music tools need the GHCi helper and say so
 * until it exists.
 */


#include "ngx_http_tidal.h"
#include "tidal_state.h"
#include "tidal_tools.h"


#define NGX_HTTP_TIDAL_SAY_MAX  1000

static json_t *ngx_http_tidal_tool_text(ngx_uint_t error, const char *text,
    json_t *structured);
static json_t *ngx_http_tidal_tool_structured(json_t *structured);
static json_t *ngx_http_tidal_tool_say(ngx_http_tidal_ws_t *ws,
    json_t *args);
static json_t *ngx_http_tidal_tool_get_state(ngx_http_tidal_ws_t *ws);
static json_t *ngx_http_tidal_tool_get_history(ngx_http_tidal_ws_t *ws,
    json_t *args);


/* the tool table is shared with tidal-helper --stdio: src/tidal_tools.c */

const tidal_mcp_server_t  ngx_http_tidal_mcp_server = {
    "ngx_tidal",
    NGX_TIDAL_VERSION,
    tidal_tools,
    TIDAL_TOOLS_N
};


/*
 * Runs a tool the MCP core has already checked against the role; *result
 * is a CallToolResult.  NGX_ERROR only when memory ran out.
 */

ngx_int_t
ngx_http_tidal_tool_call(ngx_http_tidal_ws_t *ws, const tidal_mcp_tool_t *tool,
    json_t *args, json_t **result)
{
    if (ngx_strcmp(tool->name, "tidal_get_state") == 0) {
        *result = ngx_http_tidal_tool_get_state(ws);

    } else if (ngx_strcmp(tool->name, "tidal_get_history") == 0) {
        *result = ngx_http_tidal_tool_get_history(ws, args);

    } else if (ngx_strcmp(tool->name, "tidal_say") == 0) {
        *result = ngx_http_tidal_tool_say(ws, args);

    } else {
        *result = ngx_http_tidal_tool_text(1,
                      "Tidal is not running: this server has no GHCi "
                      "helper yet, so nothing was played or changed.",
                      NULL);
    }

    return *result ? NGX_OK : NGX_ERROR;
}


static json_t *
ngx_http_tidal_tool_say(ngx_http_tidal_ws_t *ws, json_t *args)
{
    json_t      *text, *fields;
    uint64_t     seq;
    ngx_int_t    rc;
    const char  *who;

    text = json_object_get(args, "text");

    if (!json_is_string(text) || json_string_length(text) == 0
        || json_string_length(text) > NGX_HTTP_TIDAL_SAY_MAX)
    {
        return ngx_http_tidal_tool_text(1, "Invalid argument \"text\": "
                                        "a string of 1 to 1000 characters "
                                        "is required", NULL);
    }

    who = ws->name.len ? NULL : ws->mcp.client_name;

    fields = json_pack("{s:s#, s:O}",
                       "who", who ? who : (char *) ws->name.data,
                       (int) (who ? ngx_strlen(who) : ws->name.len),
                       "text", text);
    if (fields == NULL) {
        return NULL;
    }

    rc = ngx_http_tidal_zone_publish(ws->main_conf, "chat", fields,
                                     ws->connection->log, &seq);
    json_decref(fields);

    if (rc != NGX_OK) {
        return ngx_http_tidal_tool_text(1, "The chat line could not be "
                                        "broadcast", NULL);
    }

    return ngx_http_tidal_tool_text(0, "Sent.",
                                    json_pack("{s:I}", "seq",
                                              (json_int_t) seq));
}


static json_t *
ngx_http_tidal_tool_get_state(ngx_http_tidal_ws_t *ws)
{
    json_t    *state, *structured;
    uint64_t   seq;

    state = ngx_http_tidal_state_get(ws->main_conf, &seq);
    if (state == NULL) {
        return NULL;
    }

    structured = json_pack("{s:O, s:o, s:I, s:s}",
                           "channels", json_object_get(state, "channels"),
                           "tempo", tidal_state_tempo(state),
                           "seq", (json_int_t) seq,
                           "ghci", "not running");
    json_decref(state);

    return ngx_http_tidal_tool_structured(structured);
}


static json_t *
ngx_http_tidal_tool_get_history(ngx_http_tidal_ws_t *ws, json_t *args)
{
    json_t      *limit, *state, *tail;
    uint64_t     seq;
    json_int_t   max;

    limit = json_object_get(args, "limit");
    max = 50;

    if (limit != NULL) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 1
            || json_integer_value(limit) > 1000)
        {
            return ngx_http_tidal_tool_text(1, "Invalid argument \"limit\": "
                                            "an integer from 1 to 1000",
                                            NULL);
        }

        max = json_integer_value(limit);
    }

    state = ngx_http_tidal_state_get(ws->main_conf, &seq);
    if (state == NULL) {
        return NULL;
    }

    tail = tidal_state_history(state, (size_t) max);

    json_decref(state);

    return ngx_http_tidal_tool_structured(json_pack("{s:o*}", "history",
                                                    tail));
}


/* a result whose text is the structured content itself (stolen) */

static json_t *
ngx_http_tidal_tool_structured(json_t *structured)
{
    char    *text;
    json_t  *result;

    if (structured == NULL) {
        return NULL;
    }

    text = json_dumps(structured, JSON_COMPACT);
    if (text == NULL) {
        json_decref(structured);
        return NULL;
    }

    result = ngx_http_tidal_tool_text(0, text, structured);
    free(text);

    return result;
}


/* a CallToolResult with one text item; structured is stolen */

static json_t *
ngx_http_tidal_tool_text(ngx_uint_t error, const char *text,
    json_t *structured)
{
    json_t  *result;

    result = json_pack("{s:[{s:s, s:s}], s:b}",
                       "content", "type", "text", "text", text,
                       "isError", (int) error);

    if (result && structured
        && json_object_set_new(result, "structuredContent", structured) != 0)
    {
        json_decref(result);
        return NULL;
    }

    if (result == NULL && structured) {
        json_decref(structured);
    }

    return result;
}
