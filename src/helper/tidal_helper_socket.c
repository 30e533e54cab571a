/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * tidal-helper --socket: the helper nginx starts, one per nginx.  Every
 * worker connects to its unix socket and speaks newline-delimited
 * JSON-RPC: a tidal/hello first (the zone's state, the worker's
 * settings), then tools/call for the music tools.  Answers go back to the
 * worker that asked; events, as facts the zone numbers, and the state
 * after each change go to every worker, each message with a "tidal/hid"
 * so that exactly one of them publishes it into the zone (the link's
 * names: src/core/tidal_protocol.h).  The helper exits, with its GHCi, when
 * the nginx master is gone.
 */


#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "tidal_helper_log.h"
#include "tidal_helper_tools.h"
#include "tidal_helper_socket.h"
#include "tidal_ghci.h"
#include "tidal_super.h"
#include "tidal_room.h"
#include "tidal_lines.h"
#include "tidal_protocol.h"


#define TIDAL_HELPER_CONNS_MAX        256
#define TIDAL_HELPER_IN_MAX           (32 * 1024 * 1024)  /* a hello */
#define TIDAL_HELPER_OUT_MAX          (64 * 1024 * 1024)
#define TIDAL_HELPER_MASTER_POLL      1000                /* ms */
#define TIDAL_HELPER_EARLY_MAX        32

/*
 * A worker with this much still to read gets no sound until it has read
 * it: sound is dropped, never what the room's collaboration needs.
 */
#define TIDAL_HELPER_SOUND_BACKLOG    (1024 * 1024)


typedef struct {
    int            fd;
    pid_t          pid;            /* the worker's, from SO_PEERCRED */
    char           name[32];       /* "worker PID", for the log */
    tidal_lines_t  in;
    char          *out;
    size_t         out_len;
    size_t         out_size;
    unsigned       hello:1;
    unsigned       closing:1;      /* drop after the output is sent */
} tidal_helper_conn_t;


typedef struct {
    tidal_helper_t                *h;
    tidal_super_t                 *ghci;
    const tidal_helper_socket_conf_t  *conf;

    int                            listen;
    int                            lock;
    int                            pidfd;        /* the master's, or -1 */

    tidal_helper_conn_t           *conns[TIDAL_HELPER_CONNS_MAX];
    int                            nconns;
    tidal_helper_conn_t           *current;      /* whose message runs */
    tidal_helper_conn_t           *answered;     /* got an answer */

    uint64_t                       hid;          /* the last message's */
    uint64_t                       sound_dropped; /* batches, for the log */
    char                           status[128];  /* GHCi's, last sent */
    uint64_t                       generation;   /* the newest seen */

    /* events from before any worker said hello, e.g. a failed boot */
    char                          *early[TIDAL_HELPER_EARLY_MAX];
    int                            nearly;
    unsigned                       hellos:1;     /* a worker said hello */
    unsigned                       state_due:1;  /* events since it went */

    unsigned                       restart:1;    /* exit once flushed */
} tidal_helper_server_t;


static int tidal_helper_socket_open(tidal_helper_server_t *srv);
static void tidal_helper_socket_accept(tidal_helper_server_t *srv);
static void tidal_helper_socket_message(void *data, char *msg, size_t len);
static void tidal_helper_socket_hello(tidal_helper_server_t *srv,
    tidal_helper_conn_t *c, json_t *msg);
static void tidal_helper_socket_send(tidal_helper_t *h, const char *text,
    size_t len);
static uint64_t tidal_helper_socket_publish(tidal_helper_t *h,
    const char *type, json_t *fields);
static void tidal_helper_socket_sound(tidal_helper_t *h, const char *text,
    size_t len);
static void tidal_helper_socket_state(tidal_helper_server_t *srv);
static uint64_t tidal_helper_socket_hid(tidal_helper_server_t *srv);
static void tidal_helper_socket_put(tidal_helper_conn_t *c,
    const char *text, size_t len);
