/*
 * ngx_tidal: declarations shared by the module definition, the WebSocket
 * handshake and the WebSocket connection handler.
 */

#ifndef _NGX_HTTP_TIDAL_H_INCLUDED_
#define _NGX_HTTP_TIDAL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "tidal_ws.h"
#include "tidal_mcp.h"


#define NGX_TIDAL_VERSION  "0.1.0"


typedef struct {
    ngx_flag_t          enable;               /* tidal_mcp */
    size_t              max_message_size;
    ngx_msec_t          heartbeat_interval;
    ngx_uint_t          queue_size;
    size_t              queue_bytes;
    ngx_array_t        *allow_origins;        /* of ngx_str_t, or NULL */
} ngx_http_tidal_loc_conf_t;


extern ngx_module_t  ngx_tidal_module;
extern const tidal_mcp_server_t  ngx_http_tidal_mcp_server;


ngx_int_t ngx_http_tidal_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_tidal_websocket_start(ngx_http_request_t *r,
    ngx_http_tidal_loc_conf_t *tlcf);


#endif /* _NGX_HTTP_TIDAL_H_INCLUDED_ */
