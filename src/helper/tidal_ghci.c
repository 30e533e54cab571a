/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The GHCi driver.  Completion is never guessed by time: after every
 * block goes a statement that prints a marker with a fresh number on
 * stderr and then on stdout; a block is finished when both streams have
 * shown its number (or a later one).  The marker carries a random nonce,
 * so a pattern cannot print a marker of its own.  Whether a block did
 * what it was for is not read from GHCi's output either: the statements
 * the helper sends end with `tidalDone TOKEN`, which writes "ok TOKEN"
 * to a pipe (fd 3 in GHCi) that only the boot file's code can write to.
 */


#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tidal_helper_log.h"
#include "tidal_ghci.h"
#include "tidal_pattern.h"
#include "tidal_relay.h"


#define TIDAL_GHCI_LINE_MAX      (64 * 1024)   /* longer lines are cut */
#define TIDAL_GHCI_OUTPUT_MAX    (64 * 1024)   /* kept per job */
#define TIDAL_GHCI_BOOT_MAX      (1024 * 1024) /* boot file size */
#define TIDAL_GHCI_GRACE         1000          /* ms after an interrupt */
#define TIDAL_GHCI_WARN_EVERY    10000         /* ms between send warnings */
#define TIDAL_GHCI_REPORT_FD     3             /* in GHCi */

#define TIDAL_GHCI_MARK          "@@tidal:"

/*
 * After the boot file: every name the helper uses must be in scope, or
 * this fails ("Variable not in scope: d1") and so does the boot.
 */
#define TIDAL_GHCI_BOOT_CHECK                                                 \
    ":t (d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15, "  \
    "d16, hush, mute 1, unmute 1, solo 1, unsolo 1, setcps 1, "               \
    "tidalMarker, tidalPlay, tidalCheck, tidalDone, tidalContinue, "          \
    "tidalStandby)\n"


typedef enum {
    TIDAL_GHCI_DOWN = 0,
    TIDAL_GHCI_BOOTING,
    TIDAL_GHCI_READY
} tidal_ghci_state_e;


typedef struct {
    char                  *data;
    size_t                 len;
    size_t                 size;
} tidal_ghci_buf_t;


struct tidal_ghci_s {
    tidal_ghci_conf_t      conf;
    tidal_ghci_handler_t   handler;
    tidal_ghci_state_e     state;
    const char            *name;

    pid_t                  pid;
    int                    in;
    int                    out;
    int                    err;
    int                    rep;          /* the report pipe */
    int64_t                started;

    tidal_ghci_buf_t       wbuf;         /* not yet written to stdin */
    size_t                 wpos;
    tidal_ghci_buf_t       oline;        /* partial lines */
    tidal_ghci_buf_t       eline;
    tidal_ghci_buf_t       rline;

    char                   nonce[17];
    char                   secret[TIDAL_RELAY_SECRET_LEN + 1];
    uint64_t               next_id;
    uint64_t               out_id;       /* last marker seen on stdout */
    uint64_t               err_id;       /* ... and on stderr */

    uint64_t               boot_id;
    tidal_ghci_buf_t       boot_out;
    int64_t                deadline;     /* of the boot or current job */

    tidal_ghci_job_t      *cur;
    unsigned               interrupted:1;
    unsigned               own_err:1;        /* cur's marker on stderr */
    unsigned               interrupt_seen:1; /* "Interrupted." before it */
    tidal_ghci_buf_t       cur_out;
    tidal_ghci_buf_t       cur_fail;     /* the report of a failed check */

    tidal_ghci_job_t      *head;
    tidal_ghci_job_t      *tail;
    tidal_ghci_job_t      *urgent_tail;

    int64_t                next_health;
    char                   why[1024];    /* why it is not running */
    int64_t                send_warned;
};


static int tidal_ghci_spawn(tidal_ghci_t *g);
static int tidal_ghci_exec_env(tidal_ghci_t *g, char ***envp);
static int tidal_ghci_free_port(void);
static void tidal_ghci_child(char **argv, char **envp, pid_t parent,
    int in[2], int out[2], int err[2], int rep[2]);
static char **tidal_ghci_argv(tidal_ghci_t *g);
static char *tidal_ghci_read_file(const char *path, size_t *len,
    char *err, size_t errlen);
static void tidal_ghci_next(tidal_ghci_t *g);
static void tidal_ghci_expire(tidal_ghci_t *g, int64_t now);
static void tidal_ghci_send_marker(tidal_ghci_t *g, uint64_t id);
static int tidal_ghci_write(tidal_ghci_t *g, const char *p, size_t n);
static void tidal_ghci_flush(tidal_ghci_t *g);
static void tidal_ghci_read(tidal_ghci_t *g, int fd);
static void tidal_ghci_line(tidal_ghci_t *g, int err, char *line,
    size_t len);
static void tidal_ghci_report(tidal_ghci_t *g, char *line, size_t len);
static int tidal_ghci_marker(tidal_ghci_t *g, const char *line, size_t len,
    uint64_t *id);
static void tidal_ghci_check(tidal_ghci_t *g);
static void tidal_ghci_finish(tidal_ghci_t *g);
static void tidal_ghci_booted(tidal_ghci_t *g);
static void tidal_ghci_lost(tidal_ghci_t *g, tidal_ghci_loss_e how,
    const char *why);
static void tidal_ghci_kill(tidal_ghci_t *g, char *status, size_t len);
static void tidal_ghci_fail_all(tidal_ghci_t *g, const char *why);
static int tidal_ghci_buf_add(tidal_ghci_buf_t *b, const char *p, size_t n,
    size_t max);
static void tidal_ghci_buf_free(tidal_ghci_buf_t *b);
static int tidal_ghci_has(const char *text, size_t len, const char *what);
static int tidal_ghci_random_hex(char *out, size_t bytes);


