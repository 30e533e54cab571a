/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/* Unit tests of the MCP core: the JSON-RPC 2.0 texts a client receives. */

#include <string.h>
#include <jansson.h>

#include "unit.h"
#include "tidal_mcp.h"
#include "../fuzz/jsonrpc_check.h"


static const tidal_tool_arg_t  test_pattern_arg[] = {
    { "pattern", NULL },
    { NULL, NULL }
};


static const tidal_tool_t  test_tools[] = {
    { .name = "tidal_get_state", .description = "Channel state",
      .input_schema = "{\"type\":\"object\",\"properties\":{}}",
      .role = TIDAL_ROLE_LISTENER, .where = TIDAL_TOOL_WORKER },
    { .name = "tidal_eval", .description = "Evaluate a pattern",
      .input_schema = "{\"type\":\"object\",\"properties\":{\"pattern\":"
                      "{\"type\":\"string\"}},\"required\":[\"pattern\"]}",
      .role = TIDAL_ROLE_PERFORMER, .where = TIDAL_TOOL_HELPER,
      .args = test_pattern_arg },
    { .name = "tidal_admin_eval", .description = "Any statement",
      .input_schema = "{\"type\":\"object\"}",
      .role = TIDAL_ROLE_ADMIN, .where = TIDAL_TOOL_HELPER },

    /* offered only by a server that runs raw tools, or runs it at all */
    { .name = "tidal_raw_only", .description = "Raw",
      .input_schema = "{\"type\":\"object\"}",
      .role = TIDAL_ROLE_LISTENER, .where = TIDAL_TOOL_HELPER, .raw = 1 },
    { .name = "tidal_elsewhere", .description = "Runs nowhere here",
      .input_schema = "{\"type\":\"object\"}",
      .role = TIDAL_ROLE_LISTENER, .where = 0x80 }
};


static const tidal_mcp_server_t  test_server = {
    "ngx_tidal", "9.8.7", test_tools,
    sizeof(test_tools) / sizeof(test_tools[0]),
    TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER, 0
};


static const tidal_mcp_server_t  raw_server = {
    "raw", "1", test_tools, sizeof(test_tools) / sizeof(test_tools[0]),
    TIDAL_TOOL_HELPER, 1
};


static const tidal_mcp_server_t  empty_server = {
    "empty", "1", NULL, 0, TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER, 1
};


static tidal_mcp_action_e  last_action;


static long  alloc_count;            /* allocations so far */
static long  alloc_fail_at = -1;     /* the one to refuse, -1: none */
static int   alloc_fail_rest;        /* and every one after it */
static int   alloc_failed;


static void *
alloc_limited(size_t size)
{
    long  n;

    n = alloc_count++;

    if (alloc_fail_at >= 0
        && (n == alloc_fail_at || (alloc_fail_rest && n > alloc_fail_at)))
    {
        alloc_failed = 1;
        return NULL;
    }

    return malloc(size);
}


/*
 * Sends len bytes as one message and returns the parsed reply, or NULL
 * when there is none (last_action tells NONE from CALL).  Every reply is
 * checked to be valid JSON-RPC 2.0.
 */
static json_t *
send_raw(tidal_mcp_session_t *s, const char *msg, size_t len)
{
    json_t           *reply;
    const char       *why;
    tidal_mcp_out_t   out;

    reply = NULL;

    CHECK_EQ(tidal_mcp_handle(s, msg, len, &out), 0);

    last_action = out.action;

    if (out.action == TIDAL_MCP_REPLY) {
        why = jsonrpc_check(out.reply, out.reply_len);
        if (!CHECK(why == NULL)) {
            printf("    %s: %s\n", why, out.reply);
        }

        reply = json_loads(out.reply, 0, NULL);

    } else {
        CHECK(out.reply == NULL);
    }

    tidal_mcp_out_free(&out);

    return reply;
}


/* as send_raw(), with ' written for " to keep the messages readable */
static json_t *
send_msg(tidal_mcp_session_t *s, const char *text)
{
    char    *msg, *p;
    json_t  *reply;
    size_t   len;

    len = strlen(text);

    msg = malloc(len + 1);
    if (msg == NULL) {
        abort();
    }

    memcpy(msg, text, len + 1);

    for (p = msg; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }

    reply = send_raw(s, msg, len);

    free(msg);

    return reply;
}


static int
id_is(json_t *reply, const char *id)
{
    int      ok;
    json_t  *want;

    want = json_loads(id, JSON_DECODE_ANY, NULL);
    ok = json_equal(json_object_get(reply, "id"), want);
    json_decref(want);

    return ok;
}


/*
 * 1 when reply is an error with this id (JSON text), code and message
 * (NULL: any; ending in '*': a prefix); consumes reply.
 */
static int
error_is(json_t *reply, const char *id, int code, const char *message)
{
    int          ok;
    size_t       n;
    json_t      *error;
    const char  *text;

    error = json_object_get(reply, "error");
    text = json_string_value(json_object_get(error, "message"));

    ok = reply != NULL && id_is(reply, id)
         && json_integer_value(json_object_get(error, "code")) == code
         && text != NULL;

    if (ok && message != NULL) {
        n = strlen(message);

        if (n > 0 && message[n - 1] == '*') {
            ok = strncmp(text, message, n - 1) == 0;

        } else {
            ok = strcmp(text, message) == 0;
        }
    }

    if (!ok) {
        text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
        printf("    wanted id %s, error %d \"%s\"; got %s\n", id, code,
               message ? message : "", text ? text : "no reply");
        free((char *) text);
    }

    json_decref(reply);

    return ok;
}


/* the result of a success reply with this id, or NULL; consumes reply */
static json_t *
result_of(json_t *reply, const char *id)
{
    json_t  *result;

    result = NULL;

    if (id_is(reply, id)) {
        result = json_incref(json_object_get(reply, "result"));
    }

    json_decref(reply);

    return result;
}


static int
no_reply(json_t *reply)
{
    if (reply != NULL) {
        json_decref(reply);
        return 0;
    }

    return last_action == TIDAL_MCP_NONE;
}


static void
session_ready(tidal_mcp_session_t *s, const tidal_mcp_server_t *server,
    tidal_role_e role)
{
    json_t  *result;

    tidal_mcp_session_init(s, server, role);

    result = result_of(send_msg(s,
        "{'jsonrpc':'2.0','id':0,'method':'initialize','params':"
        "{'protocolVersion':'2025-11-25','capabilities':{},"
        "'clientInfo':{'name':'unit','version':'1'}}}"), "0");

    CHECK(result != NULL);
    CHECK(s->initialized);
    CHECK(no_reply(send_msg(s,
        "{'jsonrpc':'2.0','method':'notifications/initialized'}")));
    CHECK(s->client_ready);

    json_decref(result);
}


/* parsed result version of initialize with this protocolVersion JSON */
static json_t *
initialize_with(tidal_mcp_session_t *s, const char *version)
{
    char  msg[256];

    snprintf(msg, sizeof(msg),
             "{'jsonrpc':'2.0','id':1,'method':'initialize','params':"
             "{'protocolVersion':%s,'capabilities':{}}}", version);

    return result_of(send_msg(s, msg), "1");
}


UNIT_TEST(parse_error)
{
    tidal_mcp_session_t  s;

    static const char  nul_after[] = "{\"jsonrpc\":\"2.0\"}\0{}";
    static const char  nul_inside[] = "{\"jsonrpc\":\"2.\0\"}";

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_ADMIN);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,"), "null",
                   -32700, "Parse error: string or '}' expected near end "
                           "of file at line 1, column 24"));
    CHECK(error_is(send_msg(&s, "{'a':\n  tru}"), "null", -32700,
                   "Parse error: invalid token near 'tru' "
                   "at line 2, column 5"));
    CHECK(error_is(send_msg(&s, "{'id':1} x"), "null", -32700,
                   "Parse error: end of file expected near 'x'*"));
    CHECK(error_is(send_msg(&s, ""), "null", -32700, "Parse error: *"));
    CHECK(error_is(send_raw(&s, NULL, 0), "null", -32700, NULL));
    CHECK(error_is(send_msg(&s, "{'id':1,'id':2,'method':'ping'}"), "null",
                   -32700, "Parse error: duplicate object key*"));

    /* embedded NUL bytes, raw or escaped */
    CHECK(error_is(send_raw(&s, nul_after, sizeof(nul_after) - 1), "null",
                   -32700, NULL));
    CHECK(error_is(send_raw(&s, nul_inside, sizeof(nul_inside) - 1),
                   "null", -32700, NULL));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':'a\\u0000',"
                                "'method':'ping'}"), "null", -32700, NULL));

    /* valid JSON with an escaped NUL elsewhere: refused with its id */
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':7,'method':'ping',"
                                "'params':{'x':'a\\u0000b'}}"), "7", -32600,
                   "Invalid Request: strings must not contain U+0000"));
    CHECK(send_msg(&s, "{'jsonrpc':'2.0','method':'notifications/x',"
                       "'params':{'x':'\\u0000'}}") == NULL);

    /* bytes that are not UTF-8 are not quoted back raw */
    CHECK(error_is(send_msg(&s, "{'a':'\xc3'}"), "null", -32700,
                   "Parse error: unable to decode byte 0xc3*"));
    CHECK(error_is(send_msg(&s, "\xff\xfe{}"), "null", -32700, NULL));

    /* numbers jansson cannot hold */
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':"
                                "123456789012345678901234567890,"
                                "'method':'ping'}"), "null", -32700,
                   "Parse error: too big integer*"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,'method':'ping',"
                                "'params':{'x':1e999}}"), "null", -32700,
                   "Parse error: real number overflow*"));

    CHECK(!s.initialized);
}


UNIT_TEST(deep_nesting)
{
    char                 *msg;
    json_t               *result;
    size_t                i, depth, len;
    tidal_mcp_session_t   s;

    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);

    depth = 100000;
    len = 2 * depth;

    msg = malloc(len);
    if (msg == NULL) {
        abort();
    }

    for (i = 0; i < depth; i++) {
        msg[i] = '[';
        msg[len - 1 - i] = ']';
    }

    CHECK(error_is(send_raw(&s, msg, len), "null", -32700,
                   "Parse error: maximum parsing depth reached*"));

    /* nesting jansson accepts is just a parameter we do not look at */
    free(msg);
    msg = malloc(64 + 2 * 1000);
    if (msg == NULL) {
        abort();
    }

    len = sprintf(msg, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\","
                       "\"params\":{\"x\":");
    memset(msg + len, '[', 1000);
    memset(msg + len + 1000, ']', 1000);
    len += 2000;
    memcpy(msg + len, "}}", 2);
    len += 2;

    result = result_of(send_raw(&s, msg, len), "5");
    CHECK(json_is_object(result));
    json_decref(result);

    free(msg);
}


