/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper's MCP server: the music tools on top of the GHCi driver,
 * the room it keeps (src/core/tidal_room.c), the events it tells (facts for
 * nginx's zone to number, or numbered by its own room in stdio mode) and
 * the state it re-applies after GHCi restarts.
 */


#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_helper_log.h"
#include "tidal_helper_tools.h"
#include "tidal_ghci.h"
#include "tidal_super.h"
#include "tidal_mcp.h"
#include "tidal_pattern.h"
#include "tidal_protocol.h"
#include "tidal_room.h"
#include "tidal_tools.h"
#include "tidal_utf8.h"


#define TIDAL_HELPER_EVENT_TEXT_MAX  4096      /* bytes of an error event */

/* what a tool returns when GHCi answers later (never dereferenced) */
#define TIDAL_HELPER_DEFERRED  ((json_t *) &tidal_helper_deferred)


/*
 * One tool call waiting for GHCi, or a replay of the state: what a tool
 * did, done again after a restart, with no reply and no event.
 */
typedef struct {
    tidal_helper_t      *h;
    json_t              *id;          /* the request's, NULL: internal */
    tidal_tool_op_e      op;
    tidal_super_op_e     super;       /* how it reaches GHCi */
    unsigned             replay:1;
    int                  channel;
    char                *pattern;
    double               cps;
    char                 who[64];
} tidal_helper_call_t;


static const char   tidal_helper_deferred;

/* the table's way to GHCi as the supervisor's: a replayed pattern PLAYs */
static const tidal_super_op_e  tidal_helper_super_ops[] = {
    TIDAL_SUPER_DO,               /* TIDAL_TOOL_GHCI_NONE: never sent */
    TIDAL_SUPER_CHECK_PLAY,       /* TIDAL_TOOL_GHCI_CHECK_PLAY */
    TIDAL_SUPER_DO,               /* TIDAL_TOOL_GHCI_DO */
    TIDAL_SUPER_RAW               /* TIDAL_TOOL_GHCI_RAW */
};


static json_t *tidal_helper_run(tidal_helper_t *h, const tidal_tool_t *tool,
    const tidal_tool_args_t *a, json_t *id);
static json_t *tidal_helper_eval(tidal_helper_t *h, const tidal_tool_t *tool,
    const tidal_tool_args_t *a, json_t *id);
static json_t *tidal_helper_command(tidal_helper_t *h,
    const tidal_tool_t *tool, const tidal_tool_args_t *a, json_t *id);
static json_t *tidal_helper_raw(tidal_helper_t *h, const tidal_tool_t *tool,
    const tidal_tool_args_t *a, json_t *id);
static json_t *tidal_helper_get_state(tidal_helper_t *h);
static json_t *tidal_helper_get_history(tidal_helper_t *h,
    const tidal_tool_args_t *a);
static void tidal_helper_replay_do(tidal_helper_t *h, tidal_tool_op_e op,
    int channel, double cps);
static json_t *tidal_helper_submit(tidal_helper_t *h,
    tidal_helper_call_t *call, const char *text, size_t len, int urgent);
static tidal_helper_call_t *tidal_helper_call_new(tidal_helper_t *h,
    json_t *id, const tidal_tool_t *tool, int channel);
static void tidal_helper_call_free(tidal_helper_call_t *call);
static void tidal_helper_done(tidal_super_t *s, void *data,
    tidal_ghci_status_e status, const char *output, size_t len);
static json_t *tidal_helper_applied(tidal_helper_t *h,
    tidal_helper_call_t *call);
static char *tidal_helper_failure(tidal_helper_t *h,
    tidal_helper_call_t *call, tidal_ghci_status_e status,
    const char *output, size_t len);
static void tidal_helper_adopt_check(tidal_helper_t *h, int channel);
static void tidal_helper_replay(tidal_helper_t *h);
static void tidal_helper_replay_channel(tidal_helper_t *h, int channel,
    int urgent);
static void tidal_helper_channel_set(tidal_helper_t *h, int channel,
    const char *pattern, int muted, int soloed);
static json_t *tidal_helper_resource(tidal_mcp_session_t *s, int resource);
static void tidal_helper_channel_event(tidal_helper_t *h, int channel,
    const char *who);
static uint64_t tidal_helper_event(tidal_helper_t *h, const char *type,
    json_t *fields);
static json_t *tidal_helper_event_text(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void tidal_helper_notify(tidal_helper_t *h, char *text, size_t len);
static void tidal_helper_deliver(tidal_helper_t *h, const char *event,
    size_t len);
static void tidal_helper_reply(tidal_helper_t *h, json_t *id,
    json_t *result);
static const char *tidal_helper_who(tidal_helper_t *h);


int
tidal_helper_init(tidal_helper_t *h, tidal_role_e role, int allow_raw)
{
    /* the table's rows that run here; the raw one only when asked for */

    h->server.name = "tidal-helper";
    h->server.version = TIDAL_HELPER_VERSION;
    h->server.tools = tidal_tools;
    h->server.ntools = TIDAL_TOOLS_N;
    h->server.where = TIDAL_TOOL_HELPER;
    h->server.raw = allow_raw ? 1 : 0;

    tidal_mcp_session_init(&h->session, &h->server, role);
    h->session.resource_hook = tidal_helper_resource;
    h->session.data = h;

    return tidal_room_init(&h->room);
}


void
tidal_helper_free(tidal_helper_t *h)
{
    tidal_room_free(&h->room);
}


void
tidal_helper_message(tidal_helper_t *h, const char *msg, size_t len)
{
    json_t           *result;
    tidal_mcp_out_t   out;

    memset(&out, 0, sizeof(out));

    if (tidal_mcp_handle(&h->session, msg, len, &out) != 0) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory handling a message");
        return;
    }

    if (out.action == TIDAL_MCP_REPLY && out.reply) {
        h->send(h, out.reply, out.reply_len);

    } else if (out.action == TIDAL_MCP_CALL) {

        /* NULL: out of memory, answered with a JSON-RPC error */

        result = tidal_helper_run(h, out.tool, &out.checked, out.id);

        if (result != TIDAL_HELPER_DEFERRED) {
            tidal_helper_reply(h, out.id, result);
        }
    }

    tidal_mcp_out_free(&out);
}


/* -- tools ------------------------------------------------------------- */


/*
 * Runs a tool whose arguments its row has checked (a): a result to send
 * now, TIDAL_HELPER_DEFERRED when the answer comes from GHCi later, NULL
 * without memory.
 */

static json_t *
tidal_helper_run(tidal_helper_t *h, const tidal_tool_t *tool,
    const tidal_tool_args_t *a, json_t *id)
{
    switch (tool->op) {

    case TIDAL_TOOL_OP_STATE:
        return tidal_helper_get_state(h);

    case TIDAL_TOOL_OP_HISTORY:
        return tidal_helper_get_history(h, a);

    case TIDAL_TOOL_OP_EVAL:
        return tidal_helper_eval(h, tool, a, id);

    case TIDAL_TOOL_OP_RAW:
        return tidal_helper_raw(h, tool, a, id);

    default:
        break;
    }

    if (tool->ghci == TIDAL_TOOL_GHCI_DO) {
        return tidal_helper_command(h, tool, a, id);
    }

    return tidal_tools_result(1, "This tool is not available here.", NULL);
}


static json_t *
tidal_helper_eval(tidal_helper_t *h, const tidal_tool_t *tool,
    const tidal_tool_args_t *a, json_t *id)
{
    char                  err[512], name[8];
    json_t               *fields;
    tidal_helper_call_t  *call;

    snprintf(name, sizeof(name), "d%d", a->channel);

    if (tidal_pattern_check(a->text, a->len, err, sizeof(err)) != 0) {
        fields = json_pack("{s:s, s:s, s:s, s:b, s:s}",
                           "channel", name, "pattern", a->text,
                           "who", tidal_helper_who(h),
                           "ok", 0, "error", err);
        if (fields) {
            tidal_helper_event(h, "pattern_eval", fields);
        }

        return tidal_tools_result(1, err, json_pack("{s:s, s:b, s:s, s:s}",
                                   "channel", name, "ok", 0,
                                   "refused", "sandbox", "error", err));
    }

    call = tidal_helper_call_new(h, id, tool, a->channel);

    if (call == NULL || (call->pattern = strdup(a->text)) == NULL) {
        tidal_helper_call_free(call);
        return NULL;
    }

    return tidal_helper_submit(h, call, call->pattern, a->len, 0);
}


/* the row's statement, in Tidal's own words: "d1 silence", "mute 1" */

static json_t *
tidal_helper_command(tidal_helper_t *h, const tidal_tool_t *tool,
    const tidal_tool_args_t *a, json_t *id)
{
    int                   n;
    char                  text[64];
    tidal_helper_call_t  *call;

    n = tidal_tools_statement(tool, a, text, sizeof(text));
    if (n < 0) {
        return tidal_tools_result(1, "This tool is not available here.",
                                  NULL);
    }

    call = tidal_helper_call_new(h, id, tool, a->channel);
    if (call == NULL) {
        return NULL;
    }

    call->cps = a->cps;

    return tidal_helper_submit(h, call, text, (size_t) n, 0);
}


/*
 * Unsandboxed GHCi input, for admins of a server that allows it: GHCi
 * statements and commands as typed, several lines as one block.
 */

static json_t *
tidal_helper_raw(tidal_helper_t *h, const tidal_tool_t *tool,
    const tidal_tool_args_t *a, json_t *id)
{
    int                   n;
    char                 *text;
    json_t               *result;
    tidal_helper_call_t  *call;

    tidal_helper_log(TIDAL_LOG_INFO, "%s evaluates raw code (%d bytes)",
                     tidal_helper_who(h), (int) a->len);

    call = tidal_helper_call_new(h, id, tool, 0);
    if (call == NULL) {
        return NULL;
    }

    n = strchr(a->text, '\n')
        ? asprintf(&text, ":{\n%s\n:}", a->text)
        : asprintf(&text, "%s", a->text);

    if (n == -1) {
        tidal_helper_call_free(call);
        return NULL;
    }

    result = tidal_helper_submit(h, call, text, (size_t) n, 0);
    free(text);

    return result;
}


/*
 * In socket mode nginx answers from its zone's room, with the scheduler
 * of this answer.
 */

static json_t *
tidal_helper_get_state(tidal_helper_t *h)
{
    double     cps;
    json_t    *scheduler, *result;
    int64_t    age, deadline;
    uint64_t   beats;

    tidal_super_heartbeat(h->ghci, &beats, &age, &deadline, &cps);

    scheduler = json_pack("{s:I, s:o, s:o}",
                          "heartbeats", (json_int_t) beats,
                          "heartbeat_age_ms",
                              age >= 0 ? json_integer(age) : json_null(),
                          "stall_after_ms",
                              deadline ? json_integer(deadline)
                                       : json_null());
    if (scheduler == NULL) {
        return NULL;
    }

    result = tidal_room_get_state(&h->room, tidal_super_status(h->ghci),
                                  scheduler);
    json_decref(scheduler);

    return result;
}


static json_t *
tidal_helper_get_history(tidal_helper_t *h, const tidal_tool_args_t *a)
{
    return tidal_room_get_history(&h->room, a->limit);
}


/* -- GHCi jobs --------------------------------------------------------- */


/* id NULL: a replay of what tool did */

static tidal_helper_call_t *
tidal_helper_call_new(tidal_helper_t *h, json_t *id, const tidal_tool_t *tool,
    int channel)
{
    tidal_helper_call_t  *call;

    call = calloc(1, sizeof(tidal_helper_call_t));
    if (call == NULL) {
        return NULL;
    }

    call->h = h;
    call->id = id ? json_incref(id) : NULL;
    call->op = tool->op;
    call->super = tidal_helper_super_ops[tool->ghci];
    call->replay = (id == NULL);
    call->channel = channel;

    /* a replayed pattern was checked when it was new */

    if (call->replay && call->super == TIDAL_SUPER_CHECK_PLAY) {
        call->super = TIDAL_SUPER_PLAY;
    }

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
    int  reply;

    if (tidal_super_submit(h->ghci, call->super,
                           call->channel, text, len, urgent,
                           tidal_helper_done, call)
        != 0)
    {
        reply = (call->id != NULL);
        tidal_helper_call_free(call);
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory queueing a job");

        return reply ? tidal_tools_result(1, "Out of memory", NULL) : NULL;
    }

    return TIDAL_HELPER_DEFERRED;
}


static void
tidal_helper_done(tidal_super_t *s, void *data, tidal_ghci_status_e status,
    const char *output, size_t len)
{
    char                 *msg, name[8];
    json_t               *result, *structured;
    tidal_helper_t       *h;
    tidal_helper_call_t  *call;

    call = data;
    h = call->h;
    result = NULL;

    if (status == TIDAL_GHCI_OK) {
        result = tidal_helper_applied(h, call);

    } else {
        msg = tidal_helper_failure(h, call, status, output, len);

        if (call->id) {
            structured = NULL;

            if (call->op == TIDAL_TOOL_OP_EVAL) {
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

    if (call->replay) {
        return NULL;
    }

    ch = call->channel;
    snprintf(name, sizeof(name), "d%d", ch);

    cur = tidal_room_channel(&h->room, ch);
    pattern = json_string_value(json_object_get(cur, "pattern"));
    muted = json_is_true(json_object_get(cur, "muted"));
    soloed = json_is_true(json_object_get(cur, "soloed"));

    switch (call->op) {

    case TIDAL_TOOL_OP_EVAL:
        tidal_helper_channel_set(h, ch, call->pattern, muted, soloed);
        snprintf(h->who_set[ch], sizeof(h->who_set[ch]), "%s", call->who);

        fields = json_pack("{s:s, s:s, s:s}", "channel", name,
                           "pattern", call->pattern, "who", call->who);
        if (fields) {
            tidal_helper_event(h, "pattern_update", fields);
        }

        fields = json_pack("{s:s, s:s, s:s, s:b, s:n}", "channel", name,
                           "pattern", call->pattern, "who", call->who,
                           "ok", 1, "error");
        seq = fields ? tidal_helper_event(h, "pattern_eval", fields) : 0;

        snprintf(text, sizeof(text), "%s is playing the new pattern%s.",
                 name, muted ? " (muted)" : "");

        return tidal_tools_result(0, text,
                                   json_pack("{s:s, s:s, s:b, s:I}",
                                             "channel", name,
                                             "pattern", call->pattern,
                                             "ok", 1, "seq",
                                             (json_int_t) seq));

    case TIDAL_TOOL_OP_RAW:
        return tidal_tools_result(0, "GHCi evaluated it without an error.",
                                  NULL);

    case TIDAL_TOOL_OP_SILENCE:
        tidal_helper_channel_set(h, ch, NULL, muted, soloed);
        tidal_helper_channel_event(h, ch, call->who);
        snprintf(text, sizeof(text), "%s is silent.", name);
        break;

    case TIDAL_TOOL_OP_HUSH:
        for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
            cur = tidal_room_channel(&h->room, ch);

            if (cur == NULL) {
                continue;
            }

            pattern = json_string_value(json_object_get(cur, "pattern"));
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

    case TIDAL_TOOL_OP_MUTE:
    case TIDAL_TOOL_OP_UNMUTE:
        tidal_helper_channel_set(h, ch, pattern,
                                 call->op == TIDAL_TOOL_OP_MUTE, soloed);
        tidal_helper_channel_event(h, ch, call->who);
        snprintf(text, sizeof(text), "%s is %s.", name,
                 call->op == TIDAL_TOOL_OP_MUTE ? "muted" : "unmuted");
        break;

    case TIDAL_TOOL_OP_SOLO:
    case TIDAL_TOOL_OP_UNSOLO:
        tidal_helper_channel_set(h, ch, pattern, muted,
                                 call->op == TIDAL_TOOL_OP_SOLO);
        tidal_helper_channel_event(h, ch, call->who);
        snprintf(text, sizeof(text), "%s is %s.", name,
                 call->op == TIDAL_TOOL_OP_SOLO ? "soloed"
                                                : "out of solo");
        break;

    case TIDAL_TOOL_OP_TEMPO:
        tidal_super_tempo(h->ghci, call->cps);
        h->room.cps = call->cps;

        fields = json_pack("{s:f, s:f, s:s}", "cps", call->cps,
                           "bpm", call->cps * 240, "who", call->who);
        if (fields) {
            tidal_helper_event(h, "tempo_change", fields);
        }

        snprintf(text, sizeof(text), "The tempo is %g cps (%g bpm).",
                 call->cps, call->cps * 240);

        return tidal_tools_result(0, text,
                                   json_pack("{s:f, s:f, s:I}",
                                             "cps", call->cps,
                                             "bpm", call->cps * 240,
                                             "seq",
                                             (json_int_t) h->last_event));

    default:
        /* the tools that do not reach GHCi */
        return NULL;
    }

    if (ch == 0) {
        return tidal_tools_result(0, text,
                                   json_pack("{s:I}", "seq",
                                             (json_int_t) h->last_event));
    }

    return tidal_tools_result(0, text,
                               json_pack("{s:s, s:o, s:I}", "channel", name,
                                         "state",
                                         tidal_room_channel_state(&h->room,
                                                                  ch),
                                         "seq", (json_int_t) h->last_event));
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

    } else if (call->op == TIDAL_TOOL_OP_EVAL) {
        mapped = tidal_pattern_map_errors(call->channel, output, len, NULL);
        msg = mapped;

    } else {
        msg = strndup(output, len);
    }

    if (call->op == TIDAL_TOOL_OP_EVAL && !call->replay) {
        tidal_helper_log(TIDAL_LOG_INFO, "%s: %s's pattern failed: %s", name,
                         call->who, msg ? msg : "out of memory");

        fields = json_pack("{s:s, s:s, s:s, s:b, s:o}", "channel", name,
                           "pattern", call->pattern, "who", call->who,
                           "ok", 0, "error",
                           tidal_helper_event_text("%s", msg ? msg : ""));
        if (fields) {
            tidal_helper_event(h, "pattern_eval", fields);
        }

    } else if (call->op == TIDAL_TOOL_OP_EVAL && call->pattern
               && status != TIDAL_GHCI_GONE)
    {
        /*
         * GHCi refused or could not finish it: drop it, say so.  (GONE:
         * GHCi went away again, the next boot re-applies it.)
         */

        tidal_helper_channel_set(h, call->channel, NULL, 0, 0);

        fields = json_pack("{s:s, s:o}", "channel", name, "message",
                           tidal_helper_event_text("%s could not be "
                               "re-applied after GHCi restarted and is "
                               "silent now: %s", name, msg ? msg : ""));
        if (fields) {
            tidal_helper_event(h, "error", fields);
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
tidal_helper_ghci_ready(tidal_super_t *s, const char *reason)
{
    json_t          *fields;
    tidal_helper_t  *h;

    h = tidal_super_data(s);

    /* a first boot has nothing to play, unless nginx gave a state */

    if (reason == NULL && !h->adopted) {
        return;
    }

    tidal_helper_replay(h);

    if (reason == NULL) {

        /* a new helper (the last one died) brought the room back */

        if (json_object_size(h->room.channels) == 0) {
            return;
        }

        reason = "tidal-helper started anew; the room's channels and "
                 "tempo were re-applied";
    }

    fields = json_pack("{s:s}", "reason", reason);
    if (fields) {
        tidal_helper_event(h, "ghci_restarted", fields);
    }
}


int
tidal_helper_adopt(tidal_helper_t *h, const char *text, size_t len,
    char *err, size_t errlen)
{
    int      ch, rc;
    json_t  *state;

    state = tidal_state_parse(text, len, err, errlen);
    if (state == NULL) {
        return -1;
    }

    rc = tidal_room_load(&h->room, state);
    json_decref(state);

    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    h->adopted = 1;

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        tidal_helper_adopt_check(h, ch);
    }

    if (strcmp(tidal_super_status(h->ghci), "running") == 0) {
        tidal_helper_replay(h);
    }

    return 0;
}


/*
 * A saved pattern passes the sandbox as a new one does: the state file
 * may have been written by hand, or by a version whose sandbox let more
 * through.  One it refuses leaves the state, and everyone is told; the
 * other channels play.
 */

static void
tidal_helper_adopt_check(tidal_helper_t *h, int channel)
{
    char     name[8], why[512];
    json_t  *pattern, *fields;

    pattern = json_object_get(tidal_room_channel(&h->room, channel),
                              "pattern");

    if (pattern == NULL
        || tidal_pattern_check(json_string_value(pattern),
                               json_string_length(pattern), why,
                               sizeof(why))
           == 0)
    {
        return;
    }

    snprintf(name, sizeof(name), "d%d", channel);

    tidal_helper_log(TIDAL_LOG_WARN, "%s is not restored: the sandbox "
                     "refuses its saved pattern: %s", name, why);

    tidal_helper_channel_set(h, channel, NULL, 0, 0);

    fields = json_pack("{s:s, s:o}", "channel", name, "message",
                       tidal_helper_event_text("%s was not restored and is "
                           "silent: the sandbox refuses its saved pattern "
                           "(%s)", name, why));
    if (fields) {
        tidal_helper_event(h, "error", fields);
    }

    tidal_helper_channel_event(h, channel, "tidal-helper");
}


/* sends GHCi the tempo first, then every channel, then mute and solo */

static void
tidal_helper_replay(tidal_helper_t *h)
{
    int      ch;
    double   cps;
    json_t  *cur;

    cps = h->room.cps;

    tidal_helper_replay_do(h, TIDAL_TOOL_OP_TEMPO, 0, cps);
    tidal_super_tempo(h->ghci, cps);

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        tidal_helper_replay_channel(h, ch, 1);
    }

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        cur = tidal_room_channel(&h->room, ch);

        if (json_is_true(json_object_get(cur, "muted"))) {
            tidal_helper_replay_do(h, TIDAL_TOOL_OP_MUTE, ch, 0);
        }

        if (json_is_true(json_object_get(cur, "soloed"))) {
            tidal_helper_replay_do(h, TIDAL_TOOL_OP_SOLO, ch, 0);
        }
    }
}


/* queues again, first, the statement of the tool that does op */

static void
tidal_helper_replay_do(tidal_helper_t *h, tidal_tool_op_e op, int channel,
    double cps)
{
    int                   n;
    char                  text[64];
    tidal_tool_args_t     a;
    const tidal_tool_t   *tool;
    tidal_helper_call_t  *call;

    memset(&a, 0, sizeof(tidal_tool_args_t));
    a.channel = channel;
    a.cps = cps;

    tool = tidal_tools_by_op(op);
    n = tidal_tools_statement(tool, &a, text, sizeof(text));

    call = (n < 0) ? NULL : tidal_helper_call_new(h, NULL, tool, channel);

    if (call == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory re-applying the "
                         "state (%d)", (int) op);
        return;
    }

    call->cps = cps;

    tidal_helper_submit(h, call, text, (size_t) n, 1);
}


/* queues "dN (pattern)" again for a channel that has one */

static void
tidal_helper_replay_channel(tidal_helper_t *h, int channel, int urgent)
{
    json_t               *cur;
    const char           *pattern;
    tidal_helper_call_t  *call;

    cur = tidal_room_channel(&h->room, channel);
    pattern = json_string_value(json_object_get(cur, "pattern"));

    if (pattern == NULL || strcmp(pattern, "silence") == 0) {
        return;
    }

    call = tidal_helper_call_new(h, NULL, tidal_tools_by_op(TIDAL_TOOL_OP_EVAL),
                                 channel);

    if (call == NULL || (call->pattern = strdup(pattern)) == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory re-applying d%d",
                         channel);
        tidal_helper_call_free(call);
        return;
    }

    tidal_helper_submit(h, call, call->pattern, strlen(pattern), urgent);
}


/* the player could not be booted: everyone hears it */

void
tidal_helper_ghci_error(tidal_super_t *s, const char *message)
{
    json_t          *fields;
    tidal_helper_t  *h;

    h = tidal_super_data(s);

    fields = json_pack("{s:o}", "message",
                       tidal_helper_event_text("%s", message));
    if (fields) {
        tidal_helper_event(h, "error", fields);
    }
}


/*
 * A channel's pattern failed while playing (its guard caught it), or
 * hung the scheduler: it is silent now and stays so; mute is kept, solo
 * is not (a silent solo would silence the room).  The event names the
 * channel and who set the pattern, as the supervisor found them, never
 * from the error's text.
 */

void
tidal_helper_ghci_failed(tidal_super_t *s, int channel, const char *why)
{
    char             name[8];
    json_t          *cur, *fields;
    tidal_helper_t  *h;

    h = tidal_super_data(s);

    snprintf(name, sizeof(name), "d%d", channel);

    cur = tidal_room_channel(&h->room, channel);
    tidal_helper_channel_set(h, channel, NULL,
                             json_is_true(json_object_get(cur, "muted")), 0);

    fields = json_pack("{s:s, s:s, s:s}", "channel", name, "message", why,
                       "who", h->who_set[channel][0] ? h->who_set[channel]
                                                     : "unknown");
    if (fields) {
        tidal_helper_event(h, "error", fields);
    }

    tidal_helper_channel_event(h, channel, "tidal-helper");
}


/*
 * The relay holds back a flood of /dirt/play (a pattern at a huge tempo):
 * everyone hears of it once a burst, with the channel that played the
 * most, when the boot file's stamp says which.
 */

void
tidal_helper_dirt_dropped(void *data, int channel, unsigned rate)
{
    char             name[8], whose[32];
    json_t          *fields;
    tidal_helper_t  *h;

    h = data;

    name[0] = '\0';
    whose[0] = '\0';

    if (channel >= 1 && channel <= TIDAL_STATE_CHANNELS) {
        snprintf(name, sizeof(name), "d%d", channel);
        snprintf(whose, sizeof(whose), ", most of them %s's", name);
    }

    fields = json_pack("{s:o}", "message",
                       tidal_helper_event_text("More than %u sounds a "
                           "second went to SuperDirt%s: the excess is "
                           "dropped until there are fewer", rate, whose));

    if (fields && name[0]
        && json_object_set_new(fields, "channel", json_string(name)) != 0)
    {
        json_decref(fields);
        fields = NULL;
    }

    if (fields) {
        tidal_helper_event(h, "error", fields);
    }
}


void
tidal_helper_sound(void *data, const char *text, size_t len)
{
    tidal_helper_t  *h;

    h = data;

    if (h->sound) {
        h->sound(h, text, len);
    }
}


/* what the scheduler plays on a channel: its pattern, unless silenced */

const char *
tidal_helper_ghci_audible(tidal_super_t *s, int channel)
{
    int              ch, solo;
    json_t          *cur;
    const char      *pattern;
    tidal_helper_t  *h;

    h = tidal_super_data(s);
    solo = 0;

    for (ch = 1; ch <= TIDAL_STATE_CHANNELS; ch++) {
        cur = tidal_room_channel(&h->room, ch);
        solo |= json_is_true(json_object_get(cur, "soloed"));
    }

    cur = tidal_room_channel(&h->room, channel);
    pattern = json_string_value(json_object_get(cur, "pattern"));

    if (pattern == NULL || strcmp(pattern, "silence") == 0
        || json_is_true(json_object_get(cur, "muted"))
        || (solo && !json_is_true(json_object_get(cur, "soloed"))))
    {
        return NULL;
    }

    return pattern;
}


/* -- state ------------------------------------------------------------- */


/* pattern NULL: silent */

static void
tidal_helper_channel_set(tidal_helper_t *h, int channel, const char *pattern,
    int muted, int soloed)
{
    if (tidal_room_channel_set(&h->room, channel, pattern, muted, soloed)
        != 0)
    {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory keeping d%d",
                         channel);
    }
}


