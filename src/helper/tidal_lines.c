/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * Newline-delimited messages on a descriptor (see tidal_lines.h).
 */


#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tidal_helper_log.h"
#include "tidal_lines.h"


#define TIDAL_LINES_READ  65536


static void tidal_lines_one(tidal_lines_t *l, char *p, size_t n,
    const char *what, tidal_lines_handler_pt handler, void *data);


int
tidal_lines_read(tidal_lines_t *l, int fd, const char *what,
    tidal_lines_handler_pt handler, void *data)
{
    char     *nl, *p, *buf;
    size_t    n, size;
    ssize_t   got;

    if (l->size - l->len < TIDAL_LINES_READ) {
        size = l->len + TIDAL_LINES_READ * 2;

        buf = realloc(l->data, size);
        if (buf == NULL) {
            tidal_helper_log(TIDAL_LOG_ERR, "out of memory reading %s", what);
            return -2;
        }

        l->data = buf;
        l->size = size;
    }

    got = read(fd, l->data + l->len, l->size - l->len - 1);

    if (got == -1 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }

    if (got <= 0) {
        if (got == -1) {
            tidal_helper_log(TIDAL_LOG_ERR, "reading %s failed: %s", what,
                             strerror(errno));
        } else {
            tidal_helper_log(TIDAL_LOG_DEBUG, "%s closed", what);
        }

        /* a last line without its newline is still a line */

        if (l->len && !l->skipping) {
            l->data[l->len] = '\0';
            tidal_lines_one(l, l->data, l->len, what, handler, data);
        }

        l->len = 0;

        return -1;
    }

    l->len += (size_t) got;
    p = l->data;
    n = l->len;

    while ((nl = memchr(p, '\n', n)) != NULL) {
        *nl = '\0';

        if (l->skipping) {
            l->skipping = 0;

        } else {
            tidal_lines_one(l, p, (size_t) (nl - p), what, handler, data);
        }

        n -= (size_t) (nl - p) + 1;
        p = nl + 1;
    }

    if (n > l->max) {
        tidal_helper_log(TIDAL_LOG_WARN, "a message from %s longer than %d "
                         "bytes was dropped", what, (int) l->max);
        l->skipping = 1;
        n = 0;
    }

    memmove(l->data, p, n);
    l->len = n;

    return 0;
}


static void
tidal_lines_one(tidal_lines_t *l, char *p, size_t n, const char *what,
    tidal_lines_handler_pt handler, void *data)
{
    if (n > 0 && p[n - 1] == '\r') {
        p[--n] = '\0';
    }

    if (n == 0) {
        return;
    }

    if (n > l->max) {
        tidal_helper_log(TIDAL_LOG_WARN, "a message from %s longer than %d "
                         "bytes was dropped", what, (int) l->max);
        return;
    }

    handler(data, p, n);
}


void
tidal_lines_free(tidal_lines_t *l)
{
    free(l->data);
    l->data = NULL;
    l->len = 0;
    l->size = 0;
}


int
tidal_write_all(int fd, const void *p, size_t len)
{
    size_t         done;
    ssize_t        n;
    struct pollfd  pfd;

    done = 0;

    while (done < len) {
        n = write(fd, (const char *) p + done, len - done);

        if (n > 0) {
            done += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && errno == EAGAIN) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            (void) poll(&pfd, 1, 1000);
            continue;
        }

        return -1;
    }

    return 0;
}
