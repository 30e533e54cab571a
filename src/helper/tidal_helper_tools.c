/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper's MCP server: the music tools on top of the GHCi driver,
 * the channel state it keeps (a tidal_state document), the events it
 * sends (notifications/tidal/<type>) and the state it re-applies after
 * GHCi restarts.
 */


#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_helper.h"
#include "tidal_ghci.h"
#include "tidal_mcp.h"
#include "tidal_pattern.h"
#include "tidal_state.h"
#include "tidal_tools.h"


#define TIDAL_HELPER_CPS_MAX  1000

/* what a tool returns when GHCi answers later (never dereferenced) */
#define TIDAL_HELPER_DEFERRED  ((json_t *) &tidal_helper_deferred)


typedef enum {
    TIDAL_HELPER_EVAL = 0,
    TIDAL_HELPER_SILENCE,
    TIDAL_HELPER_HUSH,
    TIDAL_HELPER_MUTE,
    TIDAL_HELPER_UNMUTE,
    TIDAL_HELPER_SOLO,
    TIDAL_HELPER_UNSOLO,
    TIDAL_HELPER_TEMPO,
    TIDAL_HELPER_RAW,          /* tidal_eval_raw */
    TIDAL_HELPER_REPLAY        /* re-applying the state: no reply */
} tidal_helper_op_e;


/* one tool call (or replay) waiting for GHCi */
typedef struct {
    tidal_helper_t      *h;
    json_t              *id;          /* the request's, NULL: internal */
    tidal_helper_op_e    op;
    int                  channel;
    char                *pattern;
    double               cps;
    char                 who[64];
} tidal_helper_call_t;


/* the music tools the helper offers, in the shared table's order */
static const char  *tidal_helper_tool_names[] = {
    "tidal_get_state", "tidal_get_history", "tidal_eval", "tidal_hush",
    "tidal_silence", "tidal_solo", "tidal_unsolo", "tidal_mute",
    "tidal_unmute", "tidal_set_tempo", "tidal_eval_raw"
};

static const char   tidal_helper_deferred;

static const char  *tidal_helper_commands[] = {
    NULL, "d%d silence", "hush", "mute %d", "unmute %d", "solo %d",
    "unsolo %d"
};


static void tidal_helper_call(tidal_helper_t *h, const tidal_mcp_tool_t *tool,
    json_t *args, json_t *id);
static json_t *tidal_helper_run(tidal_helper_t *h, const char *name,
    json_t *args, json_t *id);
static json_t *tidal_helper_eval(tidal_helper_t *h, json_t *args,
    json_t *id);
static json_t *tidal_helper_command(tidal_helper_t *h, tidal_helper_op_e op,
    json_t *args, json_t *id);
static json_t *tidal_helper_tempo(tidal_helper_t *h, json_t *args,
    json_t *id);
static json_t *tidal_helper_raw(tidal_helper_t *h, json_t *args,
    json_t *id);
static json_t *tidal_helper_get_state(tidal_helper_t *h);
static json_t *tidal_helper_get_history(tidal_helper_t *h, json_t *args);
static const char *tidal_helper_unknown_arg(json_t *args,
    const char *allowed[]);
static int tidal_helper_arg_channel(json_t *args, char *err, size_t len);
static json_t *tidal_helper_submit(tidal_helper_t *h,
    tidal_helper_call_t *call, const char *text, size_t len, int urgent);
static tidal_helper_call_t *tidal_helper_call_new(tidal_helper_t *h,
    json_t *id, tidal_helper_op_e op, int channel);
static void tidal_helper_call_free(tidal_helper_call_t *call);
static void tidal_helper_done(tidal_ghci_t *g, tidal_ghci_job_t *job,
    tidal_ghci_status_e status, const char *output, size_t len);
static json_t *tidal_helper_applied(tidal_helper_t *h,
    tidal_helper_call_t *call);
static char *tidal_helper_failure(tidal_helper_t *h,
    tidal_helper_call_t *call, tidal_ghci_status_e status,
    const char *output, size_t len);
static void tidal_helper_replay(tidal_helper_t *h);
static void tidal_helper_replay_channel(tidal_helper_t *h, int channel,
    int urgent);
static int tidal_helper_stall_culprit(tidal_helper_t *h);
static json_t *tidal_helper_channel_get(tidal_helper_t *h, int channel);
static void tidal_helper_channel_set(tidal_helper_t *h, int channel,
    const char *pattern, int muted, int soloed);
static json_t *tidal_helper_channel_state(tidal_helper_t *h, int channel);
static json_t *tidal_helper_resource(tidal_mcp_session_t *s, int channel);
static void tidal_helper_channel_event(tidal_helper_t *h, int channel,
    const char *who);
static uint64_t tidal_helper_event(tidal_helper_t *h, const char *type,
    json_t *fields, int history);
static void tidal_helper_notify(tidal_helper_t *h, char *text, size_t len);
static void tidal_helper_reply(tidal_helper_t *h, json_t *id,
    json_t *result);
static const char *tidal_helper_who(tidal_helper_t *h);
static void tidal_helper_set_prev(tidal_helper_t *h, int channel,
    const char *pattern);


#define tidal_helper_nelts(a)  (sizeof(a) / sizeof((a)[0]))


