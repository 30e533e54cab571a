/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/* libFuzzer target: whatever arrives, the MCP core answers JSON-RPC 2.0. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_mcp.h"
#include "jsonrpc_check.h"


/*
 * First input byte: bit 0 starts the session initialized by a real
 * initialize, bits 1-2 pick the role (3 wraps to listener), bit 3 sets
 * init_meta, bit 4 also sends notifications/initialized, bit 5 leaves
 * resource_hook unset (every channel silent), bit 6 starts with every
 * resource subscribed.  The rest is one message, run twice through the
 * same session; with bit 4 also read as a room event (its bytes as they
 * are, and as the params of each type of notifications/tidal/...),
 * whose log line and resource bits must be sound.
 */
#define FUZZ_INITIALIZED   0x01
#define FUZZ_META          0x08
#define FUZZ_READY         0x10
#define FUZZ_NO_HOOK       0x20
#define FUZZ_SUBSCRIBED    0x40

#define FUZZ_RESOURCES_ALL 0x7ffff


static const tidal_tool_arg_t  fuzz_pattern_arg[] = {
    { "pattern", NULL },
    { NULL, NULL }
};


static const tidal_tool_t  fuzz_tools[] = {
    { .name = "tidal_get_state", .description = "listener tool",
      .input_schema = "{\"type\":\"object\",\"properties\":{}}",
      .role = TIDAL_ROLE_LISTENER, .where = TIDAL_TOOL_WORKER },
    { .name = "tidal_eval", .description = "performer tool",
      .input_schema = "{\"type\":\"object\",\"properties\":{\"pattern\":"
                      "{\"type\":\"string\"}},\"required\":[\"pattern\"]}",
      .role = TIDAL_ROLE_PERFORMER, .where = TIDAL_TOOL_HELPER,
      .args = fuzz_pattern_arg },
    { .name = "tidal_admin", .input_schema = "{broken",
      .role = TIDAL_ROLE_ADMIN, .where = TIDAL_TOOL_HELPER, .raw = 1 }
};


static const tidal_mcp_server_t  fuzz_server = {
    "fuzz", "0", fuzz_tools, sizeof(fuzz_tools) / sizeof(fuzz_tools[0]),
    TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER, 1
};


static void
fuzz_fail(const char *why, const char *text)
{
    fprintf(stderr, "fuzz_mcp: %s: %s\n", why, text ? text : "(null)");
    abort();
}


/*
 * An event's log line is a JSON-RPC notifications/message with a level
 * and a UTF-8 line of bounded length; its resources are known ones.
 */
static void
fuzz_event(const char *event, size_t len)
{
    int          level;
    char        *text;
    size_t       n;
    json_t      *msg, *params;
    uint32_t     bits;
    const char  *why;

    bits = tidal_mcp_event_resources(event, len);

    if (bits & ~(uint32_t) FUZZ_RESOURCES_ALL) {
        fuzz_fail("an event updates no resource", event);
    }

    level = -1;
    text = tidal_mcp_event_message(event, len, &level, &n);

    if (text == NULL) {
        if (level != -1) {
            fuzz_fail("level set without a line", event);
        }

        return;
    }

    why = jsonrpc_check(text, n);
    if (why != NULL) {
        fuzz_fail(why, text);
    }

    msg = json_loadb(text, n, 0, NULL);
    params = json_object_get(msg, "params");

    if (tidal_mcp_log_level_name(level) == NULL
        || !json_is_string(json_object_get(params, "level"))
        || strcmp(json_string_value(json_object_get(params, "level")),
                  tidal_mcp_log_level_name(level)) != 0
        || !json_is_string(json_object_get(params, "data"))
        || json_string_length(json_object_get(params, "data")) > 8192)
    {
        fuzz_fail("bad event line", text);
    }

    json_decref(msg);
    free(text);
}


