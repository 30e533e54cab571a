/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The MCP tool table shared by the nginx module and tidal-helper --stdio.
 */


#include <stdlib.h>
#include <string.h>

#include "tidal_tools.h"


#define TIDAL_TOOLS_CHANNEL_SCHEMA                                            \
    "{\"type\":\"object\",\"properties\":{\"channel\":{\"type\":\"string\","   \
    "\"pattern\":\"^d([1-9]|1[0-6])$\",\"description\":\"d1 .. d16\"}},"       \
    "\"required\":[\"channel\"]}"


const tidal_mcp_tool_t  tidal_tools[] = {

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
      TIDAL_TOOLS_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_solo", "Solo one channel.",
      TIDAL_TOOLS_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_unsolo", "Take a channel out of solo.",
      TIDAL_TOOLS_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_mute", "Mute one channel.",
      TIDAL_TOOLS_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_unmute", "Unmute one channel.",
      TIDAL_TOOLS_CHANNEL_SCHEMA, TIDAL_ROLE_PERFORMER },

    { "tidal_set_tempo",
      "Set the tempo, in cycles per second (cps) or beats per minute "
      "(bpm, four beats to a cycle).",
      "{\"type\":\"object\",\"properties\":{\"cps\":{\"type\":\"number\","
      "\"exclusiveMinimum\":0},\"bpm\":{\"type\":\"number\","
      "\"exclusiveMinimum\":0}}}",
      TIDAL_ROLE_PERFORMER },

    /* last: it exists only with tidal_allow_raw on (TIDAL_TOOLS_N - 1) */

    { "tidal_eval_raw",
      "Evaluate arbitrary Haskell in GHCi, unsandboxed: shell access to "
      "the server.  Admins only, and only with tidal_allow_raw on.",
      "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\","
      "\"minLength\":1}},\"required\":[\"code\"]}",
      TIDAL_ROLE_ADMIN }
};


const tidal_mcp_tool_t *
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
