/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * ngx_tidal: the GHCi helper's supervision.  Every worker connects to
 * the helper's unix socket and starts the helper when nobody serves it
 * (the helper's own lock keeps it to one per nginx); music tool calls go
 * there and their answers come back to the client that asked; the
 * helper's events, facts without numbers, and its state reach the zone
 * through whichever worker brings them first, and the zone numbers the
 * events.
 */


#include "ngx_http_tidal.h"
#include "tidal_tools.h"

#include <sys/file.h>
#include <sys/un.h>


#define NGX_HTTP_TIDAL_HELPER_IN_MAX     (32 * 1024 * 1024)
#define NGX_HTTP_TIDAL_HELPER_OUT_MAX    (32 * 1024 * 1024)
#define NGX_HTTP_TIDAL_HELPER_RETRY      100       /* ms between tries */
#define NGX_HTTP_TIDAL_HELPER_RESPAWN    1000      /* ms between spawns */
#define NGX_HTTP_TIDAL_CALLS_PER_CLIENT  8
#define NGX_HTTP_TIDAL_CALLS_MAX         4096


/* a tool call the helper has not answered yet */
typedef struct {
    ngx_queue_t                  queue;
    ngx_uint_t                   n;
    ngx_http_tidal_ws_t         *ws;       /* NULL: the client left */
    json_t                      *id;       /* the client's request id */
    unsigned                     state:1;  /* TIDAL_TOOL_OP_STATE */
} ngx_http_tidal_call_t;


typedef struct {
    ngx_http_tidal_main_conf_t  *tmcf;
    ngx_connection_t            *c;
    ngx_event_t                  retry;
    ngx_log_t                   *log;

    u_char                      *in;
    size_t                       in_len;
    size_t                       in_size;
    u_char                      *out;
    size_t                       out_len;
    size_t                       out_size;

    ngx_queue_t                  calls;
    ngx_uint_t                   ncalls;
    ngx_uint_t                   next_call;

    ngx_msec_t                   spawned;  /* when we last started one */
    unsigned                     ready:1;  /* the hello is answered */
    unsigned                     exiting:1;
} ngx_http_tidal_helper_t;


static void ngx_http_tidal_helper_retry_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_tidal_helper_connect(ngx_http_tidal_helper_t *hp);
static ngx_int_t ngx_http_tidal_helper_running(ngx_http_tidal_helper_t *hp);
static ngx_int_t ngx_http_tidal_helper_spawn(ngx_http_tidal_helper_t *hp);
static void ngx_http_tidal_helper_exec(ngx_http_tidal_main_conf_t *tmcf,
    ngx_pid_t master);
static ngx_int_t ngx_http_tidal_helper_hello(ngx_http_tidal_helper_t *hp);
static void ngx_http_tidal_helper_read_handler(ngx_event_t *rev);
static void ngx_http_tidal_helper_write_handler(ngx_event_t *wev);
static void ngx_http_tidal_helper_message(ngx_http_tidal_helper_t *hp,
    u_char *msg, size_t len);
static void ngx_http_tidal_helper_answer(ngx_http_tidal_helper_t *hp,
    json_t *msg);
static void ngx_http_tidal_helper_event(ngx_http_tidal_helper_t *hp,
    const char *method, json_t *params);
static ngx_int_t ngx_http_tidal_helper_send(ngx_http_tidal_helper_t *hp,
    json_t *msg);
static void ngx_http_tidal_helper_lost(ngx_http_tidal_helper_t *hp,
    const char *why);
static void ngx_http_tidal_helper_fail(ngx_http_tidal_call_t *call,
    const char *text);
static ngx_int_t ngx_http_tidal_helper_dir(ngx_cycle_t *cycle,
    ngx_str_t *file);


static ngx_http_tidal_helper_t  ngx_http_tidal_helper;


/*
 * Runs in the master for every configuration: the directories of the
 * helper's socket and of the state file belong to the worker user.
 */

ngx_int_t
ngx_http_tidal_helper_init_module(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf)
{
    if (tmcf->state_file.len
        && ngx_http_tidal_helper_dir(cycle, &tmcf->state_file) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (tmcf->helper.len == 0) {
        return NGX_OK;
    }

    return ngx_http_tidal_helper_dir(cycle, &tmcf->helper_socket);
}


/* creates the directory a file lives in, for the workers, if it is new */

static ngx_int_t
ngx_http_tidal_helper_dir(ngx_cycle_t *cycle, ngx_str_t *file)
{
    u_char           *dir, *slash;
    ngx_err_t         err;
    ngx_core_conf_t  *ccf;
    ngx_file_info_t   fi;

    slash = ngx_strlchr(file->data, file->data + file->len, '/');

    if (slash == NULL) {
        return NGX_OK;
    }

    for (slash = file->data + file->len; *slash != '/'; slash--) {
        /* void */
    }

    dir = ngx_pnalloc(cycle->pool, slash - file->data + 1);
    if (dir == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(dir, file->data, slash - file->data + 1);

    if (dir[0] == '\0' || ngx_file_info(dir, &fi) != NGX_FILE_ERROR) {
        return NGX_OK;
    }

    if (ngx_create_dir(dir, 0700) == NGX_FILE_ERROR) {
        err = ngx_errno;

        if (err != NGX_EEXIST) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, err,
                          "tidal: " ngx_create_dir_n " \"%s\" failed", dir);
            return NGX_ERROR;
        }
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT && geteuid() == 0
        && chown((char *) dir, ccf->user, -1) == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "tidal: chown(\"%s\", %d) failed", dir, ccf->user);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_tidal_helper_init_process(ngx_cycle_t *cycle,
    ngx_http_tidal_main_conf_t *tmcf)
{
    ngx_http_tidal_helper_t  *hp;

    hp = &ngx_http_tidal_helper;

    ngx_queue_init(&hp->calls);

    if (tmcf->helper.len == 0) {
        return NGX_OK;
    }

    hp->tmcf = tmcf;
    hp->log = cycle->log;

    hp->retry.handler = ngx_http_tidal_helper_retry_handler;
    hp->retry.data = hp;
    hp->retry.log = cycle->log;
    hp->retry.cancelable = 1;

    ngx_add_timer(&hp->retry, 1);

    return NGX_OK;
}


/* a worker that exits hangs up; the helper goes on for the others */

void
ngx_http_tidal_helper_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_tidal_helper_t  *hp;

    hp = &ngx_http_tidal_helper;
    hp->exiting = 1;

    if (hp->retry.timer_set) {
        ngx_del_timer(&hp->retry);
    }

    if (hp->c) {
        ngx_http_tidal_helper_lost(hp, "the worker exits");
    }
}


static void
ngx_http_tidal_helper_retry_handler(ngx_event_t *ev)
{
    ngx_http_tidal_helper_t  *hp = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (ngx_http_tidal_helper_connect(hp) == NGX_OK) {
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_TIDAL_HELPER_RETRY);
}


/* NGX_OK: connected; otherwise starts the helper if nobody runs it */

static ngx_int_t
ngx_http_tidal_helper_connect(ngx_http_tidal_helper_t *hp)
{
    int                          fd;
    ngx_err_t                    err;
    ngx_connection_t            *c;
    struct sockaddr_un           sa;
    ngx_http_tidal_main_conf_t  *tmcf;

    tmcf = hp->tmcf;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, hp->log, ngx_socket_errno,
                      "tidal: socket() for the helper failed");
        return NGX_ERROR;
    }

    ngx_memzero(&sa, sizeof(sa));
    sa.sun_family = AF_UNIX;
    ngx_cpystrn((u_char *) sa.sun_path, tmcf->helper_socket.data,
                sizeof(sa.sun_path));

    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1) {
        err = ngx_socket_errno;
        (void) close(fd);

        if (err != NGX_ENOENT && err != NGX_ECONNREFUSED
            && err != NGX_EAGAIN)
        {
            ngx_log_error(NGX_LOG_ERR, hp->log, err,
                          "tidal: connect() to the helper at \"%V\" failed",
                          &tmcf->helper_socket);
        }

        if (ngx_http_tidal_helper_running(hp) == NGX_DECLINED) {
            (void) ngx_http_tidal_helper_spawn(hp);
        }

        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, hp->log);
    if (c == NULL) {
        (void) close(fd);
        return NGX_ERROR;
    }

    c->data = hp;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->read->handler = ngx_http_tidal_helper_read_handler;
    c->write->handler = ngx_http_tidal_helper_write_handler;
    c->read->log = hp->log;
    c->write->log = hp->log;

    hp->c = c;
    hp->in_len = 0;
    hp->out_len = 0;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK
        || ngx_http_tidal_helper_hello(hp) != NGX_OK)
    {
        ngx_http_tidal_helper_lost(hp, "cannot talk to it");
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, hp->log, 0,
                  "tidal: connected to the helper at \"%V\"",
                  &tmcf->helper_socket);

    return NGX_OK;
}


