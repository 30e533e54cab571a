/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The MCP tool table shared by the nginx module and tidal-helper, and
 * the argument checks its rows name.
 */


#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_tools.h"
#include "tidal_state.h"
#include "tidal_utf8.h"


#define TIDAL_TOOLS_HISTORY_DEFAULT  50
#define TIDAL_TOOLS_SAY_MAX          1000    /* bytes of a chat line */
#define TIDAL_TOOLS_QUOTE_MAX        40      /* bytes of a name quoted */

#define TIDAL_TOOLS_NO_ARGS  "{\"type\":\"object\",\"properties\":{}}"

#define TIDAL_TOOLS_CHANNEL_SCHEMA                                            \
    "{\"type\":\"object\",\"properties\":{\"channel\":{\"type\":\"string\","   \
    "\"pattern\":\"^d([1-9]|1[0-6])$\",\"description\":\"d1 .. d16\"}},"       \
    "\"required\":[\"channel\"]}"


static int tidal_tools_arg_channel(json_t *value, tidal_tool_args_t *a,
    char *err, size_t len);
static int tidal_tools_arg_pattern(json_t *value, tidal_tool_args_t *a,
    char *err, size_t len);
static int tidal_tools_arg_limit(json_t *value, tidal_tool_args_t *a,
    char *err, size_t len);
static int tidal_tools_arg_text(json_t *value, tidal_tool_args_t *a,
    char *err, size_t len);
static int tidal_tools_arg_code(json_t *value, tidal_tool_args_t *a,
    char *err, size_t len);
static int tidal_tools_check_tempo(json_t *args, tidal_tool_args_t *a,
    char *err, size_t len);
static int tidal_tools_string(json_t *value, size_t max,
    tidal_tool_args_t *a);


static const tidal_tool_arg_t  tidal_tools_none[] = {
    { NULL, NULL }
};

static const tidal_tool_arg_t  tidal_tools_channel_only[] = {
    { "channel", tidal_tools_arg_channel },
    { NULL, NULL }
};

static const tidal_tool_arg_t  tidal_tools_eval_args[] = {
    { "channel", tidal_tools_arg_channel },
    { "pattern", tidal_tools_arg_pattern },
    { NULL, NULL }
};

static const tidal_tool_arg_t  tidal_tools_history_args[] = {
    { "limit", tidal_tools_arg_limit },
    { NULL, NULL }
};

static const tidal_tool_arg_t  tidal_tools_say_args[] = {
    { "text", tidal_tools_arg_text },
    { NULL, NULL }
};

static const tidal_tool_arg_t  tidal_tools_tempo_args[] = {
    { "cps", NULL },
    { "bpm", NULL },
    { NULL, NULL }
};

static const tidal_tool_arg_t  tidal_tools_raw_args[] = {
    { "code", tidal_tools_arg_code },
    { NULL, NULL }
};