UNIT_TEST(not_an_object)
{
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);

    CHECK(error_is(send_msg(&s, "[{'jsonrpc':'2.0','id':1,"
                                "'method':'ping'}]"), "null", -32600,
                   "Invalid Request: batches are not supported"));
    CHECK(error_is(send_msg(&s, "[]"), "null", -32600,
                   "Invalid Request: batches are not supported"));
    CHECK(error_is(send_msg(&s, "3"), "null", -32600,
                   "Invalid Request: a message must be a JSON object"));
    CHECK(error_is(send_msg(&s, "'ping'"), "null", -32600,
                   "Invalid Request: a message must be a JSON object"));
    CHECK(error_is(send_msg(&s, "null"), "null", -32600,
                   "Invalid Request: a message must be a JSON object"));
}


UNIT_TEST(invalid_id)
{
    size_t               i;
    char                 msg[128];
    tidal_mcp_session_t  s;

    static const char  *ids[] = {
        "null", "true", "1.5", "1e3", "{}", "[]", "['a']"
    };

    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        snprintf(msg, sizeof(msg),
                 "{'jsonrpc':'2.0','id':%s,'method':'ping'}", ids[i]);

        CHECK(error_is(send_msg(&s, msg), "null", -32600,
                       "Invalid Request: id must be a string "
                       "or an integer"));
    }

    /* bad ids win over other faults: there is no id to answer with */
    CHECK(error_is(send_msg(&s, "{'id':false}"), "null", -32600,
                   "Invalid Request: id must be a string or an integer"));
}


UNIT_TEST(invalid_request_echoes_id)
{
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'1.0','id':7,'method':'ping'}"),
                   "7", -32600, "Invalid Request: jsonrpc must be \"2.0\""));
    CHECK(error_is(send_msg(&s, "{'id':'abc','method':'ping'}"),
                   "\"abc\"", -32600,
                   "Invalid Request: jsonrpc must be \"2.0\""));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':2.0,'id':-3,'method':'ping'}"),
                   "-3", -32600, "Invalid Request: jsonrpc must be \"2.0\""));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':8,'method':5}"),
                   "8", -32600, "Invalid Request: method must be a string"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':9,'method':null}"),
                   "9", -32600, "Invalid Request: method must be a string"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':''}"), "\"\"",
                   -32600, "Invalid Request: method is missing"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0'}"), "null", -32600,
                   "Invalid Request: method is missing"));
    CHECK(error_is(send_msg(&s, "{}"), "null", -32600,
                   "Invalid Request: method is missing"));

    /* the largest and smallest ids jansson holds come back unchanged */
    CHECK(error_is(send_msg(&s, "{'id':9223372036854775807,"
                                "'method':'ping'}"),
                   "9223372036854775807", -32600, NULL));
    CHECK(error_is(send_msg(&s, "{'id':-9223372036854775808,"
                                "'method':'ping'}"),
                   "-9223372036854775808", -32600, NULL));
}


UNIT_TEST(params_must_be_object)
{
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,'method':'ping',"
                                "'params':[]}"),
                   "1", -32602, "Invalid params: params must be an object"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':'q',"
                                "'method':'tools/list','params':'x'}"),
                   "\"q\"", -32602,
                   "Invalid params: params must be an object"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                "'method':'tools/call','params':null}"),
                   "2", -32602, "Invalid params: params must be an object"));
}


UNIT_TEST(client_responses_ignored)
{
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);

    CHECK(no_reply(send_msg(&s, "{'jsonrpc':'2.0','id':1,'result':{}}")));
    CHECK(no_reply(send_msg(&s, "{'jsonrpc':'2.0','id':'s-1','error':"
                                "{'code':-32601,'message':'no'}}")));

    /* a client that could not parse something of ours */
    CHECK(no_reply(send_msg(&s, "{'jsonrpc':'2.0','id':null,'error':"
                                "{'code':-32700,'message':'bad'}}")));

    /* a result needs the id of what it answers */
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','result':{}}"), "null",
                   -32600, "Invalid Request: method is missing"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':null,'result':{}}"),
                   "null", -32600,
                   "Invalid Request: id must be a string or an integer"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1.5,'result':{}}"),
                   "null", -32600,
                   "Invalid Request: id must be a string or an integer"));
}


UNIT_TEST(notifications_never_answered)
{
    size_t               i;
    tidal_mcp_session_t  s;

    static const char  *notes[] = {
        "{'jsonrpc':'2.0','method':'notifications/initialized'}",
        ("{'jsonrpc':'2.0','method':'notifications/cancelled','params':"
         "{'requestId':3,'reason':'user'}}"),
        "{'jsonrpc':'2.0','method':'notifications/roots/list_changed'}",
        "{'jsonrpc':'2.0','method':'no/such/thing'}",
        "{'jsonrpc':'2.0','method':'tools/list'}",
        "{'jsonrpc':'2.0','method':'initialize','params':{}}",
        "{'jsonrpc':'1.0','method':'notifications/initialized'}",
        "{'method':'ping'}",
        "{'jsonrpc':'2.0','method':5}",
        "{'jsonrpc':'2.0','method':null}",
        "{'jsonrpc':'2.0','method':'ping','params':[1]}",
        "{'jsonrpc':'2.0','method':'notifications/cancelled','params':7}",
        "{'jsonrpc':'2.0','method':'x','result':{},'error':1}"
    };

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_ADMIN);

    for (i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
        if (!CHECK(no_reply(send_msg(&s, notes[i])))) {
            printf("    answered: %s\n", notes[i]);
        }
    }

    /* initialize sent as a notification does not initialize */
    CHECK(!s.initialized);

    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);

    for (i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
        if (!CHECK(no_reply(send_msg(&s, notes[i])))) {
            printf("    answered: %s\n", notes[i]);
        }
    }
}


UNIT_TEST(initialized_notification)
{
    tidal_mcp_session_t  s;
    json_t              *result;

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);

    /* too early: ignored */
    CHECK(no_reply(send_msg(&s, "{'jsonrpc':'2.0',"
                                "'method':'notifications/initialized'}")));
    CHECK(!s.client_ready);

    result = initialize_with(&s, "'2025-11-25'");
    CHECK(result != NULL);
    json_decref(result);
    CHECK(!s.client_ready);

    /* malformed: ignored */
    CHECK(no_reply(send_msg(&s, "{'jsonrpc':'2.0',"
                                "'method':'notifications/initialized',"
                                "'params':1}")));
    CHECK(!s.client_ready);

    CHECK(no_reply(send_msg(&s, "{'jsonrpc':'2.0',"
                                "'method':'notifications/initialized'}")));
    CHECK(s.client_ready);
}


UNIT_TEST(method_not_found)
{
    size_t               len;
    char                 msg[512];
    const char          *text;
    json_t              *reply, *error;
    tidal_mcp_session_t  s;

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_ADMIN);

    /* before initialize too: the method does not exist either way */
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                "'method':'sampling/createMessage'}"), "1",
                   -32601, "Method not found: sampling/createMessage"));

    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':'m',"
                                "'method':'elicitation/create',"
                                "'params':{}}"),
                   "\"m\"", -32601, "Method not found: elicitation/create"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':2,'method':''}"),
                   "2", -32601, "Method not found: "));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                "'method':'Tools/List'}"), "3", -32601,
                   "Method not found: Tools/List"));

    /* control characters do not reach the message */
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                "'method':'a\\nb\\u0007c\\u007f'}"), "4",
                   -32601, "Method not found: a?b?c?"));

    /* a long name is cut, not a UTF-8 sequence */
    len = (size_t) snprintf(msg, sizeof(msg),
                            "{'jsonrpc':'2.0','id':5,'method':'");
    for ( /* void */ ; len < 300; len += 2) {
        memcpy(msg + len, "\xc3\xa9", 2);
    }
    memcpy(msg + len, "'}", 3);

    reply = send_msg(&s, msg);
    error = json_object_get(reply, "error");
    text = json_string_value(json_object_get(error, "message"));

    CHECK_EQ(json_integer_value(json_object_get(error, "code")), -32601);
    CHECK(text != NULL && strlen(text) < 100);
    CHECK(text != NULL && strncmp(text, "Method not found: \xc3\xa9", 20)
                          == 0);
    CHECK(text != NULL && strcmp(text + strlen(text) - 5, "\xc3\xa9...")
                          == 0);

    json_decref(reply);
}


static const char  *resource_methods[] = {
    "resources/list", "resources/templates/list", "resources/read",
    "resources/subscribe", "resources/unsubscribe"
};


UNIT_TEST(not_initialized)
{
    size_t               i;
    char                 msg[160], id[16];
    json_t              *result;
    tidal_mcp_session_t  s;

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_ADMIN);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                "'method':'tools/list'}"), "1", -32600,
                   "Server not initialized: send initialize first"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':'c',"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_get_state'}}"), "\"c\"",
                   -32600, "Server not initialized: send initialize first"));
    CHECK(last_action == TIDAL_MCP_REPLY);
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                "'method':'logging/setLevel','params':"
                                "{'level':'debug'}}"), "3", -32600,
                   "Server not initialized: send initialize first"));
    CHECK_EQ(s.log_level, TIDAL_MCP_LOG_INFO);

    for (i = 0; i < sizeof(resource_methods) / sizeof(resource_methods[0]);
         i++)
    {
        snprintf(msg, sizeof(msg),
                 "{'jsonrpc':'2.0','id':%zu,'method':'%s','params':"
                 "{'uri':'tidal://channel/d1'}}", i, resource_methods[i]);
        snprintf(id, sizeof(id), "%zu", i);

        CHECK(error_is(send_msg(&s, msg), id, -32600,
                       "Server not initialized: send initialize first"));
    }

    CHECK_EQ(s.subscriptions, 0);

    /* ping is allowed at any time, with or without params */
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                    "'method':'ping'}"), "4");
    CHECK(json_is_object(result) && json_object_size(result) == 0);
    json_decref(result);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':'p',"
                                    "'method':'ping','params':{}}"), "\"p\"");
    CHECK(json_is_object(result) && json_object_size(result) == 0);
    json_decref(result);

    CHECK(!s.initialized);
}


UNIT_TEST(version_negotiation)
{
    size_t               i;
    char                 quoted[32];
    json_t              *result;
    tidal_mcp_session_t  s;

    static const char  *supported[] = {
        "2025-11-25", "2025-06-18", "2025-03-26"
    };

    for (i = 0; i < sizeof(supported) / sizeof(supported[0]); i++) {
        tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
        snprintf(quoted, sizeof(quoted), "'%s'", supported[i]);

        result = initialize_with(&s, quoted);
        CHECK_STR(json_string_value(json_object_get(result,
                                                    "protocolVersion")),
                  supported[i]);
        CHECK_STR(s.protocol_version, supported[i]);
        CHECK(s.initialized);
        json_decref(result);
    }

    /* anything else: our latest, and the client decides */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    result = initialize_with(&s, "'2024-11-05'");
    CHECK_STR(json_string_value(json_object_get(result, "protocolVersion")),
              "2025-11-25");
    CHECK_STR(s.protocol_version, TIDAL_MCP_LATEST_VERSION);
    json_decref(result);

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    result = initialize_with(&s, "''");
    CHECK_STR(json_string_value(json_object_get(result, "protocolVersion")),
              "2025-11-25");
    json_decref(result);

    /* missing or not a string: refused, and still not initialized */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                "'method':'initialize'}"), "1", -32602,
                   "Invalid params: protocolVersion is required"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                "'method':'initialize','params':"
                                "{'capabilities':{}}}"), "2", -32602,
                   "Invalid params: protocolVersion is required"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                "'method':'initialize','params':"
                                "{'protocolVersion':20251125}}"), "3",
                   -32602, "Invalid params: protocolVersion "
                           "must be a string"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                "'method':'initialize','params':"
                                "{'protocolVersion':'2025-11-25',"
                                "'clientInfo':'me'}}"), "4", -32602,
                   "Invalid params: clientInfo must be an object"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':5,"
                                "'method':'initialize','params':"
                                "{'protocolVersion':'2025-11-25',"
                                "'clientInfo':{'name':1}}}"), "5", -32602,
                   "Invalid params: clientInfo.name must be a string"));

    CHECK(!s.initialized);
    CHECK(s.protocol_version == NULL);
}