int
tidal_helper_init(tidal_helper_t *h, tidal_role_e role, int allow_raw)
{
    size_t                   i, n, ntools;
    const tidal_mcp_tool_t  *tool;

    n = 0;

    /* tidal_eval_raw, the last, only when asked for */

    ntools = tidal_helper_nelts(tidal_helper_tool_names) - (allow_raw ? 0 : 1);

    for (i = 0; i < ntools; i++) {
        tool = tidal_tools_find(tidal_helper_tool_names[i]);

        if (tool == NULL || n == TIDAL_HELPER_TOOLS_MAX) {
            tidal_helper_log(TIDAL_LOG_ERR, "tool %s is missing from the "
                             "shared table", tidal_helper_tool_names[i]);
            return -1;
        }

        h->tools[n++] = *tool;
    }

    h->server.name = "tidal-helper";
    h->server.version = TIDAL_HELPER_VERSION;
    h->server.tools = h->tools;
    h->server.ntools = n;

    tidal_mcp_session_init(&h->session, &h->server, role);
    h->session.resource_hook = tidal_helper_resource;
    h->session.data = h;

    h->state = tidal_state_empty();

    return h->state ? 0 : -1;
}


void
tidal_helper_free(tidal_helper_t *h)
{
    int  i;

    for (i = 0; i < 17; i++) {
        free(h->prev[i]);
        h->prev[i] = NULL;
    }

    json_decref(h->state);
    h->state = NULL;
}


void
tidal_helper_message(tidal_helper_t *h, const char *msg, size_t len)
{
    tidal_mcp_out_t  out;

    memset(&out, 0, sizeof(out));

    if (tidal_mcp_handle(&h->session, msg, len, &out) != 0) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory handling a message");
        return;
    }

    if (out.action == TIDAL_MCP_REPLY && out.reply) {
        h->send(h, out.reply, out.reply_len);

    } else if (out.action == TIDAL_MCP_CALL) {
        tidal_helper_call(h, out.tool, out.args, out.id);
    }

    tidal_mcp_out_free(&out);
}


/* -- tools ------------------------------------------------------------- */


static void
tidal_helper_call(tidal_helper_t *h, const tidal_mcp_tool_t *tool,
    json_t *args, json_t *id)
{
    json_t  *result;

    result = tidal_helper_run(h, tool->name, args, id);

    /* NULL: out of memory, answered with a JSON-RPC error */

    if (result != TIDAL_HELPER_DEFERRED) {
        tidal_helper_reply(h, id, result);
    }
}


/*
 * Runs a tool: a result to send now, TIDAL_HELPER_DEFERRED when the
 * answer comes from GHCi later, NULL without memory.
 */

static json_t *
tidal_helper_run(tidal_helper_t *h, const char *name, json_t *args,
    json_t *id)
{
    static const char  *none[] = { NULL };
    static const char  *history[] = { "limit", NULL };
    const char         *bad;

    if (strcmp(name, "tidal_eval") == 0) {
        return tidal_helper_eval(h, args, id);
    }

    if (strcmp(name, "tidal_set_tempo") == 0) {
        return tidal_helper_tempo(h, args, id);
    }

    if (strcmp(name, "tidal_eval_raw") == 0) {
        return tidal_helper_raw(h, args, id);
    }

    if (strcmp(name, "tidal_get_history") == 0) {
        bad = tidal_helper_unknown_arg(args, history);

        if (bad != NULL) {
            return tidal_tools_result(1, bad, NULL);
        }

        return tidal_helper_get_history(h, args);
    }

    if (strcmp(name, "tidal_get_state") == 0) {
        bad = tidal_helper_unknown_arg(args, none);

        if (bad != NULL) {
            return tidal_tools_result(1, bad, NULL);
        }

        return tidal_helper_get_state(h);
    }

    if (strcmp(name, "tidal_hush") == 0) {
        return tidal_helper_command(h, TIDAL_HELPER_HUSH, args, id);
    }

    if (strcmp(name, "tidal_silence") == 0) {
        return tidal_helper_command(h, TIDAL_HELPER_SILENCE, args, id);
    }

    if (strcmp(name, "tidal_mute") == 0) {
        return tidal_helper_command(h, TIDAL_HELPER_MUTE, args, id);
    }

    if (strcmp(name, "tidal_unmute") == 0) {
        return tidal_helper_command(h, TIDAL_HELPER_UNMUTE, args, id);
    }

    if (strcmp(name, "tidal_solo") == 0) {
        return tidal_helper_command(h, TIDAL_HELPER_SOLO, args, id);
    }

    if (strcmp(name, "tidal_unsolo") == 0) {
        return tidal_helper_command(h, TIDAL_HELPER_UNSOLO, args, id);
    }

    return tidal_tools_result(1, "This tool is not available here.", NULL);
}


