/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/* MCP core: one JSON-RPC 2.0 message in, at most one reply out. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_mcp.h"
#include "tidal_protocol.h"
#include "tidal_room.h"
#include "tidal_utf8.h"


/* bytes of a client's method or tool name quoted back in an error */
#define TIDAL_MCP_NAME_MAX     64
#define TIDAL_MCP_MESSAGE_MAX  320
/* bytes of a client's resource uri quoted back in an error message */
#define TIDAL_MCP_URI_MAX      128
/* room for any int, so that compilers need not prove a channel's range */
#define TIDAL_MCP_INT_LEN      (sizeof("-2147483648") - 1)
#define TIDAL_MCP_CHANNEL_URI_LEN                                            \
    (sizeof(TIDAL_MCP_CHANNEL_URI) + TIDAL_MCP_INT_LEN)

/* bytes of a name and of a pattern quoted in a room event's log line */
#define TIDAL_MCP_LINE_NAME_MAX     64
#define TIDAL_MCP_LINE_PATTERN_MAX  512
/* and of an error's text, as the helper cuts it */
#define TIDAL_MCP_LINE_ERROR_MAX    4096

/* completion/complete answers at most this many values, as MCP allows */
#define TIDAL_MCP_COMPLETION_MAX    100

#define TIDAL_MCP_PROMPT            "tidal_room_guide"


typedef int (*tidal_mcp_handler_pt)(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);


typedef struct {
    char                  *data;
    size_t                 len;
    size_t                 size;
    unsigned               failed;
} tidal_mcp_buf_t;


typedef struct {
    const char            *name;
    tidal_mcp_handler_pt   handler;
    unsigned               before_init;  /* allowed before initialize */
} tidal_mcp_method_t;


static int tidal_mcp_message(tidal_mcp_session_t *s, json_t *msg,
    tidal_mcp_out_t *out);
static void tidal_mcp_notify(tidal_mcp_session_t *s, json_t *msg,
    json_t *method);
