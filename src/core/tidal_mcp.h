/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * MCP core: JSON-RPC 2.0 framing and the MCP lifecycle (initialize,
 * ping, tools/list, tools/call dispatch, logging/setLevel, the room's
 * resources, prompts, completion) over jansson, and what each client is
 * told of the room's events: notifications/tidal/... for those that ask,
 * notifications/message lines and resources/updated for the others.
 * Pure C with no nginx or socket types, so the nginx transport, the
 * helper's stdio mode, unit tests and fuzzers all share it.
 */

#ifndef _TIDAL_MCP_H_INCLUDED_
#define _TIDAL_MCP_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "tidal_tools.h"


#define TIDAL_MCP_PARSE_ERROR       -32700
#define TIDAL_MCP_INVALID_REQUEST   -32600
#define TIDAL_MCP_METHOD_NOT_FOUND  -32601
#define TIDAL_MCP_INVALID_PARAMS    -32602
#define TIDAL_MCP_INTERNAL_ERROR    -32603
/* the code MCP 2025-11-25 gives an unknown resource uri */
#define TIDAL_MCP_RESOURCE_NOT_FOUND  -32002

#define TIDAL_MCP_LATEST_VERSION    "2025-11-25"

/* logging/setLevel levels, RFC 5424 severities from least to most severe */
#define TIDAL_MCP_LOG_DEBUG         0
#define TIDAL_MCP_LOG_INFO          1
#define TIDAL_MCP_LOG_NOTICE        2
#define TIDAL_MCP_LOG_WARNING       3
#define TIDAL_MCP_LOG_ERROR         4
#define TIDAL_MCP_LOG_CRITICAL      5
#define TIDAL_MCP_LOG_ALERT         6
#define TIDAL_MCP_LOG_EMERGENCY     7

/* channel dN is the resource TIDAL_MCP_CHANNEL_URI "N", N in 1..16 */
#define TIDAL_MCP_CHANNELS          16
#define TIDAL_MCP_CHANNEL_URI       "tidal://channel/d"

/*
 * Resources are numbered: 1..16 the channels, then these; a session's
 * subscriptions hold bit n - 1 for resource n.
 */
#define TIDAL_MCP_RESOURCE_STATE    17    /* tidal://state */
#define TIDAL_MCP_RESOURCE_HISTORY  18    /* tidal://history */
#define TIDAL_MCP_RESOURCE_CHAT     19    /* tidal://chat */
#define TIDAL_MCP_RESOURCES         19
#define TIDAL_MCP_RESOURCE_BIT(n)   ((uint32_t) 1 << ((n) - 1))
#define TIDAL_MCP_RESOURCES_ALL                                               \
    (TIDAL_MCP_RESOURCE_BIT(TIDAL_MCP_RESOURCES + 1) - 1)

/*
 * initialize's capabilities.experimental key (its value an object, {}
 * will do) by which a client asks for notifications/tidal/...
 */
#define TIDAL_MCP_EVENTS_CAPABILITY "tidal/events"

/*
 * The key by which a client asks for the room's sound: a
 * notifications/tidal/sound a Tidal frame (TIDAL_PROTOCOL_SOUND_HEAD)
 */
#define TIDAL_MCP_SOUND_CAPABILITY  "tidal/sound"

/*
 * A request any client may send, before initialize too, whatever its
 * role: {"receive": ms, "transmit": ms} of the server's clock, NTP-style
 */
#define TIDAL_MCP_CLOCK_METHOD      "tidal/clock"

/* log lines of room events go out under this logger */
#define TIDAL_MCP_LOGGER            "tidal"


/*
 * A server offers the tools of its table (tidal_tools, or a test's) that
 * run where it can run them, and those only tidal_allow_raw offers when
 * raw is set.
 */
typedef struct {
    const char              *name;      /* serverInfo.name */
    const char              *version;   /* serverInfo.version */
    const tidal_tool_t      *tools;
    size_t                   ntools;
    unsigned                 where;     /* TIDAL_TOOL_WORKER, _HELPER */
    unsigned                 raw;
} tidal_mcp_server_t;


typedef struct tidal_mcp_session_s {
    const tidal_mcp_server_t  *server;
    tidal_role_e               role;
    unsigned                   initialized;   /* initialize answered */
    unsigned                   client_ready;  /* notifications/initialized */
    unsigned                   tidal_events;  /* initialize asked for
                                                 TIDAL_MCP_EVENTS_CAPABILITY */
    unsigned                   tidal_sound;   /* and for
                                                 TIDAL_MCP_SOUND_CAPABILITY */
    const char                *protocol_version;
    char                       client_name[64];   /* "" until initialize */
    int                        log_level;     /* TIDAL_MCP_LOG_*, least
                                                 severe level to send */
    uint32_t                   subscriptions; /* bit n - 1: resources/
                                                 subscribe to resource n */

    /*
     * NULL by default.  Called once initialize is valid, with its params
     * (client_name is set by then);
     * a returned object (owned by the caller of the hook, i.e. released
     * here) becomes the result's "_meta" (e.g. {"tidal/session": ID}).
     * The transport uses data for its own context.
     */
    json_t                  *(*initialize_hook)(struct tidal_mcp_session_s *s,
                                                json_t *params);

    /*
     * NULL by default.  Called by resources/read of resource 1 ..
     * TIDAL_MCP_RESOURCES; returns its object, released here, whose
     * compact JSON becomes the resource text: a channel's {"pattern":
     * text or null, "muted", "soloed"}, tidal_room_resource() for the
     * others.  NULL or a non-object answers -32603.  Without the hook
     * the room reads as empty and silent.
     */
    json_t                  *(*resource_hook)(struct tidal_mcp_session_s *s,
                                              int resource);

    /*
     * NULL by default: the server's clock, ms since the epoch (a real
     * clock read, sub-ms).  Read as each message arrives; without it
     * TIDAL_MCP_CLOCK_METHOD is not found.
     */
    double                   (*clock)(void);
    double                     received;      /* the clock at the message */
    void                      *data;
} tidal_mcp_session_t;


