/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The MCP tools of ngx_tidal: names, descriptions, input schemas and the
 * least role allowed to call each.  One table for the nginx module and
 * the helper's stdio mode, so both offer exactly the same tools.
 */

#ifndef _TIDAL_TOOLS_H_INCLUDED_
#define _TIDAL_TOOLS_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>

#include "tidal_mcp.h"


/* a constant, for static tidal_mcp_server_t initializers */
#define TIDAL_TOOLS_N  12     /* the last, tidal_eval_raw, is optional */


/* a definition of another size does not compile */
extern const tidal_mcp_tool_t  tidal_tools[TIDAL_TOOLS_N];


/* the tool called name, or NULL */
const tidal_mcp_tool_t *tidal_tools_find(const char *name);

/*
 * A CallToolResult with one text item and isError as error; structured
 * (may be NULL) is stolen, also on failure.  NULL without memory.
 */
json_t *tidal_tools_result(int error, const char *text, json_t *structured);

/* a result whose text is its structured content (stolen) */
json_t *tidal_tools_result_structured(json_t *structured);


#endif /* _TIDAL_TOOLS_H_INCLUDED_ */