static int tidal_mcp_request(tidal_mcp_session_t *s, const char *method,
    json_t *id, json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_initialize(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_ping(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_clock(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_tools_list(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_tools_call(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_set_level(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_resources_list(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_resource_templates(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_resources_read(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_subscribe(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_unsubscribe(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_subscription(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out, unsigned on);
static int tidal_mcp_resource_param(json_t *id, json_t *params,
    tidal_mcp_out_t *out);
static void tidal_mcp_resource_uri(char *dst, int resource);
static json_t *tidal_mcp_resource_default(int resource);
static int tidal_mcp_prompts_list(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_prompts_get(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static int tidal_mcp_complete(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out);
static char *tidal_mcp_prompt_text(tidal_mcp_session_t *s,
    const char *channel);
static int tidal_mcp_event_line(tidal_mcp_buf_t *line, const char *type,
    json_t *p);
static void tidal_mcp_line_text(tidal_mcp_buf_t *line, json_t *text,
    size_t max, unsigned lines);
static void tidal_mcp_line_printf(tidal_mcp_buf_t *line, const char *fmt,
    ...) __attribute__((format(printf, 2, 3)));
static json_t *tidal_mcp_tool_schema(const tidal_tool_t *tool);
static const tidal_tool_t *tidal_mcp_tool_find(
    const tidal_mcp_server_t *server, const char *name);
static int tidal_mcp_tool_offered(const tidal_mcp_server_t *server,
    const tidal_tool_t *tool);
static int tidal_mcp_tool_refused(tidal_mcp_out_t *out, json_t *id,
    const char *why);
static int tidal_mcp_parse_error(tidal_mcp_out_t *out, json_error_t *err);
static int tidal_mcp_result(tidal_mcp_out_t *out, json_t *id,
    json_t *result);
static int tidal_mcp_error(tidal_mcp_out_t *out, json_t *id, int code,
    const char *fmt, ...);
static char *tidal_mcp_error_response(json_t *id, int code,
    const char *message, json_t *data, size_t *len);
static char *tidal_mcp_response(json_t *id, const char *member,
    json_t *value, size_t *len);
static char *tidal_mcp_dump(json_t *msg, size_t *len);
static int tidal_mcp_buf_append(const char *data, size_t n, void *ctx);
static int tidal_mcp_id_valid(json_t *id);
static int tidal_mcp_nul(const char *msg, size_t len, json_error_t *err,
    tidal_mcp_out_t *out);
static size_t tidal_mcp_copy_text(char *dst, size_t size, const char *src,
    size_t len, unsigned utf8);
static const char *tidal_mcp_name_text(char *dst, size_t size,
    json_t *name);


static const char  *tidal_mcp_versions[] = {
    TIDAL_MCP_LATEST_VERSION,
    "2025-06-18",
    "2025-03-26"
};


static const char  *tidal_mcp_log_levels[] = {
    "debug", "info", "notice", "warning",
    "error", "critical", "alert", "emergency"
};


static const char  *tidal_mcp_roles[] = {
    "listener", "performer", "admin"
};


static const tidal_mcp_method_t  tidal_mcp_methods[] = {
    { "initialize", tidal_mcp_initialize, 1 },
    { "ping", tidal_mcp_ping, 1 },
    { TIDAL_MCP_CLOCK_METHOD, tidal_mcp_clock, 1 },
    { "tools/list", tidal_mcp_tools_list, 0 },
    { "tools/call", tidal_mcp_tools_call, 0 },
    { "logging/setLevel", tidal_mcp_set_level, 0 },
    { "resources/list", tidal_mcp_resources_list, 0 },
    { "resources/templates/list", tidal_mcp_resource_templates, 0 },
    { "resources/read", tidal_mcp_resources_read, 0 },
    { "resources/subscribe", tidal_mcp_subscribe, 0 },
    { "resources/unsubscribe", tidal_mcp_unsubscribe, 0 },
    { "prompts/list", tidal_mcp_prompts_list, 0 },
    { "prompts/get", tidal_mcp_prompts_get, 0 },
    { "completion/complete", tidal_mcp_complete, 0 }
};


/* resources after the channels, from TIDAL_MCP_RESOURCE_STATE on */
static const struct {
    const char  *uri;
    const char  *name;
    const char  *title;
    const char  *description;
} tidal_mcp_room_resources[] = {
    { "tidal://state", "state", "The room",
      "Every channel's pattern (null when silent), whether it is muted or "
      "soloed, the tempo, and the number of the room's last event" },
    { "tidal://history", "history", "History",
      "The room's newest events: evaluations, channel changes, tempo "
      "changes, errors, GHCi restarts" },
    { "tidal://chat", "chat", "Chat",
      "What the room's clients said with tidal_say, newest last" }
};


#define tidal_mcp_nelts(a)  (sizeof(a) / sizeof((a)[0]))


void
tidal_mcp_session_init(tidal_mcp_session_t *s,
    const tidal_mcp_server_t *server, tidal_role_e role)
{
    memset(s, 0, sizeof(tidal_mcp_session_t));

    s->server = server;
    s->role = role;
    s->log_level = TIDAL_MCP_LOG_INFO;
}


int
tidal_mcp_handle(tidal_mcp_session_t *s, const char *msg, size_t len,
    tidal_mcp_out_t *out)
{
    int            rc;
    json_t        *root;
    json_error_t   err;

    memset(out, 0, sizeof(tidal_mcp_out_t));

    if (s->clock) {
        s->received = s->clock();
    }

    if (msg == NULL) {
        msg = "";
        len = 0;
    }

    /*
     * Without JSON_ALLOW_NUL "\u0000" is refused, so every string we
     * hand on is a C string; duplicate keys are refused so that nothing
     * downstream depends on which of two "id"s jansson kept.  Scalars are
     * valid JSON, just not a valid message: JSON_DECODE_ANY lets them
     * reach the -32600 that says so.
     */
    root = json_loadb(msg, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &err);
    if (root == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            return -1;
        }

        if (json_error_code(&err) == json_error_null_character) {
            return tidal_mcp_nul(msg, len, &err, out);
        }

        return tidal_mcp_parse_error(out, &err);
    }

    rc = tidal_mcp_message(s, root, out);

    json_decref(root);

    return rc;
}


/*
 * Valid JSON with "\u0000" in a string: refused, but answered with the
 * request's id, so that a client does not wait for its timeout; a
 * notification stays unanswered.
 */

static int
tidal_mcp_nul(const char *msg, size_t len, json_error_t *err,
    tidal_mcp_out_t *out)
{
    int      rc;
    json_t  *root, *id;

    root = json_loadb(msg, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY
                                | JSON_ALLOW_NUL, NULL);

    id = json_object_get(root, "id");

    if (root == NULL || (id != NULL && !tidal_mcp_id_valid(id))
        || (json_is_string(id)
            && strlen(json_string_value(id)) != json_string_length(id)))
    {
        json_decref(root);
        return tidal_mcp_parse_error(out, err);
    }

    rc = 0;

    if (id != NULL) {
        rc = tidal_mcp_error(out, id, TIDAL_MCP_INVALID_REQUEST,
                             "Invalid Request: strings must not contain "
                             "U+0000");

    } else if (json_object_get(root, "method") == NULL) {
        rc = tidal_mcp_parse_error(out, err);
    }

    json_decref(root);

    return rc;
}


static int
tidal_mcp_message(tidal_mcp_session_t *s, json_t *msg, tidal_mcp_out_t *out)
{
    json_t  *id, *method, *params, *version;

    if (json_is_array(msg)) {
        return tidal_mcp_error(out, NULL, TIDAL_MCP_INVALID_REQUEST,
                               "Invalid Request: batches are not supported");
    }

    if (!json_is_object(msg)) {
        return tidal_mcp_error(out, NULL, TIDAL_MCP_INVALID_REQUEST,
                               "Invalid Request: a message must be "
                               "a JSON object");
    }

    id = json_object_get(msg, "id");
    method = json_object_get(msg, "method");

    if (method != NULL && id == NULL) {
        /* a notification is never answered, not even when malformed */
        tidal_mcp_notify(s, msg, method);
        return 0;
    }

    if (method == NULL && json_object_get(msg, "error") != NULL
        && (json_is_null(id) || tidal_mcp_id_valid(id)))
    {
        /*
         * A client's error response; with "id": null it reports a message
         * of ours it could not parse, and answering that could start an
         * endless exchange of errors.
         */
        return 0;
    }

    if (id != NULL && !tidal_mcp_id_valid(id)) {
        return tidal_mcp_error(out, NULL, TIDAL_MCP_INVALID_REQUEST,
                               "Invalid Request: id must be a string "
                               "or an integer");
    }

    if (method == NULL) {
        if (id != NULL && json_object_get(msg, "result") != NULL) {
            /* a client's answer to a server request: none are sent yet */
            return 0;
        }

        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_REQUEST,
                               "Invalid Request: method is missing");
    }

    version = json_object_get(msg, "jsonrpc");

    if (!json_is_string(version)
        || strcmp(json_string_value(version), "2.0") != 0)
    {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_REQUEST,
                               "Invalid Request: jsonrpc must be \"2.0\"");
    }

    if (!json_is_string(method)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_REQUEST,
                               "Invalid Request: method must be a string");
    }

    params = json_object_get(msg, "params");

    if (params != NULL && !json_is_object(params)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: params must be an object");
    }

    return tidal_mcp_request(s, json_string_value(method), id, params, out);
}


static void
tidal_mcp_notify(tidal_mcp_session_t *s, json_t *msg, json_t *method)
{
    json_t      *version, *params;
    const char  *name;

    version = json_object_get(msg, "jsonrpc");
    params = json_object_get(msg, "params");

    if (!json_is_string(version)
        || strcmp(json_string_value(version), "2.0") != 0
        || !json_is_string(method)
        || (params != NULL && !json_is_object(params)))
    {
        return;
    }

    name = json_string_value(method);

    if (strcmp(name, "notifications/initialized") == 0) {
        if (s->initialized) {
            s->client_ready = 1;
        }

        return;
    }

    /*
     * notifications/cancelled is accepted: tool calls run elsewhere and
     * their late replies are harmless, so there is nothing to stop yet.
     * Every other notification is ignored, as JSON-RPC requires.
     */
}


static int
tidal_mcp_request(tidal_mcp_session_t *s, const char *method, json_t *id,
    json_t *params, tidal_mcp_out_t *out)
{
    size_t                     i;
    char                       name[TIDAL_MCP_NAME_MAX + 4];
    const tidal_mcp_method_t  *m;

    for (i = 0; i < tidal_mcp_nelts(tidal_mcp_methods); i++) {
        m = &tidal_mcp_methods[i];

        if (strcmp(method, m->name) != 0) {
            continue;
        }

        if (!s->initialized && !m->before_init) {
            return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_REQUEST,
                                   "Server not initialized: "
                                   "send initialize first");
        }

        return m->handler(s, id, params, out);
    }

    tidal_mcp_copy_text(name, sizeof(name), method, strlen(method), 1);

    return tidal_mcp_error(out, id, TIDAL_MCP_METHOD_NOT_FOUND,
                           "Method not found: %s", name);
}


static int
tidal_mcp_initialize(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    size_t       i;
    json_t      *requested, *client, *name, *result, *meta, *events, *sound;
    const char  *version, *server_name, *server_version;

    if (s->initialized) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_REQUEST,
                               "Already initialized");
    }

    requested = json_object_get(params, "protocolVersion");

    if (requested == NULL) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: protocolVersion "
                               "is required");
    }

    if (!json_is_string(requested)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: protocolVersion "
                               "must be a string");
    }

    client = json_object_get(params, "clientInfo");
    name = json_object_get(client, "name");

    if (client != NULL && !json_is_object(client)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: clientInfo "
                               "must be an object");
    }

    if (name != NULL && !json_is_string(name)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: clientInfo.name "
                               "must be a string");
    }

    /* the requested revision when we speak it, else our latest */
    version = tidal_mcp_versions[0];

    for (i = 0; i < tidal_mcp_nelts(tidal_mcp_versions); i++) {
        if (strcmp(json_string_value(requested), tidal_mcp_versions[i])
            == 0)
        {
            version = tidal_mcp_versions[i];
            break;
        }
    }

    server_name = "ngx_tidal";
    server_version = "0";

    if (s->server != NULL && s->server->name != NULL) {
        server_name = s->server->name;
    }

    if (s->server != NULL && s->server->version != NULL) {
        server_version = s->server->version;
    }

    result = json_pack("{s:s, s:{s:{s:b}, s:{}, s:{s:b, s:b}, s:{s:b},"
                       " s:{}}, s:{s:s, s:s}, s:s}",
                       "protocolVersion", version,
                       "capabilities",
                           "tools", "listChanged", 0,
                           "logging",
                           "resources", "subscribe", 1, "listChanged", 0,
                           "prompts", "listChanged", 0,
                           "completions",
                       "serverInfo",
                           "name", server_name,
                           "version", server_version,
                       "instructions",
                       "Collaborative TidalCycles live coding: others play "
                       "in this room too.  Call tools/list to see what your "
                       "role may do, and the prompt " TIDAL_MCP_PROMPT
                       " to learn how.  Read tidal://state before you "
                       "play; every change in the room arrives as a "
                       "notifications/message line (see logging/setLevel) "
                       "and as notifications/resources/updated for the "
                       "resources you subscribed to.");
    if (result == NULL) {
        return -1;
    }

    /*
     * An object, as MCP types experimental capabilities; {} will do.  Set
     * before the hook, which may replay events the client is owed.
     */
    events = json_object_get(json_object_get(json_object_get(params,
                                                             "capabilities"),
                                             "experimental"),
                             TIDAL_MCP_EVENTS_CAPABILITY);
    s->tidal_events = json_is_object(events) ? 1 : 0;

    sound = json_object_get(json_object_get(json_object_get(params,
                                                            "capabilities"),
                                            "experimental"),
                            TIDAL_MCP_SOUND_CAPABILITY);
    s->tidal_sound = json_is_object(sound) ? 1 : 0;

    /* the hook names the session in the room by it */
    if (name != NULL) {
        tidal_mcp_copy_text(s->client_name, sizeof(s->client_name),
                            json_string_value(name),
                            json_string_length(name), 1);
    }

    meta = s->initialize_hook ? s->initialize_hook(s, params) : NULL;

    if (json_is_object(meta)
        && json_object_set_new(result, "_meta", meta) != 0)
    {
        json_decref(result);
        return -1;
    }

    if (meta != NULL && !json_is_object(meta)) {
        json_decref(meta);
    }

    if (tidal_mcp_result(out, id, result) != 0) {
        return -1;
    }

    s->initialized = 1;
    s->protocol_version = version;

    return 0;
}


/*
 * The server's time as the request came and as the answer leaves, for a
 * client to work out its clock's offset the way NTP does
 * (docs/collaboration.md); params are ignored.
 */

static int
tidal_mcp_clock(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    json_t  *result;

    (void) params;

    if (s->clock == NULL) {
        return tidal_mcp_error(out, id, TIDAL_MCP_METHOD_NOT_FOUND,
                               "Method not found: " TIDAL_MCP_CLOCK_METHOD);
    }

    result = json_pack("{s:f, s:f}", "receive", s->received,
                       "transmit", s->clock());
    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


static int
tidal_mcp_ping(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    json_t  *result;

    (void) s;
    (void) params;

    result = json_object();
    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


static int
tidal_mcp_tools_list(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    size_t               i;
    json_t              *tools, *item, *result;
    const tidal_tool_t  *tool;

    (void) params;

    tools = json_array();
    if (tools == NULL) {
        return -1;
    }

    for (i = 0; s->server != NULL && i < s->server->ntools; i++) {
        tool = &s->server->tools[i];

        if (!tidal_mcp_tool_offered(s->server, tool)
            || tool->role > s->role)
        {
            continue;
        }

        item = json_pack("{s:s}", "name", tool->name);
        if (item == NULL) {
            goto failed;
        }

        if ((tool->description != NULL
             && json_object_set_new(item, "description",
                                    json_string(tool->description))
                != 0)
            || json_object_set_new(item, "inputSchema",
                                   tidal_mcp_tool_schema(tool))
               != 0)
        {
            json_decref(item);
            goto failed;
        }

        if (json_array_append_new(tools, item) != 0) {
            goto failed;
        }
    }

    result = json_pack("{s:o}", "tools", tools);
    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);

failed:

    json_decref(tools);

    return -1;
}


static int
tidal_mcp_tools_call(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    char                 text[TIDAL_MCP_NAME_MAX + 4], why[256];
    json_t              *name, *args;
    const tidal_tool_t  *tool;

    name = json_object_get(params, "name");

    if (name == NULL) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: name is required");
    }

    if (!json_is_string(name)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: name must be a string");
    }

    args = json_object_get(params, "arguments");

    if (args != NULL && !json_is_object(args)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: arguments "
                               "must be an object");
    }

    tool = tidal_mcp_tool_find(s->server, json_string_value(name));

    if (tool == NULL) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Unknown tool: %s",
                               tidal_mcp_name_text(text, sizeof(text),
                                                   name));
    }

    if (tool->role > s->role) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Tool %s requires role %s",
                               tidal_mcp_name_text(text, sizeof(text),
                                                   name),
                               tidal_mcp_role_name(tool->role));
    }

    /* the same checks, from the table, wherever the call arrives */

    if (tidal_tools_check(tool, args, &out->checked, why, sizeof(why)) != 0) {
        return tidal_mcp_tool_refused(out, id, why);
    }

    if (args != NULL) {
        args = json_incref(args);

    } else {
        args = json_object();
        if (args == NULL) {
            return -1;
        }
    }

    out->action = TIDAL_MCP_CALL;
    out->tool = tool;
    out->args = args;
    out->id = json_incref(id);

    return 0;
}


