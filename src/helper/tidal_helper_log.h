/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper's log (stderr, which is nginx's error_log in socket mode)
 * and clock: the bottom of the helper, which every other part of it and
 * the bridge use, so that none of them needs the program's main file.
 */

#ifndef _TIDAL_HELPER_LOG_H_INCLUDED_
#define _TIDAL_HELPER_LOG_H_INCLUDED_


#include <stdint.h>


/* the helper's version: --version, its serverInfo, the bridge's User-Agent */
#define TIDAL_HELPER_VERSION  "0.1.0"

#define TIDAL_LOG_ERR     0
#define TIDAL_LOG_WARN    1
#define TIDAL_LOG_INFO    2
#define TIDAL_LOG_DEBUG   3


/*
 * Lines above level are dropped (TIDAL_LOG_INFO until this is called);
 * error_log, when not NULL, is the path stderr goes to, followed when
 * "nginx -s reopen" moves it.
 */
void tidal_helper_log_init(int level, const char *error_log);

/* one line to stderr: "tidal-helper[pid]: level: message" */
void tidal_helper_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* milliseconds of CLOCK_MONOTONIC */
int64_t tidal_helper_msec(void);

/* milliseconds since the epoch, for event timestamps */
int64_t tidal_helper_epoch_msec(void);

/*
 * seconds since the epoch to the nanosecond, CLOCK_REALTIME: the clock
 * OSC timetags are in (--play's clock offset and schedule)
 */
double tidal_helper_unix_time(void);


#endif /* _TIDAL_HELPER_LOG_H_INCLUDED_ */
