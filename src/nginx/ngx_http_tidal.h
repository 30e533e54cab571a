/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: declarations shared by the module's files - configuration,
 * the shared zone, the per-worker fan-out and the WebSocket client.
 */

#ifndef _NGX_HTTP_TIDAL_H_INCLUDED_
#define _NGX_HTTP_TIDAL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "tidal_ws.h"
#include "tidal_mcp.h"
#include "tidal_protocol.h"
#include "tidal_room.h"
#include "tidal_utf8.h"


#define NGX_TIDAL_VERSION              "0.2.0"

#define NGX_HTTP_TIDAL_ZONE_MAGIC      0x7469646c    /* "tidl" */
#define NGX_HTTP_TIDAL_ZONE_LAYOUT     6

/* the zone of a configuration without tidal_zone (README, tidal_zone) */
#define NGX_HTTP_TIDAL_ZONE_NAME       "tidal"
#define NGX_HTTP_TIDAL_ZONE_SIZE       (32 * 1024 * 1024)

#define NGX_HTTP_TIDAL_WORKER_SLOTS    128
#define NGX_HTTP_TIDAL_SESSION_ID_LEN  32

/* tidal_who: a member's name (escaped, NUL included), members listed */
#define NGX_HTTP_TIDAL_WHO_LEN         64
#define NGX_HTTP_TIDAL_MEMBERS_MAX     100

/* a client's text in error_log, escaped (tidal_utf8_escape) and cut */
#define NGX_HTTP_TIDAL_LOG_TEXT        256

/* the body of a 403 from ngx_http_tidal_access_check() */
#define NGX_HTTP_TIDAL_ACCESS_DENIED                                          \
    "this Host or Origin is not allowed here (DNS rebinding protection); "  \
    "the server's error_log names the directive that allows it\n"


/* a worker's share of the connection count, reclaimed when it dies */
typedef struct {
    ngx_atomic_t                pid;
    ngx_atomic_t                clients;
} ngx_http_tidal_slot_t;


typedef struct {
    uint64_t                    seq;
    uint64_t                    hid;            /* the helper's, or 0 */
    uint32_t                    offset;
    uint32_t                    len;
    uint32_t                    channel;        /* 1..16 it changed, or 0 */
} ngx_http_tidal_index_t;


typedef struct {
    u_char                     *data;
    size_t                      len;
} ngx_http_tidal_entry_t;


/* the shared zone; everything but the atomics is under shpool->mutex */
typedef struct {
    ngx_uint_t                  magic;
    ngx_uint_t                  layout;

    ngx_atomic_t                connections;
    ngx_http_tidal_slot_t       slots[NGX_HTTP_TIDAL_WORKER_SLOTS];

    /* the event ring: events first_seq .. next_seq - 1 are readable */
    uint64_t                    first_seq;
    uint64_t                    next_seq;
    size_t                      head;
    size_t                      data_size;
    ngx_uint_t                  nindex;
    ngx_http_tidal_index_t     *index;
    u_char                     *data;

    /* events per second, over the last whole second */
    time_t                      rate_time;
    uint64_t                    rate_seq;
    uint64_t                    rate;

    /* channel state, tempo and history as one JSON text */
    u_char                     *state;
    size_t                      state_len;
    uint64_t                    state_version;      /* changes so far */
    uint64_t                    state_file_version; /* the one on disk */

    /* the history, oldest first, apart: appending is cheap */
    ngx_http_tidal_entry_t      history[TIDAL_STATE_HISTORY_MAX];
    ngx_uint_t                  history_first;
    ngx_uint_t                  nhistory;

    /* the newest helper message taken */
    uint64_t                    helper_hid;
    u_char                      ghci[512];      /* GHCi's status */
    ngx_pid_t                   ghci_pid;

    ngx_rbtree_t                sessions;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 session_lru;
    ngx_uint_t                  nsessions;
} ngx_http_tidal_shctx_t;


typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_http_tidal_shctx_t     *sh;
    ngx_slab_pool_t            *shpool;

    ngx_uint_t                  max_connections;
    ngx_msec_t                  session_timeout;
    ngx_msec_t                  fanout_delay;
    ngx_str_t                   state_file;

    ngx_fd_t                   *wake_fds;       /* per worker, fanout.c */
    ngx_uint_t                  nwake;

    /* the GHCi helper: one per nginx, so all of it is http-level */
    ngx_str_t                   helper;         /* "": tidal_helper off */
    ngx_str_t                   helper_socket;
    ngx_str_t                   ghci;
    ngx_str_t                   boot;
    ngx_str_t                   dirt_address;
    ngx_str_t                   ghci_memory;
    ngx_int_t                   dirt_rate;      /* /dirt/play a second */
    ngx_msec_t                  eval_timeout;
    ngx_msec_t                  latency;        /* Tidal's oLatency */
    ngx_msec_t                  health_interval;
    ngx_flag_t                  allow_raw;
    uint64_t                    generation;     /* when it was configured */
    u_char                      helper_config[16];  /* its settings' id */
} ngx_http_tidal_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;         /* tidal_mcp */
    size_t                      max_message_size;
    ngx_msec_t                  heartbeat_interval;
    ngx_msec_t                  metrics_interval;
    ngx_uint_t                  queue_size;
    size_t                      queue_bytes;
    ngx_array_t                *allow_origins;  /* of ngx_str_t, or NULL */
    ngx_array_t                *allow_hosts;    /* of ngx_str_t, or NULL */
    ngx_array_t                *server_names;   /* of ngx_str_t, or NULL */
    ngx_http_complex_value_t   *role;
    ngx_http_complex_value_t   *name;
} ngx_http_tidal_loc_conf_t;


/* an event as the zone hands it out: its bytes, in the reader's buffer */
typedef struct {
    u_char                     *data;
    size_t                      len;
    ngx_uint_t                  channel;        /* 1..16 it changed, or 0 */
} ngx_http_tidal_event_t;


/*
 * How a client's frames are encoded: WebSocket frames, or Server-Sent
 * Events, in HTTP/1.1 chunks when the response is chunked.
 */
#define NGX_HTTP_TIDAL_WS              0
#define NGX_HTTP_TIDAL_SSE             1
#define NGX_HTTP_TIDAL_SSE_CHUNKED     2
#define NGX_HTTP_TIDAL_KINDS           3

/* a POST waiting for its answer: no frames, an HTTP response */
#define NGX_HTTP_TIDAL_POST            3


/* an encoded frame, shared by every client it is queued for */
typedef struct {
    ngx_uint_t                  refs;
    ngx_uint_t                  channel;        /* an event changing dN */
    ngx_uint_t                  close;          /* the last one */
    size_t                      len;
    u_char                      data[1];
} ngx_http_tidal_frame_t;


/* a member of the room, as tidal_who lists it */
typedef struct {
    char                        who[NGX_HTTP_TIDAL_WHO_LEN];
    tidal_role_e                role;
    ngx_uint_t                  connected;      /* holds a connection */
} ngx_http_tidal_member_t;


typedef struct ngx_http_tidal_out_s  ngx_http_tidal_out_t;

struct ngx_http_tidal_out_s {
    ngx_http_tidal_out_t       *next;
    ngx_http_tidal_frame_t     *frame;
    size_t                      sent;
};


/*
 * A client: a WebSocket, a Streamable HTTP event stream (GET), or a POST
 * waiting for a tool's answer.  A WebSocket's or an HTTP/1 stream's
 * request is freed once its header is out (unless a module holds it:
 * "kept"), and the client lives in its connection's pool; an HTTP/2
 * stream's or a POST's request stays (request), and the client is in its
 * pool.
 */

typedef struct ngx_http_tidal_ws_s  ngx_http_tidal_ws_t;

struct ngx_http_tidal_ws_s {
    ngx_connection_t           *connection;
    ngx_http_tidal_loc_conf_t  *conf;
    ngx_http_tidal_main_conf_t *main_conf;
    ngx_http_core_loc_conf_t   *core_conf;      /* send and linger times */
    ngx_http_request_t         *kept;           /* see internals.c */
    ngx_http_request_t         *request;        /* HTTP/2 stream, POST */
    time_t                      lingering_time;

    /* takes the connection over once the request is gone: internals.c */
    ngx_int_t                 (*attach)(ngx_http_tidal_ws_t *ws,
                                        ngx_chain_t *unsent,
                                        ngx_buf_t *pipelined);

    tidal_ws_parser_t           parser;
    tidal_mcp_session_t         mcp;

    ngx_http_tidal_out_t       *out;
    ngx_http_tidal_out_t      **out_last;
    ngx_uint_t                  out_count;
    size_t                      out_bytes;

    ngx_event_t                 heartbeat;
    ngx_event_t                 metrics;

    ngx_queue_t                 link;           /* in the worker's list */
    uint64_t                    next_seq;       /* next event it gets */
    ngx_http_tidal_slot_t      *slot;           /* counted connection */

    ngx_str_t                   name;           /* tidal_name, or "" */
    u_char                      session[NGX_HTTP_TIDAL_SESSION_ID_LEN];