const tidal_tool_t  tidal_tools[] = {

    { "tidal_get_state",
      "The room as it is: every channel's pattern, mute and solo, the "
      "tempo, and the number of the last event.",
      TIDAL_TOOLS_NO_ARGS,
      TIDAL_ROLE_LISTENER,
      TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER, 0,
      tidal_tools_none, NULL,
      TIDAL_TOOL_OP_STATE, TIDAL_TOOL_GHCI_NONE, NULL },

    { "tidal_get_history",
      "Who evaluated what and when, newest last, errors included.",
      "{\"type\":\"object\",\"properties\":{\"limit\":{\"type\":\"integer\","
      "\"minimum\":1,\"maximum\":1000,\"default\":50}}}",
      TIDAL_ROLE_LISTENER,
      TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER, 0,
      tidal_tools_history_args, NULL,
      TIDAL_TOOL_OP_HISTORY, TIDAL_TOOL_GHCI_NONE, NULL },

    { "tidal_say",
      "Send a chat line to everyone in the room.",
      "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","
      "\"minLength\":1,\"maxLength\":1000}},\"required\":[\"text\"]}",
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_WORKER, 0,
      tidal_tools_say_args, NULL,
      TIDAL_TOOL_OP_SAY, TIDAL_TOOL_GHCI_NONE, NULL },

    { "tidal_who",
      "Who is in the room: each member's name, role and whether it is "
      "connected now, at most 100 of them, and how many there are.",
      TIDAL_TOOLS_NO_ARGS,
      TIDAL_ROLE_LISTENER,
      TIDAL_TOOL_WORKER, 0,
      tidal_tools_none, NULL,
      TIDAL_TOOL_OP_WHO, TIDAL_TOOL_GHCI_NONE, NULL },

    { "tidal_eval",
      "Play a pattern on a channel (d1 .. d16).",
      "{\"type\":\"object\",\"properties\":{\"channel\":{\"type\":\"string\","
      "\"pattern\":\"^d([1-9]|1[0-6])$\"},\"pattern\":{\"type\":\"string\"}},"
      "\"required\":[\"channel\",\"pattern\"]}",
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_eval_args, NULL,
      TIDAL_TOOL_OP_EVAL, TIDAL_TOOL_GHCI_CHECK_PLAY, NULL },

    { "tidal_hush",
      "Silence every channel.",
      TIDAL_TOOLS_NO_ARGS,
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_none, NULL,
      TIDAL_TOOL_OP_HUSH, TIDAL_TOOL_GHCI_DO, "hush" },

    { "tidal_silence",
      "Silence one channel.",
      TIDAL_TOOLS_CHANNEL_SCHEMA,
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_channel_only, NULL,
      TIDAL_TOOL_OP_SILENCE, TIDAL_TOOL_GHCI_DO, "d%d silence" },

    { "tidal_solo",
      "Solo one channel.",
      TIDAL_TOOLS_CHANNEL_SCHEMA,
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_channel_only, NULL,
      TIDAL_TOOL_OP_SOLO, TIDAL_TOOL_GHCI_DO, "solo %d" },

    { "tidal_unsolo",
      "Take a channel out of solo.",
      TIDAL_TOOLS_CHANNEL_SCHEMA,
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_channel_only, NULL,
      TIDAL_TOOL_OP_UNSOLO, TIDAL_TOOL_GHCI_DO, "unsolo %d" },

    { "tidal_mute",
      "Mute one channel.",
      TIDAL_TOOLS_CHANNEL_SCHEMA,
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_channel_only, NULL,
      TIDAL_TOOL_OP_MUTE, TIDAL_TOOL_GHCI_DO, "mute %d" },

    { "tidal_unmute",
      "Unmute one channel.",
      TIDAL_TOOLS_CHANNEL_SCHEMA,
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_channel_only, NULL,
      TIDAL_TOOL_OP_UNMUTE, TIDAL_TOOL_GHCI_DO, "unmute %d" },

    { "tidal_set_tempo",
      "Set the tempo, in cycles per second (cps) or beats per minute "
      "(bpm, four beats to a cycle).",
      "{\"type\":\"object\",\"properties\":{\"cps\":{\"type\":\"number\","
      "\"exclusiveMinimum\":0},\"bpm\":{\"type\":\"number\","
      "\"exclusiveMinimum\":0}}}",
      TIDAL_ROLE_PERFORMER,
      TIDAL_TOOL_HELPER, 0,
      tidal_tools_tempo_args, tidal_tools_check_tempo,
      TIDAL_TOOL_OP_TEMPO, TIDAL_TOOL_GHCI_DO, "setcps (%.17g)" },

    { "tidal_eval_raw",
      "Evaluate arbitrary Haskell in GHCi, unsandboxed: shell access to "
      "the server.  Admins only, and only with tidal_allow_raw on.",
      "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\","
      "\"minLength\":1}},\"required\":[\"code\"]}",
      TIDAL_ROLE_ADMIN,
      TIDAL_TOOL_HELPER, 1,
      tidal_tools_raw_args, NULL,
      TIDAL_TOOL_OP_RAW, TIDAL_TOOL_GHCI_RAW, NULL }
};


