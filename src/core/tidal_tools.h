/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The MCP tools of ngx_tidal, one row each: name, description, input
 * schema, the least role allowed, where the call runs, whether only
 * tidal_allow_raw offers it, its arguments with their checks, and what
 * it asks of GHCi.  The MCP core, nginx's workers and tidal-helper all
 * walk this one table; nothing else names a tool.
 */

#ifndef _TIDAL_TOOLS_H_INCLUDED_
#define _TIDAL_TOOLS_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>


#define TIDAL_TOOLS_N        13

/* where a call runs: the bits of tidal_tool_t's where */
#define TIDAL_TOOL_WORKER    0x01     /* nginx's worker, from the zone */
#define TIDAL_TOOL_HELPER    0x02     /* tidal-helper, which has GHCi */

#define TIDAL_TOOLS_CPS_MAX  1000     /* tidal_set_tempo's highest cps */


typedef enum {
    TIDAL_ROLE_LISTENER = 0,
    TIDAL_ROLE_PERFORMER,
    TIDAL_ROLE_ADMIN
} tidal_role_e;


/* what a tool does: each program maps it to its own code */
typedef enum {
    TIDAL_TOOL_OP_STATE = 0,
    TIDAL_TOOL_OP_HISTORY,
    TIDAL_TOOL_OP_SAY,
    TIDAL_TOOL_OP_WHO,
    TIDAL_TOOL_OP_EVAL,
    TIDAL_TOOL_OP_HUSH,
    TIDAL_TOOL_OP_SILENCE,
    TIDAL_TOOL_OP_SOLO,
    TIDAL_TOOL_OP_UNSOLO,
    TIDAL_TOOL_OP_MUTE,
    TIDAL_TOOL_OP_UNMUTE,
    TIDAL_TOOL_OP_TEMPO,
    TIDAL_TOOL_OP_RAW
} tidal_tool_op_e;


/* how a tool reaches GHCi (the helper maps it to its supervisor's op) */
typedef enum {
    TIDAL_TOOL_GHCI_NONE = 0,     /* it does not */
    TIDAL_TOOL_GHCI_CHECK_PLAY,   /* a new pattern: checked, then played */
    TIDAL_TOOL_GHCI_DO,           /* the row's statement */
    TIDAL_TOOL_GHCI_RAW           /* GHCi input as typed (admins) */
} tidal_tool_ghci_e;


/* a call's arguments as its checks read them */
typedef struct {
    int                  channel;     /* 1 .. 16; 0: the tool has none */
    double               cps;         /* tidal_set_tempo's, from either */
    size_t               limit;       /* tidal_get_history's */
    const char          *text;        /* pattern, code or chat line, */
    size_t               len;         /* pointing into the arguments */
} tidal_tool_args_t;


/*
 * Checks one argument, value NULL when it is absent, and fills in what
 * it means: 0, or -1 with the message for the caller in err.
 */
typedef int (*tidal_tool_arg_pt)(json_t *value, tidal_tool_args_t *a,
    char *err, size_t len);

/* a rule across a call's arguments, run after each argument's check */
typedef int (*tidal_tool_check_pt)(json_t *args, tidal_tool_args_t *a,
    char *err, size_t len);


typedef struct {
    const char          *name;
    tidal_tool_arg_pt    check;       /* NULL: the tool's check reads it */
} tidal_tool_arg_t;


typedef struct {
    const char              *name;
    const char              *description;
    const char              *input_schema;  /* JSON text of a JSON Schema */
    tidal_role_e             role;          /* least role allowed */
    unsigned                 where;         /* TIDAL_TOOL_WORKER, _HELPER */
    unsigned                 raw;           /* only with tidal_allow_raw */
    const tidal_tool_arg_t  *args;          /* the only ones allowed,
                                               ending with a NULL name */
    tidal_tool_check_pt      check;         /* or NULL */
    tidal_tool_op_e          op;
    tidal_tool_ghci_e        ghci;
    const char              *statement;     /* GHCI_DO's, printf() of the
                                               channel or the cps */
} tidal_tool_t;


/* a definition of another size does not compile */
extern const tidal_tool_t  tidal_tools[TIDAL_TOOLS_N];


/* the tool called name, or NULL */
const tidal_tool_t *tidal_tools_find(const char *name);

/* the tool that does op (a replay of the state re-does what tools did) */
const tidal_tool_t *tidal_tools_by_op(tidal_tool_op_e op);

/*
 * Checks a call's arguments (NULL: none) against the tool's row: no
 * argument it does not know, each one's check, then the tool's.  0 with
 * a filled in, or -1 with the message for the caller in err.
 */
int tidal_tools_check(const tidal_tool_t *tool, json_t *args,
    tidal_tool_args_t *a, char *err, size_t len);

/*
 * The row's GHCi statement, in Tidal's own words ("hush", "mute 1",
 * "setcps (0.5)"), for checked arguments: its length, or -1 when the
 * tool has none or it does not fit.
 */
int tidal_tools_statement(const tidal_tool_t *tool,
    const tidal_tool_args_t *a, char *buf, size_t size);

/* "d1" .. "d16" -> 1 .. 16; 0 for anything else or NULL */
int tidal_tools_channel(const char *name);

/*
 * A CallToolResult with one text item and isError as error; structured
 * (may be NULL) is stolen, also on failure.  NULL without memory.
 */
json_t *tidal_tools_result(int error, const char *text, json_t *structured);

/* a result whose text is its structured content (stolen) */
json_t *tidal_tools_result_structured(json_t *structured);


#endif /* _TIDAL_TOOLS_H_INCLUDED_ */