    uint64_t                    resume_from;    /* replay start, or 0 */
    uint64_t                    sound_dropped;  /* batches it was behind */
    ngx_uint_t                  calls;          /* at the helper */

    /* an event stream gets events while it is its session's newest */
    ngx_atomic_t               *newest;         /* in the zone's session */
    ngx_atomic_uint_t           stream;

    /* an HTTP/2 stream's frames on their way through nginx's filters */
    ngx_buf_t                   pending;
    ngx_chain_t                 pending_chain;

    ngx_uint_t                  kind;           /* NGX_HTTP_TIDAL_WS, ... */
    ngx_uint_t                  answering;      /* a POST's event stream */

    unsigned                    awaiting_pong:1;
    unsigned                    close_sent:1;
    unsigned                    joined:1;       /* gets broadcasts */
    unsigned                    has_session:1;
};


extern ngx_module_t  ngx_tidal_module;
extern const tidal_mcp_server_t  ngx_http_tidal_mcp_server;
extern const tidal_mcp_server_t  ngx_http_tidal_mcp_server_raw;


/* ngx_http_tidal_reply.c */
ngx_int_t ngx_http_tidal_reply(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const u_char *data, size_t len);

/* ngx_http_tidal_reply.c: request headers and small answers */
ngx_table_elt_t *ngx_http_tidal_find_header(ngx_http_request_t *r,
    const char *name, size_t len);
ngx_uint_t ngx_http_tidal_has_token(ngx_str_t *list, const char *token,
    size_t len);
ngx_int_t ngx_http_tidal_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value);

/* ngx_http_tidal_handshake.c */
ngx_int_t ngx_http_tidal_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_tidal_request_role(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e *role);

/* ngx_http_tidal_http.c: MCP Streamable HTTP */
ngx_int_t ngx_http_tidal_http_handler(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);
void ngx_http_tidal_http_answer(ngx_http_tidal_ws_t *cl, const u_char *data,
    size_t len);

/* ngx_http_tidal_sse.c: a Streamable HTTP event stream */
ngx_int_t ngx_http_tidal_sse_start(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e role, u_char *session,
    uint64_t from);
ngx_int_t ngx_http_tidal_sse_headers(ngx_http_request_t *r);
ngx_int_t ngx_http_tidal_sse_answer_start(ngx_http_request_t *r,
    ngx_http_tidal_ws_t *cl);
void ngx_http_tidal_sse_answer(ngx_http_tidal_ws_t *cl, const u_char *data,
    size_t len);
void ngx_http_tidal_sse_heartbeat(ngx_http_tidal_ws_t *cl);
ngx_int_t ngx_http_tidal_sse_flush(ngx_http_tidal_ws_t *cl);
void ngx_http_tidal_sse_end(ngx_http_tidal_ws_t *cl);
ngx_http_tidal_frame_t *ngx_http_tidal_sse_frame(ngx_uint_t kind,
    ngx_uint_t opcode, uint64_t seq, const u_char *data, size_t len,
    ngx_log_t *log);