/* the _meta hook hands back the object stored in data */
static json_t *
test_meta_hook(tidal_mcp_session_t *s, json_t *params)
{
    (void) params;

    return json_incref((json_t *) s->data);
}


/* what the transport's hook sees: the room names the session by it */

static json_t *
test_name_hook(tidal_mcp_session_t *s, json_t *params)
{
    (void) params;

    return json_pack("{s:s}", "seen", s->client_name);
}


UNIT_TEST(initialize_result)
{
    json_t              *result, *caps, *info, *want, *meta;
    tidal_mcp_session_t  s;

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);

    result = result_of(send_msg(&s,
        "{'jsonrpc':'2.0','id':'init','method':'initialize','params':"
        "{'protocolVersion':'2025-11-25','capabilities':{'roots':{}},"
        "'clientInfo':{'name':'Claude','version':'1.0'}}}"), "\"init\"");

    caps = json_object_get(result, "capabilities");
    info = json_object_get(result, "serverInfo");

    /*
     * only what exists: tools, logging, subscribable fixed resources, one
     * fixed prompt, completion of its argument
     */
    want = json_loads("{\"tools\":{\"listChanged\":false},\"logging\":{},"
                      "\"resources\":{\"subscribe\":true,"
                      "\"listChanged\":false},"
                      "\"prompts\":{\"listChanged\":false},"
                      "\"completions\":{}}", 0, NULL);
    CHECK(json_equal(caps, want));
    json_decref(want);

    CHECK_STR(json_string_value(json_object_get(info, "name")), "ngx_tidal");
    CHECK_STR(json_string_value(json_object_get(info, "version")), "9.8.7");
    CHECK(json_is_string(json_object_get(result, "instructions")));
    CHECK(json_object_get(result, "_meta") == NULL);
    CHECK_STR(s.client_name, "Claude");
    CHECK(s.initialized);
    CHECK(!s.client_ready);

    json_decref(result);

    /* a second initialize is refused and changes nothing */
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                "'method':'initialize','params':"
                                "{'protocolVersion':'2025-03-26',"
                                "'clientInfo':{'name':'other'}}}"), "2",
                   -32600, "Already initialized"));
    CHECK_STR(s.protocol_version, "2025-11-25");
    CHECK_STR(s.client_name, "Claude");

    /* the _meta hook */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    meta = json_pack("{s:s}", "tidal/session", "c0ffee");
    s.initialize_hook = test_meta_hook;
    s.data = meta;

    result = initialize_with(&s, "'2025-11-25'");
    CHECK(json_equal(json_object_get(result, "_meta"), meta));
    CHECK_STR(s.client_name, "");
    json_decref(result);
    json_decref(meta);

    /* the hook sees the client's name, already made safe */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    s.initialize_hook = test_name_hook;

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                    "'method':'initialize','params':"
                                    "{'protocolVersion':'2025-11-25',"
                                    "'clientInfo':{'name':'al\\nice'}}}"), "1");
    CHECK_STR(json_string_value(json_object_get(
                  json_object_get(result, "_meta"), "seen")), "al?ice");
    json_decref(result);
}


UNIT_TEST(client_name)
{
    char                 msg[512];
    size_t               len, i;
    json_t              *result;
    tidal_mcp_session_t  s;

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    result = result_of(send_msg(&s,
        "{'jsonrpc':'2.0','id':1,'method':'initialize','params':"
        "{'protocolVersion':'2025-11-25','clientInfo':"
        "{'name':'caf\\u00e9\\t\\r\\nx\\u001b[31m'}}}"), "1");
    CHECK(result != NULL);
    CHECK_STR(s.client_name, "caf\xc3\xa9???x?[31m");
    json_decref(result);

    /* too long: cut between characters, the cut marked */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    len = (size_t) snprintf(msg, sizeof(msg),
                            "{'jsonrpc':'2.0','id':1,'method':'initialize',"
                            "'params':{'protocolVersion':'2025-11-25',"
                            "'clientInfo':{'name':'a");
    for (i = 0; i < 100; i++, len += 3) {
        memcpy(msg + len, "\xe2\x99\xaa", 3);
    }
    memcpy(msg + len, "'}}}", 5);

    result = result_of(send_msg(&s, msg), "1");
    CHECK(result != NULL);
    json_decref(result);

    len = strlen(s.client_name);
    CHECK(len < sizeof(s.client_name));
    CHECK(len > 50);
    CHECK(strncmp(s.client_name, "a\xe2\x99\xaa", 4) == 0);
    CHECK(strcmp(s.client_name + len - 6, "\xe2\x99\xaa...") == 0);
    CHECK_EQ((len - 4) % 3, 0);
}


UNIT_TEST(tools_list_by_role)
{
    size_t               i;
    json_t              *result, *tools, *tool, *schema;
    tidal_mcp_session_t  s;

    static const char  *names[] = {
        "tidal_get_state", "tidal_eval", "tidal_admin_eval"
    };

    for (i = 0; i < 3; i++) {
        session_ready(&s, &test_server, (tidal_role_e) i);

        result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                        "'method':'tools/list'}"), "1");
        tools = json_object_get(result, "tools");

        CHECK(json_is_array(tools));
        CHECK_EQ(json_array_size(tools), i + 1);

        tool = json_array_get(tools, i);
        CHECK_STR(json_string_value(json_object_get(tool, "name")),
                  names[i]);
        CHECK_STR(json_string_value(json_object_get(tool, "description")),
                  test_tools[i].description);

        schema = json_loads(test_tools[i].input_schema, 0, NULL);
        CHECK(json_equal(json_object_get(tool, "inputSchema"), schema));
        json_decref(schema);

        json_decref(result);
    }

    /* params are optional, a cursor is ignored: one page holds all */
    session_ready(&s, &test_server, TIDAL_ROLE_PERFORMER);
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':'x',"
                                    "'method':'tools/list','params':"
                                    "{'cursor':'abc'}}"), "\"x\"");
    CHECK_EQ(json_array_size(json_object_get(result, "tools")), 2);
    CHECK(json_object_get(result, "nextCursor") == NULL);
    json_decref(result);

    session_ready(&s, &empty_server, TIDAL_ROLE_ADMIN);
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                    "'method':'tools/list'}"), "2");
    tools = json_object_get(result, "tools");
    CHECK(json_is_array(tools) && json_array_size(tools) == 0);
    json_decref(result);
}


UNIT_TEST(tools_call_dispatch)
{
    char                 *text;
    size_t                len;
    json_t               *want, *got;
    tidal_mcp_out_t       out;
    tidal_mcp_session_t   s;

    static const char  call[] =
        "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\","
        "\"params\":{\"name\":\"tidal_eval\",\"arguments\":"
        "{\"pattern\":\"d1 $ s \\\"bd\\\"\"}}}";
    static const char  bare[] =
        "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"tools/call\","
        "\"params\":{\"name\":\"tidal_get_state\"}}";

    session_ready(&s, &test_server, TIDAL_ROLE_PERFORMER);

    CHECK_EQ(tidal_mcp_handle(&s, call, sizeof(call) - 1, &out), 0);
    CHECK_EQ(out.action, TIDAL_MCP_CALL);
    CHECK(out.reply == NULL);
    CHECK(out.tool == &test_tools[1]);
    CHECK_STR(json_string_value(out.id), "c1");
    CHECK_STR(json_string_value(json_object_get(out.args, "pattern")),
              "d1 $ s \"bd\"");
    CHECK_EQ(json_object_size(out.args), 1);
    tidal_mcp_out_free(&out);
    CHECK(out.args == NULL && out.id == NULL && out.reply == NULL);

    /* no arguments: an empty object, still the caller's to free */
    CHECK_EQ(tidal_mcp_handle(&s, bare, sizeof(bare) - 1, &out), 0);
    CHECK_EQ(out.action, TIDAL_MCP_CALL);
    CHECK(out.tool == &test_tools[0]);
    CHECK_EQ(json_integer_value(out.id), 42);
    CHECK(json_is_object(out.args) && json_object_size(out.args) == 0);

    want = json_loads("{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":"
                      "{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],"
                      "\"isError\":false}}", 0, NULL);

    /* the deferred answer, built from the id the CALL carried */
    text = tidal_mcp_tool_reply(out.id,
                                json_pack("{s:[{s:s, s:s}], s:b}",
                                          "content", "type", "text",
                                          "text", "ok", "isError", 0),
                                &len);
    CHECK(jsonrpc_check(text, len) == NULL);
    got = json_loads(text ? text : "", 0, NULL);
    CHECK(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    free(text);
    tidal_mcp_out_free(&out);
}


UNIT_TEST(tools_call_errors)
{
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                "'method':'tools/call'}"), "1", -32602,
                   "Invalid params: name is required"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                "'method':'tools/call','params':"
                                "{'arguments':{}}}"), "2", -32602,
                   "Invalid params: name is required"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                "'method':'tools/call','params':"
                                "{'name':['tidal_eval']}}"), "3", -32602,
                   "Invalid params: name must be a string"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_get_state',"
                                "'arguments':[]}}"), "4", -32602,
                   "Invalid params: arguments must be an object"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':5,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_get_state',"
                                "'arguments':null}}"), "5", -32602,
                   "Invalid params: arguments must be an object"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':'u',"
                                "'method':'tools/call','params':"
                                "{'name':'rm -rf'}}"), "\"u\"", -32602,
                   "Unknown tool: rm -rf"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':6,"
                                "'method':'tools/call','params':"
                                "{'name':'bad\\ttool'}}"), "6", -32602,
                   "Unknown tool: bad?tool"));

    /* hidden from this role, and the reason said */
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':7,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_eval','arguments':"
                                "{'pattern':'x'}}}"), "7", -32602,
                   "Tool tidal_eval requires role performer"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':8,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_admin_eval'}}"), "8",
                   -32602, "Tool tidal_admin_eval requires role admin"));

    session_ready(&s, &empty_server, TIDAL_ROLE_ADMIN);
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':9,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_eval'}}"), "9", -32602,
                   "Unknown tool: tidal_eval"));
}