static json_t *
tidal_helper_eval(tidal_helper_t *h, json_t *args, json_t *id)
{
    int                   channel;
    char                  err[512], *text;
    size_t                len;
    json_t               *pattern, *fields, *result;
    const char           *bad;
    tidal_helper_call_t  *call;
    static const char    *allowed[] = { "channel", "pattern", NULL };

    bad = tidal_helper_unknown_arg(args, allowed);
    if (bad != NULL) {
        return tidal_tools_result(1, bad, NULL);
    }

    channel = tidal_helper_arg_channel(args, err, sizeof(err));
    if (channel == 0) {
        return tidal_tools_result(1, err, NULL);
    }

    pattern = json_object_get(args, "pattern");

    if (!json_is_string(pattern)) {
        return tidal_tools_result(1, "Invalid argument \"pattern\": a "
                                   "string (Tidal code) is required", NULL);
    }

    len = json_string_length(pattern);

    if (tidal_pattern_check(json_string_value(pattern), len, err,
                            sizeof(err))
        != 0)
    {
        fields = json_pack("{s:s, s:s, s:s, s:b, s:s}",
                           "channel", json_string_value(
                                          json_object_get(args, "channel")),
                           "pattern", json_string_value(pattern),
                           "who", tidal_helper_who(h),
                           "ok", 0, "error", err);
        if (fields) {
            tidal_helper_event(h, "pattern_eval", fields, 1);
        }

        return tidal_tools_result(1, err, json_pack("{s:s, s:b, s:s, s:s}",
                                   "channel", json_string_value(
                                       json_object_get(args, "channel")),
                                   "ok", 0, "refused", "sandbox",
                                   "error", err));
    }

    text = tidal_pattern_wrap(channel, json_string_value(pattern), len,
                              &len);
    if (text == NULL) {
        return NULL;
    }

    call = tidal_helper_call_new(h, id, TIDAL_HELPER_EVAL, channel);

    if (call == NULL
        || (call->pattern = strdup(json_string_value(pattern))) == NULL)
    {
        tidal_helper_call_free(call);
        free(text);
        return NULL;
    }

    result = tidal_helper_submit(h, call, text, len, 0);
    free(text);

    return result;
}


static json_t *
tidal_helper_command(tidal_helper_t *h, tidal_helper_op_e op, json_t *args,
    json_t *id)
{
    int                   channel, n;
    char                  err[256], text[64];
    const char           *bad;
    tidal_helper_call_t  *call;
    static const char    *none[] = { NULL };
    static const char    *channel_only[] = { "channel", NULL };

    channel = 0;

    if (op == TIDAL_HELPER_HUSH) {
        bad = tidal_helper_unknown_arg(args, none);

    } else {
        bad = tidal_helper_unknown_arg(args, channel_only);

        if (bad == NULL) {
            channel = tidal_helper_arg_channel(args, err, sizeof(err));
            if (channel == 0) {
                return tidal_tools_result(1, err, NULL);
            }
        }
    }

    if (bad != NULL) {
        return tidal_tools_result(1, bad, NULL);
    }

    call = tidal_helper_call_new(h, id, op, channel);
    if (call == NULL) {
        return NULL;
    }

    /* Tidal's own words: "d1 silence", "hush", "mute 1", "solo 1" */

    n = snprintf(text, sizeof(text), tidal_helper_commands[op], channel);

    return tidal_helper_submit(h, call, text, (size_t) n, 0);
}


static json_t *
tidal_helper_tempo(tidal_helper_t *h, json_t *args, json_t *id)
{
    int                   n;
    char                  text[64];
    double                cps;
    json_t               *c, *b;
    const char           *bad;
    tidal_helper_call_t  *call;
    static const char    *allowed[] = { "cps", "bpm", NULL };

    bad = tidal_helper_unknown_arg(args, allowed);
    if (bad != NULL) {
        return tidal_tools_result(1, bad, NULL);
    }

    c = json_object_get(args, "cps");
    b = json_object_get(args, "bpm");

    if ((c == NULL) == (b == NULL)) {
        return tidal_tools_result(1, c ? "Invalid arguments: give \"cps\" "
                                   "or \"bpm\", not both"
                                   : "Invalid arguments: \"cps\" (cycles "
                                   "per second) or \"bpm\" (beats per "
                                   "minute) is required", NULL);
    }

    cps = c ? json_number_value(c) : json_number_value(b) / 240;

    if (!json_is_number(c ? c : b) || !isfinite(cps) || cps <= 0
        || cps > TIDAL_HELPER_CPS_MAX)
    {
        return tidal_tools_result(1, c ? "Invalid argument \"cps\": a "
                                   "number greater than 0 and at most 1000"
                                   : "Invalid argument \"bpm\": a number "
                                   "greater than 0 and at most 240000",
                                   NULL);
    }

    call = tidal_helper_call_new(h, id, TIDAL_HELPER_TEMPO, 0);
    if (call == NULL) {
        return NULL;
    }

    call->cps = cps;

    n = snprintf(text, sizeof(text), "setcps (%.17g)", cps);

    return tidal_helper_submit(h, call, text, (size_t) n, 0);
}


/*
 * Unsandboxed GHCi input, for admins of a server that allows it: GHCi
 * statements and commands as typed, several lines as one block.
 */

static json_t *
tidal_helper_raw(tidal_helper_t *h, json_t *args, json_t *id)
{
    int                   n;
    char                 *text;
    json_t               *code, *result;
    const char           *bad;
    tidal_helper_call_t  *call;
    static const char    *allowed[] = { "code", NULL };

    bad = tidal_helper_unknown_arg(args, allowed);
    if (bad != NULL) {
        return tidal_tools_result(1, bad, NULL);
    }

    code = json_object_get(args, "code");

    if (!json_is_string(code) || json_string_length(code) == 0
        || json_string_length(code) > TIDAL_STATE_PATTERN_MAX)
    {
        return tidal_tools_result(1, "Invalid argument \"code\": a string "
                                  "of 1 to 65536 bytes is required", NULL);
    }

    tidal_helper_log(TIDAL_LOG_INFO, "%s evaluates raw code (%d bytes)",
                     tidal_helper_who(h), (int) json_string_length(code));

    call = tidal_helper_call_new(h, id, TIDAL_HELPER_RAW, 0);
    if (call == NULL) {
        return NULL;
    }

    n = strchr(json_string_value(code), '\n')
        ? asprintf(&text, ":{\n%s\n:}", json_string_value(code))
        : asprintf(&text, "%s", json_string_value(code));

    if (n == -1) {
        tidal_helper_call_free(call);
        return NULL;
    }

    result = tidal_helper_submit(h, call, text, (size_t) n, 0);
    free(text);

    return result;
}


