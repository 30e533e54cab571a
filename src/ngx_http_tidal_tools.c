/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: the MCP tools (their table is src/tidal_tools.c): a worker
 * answers state, history and chat itself from the zone; the music tools
 * go to the GHCi helper (ngx_http_tidal_helper.c).
 */


#include "ngx_http_tidal.h"
#include "tidal_state.h"
#include "tidal_tools.h"


#define NGX_HTTP_TIDAL_SAY_MAX  1000

static const char *ngx_http_tidal_tool_who(ngx_http_tidal_ws_t *ws);
static json_t *ngx_http_tidal_tool_say(ngx_http_tidal_ws_t *ws,
    json_t *args);
static json_t *ngx_http_tidal_tool_get_history(ngx_http_tidal_ws_t *ws,
    json_t *args);


/*
 * the tool table is shared with tidal-helper: src/tidal_tools.c; its last
 * tool, tidal_eval_raw, only with tidal_allow_raw on
 */

const tidal_mcp_server_t  ngx_http_tidal_mcp_server = {
    "ngx_tidal",
    NGX_TIDAL_VERSION,
    tidal_tools,
    TIDAL_TOOLS_N - 1
};

const tidal_mcp_server_t  ngx_http_tidal_mcp_server_raw = {
    "ngx_tidal",
    NGX_TIDAL_VERSION,
    tidal_tools,
    TIDAL_TOOLS_N
};


/*
 * Runs a tool the MCP core has already checked against the role: *result
 * is a CallToolResult and NGX_OK, or NGX_DONE when the music tool went to
 * the helper, which answers later.  NGX_ERROR only when memory ran out.
 */

ngx_int_t
ngx_http_tidal_tool_call(ngx_http_tidal_ws_t *ws, const tidal_mcp_tool_t *tool,
    json_t *args, json_t *id, json_t **result)
{
    if (ngx_strcmp(tool->name, "tidal_get_state") == 0) {

        /* the helper adds how Tidal's scheduler is doing, if it is up */

        if (ngx_http_tidal_helper_ready()) {
            return ngx_http_tidal_helper_call(ws, tool, args, id,
                                              ngx_http_tidal_tool_who(ws),
                                              result);
        }

        *result = ngx_http_tidal_tool_state(ws->main_conf, NULL);

    } else if (ngx_strcmp(tool->name, "tidal_get_history") == 0) {
        *result = ngx_http_tidal_tool_get_history(ws, args);

    } else if (ngx_strcmp(tool->name, "tidal_say") == 0) {
        *result = ngx_http_tidal_tool_say(ws, args);

    } else {
        return ngx_http_tidal_helper_call(ws, tool, args, id,
                                          ngx_http_tidal_tool_who(ws),
                                          result);
    }

    return *result ? NGX_OK : NGX_ERROR;
}


/* a display name: tidal_name's value, or the client's own name */

static const char *
ngx_http_tidal_tool_who(ngx_http_tidal_ws_t *ws)
{
    if (ws->name.len) {
        return (const char *) ws->name.data;
    }

    return ws->mcp.client_name[0] ? ws->mcp.client_name : "anonymous";
}


static json_t *
ngx_http_tidal_tool_say(ngx_http_tidal_ws_t *ws, json_t *args)
{
    json_t     *text, *fields;
    uint64_t    seq;
    ngx_int_t   rc;

    text = json_object_get(args, "text");

    if (!json_is_string(text) || json_string_length(text) == 0
        || json_string_length(text) > NGX_HTTP_TIDAL_SAY_MAX)
    {
        return tidal_tools_result(1, "Invalid argument \"text\": "
                                        "a string of 1 to 1000 characters "
                                        "is required", NULL);
    }

    fields = json_pack("{s:s, s:O}", "who", ngx_http_tidal_tool_who(ws),
                       "text", text);
    if (fields == NULL) {
        return NULL;
    }

    rc = ngx_http_tidal_zone_publish(ws->main_conf, "chat", fields,
                                     ws->connection->log, &seq);
    json_decref(fields);

    if (rc != NGX_OK) {
        return tidal_tools_result(1, "The chat line could not be "
                                        "broadcast", NULL);
    }

    return tidal_tools_result(0, "Sent.",
                                    json_pack("{s:I}", "seq",
                                              (json_int_t) seq));
}


/*
 * The room's state from the zone; scheduler (borrowed, may be NULL) is
 * what the helper says of Tidal's scheduler.
 */

json_t *
ngx_http_tidal_tool_state(ngx_http_tidal_main_conf_t *tmcf, json_t *scheduler)
{
    u_char     ghci[512];
    json_t    *state, *structured;
    uint64_t   seq;

    state = ngx_http_tidal_state_get(tmcf, &seq);
    if (state == NULL) {
        return NULL;
    }

    ngx_http_tidal_helper_status(tmcf, ghci, sizeof(ghci));

    structured = json_pack("{s:O, s:o, s:I, s:s}",
                           "channels", json_object_get(state, "channels"),
                           "tempo", tidal_state_tempo(state),
                           "seq", (json_int_t) seq,
                           "ghci", (char *) ghci);
    json_decref(state);

    if (structured && scheduler
        && json_object_set(structured, "scheduler", scheduler) != 0)
    {
        json_decref(structured);
        return NULL;
    }

    return tidal_tools_result_structured(structured);
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
            return tidal_tools_result(1, "Invalid argument \"limit\": "
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

    return tidal_tools_result_structured(json_pack("{s:o*}", "history",
                                                    tail));
}