/*
 * A running helper holds its lock (also while it boots, before its
 * socket exists): NGX_OK; nobody holds it: NGX_DECLINED.
 */

static ngx_int_t
ngx_http_tidal_helper_running(ngx_http_tidal_helper_t *hp)
{
    u_char     *lock;
    ngx_fd_t    fd;
    ngx_int_t   rc;
    ngx_str_t  *sock;

    sock = &hp->tmcf->helper_socket;

    lock = ngx_alloc(sock->len + sizeof(".lock"), hp->log);
    if (lock == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(lock, "%V.lock%Z", sock);

    fd = open((char *) lock, O_RDONLY | O_CLOEXEC);

    ngx_free(lock);

    if (fd == -1) {
        return NGX_DECLINED;
    }

    rc = (flock(fd, LOCK_SH | LOCK_NB) == -1) ? NGX_OK : NGX_DECLINED;

    (void) close(fd);

    return rc;
}


/*
 * fork twice: the helper is nobody's child but init's, so no worker's
 * exit (every reload) or SIGCHLD handling concerns it
 */

static ngx_int_t
ngx_http_tidal_helper_spawn(ngx_http_tidal_helper_t *hp)
{
    ngx_pid_t   pid, master;
    ngx_msec_t  now;

    now = ngx_current_msec;

    if (hp->spawned && now - hp->spawned < NGX_HTTP_TIDAL_HELPER_RESPAWN) {
        return NGX_OK;
    }

    hp->spawned = now;
    master = getppid();

    pid = fork();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_ALERT, hp->log, ngx_errno,
                      "tidal: fork() for the helper failed");
        return NGX_ERROR;
    }

    if (pid == 0) {
        if (setsid() == -1 || fork() != 0) {
            _exit(0);
        }

        ngx_http_tidal_helper_exec(hp->tmcf, master);
        _exit(127);
    }

    ngx_log_error(NGX_LOG_NOTICE, hp->log, 0,
                  "tidal: starting the helper \"%V\" on \"%V\"",
                  &hp->tmcf->helper, &hp->tmcf->helper_socket);

    return NGX_OK;
}