static json_t *
tidal_helper_get_state(tidal_helper_t *h)
{
    int64_t   age, deadline;
    uint64_t  beats;

    tidal_ghci_heartbeat(h->ghci, &beats, &age, &deadline);

    return tidal_tools_result_structured(
               json_pack("{s:O, s:o, s:I, s:s, s:{s:I, s:o, s:o}}",
                         "channels", json_object_get(h->state, "channels"),
                         "tempo", tidal_state_tempo(h->state),
                         "seq", (json_int_t) h->seq,
                         "ghci", tidal_ghci_status(h->ghci),
                         "scheduler",
                             "heartbeats", (json_int_t) beats,
                             "heartbeat_age_ms",
                                 age >= 0 ? json_integer(age) : json_null(),
                             "stall_after_ms",
                                 deadline ? json_integer(deadline)
                                          : json_null()));
}


static json_t *
tidal_helper_get_history(tidal_helper_t *h, json_t *args)
{
    json_t      *limit;
    json_int_t   max;

    limit = json_object_get(args, "limit");
    max = 50;

    if (limit != NULL) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 1
            || json_integer_value(limit) > TIDAL_STATE_HISTORY_MAX)
        {
            return tidal_tools_result(1, "Invalid argument \"limit\": an "
                                       "integer from 1 to 1000", NULL);
        }

        max = json_integer_value(limit);
    }

    return tidal_tools_result_structured(
               json_pack("{s:o*}", "history",
                         tidal_state_history(h->state, (size_t) max)));
}


/* a message naming the first argument not in allowed, or NULL */

static const char *
tidal_helper_unknown_arg(json_t *args, const char *allowed[])
{
    size_t       i;
    json_t      *v;
    const char  *key;
    static char  msg[160];

    json_object_foreach(args, key, v) {
        for (i = 0; allowed[i]; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                break;
            }
        }

        if (allowed[i] == NULL) {
            snprintf(msg, sizeof(msg), "Unknown argument \"%.40s\"", key);
            return msg;
        }
    }

    return NULL;
}


static int
tidal_helper_arg_channel(json_t *args, char *err, size_t len)
{
    int      channel;
    json_t  *v;

    v = json_object_get(args, "channel");

    if (v == NULL) {
        snprintf(err, len, "Invalid argument \"channel\": required, one of "
                 "d1 .. d16");
        return 0;
    }

    channel = tidal_ghci_channel(json_string_value(v));

    if (channel == 0) {
        snprintf(err, len, "Invalid argument \"channel\": %s%.20s%s is not "
                 "one of d1 .. d16", json_is_string(v) ? "\"" : "",
                 json_is_string(v) ? json_string_value(v) : "not a string",
                 json_is_string(v) ? "\"" : "");
    }

    return channel;
}


/* -- GHCi jobs --------------------------------------------------------- */


static tidal_helper_call_t *
tidal_helper_call_new(tidal_helper_t *h, json_t *id, tidal_helper_op_e op,
    int channel)
{
    tidal_helper_call_t  *call;

    call = calloc(1, sizeof(tidal_helper_call_t));
    if (call == NULL) {
        return NULL;
    }

    call->h = h;
    call->id = id ? json_incref(id) : NULL;
    call->op = op;
    call->channel = channel;
    snprintf(call->who, sizeof(call->who), "%s", tidal_helper_who(h));

    return call;
}


static void
tidal_helper_call_free(tidal_helper_call_t *call)
{
    if (call) {
        json_decref(call->id);
        free(call->pattern);
        free(call);
    }
}


/*
 * Queues text (copied) for GHCi, call is owned from now on:
 * TIDAL_HELPER_DEFERRED, or an error result to send now.
 */

static json_t *
tidal_helper_submit(tidal_helper_t *h, tidal_helper_call_t *call,
    const char *text, size_t len, int urgent)
{
    int                reply;
    tidal_ghci_job_t  *job;

    job = tidal_ghci_job(text, len, tidal_helper_done, call);

    if (job == NULL || tidal_ghci_submit(h->ghci, job, urgent) != 0) {
        reply = (call->id != NULL);
        tidal_helper_call_free(call);
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory queueing a job");

        return reply ? tidal_tools_result(1, "Out of memory", NULL) : NULL;
    }

    return TIDAL_HELPER_DEFERRED;
}


static void
tidal_helper_done(tidal_ghci_t *g, tidal_ghci_job_t *job,
    tidal_ghci_status_e status, const char *output, size_t len)
{
    char                 *msg, name[8];
    json_t               *result, *structured;
    tidal_helper_t       *h;
    tidal_helper_call_t  *call;

    call = job->data;
    h = tidal_ghci_data(g);
    result = NULL;

    if (status == TIDAL_GHCI_OK) {
        result = tidal_helper_applied(h, call);

    } else {
        msg = tidal_helper_failure(h, call, status, output, len);

        if (call->id) {
            structured = NULL;

            if (call->op == TIDAL_HELPER_EVAL) {
                snprintf(name, sizeof(name), "d%d", call->channel);
                structured = json_pack("{s:s, s:b, s:s}", "channel", name,
                                       "ok", 0, "error", msg ? msg : "");
            }

            result = tidal_tools_result(1, msg ? msg : "Out of memory",
                                         structured);
        }

        free(msg);
    }

    if (call->id) {
        tidal_helper_reply(h, call->id, result);

    } else {
        json_decref(result);
    }

    tidal_helper_call_free(call);
}