tidal_ghci_t *
tidal_ghci_create(const tidal_ghci_conf_t *conf,
    const tidal_ghci_handler_t *handler, const char *name)
{
    tidal_ghci_t  *g;

    g = calloc(1, sizeof(tidal_ghci_t));
    if (g == NULL) {
        return NULL;
    }

    if (tidal_ghci_random_hex(g->nonce, 8) != 0) {
        free(g);
        return NULL;
    }

    g->conf = *conf;
    g->handler = *handler;
    g->name = name;
    g->in = -1;
    g->out = -1;
    g->err = -1;
    g->rep = -1;

    snprintf(g->why, sizeof(g->why), "not started");

    return g;
}


int
tidal_ghci_start(tidal_ghci_t *g)
{
    return tidal_ghci_spawn(g);
}


void
tidal_ghci_stop(tidal_ghci_t *g, const char *why)
{
    char  status[128];

    tidal_ghci_kill(g, status, sizeof(status));

    g->state = TIDAL_GHCI_DOWN;
    snprintf(g->why, sizeof(g->why), "%s", why);

    tidal_ghci_fail_all(g, why);
}


tidal_ghci_job_t *
tidal_ghci_job(const char *text, size_t len, tidal_ghci_done_pt done,
    void *data)
{
    tidal_ghci_job_t  *job;

    job = calloc(1, sizeof(tidal_ghci_job_t));
    if (job == NULL) {
        return NULL;
    }

    job->text = malloc(len + 1);
    if (job->text == NULL) {
        free(job);
        return NULL;
    }

    memcpy(job->text, text, len);
    job->text[len] = '\0';
    job->len = len;
    job->done = done;
    job->data = data;

    return job;
}


void
tidal_ghci_job_free(tidal_ghci_job_t *job)
{
    free(job->text);
    free(job);
}


void
tidal_ghci_submit(tidal_ghci_t *g, tidal_ghci_job_t *job, int urgent)
{
    job->next = NULL;
    job->urgent = urgent ? 1 : 0;

    if (urgent) {
        if (g->urgent_tail == NULL) {
            job->next = g->head;
            g->head = job;

        } else {
            job->next = g->urgent_tail->next;
            g->urgent_tail->next = job;
        }

        g->urgent_tail = job;

        if (job->next == NULL) {
            g->tail = job;
        }

    } else {
        if (g->tail) {
            g->tail->next = job;

        } else {
            g->head = job;
        }

        g->tail = job;
    }

    tidal_ghci_next(g);
}


int
tidal_ghci_pollfds(tidal_ghci_t *g, struct pollfd *pfd)
{
    int  n;

    n = 0;

    if (g->out >= 0) {
        pfd[n].fd = g->out;
        pfd[n].events = POLLIN;
        pfd[n++].revents = 0;
    }

    if (g->err >= 0) {
        pfd[n].fd = g->err;
        pfd[n].events = POLLIN;
        pfd[n++].revents = 0;
    }

    if (g->rep >= 0) {
        pfd[n].fd = g->rep;
        pfd[n].events = POLLIN;
        pfd[n++].revents = 0;
    }

    if (g->in >= 0 && g->wpos < g->wbuf.len) {
        pfd[n].fd = g->in;
        pfd[n].events = POLLOUT;
        pfd[n++].revents = 0;
    }

    return n;
}


int
tidal_ghci_timeout(tidal_ghci_t *g)
{
    int64_t            now, at;
    tidal_ghci_job_t  *job;

    at = 0;

    switch (g->state) {

    case TIDAL_GHCI_BOOTING:
        at = g->deadline;
        break;

    case TIDAL_GHCI_READY:
        if (g->cur) {
            at = g->deadline;

        } else if (g->head == NULL && g->conf.health_interval > 0) {
            at = g->next_health;
        }

        break;

    default:
        break;
    }

    /* jobs waiting for a GHCi that boots, or for the one that runs */

    for (job = g->head; job; job = job->next) {
        if (job->expires && (at == 0 || job->expires < at)) {
            at = job->expires;
        }
    }

    if (at == 0) {
        return -1;
    }

    now = tidal_helper_msec();

    return at <= now ? 0 : (int) (at - now);
}


void
tidal_ghci_process(tidal_ghci_t *g, struct pollfd *pfd, int n)
{
    int               i, grace;
    int64_t           now;
    char              why[160];
    tidal_ghci_job_t *probe;

    for (i = 0; i < n; i++) {
        if (pfd[i].revents == 0) {
            continue;
        }

        if (pfd[i].fd == g->in && (pfd[i].revents & (POLLOUT | POLLERR))) {
            tidal_ghci_flush(g);

        } else if (pfd[i].fd >= 0
                   && (pfd[i].fd == g->out || pfd[i].fd == g->err
                       || pfd[i].fd == g->rep))
        {
            tidal_ghci_read(g, pfd[i].fd);
        }
    }

    now = tidal_helper_msec();

    switch (g->state) {

    case TIDAL_GHCI_BOOTING:
        if (now >= g->deadline) {
            snprintf(why, sizeof(why), "GHCi did not finish booting within "
                     "%d ms", g->conf.boot_timeout);
            tidal_ghci_lost(g, TIDAL_GHCI_BOOT, why);
        }

        break;

    case TIDAL_GHCI_READY:
        if (g->cur && now >= g->deadline) {

            if (g->cur->done == NULL) {
                snprintf(why, sizeof(why), "GHCi did not answer a health "
                         "check within %d ms", g->conf.eval_timeout);
                tidal_ghci_lost(g, TIDAL_GHCI_HUNG, why);

            } else if (!g->interrupted) {
                tidal_helper_log(TIDAL_LOG_WARN, "an evaluation ran past "
                                 "%d ms, interrupting %s (GHCi pid %d)",
                                 g->cur->timeout ? g->cur->timeout
                                                 : g->conf.eval_timeout,
                                 g->name, (int) g->pid);
                if (kill(g->pid, SIGINT) == -1) {
                    tidal_helper_log(TIDAL_LOG_ERR, "kill(%d, SIGINT) "
                                     "failed: %s", (int) g->pid,
                                     strerror(errno));
                }

                /* a job with a short timeout of its own: a short grace */

                grace = TIDAL_GHCI_GRACE;

                if (g->cur->timeout && g->cur->timeout / 2 < grace) {
                    grace = g->cur->timeout / 2;
                }

                g->interrupted = 1;
                tidal_ghci_send_marker(g, ++g->next_id);
                g->deadline = now + grace;

            } else {
                snprintf(why, sizeof(why), "GHCi did not recover from an "
                         "interrupt (a loop it cannot interrupt)");
                tidal_ghci_lost(g, TIDAL_GHCI_HUNG, why);
            }

        } else if (g->cur == NULL && g->head == NULL
                   && g->conf.health_interval > 0 && now >= g->next_health)
        {
            probe = tidal_ghci_job("", 0, NULL, NULL);

            if (probe == NULL) {
                g->next_health = now + g->conf.health_interval;

            } else {
                tidal_ghci_submit(g, probe, 0);
            }
        }

        break;

    default:
        break;
    }

    tidal_ghci_expire(g, now);
}


