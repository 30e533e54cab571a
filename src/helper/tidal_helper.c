/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper: supervises GHCi running Tidal.  With --stdio it is a
 * complete MCP server on stdin/stdout (newline-delimited JSON-RPC, the
 * MCP stdio transport) with its own GHCi, for one person without nginx;
 * with --socket it is the helper nginx starts (tidal_helper_socket.c);
 * with --stdio --connect it bridges stdio to a room of the module
 * (tidal_bridge.c).  It logs to stderr only.
 */


#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "tidal_helper.h"
#include "tidal_ghci.h"
#include "tidal_lines.h"
#include "tidal_bridge.h"


#define TIDAL_HELPER_LINE_MAX      (4 * 1024 * 1024)  /* one message */
#define TIDAL_HELPER_ARGS_MAX      64                 /* ghci words */

#ifndef TIDAL_HELPER_BOOT
#define TIDAL_HELPER_BOOT          "BootTidal.hs"
#endif




static void tidal_helper_usage(FILE *f);
static int tidal_helper_options(int argc, char **argv,
    tidal_ghci_conf_t *conf, tidal_role_e *role,
    tidal_helper_socket_conf_t *sock, int *allow_raw,
    tidal_bridge_conf_t *bridge);
static char **tidal_helper_split(const char *cmd);
static int tidal_helper_number(const char *text, int min, int max,
    int *value);
static int tidal_helper_stdio(tidal_helper_t *h, tidal_ghci_t *g);
static void tidal_helper_stdin_line(void *data, char *line, size_t len);
static void tidal_helper_stdout(tidal_helper_t *h, const char *text,
    size_t len);
static void tidal_helper_signal(int sig);
static void tidal_helper_log_follow(void);


static int                    tidal_helper_log_level = TIDAL_LOG_INFO;
static volatile sig_atomic_t  tidal_helper_quit;
static char                   tidal_helper_memory[64];
static const char            *tidal_helper_error_log;