static int
tidal_mcp_set_level(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    size_t   i, n;
    json_t  *level, *result;

    level = json_object_get(params, "level");
    n = json_is_string(level) ? tidal_mcp_nelts(tidal_mcp_log_levels) : 0;

    for (i = 0; i < n; i++) {
        if (strcmp(json_string_value(level), tidal_mcp_log_levels[i]) == 0) {
            break;
        }
    }

    if (i == n) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: level must be one of "
                               "debug, info, notice, warning, error, "
                               "critical, alert, emergency");
    }

    result = json_object();
    if (result == NULL) {
        return -1;
    }

    if (tidal_mcp_result(out, id, result) != 0) {
        return -1;
    }

    s->log_level = (int) i;

    return 0;
}


static int
tidal_mcp_resources_list(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out)
{
    int      n, r;
    char     uri[TIDAL_MCP_CHANNEL_URI_LEN], name[TIDAL_MCP_INT_LEN + 2],
             title[TIDAL_MCP_INT_LEN + 10], description[128];
    json_t  *resources, *item, *result;

    (void) s;
    (void) params;

    resources = json_array();
    if (resources == NULL) {
        return -1;
    }

    /* fixed entries: a cursor is ignored, one page holds all */
    for (n = 1; n <= TIDAL_MCP_RESOURCES; n++) {
        if (n > TIDAL_MCP_CHANNELS) {
            r = n - TIDAL_MCP_RESOURCE_STATE;
            item = json_pack("{s:s, s:s, s:s, s:s, s:s}",
                             "uri", tidal_mcp_room_resources[r].uri,
                             "name", tidal_mcp_room_resources[r].name,
                             "title", tidal_mcp_room_resources[r].title,
                             "description",
                                 tidal_mcp_room_resources[r].description,
                             "mimeType", "application/json");

            if (item == NULL || json_array_append_new(resources, item) != 0)
            {
                json_decref(resources);
                return -1;
            }

            continue;
        }

        tidal_mcp_resource_uri(uri, n);
        snprintf(name, sizeof(name), "d%d", n);
        snprintf(title, sizeof(title), "Channel d%d", n);
        snprintf(description, sizeof(description),
                 "The pattern playing on d%d (null when silent) and "
                 "whether it is muted or soloed", n);

        item = json_pack("{s:s, s:s, s:s, s:s, s:s}",
                         "uri", uri, "name", name, "title", title,
                         "description", description,
                         "mimeType", "application/json");

        if (item == NULL || json_array_append_new(resources, item) != 0) {
            json_decref(resources);
            return -1;
        }
    }

    result = json_pack("{s:o}", "resources", resources);
    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


static int
tidal_mcp_resource_templates(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out)
{
    json_t  *result;

    (void) s;
    (void) params;

    result = json_pack("{s:[]}", "resourceTemplates");
    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


static int
tidal_mcp_resources_read(tidal_mcp_session_t *s, json_t *id,
    json_t *params, tidal_mcp_out_t *out)
{
    int      resource;
    char    *text, uri[TIDAL_MCP_CHANNEL_URI_LEN];
    json_t  *state, *result;

    resource = tidal_mcp_resource_param(id, params, out);
    if (resource <= 0) {
        return resource;
    }

    if (s->resource_hook != NULL) {
        state = s->resource_hook(s, resource);

    } else {
        state = tidal_mcp_resource_default(resource);
    }

    if (!json_is_object(state)) {
        json_decref(state);

        /* the transport could not say: an answer, not a dropped socket */
        tidal_mcp_resource_uri(uri, resource);

        return tidal_mcp_error(out, id, TIDAL_MCP_INTERNAL_ERROR,
                               "Internal error: %s is unavailable", uri);
    }

    text = tidal_mcp_dump(state, NULL);
    if (text == NULL) {
        return -1;
    }

    result = json_pack("{s:[{s:O, s:s, s:s}]}",
                       "contents",
                           "uri", json_object_get(params, "uri"),
                           "mimeType", "application/json",
                           "text", text);

    free(text);

    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


static int
tidal_mcp_subscribe(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    return tidal_mcp_subscription(s, id, params, out, 1);
}


static int
tidal_mcp_unsubscribe(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    return tidal_mcp_subscription(s, id, params, out, 0);
}


static int
tidal_mcp_subscription(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out, unsigned on)
{
    int       resource;
    json_t   *result;
    uint32_t  bit;

    resource = tidal_mcp_resource_param(id, params, out);
    if (resource <= 0) {
        return resource;
    }

    result = json_object();
    if (result == NULL) {
        return -1;
    }

    if (tidal_mcp_result(out, id, result) != 0) {
        return -1;
    }

    /* only once the answer exists, so a failure changes nothing */
    bit = TIDAL_MCP_RESOURCE_BIT(resource);

    if (on) {
        s->subscriptions |= bit;

    } else {
        s->subscriptions &= ~bit;
    }

    return 0;
}


/*
 * The resource params.uri names, or 0 when the error saying why is in
 * out, or -1 when even that could not be built.
 */
static int
tidal_mcp_resource_param(json_t *id, json_t *params, tidal_mcp_out_t *out)
{
    int          resource;
    char        *reply, text[TIDAL_MCP_URI_MAX + 4],
                 message[TIDAL_MCP_MESSAGE_MAX];
    json_t      *uri, *data;

    uri = json_object_get(params, "uri");

    if (uri == NULL) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: uri is required");
    }

    if (!json_is_string(uri)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: uri must be a string");
    }

    resource = tidal_mcp_resource_from_uri(json_string_value(uri));
    if (resource != 0) {
        return resource;
    }

    /* the message quotes a cleaned, bounded uri; data holds it as sent */
    snprintf(message, sizeof(message), "Resource not found: %s",
             tidal_mcp_name_text(text, sizeof(text), uri));

    data = json_pack("{s:O}", "uri", uri);
    if (data == NULL) {
        return -1;
    }

    reply = tidal_mcp_error_response(id, TIDAL_MCP_RESOURCE_NOT_FOUND,
                                     message, data, &out->reply_len);
    if (reply == NULL) {
        return -1;
    }

    out->reply = reply;
    out->action = TIDAL_MCP_REPLY;

    return 0;
}


int
tidal_mcp_channel_from_uri(const char *uri)
{
    int          channel;
    size_t       n;
    const char  *p;

    n = sizeof(TIDAL_MCP_CHANNEL_URI) - 1;

    if (uri == NULL || strncmp(uri, TIDAL_MCP_CHANNEL_URI, n) != 0) {
        return 0;
    }

    p = uri + n;

    /* not strtol(): no sign, no spaces, no leading zeros, nothing after */
    if (*p < '1' || *p > '9') {
        return 0;
    }

    channel = *p++ - '0';

    if (*p >= '0' && *p <= '9') {
        channel = channel * 10 + (*p++ - '0');
    }

    if (*p != '\0' || channel > TIDAL_MCP_CHANNELS) {
        return 0;
    }

    return channel;
}


int
tidal_mcp_resource_from_uri(const char *uri)
{
    size_t  i;

    if (uri == NULL) {
        return 0;
    }

    for (i = 0; i < tidal_mcp_nelts(tidal_mcp_room_resources); i++) {
        if (strcmp(uri, tidal_mcp_room_resources[i].uri) == 0) {
            return TIDAL_MCP_RESOURCE_STATE + (int) i;
        }
    }

    return tidal_mcp_channel_from_uri(uri);
}


char *
tidal_mcp_resource_updated(int resource, size_t *len)
{
    char     uri[TIDAL_MCP_CHANNEL_URI_LEN];
    json_t  *params;

    if (resource < 1 || resource > TIDAL_MCP_RESOURCES) {
        return NULL;
    }

    tidal_mcp_resource_uri(uri, resource);

    params = json_pack("{s:s}", "uri", uri);
    if (params == NULL) {
        return NULL;
    }

    return tidal_mcp_notification("notifications/resources/updated", params,
                                  len);
}


/* dst holds TIDAL_MCP_CHANNEL_URI_LEN bytes; resource is in range */
static void
tidal_mcp_resource_uri(char *dst, int resource)
{
    if (resource > TIDAL_MCP_CHANNELS) {
        snprintf(dst, TIDAL_MCP_CHANNEL_URI_LEN, "%s",
                 tidal_mcp_room_resources[resource
                                          - TIDAL_MCP_RESOURCE_STATE].uri);
        return;
    }

    snprintf(dst, TIDAL_MCP_CHANNEL_URI_LEN, TIDAL_MCP_CHANNEL_URI "%d",
             resource);
}


/* without a resource_hook: an empty, silent room at Tidal's tempo */
static json_t *
tidal_mcp_resource_default(int resource)
{
    json_t        *res;
    tidal_room_t   room;

    if (resource == TIDAL_MCP_RESOURCE_CHAT) {
        return json_pack("{s:[]}", "chat");
    }

    if (tidal_room_init(&room) != 0) {
        return NULL;
    }

    res = tidal_room_resource(&room, resource);

    tidal_room_free(&room);

    return res;
}


/* -- prompts and completion -------------------------------------------- */


static int
tidal_mcp_prompts_list(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    json_t  *result;

    (void) s;
    (void) params;

    result = json_pack("{s:[{s:s, s:s, s:s, s:[{s:s, s:s, s:b}]}]}",
                       "prompts",
                           "name", TIDAL_MCP_PROMPT,
                           "title", "Play in this TidalCycles room",
                           "description",
                           "How to play here: this room's tools, for your "
                           "role, and the basics of Tidal's patterns",
                           "arguments",
                               "name", "channel",
                               "description",
                               "The channel you mean to play on, d1 .. d16",
                               "required", 0);
    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


static int
tidal_mcp_prompts_get(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    char        *text, name[TIDAL_MCP_NAME_MAX + 4];
    json_t      *prompt, *args, *channel, *result;
    const char  *ch;

    prompt = json_object_get(params, "name");

    if (!json_is_string(prompt)) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: name must be a string");
    }

    if (strcmp(json_string_value(prompt), TIDAL_MCP_PROMPT) != 0) {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Unknown prompt: %s",
                               tidal_mcp_name_text(name, sizeof(name),
                                                   prompt));
    }

    args = json_object_get(params, "arguments");
    channel = json_object_get(args, "channel");

    if ((args != NULL && !json_is_object(args))
        || (channel != NULL
            && (!json_is_string(channel)
                || tidal_tools_channel(json_string_value(channel)) == 0)))
    {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: arguments.channel must be "
                               "one of d1 .. d16");
    }

    ch = json_string_value(channel);

    text = tidal_mcp_prompt_text(s, ch);
    if (text == NULL) {
        return -1;
    }

    result = json_pack("{s:s, s:[{s:s, s:{s:s, s:s}}]}",
                       "description", "How to play in this TidalCycles room",
                       "messages",
                           "role", "user",
                           "content", "type", "text", "text", text);

    free(text);

    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


/* the tools come from the table, as tools/list offers them to the role */

static char *
tidal_mcp_prompt_text(tidal_mcp_session_t *s, const char *channel)
{
    size_t               i;
    tidal_mcp_buf_t      text;
    const tidal_tool_t  *tool;

    memset(&text, 0, sizeof(tidal_mcp_buf_t));

    tidal_mcp_line_printf(&text,
        "You are joining a live TidalCycles room that other people and "
        "agents play in at the same time; everything you play is heard by "
        "all of them.  Your role is %s.\n\nThe tools you may call:\n",
        tidal_mcp_role_name(s->role));

    for (i = 0; s->server != NULL && i < s->server->ntools; i++) {
        tool = &s->server->tools[i];

        if (tidal_mcp_tool_offered(s->server, tool) && tool->role <= s->role)
        {
            tidal_mcp_line_printf(&text, "- %s: %s\n", tool->name,
                                  tool->description ? tool->description
                                                    : "");
        }
    }

    tidal_mcp_line_printf(&text, "%s",
        "\nHow the room works:\n"
        "- Listen first: call tidal_get_state (or read the resource "
        "tidal://state) to see what plays on each channel and the tempo, "
        "and tidal_get_history for what happened lately.  Changes by "
        "others arrive as log messages and resource updates.\n"
        "- There are 16 channels, d1 .. d16, each playing one pattern.  "
        "Take a free one; do not replace or silence someone else's "
        "channel without asking in the chat (tidal_say).\n"
        "- tidal_eval takes a channel and a pattern, the expression Tidal "
        "plays, without the \"d1 $\": {\"channel\": \"d1\", \"pattern\": "
        "\"sound \\\"bd*2 [~ sn]\\\"\"}.  A pattern that does not "
        "compile, or fails over the next cycles, comes back as an error "
        "result with GHCi's message and its line and column; only you see "
        "it: fix the pattern and evaluate again.  The previous pattern "
        "keeps playing meanwhile.\n"
        "- tidal_silence stops one channel, tidal_hush every channel (the "
        "whole room's music: use it only in an emergency); tidal_mute, "
        "tidal_solo and their undo forms change what is heard without "
        "forgetting the pattern.\n"
        "- The tempo is the room's: tidal_set_tempo sets it in cycles per "
        "second (0.5625 cps is 135 bpm at four beats a cycle); a cps "
        "inside a pattern is ignored.\n"
        "\nTidal's basics, a few idiomatic patterns:\n"
        "- sound \"bd*2 [~ sn] hh*4\": a cycle split in steps; * repeats, "
        "[ ] groups, ~ rests\n"
        "- sound \"bd(3,8) sn\": Euclidean rhythms\n"
        "- n \"0 .. 7\" # sound \"arpy\" # speed 1.5: # adds parameters\n"
        "- every 4 (fast 2) $ sound \"bd sn\": transform some cycles\n"
        "- slow 2 $ note \"c e g b\" # s \"superpiano\" # room 0.3\n"
        "- stack [sound \"bd*4\", sound \"~ hh\"]: several layers on one "
        "channel\n"
        "Start simple, change one thing at a time, and leave room for the "
        "others.\n");

    if (channel != NULL) {
        tidal_mcp_line_printf(&text, "\nYou mean to play on %s: check with "
                              "tidal_get_state that it is free.\n", channel);
    }

    if (text.failed || text.data == NULL) {
        free(text.data);
        return NULL;
    }

    text.data[text.len] = '\0';

    return text.data;
}


static int
tidal_mcp_complete(tidal_mcp_session_t *s, json_t *id, json_t *params,
    tidal_mcp_out_t *out)
{
    int          n;
    char         name[TIDAL_MCP_URI_MAX + 4], value[TIDAL_MCP_INT_LEN + 2];
    json_t      *ref, *type, *arg, *argname, *argvalue, *values, *result;
    const char  *prefix;

    (void) s;

    ref = json_object_get(params, "ref");
    type = json_object_get(ref, "type");
    arg = json_object_get(params, "argument");
    argname = json_object_get(arg, "name");
    argvalue = json_object_get(arg, "value");

    if (!json_is_string(type) || !json_is_string(argname)
        || !json_is_string(argvalue))
    {
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: ref.type, argument.name "
                               "and argument.value must be strings");
    }

    values = json_array();
    if (values == NULL) {
        return -1;
    }

    if (strcmp(json_string_value(type), "ref/prompt") == 0) {
        if (!json_is_string(json_object_get(ref, "name"))
            || strcmp(json_string_value(json_object_get(ref, "name")),
                      TIDAL_MCP_PROMPT) != 0)
        {
            json_decref(values);
            return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                                   "Invalid params: unknown prompt");
        }

        prefix = json_string_value(argvalue);

        for (n = 1;
             strcmp(json_string_value(argname), "channel") == 0
             && n <= TIDAL_MCP_CHANNELS;
             n++)
        {
            snprintf(value, sizeof(value), "d%d", n);

            /* "d1" and "1" both start d1, d10 .. d16 */
            if ((strncmp(value, prefix, strlen(prefix)) == 0
                 || strncmp(value + 1, prefix, strlen(prefix)) == 0)
                && json_array_append_new(values, json_string(value)) != 0)
            {
                json_decref(values);
                return -1;
            }
        }

    } else if (strcmp(json_string_value(type), "ref/resource") == 0) {

        /* fixed resources, no templates: nothing to complete */
        if (tidal_mcp_resource_from_uri(json_string_value(
                                            json_object_get(ref, "uri")))
            == 0)
        {
            json_decref(values);

            if (!json_is_string(json_object_get(ref, "uri"))) {
                return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                                       "Invalid params: ref.uri must be a "
                                       "string");
            }

            return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                                   "Resource template not found: %s",
                                   tidal_mcp_name_text(name, sizeof(name),
                                       json_object_get(ref, "uri")));
        }

    } else {
        json_decref(values);
        return tidal_mcp_error(out, id, TIDAL_MCP_INVALID_PARAMS,
                               "Invalid params: ref.type must be "
                               "ref/prompt or ref/resource");
    }

    result = json_pack("{s:{s:o, s:I, s:b}}", "completion",
                       "values", values,
                       "total", (json_int_t) json_array_size(values),
                       "hasMore", 0);
    if (result == NULL) {
        return -1;
    }

    return tidal_mcp_result(out, id, result);
}