int
tidal_ghci_ready(tidal_ghci_t *g)
{
    return g->state == TIDAL_GHCI_READY;
}


const char *
tidal_ghci_status(tidal_ghci_t *g)
{
    switch (g->state) {

    case TIDAL_GHCI_READY:
        return "running";

    case TIDAL_GHCI_BOOTING:
        return "booting";

    default:
        return g->why;
    }
}


void
tidal_ghci_rename(tidal_ghci_t *g, const char *name)
{
    g->name = name;
}


const char *
tidal_ghci_secret(tidal_ghci_t *g)
{
    return g->secret;
}


void *
tidal_ghci_data(tidal_ghci_t *g)
{
    return g->handler.data;
}


int
tidal_ghci_pid(tidal_ghci_t *g)
{
    return (int) g->pid;
}


/* "T" (stopped) or "t" (traced) in /proc/PID/stat's third field */

int
tidal_ghci_stopped(tidal_ghci_t *g)
{
    int      fd;
    char     path[64], buf[512], *p;
    ssize_t  n;

    if (g->pid <= 0) {
        return 0;
    }

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) g->pid);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return 0;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);

    if (n <= 0) {
        return 0;
    }

    buf[n] = '\0';

    /* the command in parentheses may hold anything: after its last ')' */

    p = strrchr(buf, ')');

    return p != NULL && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}


void
tidal_ghci_destroy(tidal_ghci_t *g)
{
    int      i;
    pid_t    rc;

    if (g->pid > 0) {

        /* EOF on stdin ends GHCi; give it a moment, then insist */

        if (g->in >= 0) {
            close(g->in);
            g->in = -1;
        }

        for (i = 0; i < 50; i++) {
            rc = waitpid(g->pid, NULL, WNOHANG);

            if (rc == g->pid || (rc == -1 && errno != EINTR)) {
                g->pid = 0;
                break;
            }

            usleep(10000);
        }
    }

    tidal_ghci_stop(g, "the helper is exiting");

    tidal_ghci_buf_free(&g->wbuf);
    tidal_ghci_buf_free(&g->oline);
    tidal_ghci_buf_free(&g->eline);
    tidal_ghci_buf_free(&g->rline);
    tidal_ghci_buf_free(&g->boot_out);
    tidal_ghci_buf_free(&g->cur_out);
    tidal_ghci_buf_free(&g->cur_fail);
    free(g);
}


/* -- the process ------------------------------------------------------- */


static int
tidal_ghci_spawn(tidal_ghci_t *g)
{
    int      in[2], out[2], err[2], rep[2], i;
    char    *boot, **argv, **envp, msg[512];
    pid_t    parent;
    size_t   boot_len;

    in[0] = in[1] = out[0] = out[1] = err[0] = err[1] = rep[0] = rep[1] = -1;
    argv = NULL;
    envp = NULL;
    boot = NULL;

    if (g->pid > 0) {
        tidal_ghci_stop(g, "GHCi was started anew");
    }

    if (tidal_ghci_random_hex(g->secret, TIDAL_RELAY_SECRET_LEN / 2) != 0) {
        snprintf(msg, sizeof(msg), "getrandom() failed: %s",
                 strerror(errno));
        goto failed;
    }

    boot = tidal_ghci_read_file(g->conf.boot_file, &boot_len, msg,
                                sizeof(msg));
    if (boot == NULL) {
        goto failed;
    }

    argv = tidal_ghci_argv(g);

    if (argv == NULL || tidal_ghci_exec_env(g, &envp) != 0) {
        snprintf(msg, sizeof(msg), "out of memory");
        goto failed;
    }

    if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1
        || pipe2(err, O_CLOEXEC) == -1 || pipe2(rep, O_CLOEXEC) == -1)
    {
        snprintf(msg, sizeof(msg), "pipe() failed: %s", strerror(errno));
        goto failed;
    }

    parent = getpid();
    g->pid = fork();

    if (g->pid == -1) {
        g->pid = 0;
        snprintf(msg, sizeof(msg), "fork() failed: %s", strerror(errno));
        goto failed;
    }

    if (g->pid == 0) {
        tidal_ghci_child(argv, envp, parent, in, out, err, rep);
        _exit(127);
    }

    close(in[0]);
    close(out[1]);
    close(err[1]);
    close(rep[1]);

    g->in = in[1];
    g->out = out[0];
    g->err = err[0];
    g->rep = rep[0];

    if (fcntl(g->in, F_SETFL, O_NONBLOCK) == -1
        || fcntl(g->rep, F_SETFL, O_NONBLOCK) == -1)
    {
        tidal_helper_log(TIDAL_LOG_WARN, "fcntl(O_NONBLOCK) failed: %s",
                         strerror(errno));
    }

    tidal_helper_log(TIDAL_LOG_INFO, "started GHCi (pid %d) as %s: %s ...",
                     (int) g->pid, g->name, argv[0]);

    free(argv);

    for (i = 0; envp[i]; i++) {
        free(envp[i]);
    }

    free(envp);

    g->state = TIDAL_GHCI_BOOTING;
    g->started = tidal_helper_msec();
    g->deadline = g->started + g->conf.boot_timeout;
    g->out_id = 0;
    g->err_id = 0;
    g->boot_out.len = 0;
    g->boot_id = ++g->next_id;

    if (tidal_ghci_write(g, boot, boot_len) == 0
        && (boot_len == 0 || boot[boot_len - 1] == '\n'
            || tidal_ghci_write(g, "\n", 1) == 0)
        && tidal_ghci_write(g, TIDAL_GHCI_BOOT_CHECK,
                            sizeof(TIDAL_GHCI_BOOT_CHECK) - 1) == 0)
    {
        tidal_ghci_send_marker(g, g->boot_id);
    }

    free(boot);

    return 0;