int
main(int argc, char **argv)
{
    int                    rc, allow_raw;
    tidal_role_e           role;
    tidal_ghci_t          *g;
    tidal_helper_t         h;
    struct sigaction       sa;
    tidal_ghci_conf_t            conf;
    tidal_ghci_handler_t         handler;
    tidal_bridge_conf_t          bridge;
    tidal_helper_socket_conf_t   sock;

    memset(&conf, 0, sizeof(conf));
    memset(&sock, 0, sizeof(sock));
    memset(&h, 0, sizeof(h));
    memset(&bridge, 0, sizeof(bridge));

    allow_raw = 0;

    rc = tidal_helper_options(argc, argv, &conf, &role, &sock, &allow_raw,
                              &bridge);
    if (rc != 0) {
        return rc < 0 ? 2 : 0;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;

    if (sigaction(SIGPIPE, &sa, NULL) == -1) {
        tidal_helper_log(TIDAL_LOG_ERR, "sigaction(SIGPIPE) failed: %s",
                         strerror(errno));
        return 1;
    }

    /* no SA_RESTART: poll() returns and the loop sees the flag */

    sa.sa_handler = tidal_helper_signal;

    if (sigaction(SIGTERM, &sa, NULL) == -1
        || sigaction(SIGINT, &sa, NULL) == -1
        || sigaction(SIGHUP, &sa, NULL) == -1)
    {
        tidal_helper_log(TIDAL_LOG_ERR, "sigaction() failed: %s",
                         strerror(errno));
        return 1;
    }

    if (bridge.url != NULL) {
        free(conf.argv);
        return tidal_bridge_run(&bridge, &tidal_helper_quit);
    }

    if (tidal_helper_init(&h, role, allow_raw) != 0) {
        return 1;
    }

    h.send = tidal_helper_stdout;
    h.eval_timeout = conf.eval_timeout;

    handler.ready = tidal_helper_ghci_ready;
    handler.error = tidal_helper_ghci_error;
    handler.stalled = tidal_helper_ghci_stalled;
    handler.data = &h;

    g = tidal_ghci_create(&conf, &handler);
    if (g == NULL) {
        tidal_helper_free(&h);
        return 1;
    }

    h.ghci = g;

    if (sock.path) {
        rc = tidal_helper_socket(&h, g, &sock, &tidal_helper_quit);
        goto done;
    }

    tidal_helper_log(TIDAL_LOG_INFO, "stdio MCP server, role %s, "
                     "SuperDirt at %s:%d, boot file %s",
                     tidal_mcp_role_name(role), conf.dirt_host,
                     conf.dirt_port, conf.boot_file);

    /* a failed start is retried by the driver and reported to clients */

    (void) tidal_ghci_start(g);

    rc = tidal_helper_stdio(&h, g);

done:

    tidal_ghci_destroy(g);
    tidal_helper_free(&h);
    free(conf.argv);

    tidal_helper_log(TIDAL_LOG_INFO, "exiting");

    return rc;
}


static void
tidal_helper_usage(FILE *f)
{
    fprintf(f,
        "usage: tidal-helper --stdio [options]\n"
        "       tidal-helper --stdio --connect ws[s]://HOST[:PORT]/PATH\n"
        "                    [--header \"Name: value\"]... [--ca-file FILE]\n"
        "                    [--reconnect]\n"
        "       tidal-helper --socket PATH --master-pid PID [options]\n"
        "\n"
        "A TidalCycles MCP server on stdin/stdout with its own GHCi; with\n"
        "--connect, a bridge from stdin/stdout to a room of ngx_tidal; with\n"
        "--socket, the helper nginx's ngx_tidal module starts.\n"
        "\n"
        "  --stdio                 speak MCP (JSON-RPC, one message a line)\n"
        "                          on stdin/stdout; logs go to stderr\n"
        "  --connect URL           start no GHCi: relay each line to the\n"
        "                          WebSocket at URL (ws:// or wss://, TLS\n"
        "                          with the certificate checked) and each\n"
        "                          message from it to stdout\n"
        "  --header \"N: V\"         with --connect: a request header, e.g.\n"
        "                          \"Authorization: Bearer ...\"; repeatable\n"
        "  --header-env VAR        with --connect: the header \"N: V\" in the\n"
        "                          environment variable VAR, out of sight of\n"
        "                          ps; repeatable\n"
        "  --ca-file FILE          with wss://: trust the CA certificates\n"
        "                          in FILE (PEM) instead of the system's\n"
        "  --reconnect             with --connect: when the server goes\n"
        "                          away or the connection is lost, connect\n"
        "                          again (1 s doubling to 30 s) and resume\n"
        "                          the session; requests meanwhile get an\n"
        "                          error (-32000)\n"
        "  --socket PATH           serve nginx's workers on this unix socket\n"
        "  --master-pid PID        exit when this process (nginx's master)\n"
        "                          is gone\n"
        "  --generation N          which nginx configuration started it\n"
        "  --config ID             the id of its settings, for reloads\n"
        "  --error-log PATH        stderr is this file: open it again when\n"
        "                          the path names another (nginx -s reopen)\n"
        "  --ghci CMD              the GHCi command, split on spaces\n"
        "                          (default: ghci)\n"
        "  --boot FILE             the boot file (default: %s)\n"
        "  --dirt HOST:PORT        SuperDirt, where the helper relays\n"
        "                          Tidal's OSC to (default: 127.0.0.1:57120)\n"
        "  --eval-timeout MS       interrupt an evaluation after MS\n"
        "                          (default: 5000)\n"
        "  --health-interval MS    check GHCi every MS when idle, 0: never\n"
        "                          (default: 5000)\n"
        "  --stall-after MS        restart Tidal when its scheduler sent no\n"
        "                          heartbeat for MS (at least 4 heartbeats,\n"
        "                          half a cycle), 0: never (default: 2000)\n"
        "  --ghci-memory SIZE      GHCi's heap cap, e.g. 1g, or off\n"
        "                          (default: 2g)\n"
        "  --tempo-port PORT       Tidal's tempo server port (default: a\n"
        "                          free one, so instances do not share)\n"
        "  --ctrl-port PORT        Tidal's OSC control listener on\n"
        "                          127.0.0.1 (default: 0, off)\n"
        "  --role ROLE             performer (default), admin or listener\n"
        "  --allow-raw             offer tidal_eval_raw to admins: GHCi\n"
        "                          without the sandbox, i.e. shell access\n"
        "  --verbose               log debugging details\n"
        "  --version, --help\n",
        TIDAL_HELPER_BOOT);
}


/* 0: run; 1: done (help, version); -1: bad usage (said on stderr) */

static int
tidal_helper_options(int argc, char **argv, tidal_ghci_conf_t *conf,
    tidal_role_e *role, tidal_helper_socket_conf_t *sock, int *allow_raw,
    tidal_bridge_conf_t *bridge)
{
    int          i, stdio, port, master;
    char        *colon, *end;
    const char  *ghci, *arg, *val, *header;
    static char  host[256];

    stdio = 0;
    ghci = "ghci";
    *role = TIDAL_ROLE_PERFORMER;

    conf->boot_file = TIDAL_HELPER_BOOT;
    conf->dirt_host = "127.0.0.1";
    conf->dirt_port = 57120;
    conf->eval_timeout = 5000;
    conf->health_interval = 5000;
    conf->boot_timeout = 60000;
    conf->stall_after = 2000;
    conf->memory = "-M2g";

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (strcmp(arg, "--stdio") == 0) {
            stdio = 1;
            continue;
        }

        if (strcmp(arg, "--allow-raw") == 0) {
            *allow_raw = 1;
            continue;
        }

        if (strcmp(arg, "--reconnect") == 0) {
            bridge->reconnect = 1;
            continue;
        }

        if (strcmp(arg, "--verbose") == 0) {
            tidal_helper_log_level = TIDAL_LOG_DEBUG;
            continue;
        }

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            tidal_helper_usage(stdout);
            return 1;
        }

        if (strcmp(arg, "--version") == 0) {
            printf("tidal-helper %s\n", TIDAL_HELPER_VERSION);
            return 1;
        }

        if (i + 1 >= argc || strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "tidal-helper: unknown option or missing value: "
                    "%s\n", arg);
            goto usage;
        }

        val = argv[++i];

        if (strcmp(arg, "--ghci") == 0) {
            ghci = val;

        } else if (strcmp(arg, "--boot") == 0) {
            conf->boot_file = val;

        } else if (strcmp(arg, "--dirt") == 0) {
            colon = strrchr(val, ':');

            if (colon == NULL || colon == val
                || (size_t) (colon - val) >= sizeof(host)
                || tidal_helper_number(colon + 1, 1, 65535, &port) != 0)
            {
                fprintf(stderr, "tidal-helper: --dirt wants HOST:PORT, "
                        "not \"%s\"\n", val);
                goto usage;
            }

            memcpy(host, val, (size_t) (colon - val));
            host[colon - val] = '\0';
            conf->dirt_host = host;
            conf->dirt_port = port;

        } else if (strcmp(arg, "--eval-timeout") == 0) {
            if (tidal_helper_number(val, 100, 600000, &conf->eval_timeout)
                != 0)
            {
                fprintf(stderr, "tidal-helper: --eval-timeout wants 100 .. "
                        "600000 ms\n");
                goto usage;
            }

        } else if (strcmp(arg, "--health-interval") == 0) {
            if (tidal_helper_number(val, 0, 3600000, &conf->health_interval)
                != 0)
            {
                fprintf(stderr, "tidal-helper: --health-interval wants 0 .. "
                        "3600000 ms\n");
                goto usage;
            }

        } else if (strcmp(arg, "--stall-after") == 0) {
            if (tidal_helper_number(val, 0, 600000, &conf->stall_after) != 0
                || (conf->stall_after > 0 && conf->stall_after < 500))
            {
                fprintf(stderr, "tidal-helper: --stall-after wants 0 or "
                        "500 .. 600000 ms\n");
                goto usage;
            }

        } else if (strcmp(arg, "--tempo-port") == 0) {
            if (tidal_helper_number(val, 1, 65535, &conf->tempo_port) != 0) {
                fprintf(stderr, "tidal-helper: --tempo-port wants a port\n");
                goto usage;
            }

        } else if (strcmp(arg, "--ctrl-port") == 0) {
            if (tidal_helper_number(val, 0, 65535, &conf->ctrl_port) != 0) {
                fprintf(stderr, "tidal-helper: --ctrl-port wants a port\n");
                goto usage;
            }

        } else if (strcmp(arg, "--ghci-memory") == 0) {
            if (strcmp(val, "off") == 0) {
                conf->memory = NULL;

            } else {
                strtoul(val, &end, 10);

                if (end == val || (*end && strchr("kKmMgG", *end) == NULL)
                    || (*end && end[1]) || strlen(val) > 32)
                {
                    fprintf(stderr, "tidal-helper: --ghci-memory wants a "
                            "size such as 512m or 2g, or off\n");
                    goto usage;
                }

                snprintf(tidal_helper_memory, sizeof(tidal_helper_memory),
                         "-M%s", val);
                conf->memory = tidal_helper_memory;
            }

        } else if (strcmp(arg, "--socket") == 0) {
            sock->path = val;

        } else if (strcmp(arg, "--master-pid") == 0) {
            if (tidal_helper_number(val, 2, INT_MAX, &master) != 0) {
                fprintf(stderr, "tidal-helper: --master-pid wants a pid\n");
                goto usage;
            }

            sock->master = (pid_t) master;

        } else if (strcmp(arg, "--generation") == 0) {
            sock->generation = strtoull(val, &end, 10);

            if (end == val || *end != '\0') {
                fprintf(stderr, "tidal-helper: --generation wants a "
                        "number\n");
                goto usage;
            }

        } else if (strcmp(arg, "--config") == 0) {
            sock->config = val;

        } else if (strcmp(arg, "--error-log") == 0) {
            tidal_helper_error_log = val;

        } else if (strcmp(arg, "--connect") == 0) {
            if (tidal_bridge_set_url(bridge, val) != 0) {
                goto usage;
            }

        } else if (strcmp(arg, "--header") == 0) {
            if (tidal_bridge_add_header(bridge, val) != 0) {
                goto usage;
            }

        } else if (strcmp(arg, "--header-env") == 0) {

            /* a credential in argv is anyone's to read in ps */

            header = getenv(val);

            if (header == NULL) {
                fprintf(stderr, "tidal-helper: --header-env: the "
                        "environment has no %s\n", val);
                goto usage;
            }

            if (tidal_bridge_add_header(bridge, header) != 0) {
                goto usage;
            }

        } else if (strcmp(arg, "--ca-file") == 0) {
            /* now, not after the connect: a typo is a usage error */
            if (access(val, R_OK) != 0) {
                fprintf(stderr, "tidal-helper: --ca-file: cannot read "
                        "\"%s\": %s\n", val, strerror(errno));
                goto usage;
            }

            bridge->ca_file = val;

        } else if (strcmp(arg, "--role") == 0) {
            if (strcmp(val, "performer") == 0) {
                *role = TIDAL_ROLE_PERFORMER;

            } else if (strcmp(val, "admin") == 0) {
                *role = TIDAL_ROLE_ADMIN;

            } else if (strcmp(val, "listener") == 0) {
                *role = TIDAL_ROLE_LISTENER;

            } else {
                fprintf(stderr, "tidal-helper: --role is performer, admin "
                        "or listener\n");
                goto usage;
            }

        } else {
            fprintf(stderr, "tidal-helper: unknown option %s\n", arg);
            goto usage;
        }
    }

    if (stdio == (sock->path != NULL)) {
        fprintf(stderr, "tidal-helper: --stdio or --socket, one of them\n");
        goto usage;
    }

    if (bridge->nheaders > 0 && bridge->url == NULL) {
        fprintf(stderr, "tidal-helper: --header goes with --connect\n");
        goto usage;
    }

    if (bridge->reconnect && bridge->url == NULL) {
        fprintf(stderr, "tidal-helper: --reconnect goes with --connect\n");
        goto usage;
    }

    if (bridge->ca_file != NULL && !bridge->tls) {
        fprintf(stderr, "tidal-helper: --ca-file goes with --connect "
                "wss://...\n");
        goto usage;
    }

    if (sock->path) {
        if (sock->master == 0) {
            fprintf(stderr, "tidal-helper: --socket needs --master-pid\n");
            goto usage;
        }

        if (sock->config == NULL) {
            sock->config = "-";
        }

        /* nginx's workers check roles; the helper runs what they send */

        *role = TIDAL_ROLE_ADMIN;
    }

    conf->argv = tidal_helper_split(ghci);

    if (conf->argv == NULL) {
        fprintf(stderr, "tidal-helper: --ghci wants a command of at most %d "
                "words\n", TIDAL_HELPER_ARGS_MAX);
        goto usage;
    }

    return 0;