/* -- what clients are told of the room's events ------------------------- */


/*
 * The params of a notifications/tidal/<type> text, and its type; the
 * whole message is returned, to be released, or NULL for other bytes.
 */
static json_t *
tidal_mcp_event_load(const char *event, size_t len, json_t **params,
    const char **type)
{
    json_t      *root, *method;
    const char  *m;

    if (event == NULL) {
        return NULL;
    }

    root = json_loadb(event, len, JSON_REJECT_DUPLICATES, NULL);

    method = json_object_get(root, "method");
    *params = json_object_get(root, "params");
    m = json_string_value(method);

    if (m == NULL || !json_is_object(*params)
        || strncmp(m, TIDAL_PROTOCOL_EVENT, TIDAL_PROTOCOL_EVENT_LEN) != 0)
    {
        json_decref(root);
        return NULL;
    }

    *type = m + TIDAL_PROTOCOL_EVENT_LEN;

    return root;
}


uint32_t
tidal_mcp_event_resources(const char *event, size_t len)
{
    int          channel;
    json_t      *root, *params;
    uint32_t     bits;
    const char  *type;

    root = tidal_mcp_event_load(event, len, &params, &type);
    if (root == NULL) {
        return 0;
    }

    bits = 0;

    if (strcmp(type, "session_restore") == 0) {
        /* the client missed events: whatever it reads may have changed */
        bits = TIDAL_MCP_RESOURCES_ALL;

    } else if (strcmp(type, "chat") == 0) {
        bits = TIDAL_MCP_RESOURCE_BIT(TIDAL_MCP_RESOURCE_CHAT);

    } else {
        channel = tidal_room_event_channel(type, params);

        if (channel != 0) {
            bits |= TIDAL_MCP_RESOURCE_BIT(channel)
                    | TIDAL_MCP_RESOURCE_BIT(TIDAL_MCP_RESOURCE_STATE);
        }

        if (strcmp(type, "tempo_change") == 0) {
            bits |= TIDAL_MCP_RESOURCE_BIT(TIDAL_MCP_RESOURCE_STATE);
        }

        if (tidal_room_event_kept(type)) {
            bits |= TIDAL_MCP_RESOURCE_BIT(TIDAL_MCP_RESOURCE_HISTORY);
        }
    }

    json_decref(root);

    return bits;
}