failed:

    for (i = 0; i < 2; i++) {
        if (in[i] >= 0) {
            close(in[i]);
        }

        if (out[i] >= 0) {
            close(out[i]);
        }

        if (err[i] >= 0) {
            close(err[i]);
        }

        if (rep[i] >= 0) {
            close(rep[i]);
        }
    }

    if (envp) {
        for (i = 0; envp[i]; i++) {
            free(envp[i]);
        }

        free(envp);
    }

    free(argv);
    free(boot);

    g->state = TIDAL_GHCI_DOWN;
    snprintf(g->why, sizeof(g->why), "Tidal did not boot: %s", msg);
    tidal_helper_log(TIDAL_LOG_ERR, "%s: %s", g->name, g->why);
    tidal_ghci_fail_all(g, g->why);

    if (g->handler.lost) {
        g->handler.lost(g, TIDAL_GHCI_BOOT, msg);
    }

    return -1;
}


/*
 * The command line: the configured words, then -v0 (no banner, no
 * prompts), -ignore-dot-ghci (no one's .ghci runs here) and the heap cap.
 */

static char **
tidal_ghci_argv(tidal_ghci_t *g)
{
    int     n, i;
    char  **argv;

    for (n = 0; g->conf.argv[n]; n++) { /* void */ }

    argv = calloc((size_t) n + 6, sizeof(char *));
    if (argv == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        argv[i] = g->conf.argv[i];
    }

    argv[i++] = "-v0";
    argv[i++] = "-ignore-dot-ghci";

    if (g->conf.memory) {
        argv[i++] = "+RTS";
        argv[i++] = (char *) g->conf.memory;    /* "-M..." */
        argv[i++] = "-RTS";
    }

    argv[i] = NULL;

    return argv;
}


/*
 * An explicit environment: nginx workers have none, and GHCi's messages
 * depend on the locale.  The heartbeat's secret and the report pipe are
 * this GHCi's own.
 */

static int
tidal_ghci_exec_env(tidal_ghci_t *g, char ***envp)
{
    int             i, tempo;
    char          **env;
    const char     *path, *home;
    struct passwd  *pw;

    path = getenv("PATH");
    if (path == NULL || path[0] == '\0') {
        path = "/usr/local/bin:/usr/bin:/bin";
    }

    home = getenv("HOME");

    if (home == NULL || home[0] == '\0') {
        pw = getpwuid(getuid());
        home = (pw && pw->pw_dir) ? pw->pw_dir : "/";
    }

    tempo = g->conf.tempo_port ? g->conf.tempo_port : tidal_ghci_free_port();

    env = calloc(11, sizeof(char *));
    if (env == NULL) {
        return -1;
    }

    i = 0;

    if (asprintf(&env[i++], "PATH=%s", path) == -1
        || asprintf(&env[i++], "HOME=%s", home) == -1
        || asprintf(&env[i++], "LANG=C.UTF-8") == -1
        || asprintf(&env[i++], "TIDAL_DIRT_HOST=127.0.0.1") == -1
        || asprintf(&env[i++], "TIDAL_DIRT_PORT=%d", g->conf.relay_port)
           == -1
        || asprintf(&env[i++], "TIDAL_TEMPO_PORT=%d", tempo) == -1
        || asprintf(&env[i++], "TIDAL_CTRL_PORT=%d", g->conf.ctrl_port) == -1
        || asprintf(&env[i++], "TIDAL_LATENCY=%d", g->conf.latency) == -1
        || asprintf(&env[i++], "TIDAL_BEAT=%s", g->secret) == -1
        || asprintf(&env[i++], "TIDAL_REPORT_FD=%d", TIDAL_GHCI_REPORT_FD)
           == -1)
    {
        env[i - 1] = NULL;

        for (i = 0; env[i]; i++) {
            free(env[i]);
        }

        free(env);
        return -1;
    }

    env[i] = NULL;
    *envp = env;

    tidal_helper_log(TIDAL_LOG_DEBUG, "Tidal's tempo port is %d", tempo);

    return 0;
}


/*
 * A UDP port nobody uses now, for Tidal's tempo server: on a port taken
 * by another Tidal it would silently share (and change) that one's tempo.
 */

static int
tidal_ghci_free_port(void)
{
    int                 fd, port;
    socklen_t           len;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return 9160;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    len = sizeof(sin);
    port = 9160;

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0
        && getsockname(fd, (struct sockaddr *) &sin, &len) == 0)
    {
        port = ntohs(sin.sin_port);
    }

    close(fd);

    return port;
}


/*
 * In the child: it dies with the helper (a GHCi whose output pipes broke
 * can loop writing errors instead of exiting at the end of its input),
 * its own session, clean signals, fds 0 1 2 and the report pipe as 3,
 * exec.
 */

