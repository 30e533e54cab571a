/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Unit tests of the tool table (src/core/tidal_tools.c): its rows agree with
 * their schemas, and each argument check accepts and refuses what nginx
 * and tidal-helper --stdio both accept and refuse, word for word.
 */

#include <string.h>
#include <jansson.h>

#include "unit.h"
#include "tidal_tools.h"


/* check's verdict on args (JSON text, ' for "): "" when it passes */
static const char *
check_of(const char *name, const char *text, tidal_tool_args_t *a)
{
    char                *p, *copy;
    json_t              *args;
    const tidal_tool_t  *tool;
    static char          err[256];
    static json_t       *last;    /* what a points into, until the next */

    tool = tidal_tools_find(name);
    if (tool == NULL) {
        return "no such tool";
    }

    copy = strdup(text);
    for (p = copy; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }

    args = json_loads(copy, 0, NULL);
    free(copy);

    if (args == NULL) {
        return "bad JSON in the test";
    }

    err[0] = '\0';

    if (tidal_tools_check(tool, args, a, err, sizeof(err)) == 0) {
        err[0] = '\0';

    } else if (err[0] == '\0') {
        strcpy(err, "refused without a reason");
    }

    json_decref(last);
    last = args;

    return err;
}


UNIT_TEST(rows_agree_with_their_schemas)
{
    size_t                   i, j, n;
    json_t                  *schema, *props, *required, *v;
    const char              *key;
    tidal_tool_args_t        a;
    const tidal_tool_arg_t  *arg;
    char                     err[256];

    for (i = 0; i < TIDAL_TOOLS_N; i++) {
        const tidal_tool_t  *t = &tidal_tools[i];

        CHECK(strncmp(t->name, "tidal_", 6) == 0);
        CHECK(t->description != NULL && t->description[0] != '\0');
        CHECK(t->args != NULL);
        CHECK(t->where != 0);
        CHECK(tidal_tools_find(t->name) == t);
        CHECK(tidal_tools_by_op(t->op) == t);

        /* a statement exactly when it is one */
        CHECK_EQ(t->statement != NULL, t->ghci == TIDAL_TOOL_GHCI_DO);

        /* what needs GHCi runs in the helper, and only there */
        if (t->ghci != TIDAL_TOOL_GHCI_NONE) {
            CHECK_EQ(t->where, TIDAL_TOOL_HELPER);
        }

        schema = json_loads(t->input_schema, JSON_REJECT_DUPLICATES, NULL);
        CHECK(json_is_object(schema));
        CHECK_STR(json_string_value(json_object_get(schema, "type")),
                  "object");

        /* the properties the schema shows are the arguments allowed */
        props = json_object_get(schema, "properties");
        n = 0;

        for (arg = t->args; arg->name; arg++) {
            n++;
            if (!CHECK(json_object_get(props, arg->name) != NULL)) {
                printf("    %s: \"%s\" is not in the schema\n", t->name,
                       arg->name);
            }
        }

        CHECK_EQ(json_object_size(props), n);

        /* and each argument it requires is refused when absent */
        required = json_object_get(schema, "required");

        json_array_foreach(required, j, v) {
            key = json_string_value(v);
            if (!CHECK(tidal_tools_check(t, NULL, &a, err, sizeof(err))
                       != 0))
            {
                printf("    %s: no \"%s\" passes\n", t->name, key);
            }
        }

        json_decref(schema);
    }

    /* the names are unique */
    for (i = 0; i < TIDAL_TOOLS_N; i++) {
        for (j = i + 1; j < TIDAL_TOOLS_N; j++) {
            CHECK(strcmp(tidal_tools[i].name, tidal_tools[j].name) != 0);
        }
    }

    CHECK(tidal_tools_find("tidal_nope") == NULL);
    CHECK(tidal_tools_find(NULL) == NULL);
}