const tidal_tool_t *
tidal_tools_find(const char *name)
{
    size_t  i;

    for (i = 0; name != NULL && i < TIDAL_TOOLS_N; i++) {
        if (strcmp(tidal_tools[i].name, name) == 0) {
            return &tidal_tools[i];
        }
    }

    return NULL;
}


const tidal_tool_t *
tidal_tools_by_op(tidal_tool_op_e op)
{
    size_t  i;

    for (i = 0; i < TIDAL_TOOLS_N; i++) {
        if (tidal_tools[i].op == op) {
            return &tidal_tools[i];
        }
    }

    return NULL;
}


int
tidal_tools_check(const tidal_tool_t *tool, json_t *args,
    tidal_tool_args_t *a, char *err, size_t len)
{
    json_t                  *v;
    const char              *key;
    const tidal_tool_arg_t  *arg, *allowed;

    memset(a, 0, sizeof(tidal_tool_args_t));

    allowed = tool->args ? tool->args : tidal_tools_none;

    json_object_foreach(args, key, v) {
        for (arg = allowed; arg->name; arg++) {
            if (strcmp(key, arg->name) == 0) {
                break;
            }
        }

        if (arg->name == NULL) {
            snprintf(err, len, "Unknown argument \"%.*s\"",
                     (int) tidal_utf8_cut(key, strlen(key),
                                          TIDAL_TOOLS_QUOTE_MAX),
                     key);
            return -1;
        }
    }

    for (arg = allowed; arg->name; arg++) {
        if (arg->check
            && arg->check(json_object_get(args, arg->name), a, err, len)
               != 0)
        {
            return -1;
        }
    }

    return tool->check ? tool->check(args, a, err, len) : 0;
}


int
tidal_tools_statement(const tidal_tool_t *tool, const tidal_tool_args_t *a,
    char *buf, size_t size)
{
    int  n;

    if (tool->statement == NULL) {
        return -1;
    }

    /* the tempo's statement takes the cps, every other one the channel */

    if (tool->op == TIDAL_TOOL_OP_TEMPO) {
        n = snprintf(buf, size, tool->statement, a->cps);

    } else {
        n = snprintf(buf, size, tool->statement, a->channel);
    }

    return (n < 0 || (size_t) n >= size) ? -1 : n;
}


int
tidal_tools_channel(const char *name)
{
    int  n;

    if (name == NULL || name[0] != 'd' || name[1] < '1' || name[1] > '9') {
        return 0;
    }

    n = name[1] - '0';

    if (name[2] == '\0') {
        return n;
    }

    if (name[2] < '0' || name[2] > '9' || name[3] != '\0') {
        return 0;
    }

    n = n * 10 + name[2] - '0';

    return n <= TIDAL_STATE_CHANNELS ? n : 0;
}


/* -- the checks of the rows --------------------------------------------- */


static int
tidal_tools_arg_channel(json_t *value, tidal_tool_args_t *a, char *err,
    size_t len)
{
    const char  *name;

    if (value == NULL) {
        snprintf(err, len, "Invalid argument \"channel\": required, one of "
                 "d1 .. d16");
        return -1;
    }

    name = json_string_value(value);
    a->channel = tidal_tools_channel(name);

    if (a->channel != 0) {
        return 0;
    }

    if (name == NULL) {
        snprintf(err, len, "Invalid argument \"channel\": not a string is "
                 "not one of d1 .. d16");

    } else {
        snprintf(err, len, "Invalid argument \"channel\": \"%.*s\" is not "
                 "one of d1 .. d16",
                 (int) tidal_utf8_cut(name, strlen(name), 20), name);
    }

    return -1;
}


static int
tidal_tools_arg_pattern(json_t *value, tidal_tool_args_t *a, char *err,
    size_t len)
{
    /* its length and contents are the sandbox's (tidal_pattern.c) */

    if (!json_is_string(value)) {
        snprintf(err, len, "Invalid argument \"pattern\": a string (Tidal "
                 "code) is required");
        return -1;
    }

    a->text = json_string_value(value);
    a->len = json_string_length(value);

    return 0;
}