static void
tidal_ghci_child(char **argv, char **envp, pid_t parent, int in[2],
    int out[2], int err[2], int rep[2])
{
    int          sig, fd;
    char         file[4096], msg[512];
    size_t       n;
    sigset_t     set;
    const char  *path, *p, *end;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent) {
        _exit(127);
    }

    /* out of the way of 0 .. 3 first */

    fd = fcntl(rep[1], F_DUPFD, 10);

    if (fd == -1 || dup2(in[0], 0) == -1 || dup2(out[1], 1) == -1
        || dup2(err[1], 2) == -1 || dup2(fd, TIDAL_GHCI_REPORT_FD) == -1)
    {
        _exit(127);
    }

    if (setsid() == -1) {
        /* already a group leader: not fatal */
    }

    sigemptyset(&set);
    sigprocmask(SIG_SETMASK, &set, NULL);

    for (sig = 1; sig < NSIG; sig++) {
        signal(sig, SIG_DFL);
    }

    if (close_range(TIDAL_GHCI_REPORT_FD + 1, ~0U, 0) == -1) {
        for (sig = TIDAL_GHCI_REPORT_FD + 1; sig < 1024; sig++) {
            close(sig);
        }
    }

    if (chdir("/") == -1) {
        /* GHCi does not need it */
    }

    if (strchr(argv[0], '/') != NULL) {
        execve(argv[0], argv, envp);

    } else {
        path = envp[0] + sizeof("PATH=") - 1;

        while (*path) {
            end = strchr(path, ':');
            if (end == NULL) {
                end = path + strlen(path);
            }

            n = (size_t) (end - path);
            p = n ? path : ".";
            n = n ? n : 1;

            if (n + strlen(argv[0]) + 2 < sizeof(file)) {
                memcpy(file, p, n);
                file[n] = '/';
                strcpy(file + n + 1, argv[0]);
                execve(file, argv, envp);
            }

            path = *end ? end + 1 : end;
        }
    }

    n = (size_t) snprintf(msg, sizeof(msg), "tidal-helper: cannot run "
                          "\"%s\": %s\n", argv[0], strerror(errno));
    if (write(2, msg, n < sizeof(msg) ? n : sizeof(msg) - 1) == -1) {
        /* nobody to tell */
    }
}


static char *
tidal_ghci_read_file(const char *path, size_t *len, char *err,
    size_t errlen)
{
    int          fd;
    char        *buf;
    ssize_t      n;
    struct stat  st;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "cannot open boot file \"%s\": %s", path,
                 strerror(errno));
        return NULL;
    }

    buf = NULL;

    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "cannot stat boot file \"%s\": %s", path,
                 strerror(errno));
        goto done;
    }

    if (st.st_size > TIDAL_GHCI_BOOT_MAX) {
        snprintf(err, errlen, "boot file \"%s\" is larger than %d bytes",
                 path, TIDAL_GHCI_BOOT_MAX);
        goto done;
    }

    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    n = read(fd, buf, (size_t) st.st_size);

    if (n == -1) {
        snprintf(err, errlen, "cannot read boot file \"%s\": %s", path,
                 strerror(errno));
        free(buf);
        buf = NULL;
        goto done;
    }

    buf[n] = '\0';
    *len = (size_t) n;

done:

    close(fd);

    return buf;
}


/* -- jobs -------------------------------------------------------------- */


static void
tidal_ghci_next(tidal_ghci_t *g)
{
    int64_t            now;
    tidal_ghci_job_t  *job;

    if (g->state != TIDAL_GHCI_READY || g->cur != NULL || g->head == NULL) {
        return;
    }

    job = g->head;
    g->head = job->next;

    if (g->urgent_tail == job) {
        g->urgent_tail = NULL;
    }

    if (g->head == NULL) {
        g->tail = NULL;
    }

    job->next = NULL;
    job->id = ++g->next_id;

    g->cur = job;
    g->interrupted = 0;
    g->own_err = 0;
    g->interrupt_seen = 0;
    g->cur_out.len = 0;
    g->cur_fail.len = 0;

    /* a job that waited runs only until its expiry, or half a second */

    now = tidal_helper_msec();
    g->deadline = now + (job->timeout ? job->timeout : g->conf.eval_timeout);

    if (job->expires && g->deadline > job->expires) {
        g->deadline = job->expires > now + 500 ? job->expires : now + 500;
    }

    if (job->len) {
        if (tidal_ghci_write(g, job->text, job->len) != 0) {
            return;
        }

        if (job->text[job->len - 1] != '\n'
            && tidal_ghci_write(g, "\n", 1) != 0)
        {
            return;
        }
    }

    tidal_ghci_send_marker(g, job->id);
}


/*
 * Jobs that waited past their expiry are answered without running: taken
 * out first, so that the queue is whole when their callbacks run (and
 * may queue more).
 */

static void
tidal_ghci_expire(tidal_ghci_t *g, int64_t now)
{
    char               why[512];
    tidal_ghci_job_t  *job, **prev, *expired, **last;

    expired = NULL;
    last = &expired;
    prev = &g->head;

    while (*prev) {
        job = *prev;

        if (job->expires == 0 || now < job->expires) {
            prev = &job->next;
            continue;
        }

        *prev = job->next;
        job->next = NULL;
        *last = job;
        last = &job->next;
    }

    if (expired == NULL) {
        return;
    }

    g->tail = NULL;
    g->urgent_tail = NULL;

    for (job = g->head; job; job = job->next) {
        g->tail = job;

        if (job->urgent) {
            g->urgent_tail = job;
        }
    }

    if (g->state == TIDAL_GHCI_READY) {
        snprintf(why, sizeof(why), "%s was busy for longer than the eval "
                 "timeout; nothing was changed", g->name);

    } else if (g->state == TIDAL_GHCI_BOOTING) {
        snprintf(why, sizeof(why), "%s is still booting; nothing was "
                 "changed", g->name);

    } else {
        snprintf(why, sizeof(why), "%s is not running (%.300s); nothing was "
                 "changed", g->name, g->why);
    }

    while (expired) {
        job = expired;
        expired = job->next;

        if (job->done) {
            job->done(g, job, TIDAL_GHCI_GONE, why, strlen(why));
        }

        tidal_ghci_job_free(job);
    }
}


static void
tidal_ghci_send_marker(tidal_ghci_t *g, uint64_t id)
{
    char  line[96];
    int   n;

    n = snprintf(line, sizeof(line), "tidalMarker \"" TIDAL_GHCI_MARK
                 "%s:%llu@@\"\n", g->nonce, (unsigned long long) id);

    tidal_ghci_write(g, line, (size_t) n);
}


/* queues bytes for GHCi's stdin; -1 when GHCi is gone (and handled) */