char *
tidal_mcp_event_message(const char *event, size_t len, int *level,
    size_t *out_len)
{
    int               lvl;
    char             *text;
    json_t           *root, *params, *data;
    const char       *type;
    tidal_mcp_buf_t   line;

    root = tidal_mcp_event_load(event, len, &params, &type);
    if (root == NULL) {
        return NULL;
    }

    memset(&line, 0, sizeof(tidal_mcp_buf_t));

    lvl = tidal_mcp_event_line(&line, type, params);

    json_decref(root);

    if (lvl < 0 || line.failed || line.data == NULL) {
        free(line.data);
        return NULL;
    }

    /* json_stringn() checks the line is UTF-8, whatever went into it */
    data = json_stringn(line.data, line.len);

    free(line.data);

    if (data == NULL) {
        return NULL;
    }

    params = json_pack("{s:s, s:s, s:o}",
                       "level", tidal_mcp_log_level_name(lvl),
                       "logger", TIDAL_MCP_LOGGER,
                       "data", data);
    if (params == NULL) {
        return NULL;
    }

    text = tidal_mcp_notification("notifications/message", params, out_len);
    if (text == NULL) {
        return NULL;
    }

    *level = lvl;

    return text;
}


/* writes an event's line; returns its level, or -1 for no line */