static void tidal_helper_socket_json(tidal_helper_conn_t *c, json_t *msg);
static int tidal_helper_socket_broadcast(tidal_helper_server_t *srv,
    json_t *msg);
static int tidal_helper_socket_broadcast_text(tidal_helper_server_t *srv,
    const char *text, size_t len);
static int tidal_helper_socket_flush(tidal_helper_conn_t *c);
static void tidal_helper_socket_close(tidal_helper_server_t *srv, int i);
static int tidal_helper_socket_master_alive(tidal_helper_server_t *srv);


/* the helper's send() sees only h: the one server of this process */
static tidal_helper_server_t  *tidal_helper_server;

static const char  tidal_helper_socket_initialize[] =
    "{\"jsonrpc\":\"2.0\",\"id\":\"0:0\",\"method\":\"initialize\","
    "\"params\":{\"protocolVersion\":\"" TIDAL_MCP_LATEST_VERSION "\","
    "\"capabilities\":{},\"clientInfo\":{\"name\":\"nginx\","
    "\"version\":\"" TIDAL_HELPER_VERSION "\"}}}";

static const char  tidal_helper_socket_initialized[] =
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";


int
tidal_helper_socket(tidal_helper_t *h, tidal_super_t *g,
    const tidal_helper_socket_conf_t *conf, volatile sig_atomic_t *quit)
{
    int                     i, n, nfds, base, nc, timeout, rc;
    struct pollfd           pfd[2 + TIDAL_HELPER_CONNS_MAX
                                + TIDAL_SUPER_NFDS];
    tidal_helper_server_t   srv;

    memset(&srv, 0, sizeof(srv));
    srv.h = h;
    srv.ghci = g;
    srv.conf = conf;
    srv.listen = -1;
    srv.lock = -1;
    srv.pidfd = -1;
    srv.generation = conf->generation;

    /* event numbers grow across helper restarts: microseconds */

    srv.hid = (uint64_t) tidal_helper_epoch_msec() * 1000;

    tidal_helper_server = &srv;
    h->send = tidal_helper_socket_send;
    h->publish = tidal_helper_socket_publish;
    h->sound = tidal_helper_socket_sound;

    /* one MCP session serves every worker: open it here, answer nobody */

    tidal_helper_message(h, tidal_helper_socket_initialize,
                         sizeof(tidal_helper_socket_initialize) - 1);
    tidal_helper_message(h, tidal_helper_socket_initialized,
                         sizeof(tidal_helper_socket_initialized) - 1);

    rc = tidal_helper_socket_open(&srv);
    if (rc != 0) {
        goto done;
    }

    tidal_super_start(g);

    while (!*quit) {
        nfds = 0;

        pfd[nfds].fd = srv.listen;
        pfd[nfds].events = POLLIN;
        nfds++;

        if (srv.pidfd != -1) {
            pfd[nfds].fd = srv.pidfd;
            pfd[nfds].events = POLLIN;
            nfds++;
        }

        base = nfds;
        nc = srv.nconns;

        for (i = 0; i < srv.nconns; i++) {
            pfd[nfds].fd = srv.conns[i]->fd;
            pfd[nfds].events = POLLIN
                               | (srv.conns[i]->out_len ? POLLOUT : 0);
            nfds++;
        }

        n = tidal_super_pollfds(g, pfd + nfds);
        timeout = tidal_super_timeout(g);

        if (srv.pidfd == -1
            && (timeout == -1 || timeout > TIDAL_HELPER_MASTER_POLL))
        {
            timeout = TIDAL_HELPER_MASTER_POLL;
        }

        if (poll(pfd, (nfds_t) (nfds + n), timeout) == -1) {
            if (errno == EINTR) {
                continue;
            }

            tidal_helper_log(TIDAL_LOG_ERR, "poll() failed: %s",
                             strerror(errno));
            rc = 1;
            break;
        }

        if (!tidal_helper_socket_master_alive(&srv)) {
            tidal_helper_log(TIDAL_LOG_INFO, "the nginx master (pid %d) is "
                             "gone", (int) conf->master);
            break;
        }

        /*
         * Backwards: closing i moves the last connection, already seen,
         * into its place, so pfd[base + i] stays connection i's.
         */

        for (i = nc - 1; i >= 0; i--) {
            if (pfd[base + i].revents == 0) {
                continue;
            }

            if ((pfd[base + i].revents & POLLOUT)
                && tidal_helper_socket_flush(srv.conns[i]) != 0)
            {
                tidal_helper_socket_close(&srv, i);
                continue;
            }

            if (pfd[base + i].revents & ~POLLOUT) {
                srv.current = srv.conns[i];

                rc = tidal_lines_read(&srv.conns[i]->in, srv.conns[i]->fd,
                                      srv.conns[i]->name,
                                      tidal_helper_socket_message, &srv);

                srv.current = NULL;

                if (rc != 0) {
                    tidal_helper_socket_close(&srv, i);
                }

                rc = 0;
            }
        }

        if (pfd[0].revents) {
            tidal_helper_socket_accept(&srv);
        }

        tidal_super_process(g, pfd + nfds, n);

        tidal_helper_socket_state(&srv);

        /* the worker a client waits on first */

        if (srv.answered) {
            for (i = 0; i < srv.nconns; i++) {
                if (srv.conns[i] == srv.answered) {
                    (void) tidal_helper_socket_flush(srv.conns[i]);
                }
            }

            srv.answered = NULL;
        }

        for (i = srv.nconns - 1; i >= 0; i--) {
            if (tidal_helper_socket_flush(srv.conns[i]) != 0
                || (srv.conns[i]->closing && srv.conns[i]->out_len == 0))
            {
                tidal_helper_socket_close(&srv, i);
            }
        }

        if (srv.restart && srv.nconns == 0) {
            tidal_helper_log(TIDAL_LOG_INFO, "exiting for nginx to start "
                             "the helper with its new settings");
            break;
        }

        if (srv.restart) {
            for (i = 0; i < srv.nconns; i++) {
                srv.conns[i]->closing = 1;
            }
        }
    }

    if (*quit) {
        tidal_helper_log(TIDAL_LOG_INFO, "signal %d", (int) *quit);
    }

done:

    while (srv.nconns) {
        tidal_helper_socket_close(&srv, srv.nconns - 1);
    }

    for (i = 0; i < srv.nearly; i++) {
        free(srv.early[i]);
    }

    if (srv.listen != -1) {
        (void) unlink(conf->path);
        (void) close(srv.listen);
    }

    if (srv.pidfd != -1) {
        (void) close(srv.pidfd);
    }

    /* the lock goes last: a new helper may start once the socket is gone */

    if (srv.lock != -1) {
        (void) close(srv.lock);
    }

    tidal_helper_server = NULL;

    return rc;
}