static int
tidal_ghci_write(tidal_ghci_t *g, const char *p, size_t n)
{
    if (g->in < 0) {
        return -1;
    }

    if (g->wpos == g->wbuf.len) {
        g->wpos = 0;
        g->wbuf.len = 0;
    }

    if (tidal_ghci_buf_add(&g->wbuf, p, n, (size_t) -1) != 0) {
        tidal_ghci_lost(g, TIDAL_GHCI_HUNG, "out of memory writing to GHCi");
        return -1;
    }

    tidal_ghci_flush(g);

    return g->in < 0 ? -1 : 0;
}


static void
tidal_ghci_flush(tidal_ghci_t *g)
{
    ssize_t  n;
    char     why[128];

    while (g->in >= 0 && g->wpos < g->wbuf.len) {
        n = write(g->in, g->wbuf.data + g->wpos, g->wbuf.len - g->wpos);

        if (n > 0) {
            g->wpos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && errno == EAGAIN) {
            return;
        }

        /* a closed pipe means GHCi is gone, like end of its output */

        snprintf(why, sizeof(why), "%s: %s",
                 errno == EPIPE ? "GHCi exited, writing to it failed"
                                : "writing to GHCi failed",
                 strerror(errno));
        tidal_ghci_lost(g, g->state == TIDAL_GHCI_BOOTING ? TIDAL_GHCI_BOOT
                                                          : TIDAL_GHCI_EXITED,
                        why);
        return;
    }
}


/* -- output ------------------------------------------------------------ */


static void
tidal_ghci_read(tidal_ghci_t *g, int fd)
{
    int                which;
    char               buf[65536], why[128], *nl, *p;
    size_t             n;
    ssize_t            got;
    tidal_ghci_buf_t  *line;

    which = (fd == g->rep) ? 2 : (fd == g->err);

    got = read(fd, buf, sizeof(buf));

    if (got == -1 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }

    if (got <= 0) {
        snprintf(why, sizeof(why), "GHCi exited%s%s",
                 got ? ", reading its output failed: " : "",
                 got ? strerror(errno) : "");
        tidal_ghci_lost(g, g->state == TIDAL_GHCI_BOOTING ? TIDAL_GHCI_BOOT
                                                          : TIDAL_GHCI_EXITED,
                        why);
        return;
    }

    line = (which == 2) ? &g->rline : (which ? &g->eline : &g->oline);
    p = buf;
    n = (size_t) got;

    while (n > 0) {
        nl = memchr(p, '\n', n);

        if (nl == NULL) {
            if (line->len + n > TIDAL_GHCI_LINE_MAX) {
                /* cut an endless line */
                tidal_ghci_buf_add(line, p, TIDAL_GHCI_LINE_MAX - line->len,
                                   TIDAL_GHCI_LINE_MAX + 1);
                tidal_ghci_line(g, which, line->data, line->len);
                line->len = 0;

            } else if (tidal_ghci_buf_add(line, p, n, TIDAL_GHCI_LINE_MAX + 1)
                       != 0)
            {
                line->len = 0;
            }

            return;
        }

        if (line->len) {
            tidal_ghci_buf_add(line, p, (size_t) (nl - p),
                               TIDAL_GHCI_LINE_MAX + 1);
            tidal_ghci_line(g, which, line->data, line->len);
            line->len = 0;

        } else {
            tidal_ghci_line(g, which, p, (size_t) (nl - p));
        }

        n -= (size_t) (nl - p) + 1;
        p = nl + 1;

        if (g->pid == 0) {
            return;     /* lost meanwhile */
        }
    }
}


/* which: 0 stdout, 1 stderr, 2 the report pipe */

static void
tidal_ghci_line(tidal_ghci_t *g, int which, char *line, size_t len)
{
    uint64_t  id;
    int64_t   now;

    if (which == 2) {
        tidal_ghci_report(g, line, len);
        return;
    }

    if (tidal_ghci_marker(g, line, len, &id)) {
        if (which) {
            if (g->cur && id == g->cur->id) {
                g->own_err = 1;
            }

            g->err_id = id > g->err_id ? id : g->err_id;

        } else {
            g->out_id = id > g->out_id ? id : g->out_id;
        }

        tidal_ghci_check(g);
        return;
    }

    if (len >= 17 && memcmp(line, "Failed to send. ", 16) == 0) {
        now = tidal_helper_msec();

        if (g->send_warned == 0
            || now - g->send_warned >= TIDAL_GHCI_WARN_EVERY)
        {
            g->send_warned = now;
            tidal_helper_log(TIDAL_LOG_WARN, "Tidal cannot send to the OSC "
                             "relay: %.*s", (int) (len > 300 ? 300 : len),
                             line);
        }

        return;
    }

    if (!which) {
        tidal_helper_log(TIDAL_LOG_DEBUG, "ghci stdout: %.*s",
                         (int) (len > 300 ? 300 : len), line);
        return;
    }

    if (g->state == TIDAL_GHCI_BOOTING) {
        tidal_ghci_buf_add(&g->boot_out, line, len, TIDAL_GHCI_OUTPUT_MAX);
        tidal_ghci_buf_add(&g->boot_out, "\n", 1, TIDAL_GHCI_OUTPUT_MAX);

        if (tidal_ghci_has(line, len, "Variable not in scope: tidalMarker")) {
            /* its markers will never come */
            tidal_ghci_lost(g, TIDAL_GHCI_BOOT, "the boot file does not "
                            "define tidalMarker");
        }

        return;
    }

    if (g->cur && !g->own_err) {
        if (len == 12 && memcmp(line, "Interrupted.", 12) == 0) {
            g->interrupt_seen = 1;
        }

        tidal_ghci_buf_add(&g->cur_out, line, len, TIDAL_GHCI_OUTPUT_MAX);
        tidal_ghci_buf_add(&g->cur_out, "\n", 1, TIDAL_GHCI_OUTPUT_MAX);
        return;
    }

    /* nothing is decided on it: the guard keeps patterns from Tidal's
     * own error handling, and text may be a pattern's */

    tidal_helper_log(TIDAL_LOG_INFO, "%s says: %.*s", g->name,
                     (int) (len > 300 ? 300 : len), line);
}


/*
 * A line the boot file's code wrote to the report pipe: "ok TOKEN" ends
 * the job of that token well; "fail TOKEN ..." is a guard's or a check's
 * verdict, for the job of that token (its output) and for the owner.
 */