typedef enum {
    TIDAL_MCP_NONE = 0,    /* nothing to send (a notification) */
    TIDAL_MCP_REPLY,       /* send reply, a NUL-terminated JSON text */
    TIDAL_MCP_CALL         /* run tool with args, answer id later */
} tidal_mcp_action_e;


/*
 * A tools/call whose arguments the tool's row refuses is answered here,
 * a CallToolResult with isError, as a REPLY; a CALL has passed them.
 */
typedef struct {
    tidal_mcp_action_e         action;
    char                      *reply;    /* free() after sending */
    size_t                     reply_len;
    const tidal_tool_t        *tool;     /* CALL: the tool to run */
    json_t                    *args;     /* CALL: arguments, owned */
    tidal_tool_args_t          checked;  /* CALL: as the checks read them,
                                            pointing into args */
    json_t                    *id;       /* CALL: request id, owned */
} tidal_mcp_out_t;


/* zeroes s; log_level starts at TIDAL_MCP_LOG_INFO */
void tidal_mcp_session_init(tidal_mcp_session_t *s,
    const tidal_mcp_server_t *server, tidal_role_e role);

/*
 * Handles one incoming message (one WebSocket text frame).  Fills out;
 * returns 0, or -1 on memory exhaustion only (nothing to send then).
 * out is overwritten, not freed: release the previous one first.
 * Every text returned by this API is compact JSON from malloc().
 */
int tidal_mcp_handle(tidal_mcp_session_t *s, const char *msg, size_t len,
    tidal_mcp_out_t *out);

/* releases what out owns */
void tidal_mcp_out_free(tidal_mcp_out_t *out);

/*
 * Builds the reply to a deferred tools/call: id is borrowed (out->id),
 * result is a CallToolResult object (stolen, also on failure); returns a
 * malloc'ed JSON text or NULL.  len may be NULL in these helpers.
 */
char *tidal_mcp_tool_reply(json_t *id, json_t *result, size_t *len);

/*
 * A JSON-RPC notification text; params (an object, or NULL to omit it)
 * is stolen; malloc'ed, or NULL on failure or when params is not an
 * object.
 */
char *tidal_mcp_notification(const char *method, json_t *params,
    size_t *len);

/*
 * A JSON-RPC error response for id (borrowed; NULL gives "id": null),
 * e.g. -32603 for a deferred tools/call whose helper went away; message
 * must be UTF-8.  malloc'ed or NULL.
 */
char *tidal_mcp_error_reply(json_t *id, int code, const char *message,
    size_t *len);

/*
 * The channel (1..16) a resource uri names, exactly "tidal://channel/dN"
 * with N in decimal without leading zeros; 0 for anything else or NULL.
 */
int tidal_mcp_channel_from_uri(const char *uri);

/* the resource (1 .. TIDAL_MCP_RESOURCES) a uri names, or 0 */
int tidal_mcp_resource_from_uri(const char *uri);

/*
 * The notifications/resources/updated text for resource 1 ..
 * TIDAL_MCP_RESOURCES, for the transport to send to sessions whose
 * subscriptions hold its bit; malloc'ed, or NULL on failure or for
 * another number.
 */
char *tidal_mcp_resource_updated(int resource, size_t *len);

/*
 * The resources (TIDAL_MCP_RESOURCE_BIT of each) that an event, the
 * notifications/tidal/<type> text as stored, changes: the channel of a
 * pattern_update or channel_state and tidal://state; tidal://state for
 * tempo_change; tidal://history for the types the history keeps;
 * tidal://chat for chat; all of them for a session_restore; 0 for
 * anything else, including bytes that are no such event.
 */
uint32_t tidal_mcp_event_resources(const char *event, size_t len);

/*
 * The notifications/message text (logger "tidal", data one readable
 * line, valid UTF-8, bounded) that tells an event to a client without
 * tidal/events, and its level in *level: error for error events, warning
 * for a refused pattern and a restarted GHCi, notice for chat, info for
 * changes of the room and custom events, debug for metrics.  NULL, with
 * *level untouched, for an event without a line (an accepted
 * pattern_eval, which its pattern_update tells; session_restore; unknown
 * types; bytes that are no event) or without memory.
 */
char *tidal_mcp_event_message(const char *event, size_t len, int *level,
    size_t *out_len);

/*
 * Whether a session gets the notifications/message line of an event at
 * level: never when it asked for notifications/tidal/... (which tell it
 * all), else from level s->log_level up, once initialized.
 */
int tidal_mcp_wants_event_message(const tidal_mcp_session_t *s, int level);

/*
 * The protocol version of those this server speaks that the len bytes at
 * version name (a static string, as session->protocol_version holds), or
 * NULL: a transport checks a version a client names, and keeps the one
 * negotiated as text.
 */
const char *tidal_mcp_version(const char *version, size_t len);

/* "listener", "performer", "admin"; "unknown" otherwise */
const char *tidal_mcp_role_name(tidal_role_e role);

/* the role of one of those names (len bytes): 0, or -1 for another */
int tidal_mcp_role_by_name(const char *name, size_t len, tidal_role_e *role);

/* "debug" .. "emergency" for TIDAL_MCP_LOG_*, NULL otherwise */
const char *tidal_mcp_log_level_name(int level);


#endif /* _TIDAL_MCP_H_INCLUDED_ */