/* the bytes as they are, and as the params of each type of event */
static void
fuzz_events(const uint8_t *data, size_t size)
{
    size_t   i;
    char    *text;
    json_t  *params, *msg;

    static const char  *types[] = {
        "pattern_update", "pattern_eval", "channel_state", "tempo_change",
        "error", "ghci_restarted", "chat", "custom", "metrics",
        "session_restore", "unknown"
    };

    fuzz_event((const char *) data, size);

    params = json_loadb((const char *) data, size, 0, NULL);
    if (!json_is_object(params)) {
        json_decref(params);
        return;
    }

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        msg = json_pack("{s:s, s:s+, s:O}", "jsonrpc", "2.0",
                        "method", "notifications/tidal/", types[i],
                        "params", params);
        text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

        if (text != NULL) {
            fuzz_event(text, strlen(text));
        }

        free(text);
        json_decref(msg);
    }

    json_decref(params);
}


/* the resource a uri names, by a rule of its own rather than the core's */
static int
fuzz_channel(json_t *uri)
{
    const char  *p;

    p = json_string_value(uri);

    if (p != NULL && strcmp(p, "tidal://state") == 0) {
        return 17;
    }

    if (p != NULL && strcmp(p, "tidal://history") == 0) {
        return 18;
    }

    if (p != NULL && strcmp(p, "tidal://chat") == 0) {
        return 19;
    }

    if (p == NULL || strncmp(p, "tidal://channel/d", 17) != 0) {
        return 0;
    }

    p += 17;

    if (p[0] >= '1' && p[0] <= '9' && p[1] == '\0') {
        return p[0] - '0';
    }

    if (p[0] == '1' && p[1] >= '0' && p[1] <= '6' && p[2] == '\0') {
        return 10 + p[1] - '0';
    }

    return 0;
}


/*
 * What the answer to a resources/ method with a uri must be: a read of a
 * channel one content for that uri whose text is a JSON object, an
 * unknown uri -32002 naming it, and subscriptions moved by one bit at
 * most, only by a successful (un)subscribe.
 */
static void
fuzz_resource_oracle(json_t *msg, json_t *reply, uint32_t before,
    uint32_t after)
{
    int          channel, code;
    json_t      *params, *uri, *result, *item, *state;
    uint32_t     bit;
    const char  *method, *text;

    method = json_string_value(json_object_get(msg, "method"));
    params = json_object_get(msg, "params");
    uri = json_object_get(params, "uri");
    result = json_object_get(reply, "result");
    code = (int) json_integer_value(json_object_get(json_object_get(reply,
                                                                    "error"),
                                                    "code"));

    channel = fuzz_channel(uri);
    bit = channel ? (uint32_t) 1 << (channel - 1) : 0;

    if (tidal_mcp_resource_from_uri(json_string_value(uri)) != channel) {
        fuzz_fail("resource_from_uri disagrees", json_string_value(uri));
    }

    if (result != NULL && json_is_object(params) && json_is_string(uri)
        && method != NULL && strncmp(method, "resources/", 10) == 0
        && strcmp(method, "resources/list") != 0
        && strcmp(method, "resources/templates/list") != 0
        && channel == 0)
    {
        fuzz_fail("unknown uri answered with a result", method);
    }

    if (code == TIDAL_MCP_RESOURCE_NOT_FOUND
        && (channel != 0
            || !json_equal(json_object_get(json_object_get(
                               json_object_get(reply, "error"), "data"),
                               "uri"), uri)))
    {
        fuzz_fail("-32002 for a channel or without its uri", NULL);
    }

    if (method != NULL && strcmp(method, "resources/read") == 0
        && result != NULL)
    {
        item = json_array_get(json_object_get(result, "contents"), 0);
        text = json_string_value(json_object_get(item, "text"));
        state = text ? json_loads(text, 0, NULL) : NULL;

        if (json_array_size(json_object_get(result, "contents")) != 1
            || !json_equal(json_object_get(item, "uri"), uri)
            || !json_is_object(state))
        {
            json_decref(state);
            fuzz_fail("bad resources/read result", text);
        }

        json_decref(state);
    }

    if (method != NULL && result != NULL
        && strcmp(method, "resources/subscribe") == 0)
    {
        if (after != (before | bit)) {
            fuzz_fail("subscribe did not set its bit", NULL);
        }

    } else if (method != NULL && result != NULL
               && strcmp(method, "resources/unsubscribe") == 0)
    {
        if (after != (before & ~bit)) {
            fuzz_fail("unsubscribe did not clear its bit", NULL);
        }

    } else if (after != before) {
        fuzz_fail("subscriptions changed by another message", method);
    }
}


