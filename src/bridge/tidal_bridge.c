/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The stdio bridge: one line of stdin is one masked WebSocket text frame
 * to the module, one text frame from it is one line of stdout.  A desktop
 * MCP client that can only spawn stdio servers joins a room this way, over
 * TLS (OpenSSL) for wss://.
 */


#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <jansson.h>

#include "tidal_helper_log.h"
#include "tidal_bridge.h"
#include "tidal_lines.h"
#include "tidal_mcp.h"
#include "tidal_protocol.h"
#include "tidal_ws.h"


#define TIDAL_BRIDGE_MESSAGE_MAX   (4 * 1024 * 1024)  /* either way */
#define TIDAL_BRIDGE_HEAD_MAX      16384       /* the handshake response */
#define TIDAL_BRIDGE_OUT_HIGH      (1024 * 1024)  /* stop reading stdin */
#define TIDAL_BRIDGE_CONNECT_TIME  10000       /* ms, connect + handshake */
#define TIDAL_BRIDGE_CLOSE_TIME    3000        /* ms for the server's close */
#define TIDAL_BRIDGE_FLUSH_TIME    1000        /* ms for a last close frame */
#define TIDAL_BRIDGE_READ          65536
#define TIDAL_BRIDGE_RETRY_MIN     1000        /* ms, the first wait */
#define TIDAL_BRIDGE_RETRY_MAX     30000       /* ms, the longest wait */
#define TIDAL_BRIDGE_PENDING_MAX   1024        /* requests awaiting answers */

/*
 * --reconnect before the first connection: stdin's messages wait for it,
 * each at most HOLD_TIME (the TypeScript SDK gives up on a request after
 * 60 s: our error comes first, and says why), at most HOLD_MAX of them
 * in HOLD_BYTES; the others get TIDAL_BRIDGE_UNREACHABLE at once.
 */
#define TIDAL_BRIDGE_HOLD_TIME     30000       /* ms */
#define TIDAL_BRIDGE_HOLD_MAX      64
#define TIDAL_BRIDGE_HOLD_BYTES    (8 * 1024 * 1024)

#define TIDAL_BRIDGE_UNREACHABLE                                              \
    "the room is unreachable; tidal-helper is reconnecting"


typedef struct {
    char                       *line;
    size_t                      len;
    int64_t                     until;           /* then it is answered */
} tidal_bridge_held_t;


struct tidal_bridge_s {
    int                         fd;
    const tidal_bridge_conf_t  *conf;
    const tidal_bridge_client_t  *client;     /* who speaks through it */
    volatile sig_atomic_t      *quit;
    tidal_ws_parser_t           parser;

    /* wss:// */
    SSL_CTX                    *ssl_ctx;
    SSL                        *ssl;
    char                        ssl_error[128];  /* why it failed, for logs */

    /* what the socket waits for; TLS may read to write and vice versa */
    short                       read_events;
    short                       write_events;

    tidal_lines_t               in;              /* client->in */

    /* frames not yet taken by the socket */
    uint8_t                    *out;
    size_t                      out_pos;
    size_t                      out_len;
    size_t                      out_size;

    int64_t                     close_deadline;
    int                         status;          /* the exit status */

    /* --reconnect: what resuming the session takes */
    json_t                     *init_params;     /* the client's initialize */
    char                       *init_id;         /* its id, as JSON text */
    json_t                     *session;         /* the server's session id */
    json_int_t                  last_seq;        /* the last event's */
    unsigned                    resume_n;
    char                        resume_id[32];   /* our initialize, awaited */

    /*
     * The bridge asks the room for notifications/tidal/... for itself
     * (their seq resumes the session); its client gets them only when it
     * asked too, else their log lines from its logging/setLevel up.
     */
    int                         client_level;    /* TIDAL_MCP_LOG_* */
    unsigned                    client_events;

    /* the ids (JSON text) of requests sent and not yet answered */
    char                       *pending[TIDAL_BRIDGE_PENDING_MAX];
    unsigned                    npending;

    /* stdin's lines waiting for the first connection, oldest first */
    tidal_bridge_held_t         held[TIDAL_BRIDGE_HOLD_MAX];
    unsigned                    nheld;
    size_t                      held_bytes;

    unsigned                    stdin_done:1;    /* or the client's */
    unsigned                    close_sent:1;    /* queued, in fact */
    unsigned                    done:1;
    unsigned                    ssl_broken:1;    /* no close_notify then */
    unsigned                    lost:1;          /* worth connecting again */
    unsigned                    ready:1;         /* resumed, or nothing to */
    unsigned                    connected:1;     /* once, at least */
};


static void tidal_bridge_reset(tidal_bridge_t *b);
static int tidal_bridge_backoff(tidal_bridge_t *b, unsigned attempt,
    int64_t delay);
static int tidal_bridge_retryable(uint16_t code);
static int tidal_bridge_connect(const tidal_bridge_conf_t *conf,
    int64_t deadline);
static int tidal_bridge_tls(tidal_bridge_t *b,
    const tidal_bridge_conf_t *conf, int64_t deadline);
static void tidal_bridge_tls_end(tidal_bridge_t *b);
static int tidal_bridge_handshake(tidal_bridge_t *b,
    const tidal_bridge_conf_t *conf, int64_t deadline);
static int tidal_bridge_wait(int fd, short events, int64_t deadline);
static ssize_t tidal_bridge_io_read(tidal_bridge_t *b, void *buf,
    size_t size);
static ssize_t tidal_bridge_io_write(tidal_bridge_t *b, const void *buf,
    size_t size);
static ssize_t tidal_bridge_ssl_failed(tidal_bridge_t *b, int rc,
    short *events);
static const char *tidal_bridge_strerror(tidal_bridge_t *b);
static const char *tidal_bridge_ssl_reason(void);
static void tidal_bridge_loop(tidal_bridge_t *b);
static void tidal_bridge_read_socket(tidal_bridge_t *b);
static void tidal_bridge_frames(tidal_bridge_t *b, const uint8_t *p,
    size_t n);
static void tidal_bridge_read_stdin(tidal_bridge_t *b);
static void tidal_bridge_line(void *data, char *line, size_t len);
static void tidal_bridge_offline(tidal_bridge_t *b, char *line, size_t len);
static int tidal_bridge_hold(tidal_bridge_t *b, char *line, size_t len);
static void tidal_bridge_release_held(tidal_bridge_t *b, int64_t now);
static char *tidal_bridge_client_out(tidal_bridge_t *b, const char *line,
    size_t len, size_t *out_len);
static int tidal_bridge_client_event(tidal_bridge_t *b, const uint8_t *p,
    size_t len);
static void tidal_bridge_track_out(tidal_bridge_t *b, char *line,
    size_t len);
static int tidal_bridge_track_in(tidal_bridge_t *b, const uint8_t *p,
    size_t len);
static int tidal_bridge_take_session(tidal_bridge_t *b, json_t *result);
static void tidal_bridge_resumed(tidal_bridge_t *b, json_t *msg);
static int tidal_bridge_resume(tidal_bridge_t *b);
static char *tidal_bridge_id_text(json_t *id);
static void tidal_bridge_answered(tidal_bridge_t *b, const char *id);
static void tidal_bridge_fail_pending(tidal_bridge_t *b);
static void tidal_bridge_unreachable(tidal_bridge_t *b, const char *id);
static void tidal_bridge_ready(tidal_bridge_t *b);
static int tidal_bridge_receive(tidal_bridge_t *b, const uint8_t *p,
    size_t len);
static int tidal_bridge_stdout_receive(void *data, tidal_bridge_t *b,
    const uint8_t *p, size_t len);