/* in the helper's process: a clean slate, then the helper itself */

static void
ngx_http_tidal_helper_exec(ngx_http_tidal_main_conf_t *tmcf,
    ngx_pid_t master)
{
    int                fd, n;
    char              *argv[32], *envp[4], *p;
    u_char            *dir, *buf, *last;
    sigset_t           set;
    ngx_uint_t         i;
    ngx_open_file_t   *file;
    struct sigaction   sa;

    sigemptyset(&set);
    (void) sigprocmask(SIG_SETMASK, &set, NULL);

    ngx_memzero(&sa, sizeof(sa));
    sa.sa_handler = SIG_DFL;

    for (n = 1; n < NSIG; n++) {
        (void) sigaction(n, &sa, NULL);
    }

    /* stderr stays: it is nginx's error log */

    fd = open("/dev/null", O_RDWR);

    if (fd != -1) {
        (void) dup2(fd, STDIN_FILENO);
        (void) dup2(fd, STDOUT_FILENO);
    }

    /* without close_range(), or on a kernel older than 5.9: one by one */

#if (NGX_HTTP_TIDAL_HAVE_CLOSE_RANGE)
    if (close_range(3, ~0U, 0) == -1)
#endif
    {
        for (fd = 3; fd < 65536; fd++) {
            (void) close(fd);
        }
    }

    buf = malloc(8192 + tmcf->helper_socket.len);
    if (buf == NULL) {
        return;
    }

    last = buf + 8192 + tmcf->helper_socket.len;

    /* HOME is the socket's directory: GHCi may want to write there */

    dir = buf;
    p = (char *) ngx_cpystrn(dir, tmcf->helper_socket.data,
                             tmcf->helper_socket.len + 1);
    while (p > (char *) dir && *p != '/') {
        p--;
    }
    *p = '\0';

    p = (char *) dir + tmcf->helper_socket.len + 1;

    envp[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
              "/sbin:/bin";
    envp[1] = p;
    p = (char *) ngx_slprintf((u_char *) p, last, "HOME=%s%Z", dir);
    envp[2] = "LANG=C.UTF-8";
    envp[3] = NULL;

    i = 0;
    argv[i++] = (char *) tmcf->helper.data;
    argv[i++] = "--socket";
    argv[i++] = (char *) tmcf->helper_socket.data;
    argv[i++] = "--master-pid";
    argv[i++] = p;
    p = (char *) ngx_slprintf((u_char *) p, last, "%P%Z", master);
    argv[i++] = "--generation";
    argv[i++] = p;
    p = (char *) ngx_slprintf((u_char *) p, last, "%uL%Z", tmcf->generation);
    argv[i++] = "--config";
    argv[i++] = (char *) tmcf->helper_config;
    argv[i++] = "--ghci";
    argv[i++] = (char *) tmcf->ghci.data;
    argv[i++] = "--dirt";
    argv[i++] = (char *) tmcf->dirt_address.data;
    argv[i++] = "--dirt-rate";
    argv[i++] = p;
    p = (char *) ngx_slprintf((u_char *) p, last, "%i%Z", tmcf->dirt_rate);
    argv[i++] = "--eval-timeout";
    argv[i++] = p;
    p = (char *) ngx_slprintf((u_char *) p, last, "%M%Z", tmcf->eval_timeout);
    argv[i++] = "--latency";
    argv[i++] = p;
    p = (char *) ngx_slprintf((u_char *) p, last, "%M%Z", tmcf->latency);
    argv[i++] = "--health-interval";
    argv[i++] = p;
    p = (char *) ngx_slprintf((u_char *) p, last, "%M%Z",
                              tmcf->health_interval);
    argv[i++] = "--ghci-memory";
    argv[i++] = (char *) tmcf->ghci_memory.data;

    /* stderr is nginx's error log, as ngx_log_redirect_stderr() left it */

    file = ngx_log_get_file_log(ngx_cycle->log)->file;

    if (!ngx_cycle->log_use_stderr && file->fd != ngx_stderr
        && file->name.len)
    {
        argv[i++] = "--error-log";
        argv[i++] = (char *) file->name.data;
    }

    if (tmcf->boot.len) {
        argv[i++] = "--boot";
        argv[i++] = (char *) tmcf->boot.data;
    }

    if (tmcf->allow_raw) {
        argv[i++] = "--allow-raw";
    }

    argv[i] = NULL;

    (void) execve(argv[0], argv, envp);

    ngx_write_stderr("tidal: cannot run the helper: execve() failed"
                     NGX_LINEFEED);
}


/*
 * The zone's state goes first: a new helper plays what the room had.  The
 * history stays: it is the zone's.
 */

static ngx_int_t
ngx_http_tidal_helper_hello(ngx_http_tidal_helper_t *hp)
{
    json_t        *state, *msg;
    ngx_int_t      rc;
    tidal_room_t   room;

    if (ngx_http_tidal_state_room(hp->tmcf, &room, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    state = tidal_room_document(&room, 0);

    tidal_room_free(&room);

    if (state == NULL) {
        return NGX_ERROR;
    }

    msg = json_pack("{s:s, s:o, s:s, s:{s:i, s:I, s:s, s:o}}",
                    "jsonrpc", "2.0",
                    "id", json_sprintf("%d:hello", (int) ngx_pid),
                    "method", TIDAL_PROTOCOL_HELLO,
                    "params", "protocol", TIDAL_PROTOCOL_VERSION,
                    "generation", (json_int_t) hp->tmcf->generation,
                    "config", hp->tmcf->helper_config, "state", state);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_tidal_helper_send(hp, msg);

    json_decref(msg);

    return rc;
}


/*
 * A music tool call from a client: forwarded, and NGX_DONE; or a
 * CallToolResult saying why not in *result, and NGX_OK.
 */

ngx_int_t
ngx_http_tidal_helper_call(ngx_http_tidal_ws_t *ws,
    const tidal_tool_t *tool, json_t *args, json_t *id,
    const char *who, json_t **result)
{
    json_t                   *msg;
    ngx_http_tidal_call_t    *call;
    ngx_http_tidal_helper_t  *hp;

    hp = &ngx_http_tidal_helper;
    *result = NULL;

    if (hp->tmcf == NULL) {
        *result = tidal_tools_result(1,
                      "Tidal is not running: this server runs no GHCi "
                      "helper (tidal_helper off), so nothing was played or "
                      "changed.", NULL);
        return *result ? NGX_OK : NGX_ERROR;
    }

    if (hp->c == NULL || !hp->ready) {
        *result = tidal_tools_result(1,
                      "Tidal is starting: the GHCi helper is not connected "
                      "yet, so nothing was played or changed.  Try again in "
                      "a moment.", NULL);
        return *result ? NGX_OK : NGX_ERROR;
    }

    if (ws->calls >= NGX_HTTP_TIDAL_CALLS_PER_CLIENT
        || hp->ncalls >= NGX_HTTP_TIDAL_CALLS_MAX)
    {
        *result = tidal_tools_result(1,
                      "Too many tool calls in flight: wait for the answers "
                      "to the earlier ones.", NULL);
        return *result ? NGX_OK : NGX_ERROR;
    }

    call = ngx_alloc(sizeof(ngx_http_tidal_call_t), hp->log);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->n = ++hp->next_call;
    call->ws = ws;
    call->id = json_incref(id);
    call->state = (tool->op == TIDAL_TOOL_OP_STATE);

    msg = json_pack("{s:s, s:o, s:s, s:{s:s, s:O, s:{s:s}}}",
                    "jsonrpc", "2.0",
                    "id", json_sprintf("%d:%lu", (int) ngx_pid,
                                       (unsigned long) call->n),
                    "method", "tools/call",
                    "params", "name", tool->name, "arguments", args,
                    "_meta", TIDAL_META_WHO, who);

    if (msg == NULL || ngx_http_tidal_helper_send(hp, msg) != NGX_OK) {
        json_decref(msg);
        json_decref(call->id);
        ngx_free(call);
        return NGX_ERROR;
    }

    json_decref(msg);

    ngx_queue_insert_tail(&hp->calls, &call->queue);
    hp->ncalls++;
    ws->calls++;

    return NGX_DONE;
}


ngx_uint_t
ngx_http_tidal_helper_ready(void)
{
    return ngx_http_tidal_helper.c && ngx_http_tidal_helper.ready;
}


/* a client that leaves gets no answers; its calls run on regardless */

void
ngx_http_tidal_helper_forget(ngx_http_tidal_ws_t *ws)
{
    ngx_queue_t              *q;
    ngx_http_tidal_call_t    *call;
    ngx_http_tidal_helper_t  *hp;

    hp = &ngx_http_tidal_helper;

    if (ws->calls == 0) {
        return;
    }

    for (q = ngx_queue_head(&hp->calls);
         q != ngx_queue_sentinel(&hp->calls);
         q = ngx_queue_next(q))
    {
        call = ngx_queue_data(q, ngx_http_tidal_call_t, queue);

        if (call->ws == ws) {
            call->ws = NULL;
        }
    }

    ws->calls = 0;
}


/* "running", "booting", ... as the helper says, or why there is none */

void
ngx_http_tidal_helper_status(ngx_http_tidal_main_conf_t *tmcf, u_char *buf,
    size_t size)
{
    ngx_http_tidal_helper_t  *hp;

    hp = &ngx_http_tidal_helper;

    if (hp->tmcf == NULL) {
        ngx_cpystrn(buf, (u_char *) "not running (tidal_helper off)", size);
        return;
    }

    if (hp->c == NULL || !hp->ready) {
        ngx_cpystrn(buf, (u_char *) "not running (the helper is starting)",
                    size);
        return;
    }

    ngx_shmtx_lock(&tmcf->shpool->mutex);
    ngx_cpystrn(buf, tmcf->sh->ghci[0] ? tmcf->sh->ghci
                                       : (u_char *) "booting", size);
    ngx_shmtx_unlock(&tmcf->shpool->mutex);
}


static void
ngx_http_tidal_helper_read_handler(ngx_event_t *rev)
{
    u_char                   *nl, *p, *data;
    size_t                    n, size;
    ssize_t                   got;
    ngx_connection_t         *c;
    ngx_http_tidal_helper_t  *hp;

    c = rev->data;
    hp = c->data;

    for ( ;; ) {
        if (hp->in_size - hp->in_len < 65536) {
            size = hp->in_size ? hp->in_size * 2 : 65536 * 2;

            data = ngx_alloc(size, hp->log);
            if (data == NULL) {
                ngx_http_tidal_helper_lost(hp, "out of memory");
                return;
            }

            if (hp->in) {
                ngx_memcpy(data, hp->in, hp->in_len);
                ngx_free(hp->in);
            }

            hp->in = data;
            hp->in_size = size;
        }

        got = c->recv(c, hp->in + hp->in_len, hp->in_size - hp->in_len);

        if (got == NGX_AGAIN) {
            break;
        }

        if (got == NGX_ERROR || got == 0) {
            ngx_http_tidal_helper_lost(hp, got ? "reading from it failed"
                                               : "it closed the connection");
            return;
        }

        hp->in_len += got;
        p = hp->in;
        n = hp->in_len;

        while ((nl = ngx_strlchr(p, p + n, '\n')) != NULL) {
            ngx_http_tidal_helper_message(hp, p, nl - p);

            if (hp->c == NULL) {
                return;
            }

            n -= nl - p + 1;
            p = nl + 1;
        }

        if (n >= NGX_HTTP_TIDAL_HELPER_IN_MAX) {
            ngx_http_tidal_helper_lost(hp, "it sent a message too long");
            return;
        }

        ngx_memmove(hp->in, p, n);
        hp->in_len = n;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_tidal_helper_lost(hp, "cannot wait for it");
    }
}


static void
ngx_http_tidal_helper_message(ngx_http_tidal_helper_t *hp, u_char *msg,
    size_t len)
{
    char           shown[NGX_HTTP_TIDAL_LOG_TEXT];
    json_t        *root, *result;
    const char    *method;
    json_error_t   err;

    /* the room's sound is framed as it came, never parsed */

    if (len > sizeof(TIDAL_PROTOCOL_SOUND_HEAD) - 1
        && ngx_strncmp(msg, TIDAL_PROTOCOL_SOUND_HEAD,
                       sizeof(TIDAL_PROTOCOL_SOUND_HEAD) - 1)
           == 0)
    {
        ngx_http_tidal_fanout_sound(msg, len);
        return;
    }

    root = json_loadb((char *) msg, len, 0, &err);

    if (root == NULL) {

        /* jansson quotes the text near the error */

        (void) tidal_utf8_escape(shown, sizeof(shown), err.text,
                                 ngx_strlen(err.text));

        ngx_log_error(NGX_LOG_ALERT, hp->log, 0,
                      "tidal: the helper sent bad JSON: %s", shown);
        return;
    }

    method = json_string_value(json_object_get(root, "method"));

    if (method) {
        ngx_http_tidal_helper_event(hp, method,
                                    json_object_get(root, "params"));

    } else if (!hp->ready) {
        result = json_object_get(root, "result");

        if (json_is_true(json_object_get(result, "restart"))) {
            ngx_log_error(NGX_LOG_NOTICE, hp->log, 0,
                          "tidal: the helper restarts with this "
                          "configuration's settings");
        } else {
            hp->ready = 1;
        }

    } else {
        ngx_http_tidal_helper_answer(hp, root);
    }

    json_decref(root);
}


/* the answer to a call goes to the client that made it, with its id */

static void
ngx_http_tidal_helper_answer(ngx_http_tidal_helper_t *hp, json_t *msg)
{
    char                   *text, *end;
    size_t                  len;
    json_t                 *result, *error, *sc, *seq;
    ngx_uint_t              n;
    const char             *id;
    ngx_queue_t            *q;
    ngx_http_tidal_call_t  *call;

    id = json_string_value(json_object_get(msg, "id"));
    id = id ? ngx_strchr(id, ':') : NULL;

    if (id == NULL) {
        return;
    }

    n = strtoul(id + 1, &end, 10);

    for (q = ngx_queue_head(&hp->calls);
         q != ngx_queue_sentinel(&hp->calls);
         q = ngx_queue_next(q))
    {
        call = ngx_queue_data(q, ngx_http_tidal_call_t, queue);

        if (call->n == n) {
            goto found;
        }
    }

    return;

found:

    ngx_queue_remove(q);
    hp->ncalls--;

    if (call->ws == NULL) {
        goto done;
    }

    call->ws->calls--;

    result = json_object_get(msg, "result");
    error = json_object_get(msg, "error");

    if (call->state && json_is_object(result)) {

        /* the room's state is the zone's; the helper's is its scheduler */

        sc = json_object_get(json_object_get(result, "structuredContent"),
                             "scheduler");
        result = ngx_http_tidal_tool_state(hp->tmcf, sc);

        text = result ? tidal_mcp_tool_reply(call->id, result, &len) : NULL;

    } else if (json_is_object(result)) {

        /*
         * The helper names the event a call caused by its tidal/hid; the
         * room's number for it is the zone's.
         */

        sc = json_object_get(result, "structuredContent");
        seq = json_object_get(sc, "seq");

        if (seq) {
            json_object_set_new(sc, "seq",
                json_integer((json_int_t) ngx_http_tidal_zone_helper_seq(
                                 hp->tmcf,
                                 (uint64_t) json_integer_value(seq))));
        }

        text = tidal_mcp_tool_reply(call->id, json_incref(result), &len);

    } else {
        text = tidal_mcp_error_reply(call->id,
                   json_is_integer(json_object_get(error, "code"))
                   ? (int) json_integer_value(json_object_get(error, "code"))
                   : TIDAL_MCP_INTERNAL_ERROR,
                   json_string_value(json_object_get(error, "message"))
                   ? json_string_value(json_object_get(error, "message"))
                   : "The helper failed", &len);
    }

    if (text) {
        ngx_http_tidal_ws_reply(call->ws, (u_char *) text, len);
        free(text);
    }

done:

    json_decref(call->id);
    ngx_free(call);
}


/*
 * The helper's events go into the ring, numbered there, and its state
 * into the zone, each once however many workers bring it: TIDAL_META_HID
 * names them.  params is the parsed message's, changed in place.
 */

static void
ngx_http_tidal_helper_event(ngx_http_tidal_helper_t *hp, const char *method,
    json_t *params)
{
    uint64_t  hid;

    hid = (uint64_t) json_integer_value(json_object_get(params,
                                                        TIDAL_META_HID));

    if (hid == 0) {
        return;
    }

    if (ngx_strcmp(method, TIDAL_PROTOCOL_STATE) == 0) {
        (void) ngx_http_tidal_state_update(hp->tmcf, hid,
                   json_object_get(params, "state"),
                   json_string_value(json_object_get(params, "ghci")),
                   (ngx_pid_t) json_integer_value(json_object_get(params,
                                                                  "ghci_pid")),
                   hp->log);
        return;
    }

    if (ngx_strncmp(method, TIDAL_PROTOCOL_EVENT, TIDAL_PROTOCOL_EVENT_LEN)
        != 0)
    {
        return;
    }

    /* the rest are the event's fields */

    (void) json_object_del(params, TIDAL_META_HID);

    if (ngx_http_tidal_zone_publish_helper(hp->tmcf,
            method + TIDAL_PROTOCOL_EVENT_LEN, params, hid, hp->log)
        == NGX_OK)
    {
        ngx_http_tidal_fanout_published(hp->tmcf);
    }
}


static ngx_int_t
ngx_http_tidal_helper_send(ngx_http_tidal_helper_t *hp, json_t *msg)
{
    char    *text;
    size_t   len, size;
    u_char  *data;

    text = json_dumps(msg, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);

    if (hp->out_len + len + 1 > NGX_HTTP_TIDAL_HELPER_OUT_MAX) {
        free(text);
        ngx_log_error(NGX_LOG_ERR, hp->log, 0,
                      "tidal: the helper does not read its messages");
        return NGX_ERROR;
    }

    if (hp->out_size < hp->out_len + len + 1) {
        size = hp->out_size ? hp->out_size : 4096;

        while (size < hp->out_len + len + 1) {
            size *= 2;
        }

        data = ngx_alloc(size, hp->log);
        if (data == NULL) {
            free(text);
            return NGX_ERROR;
        }

        if (hp->out) {
            ngx_memcpy(data, hp->out, hp->out_len);
            ngx_free(hp->out);
        }

        hp->out = data;
        hp->out_size = size;
    }

    ngx_memcpy(hp->out + hp->out_len, text, len);
    hp->out[hp->out_len + len] = '\n';
    hp->out_len += len + 1;

    free(text);

    if (!hp->c->write->posted) {
        ngx_post_event(hp->c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_tidal_helper_write_handler(ngx_event_t *wev)
{
    ssize_t                   n;
    ngx_connection_t         *c;
    ngx_http_tidal_helper_t  *hp;

    c = wev->data;
    hp = c->data;

    while (hp->out_len) {
        n = c->send(c, hp->out, hp->out_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_tidal_helper_lost(hp, "cannot wait for it");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_tidal_helper_lost(hp, "writing to it failed");
            return;
        }

        ngx_memmove(hp->out, hp->out + n, hp->out_len - n);
        hp->out_len -= n;
    }
}


/*
 * The helper went away (killed, restarting with new settings, or nginx
 * is stopping): calls in flight get an error, and a new helper is found
 * or started.
 */

static void
ngx_http_tidal_helper_lost(ngx_http_tidal_helper_t *hp, const char *why)
{
    u_char                  text[256];
    ngx_uint_t              level;
    ngx_queue_t            *q;
    ngx_http_tidal_call_t  *call;

    if (hp->c) {
        level = (ngx_exiting || hp->exiting) ? NGX_LOG_INFO : NGX_LOG_WARN;

        ngx_log_error(level, hp->log, 0, "tidal: lost the helper: %s", why);

        ngx_close_connection(hp->c);
        hp->c = NULL;
    }

    hp->ready = 0;
    hp->in_len = 0;
    hp->out_len = 0;

    *ngx_snprintf(text, sizeof(text) - 1, "The Tidal helper went away "
                  "before answering, so whether this call took effect is "
                  "unknown: %s tells.  It is being restarted.",
                  tidal_tools_by_op(TIDAL_TOOL_OP_STATE)->name) = '\0';

    while (!ngx_queue_empty(&hp->calls)) {
        q = ngx_queue_head(&hp->calls);
        ngx_queue_remove(q);
        hp->ncalls--;

        call = ngx_queue_data(q, ngx_http_tidal_call_t, queue);
        ngx_http_tidal_helper_fail(call, (const char *) text);
    }

    if (!hp->retry.timer_set && !hp->exiting && !ngx_exiting
        && !ngx_terminate)
    {
        ngx_add_timer(&hp->retry, NGX_HTTP_TIDAL_HELPER_RETRY);
    }
}


static void
ngx_http_tidal_helper_fail(ngx_http_tidal_call_t *call, const char *text)
{
    char    *reply;
    size_t   len;
    json_t  *result;

    if (call->ws) {
        call->ws->calls--;

        result = tidal_tools_result(1, text, NULL);
        reply = result ? tidal_mcp_tool_reply(call->id, result, &len) : NULL;

        if (reply) {
            ngx_http_tidal_ws_reply(call->ws, (u_char *) reply, len);
            free(reply);
        }
    }

    json_decref(call->id);
    ngx_free(call);
}