/* a call the tool's row refuses is answered at once: isError, and why */
UNIT_TEST(tools_call_checked)
{
    json_t               *result;
    tidal_mcp_out_t       out;
    tidal_mcp_session_t   s;

    static const char  call[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
        "\"params\":{\"name\":\"tidal_eval\",\"arguments\":"
        "{\"pattern\":\"x\",\"chanel\":\"d1\"}}}";

    session_ready(&s, &test_server, TIDAL_ROLE_PERFORMER);

    CHECK_EQ(tidal_mcp_handle(&s, call, sizeof(call) - 1, &out), 0);
    CHECK_EQ(out.action, TIDAL_MCP_REPLY);
    CHECK(out.tool == NULL && out.args == NULL && out.id == NULL);
    CHECK(jsonrpc_check(out.reply, out.reply_len) == NULL);
    tidal_mcp_out_free(&out);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                    "'method':'tools/call','params':"
                                    "{'name':'tidal_get_state',"
                                    "'arguments':{'limit':3}}}"), "2");
    CHECK(json_is_true(json_object_get(result, "isError")));
    CHECK_STR(json_string_value(json_object_get(json_array_get(
                  json_object_get(result, "content"), 0), "text")),
              "Unknown argument \"limit\"");
    json_decref(result);
}


/* a server offers the rows that run where it does; raw ones if it may */
UNIT_TEST(tools_offered_by_server)
{
    size_t               i;
    json_t              *result, *tools;
    tidal_mcp_session_t  s;

    static const char  *names[] = {
        "tidal_eval", "tidal_admin_eval", "tidal_raw_only"
    };

    session_ready(&s, &raw_server, TIDAL_ROLE_ADMIN);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                    "'method':'tools/list'}"), "1");
    tools = json_object_get(result, "tools");
    CHECK_EQ(json_array_size(tools), 3);

    for (i = 0; i < 3; i++) {
        CHECK_STR(json_string_value(json_object_get(json_array_get(tools, i),
                                                    "name")),
                  names[i]);
    }

    json_decref(result);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_get_state'}}"), "2", -32602,
                   "Unknown tool: tidal_get_state"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_elsewhere'}}"), "3", -32602,
                   "Unknown tool: tidal_elsewhere"));

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                    "'method':'tools/call','params':"
                                    "{'name':'tidal_raw_only'}}"), "4");
    CHECK(result == NULL && last_action == TIDAL_MCP_CALL);

    /* without raw, the raw row does not exist */
    session_ready(&s, &test_server, TIDAL_ROLE_ADMIN);
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':5,"
                                "'method':'tools/call','params':"
                                "{'name':'tidal_raw_only'}}"), "5", -32602,
                   "Unknown tool: tidal_raw_only"));
}


UNIT_TEST(logging_set_level)
{
    int                  i;
    char                 msg[160], id[16];
    json_t              *result;
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);
    CHECK_EQ(s.log_level, TIDAL_MCP_LOG_INFO);

    for (i = TIDAL_MCP_LOG_EMERGENCY; i >= TIDAL_MCP_LOG_DEBUG; i--) {
        snprintf(msg, sizeof(msg),
                 "{'jsonrpc':'2.0','id':%d,'method':'logging/setLevel',"
                 "'params':{'level':'%s'}}", i, tidal_mcp_log_level_name(i));
        snprintf(id, sizeof(id), "%d", i);

        result = result_of(send_msg(&s, msg), id);
        CHECK(json_is_object(result) && json_object_size(result) == 0);
        CHECK_EQ(s.log_level, i);
        json_decref(result);
    }

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                "'method':'logging/setLevel','params':"
                                "{'level':'loud'}}"), "1", -32602,
                   "Invalid params: level must be one of debug, info, "
                   "notice, warning, error, critical, alert, emergency"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                "'method':'logging/setLevel','params':"
                                "{'level':'DEBUG'}}"), "2", -32602, NULL));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                "'method':'logging/setLevel','params':"
                                "{'level':3}}"), "3", -32602, NULL));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                "'method':'logging/setLevel'}"), "4",
                   -32602, NULL));
    CHECK_EQ(s.log_level, TIDAL_MCP_LOG_DEBUG);

    CHECK(tidal_mcp_log_level_name(-1) == NULL);
    CHECK(tidal_mcp_log_level_name(8) == NULL);
}


/*
 * What the transport's resource_hook answers: a state object naming the
 * channel (pattern null for channel 5, silent), NULL, or a non-object;
 * every call is counted and the channel asked for kept.
 */
static enum {
    HOOK_STATE = 0,
    HOOK_NULL,
    HOOK_NOT_OBJECT
}                    hook_mode;
static int           hook_calls;
static int           hook_channel;


static json_t *
test_resource_hook(tidal_mcp_session_t *s, int channel)
{
    char  pattern[64];

    (void) s;

    hook_calls++;
    hook_channel = channel;

    switch (hook_mode) {

    case HOOK_NULL:
        return NULL;

    case HOOK_NOT_OBJECT:
        return json_string("not an object");

    default:
        break;
    }

    if (channel == 5) {
        return json_pack("{s:n, s:b, s:b}", "pattern", "muted", 1,
                         "soloed", 0);
    }

    snprintf(pattern, sizeof(pattern), "s \"bd*%d\" # vowel \"\xc3\xa9\"",
             channel);

    return json_pack("{s:s, s:b, s:b}", "pattern", pattern,
                     "muted", 0, "soloed", channel == 16);
}


/* the one resources/read content of reply, checked to be well formed */
static const char *
read_text(json_t *result, const char *uri)
{
    json_t  *contents, *item;

    contents = json_object_get(result, "contents");
    item = json_array_get(contents, 0);

    CHECK(json_is_array(contents) && json_array_size(contents) == 1);
    CHECK_EQ(json_object_size(item), 3);
    CHECK_STR(json_string_value(json_object_get(item, "uri")), uri);
    CHECK_STR(json_string_value(json_object_get(item, "mimeType")),
              "application/json");

    return json_string_value(json_object_get(item, "text"));
}


UNIT_TEST(resources_list)
{
    int                  n;
    char                 uri[32], name[16], title[32];
    json_t              *result, *resources, *item, *want;
    const char          *description;
    tidal_mcp_session_t  s;

    /* a listener reads and subscribes: no role is needed */
    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':'rl',"
                                    "'method':'resources/list'}"), "\"rl\"");
    resources = json_object_get(result, "resources");

    CHECK_EQ(json_object_size(result), 1);
    CHECK(json_is_array(resources));
    CHECK_EQ(json_array_size(resources), 19);

    for (n = 1; n <= 16; n++) {
        item = json_array_get(resources, n - 1);
        snprintf(uri, sizeof(uri), "tidal://channel/d%d", n);
        snprintf(name, sizeof(name), "d%d", n);
        snprintf(title, sizeof(title), "Channel d%d", n);

        CHECK_EQ(json_object_size(item), 5);
        CHECK_STR(json_string_value(json_object_get(item, "uri")), uri);
        CHECK_STR(json_string_value(json_object_get(item, "name")), name);
        CHECK_STR(json_string_value(json_object_get(item, "title")), title);
        CHECK_STR(json_string_value(json_object_get(item, "mimeType")),
                  "application/json");

        description = json_string_value(json_object_get(item,
                                                        "description"));
        CHECK(description != NULL && strstr(description, name) != NULL);

        /* every listed uri is one the other methods accept */
        CHECK_EQ(tidal_mcp_channel_from_uri(uri), n);
    }

    for (n = 17; n <= 19; n++) {
        static const char  *room[] = {
            "tidal://state", "tidal://history", "tidal://chat"
        };

        item = json_array_get(resources, n - 1);

        CHECK_EQ(json_object_size(item), 5);
        CHECK_STR(json_string_value(json_object_get(item, "uri")),
                  room[n - 17]);
        CHECK_STR(json_string_value(json_object_get(item, "mimeType")),
                  "application/json");
        CHECK_EQ(tidal_mcp_resource_from_uri(room[n - 17]), n);
    }

    CHECK_EQ(TIDAL_MCP_RESOURCE_STATE, 17);
    CHECK_EQ(TIDAL_MCP_RESOURCE_HISTORY, 18);
    CHECK_EQ(TIDAL_MCP_RESOURCE_CHAT, 19);

    json_decref(result);

    /* a cursor is ignored and there is no next page */
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                    "'method':'resources/list','params':"
                                    "{'cursor':'page2'}}"), "2");
    CHECK_EQ(json_array_size(json_object_get(result, "resources")), 19);
    CHECK(json_object_get(result, "nextCursor") == NULL);
    json_decref(result);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                    "'method':'resources/templates/list',"
                                    "'params':{'cursor':'x'}}"), "3");
    want = json_loads("{\"resourceTemplates\":[]}", 0, NULL);
    CHECK(json_equal(result, want));
    json_decref(want);
    json_decref(result);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                "'method':'resources/list','params':[]}"),
                   "4", -32602, "Invalid params: params must be an object"));
}


UNIT_TEST(resources_read)
{
    int                  n;
    char                 msg[160], uri[32], id[16], want[96];
    json_t              *result;
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);

    /* without a hook every channel is silent */
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':'r',"
                                    "'method':'resources/read','params':"
                                    "{'uri':'tidal://channel/d7'}}"),
                       "\"r\"");
    CHECK_EQ(json_object_size(result), 1);
    CHECK_STR(read_text(result, "tidal://channel/d7"),
              "{\"pattern\":null,\"muted\":false,\"soloed\":false}");
    json_decref(result);

    /* with one, it is asked for the channel read and its answer is used */
    s.resource_hook = test_resource_hook;
    hook_mode = HOOK_STATE;

    for (n = 1; n <= 16; n++) {
        snprintf(uri, sizeof(uri), "tidal://channel/d%d", n);
        snprintf(msg, sizeof(msg),
                 "{'jsonrpc':'2.0','id':%d,'method':'resources/read',"
                 "'params':{'uri':'%s'}}", 100 + n, uri);
        snprintf(id, sizeof(id), "%d", 100 + n);

        if (n == 5) {
            snprintf(want, sizeof(want),
                     "{\"pattern\":null,\"muted\":true,\"soloed\":false}");

        } else {
            snprintf(want, sizeof(want),
                     "{\"pattern\":\"s \\\"bd*%d\\\" # vowel "
                     "\\\"\xc3\xa9\\\"\",\"muted\":false,\"soloed\":%s}",
                     n, (n == 16) ? "true" : "false");
        }

        hook_calls = 0;
        hook_channel = 0;

        result = result_of(send_msg(&s, msg), id);
        CHECK_STR(read_text(result, uri), want);
        CHECK_EQ(hook_calls, 1);
        CHECK_EQ(hook_channel, n);
        json_decref(result);
    }

    /* the transport cannot say: an internal error, still answered */
    hook_mode = HOOK_NULL;
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':9,"
                                "'method':'resources/read','params':"
                                "{'uri':'tidal://channel/d3'}}"), "9",
                   -32603, "Internal error: tidal://channel/d3 "
                           "is unavailable"));

    hook_mode = HOOK_NOT_OBJECT;
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':'n',"
                                "'method':'resources/read','params':"
                                "{'uri':'tidal://channel/d12'}}"), "\"n\"",
                   -32603, "Internal error: tidal://channel/d12 "
                           "is unavailable"));
    CHECK_EQ(hook_channel, 12);

    hook_mode = HOOK_STATE;
    CHECK_EQ(s.subscriptions, 0);
}