static int tidal_bridge_send(tidal_bridge_t *b, unsigned opcode,
    const void *payload, size_t len);
static void tidal_bridge_close(tidal_bridge_t *b, uint16_t code,
    const char *reason);
static void tidal_bridge_write_socket(tidal_bridge_t *b);
static void tidal_bridge_flush(tidal_bridge_t *b);
static int tidal_bridge_stdout(const uint8_t *p, size_t len);
static void tidal_bridge_printable(char *dst, size_t size, const char *src,
    size_t len);


static const char  *tidal_bridge_own_headers[] = {
    "Host", "Upgrade", "Connection", "Sec-WebSocket-Key",
    "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions", "Content-Length", "Transfer-Encoding",
    NULL
};


/* -- options ----------------------------------------------------------- */


int
tidal_bridge_set_url(tidal_bridge_conf_t *conf, const char *url)
{
    long         port;
    size_t       n;
    const char  *p, *auth, *auth_end, *host, *host_end, *colon;
    char        *end;

    if (strncasecmp(url, "wss://", 6) == 0) {
        conf->tls = 1;
        auth = url + 6;

    } else if (strncasecmp(url, "ws://", 5) == 0) {
        conf->tls = 0;
        auth = url + 5;

    } else {
        fprintf(stderr, "tidal-helper: --connect wants ws://HOST[:PORT]"
                "/PATH or wss://..., not \"%s\"\n", url);
        return -1;
    }

    auth_end = auth + strcspn(auth, "/?#");

    if (memchr(auth, '@', (size_t) (auth_end - auth)) != NULL) {
        fprintf(stderr, "tidal-helper: no credentials in the URL, please; "
                "use --header \"Authorization: ...\"\n");
        return -1;
    }

    for (p = auth_end; *p; p++) {
        if ((unsigned char) *p <= 0x20 || *p == 0x7f || *p == '#') {
            fprintf(stderr, "tidal-helper: the URL's path has a space, a "
                    "control character or a fragment\n");
            return -1;
        }
    }

    /* [v6 address]:port or name:port */

    if (*auth == '[') {
        host = auth + 1;
        host_end = memchr(host, ']', (size_t) (auth_end - host));

        if (host_end == NULL) {
            goto bad_host;
        }

        colon = (host_end + 1 < auth_end) ? host_end + 1 : NULL;

        if (colon != NULL && *colon != ':') {
            goto bad_host;
        }

    } else {
        host = auth;
        colon = memchr(auth, ':', (size_t) (auth_end - auth));
        host_end = colon ? colon : auth_end;
    }

    n = (size_t) (host_end - host);

    if (n == 0 || n >= sizeof(conf->host)) {
        goto bad_host;
    }

    memcpy(conf->host, host, n);
    conf->host[n] = '\0';

    if (colon != NULL) {
        errno = 0;
        port = strtol(colon + 1, &end, 10);

        if (errno || end != auth_end || end == colon + 1
            || port < 1 || port > 65535)
        {
            goto bad_host;
        }

    } else {
        port = conf->tls ? 443 : 80;
    }

    snprintf(conf->port, sizeof(conf->port), "%ld", port);

    n = (size_t) (auth_end - auth);

    if (n >= sizeof(conf->authority)) {
        goto bad_host;
    }

    memcpy(conf->authority, auth, n);
    conf->authority[n] = '\0';

    conf->url = url;
    conf->path = (*auth_end == '/') ? auth_end : NULL;

    if (*auth_end == '?') {
        fprintf(stderr, "tidal-helper: --connect wants a path before the "
                "query: ws://HOST/PATH?QUERY\n");
        return -1;
    }

    return 0;

bad_host:

    fprintf(stderr, "tidal-helper: --connect: bad host or port in \"%s\"\n",
            url);

    return -1;
}


int
tidal_bridge_add_header(tidal_bridge_conf_t *conf, const char *header)
{
    int          i;
    size_t       n;
    const char  *p, *colon;

    colon = strchr(header, ':');
    n = colon ? (size_t) (colon - header) : 0;

    /* a token (RFC 9110 5.6.2) before the colon */
    for (p = header; p < header + n; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')
              || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
        {
            n = 0;
            break;
        }
    }

    if (n == 0) {
        fprintf(stderr, "tidal-helper: --header wants \"Name: value\"\n");
        return -1;
    }

    for (p = colon + 1; *p; p++) {
        if ((*p != '\t' && (unsigned char) *p < 0x20) || *p == 0x7f) {
            fprintf(stderr, "tidal-helper: --header: a control character "
                    "in the value of %.*s\n", (int) n, header);
            return -1;
        }
    }

    for (i = 0; tidal_bridge_own_headers[i]; i++) {
        if (strlen(tidal_bridge_own_headers[i]) == n
            && strncasecmp(header, tidal_bridge_own_headers[i], n) == 0)
        {
            fprintf(stderr, "tidal-helper: --header: the bridge sends %s "
                    "itself\n", tidal_bridge_own_headers[i]);
            return -1;
        }
    }

    if (conf->nheaders == TIDAL_BRIDGE_HEADERS_MAX) {
        fprintf(stderr, "tidal-helper: at most %d --header options\n",
                TIDAL_BRIDGE_HEADERS_MAX);
        return -1;
    }

    conf->headers[conf->nheaders++] = header;

    return 0;
}


/* -- the connection ---------------------------------------------------- */


int
tidal_bridge_run(const tidal_bridge_conf_t *conf,
    const tidal_bridge_client_t *client, volatile sig_atomic_t *quit)
{
    unsigned                i, attempt;
    int64_t                 deadline, delay;
    tidal_bridge_t          b;
    tidal_bridge_client_t   stdio;

    memset(&b, 0, sizeof(b));
    b.conf = conf;
    b.quit = quit;
    b.in.max = TIDAL_BRIDGE_MESSAGE_MAX;
    b.client_level = TIDAL_MCP_LOG_INFO;

    if (client == NULL) {
        memset(&stdio, 0, sizeof(stdio));
        stdio.in = 0;
        stdio.receive = tidal_bridge_stdout_receive;
        client = &stdio;

        tidal_helper_log(TIDAL_LOG_INFO, "stdio bridge to %s, no GHCi",
                         conf->url);
    }

    b.client = client;

    attempt = 0;
    delay = TIDAL_BRIDGE_RETRY_MIN;

    for ( ;; ) {
        tidal_bridge_reset(&b);

        deadline = tidal_helper_msec() + TIDAL_BRIDGE_CONNECT_TIME;

        b.fd = tidal_bridge_connect(conf, deadline);

        if (b.fd != -1) {
            if ((!conf->tls || tidal_bridge_tls(&b, conf, deadline) == 0)
                && tidal_bridge_handshake(&b, conf, deadline) == 0)
            {
                if (attempt == 0 || b.init_params == NULL) {
                    tidal_bridge_ready(&b);

                } else if (tidal_bridge_resume(&b) != 0) {
                    b.done = 1;
                }

                if (!b.done) {
                    b.connected = 1;
                    tidal_bridge_release_held(&b, -1);
                }

                tidal_bridge_loop(&b);
                tidal_bridge_flush(&b);

            } else {
                b.status = 1;

                /*
                 * a refusal at the start is the user's to fix, not later;
                 * a room not up yet (no answer, 502-504: handshake()
                 * says) is waited for
                 */
                b.lost = (attempt > 0 || b.lost);
            }

            tidal_bridge_tls_end(&b);
            close(b.fd);
            b.fd = -1;

        } else {
            /* nothing listens yet, or the network is not up */
            b.status = 1;
            b.lost = 1;
        }

        tidal_ws_parser_free(&b.parser);

        if (!conf->reconnect || !b.lost || *quit || b.stdin_done) {
            break;
        }

        /* the answers will not come over this connection */
        tidal_bridge_fail_pending(&b);

        if (b.ready) {
            attempt = 0;
            delay = TIDAL_BRIDGE_RETRY_MIN;
        }

        attempt++;

        if (tidal_bridge_backoff(&b, attempt, delay) != 0) {
            break;
        }

        delay = (delay * 2 < TIDAL_BRIDGE_RETRY_MAX) ? delay * 2
                                                     : TIDAL_BRIDGE_RETRY_MAX;
    }

    for (i = 0; i < b.npending; i++) {
        free(b.pending[i]);
    }

    for (i = 0; i < b.nheld; i++) {
        free(b.held[i].line);
    }

    json_decref(b.init_params);
    json_decref(b.session);
    free(b.init_id);
    tidal_lines_free(&b.in);
    free(b.out);

    tidal_helper_log(TIDAL_LOG_INFO, "exiting");

    return b.status;
}