/* ngx_http_tidal_access.c */
ngx_int_t ngx_http_tidal_access_check(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);
ngx_int_t ngx_http_tidal_access_cors(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);
ngx_int_t ngx_http_tidal_access_preflight(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);
char *ngx_http_tidal_access_allow_host(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_tidal_access_server_names(ngx_conf_t *cf,
    ngx_http_tidal_loc_conf_t *tlcf);

/* ngx_http_tidal_websocket.c */
ngx_int_t ngx_http_tidal_websocket_start(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf, tidal_role_e role);
ngx_int_t ngx_http_tidal_ws_init(ngx_http_tidal_ws_t *ws,
    ngx_http_request_t *r, ngx_http_tidal_loc_conf_t *tlcf,
    tidal_role_e role, ngx_pool_t *pool);
ngx_int_t ngx_http_tidal_ws_queue(ngx_http_tidal_ws_t *ws,
    ngx_http_tidal_frame_t *frame);
ngx_int_t ngx_http_tidal_ws_send_text(ngx_http_tidal_ws_t *ws,
    const u_char *data, size_t len);
ngx_int_t ngx_http_tidal_ws_send_event(ngx_http_tidal_ws_t *ws,
    uint64_t seq, const u_char *data, size_t len);
ngx_int_t ngx_http_tidal_ws_take_unsent(ngx_http_tidal_ws_t *ws,
    ngx_chain_t *unsent);
void ngx_http_tidal_ws_read_handler(ngx_event_t *rev);
void ngx_http_tidal_ws_write_handler(ngx_event_t *wev);
void ngx_http_tidal_ws_close(ngx_http_tidal_ws_t *ws, ngx_uint_t code,
    const char *reason);
void ngx_http_tidal_ws_finish(ngx_http_tidal_ws_t *ws, ngx_uint_t linger);
void ngx_http_tidal_ws_cleanup(void *data);
void ngx_http_tidal_ws_dequeue(ngx_http_tidal_ws_t *ws);
ngx_int_t ngx_http_tidal_ws_updated(ngx_http_tidal_ws_t *ws,
    ngx_uint_t resource);
void ngx_http_tidal_ws_heartbeat_handler(ngx_event_t *ev);
void ngx_http_tidal_ws_metrics_handler(ngx_event_t *ev);
void ngx_http_tidal_ws_after_write(ngx_http_tidal_ws_t *ws);
void ngx_http_tidal_ws_reply(ngx_http_tidal_ws_t *ws, const u_char *data,
    size_t len);
ngx_http_tidal_frame_t *ngx_http_tidal_frame_alloc(ngx_uint_t opcode,
    size_t len, u_char **payload, ngx_log_t *log);
ngx_http_tidal_frame_t *ngx_http_tidal_frame_make(ngx_uint_t kind,
    ngx_uint_t opcode, uint64_t seq, const u_char *data, size_t len,
    ngx_log_t *log);
void ngx_http_tidal_frame_release(ngx_http_tidal_frame_t *frame);
double ngx_http_tidal_clock(void);

/* ngx_http_tidal_internals.c: nginx's request and connection, beyond its API */
ngx_int_t ngx_http_tidal_upgrade(ngx_http_request_t *r,
    ngx_http_tidal_ws_t *ws);
ngx_uint_t ngx_http_tidal_shutdown_asked(ngx_connection_t *c);
ngx_int_t ngx_http_tidal_flush_tls(ngx_connection_t *c);
void ngx_http_tidal_close(ngx_http_tidal_ws_t *ws, ngx_uint_t linger);
ngx_connection_t *ngx_http_tidal_wake_connection(ngx_fd_t fd,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log);

/* ngx_http_tidal_zone.c */
char *ngx_http_tidal_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_tidal_zone_add(ngx_conf_t *cf,
    ngx_http_tidal_main_conf_t *tmcf, ngx_str_t *name, size_t size);
ngx_int_t ngx_http_tidal_zone_publish(ngx_http_tidal_main_conf_t *tmcf,
    const char *type, json_t *fields, ngx_log_t *log, uint64_t *seq);
ngx_int_t ngx_http_tidal_zone_claim_slot(ngx_http_tidal_main_conf_t *tmcf,
    ngx_log_t *log);
ngx_int_t ngx_http_tidal_zone_acquire(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_slot_t **slot, ngx_log_t *log);
ngx_int_t ngx_http_tidal_zone_fetch(ngx_http_tidal_main_conf_t *tmcf,
    uint64_t from, u_char *buf, size_t size, ngx_http_tidal_event_t *events,
    ngx_uint_t max, ngx_uint_t *n, uint64_t *next);
void ngx_http_tidal_zone_release(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_slot_t *slot);
uint64_t ngx_http_tidal_zone_last_seq(ngx_http_tidal_main_conf_t *tmcf);
ngx_int_t ngx_http_tidal_zone_publish_helper(
    ngx_http_tidal_main_conf_t *tmcf, const char *type, json_t *fields,
    uint64_t hid, ngx_log_t *log);
uint64_t ngx_http_tidal_zone_helper_seq(ngx_http_tidal_main_conf_t *tmcf,
    uint64_t hid);

/* ngx_http_tidal_state.c */
ngx_int_t ngx_http_tidal_state_load(ngx_http_tidal_main_conf_t *tmcf,
    ngx_log_t *log);
ngx_int_t ngx_http_tidal_state_room(ngx_http_tidal_main_conf_t *tmcf,
    tidal_room_t *room, ngx_uint_t history);
json_t *ngx_http_tidal_state_snapshot(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t history);
json_t *ngx_http_tidal_state_resource(ngx_http_tidal_main_conf_t *tmcf,
    ngx_uint_t resource);
ngx_int_t ngx_http_tidal_state_update(ngx_http_tidal_main_conf_t *tmcf,
    uint64_t hid, json_t *state, const char *ghci, ngx_pid_t ghci_pid,
    ngx_log_t *log);
ngx_int_t ngx_http_tidal_state_history_locked(
    ngx_http_tidal_main_conf_t *tmcf, u_char *text, size_t len);
void ngx_http_tidal_state_changed(ngx_http_tidal_main_conf_t *tmcf);

/* ngx_http_tidal_session.c */
ngx_int_t ngx_http_tidal_session_create(ngx_http_tidal_main_conf_t *tmcf,
    u_char *id, const char *who, tidal_role_e role, ngx_log_t *log);
ngx_int_t ngx_http_tidal_session_resume(ngx_http_tidal_main_conf_t *tmcf,
    u_char *id, const char *who, tidal_role_e role);
ngx_uint_t ngx_http_tidal_session_members(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_member_t *members, ngx_uint_t max);
void ngx_http_tidal_session_release(ngx_http_tidal_main_conf_t *tmcf,
    u_char *id);
ngx_int_t ngx_http_tidal_session_load(ngx_http_tidal_main_conf_t *tmcf,
    u_char *id, tidal_mcp_session_t *s);
void ngx_http_tidal_session_store(ngx_http_tidal_main_conf_t *tmcf,
    u_char *id, tidal_mcp_session_t *s, uint64_t next_seq);
ngx_int_t ngx_http_tidal_session_delete(ngx_http_tidal_main_conf_t *tmcf,
    u_char *id);
ngx_int_t ngx_http_tidal_session_stream(ngx_http_tidal_main_conf_t *tmcf,
    u_char *id, ngx_http_tidal_ws_t *cl, uint64_t *next_seq);
ngx_int_t ngx_http_tidal_session_answer_stream(
    ngx_http_tidal_main_conf_t *tmcf, ngx_http_tidal_ws_t *cl,
    uint64_t *next_seq);
void ngx_http_tidal_session_stream_end(ngx_http_tidal_main_conf_t *tmcf,
    ngx_http_tidal_ws_t *cl);
void ngx_http_tidal_session_refresh(ngx_http_tidal_ws_t *cl);
void ngx_http_tidal_session_stream_at(ngx_http_tidal_ws_t *cl,
    uint64_t next_seq);

/* ngx_http_tidal_fanout.c */
ngx_int_t ngx_http_tidal_fanout_init_module(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf);
ngx_int_t ngx_http_tidal_fanout_init_process(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf);
void ngx_http_tidal_fanout_join(ngx_http_tidal_ws_t *ws, uint64_t from);
uint64_t ngx_http_tidal_fanout_position(void);
void ngx_http_tidal_fanout_leave(ngx_http_tidal_ws_t *ws);
void ngx_http_tidal_fanout_exiting(void);
void ngx_http_tidal_fanout_catch_up(ngx_http_tidal_ws_t *ws);
void ngx_http_tidal_fanout_published(ngx_http_tidal_main_conf_t *tmcf);
ngx_uint_t ngx_http_tidal_fanout_clients(void);
void ngx_http_tidal_fanout_sound(const u_char *data, size_t len);

/* ngx_http_tidal_tools.c */
ngx_int_t ngx_http_tidal_tool_call(ngx_http_tidal_ws_t *ws,
    const tidal_tool_t *tool, json_t *args, const tidal_tool_args_t *a,
    json_t *id, json_t **result);

json_t *ngx_http_tidal_tool_state(ngx_http_tidal_main_conf_t *tmcf,
    json_t *scheduler);
const char *ngx_http_tidal_who(ngx_http_tidal_ws_t *ws);

/* ngx_http_tidal_helper.c */
ngx_uint_t ngx_http_tidal_helper_ready(void);
void ngx_http_tidal_helper_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_tidal_helper_init_module(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf);
ngx_int_t ngx_http_tidal_helper_init_process(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf);
ngx_int_t ngx_http_tidal_helper_call(ngx_http_tidal_ws_t *ws,
    const tidal_tool_t *tool, json_t *args, json_t *id,
    const char *who, json_t **result);
void ngx_http_tidal_helper_forget(ngx_http_tidal_ws_t *ws);
void ngx_http_tidal_helper_status(ngx_http_tidal_main_conf_t *tmcf,
    u_char *buf, size_t size);

/* ngx_http_tidal_publish.c, ngx_http_tidal_status.c */
ngx_int_t ngx_http_tidal_publish_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_tidal_status_handler(ngx_http_request_t *r);
json_t *ngx_http_tidal_status_json(ngx_http_tidal_main_conf_t *tmcf);
json_t *ngx_http_tidal_status_metrics(ngx_http_tidal_main_conf_t *tmcf);


#endif /* _NGX_HTTP_TIDAL_H_INCLUDED_ */