/* GHCi did it: the state follows, events go out, the result says so */

static json_t *
tidal_helper_applied(tidal_helper_t *h, tidal_helper_call_t *call)
{
    int          ch, muted, soloed;
    char         name[8], text[160];
    json_t      *cur, *fields;
    uint64_t     seq;
    const char  *pattern;

    ch = call->channel;
    snprintf(name, sizeof(name), "d%d", ch);

    cur = tidal_helper_channel_get(h, ch);
    pattern = json_string_value(json_object_get(cur, "pattern"));
    muted = json_is_true(json_object_get(cur, "muted"));
    soloed = json_is_true(json_object_get(cur, "soloed"));

    switch (call->op) {

    case TIDAL_HELPER_EVAL:
        tidal_helper_set_prev(h, ch, pattern);
        tidal_helper_channel_set(h, ch, call->pattern, muted, soloed);
        h->last_channel = ch;
        h->evaluated[ch] = tidal_helper_msec();

        fields = json_pack("{s:s, s:s, s:s}", "channel", name,
                           "pattern", call->pattern, "who", call->who);
        if (fields) {
            tidal_helper_event(h, "pattern_update", fields, 0);
        }

        fields = json_pack("{s:s, s:s, s:s, s:b, s:n}", "channel", name,
                           "pattern", call->pattern, "who", call->who,
                           "ok", 1, "error");
        seq = fields ? tidal_helper_event(h, "pattern_eval", fields, 1) : 0;

        tidal_helper_channel_event(h, 0, NULL);

        snprintf(text, sizeof(text), "%s is playing the new pattern%s.",
                 name, muted ? " (muted)" : "");

        return tidal_tools_result(0, text,
                                   json_pack("{s:s, s:s, s:b, s:I}",
                                             "channel", name,
                                             "pattern", call->pattern,
                                             "ok", 1, "seq",
                                             (json_int_t) seq));

    case TIDAL_HELPER_REPLAY:
        return NULL;

    case TIDAL_HELPER_RAW:
        return tidal_tools_result(0, "GHCi evaluated it without an error.",
                                  NULL);

    case TIDAL_HELPER_SILENCE:
        tidal_helper_set_prev(h, ch, pattern);
        tidal_helper_channel_set(h, ch, NULL, muted, soloed);
        tidal_helper_channel_event(h, ch, call->who);
        snprintf(text, sizeof(text), "%s is silent.", name);
        break;

    case TIDAL_HELPER_HUSH:
        for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
            cur = tidal_helper_channel_get(h, ch);

            if (cur == NULL) {
                continue;
            }

            pattern = json_string_value(json_object_get(cur, "pattern"));
            tidal_helper_set_prev(h, ch, pattern);
            tidal_helper_channel_set(h, ch, NULL,
                                     json_is_true(json_object_get(cur,
                                                                  "muted")),
                                     json_is_true(json_object_get(cur,
                                                                  "soloed")));
            tidal_helper_channel_event(h, ch, call->who);
        }

        snprintf(text, sizeof(text), "Hushed: every channel is silent.");
        ch = 0;
        break;

    case TIDAL_HELPER_MUTE:
    case TIDAL_HELPER_UNMUTE:
        tidal_helper_channel_set(h, ch, pattern,
                                 call->op == TIDAL_HELPER_MUTE, soloed);
        tidal_helper_channel_event(h, ch, call->who);
        snprintf(text, sizeof(text), "%s is %s.", name,
                 call->op == TIDAL_HELPER_MUTE ? "muted" : "unmuted");
        break;

    case TIDAL_HELPER_SOLO:
    case TIDAL_HELPER_UNSOLO:
        tidal_helper_channel_set(h, ch, pattern, muted,
                                 call->op == TIDAL_HELPER_SOLO);
        tidal_helper_channel_event(h, ch, call->who);
        snprintf(text, sizeof(text), "%s is %s.", name,
                 call->op == TIDAL_HELPER_SOLO ? "soloed"
                                               : "out of solo");
        break;

    case TIDAL_HELPER_TEMPO:
        tidal_ghci_tempo(h->ghci, call->cps);

        if (json_object_set_new(json_object_get(h->state, "tempo"), "cps",
                                json_real(call->cps))
            != 0)
        {
            tidal_helper_log(TIDAL_LOG_ERR, "out of memory keeping the "
                             "tempo");
        }

        fields = json_pack("{s:f, s:f, s:s}", "cps", call->cps,
                           "bpm", call->cps * 240, "who", call->who);
        if (fields) {
            tidal_helper_event(h, "tempo_change", fields, 1);
        }

        snprintf(text, sizeof(text), "The tempo is %g cps (%g bpm).",
                 call->cps, call->cps * 240);

        return tidal_tools_result(0, text,
                                   json_pack("{s:f, s:f, s:I}",
                                             "cps", call->cps,
                                             "bpm", call->cps * 240,
                                             "seq", (json_int_t) h->seq));
    }

    if (ch == 0) {
        return tidal_tools_result(0, text, json_pack("{s:I}", "seq",
                                                      (json_int_t) h->seq));
    }

    return tidal_tools_result(0, text,
                               json_pack("{s:s, s:o, s:I}", "channel", name,
                                         "state",
                                         tidal_helper_channel_state(h, ch),
                                         "seq", (json_int_t) h->seq));
}