/* 1 when reply is the -32002 for uri (JSON text) with this id */
static int
not_found_is(json_t *reply, const char *id, const char *uri,
    const char *message)
{
    int      ok;
    json_t  *want;

    want = json_loads(uri, JSON_DECODE_ANY, NULL);
    ok = json_equal(json_object_get(json_object_get(json_object_get(reply,
                                                                     "error"),
                                                    "data"), "uri"), want)
         && json_object_size(json_object_get(json_object_get(reply, "error"),
                                             "data")) == 1;
    json_decref(want);

    if (!ok) {
        printf("    wanted data {\"uri\": %s}\n", uri);
    }

    return error_is(reply, id, -32002, message) && ok;
}


UNIT_TEST(resources_uri_errors)
{
    size_t               i, j, len, start;
    char                 msg[512], id[16], message[96], quoted[64];
    const char          *text;
    json_t              *reply, *error;
    tidal_mcp_session_t  s;

    static const char  *unknown[] = {
        "tidal://channel/d0", "tidal://channel/d17", "tidal://channel/d1x",
        "tidal://channel/", "tidal://channel/d", "tidal://channel/d01",
        "tidal://channel/d99", "tidal://channel/d100", "tidal://channel/d-1",
        "tidal://channel/d+1", "tidal://channel/d 1", "tidal://channel/d1 ",
        "tidal://channel/d1/", "tidal://channel/d1?x", "TIDAL://channel/d1",
        "tidal://channel/D1", "tidal://Channel/d1", "tidal://channel/1",
        "tidal:/channel/d1", "file:///etc/passwd", "", "d1"
    };

    static const char  *bad_uri[] = {
        "1", "null", "true", "[]", "['tidal://channel/d1']", "{}"
    };

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);
    s.resource_hook = test_resource_hook;
    hook_mode = HOOK_STATE;
    hook_calls = 0;

    for (j = 0; j < 3; j++) {
        for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
            snprintf(msg, sizeof(msg),
                     "{'jsonrpc':'2.0','id':'u%zu','method':'%s',"
                     "'params':{'uri':'%s'}}", i, resource_methods[2 + j],
                     unknown[i]);
            snprintf(id, sizeof(id), "\"u%zu\"", i);
            snprintf(message, sizeof(message), "Resource not found: %s",
                     unknown[i]);
            snprintf(quoted, sizeof(quoted), "\"%s\"", unknown[i]);

            if (!CHECK(not_found_is(send_msg(&s, msg), id, quoted,
                                    message)))
            {
                printf("    for %s of %s\n", resource_methods[2 + j],
                       unknown[i]);
            }
        }

        for (i = 0; i < sizeof(bad_uri) / sizeof(bad_uri[0]); i++) {
            snprintf(msg, sizeof(msg),
                     "{'jsonrpc':'2.0','id':%zu,'method':'%s',"
                     "'params':{'uri':%s}}", i, resource_methods[2 + j],
                     bad_uri[i]);
            snprintf(id, sizeof(id), "%zu", i);

            CHECK(error_is(send_msg(&s, msg), id, -32602,
                           "Invalid params: uri must be a string"));
        }

        snprintf(msg, sizeof(msg), "{'jsonrpc':'2.0','id':-1,'method':'%s',"
                 "'params':{'url':'tidal://channel/d1'}}",
                 resource_methods[2 + j]);
        CHECK(error_is(send_msg(&s, msg), "-1", -32602,
                       "Invalid params: uri is required"));

        snprintf(msg, sizeof(msg), "{'jsonrpc':'2.0','id':-2,'method':'%s'}",
                 resource_methods[2 + j]);
        CHECK(error_is(send_msg(&s, msg), "-2", -32602,
                       "Invalid params: uri is required"));

        snprintf(msg, sizeof(msg), "{'jsonrpc':'2.0','id':-3,'method':'%s',"
                 "'params':'tidal://channel/d1'}", resource_methods[2 + j]);
        CHECK(error_is(send_msg(&s, msg), "-3", -32602,
                       "Invalid params: params must be an object"));
    }

    /* refused uris never reach the transport nor the subscriptions */
    CHECK_EQ(hook_calls, 0);
    CHECK_EQ(s.subscriptions, 0);

    /* the message quotes a uri cleaned and cut, data keeps it whole */
    len = (size_t) snprintf(msg, sizeof(msg),
                            "{'jsonrpc':'2.0','id':7,"
                            "'method':'resources/read','params':"
                            "{'uri':'");
    start = len;
    len += (size_t) snprintf(msg + len, sizeof(msg) - len,
                             "tidal://\\u001b[2J");
    for ( /* void */ ; len < 400; len += 2) {
        memcpy(msg + len, "\xc3\xa9", 2);
    }
    memcpy(msg + len, "'}}", 4);

    reply = send_msg(&s, msg);
    error = json_object_get(reply, "error");
    text = json_string_value(json_object_get(error, "message"));

    CHECK_EQ(json_integer_value(json_object_get(error, "code")), -32002);
    CHECK(text != NULL && strncmp(text, "Resource not found: tidal://?[2J",
                                  32) == 0);
    CHECK(text != NULL && strlen(text) < 160);
    CHECK(text != NULL && strcmp(text + strlen(text) - 5, "\xc3\xa9...")
                          == 0);

    text = json_string_value(json_object_get(json_object_get(error, "data"),
                                             "uri"));
    CHECK(text != NULL && strncmp(text, "tidal://\x1b[2J", 12) == 0);
    /* the six characters of the escape are one byte */
    CHECK(text != NULL && strlen(text) == len - start - 5);

    json_decref(reply);
}


UNIT_TEST(resources_subscribe)
{
    int                  n;
    char                 msg[160], id[16];
    json_t              *result;
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);
    CHECK_EQ(s.subscriptions, 0);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':'s1',"
                                    "'method':'resources/subscribe',"
                                    "'params':{'uri':'tidal://channel/d1'}}"),
                       "\"s1\"");
    CHECK(json_is_object(result) && json_object_size(result) == 0);
    CHECK_EQ(s.subscriptions, 0x0001);
    json_decref(result);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                    "'method':'resources/subscribe',"
                                    "'params':{'uri':'tidal://channel/d16'}}"),
                       "2");
    CHECK(json_is_object(result) && json_object_size(result) == 0);
    CHECK_EQ(s.subscriptions, 0x8001);
    json_decref(result);

    /* subscribing twice changes nothing */
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                    "'method':'resources/subscribe',"
                                    "'params':{'uri':'tidal://channel/d16'}}"),
                       "3");
    CHECK(json_is_object(result));
    CHECK_EQ(s.subscriptions, 0x8001);
    json_decref(result);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                    "'method':'resources/unsubscribe',"
                                    "'params':{'uri':'tidal://channel/d1'}}"),
                       "4");
    CHECK(json_is_object(result) && json_object_size(result) == 0);
    CHECK_EQ(s.subscriptions, 0x8000);
    json_decref(result);

    /* unsubscribing from what was never subscribed is no error */
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':5,"
                                    "'method':'resources/unsubscribe',"
                                    "'params':{'uri':'tidal://channel/d9'}}"),
                       "5");
    CHECK(json_is_object(result) && json_object_size(result) == 0);
    CHECK_EQ(s.subscriptions, 0x8000);
    json_decref(result);

    /* each channel its own bit, n - 1 */
    for (n = 1; n <= 16; n++) {
        snprintf(msg, sizeof(msg),
                 "{'jsonrpc':'2.0','id':%d,'method':'resources/subscribe',"
                 "'params':{'uri':'tidal://channel/d%d'}}", n, n);
        snprintf(id, sizeof(id), "%d", n);

        result = result_of(send_msg(&s, msg), id);
        CHECK(json_is_object(result));
        CHECK_EQ(s.subscriptions, ((1u << n) - 1) | 0x8000);
        json_decref(result);
    }

    CHECK_EQ(s.subscriptions, 0xffff);

    for (n = 16; n >= 1; n--) {
        snprintf(msg, sizeof(msg),
                 "{'jsonrpc':'2.0','id':'x%d','method':"
                 "'resources/unsubscribe','params':"
                 "{'uri':'tidal://channel/d%d'}}", n, n);
        snprintf(id, sizeof(id), "\"x%d\"", n);

        result = result_of(send_msg(&s, msg), id);
        CHECK(json_is_object(result));
        CHECK_EQ(s.subscriptions, (1u << (n - 1)) - 1);
        json_decref(result);
    }

    CHECK_EQ(s.subscriptions, 0);

    /* errors leave the subscriptions as they were */
    s.subscriptions = 0x0420;
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':6,"
                                "'method':'resources/unsubscribe',"
                                "'params':{'uri':'tidal://channel/d17'}}"),
                   "6", -32002, "Resource not found: tidal://channel/d17"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':7,"
                                "'method':'resources/subscribe',"
                                "'params':{}}"),
                   "7", -32602, "Invalid params: uri is required"));
    CHECK_EQ(s.subscriptions, 0x0420);

    /* a fresh session has none */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_ADMIN);
    CHECK_EQ(s.subscriptions, 0);
}


UNIT_TEST(channel_uri_helpers)
{
    int          n;
    char         uri[32], want[128], *text;
    size_t       len;
    const char  *why;

    for (n = 1; n <= 16; n++) {
        snprintf(uri, sizeof(uri), "tidal://channel/d%d", n);
        CHECK_EQ(tidal_mcp_channel_from_uri(uri), n);

        len = 0;
        text = tidal_mcp_resource_updated(n, &len);
        why = jsonrpc_check(text, len);
        if (!CHECK(why == NULL)) {
            printf("    %s: %s\n", why, text ? text : "(null)");
        }

        snprintf(want, sizeof(want),
                 "{\"jsonrpc\":\"2.0\","
                 "\"method\":\"notifications/resources/updated\","
                 "\"params\":{\"uri\":\"tidal://channel/d%d\"}}", n);
        CHECK_STR(text, want);
        CHECK_EQ(len, strlen(want));
        free(text);
    }

    CHECK_EQ(tidal_mcp_channel_from_uri(NULL), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri(""), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d0"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d17"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d1x"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d01"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d160"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d1\n"), 0);
    CHECK_EQ(tidal_mcp_channel_from_uri("tidal://channel/d 2"), 0);

    /* len is optional; other channels have no notification */
    text = tidal_mcp_resource_updated(3, NULL);
    CHECK(text != NULL && strstr(text, "\"tidal://channel/d3\"") != NULL);
    free(text);

    CHECK(tidal_mcp_resource_updated(0, &len) == NULL);
    CHECK(tidal_mcp_resource_updated(20, &len) == NULL);
    CHECK(tidal_mcp_resource_updated(-1, &len) == NULL);
}


/* the text of a resources/read result for uri, parsed; consumes result */
static json_t *
read_json(tidal_mcp_session_t *s, const char *uri)
{
    char    msg[160];
    json_t  *result, *value;

    snprintf(msg, sizeof(msg), "{'jsonrpc':'2.0','id':'rj',"
             "'method':'resources/read','params':{'uri':'%s'}}", uri);

    result = result_of(send_msg(s, msg), "\"rj\"");
    value = json_loads(read_text(result, uri), 0, NULL);
    json_decref(result);

    return value;
}