/*
 * What a reply must say about the message, independent of the core: a
 * notification is never answered, and a request with a usable id is
 * answered with that id.
 */
static void
fuzz_oracle(const uint8_t *data, size_t size, tidal_mcp_out_t *out,
    uint32_t before, uint32_t after)
{
    json_t  *msg, *id, *reply;

    msg = json_loadb((const char *) data, size,
                     JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!json_is_object(msg)) {
        json_decref(msg);

        if (after != before) {
            fuzz_fail("subscriptions changed by a bad message", NULL);
        }

        return;
    }

    id = json_object_get(msg, "id");

    if (json_object_get(msg, "method") != NULL && id == NULL
        && out->action != TIDAL_MCP_NONE)
    {
        fuzz_fail("notification answered", out->reply);
    }

    if (json_object_get(msg, "method") != NULL
        && (json_is_string(id) || json_is_integer(id)))
    {
        if (out->action == TIDAL_MCP_NONE) {
            fuzz_fail("request not answered", NULL);
        }

        if (out->action == TIDAL_MCP_CALL && !json_equal(out->id, id)) {
            fuzz_fail("call with another id", NULL);
        }

        if (out->action == TIDAL_MCP_REPLY) {
            reply = json_loads(out->reply, 0, NULL);
            if (!json_equal(json_object_get(reply, "id"), id)) {
                fuzz_fail("reply with another id", out->reply);
            }

            json_decref(reply);
        }
    }

    reply = (out->action == TIDAL_MCP_REPLY)
            ? json_loads(out->reply, 0, NULL) : NULL;

    fuzz_resource_oracle(msg, reply, before, after);

    json_decref(reply);
    json_decref(msg);
}


/* what the transport sends each subscriber of a channel is JSON-RPC too */
static void
fuzz_updates(uint32_t subscriptions)
{
    int          n;
    char        *text;
    size_t       len;
    const char  *why;

    if (subscriptions & ~(uint32_t) FUZZ_RESOURCES_ALL) {
        fuzz_fail("a subscription beyond tidal://chat", NULL);
    }

    for (n = 1; n <= 19; n++) {
        if (!(subscriptions & ((uint32_t) 1 << (n - 1)))) {
            continue;
        }

        text = tidal_mcp_resource_updated(n, &len);
        why = jsonrpc_check(text, len);
        if (why != NULL) {
            fuzz_fail(why, text);
        }

        free(text);
    }
}