/* the state of one connection, fresh for the next */

static void
tidal_bridge_reset(tidal_bridge_t *b)
{
    tidal_ws_parser_init_client(&b->parser, TIDAL_BRIDGE_MESSAGE_MAX);

    b->read_events = POLLIN;
    b->write_events = POLLOUT;
    b->ssl_error[0] = '\0';
    b->out_pos = 0;
    b->out_len = 0;
    b->status = 0;
    b->resume_id[0] = '\0';

    b->close_sent = 0;
    b->done = 0;
    b->ssl_broken = 0;
    b->lost = 0;
    b->ready = 0;
}


/*
 * Waits before the next attempt, from half to all of delay so that the
 * bridges of a room do not all come back at once; a request from stdin
 * meanwhile is answered with an error at once.  0, or -1 to stop (stdin's
 * end or a signal) with b->status set.
 */

static int
tidal_bridge_backoff(tidal_bridge_t *b, unsigned attempt, int64_t delay)
{
    int            rc;
    int64_t        wait, until, left, now;
    uint32_t       r;
    struct pollfd  pfd;

    if (RAND_bytes((unsigned char *) &r, sizeof(r)) != 1) {
        r = 0;
    }

    wait = delay / 2 + (int64_t) (r % (uint32_t) (delay / 2 + 1));

    tidal_helper_log(TIDAL_LOG_INFO, "reconnecting to %s in %lld ms "
                     "(attempt %u)", b->conf->url, (long long) wait,
                     attempt);

    until = tidal_helper_msec() + wait;

    for ( ;; ) {
        if (*b->quit) {
            tidal_helper_log(TIDAL_LOG_INFO, "signal %d", (int) *b->quit);
            b->status = 0;
            return -1;
        }

        now = tidal_helper_msec();

        tidal_bridge_release_held(b, now);

        left = until - now;

        if (left <= 0) {
            return 0;
        }

        /* wake up for the oldest held message's time, too */
        if (b->nheld > 0 && b->held[0].until - now < left) {
            left = (b->held[0].until - now > 0) ? b->held[0].until - now : 1;
        }

        /* a client without input (fd -1) is not polled: a plain wait */
        pfd.fd = b->client->in;
        pfd.events = POLLIN;
        pfd.revents = 0;

        rc = poll(&pfd, 1, (int) left);

        if (rc == -1) {
            if (errno == EINTR) {
                continue;
            }

            tidal_helper_log(TIDAL_LOG_ERR, "poll() failed: %s",
                             strerror(errno));
            b->status = 1;
            return -1;
        }

        if (rc == 0) {
            continue;
        }

        rc = tidal_lines_read(&b->in, b->client->in, "stdin",
                              tidal_bridge_line, b);

        if (rc == -1) {
            tidal_helper_log(TIDAL_LOG_INFO, "stdin closed");
            b->stdin_done = 1;
            b->status = 0;
            return -1;
        }

        if (rc == -2) {
            b->status = 1;
            return -1;
        }
    }
}


/*
 * A close code the server sends when it goes away or fails by itself;
 * the others (1002, 1007, 1008, 1009...) blame the client: again would
 * fail again.
 */

static int
tidal_bridge_retryable(uint16_t code)
{
    switch (code) {

    case TIDAL_WS_CLOSE_GOING_AWAY:
    case TIDAL_WS_CLOSE_INTERNAL:
    case 1012:                                /* service restart */
    case 1013:                                /* try again later */
    case 1014:                                /* bad gateway */
        return 1;

    default:
        return 0;
    }
}


static int
tidal_bridge_connect(const tidal_bridge_conf_t *conf, int64_t deadline)
{
    int               fd, rc, err;
    socklen_t         len;
    struct addrinfo   hints, *res, *ai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(conf->host, conf->port, &hints, &res);
    if (rc != 0) {
        tidal_helper_log(TIDAL_LOG_ERR, "cannot connect to %s: %s",
                         conf->authority, gai_strerror(rc));
        return -1;
    }

    fd = -1;
    err = 0;

    /* "localhost" may be ::1 and 127.0.0.1: the first that answers */

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK
                                   | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1) {
            err = errno;
            continue;
        }

        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }

        err = errno;

        if (err == EINPROGRESS) {
            rc = tidal_bridge_wait(fd, POLLOUT, deadline);
            len = sizeof(err);

            if (rc == 0
                && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
                && err == 0)
            {
                break;
            }

            if (rc != 0) {
                err = ETIMEDOUT;
            }
        }

        close(fd);
        fd = -1;
    }

    freeaddrinfo(res);

    if (fd == -1) {
        tidal_helper_log(TIDAL_LOG_ERR, "cannot connect to %s: %s",
                         conf->authority, strerror(err));
    }

    return fd;
}


/* TLS on the connected socket; the server's certificate must be valid */