UNIT_TEST(room_resources)
{
    int                  n;
    char                 msg[160], id[16];
    json_t              *value, *want, *result;
    const char          *uris[] = {
        "tidal://state", "tidal://history", "tidal://chat"
    };
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);

    /* without a hook: an empty room at Tidal's default tempo */
    value = read_json(&s, "tidal://state");
    want = json_loads("{\"channels\":{},\"tempo\":{\"cps\":0.5625,"
                      "\"bpm\":135.0},\"seq\":0}", 0, NULL);
    CHECK(json_equal(value, want));
    json_decref(want);
    json_decref(value);

    value = read_json(&s, "tidal://history");
    want = json_loads("{\"history\":[]}", 0, NULL);
    CHECK(json_equal(value, want));
    json_decref(want);
    json_decref(value);

    value = read_json(&s, "tidal://chat");
    want = json_loads("{\"chat\":[]}", 0, NULL);
    CHECK(json_equal(value, want));
    json_decref(want);
    json_decref(value);

    /* the hook is asked with the resource's number */
    s.resource_hook = test_resource_hook;
    hook_mode = HOOK_NULL;

    for (n = 17; n <= 19; n++) {
        hook_channel = 0;
        snprintf(msg, sizeof(msg), "{'jsonrpc':'2.0','id':%d,"
                 "'method':'resources/read','params':{'uri':'%s'}}",
                 n, uris[n - 17]);
        snprintf(id, sizeof(id), "%d", n);
        CHECK(error_is(send_msg(&s, msg), id, -32603, "Internal error: *"));
        CHECK_EQ(hook_channel, n);
    }

    hook_mode = HOOK_STATE;

    /* each can be subscribed, its bit n - 1 */
    s.subscriptions = 0;

    for (n = 17; n <= 19; n++) {
        snprintf(msg, sizeof(msg), "{'jsonrpc':'2.0','id':%d,"
                 "'method':'resources/subscribe','params':{'uri':'%s'}}",
                 n, uris[n - 17]);
        snprintf(id, sizeof(id), "%d", n);
        result = result_of(send_msg(&s, msg), id);
        CHECK(json_is_object(result));
        json_decref(result);
        CHECK(s.subscriptions & TIDAL_MCP_RESOURCE_BIT(n));
    }

    CHECK_EQ(s.subscriptions, 0x70000);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':'u',"
                                    "'method':'resources/unsubscribe',"
                                    "'params':{'uri':'tidal://history'}}"),
                       "\"u\"");
    json_decref(result);
    CHECK_EQ(s.subscriptions, 0x50000);

    CHECK_EQ(tidal_mcp_resource_from_uri("tidal://state/"), 0);
    CHECK_EQ(tidal_mcp_resource_from_uri("tidal://State"), 0);
    CHECK_EQ(tidal_mcp_resource_from_uri("tidal://channel/d4"), 4);
    CHECK_EQ(tidal_mcp_resource_from_uri(NULL), 0);
    CHECK_EQ(TIDAL_MCP_RESOURCES_ALL, 0x7ffff);

    for (n = 17; n <= 19; n++) {
        char  *text, want_text[160];

        text = tidal_mcp_resource_updated(n, NULL);
        snprintf(want_text, sizeof(want_text),
                 "{\"jsonrpc\":\"2.0\","
                 "\"method\":\"notifications/resources/updated\","
                 "\"params\":{\"uri\":\"%s\"}}", uris[n - 17]);
        CHECK_STR(text, want_text);
        free(text);
    }
}


UNIT_TEST(events_opt_in)
{
    tidal_mcp_session_t  s;

    /* no opt-in: the standard notifications, from info up */
    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);
    CHECK_EQ(s.tidal_events, 0);
    CHECK_EQ(s.log_level, TIDAL_MCP_LOG_INFO);
    CHECK(tidal_mcp_wants_event_message(&s, TIDAL_MCP_LOG_INFO));
    CHECK(tidal_mcp_wants_event_message(&s, TIDAL_MCP_LOG_ERROR));
    CHECK(!tidal_mcp_wants_event_message(&s, TIDAL_MCP_LOG_DEBUG));

    json_decref(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                             "'method':'logging/setLevel',"
                             "'params':{'level':'error'}}"));
    CHECK(!tidal_mcp_wants_event_message(&s, TIDAL_MCP_LOG_WARNING));
    CHECK(tidal_mcp_wants_event_message(&s, TIDAL_MCP_LOG_ERROR));

    /* nothing before initialize */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    CHECK(!tidal_mcp_wants_event_message(&s, TIDAL_MCP_LOG_ERROR));

    /* an object asks for the events, and then no message lines */
    json_decref(send_msg(&s,
        "{'jsonrpc':'2.0','id':0,'method':'initialize','params':"
        "{'protocolVersion':'2025-11-25','capabilities':"
        "{'experimental':{'tidal/events':{}}}}}"));
    CHECK(s.initialized);
    CHECK_EQ(s.tidal_events, 1);
    CHECK(!tidal_mcp_wants_event_message(&s, TIDAL_MCP_LOG_EMERGENCY));

    /* anything else does not */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    json_decref(send_msg(&s,
        "{'jsonrpc':'2.0','id':0,'method':'initialize','params':"
        "{'protocolVersion':'2025-11-25','capabilities':"
        "{'experimental':{'tidal/events':true}}}}"));
    CHECK(s.initialized);
    CHECK_EQ(s.tidal_events, 0);

    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_LISTENER);
    json_decref(send_msg(&s,
        "{'jsonrpc':'2.0','id':0,'method':'initialize','params':"
        "{'protocolVersion':'2025-11-25','capabilities':"
        "{'tidal/events':{}}}}"));
    CHECK_EQ(s.tidal_events, 0);
}


static const char *
event_text(const char *type, const char *fields)
{
    static char  buf[8192];

    snprintf(buf, sizeof(buf),
             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tidal/%s\","
             "\"params\":{\"type\":\"%s\",\"seq\":7,\"timestamp\":1%s%s}}",
             type, type, *fields ? "," : "", fields);

    return buf;
}


static uint32_t
event_bits(const char *type, const char *fields)
{
    const char  *e;

    e = event_text(type, fields);

    return tidal_mcp_event_resources(e, strlen(e));
}


#define BIT(n)  TIDAL_MCP_RESOURCE_BIT(n)
#define STATE   BIT(TIDAL_MCP_RESOURCE_STATE)
#define HIST    BIT(TIDAL_MCP_RESOURCE_HISTORY)
#define CHAT    BIT(TIDAL_MCP_RESOURCE_CHAT)


UNIT_TEST(event_resources)
{
    CHECK_EQ(event_bits("pattern_update", "\"channel\":\"d3\","
                        "\"pattern\":\"s \\\"bd\\\"\",\"who\":\"a\""),
             BIT(3) | STATE);
    CHECK_EQ(event_bits("pattern_update", "\"channel\":\"d16\","
                        "\"pattern\":\"silence\",\"who\":\"a\""),
             BIT(16) | STATE);
    CHECK_EQ(event_bits("channel_state", "\"channel\":\"d1\",\"state\":"
                        "{\"pattern\":null,\"muted\":false,"
                        "\"soloed\":false},\"who\":\"a\""),
             BIT(1) | STATE | HIST);
    CHECK_EQ(event_bits("pattern_eval", "\"channel\":\"d2\","
                        "\"pattern\":\"x\",\"who\":\"a\",\"ok\":true,"
                        "\"error\":null"), HIST);
    CHECK_EQ(event_bits("tempo_change", "\"cps\":0.5,\"bpm\":120,"
                        "\"who\":\"b\""), STATE | HIST);
    CHECK_EQ(event_bits("error", "\"channel\":\"d2\",\"message\":\"m\""),
             HIST);
    CHECK_EQ(event_bits("ghci_restarted", "\"reason\":\"r\""), HIST);
    CHECK_EQ(event_bits("chat", "\"who\":\"a\",\"text\":\"hi\""), CHAT);
    CHECK_EQ(event_bits("custom", "\"data\":{}"), 0);
    CHECK_EQ(event_bits("metrics", "\"connections\":1"), 0);
    CHECK_EQ(event_bits("session_restore", "\"channels\":{}"),
             TIDAL_MCP_RESOURCES_ALL);

    /* a channel that is none */
    CHECK_EQ(event_bits("pattern_update", "\"channel\":\"d17\""), 0);
    CHECK_EQ(event_bits("channel_state", "\"channel\":3"), HIST);

    /* not an event */
    CHECK_EQ(tidal_mcp_event_resources(NULL, 0), 0);
    CHECK_EQ(tidal_mcp_event_resources("", 0), 0);
    CHECK_EQ(tidal_mcp_event_resources("{\"method\":\"notifications/"
                                       "message\",\"params\":{}}", 47), 0);
    CHECK_EQ(tidal_mcp_event_resources("{\"method\":\"notifications/tidal/"
                                       "chat\",\"params\":[]}", 48), 0);
}


/* the data of an event's line at want_level, or NULL; a static buffer */
static const char *
event_line(const char *type, const char *fields, int want_level)
{
    int          level;
    char        *text;
    size_t       len;
    json_t      *msg, *params;
    const char  *e;

    static char  line[16384];

    e = event_text(type, fields);
    level = -5;
    len = 0;

    text = tidal_mcp_event_message(e, strlen(e), &level, &len);
    if (text == NULL) {
        CHECK_EQ(level, -5);
        return NULL;
    }

    CHECK(jsonrpc_check(text, len) == NULL);
    CHECK_EQ(level, want_level);

    msg = json_loads(text, 0, NULL);
    params = json_object_get(msg, "params");

    CHECK_STR(json_string_value(json_object_get(msg, "method")),
              "notifications/message");
    CHECK_EQ(json_object_size(params), 3);
    CHECK_STR(json_string_value(json_object_get(params, "level")),
              tidal_mcp_log_level_name(want_level));
    CHECK_STR(json_string_value(json_object_get(params, "logger")), "tidal");
    snprintf(line, sizeof(line), "%s",
             json_string_value(json_object_get(params, "data")));

    json_decref(msg);
    free(text);

    return line;
}


