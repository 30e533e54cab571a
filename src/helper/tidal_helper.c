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
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tidal_helper_log.h"
#include "tidal_helper_tools.h"
#include "tidal_helper_socket.h"
#include "tidal_ghci.h"
#include "tidal_super.h"
#include "tidal_lines.h"
#include "tidal_bridge.h"
#include "tidal_play.h"
#include "tidal_protocol.h"
#include "tidal_tools.h"


#define TIDAL_HELPER_LINE_MAX      (4 * 1024 * 1024)  /* one message */
#define TIDAL_HELPER_ARGS_MAX      64                 /* ghci words */
#define TIDAL_HELPER_BOOT_TIMEOUT  60000              /* ms */
#define TIDAL_HELPER_STALL_AFTER   1000               /* ms */
#define TIDAL_HELPER_STALL_MIN     500
#define TIDAL_HELPER_STALL_MAX     600000
#define TIDAL_HELPER_CHECK_CYCLES  16

#ifndef TIDAL_HELPER_BOOT
#define TIDAL_HELPER_BOOT          "BootTidal.hs"
#endif


/* what the command line says: each option sets one field */
typedef struct {
    tidal_ghci_conf_t            ghci;
    tidal_helper_socket_conf_t   sock;
    tidal_bridge_conf_t          bridge;
    tidal_play_conf_t            play;
    tidal_role_e                 role;
    int                          stdio;
    int                          allow_raw;
    int                          verbose;
    const char                  *ghci_cmd;
    const char                  *error_log;
    int                          latency;         /* ms, -1: the default */
    char                         memory[64];      /* "-M" and the size */
    char                         dirt_host[256];
} tidal_helper_conf_t;


typedef struct tidal_helper_option_s  tidal_helper_option_t;

/*
 * Sets an option's field from its value (NULL for a flag): 0; 1 when the
 * helper has nothing more to do (--help); -1 after saying why on stderr.
 */
typedef int (*tidal_helper_set_pt)(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);

struct tidal_helper_option_s {
    const char               *name;
    unsigned                  value;     /* takes the next argument */
    tidal_helper_set_pt       set;
    size_t                    offset;    /* of its field */
    int                       min;
    int                       max;
    const char               *wants;     /* said of a bad value: a printf
                                            format of min and max */
};


static void tidal_helper_usage(FILE *f);
static int tidal_helper_options(int argc, char **argv,
    tidal_helper_conf_t *cf);
