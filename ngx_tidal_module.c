/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: the module definition - directives, configuration and the
 * hook that makes a location an MCP endpoint.
 */


#include "ngx_http_tidal.h"


static void *ngx_http_tidal_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_tidal_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_tidal_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_tidal_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_tidal_mcp(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tidal_location_handler(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void ngx_http_tidal_require_zone(void);
static char *ngx_http_tidal_allow_origin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tidal_role(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tidal_metrics_interval(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_tidal_check_size(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_tidal_check_queue_size(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_tidal_helper_path(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tidal_check_helper(ngx_conf_t *cf, ngx_str_t *path);
static char *ngx_http_tidal_check_socket(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_tidal_check_dirt(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_tidal_check_memory(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_tidal_check_dirt_rate(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_tidal_check_msec(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_tidal_init_helper_conf(ngx_conf_t *cf,
    ngx_http_tidal_main_conf_t *tmcf);
static ngx_http_tidal_main_conf_t *ngx_http_tidal_cycle_conf(
    ngx_cycle_t *cycle);
static ngx_int_t ngx_http_tidal_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_tidal_init_process(ngx_cycle_t *cycle);
#if (NGX_TIDAL_TEST_CANARY)
static char *ngx_http_tidal_test_canary(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
#endif


/* the content handler of a location directive without arguments */
typedef struct {
    ngx_http_handler_pt   handler;
} ngx_http_tidal_handler_post_t;


static ngx_http_tidal_handler_post_t  ngx_http_tidal_publish_post = {
    ngx_http_tidal_publish_handler
};

static ngx_http_tidal_handler_post_t  ngx_http_tidal_status_post = {
    ngx_http_tidal_status_handler
};

static ngx_conf_post_t  ngx_http_tidal_size_post = {
    ngx_http_tidal_check_size
};

static ngx_conf_post_t  ngx_http_tidal_queue_size_post = {
    ngx_http_tidal_check_queue_size
};

static ngx_conf_post_t  ngx_http_tidal_socket_post = {
    ngx_http_tidal_check_socket
};

static ngx_conf_post_t  ngx_http_tidal_dirt_post = {
    ngx_http_tidal_check_dirt
};

static ngx_conf_post_t  ngx_http_tidal_memory_post = {
    ngx_http_tidal_check_memory
};

static ngx_conf_post_t  ngx_http_tidal_dirt_rate_post = {
    ngx_http_tidal_check_dirt_rate
};


/*
 * A time's bounds, and what to say when it is out of them: the helper's
 * (src/core/tidal_protocol.h), said in nginx's units.
 */
typedef struct {
    ngx_conf_post_handler_pt  post_handler;
    ngx_msec_t                low;
    ngx_msec_t                high;
    char                     *error;
} ngx_http_tidal_msec_bounds_t;


static ngx_http_tidal_msec_bounds_t  ngx_http_tidal_eval_timeout_bounds = {
    ngx_http_tidal_check_msec,
    TIDAL_SETTING_EVAL_TIMEOUT_MIN, TIDAL_SETTING_EVAL_TIMEOUT_MAX,
    "must be 100ms .. 10m"
};

static ngx_http_tidal_msec_bounds_t  ngx_http_tidal_latency_bounds = {
    ngx_http_tidal_check_msec,
    TIDAL_SETTING_LATENCY_MIN, TIDAL_SETTING_LATENCY_MAX,
    "must be 20ms .. 10s"
};

static ngx_http_tidal_msec_bounds_t  ngx_http_tidal_health_bounds = {
    ngx_http_tidal_check_msec,
    0, TIDAL_SETTING_HEALTH_INTERVAL_MAX,
    "must be at most 1h (0: no health checks)"
};


static ngx_command_t  ngx_http_tidal_commands[] = {

    { ngx_string("tidal_mcp"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tidal_mcp,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tidal_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_tidal_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tidal_max_connections"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, max_connections),
      NULL },

    { ngx_string("tidal_session_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, session_timeout),
      NULL },

    { ngx_string("tidal_fanout_delay"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, fanout_delay),
      NULL },

    { ngx_string("tidal_state_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, state_file),
      NULL },

    { ngx_string("tidal_role"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tidal_role,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tidal_loc_conf_t, role),
      NULL },

    { ngx_string("tidal_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tidal_loc_conf_t, name),
      NULL },

    { ngx_string("tidal_metrics_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tidal_metrics_interval,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tidal_loc_conf_t, metrics_interval),
      NULL },

    { ngx_string("tidal_publish"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tidal_location_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_tidal_publish_post },

    { ngx_string("tidal_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tidal_location_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_tidal_status_post },

    { ngx_string("tidal_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tidal_loc_conf_t, max_message_size),
      &ngx_http_tidal_size_post },

    { ngx_string("tidal_heartbeat_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tidal_loc_conf_t, heartbeat_interval),
      NULL },

    { ngx_string("tidal_message_queue_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tidal_loc_conf_t, queue_size),
      &ngx_http_tidal_queue_size_post },

    { ngx_string("tidal_message_queue_bytes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tidal_loc_conf_t, queue_bytes),
      &ngx_http_tidal_size_post },

    { ngx_string("tidal_allow_origin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_tidal_allow_origin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tidal_allow_host"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_tidal_access_allow_host,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tidal_helper"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_tidal_helper_path,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tidal_helper_socket"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, helper_socket),
      &ngx_http_tidal_socket_post },

    { ngx_string("tidal_ghci"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, ghci),
      NULL },

    { ngx_string("tidal_boot"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, boot),
      NULL },

    { ngx_string("tidal_dirt_address"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, dirt_address),
      &ngx_http_tidal_dirt_post },

    { ngx_string("tidal_dirt_rate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, dirt_rate),
      &ngx_http_tidal_dirt_rate_post },

    { ngx_string("tidal_eval_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, eval_timeout),
      &ngx_http_tidal_eval_timeout_bounds },

    { ngx_string("tidal_latency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, latency),
      &ngx_http_tidal_latency_bounds },

    { ngx_string("tidal_health_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, health_interval),
      &ngx_http_tidal_health_bounds },

    { ngx_string("tidal_ghci_memory"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, ghci_memory),
      &ngx_http_tidal_memory_post },

    { ngx_string("tidal_allow_raw"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_tidal_main_conf_t, allow_raw),
      NULL },

#if (NGX_TIDAL_TEST_CANARY)
    { ngx_string("tidal_test_canary"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tidal_test_canary,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },
#endif

      ngx_null_command
};


static ngx_http_module_t  ngx_http_tidal_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_tidal_create_main_conf,       /* create main configuration */
    ngx_http_tidal_init_main_conf,         /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_tidal_create_loc_conf,        /* create location configuration */
    ngx_http_tidal_merge_loc_conf          /* merge location configuration */
};


ngx_module_t  ngx_tidal_module = {
    NGX_MODULE_V1,
    &ngx_http_tidal_module_ctx,            /* module context */
    ngx_http_tidal_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_tidal_init_module,            /* init module */
    ngx_http_tidal_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_tidal_helper_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the locations that need a zone say so; init_main_conf makes one */
static ngx_uint_t  ngx_http_tidal_zone_wanted;


static void *
ngx_http_tidal_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_tidal_main_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tidal_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->shm_zone = NULL;
     *     conf->state_file = { 0, NULL };
     *     conf->wake_fds = NULL;
     *     conf->helper = { 0, NULL };
     *     conf->helper_socket = { 0, NULL };
     *     conf->ghci = { 0, NULL };
     *     conf->boot = { 0, NULL };
     *     conf->dirt_address = { 0, NULL };
     *     conf->ghci_memory = { 0, NULL };
     */

    conf->max_connections = NGX_CONF_UNSET_UINT;
    conf->session_timeout = NGX_CONF_UNSET_MSEC;
    conf->dirt_rate = NGX_CONF_UNSET;
    conf->eval_timeout = NGX_CONF_UNSET_MSEC;
    conf->latency = NGX_CONF_UNSET_MSEC;
    conf->health_interval = NGX_CONF_UNSET_MSEC;
    conf->allow_raw = NGX_CONF_UNSET;
    conf->fanout_delay = NGX_CONF_UNSET_MSEC;

    ngx_http_tidal_zone_wanted = 0;

    return conf;
}


static char *
ngx_http_tidal_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_tidal_main_conf_t *tmcf = conf;

    char       *rv;
    ngx_str_t   name;

    /* a location needs the zone and no tidal_zone names one: the default */

    if (ngx_http_tidal_zone_wanted && tmcf->shm_zone == NULL) {
        ngx_str_set(&name, NGX_HTTP_TIDAL_ZONE_NAME);

        rv = ngx_http_tidal_zone_add(cf, tmcf, &name,
                                     NGX_HTTP_TIDAL_ZONE_SIZE);

        if (rv != NGX_CONF_OK) {
            if (rv != NGX_CONF_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "the implicit tidal_zone \"%V\" %s",
                                   &name, rv);
            }

            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_init_uint_value(tmcf->max_connections, 0);
    ngx_conf_init_msec_value(tmcf->session_timeout, 600000);
    ngx_conf_init_msec_value(tmcf->fanout_delay, 5);

    if (tmcf->state_file.len
        && ngx_conf_full_name(cf->cycle, &tmcf->state_file, 0) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_tidal_init_helper_conf(cf, tmcf);
}


/*
 * The helper's settings: defaults, checks nginx -t can make, and an id
 * of them all, so a reload that changes one restarts the helper.
 */

static char *
ngx_http_tidal_init_helper_conf(ngx_conf_t *cf,
    ngx_http_tidal_main_conf_t *tmcf)
{
    u_char      *p, *buf;
    size_t       len;
    uint32_t     crc;
    ngx_time_t  *tp;

    ngx_conf_init_value(tmcf->dirt_rate, TIDAL_SETTING_DIRT_RATE);
    ngx_conf_init_msec_value(tmcf->eval_timeout, TIDAL_SETTING_EVAL_TIMEOUT);
    ngx_conf_init_msec_value(tmcf->latency, TIDAL_SETTING_LATENCY);
    ngx_conf_init_msec_value(tmcf->health_interval,
                             TIDAL_SETTING_HEALTH_INTERVAL);
    ngx_conf_init_value(tmcf->allow_raw, 0);

    /* the built one, where "make" put it: needed once the module is used */

    if (tmcf->helper.data == NULL) {
        ngx_str_set(&tmcf->helper, NGX_TIDAL_HELPER_PATH);

        if (tmcf->shm_zone
            && ngx_http_tidal_check_helper(cf, &tmcf->helper) != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (tmcf->helper_socket.data == NULL) {
        ngx_str_set(&tmcf->helper_socket, NGX_TIDAL_HELPER_SOCKET);
    }

    if (tmcf->ghci.data == NULL) {
        ngx_str_set(&tmcf->ghci, TIDAL_SETTING_GHCI);
    }

    if (tmcf->dirt_address.data == NULL) {
        ngx_str_set(&tmcf->dirt_address, TIDAL_SETTING_DIRT_ADDRESS);
    }

    if (tmcf->ghci_memory.data == NULL) {
        ngx_str_set(&tmcf->ghci_memory, TIDAL_SETTING_GHCI_MEMORY);
    }

    /* the default socket, under the prefix, may be too long too */

    if (ngx_http_tidal_check_socket(cf, NULL, &tmcf->helper_socket)
        != NGX_CONF_OK
        || (tmcf->boot.len
            && ngx_conf_full_name(cf->cycle, &tmcf->boot, 1) != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    len = tmcf->helper.len + tmcf->helper_socket.len + tmcf->ghci.len
          + tmcf->boot.len + tmcf->dirt_address.len + tmcf->ghci_memory.len
          + 5 * NGX_INT_T_LEN + 16;

    buf = ngx_pnalloc(cf->temp_pool, len);
    if (buf == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_snprintf(buf, len, "%V|%V|%V|%V|%V|%V|%i|%M|%M|%i|%M",
                     &tmcf->helper, &tmcf->helper_socket, &tmcf->ghci,
                     &tmcf->boot, &tmcf->dirt_address, &tmcf->ghci_memory,
                     tmcf->dirt_rate, tmcf->eval_timeout,
                     tmcf->health_interval, tmcf->allow_raw, tmcf->latency);

    crc = ngx_crc32_long(buf, p - buf);
    ngx_sprintf(tmcf->helper_config, "%08xD%Z", crc);

    /* newer configurations have larger numbers, across reloads */

    ngx_time_update();
    tp = ngx_timeofday();
    tmcf->generation = (uint64_t) tp->sec * 1000 + tp->msec;

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_helper_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tidal_main_conf_t *tmcf = conf;

    ngx_str_t  *value;

    if (tmcf->helper.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&tmcf->helper, "");
        return NGX_CONF_OK;
    }

    tmcf->helper = value[1];

    if (ngx_conf_full_name(cf->cycle, &tmcf->helper, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_tidal_check_helper(cf, &tmcf->helper);
}


static char *
ngx_http_tidal_check_helper(ngx_conf_t *cf, ngx_str_t *path)
{
    if (access((char *) path->data, X_OK) == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "tidal_helper \"%V\" cannot be run; build it "
                           "(\"make\") or say \"tidal_helper off;\"",
                           path);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the helper's settings, checked where they are written */

static char *
ngx_http_tidal_check_socket(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t *path = data;

    if (ngx_conf_full_name(cf->cycle, path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (path->len >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tidal_helper_socket \"%V\" is too long for a "
                           "unix socket (at most %uz bytes)", path,
                           sizeof(((struct sockaddr_un *) 0)->sun_path) - 1);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_check_dirt(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t *addr = data;

    u_char     *colon;
    ngx_int_t   port;

    colon = ngx_strlchr(addr->data, addr->data + addr->len, ':');

    port = colon ? ngx_atoi(colon + 1, addr->data + addr->len - colon - 1)
                 : NGX_ERROR;

    if (colon == addr->data || port < 1 || port > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tidal_dirt_address \"%V\" is not HOST:PORT",
                           addr);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_check_memory(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t *size = data;

    if (ngx_strcmp(size->data, "off") != 0
        && ngx_parse_offset(size) == NGX_ERROR)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tidal_ghci_memory \"%V\" is neither a size such "
                           "as 512m or 2g nor \"off\"", size);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_check_dirt_rate(ngx_conf_t *cf, void *post, void *data)
{
    ngx_int_t *np = data;

    if (*np > TIDAL_SETTING_DIRT_RATE_MAX) {
        return "must be at most "
               TIDAL_PROTOCOL_STR(TIDAL_SETTING_DIRT_RATE_MAX)
               " a second (0: no cap)";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_check_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_http_tidal_msec_bounds_t *bounds = post;
    ngx_msec_t                   *msp = data;

    if (*msp < bounds->low || *msp > bounds->high) {
        return bounds->error;
    }

    return NGX_CONF_OK;
}


static ngx_http_tidal_main_conf_t *
ngx_http_tidal_cycle_conf(ngx_cycle_t *cycle)
{
    ngx_http_tidal_main_conf_t  *tmcf;

    if (ngx_http_cycle_get_module_main_conf(cycle, ngx_http_module) == NULL) {
        return NULL;
    }

    tmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_tidal_module);

    if (tmcf == NULL || tmcf->shm_zone == NULL) {
        return NULL;
    }

    return tmcf;
}


static ngx_int_t
ngx_http_tidal_init_module(ngx_cycle_t *cycle)
{
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = ngx_http_tidal_cycle_conf(cycle);

    if (tmcf == NULL) {
        return NGX_OK;
    }

    if (ngx_http_tidal_fanout_init_module(cycle, tmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_tidal_helper_init_module(cycle, tmcf);
}


static ngx_int_t
ngx_http_tidal_init_process(ngx_cycle_t *cycle)
{
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = ngx_http_tidal_cycle_conf(cycle);

    if (tmcf == NULL) {
        return NGX_OK;
    }

    if (ngx_http_tidal_fanout_init_process(cycle, tmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_tidal_helper_init_process(cycle, tmcf);
}


static void *
ngx_http_tidal_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_tidal_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tidal_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->allow_origins = NULL;
     *     conf->allow_hosts = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->max_message_size = NGX_CONF_UNSET_SIZE;
    conf->heartbeat_interval = NGX_CONF_UNSET_MSEC;
    conf->metrics_interval = NGX_CONF_UNSET_MSEC;
    conf->role = NGX_CONF_UNSET_PTR;
    conf->name = NGX_CONF_UNSET_PTR;
    conf->queue_size = NGX_CONF_UNSET_UINT;
    conf->queue_bytes = NGX_CONF_UNSET_SIZE;

    return conf;
}


static char *
ngx_http_tidal_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_tidal_loc_conf_t  *prev = parent;
    ngx_http_tidal_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_size_value(conf->max_message_size,
                              prev->max_message_size, 1024 * 1024);
    ngx_conf_merge_msec_value(conf->heartbeat_interval,
                              prev->heartbeat_interval, 30000);
    ngx_conf_merge_msec_value(conf->metrics_interval,
                              prev->metrics_interval, 1000);
    ngx_conf_merge_ptr_value(conf->role, prev->role, NULL);
    ngx_conf_merge_ptr_value(conf->name, prev->name, NULL);
    ngx_conf_merge_uint_value(conf->queue_size, prev->queue_size, 256);
    ngx_conf_merge_size_value(conf->queue_bytes, prev->queue_bytes,
                              8 * 1024 * 1024);

    if (conf->allow_origins == NULL) {
        conf->allow_origins = prev->allow_origins;
    }

    if (conf->allow_hosts == NULL) {
        conf->allow_hosts = prev->allow_hosts;
    }

    if (conf->enable) {
        return ngx_http_tidal_access_server_names(cf, conf);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_mcp(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tidal_loc_conf_t *tlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (tlcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    tlcf->enable = 1;
    ngx_http_tidal_require_zone();

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_tidal_handler;

    return NGX_CONF_OK;
}


/* tidal_publish, tidal_status: the location runs the handler in post */

static char *
ngx_http_tidal_location_handler(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_tidal_handler_post_t  *post = cmd->post;

    ngx_http_core_loc_conf_t  *clcf;

    ngx_http_tidal_require_zone();

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = post->handler;

    return NGX_CONF_OK;
}


/* every location directive of the module needs the zone */

static void
ngx_http_tidal_require_zone(void)
{
    ngx_http_tidal_zone_wanted = 1;
}


static char *
ngx_http_tidal_role(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tidal_loc_conf_t *tlcf = conf;

    char          *rv;
    tidal_role_e   role;

    rv = ngx_http_set_complex_value_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* a value without variables can be checked now */

    if (tlcf->role->lengths == NULL
        && tidal_mcp_role_by_name((char *) tlcf->role->value.data,
                                  tlcf->role->value.len, &role)
           != 0)
    {
        return "must be \"listener\", \"performer\" or \"admin\"";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_metrics_interval(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_tidal_loc_conf_t *tlcf = conf;

    ngx_str_t  *value;

    if (tlcf->metrics_interval != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->metrics_interval = 0;
        return NGX_CONF_OK;
    }

    tlcf->metrics_interval = ngx_parse_time(&value[1], 0);

    if (tlcf->metrics_interval == (ngx_msec_t) NGX_ERROR
        || tlcf->metrics_interval == 0)
    {
        return "invalid value: a time such as \"1s\" or \"off\"";
    }

    return NGX_CONF_OK;
}


/*
 * An origin is what browsers send in the Origin header: scheme "://" host
 * [":" port], lowercase, no path.  Stored lowercased for a plain compare.
 */

#define NGX_HTTP_TIDAL_ORIGIN_ERR                                             \
    "has invalid origin \"%V\": expected \"*\" or scheme://host[:port] "    \
    "with http or https"

static char *
ngx_http_tidal_allow_origin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tidal_loc_conf_t *tlcf = conf;

    u_char      *p, *host, *last;
    ngx_str_t   *value, *origin;
    ngx_uint_t   i;

    if (tlcf->allow_origins != NULL) {
        return "is duplicate";
    }

    tlcf->allow_origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_str_t));
    if (tlcf->allow_origins == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        origin = ngx_array_push(tlcf->allow_origins);
        if (origin == NULL) {
            return NGX_CONF_ERROR;
        }

        *origin = value[i];
        ngx_strlow(origin->data, origin->data, origin->len);

        if (origin->len == 1 && origin->data[0] == '*') {
            continue;
        }

        last = origin->data + origin->len;

        if (origin->len > 7
            && ngx_strncmp(origin->data, "http://", 7) == 0)
        {
            host = origin->data + 7;

        } else if (origin->len > 8
                   && ngx_strncmp(origin->data, "https://", 8) == 0)
        {
            host = origin->data + 8;

        } else {
            goto invalid;
        }

        for (p = host; p < last; p++) {
            if (*p == '/' || *p == '?' || *p == '#' || *p == '@'
                || *p <= ' ')
            {
                goto invalid;
            }
        }

        continue;

    invalid:

        /* a returned text is printed after the directive's name */

        p = ngx_pnalloc(cf->pool,
                        value[i].len + sizeof(NGX_HTTP_TIDAL_ORIGIN_ERR));
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(p, NGX_HTTP_TIDAL_ORIGIN_ERR "%Z", &value[i]);

        return (char *) p;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_check_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t *sp = data;

    if (*sp == 0) {
        return "must be greater than zero";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tidal_check_queue_size(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t *np = data;

    if (*np == 0 || *np > 1048576) {
        return "must be between 1 and 1048576";
    }

    return NGX_CONF_OK;
}


#if (NGX_TIDAL_TEST_CANARY)

/*
 * Test-only builds: a location whose handler overflows a heap buffer by
 * one byte, so CI can show that AddressSanitizer is really watching.
 */

static ngx_int_t
ngx_http_tidal_test_canary_handler(ngx_http_request_t *r)
{
    u_char             *p;
    volatile ngx_uint_t  n;

    n = 16 + r->args.len;

    p = ngx_alloc(16, r->connection->log);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p[n] = 1;

    ngx_free(p);

    return NGX_HTTP_NO_CONTENT;
}


static char *
ngx_http_tidal_test_canary(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_tidal_test_canary_handler;

    return NGX_CONF_OK;
}

#endif