UNIT_TEST(event_message)
{
    int          level;
    char        *big, fields[12000];
    const char  *line;

    CHECK_STR(event_line("pattern_update", "\"channel\":\"d1\","
                         "\"pattern\":\"sound \\\"bd*2\\\"\","
                         "\"who\":\"alice\"", TIDAL_MCP_LOG_INFO),
              "alice set d1: sound \"bd*2\"");
    CHECK_STR(event_line("pattern_update", "\"channel\":\"d4\","
                         "\"pattern\":\"silence\",\"who\":\"alice\"",
                         TIDAL_MCP_LOG_INFO),
              "alice silenced d4");
    CHECK_STR(event_line("tempo_change", "\"cps\":0.5,\"bpm\":120.0,"
                         "\"who\":\"bob\"", TIDAL_MCP_LOG_INFO),
              "bob set the tempo to 0.5 cps (120 bpm)");
    CHECK_STR(event_line("chat", "\"who\":\"alice\",\"text\":\"hello\"",
                         TIDAL_MCP_LOG_NOTICE),
              "chat alice: hello");
    CHECK_STR(event_line("error", "\"channel\":\"d2\",\"message\":"
                         "\"<interactive>:1:5: error:\\n  oops\","
                         "\"who\":\"carol\"", TIDAL_MCP_LOG_ERROR),
              "d2: error: <interactive>:1:5: error:\n  oops");
    CHECK_STR(event_line("error", "\"message\":\"GHCi died\"",
                         TIDAL_MCP_LOG_ERROR),
              "error: GHCi died");
    CHECK_STR(event_line("ghci_restarted", "\"reason\":\"it hung\"",
                         TIDAL_MCP_LOG_WARNING),
              "GHCi restarted: it hung");
    CHECK_STR(event_line("pattern_eval", "\"channel\":\"d2\","
                         "\"pattern\":\"x\",\"who\":\"dan\",\"ok\":false,"
                         "\"error\":\"Variable not in scope: x\"",
                         TIDAL_MCP_LOG_WARNING),
              "d2: dan's pattern was refused: Variable not in scope: x");
    CHECK_STR(event_line("channel_state", "\"channel\":\"d5\",\"state\":"
                         "{\"pattern\":\"s \\\"hh\\\"\",\"muted\":true,"
                         "\"soloed\":false},\"who\":\"eve\"",
                         TIDAL_MCP_LOG_INFO),
              "eve changed d5: playing, muted");
    CHECK_STR(event_line("channel_state", "\"channel\":\"d5\",\"state\":"
                         "{\"pattern\":null,\"muted\":false,"
                         "\"soloed\":false},\"who\":\"eve\"",
                         TIDAL_MCP_LOG_INFO),
              "eve changed d5: silent");
    CHECK_STR(event_line("custom", "\"data\":{\"a\":[1,\"\xc3\xa9\"]}",
                         TIDAL_MCP_LOG_INFO),
              "custom event: {\"a\":[1,\"\xc3\xa9\"]}");
    CHECK_STR(event_line("metrics", "\"connections\":3,"
                         "\"events_per_second\":1.5", TIDAL_MCP_LOG_DEBUG),
              "metrics: 3 connections, 1.5 events/s");

    /* no line: an accepted evaluation, a snapshot, an unknown type */
    CHECK(event_line("pattern_eval", "\"channel\":\"d2\",\"pattern\":\"x\","
                     "\"who\":\"dan\",\"ok\":true,\"error\":null", 0)
          == NULL);
    CHECK(event_line("session_restore", "\"channels\":{}", 0) == NULL);
    CHECK(event_line("zzz", "", 0) == NULL);

    /* client text is data: one line, control characters gone */
    CHECK_STR(event_line("chat", "\"who\":\"a\\nb\",\"text\":"
                         "\"x\\r\\ny\\u001b[2J\\u007f\"",
                         TIDAL_MCP_LOG_NOTICE),
              "chat a b: x  y [2J ");
    CHECK_STR(event_line("pattern_update", "\"channel\":\"d1\","
                         "\"pattern\":\"d1 $\\n  s \\\"bd\\\"\","
                         "\"who\":\"a\"", TIDAL_MCP_LOG_INFO),
              "a set d1: d1 $   s \"bd\"");

    /* missing or mistyped fields read "?" */
    CHECK_STR(event_line("pattern_update", "\"channel\":1",
                         TIDAL_MCP_LOG_INFO), "? set ?: ?");

    /* bounded, cut on a character boundary with the rest counted */
    big = malloc(6001);
    memset(big, 'a', 6000);
    big[0] = '\xc3';    /* é at offsets 0-1, then across the cut */
    big[1] = '\xa9';
    big[4095] = '\xc3';
    big[4096] = '\xa9';
    big[6000] = '\0';
    snprintf(fields, sizeof(fields), "\"message\":\"%s\"", big);
    line = event_line("error", fields, TIDAL_MCP_LOG_ERROR);
    CHECK(line != NULL && strlen(line) == 7 + 4095
                                           + strlen("... (1905 more bytes)"));
    CHECK(line != NULL && strstr(line, "a... (1905 more bytes)") != NULL);
    free(big);

    big = malloc(2001);
    memset(big, 'p', 2000);
    big[2000] = '\0';
    snprintf(fields, sizeof(fields),
             "\"channel\":\"d1\",\"who\":\"w\",\"pattern\":\"%s\"", big);
    line = event_line("pattern_update", fields, TIDAL_MCP_LOG_INFO);
    CHECK(line != NULL && strlen(line) < 600);
    CHECK(line != NULL && strstr(line, "(1488 more bytes)") != NULL);
    free(big);

    /* not an event: no line, level untouched */
    level = 42;
    CHECK(tidal_mcp_event_message(NULL, 0, &level, NULL) == NULL);
    CHECK(tidal_mcp_event_message("{", 1, &level, NULL) == NULL);
    CHECK(tidal_mcp_event_message("\xff", 1, &level, NULL) == NULL);
    CHECK(tidal_mcp_event_message("{\"method\":\"tools/list\","
                                  "\"params\":{}}", 34, &level, NULL)
          == NULL);
    CHECK_EQ(level, 42);
}


UNIT_TEST(prompts)
{
    char                *text;
    json_t              *result, *prompt, *msg;
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_PERFORMER);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
                                    "'method':'prompts/list'}"), "1");
    CHECK_EQ(json_array_size(json_object_get(result, "prompts")), 1);
    prompt = json_array_get(json_object_get(result, "prompts"), 0);
    CHECK_STR(json_string_value(json_object_get(prompt, "name")),
              "tidal_room_guide");
    CHECK_STR(json_string_value(json_object_get(
                  json_array_get(json_object_get(prompt, "arguments"), 0),
                  "name")), "channel");
    json_decref(result);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
                                    "'method':'prompts/get','params':"
                                    "{'name':'tidal_room_guide',"
                                    "'arguments':{'channel':'d3'}}}"), "2");
    msg = json_array_get(json_object_get(result, "messages"), 0);
    CHECK_EQ(json_array_size(json_object_get(result, "messages")), 1);
    CHECK_STR(json_string_value(json_object_get(msg, "role")), "user");
    CHECK_STR(json_string_value(json_object_get(json_object_get(msg,
                                                                "content"),
                                                "type")), "text");
    text = (char *) json_string_value(json_object_get(
                                          json_object_get(msg, "content"),
                                          "text"));

    /* the tools of the role, from the table; the room's basics */
    CHECK(text != NULL && strstr(text, "- tidal_eval: Evaluate a pattern\n")
                          != NULL);
    CHECK(text != NULL && strstr(text, "- tidal_get_state:") != NULL);
    CHECK(text != NULL && strstr(text, "tidal_admin_eval") == NULL);
    CHECK(text != NULL && strstr(text, "tidal_elsewhere") == NULL);
    CHECK(text != NULL && strstr(text, "d1 .. d16") != NULL);
    CHECK(text != NULL && strstr(text, "line and column") != NULL);
    CHECK(text != NULL && strstr(text, "You mean to play on d3") != NULL);
    CHECK(text != NULL && strstr(text, "role is performer") != NULL);
    json_decref(result);

    /* no arguments will do */
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
                                    "'method':'prompts/get','params':"
                                    "{'name':'tidal_room_guide'}}"), "3");
    CHECK(json_is_array(json_object_get(result, "messages")));
    json_decref(result);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
                                "'method':'prompts/get','params':"
                                "{'name':'nope'}}"), "4", -32602,
                   "Unknown prompt: nope"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':5,"
                                "'method':'prompts/get','params':{}}"),
                   "5", -32602, "Invalid params: name must be a string"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':6,"
                                "'method':'prompts/get','params':"
                                "{'name':'tidal_room_guide',"
                                "'arguments':{'channel':'d17'}}}"), "6",
                   -32602, "Invalid params: arguments.channel*"));

    /* initialize first */
    tidal_mcp_session_init(&s, &test_server, TIDAL_ROLE_PERFORMER);
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':7,"
                                "'method':'prompts/list'}"), "7", -32600,
                   "Server not initialized*"));
}


UNIT_TEST(completion)
{
    json_t              *result, *want;
    tidal_mcp_session_t  s;

    session_ready(&s, &test_server, TIDAL_ROLE_LISTENER);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':1,"
        "'method':'completion/complete','params':{'ref':{'type':"
        "'ref/prompt','name':'tidal_room_guide'},'argument':"
        "{'name':'channel','value':'d1'}}}"), "1");
    want = json_loads("{\"completion\":{\"values\":[\"d1\",\"d10\",\"d11\","
                      "\"d12\",\"d13\",\"d14\",\"d15\",\"d16\"],"
                      "\"total\":8,\"hasMore\":false}}", 0, NULL);
    CHECK(json_equal(result, want));
    json_decref(want);
    json_decref(result);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':2,"
        "'method':'completion/complete','params':{'ref':{'type':"
        "'ref/prompt','name':'tidal_room_guide'},'argument':"
        "{'name':'channel','value':''}}}"), "2");
    CHECK_EQ(json_array_size(json_object_get(json_object_get(result,
                                                             "completion"),
                                             "values")), 16);
    json_decref(result);

    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':3,"
        "'method':'completion/complete','params':{'ref':{'type':"
        "'ref/prompt','name':'tidal_room_guide'},'argument':"
        "{'name':'channel','value':'x'}}}"), "3");
    want = json_loads("{\"completion\":{\"values\":[],\"total\":0,"
                      "\"hasMore\":false}}", 0, NULL);
    CHECK(json_equal(result, want));
    json_decref(result);

    /* a fixed resource has nothing to complete */
    result = result_of(send_msg(&s, "{'jsonrpc':'2.0','id':4,"
        "'method':'completion/complete','params':{'ref':{'type':"
        "'ref/resource','uri':'tidal://state'},'argument':"
        "{'name':'x','value':''}}}"), "4");
    CHECK(json_equal(result, want));
    json_decref(want);
    json_decref(result);

    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':5,"
        "'method':'completion/complete','params':{'ref':{'type':"
        "'ref/resource','uri':'tidal://x/{y}'},'argument':"
        "{'name':'y','value':''}}}"), "5", -32602,
        "Resource template not found: tidal://x/{y}"));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':6,"
        "'method':'completion/complete','params':{'ref':{'type':"
        "'ref/prompt','name':'other'},'argument':"
        "{'name':'channel','value':''}}}"), "6", -32602, NULL));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':7,"
        "'method':'completion/complete','params':{}}"), "7", -32602,
        NULL));
    CHECK(error_is(send_msg(&s, "{'jsonrpc':'2.0','id':8,"
        "'method':'completion/complete','params':{'ref':{'type':'x'},"
        "'argument':{'name':'a','value':''}}}"), "8", -32602, NULL));
}