UNIT_TEST(who_may_call_what_where)
{
    size_t  i, raw;

    raw = 0;

    for (i = 0; i < TIDAL_TOOLS_N; i++) {
        if (tidal_tools[i].raw) {
            raw++;

            /* raw evaluation is shell access: admins only, ever */
            CHECK_EQ(tidal_tools[i].role, TIDAL_ROLE_ADMIN);
            CHECK_EQ(tidal_tools[i].ghci, TIDAL_TOOL_GHCI_RAW);

        } else {
            CHECK(tidal_tools[i].ghci != TIDAL_TOOL_GHCI_RAW);
            CHECK(tidal_tools[i].role < TIDAL_ROLE_ADMIN);
        }
    }

    CHECK_EQ(raw, 1);

    /* listeners read; the room's keeper answers, whichever program */
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_STATE)->role,
             TIDAL_ROLE_LISTENER);
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_STATE)->where,
             TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER);
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_HISTORY)->role,
             TIDAL_ROLE_LISTENER);
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_HISTORY)->where,
             TIDAL_TOOL_WORKER|TIDAL_TOOL_HELPER);

    /* chat needs a room: nginx only */
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_SAY)->where, TIDAL_TOOL_WORKER);

    /* so do its members (the zone's sessions); anyone may see them */
    CHECK_STR(tidal_tools_by_op(TIDAL_TOOL_OP_WHO)->name, "tidal_who");
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_WHO)->where, TIDAL_TOOL_WORKER);
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_WHO)->role,
             TIDAL_ROLE_LISTENER);
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_WHO)->ghci,
             TIDAL_TOOL_GHCI_NONE);
    CHECK_EQ(tidal_tools_by_op(TIDAL_TOOL_OP_EVAL)->role,
             TIDAL_ROLE_PERFORMER);
}