static int
tidal_mcp_event_line(tidal_mcp_buf_t *line, const char *type, json_t *p)
{
    char    *text;
    json_t  *who, *channel, *pattern, *state, *data;

    who = json_object_get(p, "who");
    channel = json_object_get(p, "channel");
    pattern = json_object_get(p, "pattern");

    if (strcmp(type, "pattern_update") == 0) {
        tidal_mcp_line_text(line, who, TIDAL_MCP_LINE_NAME_MAX, 0);

        if (json_is_string(pattern)
            && strcmp(json_string_value(pattern), "silence") == 0)
        {
            tidal_mcp_line_printf(line, " silenced ");
            tidal_mcp_line_text(line, channel, TIDAL_MCP_LINE_NAME_MAX, 0);
            return TIDAL_MCP_LOG_INFO;
        }

        tidal_mcp_line_printf(line, " set ");
        tidal_mcp_line_text(line, channel, TIDAL_MCP_LINE_NAME_MAX, 0);
        tidal_mcp_line_printf(line, ": ");
        tidal_mcp_line_text(line, pattern, TIDAL_MCP_LINE_PATTERN_MAX, 0);

        return TIDAL_MCP_LOG_INFO;
    }

    if (strcmp(type, "pattern_eval") == 0) {

        /* an accepted one: its pattern_update said it */
        if (!json_is_false(json_object_get(p, "ok"))) {
            return -1;
        }

        tidal_mcp_line_text(line, channel, TIDAL_MCP_LINE_NAME_MAX, 0);
        tidal_mcp_line_printf(line, ": ");
        tidal_mcp_line_text(line, who, TIDAL_MCP_LINE_NAME_MAX, 0);
        tidal_mcp_line_printf(line, "'s pattern was refused: ");
        tidal_mcp_line_text(line, json_object_get(p, "error"),
                            TIDAL_MCP_LINE_ERROR_MAX, 1);

        return TIDAL_MCP_LOG_WARNING;
    }

    if (strcmp(type, "channel_state") == 0) {
        state = json_object_get(p, "state");
        pattern = json_object_get(state, "pattern");

        tidal_mcp_line_text(line, who, TIDAL_MCP_LINE_NAME_MAX, 0);
        tidal_mcp_line_printf(line, " changed ");
        tidal_mcp_line_text(line, channel, TIDAL_MCP_LINE_NAME_MAX, 0);
        tidal_mcp_line_printf(line, ": %s%s%s",
                              json_is_string(pattern)
                              && strcmp(json_string_value(pattern),
                                        "silence") != 0
                              ? "playing" : "silent",
                              json_is_true(json_object_get(state, "muted"))
                              ? ", muted" : "",
                              json_is_true(json_object_get(state, "soloed"))
                              ? ", soloed" : "");

        return TIDAL_MCP_LOG_INFO;
    }

    if (strcmp(type, "tempo_change") == 0) {
        tidal_mcp_line_text(line, who, TIDAL_MCP_LINE_NAME_MAX, 0);
        tidal_mcp_line_printf(line, " set the tempo to %g cps (%g bpm)",
                              json_number_value(json_object_get(p, "cps")),
                              json_number_value(json_object_get(p, "bpm")));

        return TIDAL_MCP_LOG_INFO;
    }

    if (strcmp(type, "error") == 0) {
        if (channel != NULL) {
            tidal_mcp_line_text(line, channel, TIDAL_MCP_LINE_NAME_MAX, 0);
            tidal_mcp_line_printf(line, ": ");
        }

        tidal_mcp_line_printf(line, "error: ");
        tidal_mcp_line_text(line, json_object_get(p, "message"),
                            TIDAL_MCP_LINE_ERROR_MAX, 1);

        return TIDAL_MCP_LOG_ERROR;
    }

    if (strcmp(type, "ghci_restarted") == 0) {
        tidal_mcp_line_printf(line, "GHCi restarted: ");
        tidal_mcp_line_text(line, json_object_get(p, "reason"),
                            TIDAL_MCP_LINE_ERROR_MAX, 0);

        return TIDAL_MCP_LOG_WARNING;
    }

    if (strcmp(type, "chat") == 0) {
        tidal_mcp_line_printf(line, "chat ");
        tidal_mcp_line_text(line, who, TIDAL_MCP_LINE_NAME_MAX, 0);
        tidal_mcp_line_printf(line, ": ");
        tidal_mcp_line_text(line, json_object_get(p, "text"),
                            TIDAL_MCP_LINE_ERROR_MAX, 0);

        return TIDAL_MCP_LOG_NOTICE;
    }

    if (strcmp(type, "custom") == 0) {
        /* the object as compact JSON, a text like any other */
        text = json_dumps(json_object_get(p, "data"),
                          JSON_COMPACT | JSON_ENCODE_ANY);
        data = (text != NULL) ? json_string(text) : NULL;
        free(text);

        if (data == NULL) {
            line->failed = 1;
            return -1;
        }

        tidal_mcp_line_printf(line, "custom event: ");
        tidal_mcp_line_text(line, data, TIDAL_MCP_LINE_PATTERN_MAX, 0);
        json_decref(data);

        return TIDAL_MCP_LOG_INFO;
    }

    if (strcmp(type, "metrics") == 0) {
        tidal_mcp_line_printf(line, "metrics: %" JSON_INTEGER_FORMAT
                              " connections, %g events/s",
                              json_integer_value(json_object_get(p,
                                  "connections")),
                              json_number_value(json_object_get(p,
                                  "events_per_second")));

        return TIDAL_MCP_LOG_DEBUG;
    }

    return -1;
}


