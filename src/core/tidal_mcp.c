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


/* bytes of a client's method or tool name quoted back in an error */
#define TIDAL_MCP_NAME_MAX     64
#define TIDAL_MCP_MESSAGE_MAX  320
/* bytes of a client's resource uri quoted back in an error message */
#define TIDAL_MCP_URI_MAX      128
/* room for any int, so that compilers need not prove a channel's range */
#define TIDAL_MCP_INT_LEN      (sizeof("-2147483648") - 1)
#define TIDAL_MCP_CHANNEL_URI_LEN                                            \
    (sizeof(TIDAL_MCP_CHANNEL_URI) + TIDAL_MCP_INT_LEN)


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
static int tidal_mcp_channel_param(json_t *id, json_t *params,
    tidal_mcp_out_t *out);
static void tidal_mcp_channel_uri(char *dst, int channel);
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
    { "tools/list", tidal_mcp_tools_list, 0 },
    { "tools/call", tidal_mcp_tools_call, 0 },
    { "logging/setLevel", tidal_mcp_set_level, 0 },
    { "resources/list", tidal_mcp_resources_list, 0 },
    { "resources/templates/list", tidal_mcp_resource_templates, 0 },
    { "resources/read", tidal_mcp_resources_read, 0 },
    { "resources/subscribe", tidal_mcp_subscribe, 0 },
    { "resources/unsubscribe", tidal_mcp_unsubscribe, 0 }
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
    json_t      *requested, *client, *name, *result, *meta;
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

    result = json_pack("{s:s, s:{s:{s:b}, s:{}, s:{s:b, s:b}},"
                       " s:{s:s, s:s}, s:s}",
                       "protocolVersion", version,
                       "capabilities",
                           "tools", "listChanged", 0,
                           "logging",
                           "resources", "subscribe", 1, "listChanged", 0,
                       "serverInfo",
                           "name", server_name,
                           "version", server_version,
                       "instructions",
                       "Collaborative TidalCycles live coding. Call "
                       "tools/list to see what your role may do; changes "
                       "made by every client arrive as "
                       TIDAL_PROTOCOL_EVENT "* messages.");
    if (result == NULL) {
        return -1;
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

    if (name != NULL) {
        tidal_mcp_copy_text(s->client_name, sizeof(s->client_name),
                            json_string_value(name),
                            json_string_length(name), 1);
    }

    return 0;
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
    int      n;
    char     uri[TIDAL_MCP_CHANNEL_URI_LEN], name[TIDAL_MCP_INT_LEN + 2],
             title[TIDAL_MCP_INT_LEN + 10], description[128];
    json_t  *resources, *item, *result;

    (void) s;
    (void) params;

    resources = json_array();
    if (resources == NULL) {
        return -1;
    }

    /* sixteen fixed entries: a cursor is ignored, one page holds all */
    for (n = 1; n <= TIDAL_MCP_CHANNELS; n++) {
        tidal_mcp_channel_uri(uri, n);
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
    int      channel;
    char    *text;
    json_t  *state, *result;

    channel = tidal_mcp_channel_param(id, params, out);
    if (channel <= 0) {
        return channel;
    }

    if (s->resource_hook != NULL) {
        state = s->resource_hook(s, channel);

    } else {
        state = json_pack("{s:n, s:b, s:b}",
                          "pattern", "muted", 0, "soloed", 0);
    }

    if (!json_is_object(state)) {
        json_decref(state);

        /* the transport could not say: an answer, not a dropped socket */
        return tidal_mcp_error(out, id, TIDAL_MCP_INTERNAL_ERROR,
                               "Internal error: the state of channel d%d "
                               "is unavailable", channel);
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
    int       channel;
    json_t   *result;
    uint32_t  bit;

    channel = tidal_mcp_channel_param(id, params, out);
    if (channel <= 0) {
        return channel;
    }

    result = json_object();
    if (result == NULL) {
        return -1;
    }

    if (tidal_mcp_result(out, id, result) != 0) {
        return -1;
    }

    /* only once the answer exists, so a failure changes nothing */
    bit = (uint32_t) 1 << (channel - 1);

    if (on) {
        s->subscriptions |= bit;

    } else {
        s->subscriptions &= ~bit;
    }

    return 0;
}


/*
 * The channel params.uri names, or 0 when the error saying why is in out,
 * or -1 when even that could not be built.
 */
static int
tidal_mcp_channel_param(json_t *id, json_t *params, tidal_mcp_out_t *out)
{
    int          channel;
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

    channel = tidal_mcp_channel_from_uri(json_string_value(uri));
    if (channel != 0) {
        return channel;
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


char *
tidal_mcp_resource_updated(int channel, size_t *len)
{
    char     uri[TIDAL_MCP_CHANNEL_URI_LEN];
    json_t  *params;

    if (channel < 1 || channel > TIDAL_MCP_CHANNELS) {
        return NULL;
    }

    tidal_mcp_channel_uri(uri, channel);

    params = json_pack("{s:s}", "uri", uri);
    if (params == NULL) {
        return NULL;
    }

    return tidal_mcp_notification("notifications/resources/updated", params,
                                  len);
}


/* dst holds TIDAL_MCP_CHANNEL_URI_LEN bytes */
static void
tidal_mcp_channel_uri(char *dst, int channel)
{
    snprintf(dst, TIDAL_MCP_CHANNEL_URI_LEN, TIDAL_MCP_CHANNEL_URI "%d",
             channel);
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