static json_t *
tidal_helper_resource(tidal_mcp_session_t *s, int resource)
{
    tidal_helper_t *h = s->data;

    /* tidal_say runs in nginx only: the helper's own room has no chat */
    if (resource == TIDAL_MCP_RESOURCE_CHAT) {
        return json_pack("{s:[]}", "chat");
    }

    return tidal_room_resource(&h->room, resource);
}


/*
 * A channel_state event for channel, set by who; a client of the
 * helper's own room hears of it through tidal_helper_deliver.
 */

static void
tidal_helper_channel_event(tidal_helper_t *h, int channel, const char *who)
{
    char     name[8];
    json_t  *fields;

    if (channel < 1 || channel > TIDAL_STATE_CHANNELS) {
        return;
    }

    snprintf(name, sizeof(name), "d%d", channel);

    fields = json_pack("{s:s, s:o, s:s}", "channel", name,
                       "state", tidal_room_channel_state(&h->room, channel),
                       "who", who);
    if (fields) {
        tidal_helper_event(h, "channel_state", fields);
    }
}


/* -- events and results ------------------------------------------------ */


/*
 * Tells an event (fields stolen) to whoever owns the room: nginx's zone
 * in socket mode, which numbers it; else the helper's own room, which
 * numbers it, keeps it in the history if its type is kept, and sends it
 * as notifications/tidal/<type>.  Returns what names it in an answer's
 * structuredContent.seq: its seq, or in socket mode its tidal/hid, which
 * the worker turns into the zone's seq.
 */