usage:

    tidal_helper_usage(stderr);

    return -1;
}


/* words separated by spaces, in one allocation; NULL when empty */

static char **
tidal_helper_split(const char *cmd)
{
    int      n;
    char   **argv, *copy, *p;
    size_t   len;

    len = strlen(cmd);

    argv = malloc(sizeof(char *) * (TIDAL_HELPER_ARGS_MAX + 1) + len + 1);
    if (argv == NULL) {
        return NULL;
    }

    copy = (char *) (argv + TIDAL_HELPER_ARGS_MAX + 1);
    memcpy(copy, cmd, len + 1);

    n = 0;

    for (p = strtok(copy, " \t"); p; p = strtok(NULL, " \t")) {
        if (n == TIDAL_HELPER_ARGS_MAX) {
            free(argv);
            return NULL;
        }

        argv[n++] = p;
    }

    if (n == 0) {
        free(argv);
        return NULL;
    }

    argv[n] = NULL;

    return argv;
}


static int
tidal_helper_number(const char *text, int min, int max, int *value)
{
    long   v;
    char  *end;

    errno = 0;
    v = strtol(text, &end, 10);

    if (errno || end == text || *end != '\0' || v < min || v > max) {
        return -1;
    }

    *value = (int) v;

    return 0;
}


/* -- the stdio transport ----------------------------------------------- */