static const tidal_helper_option_t *tidal_helper_option(const char *name);
static int tidal_helper_wrong(const tidal_helper_option_t *opt);
static int tidal_helper_set_flag(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_str(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_number(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_number_or_0(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_generation(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_dirt(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_play(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_host_port(const tidal_helper_option_t *opt,
    const char *value, char *host, size_t size, int *port);
static int tidal_helper_set_memory(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_role(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_connect(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_header(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_header_env(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_ca_file(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_help(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static int tidal_helper_set_version(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value);
static char **tidal_helper_split(const char *cmd);
static int tidal_helper_number(const char *text, int min, int max,
    int *value);
static int tidal_helper_stdio(tidal_helper_t *h, tidal_super_t *g);
static void tidal_helper_stdin_line(void *data, char *line, size_t len);
static void tidal_helper_stdout(tidal_helper_t *h, const char *text,
    size_t len);
static void tidal_helper_signal(int sig);


#define tidal_helper_field(type, cf, opt)                                    \
    ((type *) ((char *) (cf) + (opt)->offset))

#define tidal_helper_offset(field)  offsetof(tidal_helper_conf_t, field)


/* one row per option, the parser in the row, as nginx's directives */

static const tidal_helper_option_t  tidal_helper_option_table[] = {

    { "--stdio", 0, tidal_helper_set_flag,
      tidal_helper_offset(stdio), 0, 0, NULL },

    { "--connect", 1, tidal_helper_set_connect, 0, 0, 0, NULL },

    { "--header", 1, tidal_helper_set_header, 0, 0, 0, NULL },

    { "--header-env", 1, tidal_helper_set_header_env, 0, 0, 0, NULL },

    { "--ca-file", 1, tidal_helper_set_ca_file, 0, 0, 0, NULL },

    { "--reconnect", 0, tidal_helper_set_flag,
      tidal_helper_offset(bridge.reconnect), 0, 0, NULL },

    { "--play", 1, tidal_helper_set_play, 0, 1, 65535, NULL },

    { "--socket", 1, tidal_helper_set_str,
      tidal_helper_offset(sock.path), 0, 0, NULL },

    { "--master-pid", 1, tidal_helper_set_number,
      tidal_helper_offset(sock.master), 2, INT_MAX,
      "wants a pid" },

    { "--generation", 1, tidal_helper_set_generation,
      tidal_helper_offset(sock.generation), 0, 0,
      "wants a number" },

    { "--config", 1, tidal_helper_set_str,
      tidal_helper_offset(sock.config), 0, 0, NULL },

    { "--error-log", 1, tidal_helper_set_str,
      tidal_helper_offset(error_log), 0, 0, NULL },

    { "--ghci", 1, tidal_helper_set_str,
      tidal_helper_offset(ghci_cmd), 0, 0, NULL },

    { "--boot", 1, tidal_helper_set_str,
      tidal_helper_offset(ghci.boot_file), 0, 0, NULL },

    { "--dirt", 1, tidal_helper_set_dirt, 0, 1, 65535, NULL },

    { "--eval-timeout", 1, tidal_helper_set_number,
      tidal_helper_offset(ghci.eval_timeout),
      TIDAL_SETTING_EVAL_TIMEOUT_MIN, TIDAL_SETTING_EVAL_TIMEOUT_MAX,
      "wants %d .. %d ms" },

    { "--health-interval", 1, tidal_helper_set_number,
      tidal_helper_offset(ghci.health_interval),
      0, TIDAL_SETTING_HEALTH_INTERVAL_MAX,
      "wants %d .. %d ms" },

    { "--stall-after", 1, tidal_helper_set_number_or_0,
      tidal_helper_offset(ghci.stall_after),
      TIDAL_HELPER_STALL_MIN, TIDAL_HELPER_STALL_MAX,
      "wants 0 or %d .. %d ms" },

    { "--dirt-rate", 1, tidal_helper_set_number,
      tidal_helper_offset(ghci.dirt_rate),
      0, TIDAL_SETTING_DIRT_RATE_MAX,
      "wants %d .. %d a second" },

    /* Tidal's, or --play's: the rules across options check which */
    { "--latency", 1, tidal_helper_set_number,
      tidal_helper_offset(latency),
      0, TIDAL_SETTING_LATENCY_MAX,
      "wants %d .. %d ms" },

    { "--ghci-memory", 1, tidal_helper_set_memory, 0, 0, 0,
      "wants a size such as 512m or 2g, or off" },

    { "--tempo-port", 1, tidal_helper_set_number,
      tidal_helper_offset(ghci.tempo_port), 1, 65535,
      "wants a port" },

    { "--ctrl-port", 1, tidal_helper_set_number,
      tidal_helper_offset(ghci.ctrl_port), 0, 65535,
      "wants a port" },

    { "--role", 1, tidal_helper_set_role,
      tidal_helper_offset(role), 0, 0,
      "is performer, admin or listener" },

    { "--allow-raw", 0, tidal_helper_set_flag,
      tidal_helper_offset(allow_raw), 0, 0, NULL },

    { "--verbose", 0, tidal_helper_set_flag,
      tidal_helper_offset(verbose), 0, 0, NULL },

    { "--version", 0, tidal_helper_set_version, 0, 0, 0, NULL },

    { "--help", 0, tidal_helper_set_help, 0, 0, 0, NULL },

    { "-h", 0, tidal_helper_set_help, 0, 0, 0, NULL },

    { NULL, 0, NULL, 0, 0, 0, NULL }
};


static volatile sig_atomic_t  tidal_helper_quit;


int
main(int argc, char **argv)
{
    int                    rc;
    tidal_super_t         *g;
    tidal_helper_t         h;
    struct sigaction       sa;
    tidal_helper_conf_t    cf;
    tidal_super_handler_t  handler;

    memset(&h, 0, sizeof(h));

    rc = tidal_helper_options(argc, argv, &cf);
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

    if (cf.play.port != 0) {
        free(cf.ghci.argv);
        return tidal_play_run(&cf.bridge, &cf.play, &tidal_helper_quit);
    }

    if (cf.bridge.url != NULL) {
        free(cf.ghci.argv);
        return tidal_bridge_run(&cf.bridge, NULL, &tidal_helper_quit);
    }

    if (tidal_helper_init(&h, cf.role, cf.allow_raw) != 0) {
        return 1;
    }

    h.send = tidal_helper_stdout;
    h.eval_timeout = cf.ghci.eval_timeout;

    handler.ready = tidal_helper_ghci_ready;
    handler.error = tidal_helper_ghci_error;
    handler.failed = tidal_helper_ghci_failed;
    handler.audible = tidal_helper_ghci_audible;
    handler.dropped = tidal_helper_dirt_dropped;
    handler.sound = cf.sock.path ? tidal_helper_sound : NULL;
    handler.data = &h;

    g = tidal_super_create(&cf.ghci, &handler);
    if (g == NULL) {
        tidal_helper_free(&h);
        return 1;
    }

    h.ghci = g;

    if (cf.sock.path) {
        rc = tidal_helper_socket(&h, g, &cf.sock, &tidal_helper_quit);
        goto done;
    }

    tidal_helper_log(TIDAL_LOG_INFO, "stdio MCP server, role %s, "
                     "SuperDirt at %s:%d, boot file %s",
                     tidal_mcp_role_name(cf.role), cf.ghci.dirt_host,
                     cf.ghci.dirt_port, cf.ghci.boot_file);

    /* a failed start is retried and reported to clients */

    tidal_super_start(g);

    rc = tidal_helper_stdio(&h, g);

done:

    tidal_super_destroy(g);
    tidal_helper_free(&h);
    free(cf.ghci.argv);

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
        "       tidal-helper --connect ws[s]://HOST[:PORT]/PATH\n"
        "                    --play HOST:PORT [--latency MS]\n"
        "                    [--header \"Name: value\"]... [--ca-file FILE]\n"
        "                    [--reconnect]\n"
        "       tidal-helper --socket PATH --master-pid PID [options]\n"
        "\n"
        "A TidalCycles MCP server on stdin/stdout with its own GHCi; with\n"
        "--connect, a bridge from stdin/stdout to a room of ngx_tidal, or\n"
        "with --play a listener that plays the room on a local SuperDirt;\n"
        "with --socket, the helper nginx's ngx_tidal module starts.\n"
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
        "  --reconnect             with --connect: when the server is not\n"
        "                          up yet, goes away or the connection is\n"
        "                          lost, connect again (1 s doubling to\n"
        "                          30 s) and resume the session; messages\n"
        "                          before the first connection wait for it\n"
        "                          (up to 64, 30 s each), requests later\n"
        "                          get an error (-32000)\n"
        "  --play HOST:PORT        with --connect, no --stdio: join the room\n"
        "                          as a listener and send its sound to the\n"
        "                          SuperDirt at HOST:PORT (e.g.\n"
        "                          127.0.0.1:57120), each event as an OSC\n"
        "                          bundle timed by this machine's clock\n"
        "                          (the room's measured with tidal/clock);\n"
        "                          events too late to play are dropped\n"
        "  --socket PATH           serve nginx's workers on this unix socket\n"
        "  --master-pid PID        exit when this process (nginx's master)\n"
        "                          is gone\n"
        "  --generation N          which nginx configuration started it\n"
        "  --config ID             the id of its settings, for reloads\n"
        "  --error-log PATH        stderr is this file: open it again when\n"
        "                          the path names another (nginx -s reopen)\n"
        "  --ghci CMD              the GHCi command, split on spaces\n"
        "                          (default: " TIDAL_SETTING_GHCI ")\n"
        "  --boot FILE             the boot file (default: %s)\n"
        "  --dirt HOST:PORT        SuperDirt, where the helper relays\n"
        "                          Tidal's OSC to (default: "
                                   TIDAL_SETTING_DIRT_ADDRESS ")\n"
        "  --eval-timeout MS       every tool answers within MS and a\n"
        "                          second; an evaluation is interrupted\n"
        "                          after MS\n"
        "                          (default: "
                       TIDAL_PROTOCOL_STR(TIDAL_SETTING_EVAL_TIMEOUT) ")\n"
        "  --health-interval MS    check GHCi every MS when idle, 0: never\n"
        "                          (default: "
                    TIDAL_PROTOCOL_STR(TIDAL_SETTING_HEALTH_INTERVAL) ")\n"
        "  --stall-after MS        replace the playing GHCi when its\n"
        "                          scheduler sent no heartbeat for MS (at\n"
        "                          least 3 heartbeats), 0: never (default: "
                        TIDAL_PROTOCOL_STR(TIDAL_HELPER_STALL_AFTER) ")\n"
        "  --dirt-rate N           relay at most N /dirt/play a second to\n"
        "                          SuperDirt and drop the excess, 0: no cap\n"
        "                          (default: "
                          TIDAL_PROTOCOL_STR(TIDAL_SETTING_DIRT_RATE) ")\n"
        "  --latency MS            Tidal sends each event MS ahead of its\n"
        "                          time (Tidal's oLatency): SuperDirt's\n"
        "                          and the room's listeners' margin\n"
        "                          (default: "
                          TIDAL_PROTOCOL_STR(TIDAL_SETTING_LATENCY) ", at least "
                          TIDAL_PROTOCOL_STR(TIDAL_SETTING_LATENCY_MIN) ");\n"
        "                          with --play: play MS after the room,\n"
        "                          more for a room far away or a shaky\n"
        "                          network (default: "
                              TIDAL_PROTOCOL_STR(TIDAL_PLAY_LATENCY) ")\n"
        "  --ghci-memory SIZE      GHCi's heap cap, e.g. 1g, or off\n"
        "                          (default: " TIDAL_SETTING_GHCI_MEMORY ")\n"
        "  --tempo-port PORT       Tidal's tempo server port (default: a\n"
        "                          free one, so instances do not share)\n"
        "  --ctrl-port PORT        Tidal's OSC control listener on\n"
        "                          127.0.0.1 (default: 0, off)\n"
        "  --role ROLE             performer (default), admin or listener\n"
        "  --allow-raw             offer %s to admins: GHCi\n"
        "                          without the sandbox, i.e. shell access\n"
        "  --verbose               log debugging details\n"
        "  --version, --help\n",
        TIDAL_HELPER_BOOT, tidal_tools_by_op(TIDAL_TOOL_OP_RAW)->name);
}


/* 0: run; 1: done (help, version); -1: bad usage (said on stderr) */

static int
tidal_helper_options(int argc, char **argv, tidal_helper_conf_t *cf)
{
    int                           i, rc;
    const char                   *arg, *value;
    const tidal_helper_option_t  *opt;

    memset(cf, 0, sizeof(tidal_helper_conf_t));

    cf->role = TIDAL_ROLE_PERFORMER;
    cf->ghci_cmd = TIDAL_SETTING_GHCI;

    cf->ghci.boot_file = TIDAL_HELPER_BOOT;
    cf->ghci.dirt_host = TIDAL_SETTING_DIRT_HOST;
    cf->ghci.dirt_port = TIDAL_SETTING_DIRT_PORT;
    cf->ghci.eval_timeout = TIDAL_SETTING_EVAL_TIMEOUT;
    cf->ghci.health_interval = TIDAL_SETTING_HEALTH_INTERVAL;
    cf->ghci.boot_timeout = TIDAL_HELPER_BOOT_TIMEOUT;
    cf->ghci.stall_after = TIDAL_HELPER_STALL_AFTER;
    cf->ghci.check_cycles = TIDAL_HELPER_CHECK_CYCLES;
    cf->ghci.memory = "-M" TIDAL_SETTING_GHCI_MEMORY;
    cf->ghci.dirt_rate = TIDAL_SETTING_DIRT_RATE;
    cf->latency = -1;                                 /* not given */

    for (i = 1; i < argc; i++) {
        arg = argv[i];
        opt = tidal_helper_option(arg);
        value = NULL;

        if (opt == NULL || opt->value) {
            if (i + 1 >= argc || strncmp(arg, "--", 2) != 0) {
                fprintf(stderr, "tidal-helper: unknown option or missing "
                        "value: %s\n", arg);
                goto usage;
            }

            value = argv[++i];

            if (opt == NULL) {
                fprintf(stderr, "tidal-helper: unknown option %s\n", arg);
                goto usage;
            }
        }

        rc = opt->set(cf, opt, value);

        if (rc == 1) {
            return 1;
        }

        if (rc != 0) {
            goto usage;
        }
    }

    tidal_helper_log_init(cf->verbose ? TIDAL_LOG_DEBUG : TIDAL_LOG_INFO,
                          cf->error_log);

    /* the rules across options */

    if (cf->stdio + (cf->sock.path != NULL) + (cf->play.port != 0) != 1) {
        fprintf(stderr, "tidal-helper: --stdio, --socket or --play, one of "
                "them\n");
        goto usage;
    }

    if (cf->play.port != 0 && cf->bridge.url == NULL) {
        fprintf(stderr, "tidal-helper: --play needs --connect\n");
        goto usage;
    }

    /* --play's is after the room's time, Tidal's before it: less risky */

    if (cf->play.port != 0) {
        cf->play.latency = (cf->latency == -1) ? TIDAL_PLAY_LATENCY
                                               : cf->latency;

    } else if (cf->latency == -1) {
        cf->ghci.latency = TIDAL_SETTING_LATENCY;

    } else if (cf->latency < TIDAL_SETTING_LATENCY_MIN) {
        fprintf(stderr, "tidal-helper: --latency wants %d .. %d ms\n",
                TIDAL_SETTING_LATENCY_MIN, TIDAL_SETTING_LATENCY_MAX);
        goto usage;

    } else {
        cf->ghci.latency = cf->latency;
    }

    if (cf->bridge.nheaders > 0 && cf->bridge.url == NULL) {
        fprintf(stderr, "tidal-helper: --header goes with --connect\n");
        goto usage;
    }

    if (cf->bridge.reconnect && cf->bridge.url == NULL) {
        fprintf(stderr, "tidal-helper: --reconnect goes with --connect\n");
        goto usage;
    }

    if (cf->bridge.ca_file != NULL && !cf->bridge.tls) {
        fprintf(stderr, "tidal-helper: --ca-file goes with --connect "
                "wss://...\n");
        goto usage;
    }

    if (cf->sock.path) {
        if (cf->sock.master == 0) {
            fprintf(stderr, "tidal-helper: --socket needs --master-pid\n");
            goto usage;
        }

        if (cf->sock.config == NULL) {
            cf->sock.config = "-";
        }

        /* nginx's workers check roles; the helper runs what they send */

        cf->role = TIDAL_ROLE_ADMIN;
    }

    cf->ghci.argv = tidal_helper_split(cf->ghci_cmd);

    if (cf->ghci.argv == NULL) {
        fprintf(stderr, "tidal-helper: --ghci wants a command of at most %d "
                "words\n", TIDAL_HELPER_ARGS_MAX);
        goto usage;
    }

    return 0;

usage:

    tidal_helper_usage(stderr);

    return -1;
}


static const tidal_helper_option_t *
tidal_helper_option(const char *name)
{
    const tidal_helper_option_t  *opt;

    for (opt = tidal_helper_option_table; opt->name; opt++) {
        if (strcmp(name, opt->name) == 0) {
            return opt;
        }
    }

    return NULL;
}


/* "tidal-helper: --eval-timeout wants 100 .. 600000 ms"; -1 */

static int
tidal_helper_wrong(const tidal_helper_option_t *opt)
{
    fprintf(stderr, "tidal-helper: %s ", opt->name);
    fprintf(stderr, opt->wants, opt->min, opt->max);
    fputc('\n', stderr);

    return -1;
}


static int
tidal_helper_set_flag(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    *tidal_helper_field(int, cf, opt) = 1;

    return 0;
}


static int
tidal_helper_set_str(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    *tidal_helper_field(const char *, cf, opt) = value;

    return 0;
}


/* an int, or an unsigned or a pid_t, which C lets an int stand for */

static int
tidal_helper_set_number(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    if (tidal_helper_number(value, opt->min, opt->max,
                            tidal_helper_field(int, cf, opt))
        != 0)
    {
        return tidal_helper_wrong(opt);
    }

    return 0;
}


/* 0 (off), or min .. max */

static int
tidal_helper_set_number_or_0(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    int  n;

    if (tidal_helper_number(value, 0, opt->max, &n) != 0
        || (n > 0 && n < opt->min))
    {
        return tidal_helper_wrong(opt);
    }

    *tidal_helper_field(int, cf, opt) = n;

    return 0;
}


static int
tidal_helper_set_generation(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    char  *end;

    *tidal_helper_field(uint64_t, cf, opt) = strtoull(value, &end, 10);

    if (end == value || *end != '\0') {
        return tidal_helper_wrong(opt);
    }

    return 0;
}


static int
tidal_helper_set_dirt(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    if (tidal_helper_host_port(opt, value, cf->dirt_host,
                               sizeof(cf->dirt_host), &cf->ghci.dirt_port)
        != 0)
    {
        return -1;
    }

    cf->ghci.dirt_host = cf->dirt_host;

    return 0;
}


static int
tidal_helper_set_play(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    return tidal_helper_host_port(opt, value, cf->play.host,
                                  sizeof(cf->play.host), &cf->play.port);
}


/* HOST:PORT, the port within the option's min and max */

static int
tidal_helper_host_port(const tidal_helper_option_t *opt, const char *value,
    char *host, size_t size, int *port)
{
    int          n;
    const char  *colon;

    colon = strrchr(value, ':');

    if (colon == NULL || colon == value
        || (size_t) (colon - value) >= size
        || tidal_helper_number(colon + 1, opt->min, opt->max, &n) != 0)
    {
        fprintf(stderr, "tidal-helper: %s wants HOST:PORT, not \"%s\"\n",
                opt->name, value);
        return -1;
    }

    memcpy(host, value, (size_t) (colon - value));
    host[colon - value] = '\0';
    *port = n;

    return 0;
}


/* GHCi's +RTS -M: a number and one unit letter at most, as GHC takes it */

static int
tidal_helper_set_memory(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    char  *end;

    if (strcmp(value, "off") == 0) {
        cf->ghci.memory = NULL;
        return 0;
    }

    strtoul(value, &end, 10);

    if (end == value || (*end && strchr("kKmMgG", *end) == NULL)
        || (*end && end[1]) || strlen(value) > 32)
    {
        return tidal_helper_wrong(opt);
    }

    snprintf(cf->memory, sizeof(cf->memory), "-M%s", value);
    cf->ghci.memory = cf->memory;

    return 0;
}


static int
tidal_helper_set_role(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    tidal_role_e  *role;

    role = tidal_helper_field(tidal_role_e, cf, opt);

    if (tidal_mcp_role_by_name(value, strlen(value), role) != 0) {
        return tidal_helper_wrong(opt);
    }

    return 0;
}


/* the bridge's own parsers say what is wrong */

static int
tidal_helper_set_connect(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    return tidal_bridge_set_url(&cf->bridge, value);
}


static int
tidal_helper_set_header(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    return tidal_bridge_add_header(&cf->bridge, value);
}


/* a credential in argv is anyone's to read in ps */

static int
tidal_helper_set_header_env(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    const char  *header;

    header = getenv(value);

    if (header == NULL) {
        fprintf(stderr, "tidal-helper: %s: the environment has no %s\n",
                opt->name, value);
        return -1;
    }

    return tidal_bridge_add_header(&cf->bridge, header);
}


/* read now, not after the connect: a typo is a usage error */

static int
tidal_helper_set_ca_file(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    if (access(value, R_OK) != 0) {
        fprintf(stderr, "tidal-helper: %s: cannot read \"%s\": %s\n",
                opt->name, value, strerror(errno));
        return -1;
    }

    cf->bridge.ca_file = value;

    return 0;
}


static int
tidal_helper_set_help(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    tidal_helper_usage(stdout);

    return 1;
}


static int
tidal_helper_set_version(tidal_helper_conf_t *cf,
    const tidal_helper_option_t *opt, const char *value)
{
    printf("tidal-helper %s\n", TIDAL_HELPER_VERSION);

    return 1;
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
tidal_helper_stdio(tidal_helper_t *h, tidal_super_t *g)
{
    int                    n, timeout, rc;
    struct pollfd          pfd[1 + TIDAL_SUPER_NFDS];
    tidal_lines_t          in;

    memset(&in, 0, sizeof(in));
    in.max = TIDAL_HELPER_LINE_MAX;
    rc = 0;

    while (!tidal_helper_quit) {
        pfd[0].fd = 0;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;

        n = tidal_super_pollfds(g, pfd + 1);
        timeout = tidal_super_timeout(g);

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

        tidal_super_process(g, pfd + 1, n);
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