/*
 * Client text into a line: a string cut at max bytes on a character
 * boundary with the length of the rest; control characters become
 * spaces, except newlines when lines is set (GHCi's messages have many).
 * Anything but a string reads "?".
 */
static void
tidal_mcp_line_text(tidal_mcp_buf_t *line, json_t *text, size_t max,
    unsigned lines)
{
    char        c;
    size_t      i, n, len;
    const char  *s;

    if (!json_is_string(text)) {
        tidal_mcp_line_printf(line, "?");
        return;
    }

    s = json_string_value(text);
    len = json_string_length(text);
    n = tidal_utf8_cut(s, len, max);

    for (i = 0; i < n; i++) {
        c = s[i];

        if (((unsigned char) c < 0x20 && !(lines && c == '\n'))
            || c == 0x7f)
        {
            c = ' ';
        }

        if (tidal_mcp_buf_append(&c, 1, line) != 0) {
            return;
        }
    }

    if (n < len) {
        tidal_mcp_line_printf(line, "... (%zu more bytes)", len - n);
    }
}


static void
tidal_mcp_line_printf(tidal_mcp_buf_t *line, const char *fmt, ...)
{
    int      n;
    char    *text;
    va_list  args;

    /* not vasprintf(): this file builds without _GNU_SOURCE in nginx */
    va_start(args, fmt);
    n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    text = (n >= 0) ? malloc((size_t) n + 1) : NULL;
    if (text == NULL) {
        line->failed = 1;
        return;
    }

    va_start(args, fmt);
    vsnprintf(text, (size_t) n + 1, fmt, args);
    va_end(args);

    (void) tidal_mcp_buf_append(text, (size_t) n, line);

    free(text);
}


int
tidal_mcp_wants_event_message(const tidal_mcp_session_t *s, int level)
{
    return s->initialized && !s->tidal_events && level >= s->log_level;
}


static json_t *
tidal_mcp_tool_schema(const tidal_tool_t *tool)
{
    json_t        *schema;
    json_error_t   err;

    schema = NULL;

    if (tool->input_schema != NULL) {
        schema = json_loads(tool->input_schema, JSON_REJECT_DUPLICATES,
                            &err);

        if (schema == NULL
            && json_error_code(&err) == json_error_out_of_memory)
        {
            return NULL;
        }
    }

    if (json_is_object(schema)) {
        return schema;
    }

    /* a broken table must not make tools/list invalid for strict clients */
    json_decref(schema);

    return json_pack("{s:s}", "type", "object");
}


static const tidal_tool_t *
tidal_mcp_tool_find(const tidal_mcp_server_t *server, const char *name)
{
    size_t  i;

    for (i = 0; server != NULL && i < server->ntools; i++) {
        if (tidal_mcp_tool_offered(server, &server->tools[i])
            && strcmp(server->tools[i].name, name) == 0)
        {
            return &server->tools[i];
        }
    }

    return NULL;
}


/* what runs elsewhere, or needs tidal_allow_raw, does not exist here */

static int
tidal_mcp_tool_offered(const tidal_mcp_server_t *server,
    const tidal_tool_t *tool)
{
    return tool->name != NULL && (tool->where & server->where) != 0
           && (!tool->raw || server->raw);
}


static int
tidal_mcp_parse_error(tidal_mcp_out_t *out, json_error_t *err)
{
    size_t  len;
    char   *end, text[JSON_ERROR_TEXT_LENGTH];

    /* jansson keeps its error code in the last byte of text */
    end = memchr(err->text, '\0', JSON_ERROR_TEXT_LENGTH - 1);
    len = (end != NULL) ? (size_t) (end - err->text)
                        : JSON_ERROR_TEXT_LENGTH - 1;

    /* the text may quote the offending input, bytes that are not UTF-8 */
    tidal_mcp_copy_text(text, sizeof(text), err->text, len, 0);

    return tidal_mcp_error(out, NULL, TIDAL_MCP_PARSE_ERROR,
                           "Parse error: %s at line %d, column %d",
                           text, err->line, err->column);
}


static int
tidal_mcp_result(tidal_mcp_out_t *out, json_t *id, json_t *result)
{
    out->reply = tidal_mcp_response(id, "result", result, &out->reply_len);
    if (out->reply == NULL) {
        return -1;
    }

    out->action = TIDAL_MCP_REPLY;

    return 0;
}


static int
tidal_mcp_error(tidal_mcp_out_t *out, json_t *id, int code,
    const char *fmt, ...)
{
    va_list  args;
    char     message[TIDAL_MCP_MESSAGE_MAX];

    /* every piece passed in is bounded well below the buffer size */
    va_start(args, fmt);
    vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);

    out->reply = tidal_mcp_error_reply(id, code, message, &out->reply_len);
    if (out->reply == NULL) {
        return -1;
    }

    out->action = TIDAL_MCP_REPLY;

    return 0;
}