/*
 * One helper per socket path, by a lock nobody else's child inherits;
 * the socket is the worker user's alone.
 */

static int
tidal_helper_socket_open(tidal_helper_server_t *srv)
{
    int                  fd;
    char                 lock[sizeof(((struct sockaddr_un *) 0)->sun_path)
                              + 8];
    mode_t               mask;
    struct sockaddr_un   sa;

    if (strlen(srv->conf->path) >= sizeof(sa.sun_path)) {
        tidal_helper_log(TIDAL_LOG_ERR, "socket path \"%s\" is longer than "
                         "%d bytes", srv->conf->path,
                         (int) sizeof(sa.sun_path) - 1);
        return 1;
    }

    snprintf(lock, sizeof(lock), "%s.lock", srv->conf->path);

    srv->lock = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (srv->lock == -1) {
        tidal_helper_log(TIDAL_LOG_ERR, "open(\"%s\") failed: %s", lock,
                         strerror(errno));
        return 1;
    }

    if (flock(srv->lock, LOCK_EX | LOCK_NB) == -1) {
        tidal_helper_log(TIDAL_LOG_INFO, "another tidal-helper serves %s",
                         srv->conf->path);
        return 3;
    }

    srv->pidfd = (int) syscall(SYS_pidfd_open, srv->conf->master, 0);

    if (srv->pidfd == -1 && errno == ESRCH) {
        tidal_helper_log(TIDAL_LOG_ERR, "the nginx master (pid %d) is "
                         "already gone", (int) srv->conf->master);
        return 1;
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        tidal_helper_log(TIDAL_LOG_ERR, "socket() failed: %s",
                         strerror(errno));
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, srv->conf->path);

    (void) unlink(srv->conf->path);

    mask = umask(0177);

    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1) {
        umask(mask);
        tidal_helper_log(TIDAL_LOG_ERR, "bind(\"%s\") failed: %s",
                         srv->conf->path, strerror(errno));
        (void) close(fd);
        return 1;
    }

    umask(mask);

    if (listen(fd, 128) == -1) {
        tidal_helper_log(TIDAL_LOG_ERR, "listen() failed: %s",
                         strerror(errno));
        (void) unlink(srv->conf->path);
        (void) close(fd);
        return 1;
    }

    srv->listen = fd;

    tidal_helper_log(TIDAL_LOG_INFO, "serving nginx (master %d) on %s, "
                     "settings %s", (int) srv->conf->master,
                     srv->conf->path, srv->conf->config);

    return 0;
}


