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
 * init_meta, bit 4 also sends notifications/initialized.  The rest is one
 * message, run twice through the same session.
 */
#define FUZZ_INITIALIZED   0x01
#define FUZZ_META          0x08
#define FUZZ_READY         0x10


static const tidal_mcp_tool_t  fuzz_tools[] = {
    { "tidal_get_state", "listener tool",
      "{\"type\":\"object\",\"properties\":{}}", TIDAL_ROLE_LISTENER },
    { "tidal_eval", "performer tool",
      "{\"type\":\"object\",\"properties\":{\"pattern\":"
      "{\"type\":\"string\"}},\"required\":[\"pattern\"]}",
      TIDAL_ROLE_PERFORMER },
    { "tidal_admin", NULL, "{broken", TIDAL_ROLE_ADMIN }
};


static const tidal_mcp_server_t  fuzz_server = {
    "fuzz", "0", fuzz_tools, sizeof(fuzz_tools) / sizeof(fuzz_tools[0])
};


static void
fuzz_fail(const char *why, const char *text)
{
    fprintf(stderr, "fuzz_mcp: %s: %s\n", why, text ? text : "(null)");
    abort();
}


/*
 * What a reply must say about the message, independent of the core: a
 * notification is never answered, and a request with a usable id is
 * answered with that id.
 */
static void
fuzz_oracle(const uint8_t *data, size_t size, tidal_mcp_out_t *out)
{
    json_t  *msg, *id, *reply;

    msg = json_loadb((const char *) data, size,
                     JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!json_is_object(msg)) {
        json_decref(msg);
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

    json_decref(msg);
}


static void
fuzz_run(tidal_mcp_session_t *s, const uint8_t *data, size_t size)
{
    char             *text;
    size_t            len;
    const char       *why;
    tidal_mcp_out_t   out;

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

    fuzz_oracle(data, size, &out);

    tidal_mcp_out_free(&out);
}


static json_t *
fuzz_meta_hook(tidal_mcp_session_t *s, json_t *params)
{
    return json_incref((json_t *) s->data);
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

    json_decref(meta);

    return 0;
}