static int
tidal_bridge_tls(tidal_bridge_t *b, const tidal_bridge_conf_t *conf,
    int64_t deadline)
{
    int            rc;
    long           verify;
    short          events;
    ssize_t        n;
    unsigned char  addr[16];

    b->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (b->ssl_ctx == NULL) {
        goto failed;
    }

    if (SSL_CTX_set_min_proto_version(b->ssl_ctx, TLS1_2_VERSION) != 1) {
        goto failed;
    }

    SSL_CTX_set_verify(b->ssl_ctx, SSL_VERIFY_PEER, NULL);

    /*
     * The close frame, not close_notify, tells the room's end from a cut,
     * and nginx may end a connection without close_notify: an EOF reads
     * as the end of the stream, as it does with ws://.
     */
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(b->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif

    /* b->out may move (realloc) and grow between two tries of a write */
    SSL_CTX_set_mode(b->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                 | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (conf->ca_file != NULL) {
        rc = SSL_CTX_load_verify_locations(b->ssl_ctx, conf->ca_file, NULL);

    } else {
        rc = SSL_CTX_set_default_verify_paths(b->ssl_ctx);
    }

    if (rc != 1) {
        tidal_helper_log(TIDAL_LOG_ERR, "cannot load the CA certificates "
                         "of %s: %s",
                         conf->ca_file ? conf->ca_file : "the system",
                         tidal_bridge_ssl_reason());
        return -1;
    }

    b->ssl = SSL_new(b->ssl_ctx);
    if (b->ssl == NULL || SSL_set_fd(b->ssl, b->fd) != 1) {
        goto failed;
    }

    /*
     * OpenSSL 3 checks an address given to SSL_set1_host() against the
     * certificate's IP addresses; an address is no SNI (RFC 6066 3).
     */

    if (inet_pton(AF_INET, conf->host, addr) != 1
        && inet_pton(AF_INET6, conf->host, addr) != 1
        && SSL_set_tlsext_host_name(b->ssl, conf->host) != 1)
    {
        goto failed;
    }

    if (SSL_set1_host(b->ssl, conf->host) != 1) {
        goto failed;
    }

    for ( ;; ) {
        ERR_clear_error();

        rc = SSL_connect(b->ssl);

        if (rc == 1) {
            break;
        }

        n = tidal_bridge_ssl_failed(b, rc, &events);

        if (n == -1 && errno == EAGAIN) {
            if (tidal_bridge_wait(b->fd, events, deadline) == 0) {
                continue;
            }

            tidal_helper_log(TIDAL_LOG_ERR, "TLS handshake with %s failed: "
                             "no answer within %d ms", conf->authority,
                             TIDAL_BRIDGE_CONNECT_TIME);
            return -1;
        }

        b->ssl_broken = 1;
        verify = SSL_get_verify_result(b->ssl);

        if (verify != X509_V_OK) {
            tidal_helper_log(TIDAL_LOG_ERR, "cannot verify the certificate "
                             "of %s: %s", conf->host,
                             X509_verify_cert_error_string(verify));

        } else {
            tidal_helper_log(TIDAL_LOG_ERR, "TLS handshake with %s failed: "
                             "%s", conf->authority,
                             n == 0 ? "the server closed the connection"
                                    : tidal_bridge_strerror(b));
        }

        return -1;
    }

    tidal_helper_log(TIDAL_LOG_DEBUG, "%s, %s", SSL_get_version(b->ssl),
                     SSL_get_cipher_name(b->ssl));

    return 0;

failed:

    tidal_helper_log(TIDAL_LOG_ERR, "TLS setup failed: %s",
                     tidal_bridge_ssl_reason());

    return -1;
}


/* close_notify, if the connection can still take it; best effort */

static void
tidal_bridge_tls_end(tidal_bridge_t *b)
{
    if (b->ssl != NULL) {
        if (!b->ssl_broken && SSL_is_init_finished(b->ssl)) {
            ERR_clear_error();
            (void) SSL_shutdown(b->ssl);
        }

        SSL_free(b->ssl);
        b->ssl = NULL;
    }

    SSL_CTX_free(b->ssl_ctx);
    b->ssl_ctx = NULL;
}


static int
tidal_bridge_handshake(tidal_bridge_t *b, const tidal_bridge_conf_t *conf,
    int64_t deadline)
{
    int            i, n;
    char          *req, *end, line[256];
    size_t         len, got, size;
    ssize_t        r;
    unsigned       status;
    const char    *why, *colon;
    unsigned char  raw[16];
    char           key[32], head[TIDAL_BRIDGE_HEAD_MAX];

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        tidal_helper_log(TIDAL_LOG_ERR, "RAND_bytes() failed");
        return -1;
    }

    EVP_EncodeBlock((unsigned char *) key, raw, sizeof(raw));

    size = 1024 + strlen(conf->url);

    for (i = 0; i < conf->nheaders; i++) {
        size += strlen(conf->headers[i]) + 2;
    }

    req = malloc(size);
    if (req == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory");
        return -1;
    }

    n = snprintf(req, size,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: mcp\r\n"
                 "User-Agent: tidal-helper/" TIDAL_HELPER_VERSION "\r\n",
                 conf->path ? conf->path : "/", conf->authority, key);
    len = (size_t) n;

    for (i = 0; i < conf->nheaders; i++) {
        colon = strchr(conf->headers[i], ':');

        /* the name only: a value may be a password or a token */
        tidal_helper_log(TIDAL_LOG_DEBUG, "sending the header %.*s",
                         (int) (colon - conf->headers[i]), conf->headers[i]);

        len += (size_t) snprintf(req + len, size - len, "%s\r\n",
                                 conf->headers[i]);
    }

    len += (size_t) snprintf(req + len, size - len, "\r\n");

    /* the request is small: the socket takes it at once, or soon */

    got = 0;

    while (got < len) {
        r = tidal_bridge_io_write(b, req + got, len - got);

        if (r > 0) {
            got += (size_t) r;
            continue;
        }

        if (r == -1 && (errno == EAGAIN || errno == EINTR)
            && tidal_bridge_wait(b->fd, b->write_events, deadline) == 0)
        {
            continue;
        }

        tidal_helper_log(TIDAL_LOG_ERR, "sending the handshake to %s "
                         "failed: %s", conf->authority,
                         r == -1 ? tidal_bridge_strerror(b) : "timed out");
        free(req);
        b->lost = 1;
        return -1;
    }

    free(req);

    /* the response head; frames may follow it in the same read */

    got = 0;

    for ( ;; ) {
        head[got] = '\0';
        end = memmem(head, got, "\r\n\r\n", 4);

        if (end != NULL) {
            break;
        }

        if (got == sizeof(head) - 1) {
            tidal_helper_log(TIDAL_LOG_ERR, "handshake failed: a response "
                             "head longer than %d bytes",
                             TIDAL_BRIDGE_HEAD_MAX);
            return -1;
        }

        if (tidal_bridge_wait(b->fd, b->read_events, deadline) != 0) {
            tidal_helper_log(TIDAL_LOG_ERR, "handshake failed: no response "
                             "from %s within %d ms", conf->authority,
                             TIDAL_BRIDGE_CONNECT_TIME);
            b->lost = 1;
            return -1;
        }

        r = tidal_bridge_io_read(b, head + got, sizeof(head) - 1 - got);

        if (r > 0) {
            got += (size_t) r;
            continue;
        }

        if (r == -1 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }

        tidal_helper_log(TIDAL_LOG_ERR, "handshake failed: %s",
                         r == 0 ? "the server closed the connection"
                                : tidal_bridge_strerror(b));
        b->lost = 1;
        return -1;
    }

    len = (size_t) (end - head) + 4;

    if (tidal_ws_response_check(head, len, key, strlen(key), "mcp", &status,
                                &why)
        != 0)
    {
        tidal_bridge_printable(line, sizeof(line), head,
                               strcspn(head, "\r\n"));

        if (status == 401 || status == 403) {
            tidal_helper_log(TIDAL_LOG_ERR, "handshake failed: \"%s\" (%s; "
                             "credentials go in --header)", line, why);

        } else {
            tidal_helper_log(TIDAL_LOG_ERR, "handshake failed: \"%s\" (%s)",
                             line, why);
        }

        /* a proxy whose room is not up yet, or nginx shutting down */
        b->lost = (status == 502 || status == 503 || status == 504);

        return -1;
    }

    tidal_helper_log(TIDAL_LOG_INFO, "connected to %s", conf->url);

    if (got > len) {
        tidal_bridge_frames(b, (uint8_t *) head + len, got - len);
    }

    /* what of TLS's record did not fit in head: poll() cannot see it */
    if (b->ssl != NULL && !b->done && SSL_pending(b->ssl) > 0) {
        tidal_bridge_read_socket(b);
    }

    return 0;
}


/* 0 when fd is ready, -1 at the deadline or on an error */

static int
tidal_bridge_wait(int fd, short events, int64_t deadline)
{
    int            rc;
    int64_t        left;
    struct pollfd  pfd;

    for ( ;; ) {
        left = deadline - tidal_helper_msec();

        if (left <= 0) {
            return -1;
        }

        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;

        rc = poll(&pfd, 1, (int) left);

        if (rc > 0) {
            return 0;
        }

        if (rc == -1 && errno != EINTR) {
            return -1;
        }
    }
}


/*
 * The socket's bytes, through TLS for wss://: n > 0; 0 at the end of the
 * stream; -1 and errno, EAGAIN when b->read_events (b->write_events for a
 * write) says what to wait for.
 */

static ssize_t
tidal_bridge_io_read(tidal_bridge_t *b, void *buf, size_t size)
{
    int  n;

    if (b->ssl == NULL) {
        return read(b->fd, buf, size);
    }

    ERR_clear_error();

    n = SSL_read(b->ssl, buf, (int) (size < INT_MAX ? size : INT_MAX));

    if (n > 0) {
        b->read_events = POLLIN;
        return n;
    }

    return tidal_bridge_ssl_failed(b, n, &b->read_events);
}


static ssize_t
tidal_bridge_io_write(tidal_bridge_t *b, const void *buf, size_t size)
{
    int  n;

    if (b->ssl == NULL) {
        return write(b->fd, buf, size);
    }

    ERR_clear_error();

    n = SSL_write(b->ssl, buf, (int) (size < INT_MAX ? size : INT_MAX));

    if (n > 0) {
        b->write_events = POLLOUT;
        return n;
    }

    if (tidal_bridge_ssl_failed(b, n, &b->write_events) == 0) {
        /* the server's close_notify: nothing more goes out */
        errno = EPIPE;
    }

    return -1;
}


/* an SSL call's rc <= 0 as tidal_bridge_io_read() returns it */

static ssize_t
tidal_bridge_ssl_failed(tidal_bridge_t *b, int rc, short *events)
{
    int  err;

    err = SSL_get_error(b->ssl, rc);

    switch (err) {

    case SSL_ERROR_WANT_READ:
        *events = POLLIN;
        errno = EAGAIN;
        return -1;

    case SSL_ERROR_WANT_WRITE:
        *events = POLLOUT;
        errno = EAGAIN;
        return -1;

    case SSL_ERROR_ZERO_RETURN:
        /* close_notify */
        return 0;

    case SSL_ERROR_SYSCALL:
        b->ssl_broken = 1;

        if (ERR_peek_error() == 0) {
            /* an EOF an old OpenSSL does not call an error */
            return (errno == 0) ? 0 : -1;
        }

        break;

    default:
        b->ssl_broken = 1;
        break;
    }

    snprintf(b->ssl_error, sizeof(b->ssl_error), "%s",
             tidal_bridge_ssl_reason());
    errno = EPROTO;

    return -1;
}


/* strerror(errno), or OpenSSL's reason after a TLS error */

static const char *
tidal_bridge_strerror(tidal_bridge_t *b)
{
    return b->ssl_error[0] ? b->ssl_error : strerror(errno);
}


/* the last error's words; some calls that fail leave no error queued */

static const char *
tidal_bridge_ssl_reason(void)
{
    const char  *reason;

    reason = ERR_reason_error_string(ERR_peek_last_error());

    return reason ? reason : "an unknown TLS error";
}


/* -- relaying ---------------------------------------------------------- */


static void
tidal_bridge_loop(tidal_bridge_t *b)
{
    int            n, timeout;
    int64_t        left, next;
    struct pollfd  pfd[2];

    while (!b->done) {

        if (*b->quit && !b->close_sent) {
            tidal_helper_log(TIDAL_LOG_INFO, "signal %d", (int) *b->quit);
            tidal_bridge_close(b, TIDAL_WS_CLOSE_GOING_AWAY, NULL);
        }

        timeout = -1;

        if (!b->close_sent && b->ready && b->client->timer != NULL) {
            next = b->client->timer(b->client->data, b, tidal_helper_msec());

            if (next != -1) {
                left = next - tidal_helper_msec();
                timeout = (left > 0) ? (int) left : 0;
            }
        }

        if (b->done) {
            break;
        }

        if (b->close_sent) {
            left = b->close_deadline - tidal_helper_msec();

            if (left <= 0) {
                tidal_helper_log(TIDAL_LOG_WARN, "no close frame from the "
                                 "server within %d ms",
                                 TIDAL_BRIDGE_CLOSE_TIME);
                break;
            }

            timeout = (int) left;
        }

        pfd[0].fd = b->fd;
        pfd[0].events = b->read_events;
        pfd[0].revents = 0;

        if (b->out_pos < b->out_len) {
            pfd[0].events |= b->write_events;
        }

        /*
         * stdin waits while the server does not take what we have, and
         * while the session is being resumed: the client's messages come
         * after our initialize is answered
         */
        pfd[1].fd = b->client->in;
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        n = (!b->stdin_done && !b->close_sent && b->resume_id[0] == '\0'
             && b->out_len - b->out_pos < TIDAL_BRIDGE_OUT_HIGH) ? 2 : 1;

        if (poll(pfd, (nfds_t) n, timeout) == -1) {
            if (errno == EINTR) {
                continue;
            }

            tidal_helper_log(TIDAL_LOG_ERR, "poll() failed: %s",
                             strerror(errno));
            b->status = 1;
            break;
        }

        if (pfd[0].revents & (b->read_events | POLLHUP | POLLERR)) {
            tidal_bridge_read_socket(b);
        }

        if (!b->done && (pfd[0].revents & b->write_events)) {
            tidal_bridge_write_socket(b);
        }

        if (!b->done && n == 2 && pfd[1].revents) {
            tidal_bridge_read_stdin(b);
        }
    }
}


static void
tidal_bridge_read_socket(tidal_bridge_t *b)
{
    ssize_t  n;
    uint8_t  buf[TIDAL_BRIDGE_READ];

    for ( ;; ) {
        n = tidal_bridge_io_read(b, buf, sizeof(buf));

        if (n <= 0) {
            break;
        }

        tidal_bridge_frames(b, buf, (size_t) n);

        /*
         * TLS may hold decrypted bytes that poll() does not see: read
         * until it wants the socket
         */

        if (b->ssl == NULL || b->done) {
            return;
        }
    }

    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }

    b->done = 1;

    if (b->close_sent && n == 0) {
        /* our close was answered by the end of the connection: enough */
        tidal_helper_log(TIDAL_LOG_INFO, "the server closed the connection");
        return;
    }

    b->status = 1;
    b->lost = b->conf->reconnect;

    tidal_helper_log(TIDAL_LOG_ERR, "the connection was lost without a "
                     "close frame (1006): %s",
                     n == 0 ? "end of stream" : tidal_bridge_strerror(b));
}