static void
fuzz_run(tidal_mcp_session_t *s, const uint8_t *data, size_t size)
{
    char             *text;
    size_t            len;
    uint32_t          before;
    const char       *why;
    tidal_mcp_out_t   out;

    before = s->subscriptions;

    if (tidal_mcp_handle(s, (const char *) data, size, &out) != 0) {
        fuzz_fail("handle failed without memory exhaustion", NULL);
    }

    switch (out.action) {

    case TIDAL_MCP_NONE:
        if (out.reply != NULL || out.args != NULL || out.id != NULL) {
            fuzz_fail("NONE with something to send", out.reply);
        }

        break;

    case TIDAL_MCP_REPLY:
        why = jsonrpc_check(out.reply, out.reply_len);
        if (why != NULL) {
            fuzz_fail(why, out.reply);
        }

        break;

    case TIDAL_MCP_CALL:
        if (out.tool == NULL || out.tool->role > s->role
            || !json_is_object(out.args)
            || !(json_is_string(out.id) || json_is_integer(out.id))
            || out.reply != NULL)
        {
            fuzz_fail("bad CALL", NULL);
        }

        text = tidal_mcp_tool_reply(out.id,
                                    json_pack("{s:[{s:s, s:s}]}",
                                              "content", "type", "text",
                                              "text", "ok"),
                                    &len);
        why = jsonrpc_check(text, len);
        if (why != NULL) {
            fuzz_fail(why, text);
        }

        free(text);
        break;

    default:
        fuzz_fail("unknown action", NULL);
    }

    fuzz_oracle(data, size, &out, before, s->subscriptions);
    fuzz_updates(s->subscriptions);

    tidal_mcp_out_free(&out);
}


static json_t *
fuzz_meta_hook(tidal_mcp_session_t *s, json_t *params)
{
    return json_incref((json_t *) s->data);
}


/*
 * A channel's state as the transport might give it: silent, a pattern
 * with quotes and non-ASCII text, or for d15 and d16 a failure (NULL)
 * and a value that is not an object.
 */
static json_t *
fuzz_resource_hook(tidal_mcp_session_t *s, int channel)
{
    if (channel < 1 || channel > 19) {
        fuzz_fail("resource_hook called for no resource", NULL);
    }

    switch (channel) {

    case 17:
    case 18:
        return json_pack("{s:[]}", "history");

    case 19:
        return NULL;

    case 15:
        return NULL;

    case 16:
        return json_integer(channel);

    default:
        break;
    }

    if (channel % 2) {
        return json_pack("{s:n, s:b, s:b}", "pattern", "muted", 0,
                         "soloed", 0);
    }

    return json_pack("{s:s, s:b, s:b}",
                     "pattern", "s \"bd*2 [~ sn]\" # vowel \"\xc3\xa9\\\"",
                     "muted", channel == 2, "soloed", channel == 4);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   flags;
    json_t               *meta;
    tidal_mcp_out_t       out;
    tidal_mcp_session_t   s;

    static const char  init[] =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
        "\"params\":{\"protocolVersion\":\"2025-11-25\","
        "\"capabilities\":{},\"clientInfo\":{\"name\":\"fuzz\","
        "\"version\":\"1\"}}}";
    static const char  ready[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

    if (size == 0) {
        return 0;
    }

    flags = data[0];
    data++;
    size--;

    tidal_mcp_session_init(&s, &fuzz_server,
                           (tidal_role_e) (((flags >> 1) & 3) % 3));

    meta = NULL;

    if (!(flags & FUZZ_NO_HOOK)) {
        s.resource_hook = fuzz_resource_hook;
    }

    if (flags & FUZZ_SUBSCRIBED) {
        s.subscriptions = FUZZ_RESOURCES_ALL;
    }

    if (flags & FUZZ_META) {
        meta = json_pack("{s:s}", "tidal/session", "fuzz-session");
        s.initialize_hook = fuzz_meta_hook;
        s.data = meta;
    }

    if (flags & FUZZ_INITIALIZED) {
        if (tidal_mcp_handle(&s, init, sizeof(init) - 1, &out) != 0
            || out.action != TIDAL_MCP_REPLY || !s.initialized)
        {
            fuzz_fail("initialize failed", out.reply);
        }

        tidal_mcp_out_free(&out);

        if (flags & FUZZ_READY) {
            fuzz_run(&s, (const uint8_t *) ready, sizeof(ready) - 1);
        }
    }

    fuzz_run(&s, data, size);
    fuzz_run(&s, data, size);

    if (flags & FUZZ_READY) {
        fuzz_events(data, size);
    }

    json_decref(meta);

    return 0;
}