static int
tidal_tools_arg_limit(json_t *value, tidal_tool_args_t *a, char *err,
    size_t len)
{
    if (value == NULL) {
        a->limit = TIDAL_TOOLS_HISTORY_DEFAULT;
        return 0;
    }

    if (!json_is_integer(value) || json_integer_value(value) < 1
        || json_integer_value(value) > TIDAL_STATE_HISTORY_MAX)
    {
        snprintf(err, len, "Invalid argument \"limit\": an integer from 1 "
                 "to %d", TIDAL_STATE_HISTORY_MAX);
        return -1;
    }

    a->limit = (size_t) json_integer_value(value);

    return 0;
}


static int
tidal_tools_arg_text(json_t *value, tidal_tool_args_t *a, char *err,
    size_t len)
{
    if (tidal_tools_string(value, TIDAL_TOOLS_SAY_MAX, a) != 0) {
        snprintf(err, len, "Invalid argument \"text\": a string of 1 to %d "
                 "characters is required", TIDAL_TOOLS_SAY_MAX);
        return -1;
    }

    return 0;
}


static int
tidal_tools_arg_code(json_t *value, tidal_tool_args_t *a, char *err,
    size_t len)
{
    if (tidal_tools_string(value, TIDAL_STATE_PATTERN_MAX, a) != 0) {
        snprintf(err, len, "Invalid argument \"code\": a string of 1 to %d "
                 "bytes is required", TIDAL_STATE_PATTERN_MAX);
        return -1;
    }

    return 0;
}


/* a string of 1 to max bytes, as the call's text */

static int
tidal_tools_string(json_t *value, size_t max, tidal_tool_args_t *a)
{
    if (!json_is_string(value) || json_string_length(value) == 0
        || json_string_length(value) > max)
    {
        return -1;
    }

    a->text = json_string_value(value);
    a->len = json_string_length(value);

    return 0;
}


/* cps or bpm, one of them, Tidal counting four beats to a cycle */

static int
tidal_tools_check_tempo(json_t *args, tidal_tool_args_t *a, char *err,
    size_t len)
{
    double   cps;
    json_t  *c, *b;

    c = json_object_get(args, "cps");
    b = json_object_get(args, "bpm");

    if ((c == NULL) == (b == NULL)) {
        snprintf(err, len, "%s", c ? "Invalid arguments: give \"cps\" or "
                 "\"bpm\", not both"
                 : "Invalid arguments: \"cps\" (cycles per second) or "
                 "\"bpm\" (beats per minute) is required");
        return -1;
    }

    cps = c ? json_number_value(c) : json_number_value(b) / 240;

    if (!json_is_number(c ? c : b) || !isfinite(cps) || cps <= 0
        || cps > TIDAL_TOOLS_CPS_MAX)
    {
        if (c) {
            snprintf(err, len, "Invalid argument \"cps\": a number greater "
                     "than 0 and at most %d", TIDAL_TOOLS_CPS_MAX);

        } else {
            snprintf(err, len, "Invalid argument \"bpm\": a number greater "
                     "than 0 and at most %d", TIDAL_TOOLS_CPS_MAX * 240);
        }

        return -1;
    }

    a->cps = cps;

    return 0;
}


/* -- results ------------------------------------------------------------ */


json_t *
tidal_tools_result(int error, const char *text, json_t *structured)
{
    json_t  *result;

    result = json_pack("{s:[{s:s, s:s}], s:b}",
                       "content", "type", "text", "text", text,
                       "isError", error);

    if (result && structured
        && json_object_set_new(result, "structuredContent", structured) != 0)
    {
        json_decref(result);
        return NULL;
    }

    if (result == NULL) {
        json_decref(structured);
    }

    return result;
}


json_t *
tidal_tools_result_structured(json_t *structured)
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

    result = tidal_tools_result(0, text, structured);
    free(text);

    return result;
}