static void
tidal_bridge_frames(tidal_bridge_t *b, const uint8_t *p, size_t n)
{
    const uint8_t          *end;
    tidal_ws_event_t        ev;
    tidal_ws_event_type_e   t;

    end = p + n;

    while (!b->done) {
        t = tidal_ws_parse(&b->parser, &p, end, &ev);

        switch (t) {

        case TIDAL_WS_AGAIN:
            return;

        case TIDAL_WS_TEXT:
            if (b->conf->reconnect
                && tidal_bridge_track_in(b, ev.data, ev.len))
            {
                break;
            }

            if (tidal_bridge_client_event(b, ev.data, ev.len)) {
                break;
            }

            (void) tidal_bridge_receive(b, ev.data, ev.len);

            break;

        case TIDAL_WS_PING:
            tidal_helper_log(TIDAL_LOG_DEBUG, "ping, %zu bytes", ev.len);
            (void) tidal_bridge_send(b, TIDAL_WS_OP_PONG, ev.data, ev.len);
            break;

        case TIDAL_WS_PONG:
            break;

        case TIDAL_WS_CLOSE:
            b->done = 1;

            if (b->close_sent) {
                tidal_helper_log(TIDAL_LOG_INFO, "closed (%u)",
                                 (unsigned) ev.code);
                return;
            }

            tidal_helper_log(TIDAL_LOG_ERR, "the server closed the "
                             "connection: %u \"%.*s\"", (unsigned) ev.code,
                             (int) ev.len, (const char *) ev.data);

            /* the echo, as RFC 6455 5.5.1 asks; 1005 echoes as no code */
            tidal_bridge_close(b, ev.code, NULL);
            b->status = 1;
            b->lost = b->conf->reconnect && tidal_bridge_retryable(ev.code);
            return;

        case TIDAL_WS_FAIL:
            tidal_helper_log(TIDAL_LOG_ERR, "the server broke the protocol: "
                             "%s; closing with %u", ev.reason,
                             (unsigned) ev.code);
            tidal_bridge_close(b, ev.code, ev.reason);
            b->done = 1;
            b->status = 1;
            return;
        }
    }
}


