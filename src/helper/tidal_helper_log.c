/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper's log and clock (see tidal_helper_log.h).
 */


#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "tidal_helper_log.h"
#include "tidal_utf8.h"


static void tidal_helper_log_follow(void);


static int          tidal_helper_log_level = TIDAL_LOG_INFO;
static const char  *tidal_helper_error_log;


void
tidal_helper_log_init(int level, const char *error_log)
{
    tidal_helper_log_level = level;
    tidal_helper_error_log = error_log;
}


/*
 * A message often quotes a pattern or GHCi's words about one, which the
 * performer wrote: escaped, it stays one line of the log (nginx's
 * error_log in socket mode) and cannot forge one of nginx's.
 */

void
tidal_helper_log(int level, const char *fmt, ...)
{
    int                  n;
    char                 msg[2048], line[4 * sizeof(msg)];
    va_list              args;
    static const char   *names[] = { "error", "warn", "info", "debug" };

    if (level > tidal_helper_log_level) {
        return;
    }

    va_start(args, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    if (n < 0) {
        return;
    }

    (void) tidal_utf8_escape(line, sizeof(line), msg,
                             strnlen(msg, sizeof(msg) - 1));

    tidal_helper_log_follow();

    fprintf(stderr, "tidal-helper[%d]: %s: %s\n", (int) getpid(),
            names[level], line);
}


int64_t
tidal_helper_msec(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int64_t
tidal_helper_epoch_msec(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


double
tidal_helper_unix_time(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/*
 * "nginx -s reopen" gives nginx's own processes a new error log; the
 * helper is none of them, so before each line it follows the path, as
 * "tail -F" does.  The new file is already the worker user's: nginx's
 * master chowns it when it reopens.
 */

static void
tidal_helper_log_follow(void)
{
    int          fd;
    struct stat  path, now;

    if (tidal_helper_error_log == NULL
        || stat(tidal_helper_error_log, &path) == -1
        || fstat(STDERR_FILENO, &now) == -1
        || (path.st_dev == now.st_dev && path.st_ino == now.st_ino))
    {
        return;
    }

    fd = open(tidal_helper_error_log, O_WRONLY|O_APPEND|O_CLOEXEC);
    if (fd == -1) {
        return;
    }

    (void) fflush(stderr);
    (void) dup2(fd, STDERR_FILENO);
    (void) close(fd);
}