/* a tools/call the tool's checks refused: a CallToolResult saying why */

static int
tidal_mcp_tool_refused(tidal_mcp_out_t *out, json_t *id, const char *why)
{
    json_t  *result;

    result = tidal_tools_result(1, why, NULL);
    if (result == NULL) {
        return -1;
    }

    out->reply = tidal_mcp_tool_reply(id, result, &out->reply_len);
    if (out->reply == NULL) {
        return -1;
    }

    out->action = TIDAL_MCP_REPLY;

    return 0;
}


void
tidal_mcp_out_free(tidal_mcp_out_t *out)
{
    free(out->reply);
    json_decref(out->args);
    json_decref(out->id);

    memset(out, 0, sizeof(tidal_mcp_out_t));
}


char *
tidal_mcp_tool_reply(json_t *id, json_t *result, size_t *len)
{
    if (!json_is_object(result)) {
        json_decref(result);
        return NULL;
    }

    return tidal_mcp_response(id, "result", result, len);
}


char *
tidal_mcp_error_reply(json_t *id, int code, const char *message,
    size_t *len)
{
    return tidal_mcp_error_response(id, code, message, NULL, len);
}


/* data (NULL to omit it) is stolen, also on failure */
static char *
tidal_mcp_error_response(json_t *id, int code, const char *message,
    json_t *data, size_t *len)
{
    json_t  *error;

    error = json_pack("{s:i, s:s}", "code", code, "message", message);
    if (error == NULL) {
        json_decref(data);
        return NULL;
    }

    if (data != NULL && json_object_set_new(error, "data", data) != 0) {
        json_decref(error);
        return NULL;
    }

    return tidal_mcp_response(id, "error", error, len);
}


char *
tidal_mcp_notification(const char *method, json_t *params, size_t *len)
{
    json_t  *msg;

    if (params != NULL && !json_is_object(params)) {
        json_decref(params);
        return NULL;
    }

    msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (msg == NULL) {
        json_decref(params);
        return NULL;
    }

    if (params != NULL && json_object_set_new(msg, "params", params) != 0) {
        json_decref(msg);
        return NULL;
    }

    return tidal_mcp_dump(msg, len);
}


/* value is stolen; an invalid or absent id becomes null */
static char *
tidal_mcp_response(json_t *id, const char *member, json_t *value,
    size_t *len)
{
    json_t  *msg;

    if (!tidal_mcp_id_valid(id)) {
        id = json_null();
    }

    msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id,
                    member, value);
    if (msg == NULL) {
        return NULL;
    }

    return tidal_mcp_dump(msg, len);
}


/*
 * msg is consumed.  Not json_dumps(): jansson 2.14 ignores a failed write
 * of an object key, so a transient allocation failure there yields text
 * that is not JSON; a failure here is sticky and refuses the whole text.
 */
static char *
tidal_mcp_dump(json_t *msg, size_t *len)
{
    int              rc;
    tidal_mcp_buf_t  buf;

    memset(&buf, 0, sizeof(tidal_mcp_buf_t));

    rc = json_dump_callback(msg, tidal_mcp_buf_append, &buf, JSON_COMPACT);

    json_decref(msg);

    if (rc != 0 || buf.failed || buf.data == NULL) {
        free(buf.data);
        return NULL;
    }

    buf.data[buf.len] = '\0';

    if (len != NULL) {
        *len = buf.len;
    }

    return buf.data;
}


static int
tidal_mcp_buf_append(const char *data, size_t n, void *ctx)
{
    char             *p;
    size_t            size;
    tidal_mcp_buf_t  *buf = ctx;

    if (buf->failed) {
        return -1;
    }

    /* one byte more than needed is always kept for the NUL */
    if (buf->size - buf->len <= n) {
        size = (buf->size != 0) ? buf->size : 256;

        while (size - buf->len <= n) {
            if (size > (size_t) -1 / 2) {
                buf->failed = 1;
                return -1;
            }

            size *= 2;
        }

        p = realloc(buf->data, size);
        if (p == NULL) {
            buf->failed = 1;
            return -1;
        }

        buf->data = p;
        buf->size = size;
    }

    memcpy(buf->data + buf->len, data, n);
    buf->len += n;

    return 0;
}


const char *
tidal_mcp_version(const char *version, size_t len)
{
    size_t  i;

    for (i = 0; i < tidal_mcp_nelts(tidal_mcp_versions); i++) {
        if (strlen(tidal_mcp_versions[i]) == len
            && memcmp(tidal_mcp_versions[i], version, len) == 0)
        {
            return tidal_mcp_versions[i];
        }
    }

    return NULL;
}


const char *
tidal_mcp_role_name(tidal_role_e role)
{
    if ((size_t) role < tidal_mcp_nelts(tidal_mcp_roles)) {
        return tidal_mcp_roles[role];
    }

    return "unknown";
}


int
tidal_mcp_role_by_name(const char *name, size_t len, tidal_role_e *role)
{
    size_t  i;

    for (i = 0; i < tidal_mcp_nelts(tidal_mcp_roles); i++) {
        if (strlen(tidal_mcp_roles[i]) == len
            && memcmp(tidal_mcp_roles[i], name, len) == 0)
        {
            *role = (tidal_role_e) i;
            return 0;
        }
    }

    return -1;
}


const char *
tidal_mcp_log_level_name(int level)
{
    if (level >= 0 && level < (int) tidal_mcp_nelts(tidal_mcp_log_levels)) {
        return tidal_mcp_log_levels[level];
    }

    return NULL;
}


/* MCP: a string or an integer, never null */
static int
tidal_mcp_id_valid(json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}


/*
 * Copies client text into an error message or a session field: control
 * characters become '?', and so does every byte above ASCII unless src is
 * known to be UTF-8 (jansson checks the strings it parses, not the input
 * it quotes in its error texts); a cut never splits a UTF-8 sequence and
 * is marked with "...".  dst gets at most size - 1 bytes and a NUL;
 * returns the length copied.
 */
static size_t
tidal_mcp_copy_text(char *dst, size_t size, const char *src, size_t len,
    unsigned utf8)
{
    size_t         i, n, max;
    unsigned char  c;

    if (size == 0) {
        return 0;
    }

    max = size - 1;

    if (len > max && max >= 3) {
        /* room for the "..." that marks the cut */
        max -= 3;
    }

    for (i = 0, n = 0; i < len && n < max; i++) {
        c = (unsigned char) src[i];

        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            c = '?';
        }

        dst[n++] = (char) c;
    }

    if (i < len) {
        if (utf8 && ((unsigned char) src[i] & 0xc0) == 0x80) {
            /* drop the partial sequence, continuation bytes and lead */
            while (n > 0 && ((unsigned char) dst[n - 1] & 0xc0) == 0x80) {
                n--;
            }

            if (n > 0) {
                n--;
            }
        }

        if (n + 3 < size) {
            memcpy(dst + n, "...", 3);
            n += 3;
        }
    }

    dst[n] = '\0';

    return n;
}


static const char *
tidal_mcp_name_text(char *dst, size_t size, json_t *name)
{
    tidal_mcp_copy_text(dst, size, json_string_value(name),
                        json_string_length(name), 1);

    return dst;
}