/* reads what stdin has; each complete line is one text frame */

static void
tidal_bridge_read_stdin(tidal_bridge_t *b)
{
    int  rc;

    rc = tidal_lines_read(&b->in, b->client->in, "stdin", tidal_bridge_line,
                          b);

    if (rc == -2) {
        tidal_bridge_close(b, TIDAL_WS_CLOSE_INTERNAL, NULL);
        b->status = 1;

    } else if (rc == -1) {
        tidal_helper_log(TIDAL_LOG_INFO, "stdin closed");
        b->stdin_done = 1;
        tidal_bridge_close(b, TIDAL_WS_CLOSE_NORMAL, NULL);
    }
}


static void
tidal_bridge_line(void *data, char *line, size_t len)
{
    tidal_bridge_t *b = data;

    char          *text;
    tidal_utf8_t   utf8;

    if (b->fd == -1) {
        if (!b->connected && tidal_bridge_hold(b, line, len) == 0) {
            return;
        }

        tidal_bridge_offline(b, line, len);
        return;
    }

    /* the server would end the connection with 1007 for the whole room */
    tidal_utf8_init(&utf8);

    if (tidal_utf8_feed(&utf8, (uint8_t *) line, len) != 0
        || !tidal_utf8_complete(&utf8))
    {
        tidal_helper_log(TIDAL_LOG_WARN, "a message that is not UTF-8 was "
                         "not sent");
        return;
    }

    /* initialize is sent with the bridge's own ask for the events */
    text = tidal_bridge_client_out(b, line, len, &len);

    if (text != NULL) {
        line = text;
    }

    if (b->conf->reconnect) {
        tidal_bridge_track_out(b, line, len);
    }

    (void) tidal_bridge_send(b, TIDAL_WS_OP_TEXT, line, len);

    free(text);
}


/*
 * What the client asks for in initialize and logging/setLevel, before
 * the message goes on.  An initialize is returned rewritten (malloc'ed)
 * to ask for the events; NULL: send the line as it is.
 */

static char *
tidal_bridge_client_out(tidal_bridge_t *b, const char *line, size_t len,
    size_t *out_len)
{
    int          i;
    char        *text;
    json_t      *msg, *params, *caps, *experimental, *level;
    const char  *method, *name;

    msg = json_loadb(line, len, 0, NULL);
    method = json_string_value(json_object_get(msg, "method"));
    params = json_object_get(msg, "params");
    text = NULL;

    if (method != NULL && strcmp(method, "logging/setLevel") == 0) {
        level = json_object_get(params, "level");

        /* an unknown level changes nothing: the server refuses it */
        for (i = TIDAL_MCP_LOG_DEBUG; i <= TIDAL_MCP_LOG_EMERGENCY; i++) {
            name = tidal_mcp_log_level_name(i);

            if (json_is_string(level)
                && strcmp(json_string_value(level), name) == 0)
            {
                b->client_level = i;
            }
        }

    } else if (method != NULL && strcmp(method, "initialize") == 0
               && json_is_object(params))
    {
        caps = json_object_get(params, "capabilities");
        experimental = json_object_get(caps, "experimental");

        b->client_events = json_is_object(json_object_get(experimental,
                                              TIDAL_MCP_EVENTS_CAPABILITY));

        if (!json_is_object(caps)) {
            caps = json_object();
            (void) json_object_set_new(params, "capabilities", caps);
        }

        if (!json_is_object(experimental)) {
            experimental = json_object();
            (void) json_object_set_new(caps, "experimental", experimental);
        }

        if (json_object_set_new(experimental, TIDAL_MCP_EVENTS_CAPABILITY,
                                json_object())
            == 0)
        {
            text = json_dumps(msg, JSON_COMPACT);
        }

        if (text == NULL) {
            tidal_helper_log(TIDAL_LOG_ERR, "out of memory asking for the "
                             "room's events");

        } else {
            *out_len = strlen(text);
        }
    }

    json_decref(msg);

    return text;
}


/*
 * A room event for a client that did not ask for the events: its log
 * line, when the client's level lets it through, in its place.  1: the
 * event is dealt with; 0: any other message, for stdout as it is.
 */

static int
tidal_bridge_client_event(tidal_bridge_t *b, const uint8_t *p, size_t len)
{
    int          level, event;
    char        *text;
    size_t       n;
    json_t      *msg;
    const char  *method;

    if (b->client_events) {
        return 0;
    }

    msg = json_loadb((const char *) p, len, 0, NULL);
    method = json_string_value(json_object_get(msg, "method"));

    /* the sound comes only to a client that asked for it: as it is */
    event = method != NULL
            && strncmp(method, TIDAL_PROTOCOL_EVENT, TIDAL_PROTOCOL_EVENT_LEN)
               == 0
            && strcmp(method, TIDAL_BRIDGE_SOUND_METHOD) != 0;

    json_decref(msg);

    if (!event) {
        return 0;
    }

    text = tidal_mcp_event_message((const char *) p, len, &level, &n);

    if (text != NULL && level >= b->client_level) {
        (void) tidal_bridge_receive(b, (uint8_t *) text, n);
    }

    free(text);

    return 1;
}


/* a line from stdin while there is no connection to send it over */

static void
tidal_bridge_offline(tidal_bridge_t *b, char *line, size_t len)
{
    char    *id;
    json_t  *msg;

    msg = json_loadb(line, len, 0, NULL);

    id = NULL;

    if (json_is_string(json_object_get(msg, "method"))) {
        id = tidal_bridge_id_text(json_object_get(msg, "id"));
    }

    json_decref(msg);

    if (id == NULL) {
        tidal_helper_log(TIDAL_LOG_DEBUG, "a message that is no request "
                         "was dropped while reconnecting");
        return;
    }

    /* the client would wait for an answer the room cannot give */
    tidal_bridge_unreachable(b, id);
    free(id);
}


/* a line from stdin before the first connection: it waits for one */

static int
tidal_bridge_hold(tidal_bridge_t *b, char *line, size_t len)
{
    char                 *copy;
    tidal_bridge_held_t  *h;

    if (b->nheld == TIDAL_BRIDGE_HOLD_MAX
        || b->held_bytes + len > TIDAL_BRIDGE_HOLD_BYTES)
    {
        return -1;
    }

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return -1;
    }

    memcpy(copy, line, len);

    h = &b->held[b->nheld++];
    h->line = copy;
    h->len = len;
    h->until = tidal_helper_msec() + TIDAL_BRIDGE_HOLD_TIME;

    b->held_bytes += len;

    tidal_helper_log(TIDAL_LOG_DEBUG, "a message waits for the first "
                     "connection (%u waiting)", b->nheld);

    return 0;
}


/*
 * Held lines in order: sent, now that the connection is up (now -1), or
 * those whose time has come answered as unreachable.
 */