static void
tidal_ghci_report(tidal_ghci_t *g, char *line, size_t len)
{
    char      *p, *end;
    uint64_t   token;

    line[len] = '\0';
    p = line;

    if (len > 3 && memcmp(p, "ok ", 3) == 0) {
        p += 3;

    } else if (len > 5 && memcmp(p, "fail ", 5) == 0) {
        p += 5;

    } else {
        tidal_helper_log(TIDAL_LOG_WARN, "%s reported something unknown: "
                         "%.*s", g->name, (int) (len > 100 ? 100 : len),
                         line);
        return;
    }

    errno = 0;
    token = strtoull(p, &end, 10);

    if (end == p || errno != 0 || (*end != ' ' && *end != '\0')) {
        tidal_helper_log(TIDAL_LOG_WARN, "%s reported a bad token: %.*s",
                         g->name, (int) (len > 100 ? 100 : len), line);
        return;
    }

    if (line[0] == 'o') {
        if (g->cur && token != 0 && g->cur->token == token) {
            g->cur->reported = 1;
        }

        return;
    }

    if (g->cur && token != 0 && g->cur->token == token) {
        g->cur_fail.len = 0;
        tidal_ghci_buf_add(&g->cur_fail, line, len, TIDAL_GHCI_OUTPUT_MAX);
    }

    if (g->handler.report) {
        g->handler.report(g, line, len);
    }
}


/* a line ending with "@@tidal:NONCE:ID@@" */

static int
tidal_ghci_marker(tidal_ghci_t *g, const char *line, size_t len,
    uint64_t *id)
{
    size_t       n, i;
    uint64_t     v;
    const char  *p;

    if (len < 4 || memcmp(line + len - 2, "@@", 2) != 0) {
        return 0;
    }

    n = sizeof(TIDAL_GHCI_MARK) - 1 + 16 + 1;

    /* the digits before the closing "@@" */

    for (i = len - 2; i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9';
         i--)
    {
        /* void */
    }

    if (i == len - 2 || len - 2 - i > 19 || i < n) {
        return 0;
    }

    p = line + i - n;

    if (memcmp(p, TIDAL_GHCI_MARK, sizeof(TIDAL_GHCI_MARK) - 1) != 0
        || memcmp(p + sizeof(TIDAL_GHCI_MARK) - 1, g->nonce, 16) != 0
        || p[n - 1] != ':')
    {
        return 0;
    }

    v = 0;

    for ( /* void */ ; i < len - 2; i++) {
        v = v * 10 + (uint64_t) (line[i] - '0');
    }

    *id = v;

    return 1;
}


/*
 * Both streams have shown the marker of what is running: it is over.
 * What the block reported was written before its marker, so it is in
 * the pipe now: read it first.
 */

static void
tidal_ghci_check(tidal_ghci_t *g)
{
    uint64_t       seen;
    struct pollfd  pfd;

    seen = g->out_id < g->err_id ? g->out_id : g->err_id;

    if (g->state == TIDAL_GHCI_BOOTING && seen >= g->boot_id) {
        tidal_ghci_booted(g);
        return;
    }

    if (g->state == TIDAL_GHCI_READY && g->cur && seen >= g->cur->id) {

        while (g->rep >= 0 && g->pid != 0 && g->cur != NULL) {
            pfd.fd = g->rep;
            pfd.events = POLLIN;
            pfd.revents = 0;

            if (poll(&pfd, 1, 0) != 1) {
                break;
            }

            tidal_ghci_read(g, g->rep);
        }

        if (g->cur == NULL || g->pid == 0) {
            return;
        }

        tidal_ghci_finish(g);
        tidal_ghci_next(g);
    }
}


static void
tidal_ghci_finish(tidal_ghci_t *g)
{
    char                 *out;
    size_t                len;
    tidal_ghci_job_t     *job;
    tidal_ghci_status_e   status;

    job = g->cur;
    g->cur = NULL;
    g->next_health = tidal_helper_msec() + g->conf.health_interval;

    out = g->cur_out.data ? g->cur_out.data : "";
    len = g->cur_out.len;

    if (g->interrupted && !g->own_err) {

        /* the interrupt hit the marker, after the block was done */

        while (len >= 13 && memcmp(out + len - 13, "Interrupted.\n", 13)
                            == 0)
        {
            len -= 13;
        }
    }

    if (job->token && job->reported) {
        status = TIDAL_GHCI_OK;

    } else if (g->interrupted && g->own_err && g->interrupt_seen) {
        status = TIDAL_GHCI_TIMEOUT;

    } else if (job->token) {
        status = TIDAL_GHCI_FAILED;

        if (g->cur_fail.len) {
            out = g->cur_fail.data;
            len = g->cur_fail.len;
        }

    } else {
        status = tidal_pattern_failed(out, len) ? TIDAL_GHCI_FAILED
                                                : TIDAL_GHCI_OK;
    }

    if (out == g->cur_out.data && g->cur_out.data) {
        g->cur_out.data[len] = '\0';
    }

    if (job->done) {
        job->done(g, job, status, out, len);
    }

    tidal_ghci_job_free(job);
}


static void
tidal_ghci_booted(tidal_ghci_t *g)
{
    char    first[600];
    size_t  n;

    if (tidal_pattern_failed(g->boot_out.data ? g->boot_out.data : "",
                             g->boot_out.len))
    {
        n = g->boot_out.len < sizeof(first) - 1 ? g->boot_out.len
                                                : sizeof(first) - 1;
        memcpy(first, g->boot_out.data, n);
        first[n] = '\0';

        while (n > 0 && (first[n - 1] == '\n' || first[n - 1] == ' ')) {
            first[--n] = '\0';
        }

        tidal_ghci_lost(g, TIDAL_GHCI_BOOT,
                        first[0] == '\n' ? first + 1 : first);
        return;
    }

    g->state = TIDAL_GHCI_READY;
    g->next_health = tidal_helper_msec() + g->conf.health_interval;

    tidal_helper_log(TIDAL_LOG_INFO, "%s booted (GHCi pid %d, %lld ms)",
                     g->name, (int) g->pid,
                     (long long) (tidal_helper_msec() - g->started));

    if (g->handler.ready) {
        g->handler.ready(g);
    }

    tidal_ghci_next(g);
}


