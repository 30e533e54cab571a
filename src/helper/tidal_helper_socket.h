/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper --socket (tidal_helper_socket.c): the helper nginx runs,
 * serving the helper's MCP server to nginx's workers.
 */

#ifndef _TIDAL_HELPER_SOCKET_H_INCLUDED_
#define _TIDAL_HELPER_SOCKET_H_INCLUDED_


#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "tidal_helper_tools.h"


typedef struct {
    const char            *path;              /* the unix socket */
    pid_t                  master;            /* exit when it is gone */
    uint64_t               generation;        /* of the nginx that ran it */
    const char            *config;            /* its settings' id */
} tidal_helper_socket_conf_t;


/* serves nginx's workers on conf->path until *quit or the master exits */
int tidal_helper_socket(tidal_helper_t *h, tidal_helper_super_t *g,
    const tidal_helper_socket_conf_t *conf, volatile sig_atomic_t *quit);


#endif /* _TIDAL_HELPER_SOCKET_H_INCLUDED_ */