static int
tidal_helper_stdio(tidal_helper_t *h, tidal_ghci_t *g)
{
    int                    n, timeout, rc;
    struct pollfd          pfd[1 + TIDAL_GHCI_NFDS];
    tidal_lines_t          in;

    memset(&in, 0, sizeof(in));
    in.max = TIDAL_HELPER_LINE_MAX;
    rc = 0;

    while (!tidal_helper_quit) {
        pfd[0].fd = 0;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;

        n = tidal_ghci_pollfds(g, pfd + 1);
        timeout = tidal_ghci_timeout(g);

        if (poll(pfd, (nfds_t) n + 1, timeout) == -1) {
            if (errno == EINTR) {
                continue;
            }

            tidal_helper_log(TIDAL_LOG_ERR, "poll() failed: %s",
                             strerror(errno));
            rc = 1;
            break;
        }

        if (pfd[0].revents
            && tidal_lines_read(&in, 0, "stdin", tidal_helper_stdin_line, h)
               != 0)
        {
            tidal_helper_log(TIDAL_LOG_INFO, "stdin closed");
            break;
        }

        tidal_ghci_process(g, pfd + 1, n);
    }

    if (tidal_helper_quit) {
        tidal_helper_log(TIDAL_LOG_INFO, "signal %d", (int) tidal_helper_quit);
    }

    tidal_lines_free(&in);

    return rc;
}


static void
tidal_helper_stdin_line(void *data, char *line, size_t len)
{
    tidal_helper_message(data, line, len);
}


/* one message and its newline; stdout may be non-blocking (a shared fd) */

static void
tidal_helper_stdout(tidal_helper_t *h, const char *text, size_t len)
{
    if (tidal_write_all(1, text, len) != 0
        || tidal_write_all(1, "\n", 1) != 0)
    {
        tidal_helper_log(TIDAL_LOG_ERR, "writing stdout failed: %s",
                         strerror(errno));
        tidal_helper_quit = SIGPIPE;
    }
}


static void
tidal_helper_signal(int sig)
{
    tidal_helper_quit = sig;
}


/* -- shared ------------------------------------------------------------ */


void
tidal_helper_log(int level, const char *fmt, ...)
{
    char                 msg[2048];
    va_list              args;
    static const char   *names[] = { "error", "warn", "info", "debug" };

    if (level > tidal_helper_log_level) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    tidal_helper_log_follow();

    fprintf(stderr, "tidal-helper[%d]: %s: %s\n", (int) getpid(),
            names[level], msg);
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