static void
tidal_helper_socket_accept(tidal_helper_server_t *srv)
{
    int                   fd;
    socklen_t             len;
    struct ucred          cred;
    tidal_helper_conn_t  *c;

    for ( ;; ) {
        fd = accept4(srv->listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                tidal_helper_log(TIDAL_LOG_WARN, "accept() failed: %s",
                                 strerror(errno));
            }

            return;
        }

        len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
            tidal_helper_log(TIDAL_LOG_WARN, "SO_PEERCRED failed: %s",
                             strerror(errno));
            (void) close(fd);
            continue;
        }

        /* the socket is 0600 already; this holds if its mode is changed */

        if (cred.uid != geteuid() && cred.uid != 0) {
            tidal_helper_log(TIDAL_LOG_WARN, "refused a connection from "
                             "uid %d (pid %d): not nginx's worker user",
                             (int) cred.uid, (int) cred.pid);
            (void) close(fd);
            continue;
        }

        c = calloc(1, sizeof(tidal_helper_conn_t));

        if (c == NULL || srv->nconns == TIDAL_HELPER_CONNS_MAX) {
            tidal_helper_log(TIDAL_LOG_ERR, "refused a connection from pid "
                             "%d: %s", (int) cred.pid,
                             c ? "too many connections" : "out of memory");
            free(c);
            (void) close(fd);
            continue;
        }

        c->fd = fd;
        c->pid = cred.pid;
        c->in.max = TIDAL_HELPER_IN_MAX;
        snprintf(c->name, sizeof(c->name), "worker %d", (int) cred.pid);
        srv->conns[srv->nconns++] = c;

        tidal_helper_log(TIDAL_LOG_DEBUG, "worker %d connected",
                         (int) c->pid);
    }
}


/* a message from the worker srv->current */

static void
tidal_helper_socket_message(void *data, char *msg, size_t len)
{
    tidal_helper_server_t *srv = data;

    json_t               *root, *who;
    const char           *method;
    json_error_t          err;
    tidal_helper_conn_t  *c;

    c = srv->current;

    root = json_loadb(msg, len, 0, &err);

    if (root == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "worker %d sent bad JSON: %s",
                         (int) c->pid, err.text);
        return;
    }

    method = json_string_value(json_object_get(root, "method"));

    if (method && strcmp(method, TIDAL_PROTOCOL_HELLO) == 0) {
        tidal_helper_socket_hello(srv, c, root);
        json_decref(root);
        return;
    }

    /* the worker has checked the caller's role and names who it is */

    who = json_object_get(json_object_get(json_object_get(root, "params"),
                                          "_meta"),
                          TIDAL_META_WHO);

    srv->h->who = json_string_value(who);

    tidal_helper_message(srv->h, msg, len);

    srv->h->who = NULL;

    json_decref(root);
}


