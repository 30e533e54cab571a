/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: the MCP tools (their table is src/core/tidal_tools.c): a
 * worker answers the rows it may run itself: state and history from the
 * zone's room, as tidal-helper --stdio does from its own
 * (src/core/tidal_room.c), chat, and who is in the room (the zone's
 * sessions); the others go to the GHCi helper (ngx_http_tidal_helper.c).
 */


#include "ngx_http_tidal.h"
#include "tidal_room.h"
#include "tidal_tools.h"


static json_t *ngx_http_tidal_tool_say(ngx_http_tidal_ws_t *ws,
    const tidal_tool_args_t *a);
static json_t *ngx_http_tidal_tool_get_history(ngx_http_tidal_ws_t *ws,
    const tidal_tool_args_t *a);
static json_t *ngx_http_tidal_tool_room(ngx_http_tidal_ws_t *ws);


/* every tool of the table: the worker's own, and the helper's through it */

const tidal_mcp_server_t  ngx_http_tidal_mcp_server = {
    "ngx_tidal",
    NGX_TIDAL_VERSION,
    tidal_tools,
    TIDAL_TOOLS_N,
    TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER,
    0
};

const tidal_mcp_server_t  ngx_http_tidal_mcp_server_raw = {
    "ngx_tidal",
    NGX_TIDAL_VERSION,
    tidal_tools,
    TIDAL_TOOLS_N,
    TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER,
    1
};


/*
 * Runs a tool the MCP core has already checked against the role and its
 * row's argument checks (a holds what they read): *result is a
 * CallToolResult and NGX_OK, or NGX_DONE when the call went to the
 * helper, which answers later.  NGX_ERROR only when memory ran out.
 */

ngx_int_t
ngx_http_tidal_tool_call(ngx_http_tidal_ws_t *ws, const tidal_tool_t *tool,
    json_t *args, const tidal_tool_args_t *a, json_t *id, json_t **result)
{
    if (!(tool->where & TIDAL_TOOL_WORKER)) {
        return ngx_http_tidal_helper_call(ws, tool, args, id,
                                          ngx_http_tidal_who(ws),
                                          result);
    }

    switch (tool->op) {

    case TIDAL_TOOL_OP_STATE:

        /* the helper adds how Tidal's scheduler is doing, if it is up */

        if (ngx_http_tidal_helper_ready()) {
            return ngx_http_tidal_helper_call(ws, tool, args, id,
                                              ngx_http_tidal_who(ws),
                                              result);
        }

        *result = ngx_http_tidal_tool_state(ws->main_conf, NULL);
        break;

    case TIDAL_TOOL_OP_HISTORY:
        *result = ngx_http_tidal_tool_get_history(ws, a);
        break;

    case TIDAL_TOOL_OP_SAY:
        *result = ngx_http_tidal_tool_say(ws, a);
        break;

    case TIDAL_TOOL_OP_WHO:
        *result = ngx_http_tidal_tool_room(ws);
        break;

    default:
        *result = tidal_tools_result(1, "This tool is not available here.",
                                     NULL);
    }

    return *result ? NGX_OK : NGX_ERROR;
}


/*
 * A display name: tidal_name's value, or the client's own name; the
 * "who" of chat, history and the room's members.
 */

const char *
ngx_http_tidal_who(ngx_http_tidal_ws_t *ws)
{
    if (ws->name.len) {
        return (const char *) ws->name.data;
    }

    return ws->mcp.client_name[0] ? ws->mcp.client_name : "anonymous";
}


static json_t *
ngx_http_tidal_tool_say(ngx_http_tidal_ws_t *ws, const tidal_tool_args_t *a)
{
    json_t     *fields;
    uint64_t    seq;
    ngx_int_t   rc;

    fields = json_pack("{s:s, s:s%}", "who", ngx_http_tidal_who(ws),
                       "text", a->text, a->len);
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

    ngx_http_tidal_fanout_published(ws->main_conf);

    return tidal_tools_result(0, "Sent.",
                              json_pack("{s:I}", "seq", (json_int_t) seq));
}


/*
 * tidal_who: the room's members, copied from the zone under its lock,
 * then made into the answer: one line each in the text.
 */

static json_t *
ngx_http_tidal_tool_room(ngx_http_tidal_ws_t *ws)
{
    u_char                   *p, *last;
    json_t                   *list, *member, *structured;
    ngx_uint_t                i, n, count;
    ngx_http_tidal_member_t  *m;
    ngx_http_tidal_member_t   members[NGX_HTTP_TIDAL_MEMBERS_MAX];
    u_char                    text[NGX_HTTP_TIDAL_MEMBERS_MAX
                                   * (NGX_HTTP_TIDAL_WHO_LEN + 32) + 128];

    count = ngx_http_tidal_session_members(ws->main_conf, members,
                                           NGX_HTTP_TIDAL_MEMBERS_MAX);
    n = ngx_min(count, NGX_HTTP_TIDAL_MEMBERS_MAX);

    list = json_array();
    if (list == NULL) {
        return NULL;
    }

    p = text;
    last = text + sizeof(text) - 1;

    if (n < count) {
        p = ngx_slprintf(p, last, "%ui in the room, the first %ui listed:",
                         count, n);

    } else {
        p = ngx_slprintf(p, last, "%ui in the room:", count);
    }

    for (i = 0; i < n; i++) {
        m = &members[i];

        member = json_pack("{s:s, s:s, s:b}", "who", m->who,
                           "role", tidal_mcp_role_name(m->role),
                           "connected", (int) m->connected);

        if (json_array_append_new(list, member) != 0) {
            json_decref(list);
            return NULL;
        }

        p = ngx_slprintf(p, last, "\n%s (%s, %s)", m->who,
                         tidal_mcp_role_name(m->role),
                         m->connected ? "connected" : "away");
    }

    *p = '\0';

    /* "o" takes list, also when it fails */
    structured = json_pack("{s:o, s:I}", "members", list,
                           "count", (json_int_t) count);
    if (structured == NULL) {
        return NULL;
    }

    return tidal_tools_result(0, (const char *) text, structured);
}


/*
 * The room's state from the zone; scheduler (borrowed, may be NULL) is
 * what the helper says of Tidal's scheduler.
 */

json_t *
ngx_http_tidal_tool_state(ngx_http_tidal_main_conf_t *tmcf, json_t *scheduler)
{
    u_char         ghci[512];
    json_t        *result;
    tidal_room_t   room;

    if (ngx_http_tidal_state_room(tmcf, &room, 0) != NGX_OK) {
        return NULL;
    }

    ngx_http_tidal_helper_status(tmcf, ghci, sizeof(ghci));

    result = tidal_room_get_state(&room, (char *) ghci, scheduler);

    tidal_room_free(&room);

    return result;
}


static json_t *
ngx_http_tidal_tool_get_history(ngx_http_tidal_ws_t *ws,
    const tidal_tool_args_t *a)
{
    json_t        *result;
    tidal_room_t   room;

    if (ngx_http_tidal_state_room(ws->main_conf, &room, a->limit) != NGX_OK) {
        return NULL;
    }

    result = tidal_room_get_history(&room, a->limit);

    tidal_room_free(&room);

    return result;
}