UNIT_TEST(unknown_arguments)
{
    tidal_tool_args_t  a;

    CHECK_STR(check_of("tidal_get_history", "{'limit':3,'since':1}", &a),
              "Unknown argument \"since\"");
    CHECK_STR(check_of("tidal_who", "{'room':1}", &a),
              "Unknown argument \"room\"");
    CHECK_STR(check_of("tidal_get_state", "{'x':1}", &a),
              "Unknown argument \"x\"");
    CHECK_STR(check_of("tidal_hush", "{'now':true}", &a),
              "Unknown argument \"now\"");
    CHECK_STR(check_of("tidal_say", "{'text':'hi','to':'all'}", &a),
              "Unknown argument \"to\"");
    CHECK_STR(check_of("tidal_eval",
                       "{'channel':'d1','pattern':'silence','chanel':'d2'}",
                       &a),
              "Unknown argument \"chanel\"");

    /* before any other check: the misspelt one is what is wrong */
    CHECK_STR(check_of("tidal_silence", "{'chanel':'d1'}", &a),
              "Unknown argument \"chanel\"");

    /* a long name is cut at 40 bytes, never inside a character */
    CHECK_STR(check_of("tidal_hush",
                       "{'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9x':1}",
                       &a),
              "Unknown argument \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"");
    CHECK_STR(check_of("tidal_hush", "{}", &a), "");
}


UNIT_TEST(channel)
{
    tidal_tool_args_t  a;

    CHECK_STR(check_of("tidal_mute", "{'channel':'d1'}", &a), "");
    CHECK_EQ(a.channel, 1);
    CHECK_STR(check_of("tidal_mute", "{'channel':'d16'}", &a), "");
    CHECK_EQ(a.channel, 16);
    CHECK_STR(check_of("tidal_eval", "{'channel':'d10','pattern':'s'}", &a),
              "");
    CHECK_EQ(a.channel, 10);

    CHECK_STR(check_of("tidal_eval", "{'channel':'d17','pattern':'s'}", &a),
              "Invalid argument \"channel\": \"d17\" is not one of "
              "d1 .. d16");
    CHECK_STR(check_of("tidal_eval", "{'channel':1,'pattern':'s'}", &a),
              "Invalid argument \"channel\": not a string is not one of "
              "d1 .. d16");
    CHECK_STR(check_of("tidal_eval", "{'pattern':'s'}", &a),
              "Invalid argument \"channel\": required, one of d1 .. d16");
    CHECK_STR(check_of("tidal_silence", "{}", &a),
              "Invalid argument \"channel\": required, one of d1 .. d16");
    CHECK_STR(check_of("tidal_unsolo", "{'channel':'D1'}", &a),
              "Invalid argument \"channel\": \"D1\" is not one of "
              "d1 .. d16");
    CHECK_STR(check_of("tidal_solo",
                       "{'channel':'d1d1d1d1d1d1d1d1d1d1d1d1'}", &a),
              "Invalid argument \"channel\": \"d1d1d1d1d1d1d1d1d1d1\" is "
              "not one of d1 .. d16");

    CHECK_EQ(tidal_tools_channel("d9"), 9);
    CHECK_EQ(tidal_tools_channel("d0"), 0);
    CHECK_EQ(tidal_tools_channel("d01"), 0);
    CHECK_EQ(tidal_tools_channel("d1 "), 0);
    CHECK_EQ(tidal_tools_channel("d+1"), 0);
    CHECK_EQ(tidal_tools_channel("d100"), 0);
    CHECK_EQ(tidal_tools_channel("d"), 0);
    CHECK_EQ(tidal_tools_channel(""), 0);
    CHECK_EQ(tidal_tools_channel(NULL), 0);
}


UNIT_TEST(pattern_code_and_text)
{
    char               *big, *msg;
    size_t              n;
    tidal_tool_args_t   a;

    CHECK_STR(check_of("tidal_eval",
                       "{'channel':'d2','pattern':'sound \\'bd\\''}", &a),
              "");
    CHECK_STR(a.text, "sound \"bd\"");
    CHECK_EQ(a.len, 10);

    /* the sandbox, in the helper, judges length and contents */
    CHECK_STR(check_of("tidal_eval", "{'channel':'d2','pattern':''}", &a),
              "");
    CHECK_STR(check_of("tidal_eval", "{'channel':'d1'}", &a),
              "Invalid argument \"pattern\": a string (Tidal code) is "
              "required");
    CHECK_STR(check_of("tidal_eval", "{'channel':'d1','pattern':42}", &a),
              "Invalid argument \"pattern\": a string (Tidal code) is "
              "required");

    CHECK_STR(check_of("tidal_say", "{'text':'hello'}", &a), "");
    CHECK_STR(a.text, "hello");
    CHECK_STR(check_of("tidal_say", "{'text':''}", &a),
              "Invalid argument \"text\": a string of 1 to 1000 characters "
              "is required");
    CHECK_STR(check_of("tidal_say", "{}", &a),
              "Invalid argument \"text\": a string of 1 to 1000 characters "
              "is required");

    CHECK_STR(check_of("tidal_eval_raw", "{'code':':t 1'}", &a), "");
    CHECK_EQ(a.len, 4);
    CHECK_STR(check_of("tidal_eval_raw", "{'code':''}", &a),
              "Invalid argument \"code\": a string of 1 to 65536 bytes is "
              "required");

    /* the limits, at and past the edge */
    for (n = 1000; n <= 1001; n++) {
        big = malloc(n + 32);
        memset(big, 'x', n + 32);
        memcpy(big, "{'text':'", 9);
        memcpy(big + 9 + n, "'}", 3);
        msg = (char *) check_of("tidal_say", big, &a);
        CHECK_EQ(msg[0] == '\0', n == 1000);
        free(big);
    }

    for (n = 65536; n <= 65537; n++) {
        big = malloc(n + 32);
        memset(big, 'x', n + 32);
        memcpy(big, "{'code':'", 9);
        memcpy(big + 9 + n, "'}", 3);
        msg = (char *) check_of("tidal_eval_raw", big, &a);
        CHECK_EQ(msg[0] == '\0', n == 65536);
        free(big);
    }
}


UNIT_TEST(history_limit)
{
    tidal_tool_args_t  a;

    CHECK_STR(check_of("tidal_get_history", "{}", &a), "");
    CHECK_EQ(a.limit, 50);
    CHECK_STR(check_of("tidal_get_history", "{'limit':1}", &a), "");
    CHECK_EQ(a.limit, 1);
    CHECK_STR(check_of("tidal_get_history", "{'limit':1000}", &a), "");
    CHECK_EQ(a.limit, 1000);

    CHECK_STR(check_of("tidal_get_history", "{'limit':0}", &a),
              "Invalid argument \"limit\": an integer from 1 to 1000");
    CHECK_STR(check_of("tidal_get_history", "{'limit':1001}", &a),
              "Invalid argument \"limit\": an integer from 1 to 1000");
    CHECK_STR(check_of("tidal_get_history", "{'limit':'all'}", &a),
              "Invalid argument \"limit\": an integer from 1 to 1000");
    CHECK_STR(check_of("tidal_get_history", "{'limit':2.5}", &a),
              "Invalid argument \"limit\": an integer from 1 to 1000");
    CHECK_STR(check_of("tidal_get_history", "{'limit':null}", &a),
              "Invalid argument \"limit\": an integer from 1 to 1000");
}


UNIT_TEST(tempo)
{
    size_t             i;
    tidal_tool_args_t  a;

    static const char  *slow[] = {
        "{'cps':-1}", "{'cps':0}", "{'cps':1000.5}", "{'cps':'fast'}",
        "{'cps':null}", "{'bpm':0}", "{'bpm':240001}", "{'bpm':[]}"
    };

    CHECK_STR(check_of("tidal_set_tempo", "{'cps':2}", &a), "");
    CHECK(a.cps == 2);
    CHECK_STR(check_of("tidal_set_tempo", "{'bpm':360}", &a), "");
    CHECK(a.cps == 1.5);
    CHECK_STR(check_of("tidal_set_tempo", "{'cps':1000}", &a), "");
    CHECK_STR(check_of("tidal_set_tempo", "{'bpm':240000}", &a), "");
    CHECK(a.cps == 1000);

    CHECK_STR(check_of("tidal_set_tempo", "{}", &a),
              "Invalid arguments: \"cps\" (cycles per second) or \"bpm\" "
              "(beats per minute) is required");
    CHECK_STR(check_of("tidal_set_tempo", "{'cps':1,'bpm':240}", &a),
              "Invalid arguments: give \"cps\" or \"bpm\", not both");
    CHECK_STR(check_of("tidal_set_tempo", "{'cps':'fast','bpm':240}", &a),
              "Invalid arguments: give \"cps\" or \"bpm\", not both");
    for (i = 0; i < sizeof(slow) / sizeof(slow[0]); i++) {
        CHECK_STR(check_of("tidal_set_tempo", slow[i], &a),
                  slow[i][2] == 'c'
                  ? "Invalid argument \"cps\": a number greater than 0 and "
                    "at most 1000"
                  : "Invalid argument \"bpm\": a number greater than 0 and "
                    "at most 240000");
    }

    CHECK_STR(check_of("tidal_set_tempo", "{'bpm':1e400}", &a),
              "bad JSON in the test");
}


UNIT_TEST(statements)
{
    int                n;
    char               buf[64];
    size_t             i;
    tidal_tool_args_t  a;

    static const struct {
        tidal_tool_op_e   op;
        int               channel;
        double            cps;
        const char       *text;     /* NULL: it has none */
    } cases[] = {
        { TIDAL_TOOL_OP_HUSH, 0, 0, "hush" },
        { TIDAL_TOOL_OP_SILENCE, 3, 0, "d3 silence" },
        { TIDAL_TOOL_OP_MUTE, 16, 0, "mute 16" },
        { TIDAL_TOOL_OP_UNMUTE, 16, 0, "unmute 16" },
        { TIDAL_TOOL_OP_SOLO, 1, 0, "solo 1" },
        { TIDAL_TOOL_OP_UNSOLO, 9, 0, "unsolo 9" },

        /* every digit, so that a replay plays exactly as before */
        { TIDAL_TOOL_OP_TEMPO, 0, 0.1, "setcps (0.10000000000000001)" },
        { TIDAL_TOOL_OP_TEMPO, 0, 0.5, "setcps (0.5)" },

        /* a pattern, raw code, what never reaches GHCi */
        { TIDAL_TOOL_OP_EVAL, 1, 0, NULL },
        { TIDAL_TOOL_OP_RAW, 0, 0, NULL },
        { TIDAL_TOOL_OP_STATE, 0, 0, NULL },
        { TIDAL_TOOL_OP_SAY, 0, 0, NULL },
        { TIDAL_TOOL_OP_WHO, 0, 0, NULL }
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&a, 0, sizeof(a));
        a.channel = cases[i].channel;
        a.cps = cases[i].cps;

        n = tidal_tools_statement(tidal_tools_by_op(cases[i].op), &a, buf,
                                  sizeof(buf));

        if (cases[i].text == NULL) {
            CHECK_EQ(n, -1);

        } else {
            CHECK_EQ(n, strlen(cases[i].text));
            CHECK_STR(buf, cases[i].text);
        }
    }

    /* nor when it does not fit */
    CHECK_EQ(tidal_tools_statement(tidal_tools_by_op(TIDAL_TOOL_OP_HUSH), &a,
                                   buf, 4), -1);
}


UNIT_TEST(results)
{
    json_t  *r;

    r = tidal_tools_result(1, "no", NULL);
    CHECK(json_is_true(json_object_get(r, "isError")));
    CHECK_STR(json_string_value(json_object_get(json_array_get(
                  json_object_get(r, "content"), 0), "text")), "no");
    json_decref(r);

    r = tidal_tools_result_structured(json_pack("{s:i}", "seq", 7));
    CHECK(json_is_false(json_object_get(r, "isError")));
    CHECK_STR(json_string_value(json_object_get(json_array_get(
                  json_object_get(r, "content"), 0), "text")), "{\"seq\":7}");
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(r,
                  "structuredContent"), "seq")), 7);
    json_decref(r);

    CHECK(tidal_tools_result_structured(NULL) == NULL);
}


int
main(void)
{
    UNIT_RUN(rows_agree_with_their_schemas);
    UNIT_RUN(who_may_call_what_where);
    UNIT_RUN(unknown_arguments);
    UNIT_RUN(channel);
    UNIT_RUN(pattern_code_and_text);
    UNIT_RUN(history_limit);
    UNIT_RUN(tempo);
    UNIT_RUN(statements);
    UNIT_RUN(results);

    return unit_done("tools");
}