/*
 * A worker's first message.  The first one after the helper started
 * brings the zone's state, which is played at once; a newer nginx
 * generation with other settings makes the helper exit so that nginx
 * starts one with them.
 */

static void
tidal_helper_socket_hello(tidal_helper_server_t *srv, tidal_helper_conn_t *c,
    json_t *msg)
{
    int          i, restart;
    char        *text, err[256];
    json_t      *params, *state, *reply;
    uint64_t     generation;
    const char  *config;

    params = json_object_get(msg, "params");
    generation = (uint64_t) json_integer_value(json_object_get(params,
                                                               "generation"));
    config = json_string_value(json_object_get(params, "config"));
    state = json_object_get(params, "state");

    restart = 0;

    if (json_integer_value(json_object_get(params, "protocol"))
        != TIDAL_PROTOCOL_VERSION)
    {
        tidal_helper_log(TIDAL_LOG_WARN, "worker %d speaks another "
                         "protocol: the helper restarts for it",
                         (int) c->pid);
        restart = 1;

    } else if (generation > srv->generation && config
               && strcmp(config, srv->conf->config) != 0)
    {
        tidal_helper_log(TIDAL_LOG_INFO, "nginx reloaded with other helper "
                         "settings (%s): the helper restarts", config);
        restart = 1;
    }

    if (generation > srv->generation) {
        srv->generation = generation;
    }

    if (!restart && !srv->h->adopted && state) {
        text = json_dumps(state, JSON_COMPACT);

        if (text == NULL
            || tidal_helper_adopt(srv->h, text, strlen(text), err,
                                  sizeof(err)) != 0)
        {
            tidal_helper_log(TIDAL_LOG_ERR, "the zone's state from worker %d "
                             "is unusable: %s", (int) c->pid,
                             text ? err : "out of memory");
        }

        free(text);
    }

    c->hello = 1;
    srv->hellos = 1;

    reply = json_pack("{s:s, s:O, s:{s:i, s:I, s:s, s:b}}",
                      "jsonrpc", "2.0", "id", json_object_get(msg, "id"),
                      "result", "protocol", TIDAL_PROTOCOL_VERSION,
                      "generation", (json_int_t) srv->generation,
                      "config", srv->conf->config, "restart", restart);

    tidal_helper_socket_json(c, reply);
    json_decref(reply);

    /*
     * Every worker gets them, as it gets every event: the first to bring
     * one publishes it, and none can be overtaken by a later state.
     */

    for (i = 0; i < srv->nearly; i++) {
        tidal_helper_socket_put(c, srv->early[i], strlen(srv->early[i]));
    }

    if (restart) {
        srv->restart = 1;
    }

    /* the newcomer learns the state as it is */

    srv->state_due = 1;
}


/*
 * The helper's send(), which only answers in socket mode (events take
 * h->publish()): to the worker whose message runs, or to the one its id,
 * "PID:N", names.
 */

static void
tidal_helper_socket_send(tidal_helper_t *h, const char *text, size_t len)
{
    int                     i;
    long                    pid;
    char                   *end;
    json_t                 *msg;
    const char             *sid;
    tidal_helper_server_t  *srv;

    srv = tidal_helper_server;

    if (srv->current) {
        tidal_helper_socket_put(srv->current, text, len);
        srv->answered = srv->current;
        return;
    }

    msg = json_loadb(text, len, 0, NULL);
    if (msg == NULL) {
        return;
    }

    sid = json_string_value(json_object_get(msg, "id"));
    end = NULL;
    pid = sid ? strtol(sid, &end, 10) : 0;

    if (json_object_get(msg, "method") != NULL || pid <= 0 || *end != ':') {
        json_decref(msg);
        return;
    }

    for (i = 0; i < srv->nconns; i++) {
        if (srv->conns[i]->pid == pid) {
            tidal_helper_socket_put(srv->conns[i], text, len);
            srv->answered = srv->conns[i];
            break;
        }
    }

    json_decref(msg);
}