/* GHCi died, hung, broke or did not boot: end it, answer, say so */

static void
tidal_ghci_lost(tidal_ghci_t *g, tidal_ghci_loss_e how, const char *why)
{
    char   status[128], reason[900];

    if (g->pid == 0) {
        return;
    }

    tidal_ghci_kill(g, status, sizeof(status));

    if (how == TIDAL_GHCI_BOOT && g->boot_out.len
        && strstr(why, g->boot_out.data) == NULL)
    {
        snprintf(reason, sizeof(reason), "%s (%s): %.400s", why, status,
                 g->boot_out.data);

    } else {
        snprintf(reason, sizeof(reason), "%s (%s)", why, status);
    }

    tidal_helper_log(how == TIDAL_GHCI_EXITED ? TIDAL_LOG_WARN
                                              : TIDAL_LOG_ERR,
                     "%s: %s%s", g->name,
                     how == TIDAL_GHCI_BOOT ? "Tidal did not boot: " : "",
                     reason);

    g->state = TIDAL_GHCI_DOWN;

    if (how == TIDAL_GHCI_BOOT) {
        snprintf(g->why, sizeof(g->why), "Tidal did not boot: %s", reason);

    } else {
        snprintf(g->why, sizeof(g->why), "GHCi stopped (%s); nothing was "
                 "changed", reason);
    }

    tidal_ghci_fail_all(g, g->why);

    if (g->handler.lost) {
        g->handler.lost(g, how, reason);
    }
}


/* SIGKILL to GHCi's session, reap it, close the pipes */

static void
tidal_ghci_kill(tidal_ghci_t *g, char *status, size_t len)
{
    int      st;
    char     buf[4096];
    pid_t    rc;
    ssize_t  n;

    snprintf(status, len, "no process");

    if (g->pid > 0) {
        kill(-g->pid, SIGKILL);
        kill(g->pid, SIGKILL);

        do {
            rc = waitpid(g->pid, &st, 0);
        } while (rc == -1 && errno == EINTR);

        if (rc == g->pid && WIFEXITED(st)) {
            snprintf(status, len, "exit status %d", WEXITSTATUS(st));

        } else if (rc == g->pid && WIFSIGNALED(st)) {
            snprintf(status, len, "signal %d%s", WTERMSIG(st),
                     WTERMSIG(st) == SIGKILL ? ", SIGKILL" : "");

        } else {
            snprintf(status, len, "status unknown");
        }

        g->pid = 0;
    }

    /*
     * What a GHCi that died while booting said last (it is gone: the
     * pipe ends), e.g. why it could not even be run.
     */

    if (g->state == TIDAL_GHCI_BOOTING && g->err >= 0
        && fcntl(g->err, F_SETFL, O_NONBLOCK) == 0)
    {
        if (g->eline.len) {
            tidal_ghci_buf_add(&g->boot_out, g->eline.data, g->eline.len,
                               TIDAL_GHCI_OUTPUT_MAX);
        }

        while ((n = read(g->err, buf, sizeof(buf))) > 0) {
            tidal_ghci_buf_add(&g->boot_out, buf, (size_t) n,
                               TIDAL_GHCI_OUTPUT_MAX);
        }
    }

    if (g->in >= 0) {
        close(g->in);
        g->in = -1;
    }

    if (g->out >= 0) {
        close(g->out);
        g->out = -1;
    }

    if (g->err >= 0) {
        close(g->err);
        g->err = -1;
    }

    if (g->rep >= 0) {
        close(g->rep);
        g->rep = -1;
    }

    g->wbuf.len = 0;
    g->wpos = 0;
    g->oline.len = 0;
    g->eline.len = 0;
    g->rline.len = 0;
}


/* the running job and every waiting one: GONE, with why */

static void
tidal_ghci_fail_all(tidal_ghci_t *g, const char *why)
{
    tidal_ghci_job_t  *job;

    job = g->cur;
    g->cur = NULL;

    if (job) {
        if (job->done) {
            job->done(g, job, TIDAL_GHCI_GONE, why, strlen(why));
        }

        tidal_ghci_job_free(job);
    }

    while (g->head) {
        job = g->head;
        g->head = job->next;

        if (job->done) {
            job->done(g, job, TIDAL_GHCI_GONE, why, strlen(why));
        }

        tidal_ghci_job_free(job);
    }

    g->tail = NULL;
    g->urgent_tail = NULL;
}


/* appends, keeping at most max bytes (the rest is dropped) */

static int
tidal_ghci_buf_add(tidal_ghci_buf_t *b, const char *p, size_t n, size_t max)
{
    char    *data;
    size_t   size;

    if (b->len >= max) {
        return 0;
    }

    if (n > max - b->len) {
        n = max - b->len;
    }

    if (b->len + n + 1 > b->size) {
        size = b->size ? b->size : 256;

        while (size < b->len + n + 1) {
            size *= 2;
        }

        data = realloc(b->data, size);
        if (data == NULL) {
            return -1;
        }

        b->data = data;
        b->size = size;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';

    return 0;
}


static void
tidal_ghci_buf_free(tidal_ghci_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->size = 0;
}


static int
tidal_ghci_has(const char *text, size_t len, const char *what)
{
    return memmem(text, len, what, strlen(what)) != NULL;
}

/* bytes random bytes as 2 * bytes hex digits */

static int
tidal_ghci_random_hex(char *out, size_t bytes)
{
    size_t         i;
    unsigned char  rnd[32];

    if (bytes > sizeof(rnd)
        || getrandom(rnd, bytes, 0) != (ssize_t) bytes)
    {
        tidal_helper_log(TIDAL_LOG_ERR, "getrandom() failed: %s",
                         strerror(errno));
        return -1;
    }

    for (i = 0; i < bytes; i++) {
        sprintf(out + 2 * i, "%02x", rnd[i]);
    }

    return 0;
}