/*
 * Why GHCi did not do it, as the message for the performer (malloc'ed),
 * with the event it deserves.
 */

static char *
tidal_helper_failure(tidal_helper_t *h, tidal_helper_call_t *call,
    tidal_ghci_status_e status, const char *output, size_t len)
{
    char    *msg, *mapped, name[8];
    json_t  *fields;

    snprintf(name, sizeof(name), "d%d", call->channel);
    msg = NULL;

    if (status == TIDAL_GHCI_TIMEOUT) {
        if (asprintf(&msg, "%s: the evaluation took longer than %d ms and "
                     "was interrupted; %s keeps playing its previous "
                     "pattern", name, h->eval_timeout, name)
            == -1)
        {
            msg = NULL;
        }

    } else if (status == TIDAL_GHCI_GONE) {
        msg = strndup(output, len);

    } else if (call->op == TIDAL_HELPER_EVAL
               || call->op == TIDAL_HELPER_REPLAY)
    {
        mapped = tidal_pattern_map_errors(call->channel, output, len, NULL);
        msg = mapped;

    } else {
        msg = strndup(output, len);
    }

    if (call->op == TIDAL_HELPER_EVAL) {
        fields = json_pack("{s:s, s:s, s:s, s:b, s:s}", "channel", name,
                           "pattern", call->pattern, "who", call->who,
                           "ok", 0, "error", msg ? msg : "");
        if (fields) {
            tidal_helper_event(h, "pattern_eval", fields, 1);
        }

    } else if (call->op == TIDAL_HELPER_REPLAY && call->pattern
               && status != TIDAL_GHCI_GONE)
    {
        /*
         * GHCi refused or could not finish it: drop it, say so.  (GONE:
         * GHCi went away again, the next boot re-applies it.)
         */

        tidal_helper_channel_set(h, call->channel, NULL, 0, 0);

        fields = json_pack("{s:s, s:s}", "channel", name, "message", "");
        if (fields) {
            json_object_set_new(fields, "message",
                json_sprintf("%s could not be re-applied after GHCi "
                             "restarted and is silent now: %s", name,
                             msg ? msg : ""));
            tidal_helper_event(h, "error", fields, 1);
        }

        tidal_helper_channel_event(h, call->channel, "tidal-helper");

    } else {
        tidal_helper_log(TIDAL_LOG_WARN, "GHCi refused a command (%d): %s",
                         (int) call->op, msg ? msg : "");
    }

    return msg;
}


/* -- restarts and runtime errors --------------------------------------- */


void
tidal_helper_ghci_ready(tidal_ghci_t *g, const char *reason)
{
    json_t          *fields;
    tidal_helper_t  *h;

    h = tidal_ghci_data(g);

    /* a first boot has nothing to play, unless nginx gave a state */

    if (reason == NULL && !h->adopted) {
        return;
    }

    tidal_helper_replay(h);

    if (reason == NULL) {

        /* a new helper (the last one died) brought the room back */

        if (json_object_size(json_object_get(h->state, "channels")) == 0) {
            return;
        }

        reason = "tidal-helper started anew; the room's channels and "
                 "tempo were re-applied";
    }

    fields = json_pack("{s:s}", "reason", reason);
    if (fields) {
        tidal_helper_event(h, "ghci_restarted", fields, 1);
    }
}


int
tidal_helper_adopt(tidal_helper_t *h, const char *text, size_t len,
    char *err, size_t errlen)
{
    int      ch;
    json_t  *state;

    state = tidal_state_parse(text, len, err, errlen);
    if (state == NULL) {
        return -1;
    }

    json_decref(h->state);
    h->state = state;
    h->adopted = 1;

    for (ch = 0; ch < 17; ch++) {
        tidal_helper_set_prev(h, ch, NULL);
    }

    if (strcmp(tidal_ghci_status(h->ghci), "running") == 0) {
        tidal_helper_replay(h);
    }

    return 0;
}


/* sends GHCi the tempo first, then every channel, then mute and solo */

static void
tidal_helper_replay(tidal_helper_t *h)
{
    int                   ch, n;
    char                  text[64];
    double                cps;
    json_t               *cur;
    tidal_helper_call_t  *call;

    call = tidal_helper_call_new(h, NULL, TIDAL_HELPER_REPLAY, 0);

    if (call) {
        cps = json_number_value(json_object_get(
                  json_object_get(h->state, "tempo"), "cps"));
        n = snprintf(text, sizeof(text), "setcps (%.17g)", cps);
        tidal_helper_submit(h, call, text, (size_t) n, 1);
        tidal_ghci_tempo(h->ghci, cps);
    }

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        tidal_helper_replay_channel(h, ch, 1);
    }

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        cur = tidal_helper_channel_get(h, ch);

        if (json_is_true(json_object_get(cur, "muted"))) {
            call = tidal_helper_call_new(h, NULL, TIDAL_HELPER_REPLAY, ch);
            if (call) {
                n = snprintf(text, sizeof(text), "mute %d", ch);
                tidal_helper_submit(h, call, text, (size_t) n, 1);
            }
        }

        if (json_is_true(json_object_get(cur, "soloed"))) {
            call = tidal_helper_call_new(h, NULL, TIDAL_HELPER_REPLAY, ch);
            if (call) {
                n = snprintf(text, sizeof(text), "solo %d", ch);
                tidal_helper_submit(h, call, text, (size_t) n, 1);
            }
        }
    }
}