/*
 * An event as a fact, not numbered: its type, fields and the tidal/hid
 * that names it, to every worker, serialized once; the first worker to
 * bring it numbers it in the zone.  fields is stolen.
 */

static uint64_t
tidal_helper_socket_publish(tidal_helper_t *h, const char *type,
    json_t *fields)
{
    char                   *text;
    size_t                  len;
    json_t                 *msg;
    uint64_t                hid;
    tidal_helper_server_t  *srv;

    srv = tidal_helper_server;
    hid = tidal_helper_socket_hid(srv);

    if (json_object_set_new(fields, TIDAL_META_HID,
                            json_integer((json_int_t) hid))
        != 0)
    {
        json_decref(fields);
        fields = NULL;
    }

    msg = fields ? json_pack("{s:s, s:s+, s:o}", "jsonrpc", "2.0",
                             "method", TIDAL_PROTOCOL_EVENT, type,
                             "params", fields)
                 : NULL;

    text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

    json_decref(msg);

    if (text == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory telling nginx of %s",
                         type);
        return hid;
    }

    len = strlen(text);
    srv->state_due = 1;

    /* nobody to tell yet: each worker gets it with its hello */

    if (tidal_helper_socket_broadcast_text(srv, text, len) == 0
        && !srv->hellos && srv->nearly < TIDAL_HELPER_EARLY_MAX)
    {
        srv->early[srv->nearly++] = text;

    } else {
        free(text);
    }

    return hid;
}


/*
 * A batch of the room's sound to every worker that said hello and keeps
 * up; it is not kept for the ones that come later.
 */

static void
tidal_helper_socket_sound(tidal_helper_t *h, const char *text, size_t len)
{
    int                     i;
    tidal_helper_conn_t    *c;
    tidal_helper_server_t  *srv;

    srv = tidal_helper_server;

    for (i = 0; i < srv->nconns; i++) {
        c = srv->conns[i];

        if (!c->hello) {
            continue;
        }

        if (c->out_len > TIDAL_HELPER_SOUND_BACKLOG) {
            if (srv->sound_dropped++ % 1000 == 0) {
                tidal_helper_log(TIDAL_LOG_WARN, "worker %d is behind: "
                                 "%llu batch(es) of sound dropped so far",
                                 (int) c->pid,
                                 (unsigned long long) srv->sound_dropped);
            }

            continue;
        }

        tidal_helper_socket_put(c, text, len);
    }
}


/* msg to every worker that said hello, serialized once; how many */

static int
tidal_helper_socket_broadcast(tidal_helper_server_t *srv, json_t *msg)
{
    int    n;
    char  *text;

    text = json_dumps(msg, JSON_COMPACT);

    if (text == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory sending to the "
                         "workers");
        return 0;
    }

    n = tidal_helper_socket_broadcast_text(srv, text, strlen(text));

    free(text);

    return n;
}


static int
tidal_helper_socket_broadcast_text(tidal_helper_server_t *srv,
    const char *text, size_t len)
{
    int  i, n;

    n = 0;

    for (i = 0; i < srv->nconns; i++) {
        if (srv->conns[i]->hello) {
            tidal_helper_socket_put(srv->conns[i], text, len);
            n++;
        }
    }

    return n;
}


/*
 * After events or when GHCi comes and goes: every worker gets the state,
 * numbered too.
 */