static void
tidal_bridge_release_held(tidal_bridge_t *b, int64_t now)
{
    unsigned              n;
    tidal_bridge_held_t  *h;

    for (n = 0; n < b->nheld; n++) {
        h = &b->held[n];

        if (now != -1 && h->until > now) {
            break;
        }

        if (now != -1) {
            tidal_helper_log(TIDAL_LOG_INFO, "a message waited %d ms for "
                             "the first connection; answering it as "
                             "unreachable", TIDAL_BRIDGE_HOLD_TIME);
        }

        if (now == -1) {
            tidal_bridge_line(b, h->line, h->len);

        } else {
            tidal_bridge_offline(b, h->line, h->len);
        }

        b->held_bytes -= h->len;
        free(h->line);
    }

    if (n > 0) {
        memmove(&b->held[0], &b->held[n],
                (b->nheld - n) * sizeof(tidal_bridge_held_t));
        b->nheld -= n;
    }
}


/* what resuming needs of a message from stdin, sent as it is */

static void
tidal_bridge_track_out(tidal_bridge_t *b, char *line, size_t len)
{
    char        *id;
    json_t      *msg, *params;
    const char  *method;

    msg = json_loadb(line, len, 0, NULL);

    method = json_string_value(json_object_get(msg, "method"));
    id = tidal_bridge_id_text(json_object_get(msg, "id"));

    if (method == NULL || id == NULL) {
        free(id);
        json_decref(msg);
        return;
    }

    if (strcmp(method, "initialize") == 0 && b->init_params == NULL) {
        params = json_object_get(msg, "params");

        b->init_params = json_is_object(params) ? json_deep_copy(params)
                                                : json_object();
        b->init_id = strdup(id);
    }

    if (b->npending == TIDAL_BRIDGE_PENDING_MAX) {
        /* the oldest is the likeliest to have been answered unseen */
        tidal_helper_log(TIDAL_LOG_DEBUG, "%d requests unanswered; "
                         "forgetting %s", TIDAL_BRIDGE_PENDING_MAX,
                         b->pending[0]);
        free(b->pending[0]);
        memmove(&b->pending[0], &b->pending[1],
                (TIDAL_BRIDGE_PENDING_MAX - 1) * sizeof(char *));
        b->npending--;
    }

    b->pending[b->npending++] = id;

    json_decref(msg);
}


/*
 * What resuming needs of a message from the server: the session id in
 * the answer to initialize, the seq of each event, the answer to our own
 * initialize (1: swallowed, not for stdout).
 */

static int
tidal_bridge_track_in(tidal_bridge_t *b, const uint8_t *p, size_t len)
{
    int          swallow;
    char        *id;
    json_t      *msg, *seq;
    const char  *method;

    msg = json_loadb((const char *) p, len, 0, NULL);

    if (!json_is_object(msg)) {
        json_decref(msg);
        return 0;
    }

    swallow = 0;
    method = json_string_value(json_object_get(msg, "method"));

    if (method != NULL) {
        if (strncmp(method, TIDAL_PROTOCOL_EVENT, TIDAL_PROTOCOL_EVENT_LEN)
            == 0)
        {
            seq = json_object_get(json_object_get(msg, "params"), "seq");

            /* events come in seq order; a new session may start lower */
            if (json_is_integer(seq)) {
                b->last_seq = json_integer_value(seq);
            }
        }

    } else if (b->resume_id[0] != '\0'
               && json_is_string(json_object_get(msg, "id"))
               && strcmp(json_string_value(json_object_get(msg, "id")),
                         b->resume_id) == 0)
    {
        tidal_bridge_resumed(b, msg);
        swallow = 1;

    } else {
        id = tidal_bridge_id_text(json_object_get(msg, "id"));

        if (id != NULL) {
            if (b->init_id != NULL && strcmp(id, b->init_id) == 0) {
                (void) tidal_bridge_take_session(b,
                                            json_object_get(msg, "result"));
            }

            tidal_bridge_answered(b, id);
            free(id);
        }
    }

    json_decref(msg);

    return swallow;
}


/* from initialize's result; 1 when the server resumed the session */

static int
tidal_bridge_take_session(tidal_bridge_t *b, json_t *result)
{
    int      resumed;
    json_t  *meta, *sid, *seq;

    meta = json_object_get(result, "_meta");
    sid = json_object_get(meta, TIDAL_META_SESSION);
    seq = json_object_get(meta, TIDAL_META_SEQ);
    resumed = json_is_true(json_object_get(meta, TIDAL_META_RESUMED));

    if (sid != NULL) {
        json_decref(b->session);
        b->session = json_incref(sid);
    }

    /* a new session starts at the room's seq of the moment */
    if (!resumed && json_is_integer(seq)) {
        b->last_seq = json_integer_value(seq);
    }

    return resumed;
}


/* the answer to our initialize after a reconnect */

static void
tidal_bridge_resumed(tidal_bridge_t *b, json_t *msg)
{
    json_t       *result;
    const char   *why;
    static char   initialized[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

    b->resume_id[0] = '\0';

    result = json_object_get(msg, "result");

    if (!json_is_object(result)) {
        why = json_string_value(json_object_get(json_object_get(msg,
                                                                "error"),
                                                "message"));
        tidal_helper_log(TIDAL_LOG_ERR, "initialize after reconnecting "
                         "failed: %s", why ? why : "no result");

        /* as if the connection were lost: the next one may do better */
        tidal_bridge_close(b, TIDAL_WS_CLOSE_NORMAL, NULL);
        b->status = 1;
        b->lost = 1;
        return;
    }

    if (tidal_bridge_take_session(b, result)) {
        tidal_helper_log(TIDAL_LOG_INFO, "the session was resumed");

    } else {
        tidal_helper_log(TIDAL_LOG_WARN, "the session was not resumed: "
                         "events while disconnected are lost");
    }

    (void) tidal_bridge_send(b, TIDAL_WS_OP_TEXT, initialized,
                             sizeof(initialized) - 1);
    tidal_bridge_ready(b);
}


/*
 * Our own initialize on a new connection: the client's params with the
 * session to resume; an id of ours, so that its answer is not the
 * client's.
 */

static int
tidal_bridge_resume(tidal_bridge_t *b)
{
    int      rc;
    char    *text;
    json_t  *params, *meta, *msg;

    params = json_deep_copy(b->init_params);
    if (params == NULL) {
        goto failed;
    }

    meta = json_object_get(params, "_meta");

    if (!json_is_object(meta)) {
        meta = json_object();

        if (json_object_set_new(params, "_meta", meta) != 0) {
            json_decref(params);
            goto failed;
        }
    }

    if (b->session != NULL
        && (json_object_set(meta, TIDAL_META_SESSION, b->session) != 0
            || json_object_set_new(meta, TIDAL_META_LAST_SEQ,
                                   json_integer(b->last_seq))
               != 0))
    {
        json_decref(params);
        goto failed;
    }

    snprintf(b->resume_id, sizeof(b->resume_id), "tidal-bridge:%u",
             ++b->resume_n);

    msg = json_pack("{s:s, s:s, s:s, s:o}", "jsonrpc", "2.0",
                    "id", b->resume_id, "method", "initialize",
                    "params", params);

    text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);

    if (text == NULL) {
        goto failed;
    }

    tidal_helper_log(TIDAL_LOG_INFO, "resuming the session after seq %lld",
                     (long long) b->last_seq);

    rc = tidal_bridge_send(b, TIDAL_WS_OP_TEXT, text, strlen(text));
    free(text);

    return rc;

failed:

    tidal_helper_log(TIDAL_LOG_ERR, "out of memory for initialize");
    b->status = 1;

    return -1;
}


/* a JSON-RPC id as JSON text (a string keeps its quotes), or NULL */

static char *
tidal_bridge_id_text(json_t *id)
{
    if (!json_is_string(id) && !json_is_number(id)) {
        return NULL;
    }

    return json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
}


