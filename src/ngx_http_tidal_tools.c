/*
 * ngx_tidal: the MCP tools - their table (names, schemas, least role)
 * and the ones a worker answers itself.  The music tools need the GHCi
 * helper and say so until it exists.
 */


#include "ngx_http_tidal.h"
#include "tidal_state.h"


#define NGX_HTTP_TIDAL_SAY_MAX  1000

#define NGX_HTTP_TIDAL_CHANNEL_SCHEMA                                         \
    "{\"type\":\"object\",\"properties\":{\"channel\":{\"type\":\"string\","   \
    "\"pattern\":\"^d([1-9]|1[0-6])$\",\"description\":\"d1 .. d16\"}},"       \
    "\"required\":[\"channel\"]}"


static json_t *ngx_http_tidal_tool_text(ngx_uint_t error, const char *text,
    json_t *structured);
static json_t *ngx_http_tidal_tool_structured(json_t *structured);
static json_t *ngx_http_tidal_tool_say(ngx_http_tidal_ws_t *ws,
    json_t *args);
static json_t *ngx_http_tidal_tool_get_state(ngx_http_tidal_ws_t *ws);
static json_t *ngx_http_tidal_tool_get_history(ngx_http_tidal_ws_t *ws,
    json_t *args);


static const tidal_mcp_tool_t  ngx_http_tidal_tools[] = {

    { "tidal_get_state",
      "The room as it is: every channel's pattern, mute and solo, the "
      "tempo, and the number of the last event.",
      "{\"type\":\"object\",\"properties\":{}}",
      TIDAL_ROLE_LISTENER },

    { "tidal_get_history",
      "Who evaluated what and when, newest last, errors included.",
      "{\"type\":\"object\",\"properties\":{\"limit\":{\"type\":\"integer\","
      "\"minimum\":1,\"maximum\":1000,\"default\":50}}}",
      TIDAL_ROLE_LISTENER },

    { "tidal_say",
      "Send a chat line to everyone in the room.",
      "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","
      "\"minLength\":1,\"maxLength\":1000}},\"required\":[\"text\"]}",
      TIDAL_ROLE_PERFORMER },

    { "tidal_eval",
      "Play a pattern on a channel (d1 .. d16).",
      "{\"type\":\"object\",\"properties\":{\"channel\":{\"type\":\"string\","
      "\"pattern\":\"^d([1-9]|1[0-6])$\"},\"pattern\":{\"type\":\"string\"}},"
      "\"required\":[\"channel\",\"pattern\"]}",
      TIDAL_ROLE_PERFORMER },

    { "tidal_hush",
      "Silence every channel.",
      "{\"type\":\"object\",\"properties\":{}}",
      TIDAL_ROLE_PERFORMER },

    { "tidal_silence", "Silence one channel.",
      NGX_HTTP_TIDAL_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_solo", "Solo one channel.",
      NGX_HTTP_TIDAL_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_unsolo", "Take a channel out of solo.",
      NGX_HTTP_TIDAL_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_mute", "Mute one channel.",
      NGX_HTTP_TIDAL_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_unmute", "Unmute one channel.",
      NGX_HTTP_TIDAL_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_set_tempo",
      "Set the tempo, in cycles per second (cps) or beats per minute "
      "(bpm, four beats to a cycle).",
      "{\"type\":\"object\",\"properties\":{\"cps\":{\"type\":\"number\","
      "\"exclusiveMinimum\":0},\"bpm\":{\"type\":\"number\","
      "\"exclusiveMinimum\":0}}}",
      TIDAL_ROLE_PERFORMER }
};


const tidal_mcp_server_t  ngx_http_tidal_mcp_server = {
    "ngx_tidal",
    NGX_TIDAL_VERSION,
    ngx_http_tidal_tools,
    sizeof(ngx_http_tidal_tools) / sizeof(ngx_http_tidal_tools[0])
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
                                     ws->request->connection->log, &seq);
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