/* queues "dN (pattern)" again for a channel that has one */

static void
tidal_helper_replay_channel(tidal_helper_t *h, int channel, int urgent)
{
    char                 *text;
    size_t                len;
    json_t               *cur;
    const char           *pattern;
    tidal_helper_call_t  *call;

    cur = tidal_helper_channel_get(h, channel);
    pattern = json_string_value(json_object_get(cur, "pattern"));

    if (pattern == NULL || strcmp(pattern, "silence") == 0) {
        return;
    }

    text = tidal_pattern_wrap(channel, pattern, strlen(pattern), &len);
    call = tidal_helper_call_new(h, NULL, TIDAL_HELPER_REPLAY, channel);

    if (text == NULL || call == NULL
        || (call->pattern = strdup(pattern)) == NULL)
    {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory re-applying d%d",
                         channel);
        tidal_helper_call_free(call);
        free(text);
        return;
    }

    tidal_helper_submit(h, call, text, len, urgent);
    free(text);
}


/*
 * An error outside any tool call.  A runtime error of a pattern: Tidal
 * has put every channel back to its previous pattern; the culprit keeps
 * its previous one (as Tidal does), the others are re-applied so that
 * what plays is what the state says.
 */

void
tidal_helper_ghci_error(tidal_ghci_t *g, int channel, const char *message,
    int boot)
{
    int              ch;
    char             name[8], *mapped;
    json_t          *fields, *cur;
    tidal_helper_t  *h;

    h = tidal_ghci_data(g);

    /* its call stack may point into the pattern: "d2:1:19" */

    mapped = channel ? tidal_pattern_map_errors(channel, message,
                                                strlen(message), NULL)
                     : NULL;

    fields = json_pack("{s:s}", "message", mapped ? mapped : message);
    free(mapped);

    if (fields == NULL) {
        return;
    }

    if (boot) {
        tidal_helper_event(h, "error", fields, 1);
        return;
    }

    if (channel == 0) {
        channel = h->last_channel;
    }

    if (channel == 0) {
        tidal_helper_event(h, "error", fields, 1);
        return;
    }

    snprintf(name, sizeof(name), "d%d", channel);
    json_object_set_new(fields, "channel", json_string(name));
    tidal_helper_event(h, "error", fields, 1);

    cur = tidal_helper_channel_get(h, channel);
    tidal_helper_channel_set(h, channel, h->prev[channel],
                             json_is_true(json_object_get(cur, "muted")),
                             json_is_true(json_object_get(cur, "soloed")));
    tidal_helper_set_prev(h, channel, NULL);
    tidal_helper_channel_event(h, channel, "tidal-helper");

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        if (ch != channel) {
            tidal_helper_replay_channel(h, ch, 1);
        }
    }
}


/*
 * Tidal's scheduler stalled while GHCi answers: a pattern that passed
 * its first cycle diverges in a later one.  Since a stalled scheduler
 * holds Tidal's play map, no pattern can have replaced another after the
 * stall began: the culprit is the playing channel set most recently.  It
 * goes silent (and leaves solo) before GHCi restarts, so the replay
 * brings back every other channel but not it.
 */

void
tidal_helper_ghci_stalled(tidal_ghci_t *g, const char *why)
{
    int              ch;
    char             name[16];
    json_t          *cur, *fields;
    tidal_helper_t  *h;

    h = tidal_ghci_data(g);

    ch = tidal_helper_stall_culprit(h);

    if (ch == 0) {
        fields = json_pack("{s:s}", "message", "");
        if (fields) {
            json_object_set_new(fields, "message",
                json_sprintf("%s; no channel was playing, Tidal is being "
                             "restarted", why));
            tidal_helper_event(h, "error", fields, 1);
        }

        return;
    }

    snprintf(name, sizeof(name), "d%d", ch);

    tidal_helper_log(TIDAL_LOG_ERR, "%s stalled Tidal's scheduler, stopping "
                     "it", name);

    cur = tidal_helper_channel_get(h, ch);
    tidal_helper_channel_set(h, ch, NULL,
                             json_is_true(json_object_get(cur, "muted")), 0);
    tidal_helper_set_prev(h, ch, NULL);
    h->evaluated[ch] = 0;

    fields = json_pack("{s:s, s:s}", "channel", name, "message", "");
    if (fields) {
        json_object_set_new(fields, "message",
            json_sprintf("%s stalled Tidal's scheduler and was stopped; the "
                         "other channels were restarted (%s)", name, why));
        tidal_helper_event(h, "error", fields, 1);
    }

    tidal_helper_channel_event(h, ch, "tidal-helper");
}


/*
 * The channel whose pattern the scheduler plays (not silent, not muted,
 * soloed when any is) that was set last; 0 when none plays.
 */

static int
tidal_helper_stall_culprit(tidal_helper_t *h)
{
    int          ch, best, solo;
    json_t      *cur;
    const char  *pattern;

    solo = 0;

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        cur = tidal_helper_channel_get(h, ch);
        solo |= json_is_true(json_object_get(cur, "soloed"));
    }

    best = 0;

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        cur = tidal_helper_channel_get(h, ch);
        pattern = json_string_value(json_object_get(cur, "pattern"));

        if (pattern == NULL || strcmp(pattern, "silence") == 0
            || json_is_true(json_object_get(cur, "muted"))
            || (solo && !json_is_true(json_object_get(cur, "soloed"))))
        {
            continue;
        }

        if (best == 0 || h->evaluated[ch] >= h->evaluated[best]) {
            best = ch;
        }
    }

    return best;
}