static void
tidal_bridge_answered(tidal_bridge_t *b, const char *id)
{
    unsigned  i;

    for (i = 0; i < b->npending; i++) {
        if (strcmp(b->pending[i], id) == 0) {
            free(b->pending[i]);

            /* in the order sent: the first is the one to forget first */
            b->npending--;
            memmove(&b->pending[i], &b->pending[i + 1],
                    (b->npending - i) * sizeof(char *));
            return;
        }
    }
}


/* the requests the lost connection took with it get an error each */

static void
tidal_bridge_fail_pending(tidal_bridge_t *b)
{
    unsigned  i;

    for (i = 0; i < b->npending; i++) {
        tidal_bridge_unreachable(b, b->pending[i]);
        free(b->pending[i]);
    }

    b->npending = 0;
}


static void
tidal_bridge_unreachable(tidal_bridge_t *b, const char *id)
{
    int     n;
    char   *line;
    size_t  size;

    size = strlen(id) + sizeof(TIDAL_BRIDGE_UNREACHABLE) + 128;

    line = malloc(size);
    if (line == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory for an error "
                         "response");
        return;
    }

    n = snprintf(line, size, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":"
                 "{\"code\":-32000,\"message\":\"%s\"}}", id,
                 TIDAL_BRIDGE_UNREACHABLE);

    (void) tidal_bridge_receive(b, (uint8_t *) line, (size_t) n);

    free(line);
}


/* -- the client's side ------------------------------------------------- */


void
tidal_bridge_send_message(tidal_bridge_t *b, const char *text, size_t len)
{
    /* sent as they are; only an initialize is rewritten, into a copy */
    tidal_bridge_line(b, (char *) text, len);
}


void
tidal_bridge_end(tidal_bridge_t *b, int status)
{
    b->stdin_done = 1;
    b->status = status;
    tidal_bridge_close(b, TIDAL_WS_CLOSE_NORMAL, NULL);
}


static void
tidal_bridge_ready(tidal_bridge_t *b)
{
    b->ready = 1;

    if (b->client->ready != NULL) {
        b->client->ready(b->client->data, b);
    }
}


/* a message for the client; when it cannot take it the bridge closes */

static int
tidal_bridge_receive(tidal_bridge_t *b, const uint8_t *p, size_t len)
{
    if (b->client->receive(b->client->data, b, p, len) == 0) {
        return 0;
    }

    if (!b->close_sent && b->fd != -1) {
        tidal_bridge_close(b, TIDAL_WS_CLOSE_GOING_AWAY, NULL);
    }

    return -1;
}


static int
tidal_bridge_stdout_receive(void *data, tidal_bridge_t *b, const uint8_t *p,
    size_t len)
{
    if (tidal_bridge_stdout(p, len) != 0) {
        tidal_helper_log(TIDAL_LOG_INFO, "writing stdout failed: %s; "
                         "closing", strerror(errno));
        return -1;
    }

    return 0;
}


/* queues one masked frame; 0, or -1 when memory ran out */

static int
tidal_bridge_send(tidal_bridge_t *b, unsigned opcode, const void *payload,
    size_t len)
{
    size_t    need, size, hdr;
    uint8_t  *out, mask[4];

    if (b->close_sent) {
        return 0;
    }

    if (RAND_bytes(mask, sizeof(mask)) != 1) {
        tidal_helper_log(TIDAL_LOG_ERR, "RAND_bytes() failed");
        b->done = 1;
        b->status = 1;
        return -1;
    }

    if (b->out_pos == b->out_len) {
        b->out_pos = 0;
        b->out_len = 0;
    }

    need = b->out_len + TIDAL_WS_MAX_HEADER + len;

    if (need > b->out_size && b->out_pos > 0) {
        memmove(b->out, b->out + b->out_pos, b->out_len - b->out_pos);
        b->out_len -= b->out_pos;
        b->out_pos = 0;
        need = b->out_len + TIDAL_WS_MAX_HEADER + len;
    }

    if (need > b->out_size) {
        size = (need > b->out_size * 2) ? need : b->out_size * 2;

        out = realloc(b->out, size);
        if (out == NULL) {
            tidal_helper_log(TIDAL_LOG_ERR, "out of memory for a frame of "
                             "%zu bytes", len);
            b->done = 1;
            b->status = 1;
            return -1;
        }

        b->out = out;
        b->out_size = size;
    }

    hdr = tidal_ws_client_frame_header(b->out + b->out_len, opcode, len,
                                       mask);
    out = b->out + b->out_len + hdr;

    if (len > 0) {
        memcpy(out, payload, len);
        tidal_ws_mask(out, len, mask);
    }

    b->out_len += hdr + len;

    tidal_bridge_write_socket(b);

    return 0;
}


/* queues a close frame; nothing is sent after it */

static void
tidal_bridge_close(tidal_bridge_t *b, uint16_t code, const char *reason)
{
    size_t   n;
    uint8_t  payload[TIDAL_WS_MAX_CONTROL];

    if (b->close_sent) {
        return;
    }

    n = tidal_ws_close_payload(payload, code, reason);

    if (tidal_bridge_send(b, TIDAL_WS_OP_CLOSE, payload, n) != 0) {
        return;
    }

    b->close_sent = 1;
    b->close_deadline = tidal_helper_msec() + TIDAL_BRIDGE_CLOSE_TIME;
}


static void
tidal_bridge_write_socket(tidal_bridge_t *b)
{
    ssize_t  n;

    while (b->out_pos < b->out_len) {
        n = tidal_bridge_io_write(b, b->out + b->out_pos,
                                  b->out_len - b->out_pos);

        if (n > 0) {
            b->out_pos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && errno == EAGAIN) {
            return;
        }

        /* the read side tells why, unless we are past reading */
        tidal_helper_log(b->done ? TIDAL_LOG_DEBUG : TIDAL_LOG_ERR,
                         "sending to the server failed: %s",
                         tidal_bridge_strerror(b));
        b->out_pos = b->out_len;

        if (!b->done) {
            b->done = 1;
            b->status = 1;
            b->lost = b->conf->reconnect;
        }

        return;
    }
}


/* a close frame queued last is worth a short wait */

static void
tidal_bridge_flush(tidal_bridge_t *b)
{
    int64_t  deadline;

    deadline = tidal_helper_msec() + TIDAL_BRIDGE_FLUSH_TIME;

    while (b->out_pos < b->out_len
           && tidal_bridge_wait(b->fd, b->write_events, deadline) == 0)
    {
        b->done = 1;
        tidal_bridge_write_socket(b);
    }
}


/*
 * One message and its newline.  A newline inside JSON can only be
 * whitespace between tokens (strings escape theirs), so CR and LF become
 * spaces and the message stays one line.
 */

static int
tidal_bridge_stdout(const uint8_t *p, size_t len)
{
    size_t          n;
    const uint8_t  *end;

    end = p + len;

    while (p < end) {
        for (n = 0; p + n < end && p[n] != '\n' && p[n] != '\r'; n++) {
            /* void */
        }

        if (tidal_write_all(1, p, n) != 0) {
            return -1;
        }

        p += n;

        if (p < end) {
            if (tidal_write_all(1, " ", 1) != 0) {
                return -1;
            }

            p++;
        }
    }

    return tidal_write_all(1, "\n", 1);
}


/* a status line for the log, whatever bytes the peer sent */

static void
tidal_bridge_printable(char *dst, size_t size, const char *src, size_t len)
{
    size_t  i;

    for (i = 0; i < len && i < size - 1; i++) {
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    }

    dst[i] = '\0';
}