UNIT_TEST(reply_helpers)
{
    char    *text;
    size_t   len;
    json_t  *id, *msg;

    id = json_string("r1");

    text = tidal_mcp_tool_reply(id, json_pack("{s:[]}", "content"), &len);
    CHECK(jsonrpc_check(text, len) == NULL);
    CHECK_STR(text, "{\"jsonrpc\":\"2.0\",\"id\":\"r1\","
                    "\"result\":{\"content\":[]}}");
    free(text);

    /* a result must be an object; it is stolen all the same */
    CHECK(tidal_mcp_tool_reply(id, json_pack("[]"), &len) == NULL);
    CHECK(tidal_mcp_tool_reply(id, NULL, &len) == NULL);

    text = tidal_mcp_error_reply(id, TIDAL_MCP_INTERNAL_ERROR,
                                 "Internal error: helper gone", &len);
    CHECK(jsonrpc_check(text, len) == NULL);
    CHECK_STR(text, "{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"error\":"
                    "{\"code\":-32603,"
                    "\"message\":\"Internal error: helper gone\"}}");
    free(text);

    text = tidal_mcp_error_reply(NULL, -32600, "x", &len);
    CHECK(jsonrpc_check(text, len) == NULL);
    msg = json_loads(text ? text : "", 0, NULL);
    CHECK(json_is_null(json_object_get(msg, "id")));
    json_decref(msg);
    free(text);

    json_decref(id);

    text = tidal_mcp_notification("notifications/tidal/tempo_change",
                                  json_pack("{s:s, s:I, s:f}",
                                            "type", "tempo_change",
                                            "seq", (json_int_t) 17,
                                            "cps", 0.5625),
                                  &len);
    CHECK(jsonrpc_check(text, len) == NULL);
    CHECK_STR(text, "{\"jsonrpc\":\"2.0\","
                    "\"method\":\"notifications/tidal/tempo_change\","
                    "\"params\":{\"type\":\"tempo_change\",\"seq\":17,"
                    "\"cps\":0.5625}}");
    free(text);

    text = tidal_mcp_notification("notifications/tools/list_changed", NULL,
                                  &len);
    CHECK(jsonrpc_check(text, len) == NULL);
    CHECK_STR(text, "{\"jsonrpc\":\"2.0\","
                    "\"method\":\"notifications/tools/list_changed\"}");
    free(text);

    CHECK(tidal_mcp_notification("m", json_pack("[i]", 1), &len) == NULL);
    CHECK(tidal_mcp_notification(NULL, NULL, &len) == NULL);

    CHECK_STR(tidal_mcp_role_name(TIDAL_ROLE_LISTENER), "listener");
    CHECK_STR(tidal_mcp_role_name(TIDAL_ROLE_PERFORMER), "performer");
    CHECK_STR(tidal_mcp_role_name(TIDAL_ROLE_ADMIN), "admin");
}


/* tidal_role, the helper's --role: the names role_name gives, exactly */

UNIT_TEST(role_by_name)
{
    size_t         i;
    const char    *name;
    tidal_role_e   role, roles[] = {
        TIDAL_ROLE_LISTENER, TIDAL_ROLE_PERFORMER, TIDAL_ROLE_ADMIN
    };

    static const char  *wrong[] = {
        "", "Admin", "listeners", "perform", "admin ", "unknown"
    };

    for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        name = tidal_mcp_role_name(roles[i]);
        role = (tidal_role_e) -1;
        CHECK(tidal_mcp_role_by_name(name, strlen(name), &role) == 0);
        CHECK(role == roles[i]);
    }

    /* the length counts: a prefix of a longer text is no name */

    CHECK(tidal_mcp_role_by_name("adminx", 5, &role) == 0);
    CHECK(role == TIDAL_ROLE_ADMIN);

    for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        CHECK(tidal_mcp_role_by_name(wrong[i], strlen(wrong[i]), &role)
              == -1);
    }
}


/* a transport checks the version a client names (MCP-Protocol-Version) */

UNIT_TEST(version_by_name)
{
    size_t       i;
    const char  *v;

    static const char  *known[] = { "2025-11-25", "2025-06-18", "2025-03-26" };
    static const char  *wrong[] = {
        "", "2024-11-05", "2025-11-2", "2025-11-255", " 2025-11-25", "latest"
    };

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        v = tidal_mcp_version(known[i], strlen(known[i]));
        CHECK(v != NULL && strcmp(v, known[i]) == 0);

        /* the same static text each time: sessions keep the pointer */
        CHECK(v == tidal_mcp_version(known[i], strlen(known[i])));
    }

    /* the length counts, not a NUL */

    CHECK(tidal_mcp_version("2025-06-18xyz", 10) != NULL);

    for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        CHECK(tidal_mcp_version(wrong[i], strlen(wrong[i])) == NULL);
    }
}


UNIT_TEST(allocation_failures)
{
    int                  rc, fresh, want_action;
    char                *want;
    long                 fail_at;
    size_t               i;
    const char          *msg, *why;
    tidal_mcp_out_t      out;
    tidal_mcp_session_t  s;

    static const char  *msgs[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
        "\"params\":{\"protocolVersion\":\"2025-06-18\","
        "\"clientInfo\":{\"name\":\"oom\"}}}",
        "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}",
        ("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
         "\"params\":{\"name\":\"tidal_eval\",\"arguments\":"
         "{\"pattern\":\"s \\\"bd\\\"\"}}}"),
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
        "\"params\":{\"name\":\"tidal_get_state\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"logging/setLevel\","
        "\"params\":{\"level\":\"error\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"nope\"}",
        /*
         * "resources\/list", not "resources/list": jansson 2.14 lexes a
         * 14-character string out of bounds when the one allocation
         * growing its buffer to hold the closing quote fails
         * (akheron/jansson#362); the escape decodes to the same method.
         */
        ("{\"jsonrpc\":\"2.0\",\"id\":10,"
         "\"method\":\"resources\\/list\"}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":11,"
         "\"method\":\"resources/templates/list\"}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"resources\\/read\","
         "\"params\":{\"uri\":\"tidal://channel/d2\"}}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"resources\\/read\","
         "\"params\":{\"uri\":\"tidal://channel/d5\"}}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"resources\\/read\","
         "\"params\":{\"uri\":\"tidal://channel/d99\"}}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":15,"
         "\"method\":\"resources/subscribe\","
         "\"params\":{\"uri\":\"tidal://channel/d4\"}}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":16,"
         "\"method\":\"resources/unsubscribe\","
         "\"params\":{\"uri\":\"tidal://channel/d4\"}}"),
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"initialize\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        "[{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}]",
        "{\"jsonrpc\":\"2.0\",\"id\":9,"
    };

    for (i = 0; i < 2 * sizeof(msgs) / sizeof(msgs[0]); i++) {
        msg = msgs[i / 2];
        fresh = (i / 2 == 0);

        /*
         * Each allocation in turn is refused: alone (jansson may then
         * report a syntax error, so any valid answer will do) or with
         * every later one (then the reply cannot be built at all, and
         * any reply that does come must be the right one).
         */
        alloc_fail_rest = i % 2;

        /* fail_at -1 refuses nothing and gives the wanted answer */
        want = NULL;
        want_action = TIDAL_MCP_NONE;

        for (fail_at = -1; fail_at < 1000; fail_at++) {
            if (fresh) {
                tidal_mcp_session_init(&s, &test_server,
                                       TIDAL_ROLE_PERFORMER);

            } else {
                session_ready(&s, &test_server, TIDAL_ROLE_PERFORMER);
                s.resource_hook = test_resource_hook;
                s.subscriptions = 0x0008;
            }

            json_set_alloc_funcs(alloc_limited, free);
            alloc_count = 0;
            alloc_fail_at = fail_at;
            alloc_failed = 0;

            rc = tidal_mcp_handle(&s, msg, strlen(msg), &out);

            alloc_fail_at = -1;
            json_set_alloc_funcs(malloc, free);

            if (fail_at == -1) {
                CHECK_EQ(rc, 0);
                want_action = out.action;
                want = out.reply ? strdup(out.reply) : NULL;
                tidal_mcp_out_free(&out);
                continue;
            }

            if (rc == 0) {
                if (out.action == TIDAL_MCP_REPLY) {
                    why = jsonrpc_check(out.reply, out.reply_len);
                    if (!CHECK(why == NULL)) {
                        printf("    %s: %s\n", why, out.reply);
                    }
                }

                CHECK(out.action != TIDAL_MCP_CALL
                      || (json_is_object(out.args) && out.id != NULL));

                if (alloc_fail_rest || !alloc_failed) {
                    CHECK_EQ(out.action, want_action);
                    CHECK_STR(out.reply, want);
                }

            } else {
                /* failure is reported only for memory, and leaves nothing */
                CHECK_EQ(rc, -1);
                CHECK(alloc_failed);
                CHECK(out.action == TIDAL_MCP_NONE && out.reply == NULL
                      && out.args == NULL && out.id == NULL);
                CHECK(!fresh || !s.initialized);
                CHECK(fresh || s.subscriptions == 0x0008);
            }

            tidal_mcp_out_free(&out);

            if (!alloc_failed) {
                CHECK_EQ(rc, 0);
                break;
            }
        }

        CHECK(fail_at < 1000);
        free(want);
    }
}


UNIT_TEST(validator_rejects)
{
    size_t  i;

    static const char  *bad[] = {
        "", "[]", "{}", "{\"jsonrpc\":\"2.0\",\"id\":1}",
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}",
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.0,"
         "\"message\":\"x\"}}"),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"x\":1}"
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!CHECK(jsonrpc_check(bad[i], strlen(bad[i])) != NULL)) {
            printf("    accepted: %s\n", bad[i]);
        }
    }

    CHECK(jsonrpc_check("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", 3)
          != NULL);
}


int
main(void)
{
    UNIT_RUN(parse_error);
    UNIT_RUN(deep_nesting);
    UNIT_RUN(not_an_object);
    UNIT_RUN(invalid_id);
    UNIT_RUN(invalid_request_echoes_id);
    UNIT_RUN(params_must_be_object);
    UNIT_RUN(client_responses_ignored);
    UNIT_RUN(notifications_never_answered);
    UNIT_RUN(initialized_notification);
    UNIT_RUN(method_not_found);
    UNIT_RUN(not_initialized);
    UNIT_RUN(version_negotiation);
    UNIT_RUN(initialize_result);
    UNIT_RUN(client_name);
    UNIT_RUN(tools_list_by_role);
    UNIT_RUN(tools_call_dispatch);
    UNIT_RUN(tools_call_errors);
    UNIT_RUN(tools_call_checked);
    UNIT_RUN(tools_offered_by_server);
    UNIT_RUN(logging_set_level);
    UNIT_RUN(resources_list);
    UNIT_RUN(resources_read);
    UNIT_RUN(resources_uri_errors);
    UNIT_RUN(resources_subscribe);
    UNIT_RUN(channel_uri_helpers);
    UNIT_RUN(room_resources);
    UNIT_RUN(events_opt_in);
    UNIT_RUN(event_resources);
    UNIT_RUN(event_message);
    UNIT_RUN(prompts);
    UNIT_RUN(completion);
    UNIT_RUN(reply_helpers);
    UNIT_RUN(role_by_name);
    UNIT_RUN(version_by_name);
    UNIT_RUN(allocation_failures);
    UNIT_RUN(validator_rejects);

    return unit_done("mcp");
}