/* -- state ------------------------------------------------------------- */


static json_t *
tidal_helper_channel_get(tidal_helper_t *h, int channel)
{
    char  name[16];

    snprintf(name, sizeof(name), "d%d", channel);

    return json_object_get(json_object_get(h->state, "channels"), name);
}


/*
 * pattern NULL: silent.  A silent channel keeps an entry only while it
 * is muted or soloed, with Tidal's own word for nothing, "silence".
 */

static void
tidal_helper_channel_set(tidal_helper_t *h, int channel, const char *pattern,
    int muted, int soloed)
{
    char     name[8];
    json_t  *channels, *entry;

    snprintf(name, sizeof(name), "d%d", channel);
    channels = json_object_get(h->state, "channels");

    if ((pattern == NULL || strcmp(pattern, "silence") == 0)
        && !muted && !soloed)
    {
        json_object_del(channels, name);
        return;
    }

    entry = json_pack("{s:s, s:b, s:b}", "pattern",
                      pattern ? pattern : "silence", "muted", muted,
                      "soloed", soloed);

    if (entry == NULL || json_object_set_new(channels, name, entry) != 0) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory keeping %s", name);
    }
}


/* {"pattern": text or null, "muted": bool, "soloed": bool} */

static json_t *
tidal_helper_channel_state(tidal_helper_t *h, int channel)
{
    json_t      *cur;
    const char  *pattern;

    cur = tidal_helper_channel_get(h, channel);
    pattern = json_string_value(json_object_get(cur, "pattern"));

    if (pattern && strcmp(pattern, "silence") == 0) {
        pattern = NULL;
    }

    return json_pack("{s:s?, s:b, s:b}", "pattern", pattern,
                     "muted", json_is_true(json_object_get(cur, "muted")),
                     "soloed", json_is_true(json_object_get(cur, "soloed")));
}


static json_t *
tidal_helper_resource(tidal_mcp_session_t *s, int channel)
{
    return tidal_helper_channel_state(s->data, channel);
}


static void
tidal_helper_set_prev(tidal_helper_t *h, int channel, const char *pattern)
{
    free(h->prev[channel]);
    h->prev[channel] = pattern ? strdup(pattern) : NULL;
}


/*
 * who != NULL: a channel_state event for channel; in any case the
 * resources/updated notification when the client subscribed to it
 * (channel 0: the last one evaluated).
 */

static void
tidal_helper_channel_event(tidal_helper_t *h, int channel, const char *who)
{
    char     name[8], *text;
    size_t   len;
    json_t  *fields;

    if (channel == 0) {
        channel = h->last_channel;
    }

    if (channel < 1 || channel > TIDAL_STATE_CHANNELS) {
        return;
    }

    if (who != NULL) {
        snprintf(name, sizeof(name), "d%d", channel);

        fields = json_pack("{s:s, s:o, s:s}", "channel", name,
                           "state", tidal_helper_channel_state(h, channel),
                           "who", who);
        if (fields) {
            tidal_helper_event(h, "channel_state", fields, 1);
        }
    }

    if (h->session.initialized
        && (h->session.subscriptions & (1u << (channel - 1))))
    {
        text = tidal_mcp_resource_updated(channel, &len);
        tidal_helper_notify(h, text, len);
    }
}


/* -- events and results ------------------------------------------------ */


/*
 * Numbers an event, keeps it in the history when asked, sends it as
 * notifications/tidal/<type>; fields is stolen.  Returns its seq.
 */

static uint64_t
tidal_helper_event(tidal_helper_t *h, const char *type, json_t *fields,
    int history)
{
    char     method[64], *text;
    size_t   len;
    json_t  *list;

    h->seq++;

    if (json_object_set_new(fields, "type", json_string(type)) != 0
        || json_object_set_new(fields, "seq", json_integer(
                                   (json_int_t) h->seq)) != 0
        || json_object_set_new(fields, "timestamp", json_integer(
                                   (json_int_t) tidal_helper_epoch_msec()))
           != 0)
    {
        json_decref(fields);
        return h->seq;
    }

    if (history) {
        list = json_object_get(h->state, "history");

        if (json_array_append(list, fields) == 0
            && json_array_size(list) > TIDAL_STATE_HISTORY_MAX)
        {
            json_array_remove(list, 0);
        }
    }

    snprintf(method, sizeof(method), "notifications/tidal/%s", type);

    if (h->session.initialized) {
        text = tidal_mcp_notification(method, fields, &len);
        tidal_helper_notify(h, text, len);

    } else {
        json_decref(fields);
    }

    return h->seq;
}


static void
tidal_helper_notify(tidal_helper_t *h, char *text, size_t len)
{
    if (text == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory sending an event");
        return;
    }

    h->send(h, text, len);
    free(text);
}


/* sends the answer to a tools/call; result is stolen */

static void
tidal_helper_reply(tidal_helper_t *h, json_t *id, json_t *result)
{
    char    *text;
    size_t   len;

    if (result == NULL) {
        text = tidal_mcp_error_reply(id, TIDAL_MCP_INTERNAL_ERROR,
                                     "Out of memory", &len);

    } else {
        text = tidal_mcp_tool_reply(id, result, &len);
    }

    tidal_helper_notify(h, text, len);
}


static const char *
tidal_helper_who(tidal_helper_t *h)
{
    if (h->who) {
        return h->who;
    }

    return h->session.client_name[0] ? h->session.client_name : "stdio";
}