static uint64_t
tidal_helper_event(tidal_helper_t *h, const char *type, json_t *fields)
{
    char      *text;
    size_t     len;
    uint64_t   seq;

    if (h->publish) {
        h->last_event = h->publish(h, type, fields);
        return h->last_event;
    }

    text = tidal_room_event(&h->room, type, fields, tidal_helper_epoch_msec(),
                            &seq, &len);

    if (text == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory numbering an event");
        return h->last_event;
    }

    h->last_event = seq;

    if (h->session.initialized) {
        tidal_helper_deliver(h, text, len);
    }

    free(text);

    return seq;
}


/*
 * An event of the helper's own room to its client: as it is when the
 * client asked for notifications/tidal/..., else its log line at the
 * client's level and resources/updated for what it subscribed to.
 */

static void
tidal_helper_deliver(tidal_helper_t *h, const char *event, size_t len)
{
    int        r, level;
    char      *text;
    size_t     n;
    uint32_t   bits;

    if (h->session.tidal_events) {
        h->send(h, event, len);
        return;
    }

    text = tidal_mcp_event_message(event, len, &level, &n);

    if (text != NULL && tidal_mcp_wants_event_message(&h->session, level)) {
        h->send(h, text, n);
    }

    free(text);

    bits = tidal_mcp_event_resources(event, len) & h->session.subscriptions;

    for (r = 1; r <= TIDAL_MCP_RESOURCES; r++) {
        if (bits & TIDAL_MCP_RESOURCE_BIT(r)) {
            tidal_helper_notify(h, tidal_mcp_resource_updated(r, &n), n);
        }
    }
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


/*
 * The text of an error event, formatted.  It often quotes a pattern or
 * GHCi's words about one, and an event goes to everyone and stays in the
 * history and the state file: cut to TIDAL_HELPER_EVENT_TEXT_MAX bytes,
 * on a character, saying how much is left out.  The caller's answer has
 * all of it.  NULL without memory or when the text is not UTF-8.
 */

static json_t *
tidal_helper_event_text(const char *fmt, ...)
{
    int       n;
    char     *text;
    size_t    cut;
    json_t   *s;
    va_list   args;

    va_start(args, fmt);
    n = vasprintf(&text, fmt, args);
    va_end(args);

    if (n == -1) {
        return NULL;
    }

    cut = tidal_utf8_cut(text, (size_t) n, TIDAL_HELPER_EVENT_TEXT_MAX);

    if (cut == (size_t) n) {
        s = json_stringn(text, cut);

    } else {
        s = json_sprintf("%.*s \xe2\x80\xa6 (%zu more bytes)", (int) cut,
                         text, (size_t) n - cut);
    }

    free(text);

    return s;
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