static void
tidal_helper_socket_state(tidal_helper_server_t *srv)
{
    json_t      *msg;
    const char  *status;

    status = tidal_super_status(srv->ghci);

    if ((!srv->state_due && strcmp(srv->status, status) == 0)
        || srv->nconns == 0)
    {
        return;
    }

    srv->state_due = 0;
    snprintf(srv->status, sizeof(srv->status), "%s", status);

    /* the history is the zone's: each event is in it already */

    msg = json_pack("{s:s, s:s, s:{s:I, s:o, s:s, s:i}}",
                    "jsonrpc", "2.0", "method", TIDAL_PROTOCOL_STATE,
                    "params",
                    TIDAL_META_HID, (json_int_t) tidal_helper_socket_hid(srv),
                    "state", tidal_room_document(&srv->h->room, 0),
                    "ghci", status,
                    "ghci_pid", tidal_super_pid(srv->ghci));
    if (msg == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory sending the state");
        return;
    }

    (void) tidal_helper_socket_broadcast(srv, msg);

    json_decref(msg);
}


static uint64_t
tidal_helper_socket_hid(tidal_helper_server_t *srv)
{
    uint64_t  now;

    now = (uint64_t) tidal_helper_epoch_msec() * 1000;

    srv->hid = (now > srv->hid) ? now : srv->hid + 1;

    return srv->hid;
}


static void
tidal_helper_socket_json(tidal_helper_conn_t *c, json_t *msg)
{
    char  *text;

    text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

    if (text == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory sending to worker %d",
                         (int) c->pid);
        return;
    }

    tidal_helper_socket_put(c, text, strlen(text));
    free(text);
}


/* queues a line; a worker that stops reading is dropped, not waited for */

static void
tidal_helper_socket_put(tidal_helper_conn_t *c, const char *text, size_t len)
{
    char    *data;
    size_t   size;

    if (c->closing) {
        return;
    }

    if (c->out_len + len + 1 > TIDAL_HELPER_OUT_MAX) {
        tidal_helper_log(TIDAL_LOG_ERR, "worker %d does not read: dropped",
                         (int) c->pid);
        c->closing = 1;
        c->out_len = 0;
        return;
    }

    if (c->out_size < c->out_len + len + 1) {
        size = c->out_size ? c->out_size : 4096;

        while (size < c->out_len + len + 1) {
            size *= 2;
        }

        data = realloc(c->out, size);
        if (data == NULL) {
            tidal_helper_log(TIDAL_LOG_ERR, "out of memory sending to "
                             "worker %d", (int) c->pid);
            c->closing = 1;
            c->out_len = 0;
            return;
        }

        c->out = data;
        c->out_size = size;
    }

    memcpy(c->out + c->out_len, text, len);
    c->out[c->out_len + len] = '\n';
    c->out_len += len + 1;
}


static int
tidal_helper_socket_flush(tidal_helper_conn_t *c)
{
    ssize_t  n;

    while (c->out_len) {
        n = write(c->fd, c->out, c->out_len);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && errno == EAGAIN) {
            return 0;
        }

        if (n <= 0) {
            return -1;
        }

        memmove(c->out, c->out + n, c->out_len - (size_t) n);
        c->out_len -= (size_t) n;
    }

    return 0;
}


static void
tidal_helper_socket_close(tidal_helper_server_t *srv, int i)
{
    tidal_helper_conn_t  *c;

    c = srv->conns[i];

    if (srv->answered == c) {
        srv->answered = NULL;
    }

    (void) close(c->fd);
    tidal_lines_free(&c->in);
    free(c->out);
    free(c);

    srv->conns[i] = srv->conns[--srv->nconns];
}


/* a pidfd turns readable when the master exits; without one, ask */

static int
tidal_helper_socket_master_alive(tidal_helper_server_t *srv)
{
    struct pollfd  pfd;

    if (srv->pidfd != -1) {
        pfd.fd = srv->pidfd;
        pfd.events = POLLIN;
        pfd.revents = 0;

        return poll(&pfd, 1, 0) == 0;
    }

    return kill(srv->conf->master, 0) == 0 || errno == EPERM;
}
