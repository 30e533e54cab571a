/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * wsload: the load client of the fan-out benchmark - N WebSocket clients
 * (or, with --transport sse, N Server-Sent Events subscribers) on one
 * epoll loop, M messages published over HTTP, deliveries timed.
 *
 * Single-threaded on purpose: on a 2-core machine every thread we add
 * takes CPU from the server being measured, and one epoll loop in C keeps
 * up with nginx where a Node client saturates first.
 *
 * Transports: ws, a WebSocket client (tidal: subprotocol mcp, then
 * initialize and notifications/initialized as frames); sse, an event
 * stream over HTTP/1.1 (tidal: MCP Streamable HTTP - POST initialize,
 * POST notifications/initialized with the Mcp-Session-Id it gave, then
 * GET with Accept: text/event-stream, all on the client's one keep-alive
 * connection; nchan: a GET with Accept: text/event-stream to an
 * nchan_subscriber eventsource location).  Either way a delivery is a
 * message (a frame, or an SSE event's data: lines) carrying the marker.
 *
 * Phases: connect (all N upgraded, and initialized in tidal mode), idle
 * (prints "idle {...}" and, with --wait-go, waits for SIGUSR1 so the
 * driver can read the server's memory), publish (M POSTs one after
 * another on one keep-alive connection, deliveries counted per client),
 * then prints "result {...}" and, with --wait-go, waits for a second
 * SIGUSR1 before closing the clients so their teardown is not billed to
 * the publish phase.
 *
 * --sound SECONDS (tidal only, either transport): the clients ask for the
 * room's sound (capabilities.experimental["tidal/sound"], and not
 * tidal/events), nothing is published, and after the go signal wsload
 * counts for SECONDS the notifications/tidal/sound messages each client
 * gets and the sound events in them; a batch is known by its first
 * event's time, so the batches a client missed are counted too; then it
 * prints "sound {...}".
 *
 * Build: cc -O2 -Wall -Wextra -o wsload wsload.c -lcrypto
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define WS_GUID           "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_HEAD          8192
#define MAX_FRAME         (16u << 20)
#define MAX_CONNECT_TRIES 3
#define MAX_ERRORS_SHOWN  10
#define EPOLL_BATCH       1024

/* epoll ids above the client indexes */
#define ID_PUBLISHER      ((uint64_t) 1 << 40)
#define ID_SIGNAL         (((uint64_t) 1 << 40) + 1)

#define TIDAL_PROTOCOL    "2025-11-25"
#define SESSION_ID_MAX    64

#define DEFAULT_MARKER    "wsload-mark-"
#define DEFAULT_BODY                                                        \
    "{\"bench\":\"wsload-mark-%N%\",\"kind\":\"fanout\",\"text\":"          \
    "\"d1 $ sound \\\"bd*2 [~ bd] sn cp\\\" # gain 1.1 # room 0.3 "          \
    "# size 0.8 # speed (range 1 2 sine)\",\"who\":\"bench\","              \
    "\"padding\":\"0123456789abcdef0123456789abcdef0123456789\"}"

/* the room's events (notifications/tidal/...) go only to who asks */
#define TIDAL_INITIALIZE                                                    \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"   \
    "{\"protocolVersion\":\"" TIDAL_PROTOCOL "\",\"capabilities\":"         \
    "{\"experimental\":{\"tidal/events\":{}}},"                              \
    "\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}"

/* the room's sound only: the sound benchmark */
#define TIDAL_INITIALIZE_SOUND                                              \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"   \
    "{\"protocolVersion\":\"" TIDAL_PROTOCOL "\",\"capabilities\":"         \
    "{\"experimental\":{\"tidal/sound\":{}}},"                               \
    "\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}"

#define SOUND_METHOD      "\"method\":\"notifications/tidal/sound\""
#define SOUND_TIME        "{\"time\":"
#define SOUND_BATCHES     (1u << 16)
/* batches first seen in the window's first or last second are not judged */
#define SOUND_EDGE_NS     1000000000ULL

#define TIDAL_INITIALIZED                                                 \
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"


enum mode {
    MODE_TIDAL,
    MODE_NCHAN
};

enum transport {
    TRANSPORT_WS,
    TRANSPORT_SSE
};

enum phase {
    PHASE_CONNECT,
    PHASE_IDLE,
    PHASE_PUBLISH
};

enum conn_state {
    CONN_WAITING,       /* not started: handshakes in flight are bounded */
    CONN_CONNECTING,
    CONN_UPGRADING,     /* request sent, reading the 101 */
    CONN_INITIALIZING,  /* tidal: initialize sent, waiting for its result */
    CONN_NOTIFYING,     /* tidal sse: initialized POSTed, waiting for 202 */
    CONN_OPENING,       /* sse: GET sent, reading the stream's head */
    CONN_READY,
    CONN_FAILED,        /* never became ready */
    CONN_CLOSED         /* was ready, then lost */
};

struct buf {
    uint8_t   *data;
    size_t     len;
    size_t     cap;
};

struct conn {
    int          fd;
    uint8_t      state;
    uint8_t      tries;
    uint8_t      polling_out;
    uint8_t      frag_opcode;
    uint8_t      chunked;     /* sse: the stream is chunked */
    uint32_t     chunk_left;  /* sse: bytes of the chunk to come, CRLF too */
    uint32_t     delivered;
    uint32_t     next_index;
    struct buf   in;      /* bytes received, not yet a whole frame */
    struct buf   out;     /* bytes the socket did not take yet */
    struct buf   frag;    /* a fragmented message, or sse: a partial line */
    struct buf   event;   /* sse: the data: lines of the event so far */
    char        *session; /* tidal sse: the Mcp-Session-Id, until the GET */
    char         key[25];
};

struct endpoint {
    struct sockaddr_in   addr;
    char                 hostport[64];
    char                 path[512];
};

struct ws_frame {
    int              fin;
    int              opcode;
    const uint8_t   *payload;
    size_t           len;
};

struct publisher {
    int          fd;
    int          busy;          /* a POST waits for its response */
    uint32_t     next;          /* the next message to publish */
    uint32_t     ok;            /* 2xx answers */
    uint32_t     errors;
    int          aborted;
    uint64_t     sent_at;
    struct buf   in;
};

struct options {
    enum mode        mode;
    enum transport   transport;
    struct endpoint  url;
    struct endpoint  publish;
    int              have_publish;
    uint32_t         clients;
    uint32_t         messages;
    double           rate;              /* messages per second, 0: burst */
    const char      *body;
    const char      *marker;
    uint32_t         source_ips;
    uint32_t         concurrency;
    double           connect_timeout;
    double           go_timeout;
    double           timeout;           /* deliveries after the last POST */
    double           publish_timeout;   /* one POST's answer */
    int              wait_go;
    double           sound;             /* the sound window, 0: no sound */
};

/* a batch of sound, known by its first event's time */
struct sound_batch {
    double       time;
    uint64_t     first;         /* when a client first got it */
    uint32_t     count;         /* clients that got it */
};


static struct options    opt;
static struct conn      *conns;
static struct publisher  pub = { .fd = -1 };
static int               ep = -1;
static int               sigfd = -1;
static enum phase        phase = PHASE_CONNECT;

/* connect phase */
static uint32_t  next_new;           /* the next never-started client */
static uint32_t *retry_stack;
static uint32_t  retry_len;
static uint32_t  in_flight;
static uint32_t  ready_count;
static uint32_t  failed_count;
static uint32_t  closed_count;
static uint32_t  errors_shown;

/* publish phase, per message */
static uint64_t *msg_sent;
static uint64_t *msg_rtt;
static uint64_t *msg_first;
static uint64_t *msg_last;
static uint32_t *msg_count;

static uint64_t  deliveries;
static uint64_t  out_of_order;
static uint64_t  unknown_index;
static uint64_t  early_marked;       /* marked frames before the publish */
static uint64_t  other_frames;
static uint64_t  last_delivery;
static uint32_t  incomplete_ready;   /* ready clients still short of M */

static uint32_t  go_signals;
static int       stop_signal;
static uint64_t  rng_state;

/* --sound */
static const char          *initialize = TIDAL_INITIALIZE;
static size_t               initialize_len = sizeof(TIDAL_INITIALIZE) - 1;
static uint64_t             sound_start;
static uint64_t             sound_end;
static uint64_t             sound_messages;
static uint64_t             sound_events;
static uint64_t             sound_outside;     /* before or after the window */
static uint64_t             sound_late;        /* a batch after its time */
static struct sound_batch  *sound_batches;
static uint32_t             sound_nbatches;
static double              *sound_leads;       /* ms ahead of the first event */
static size_t               sound_nleads;
static size_t               sound_leads_cap;

static uint8_t   rbuf[65536];
static uint8_t   scratch[65536 + 14];


static void usage(void);
static void fatal(const char *fmt, ...);
static void note(const char *fmt, ...);
static uint64_t now_ns(void);
static double secs(uint64_t ns);
static int endpoint_parse(const char *url, struct endpoint *ep);
static void raise_nofile(uint32_t need);
static void buf_append(struct buf *b, const void *data, size_t len);
static void buf_consume(struct buf *b, size_t n);
static void buf_free(struct buf *b);
static void epoll_set(int fd, uint64_t id, uint32_t events, int op);
static void conns_start_more(void);
static void conn_start(uint32_t i);
static void conn_connected(struct conn *c);
static void conn_fail(struct conn *c, const char *why, int err);
static void conn_release(struct conn *c);
static void conn_readable(struct conn *c);
static void conn_writable(struct conn *c);
static void conn_bytes(struct conn *c, const uint8_t *data, size_t len);
static int conn_upgrade(struct conn *c);
static ssize_t conn_frames(struct conn *c, const uint8_t *p, size_t len);
static void conn_frame(struct conn *c, const struct ws_frame *f);
static void conn_message(struct conn *c, const uint8_t *p, size_t len);
static void conn_delivery(struct conn *c, const uint8_t *p, size_t len,
    const uint8_t *mark);
static void conn_ready(struct conn *c);
static void conn_sound(struct conn *c, const uint8_t *p, size_t len);
static void sound_report(double cpu);
static void sse_request(struct conn *c, const char *method,
    const char *body);
static void sse_bytes(struct conn *c, const uint8_t *data, size_t len);
static int sse_response(struct conn *c);
static ssize_t sse_stream(struct conn *c, const uint8_t *p, size_t len);
static void sse_data(struct conn *c, const uint8_t *p, size_t len);
static void sse_line(struct conn *c, const uint8_t *p, size_t len);
static char *http_head(const struct buf *b);
static void conn_send(struct conn *c, const void *data, size_t len);
static void conn_send_frame(struct conn *c, int opcode, const void *payload,
    size_t len);
static ssize_t ws_frame_parse(const uint8_t *p, size_t len,
    struct ws_frame *f);
static void ws_key(char key[25]);
static void ws_accept(const char *key, char accept[29]);
static int header_value(const char *head, const char *name, char *out,
    size_t size);
static int pub_connect(void);
static void pub_send(void);
static void pub_readable(void);
static int http_response(const struct buf *b, int *status, size_t *used,
    int *close_after);
static void signal_readable(void);
static void loop_once(int timeout_ms);
static int cmp_u64(const void *a, const void *b);
static void report(uint64_t t_first, uint64_t t_end, double cpu);
static double cpu_seconds(void);


int
main(int argc, char **argv)
{
    int                  ch, have_url;
    double               cpu_go;
    uint64_t             t0, t_go, t_drain, deadline, now;
    sigset_t             mask;
    struct epoll_event   ev;

    static const struct option longopts[] = {
        { "mode",            required_argument, NULL, 'm' },
        { "transport",       required_argument, NULL, 'T' },
        { "url",             required_argument, NULL, 'u' },
        { "clients",         required_argument, NULL, 'n' },
        { "messages",        required_argument, NULL, 'M' },
        { "publish-url",     required_argument, NULL, 'p' },
        { "body",            required_argument, NULL, 'b' },
        { "marker",          required_argument, NULL, 'k' },
        { "rate",            required_argument, NULL, 'r' },
        { "burst",           no_argument,       NULL, 'B' },
        { "source-ips",      required_argument, NULL, 's' },
        { "concurrency",     required_argument, NULL, 'c' },
        { "connect-timeout", required_argument, NULL, 'C' },
        { "go-timeout",      required_argument, NULL, 'G' },
        { "timeout",         required_argument, NULL, 't' },
        { "publish-timeout", required_argument, NULL, 'P' },
        { "wait-go",         no_argument,       NULL, 'w' },
        { "sound",           required_argument, NULL, 'S' },
        { "help",            no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    opt.mode = MODE_TIDAL;
    opt.clients = 1000;
    opt.messages = 100;
    opt.body = DEFAULT_BODY;
    opt.marker = DEFAULT_MARKER;
    opt.source_ips = 1;
    opt.concurrency = 256;
    opt.connect_timeout = 120;
    opt.go_timeout = 300;
    opt.timeout = 30;
    opt.publish_timeout = 10;

    have_url = 0;

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (strcmp(optarg, "tidal") == 0) {
                opt.mode = MODE_TIDAL;
            } else if (strcmp(optarg, "nchan") == 0) {
                opt.mode = MODE_NCHAN;
            } else {
                fatal("--mode is tidal or nchan, not \"%s\"", optarg);
            }
            break;
        case 'T':
            if (strcmp(optarg, "ws") == 0) {
                opt.transport = TRANSPORT_WS;
            } else if (strcmp(optarg, "sse") == 0) {
                opt.transport = TRANSPORT_SSE;
            } else {
                fatal("--transport is ws or sse, not \"%s\"", optarg);
            }
            break;
        case 'u':
            if (endpoint_parse(optarg, &opt.url) != 0) {
                fatal("--url: expected IPv4:port/path, got \"%s\"", optarg);
            }
            have_url = 1;
            break;
        case 'p':
            if (endpoint_parse(optarg, &opt.publish) != 0) {
                fatal("--publish-url: expected IPv4:port/path, got \"%s\"",
                      optarg);
            }
            opt.have_publish = 1;
            break;
        case 'n': opt.clients = (uint32_t) strtoul(optarg, NULL, 10); break;
        case 'M': opt.messages = (uint32_t) strtoul(optarg, NULL, 10); break;
        case 'b': opt.body = optarg; break;
        case 'k': opt.marker = optarg; break;
        case 'r': opt.rate = atof(optarg); break;
        case 'B': opt.rate = 0; break;
        case 's': opt.source_ips = (uint32_t) strtoul(optarg, NULL, 10); break;
        case 'c': opt.concurrency = (uint32_t) strtoul(optarg, NULL, 10); break;
        case 'C': opt.connect_timeout = atof(optarg); break;
        case 'G': opt.go_timeout = atof(optarg); break;
        case 't': opt.timeout = atof(optarg); break;
        case 'P': opt.publish_timeout = atof(optarg); break;
        case 'w': opt.wait_go = 1; break;
        case 'S': opt.sound = atof(optarg); break;
        default: usage();
        }
    }

    if (opt.sound > 0) {
        if (opt.mode != MODE_TIDAL) {
            fatal("--sound is for --mode tidal");
        }

        /* listeners only: nothing is published */
        opt.messages = 0;
        initialize = TIDAL_INITIALIZE_SOUND;
        initialize_len = sizeof(TIDAL_INITIALIZE_SOUND) - 1;

        sound_batches = calloc(SOUND_BATCHES, sizeof(struct sound_batch));
        if (sound_batches == NULL) {
            fatal("out of memory");
        }
    }

    if (!have_url || (!opt.have_publish && opt.messages > 0)) {
        usage();
    }

    if (opt.clients == 0 || opt.concurrency == 0
        || opt.source_ips == 0 || opt.source_ips > 254)
    {
        fatal("--clients and --concurrency must be > 0, --source-ips 1..254");
    }

    if (strstr(opt.body, opt.marker) == NULL) {
        fatal("the body must contain the marker \"%s\"", opt.marker);
    }

    raise_nofile(opt.clients + 64);

    if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state)) {
        rng_state = (uint64_t) now_ns() | 1;
    }

    conns = calloc(opt.clients, sizeof(struct conn));
    retry_stack = calloc(opt.clients, sizeof(uint32_t));
    msg_sent = calloc(opt.messages + 1, sizeof(uint64_t));
    msg_rtt = calloc(opt.messages + 1, sizeof(uint64_t));
    msg_first = calloc(opt.messages + 1, sizeof(uint64_t));
    msg_last = calloc(opt.messages + 1, sizeof(uint64_t));
    msg_count = calloc(opt.messages + 1, sizeof(uint32_t));

    if (conns == NULL || retry_stack == NULL || msg_sent == NULL
        || msg_rtt == NULL || msg_first == NULL || msg_last == NULL
        || msg_count == NULL)
    {
        fatal("out of memory");
    }

    for (uint32_t i = 0; i < opt.clients; i++) {
        conns[i].fd = -1;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        fatal("epoll_create1: %s", strerror(errno));
    }

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);

    if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1) {
        fatal("sigprocmask: %s", strerror(errno));
    }

    sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd == -1) {
        fatal("signalfd: %s", strerror(errno));
    }

    ev.events = EPOLLIN;
    ev.data.u64 = ID_SIGNAL;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sigfd, &ev) == -1) {
        fatal("epoll_ctl: %s", strerror(errno));
    }

    signal(SIGPIPE, SIG_IGN);

    /* phase 1: connect every client */

    t0 = now_ns();
    deadline = t0 + (uint64_t) (opt.connect_timeout * 1e9);

    conns_start_more();

    while (ready_count + failed_count < opt.clients) {
        if (stop_signal) {
            fatal("stopped by signal %d while connecting", stop_signal);
        }

        if (now_ns() > deadline) {
            /* out of the connect phase first: failures are not retried */
            phase = PHASE_IDLE;

            for (uint32_t i = 0; i < opt.clients; i++) {
                if (conns[i].state != CONN_READY
                    && conns[i].state != CONN_FAILED
                    && conns[i].state != CONN_CLOSED)
                {
                    conns[i].tries = MAX_CONNECT_TRIES;
                    conn_fail(&conns[i], "connect timeout", 0);
                    conn_release(&conns[i]);
                }
            }
            break;
        }

        loop_once(100);
    }

    phase = PHASE_IDLE;

    printf("idle {\"clients\":%u,\"ready\":%u,\"connect_failures\":%u,"
           "\"closed\":%u,\"connect_seconds\":%.3f}\n",
           opt.clients, ready_count, failed_count, closed_count,
           secs(now_ns() - t0));
    fflush(stdout);

    if (opt.wait_go) {
        deadline = now_ns() + (uint64_t) (opt.go_timeout * 1e9);

        while (go_signals == 0) {
            if (stop_signal) {
                fatal("stopped by signal %d while idle", stop_signal);
            }

            if (now_ns() > deadline) {
                fatal("no go signal (SIGUSR1) within %.0f s", opt.go_timeout);
            }

            loop_once(200);
        }
    }

    /* phase 2: publish M messages, count deliveries */

    phase = PHASE_PUBLISH;
    cpu_go = cpu_seconds();

    if (opt.sound > 0) {
        /* or: listen for the window, count the sound */

        sound_start = now_ns();
        sound_end = sound_start + (uint64_t) (opt.sound * 1e9);

        while (!stop_signal && now_ns() < sound_end) {
            loop_once(50);
        }

        sound_report(cpu_seconds() - cpu_go);

        if (opt.wait_go && !stop_signal) {
            deadline = now_ns() + (uint64_t) (opt.go_timeout * 1e9);

            while (go_signals < 2 && !stop_signal && now_ns() < deadline) {
                loop_once(200);
            }
        }

        return (failed_count == 0 && closed_count == 0 && sound_messages > 0)
               ? 0 : 3;
    }

    if (opt.messages > 0) {
        (void) pub_connect();
    }

    t_go = now_ns();
    t_drain = 0;

    for ( ;; ) {
        int       timeout_ms = 50;
        uint64_t  due;

        now = now_ns();

        if (stop_signal) {
            note("stopped by signal %d while publishing", stop_signal);
            break;
        }

        if (pub.busy
            && now - pub.sent_at > (uint64_t) (opt.publish_timeout * 1e9))
        {
            note("message %u: no answer to the POST within %.0f s, "
                 "publishing stops", pub.next - 1, opt.publish_timeout);
            pub.aborted = 1;
            pub.busy = 0;
        }

        if (!pub.busy && !pub.aborted && pub.next < opt.messages) {
            due = t_go;
            if (opt.rate > 0) {
                due += (uint64_t) (pub.next / opt.rate * 1e9);
            }

            if (now >= due) {
                pub_send();
            } else {
                timeout_ms = (int) ((due - now) / 1000000) + 1;
            }
        }

        if (!pub.busy && (pub.aborted || pub.next == opt.messages)) {
            if (t_drain == 0) {
                t_drain = now;
            }

            if (incomplete_ready == 0 || pub.next == 0
                || now - t_drain > (uint64_t) (opt.timeout * 1e9))
            {
                break;
            }
        }

        if (timeout_ms > 50) {
            timeout_ms = 50;
        }

        loop_once(pub.busy ? 10 : timeout_ms);
    }

    report(msg_sent[0] ? msg_sent[0] : t_go, now_ns(),
           cpu_seconds() - cpu_go);

    if (opt.wait_go && !stop_signal) {
        deadline = now_ns() + (uint64_t) (opt.go_timeout * 1e9);

        while (go_signals < 2 && !stop_signal && now_ns() < deadline) {
            loop_once(200);
        }
    }

    return (incomplete_ready == 0 && failed_count == 0 && closed_count == 0
            && !pub.aborted && pub.errors == 0) ? 0 : 3;
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: wsload --mode tidal|nchan [--transport ws|sse]\n"
        "              --url IP:PORT/PATH --clients N\n"
        "              --messages M --publish-url IP:PORT/PATH [--body JSON]\n"
        "              [--marker TEXT] [--rate MSG_PER_S | --burst]\n"
        "              [--source-ips K] [--concurrency C] [--wait-go]\n"
        "              [--connect-timeout S] [--timeout S]\n"
        "              [--go-timeout S] [--publish-timeout S]\n"
        "       wsload --mode tidal [--transport ws|sse] --url IP:PORT/PATH\n"
        "              --clients N --sound SECONDS [--wait-go] ...\n"
        "\n"
        "The body must contain the marker (default \"" DEFAULT_MARKER "\");\n"
        "%%N%% in the body becomes the message's index, which the client\n"
        "reads back after the marker to time each message.\n");
    exit(2);
}


static void
fatal(const char *fmt, ...)
{
    va_list  ap;

    fputs("wsload: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}


static void
note(const char *fmt, ...)
{
    va_list  ap;

    fputs("wsload: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


static uint64_t
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}


static double
secs(uint64_t ns)
{
    return (double) ns / 1e9;
}


static uint32_t
rand32(void)
{
    /* xorshift64*: masks need to be unpredictable to proxies, not secret */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t) ((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}


static int
endpoint_parse(const char *url, struct endpoint *e)
{
    char          host[40];
    const char   *p, *colon, *slash;
    unsigned long port;

    memset(e, 0, sizeof(*e));

    p = url;
    if (strncmp(p, "ws://", 5) == 0) {
        p += 5;
    } else if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    }

    colon = strchr(p, ':');
    slash = strchr(p, '/');

    if (colon == NULL || (slash != NULL && slash < colon)
        || (size_t) (colon - p) >= sizeof(host))
    {
        return -1;
    }

    memcpy(host, p, colon - p);
    host[colon - p] = '\0';

    port = strtoul(colon + 1, NULL, 10);
    if (port == 0 || port > 65535) {
        return -1;
    }

    e->addr.sin_family = AF_INET;
    e->addr.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, host, &e->addr.sin_addr) != 1) {
        return -1;
    }

    snprintf(e->hostport, sizeof(e->hostport), "%s:%lu", host, port);
    snprintf(e->path, sizeof(e->path), "%s", slash ? slash : "/");

    return 0;
}


static void
raise_nofile(uint32_t need)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        fatal("getrlimit: %s", strerror(errno));
    }

    if (rl.rlim_cur >= need) {
        return;
    }

    rl.rlim_cur = need;
    if (rl.rlim_max < need) {
        rl.rlim_max = need;     /* only root may, which the driver is */
    }

    if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
        fatal("cannot raise RLIMIT_NOFILE to %u: %s", need, strerror(errno));
    }
}


static void
buf_append(struct buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t  cap = b->cap ? b->cap : 512;

        while (cap < b->len + len + 1) {
            cap *= 2;
        }

        b->data = realloc(b->data, cap);
        if (b->data == NULL) {
            fatal("out of memory");
        }
        b->cap = cap;
    }

    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';     /* so headers can be searched as strings */
}


static void
buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }

    if (b->data) {
        b->data[b->len] = '\0';
    }

    /* a big frame came and went: give its buffer back */
    if (b->len == 0 && b->cap > 65536) {
        buf_free(b);
    }
}


static void
buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


static void
epoll_set(int fd, uint64_t id, uint32_t events, int op)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.u64 = id;

    if (epoll_ctl(ep, op, fd, &ev) == -1) {
        fatal("epoll_ctl(%d): %s", fd, strerror(errno));
    }
}


static void
conns_start_more(void)
{
    while (in_flight < opt.concurrency) {
        if (retry_len > 0) {
            conn_start(retry_stack[--retry_len]);
        } else if (next_new < opt.clients) {
            conn_start(next_new++);
        } else {
            return;
        }
    }
}


static void
conn_start(uint32_t i)
{
    int                  fd, one;
    struct conn         *c;
    struct sockaddr_in   src;

    c = &conns[i];
    c->tries++;
    in_flight++;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        fatal("socket: %s", strerror(errno));
    }

    c->fd = fd;
    c->state = CONN_CONNECTING;

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (opt.source_ips > 1) {
        /* the port is chosen at connect(), per 4-tuple, not per address */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));

        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + i % opt.source_ips);

        if (bind(fd, (struct sockaddr *) &src, sizeof(src)) == -1) {
            conn_fail(c, "bind", errno);
            conn_release(c);
            return;
        }
    }

    epoll_set(fd, i, EPOLLIN | EPOLLOUT, EPOLL_CTL_ADD);
    c->polling_out = 1;

    if (connect(fd, (struct sockaddr *) &opt.url.addr, sizeof(opt.url.addr))
        == -1)
    {
        if (errno != EINPROGRESS) {
            conn_fail(c, "connect", errno);
            conn_release(c);
        }
        return;
    }

    conn_connected(c);
}


static void
conn_connected(struct conn *c)
{
    int   n;
    char  req[1024];

    epoll_set(c->fd, (uint64_t) (c - conns), EPOLLIN, EPOLL_CTL_MOD);
    c->polling_out = 0;

    if (opt.transport == TRANSPORT_SSE) {
        if (opt.mode == MODE_TIDAL) {
            c->state = CONN_INITIALIZING;
            sse_request(c, "POST", initialize);
        } else {
            c->state = CONN_OPENING;
            sse_request(c, "GET", NULL);
        }
        return;
    }

    c->state = CONN_UPGRADING;
    ws_key(c->key);

    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s"
                 "\r\n",
                 opt.url.path, opt.url.hostport, c->key,
                 opt.mode == MODE_TIDAL ? "Sec-WebSocket-Protocol: mcp\r\n"
                                        : "");

    conn_send(c, req, (size_t) n);
}


static void
conn_fail(struct conn *c, const char *why, int err)
{
    int  handshaking;

    if (c->state == CONN_FAILED || c->state == CONN_CLOSED) {
        return;
    }

    handshaking = c->state != CONN_READY && c->state != CONN_WAITING;

    if (c->fd != -1) {
        close(c->fd);     /* also removes it from the epoll set */
        c->fd = -1;
    }

    if (handshaking) {
        in_flight--;
    }

    if (errors_shown < MAX_ERRORS_SHOWN) {
        errors_shown++;
        note("client %u: %s%s%s", (unsigned) (c - conns), why,
             err ? ": " : "", err ? strerror(err) : "");
        if (errors_shown == MAX_ERRORS_SHOWN) {
            note("(further client errors are counted, not shown)");
        }
    }

    if (c->state == CONN_READY) {
        c->state = CONN_CLOSED;
        closed_count++;
        if (c->delivered < opt.messages) {
            incomplete_ready--;
        }

    } else if (phase == PHASE_CONNECT && c->tries < MAX_CONNECT_TRIES) {
        c->state = CONN_WAITING;
        retry_stack[retry_len++] = (uint32_t) (c - conns);

    } else {
        c->state = CONN_FAILED;
        failed_count++;
    }

    if (phase == PHASE_CONNECT) {
        conns_start_more();
    }
}


/* buffers are freed only here, once no caller still points into them */
static void
conn_release(struct conn *c)
{
    if (c->fd == -1) {
        buf_free(&c->in);
        buf_free(&c->out);
        buf_free(&c->frag);
        buf_free(&c->event);
        free(c->session);
        c->session = NULL;
    }
}


static void
conn_readable(struct conn *c)
{
    ssize_t  n;

    /* a few reads per wakeup; level-triggered epoll brings us back */
    for (int i = 0; i < 4 && c->fd != -1; i++) {
        n = recv(c->fd, rbuf, sizeof(rbuf), 0);

        if (n > 0) {
            conn_bytes(c, rbuf, (size_t) n);
            if ((size_t) n < sizeof(rbuf)) {
                break;
            }
            continue;
        }

        if (n == 0) {
            conn_fail(c, "closed by the server", 0);
            break;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno != EAGAIN) {
            conn_fail(c, "recv", errno);
        }
        break;
    }

    conn_release(c);
}


static void
conn_writable(struct conn *c)
{
    int        err;
    ssize_t    n;
    socklen_t  len;

    if (c->state == CONN_CONNECTING) {
        err = 0;
        len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);

        if (err) {
            conn_fail(c, "connect", err);
            conn_release(c);
            return;
        }

        conn_connected(c);
        return;
    }

    while (c->out.len > 0) {
        n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            conn_fail(c, "send", errno);
            conn_release(c);
            return;
        }

        buf_consume(&c->out, (size_t) n);
    }

    epoll_set(c->fd, (uint64_t) (c - conns), EPOLLIN, EPOLL_CTL_MOD);
    c->polling_out = 0;
}


static void
conn_bytes(struct conn *c, const uint8_t *data, size_t len)
{
    ssize_t  used;

    if (opt.transport == TRANSPORT_SSE) {
        sse_bytes(c, data, len);
        return;
    }

    if (c->in.len == 0 && c->state != CONN_UPGRADING) {
        /* the common case: whole frames straight from the read buffer */
        used = conn_frames(c, data, len);
        if (used >= 0 && c->fd != -1 && (size_t) used < len) {
            buf_append(&c->in, data + used, len - (size_t) used);
        }
        return;
    }

    buf_append(&c->in, data, len);

    if (c->state == CONN_UPGRADING && !conn_upgrade(c)) {
        return;
    }

    if (c->fd == -1) {
        return;
    }

    used = conn_frames(c, c->in.data, c->in.len);
    if (used > 0 && c->fd != -1) {
        buf_consume(&c->in, (size_t) used);
    }
}


/* returns 1 once the 101 was read and accepted */
static int
conn_upgrade(struct conn *c)
{
    char       value[128], expect[29], status[64];
    uint8_t   *end;
    size_t     head_len;
    const char *head;

    end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (c->in.len > MAX_HEAD) {
            conn_fail(c, "response headers too long", 0);
        }
        return 0;
    }

    head_len = (size_t) (end - c->in.data) + 4;
    end[2] = '\0';              /* header_value() sees the head only */
    head = (const char *) c->in.data;

    if (strncmp(head, "HTTP/1.1 101 ", 13) != 0) {
        snprintf(status, sizeof(status), "%.*s",
                 (int) strcspn(head, "\r\n"), head);
        conn_fail(c, status, 0);
        return 0;
    }

    ws_accept(c->key, expect);

    if (!header_value(head, "Sec-WebSocket-Accept", value, sizeof(value))
        || strcmp(value, expect) != 0)
    {
        conn_fail(c, "wrong Sec-WebSocket-Accept", 0);
        return 0;
    }

    if (opt.mode == MODE_TIDAL
        && (!header_value(head, "Sec-WebSocket-Protocol", value, sizeof(value))
            || strcmp(value, "mcp") != 0))
    {
        conn_fail(c, "subprotocol mcp not echoed", 0);
        return 0;
    }

    end[2] = '\r';
    buf_consume(&c->in, head_len);

    if (opt.mode == MODE_TIDAL) {
        c->state = CONN_INITIALIZING;
        conn_send_frame(c, 0x1, initialize, initialize_len);
    } else {
        conn_ready(c);
    }

    return c->fd != -1;
}


static ssize_t
conn_frames(struct conn *c, const uint8_t *p, size_t len)
{
    size_t           off;
    ssize_t          n;
    struct ws_frame  f;

    off = 0;

    while (c->fd != -1) {
        n = ws_frame_parse(p + off, len - off, &f);
        if (n == 0) {
            break;
        }

        if (n < 0) {
            conn_fail(c, "malformed frame from the server", 0);
            return -1;
        }

        off += (size_t) n;
        conn_frame(c, &f);
    }

    return (ssize_t) off;
}


static void
conn_frame(struct conn *c, const struct ws_frame *f)
{
    char  why[64];

    switch (f->opcode) {

    case 0x9:   /* ping */
        conn_send_frame(c, 0xA, f->payload, f->len);
        return;

    case 0xA:   /* pong */
        return;

    case 0x8:   /* close */
        snprintf(why, sizeof(why), "close frame %u from the server",
                 f->len >= 2 ? (unsigned) (f->payload[0] << 8 | f->payload[1])
                             : 1005u);
        conn_fail(c, why, 0);
        return;

    case 0x1:
    case 0x2:
        if (c->frag.len > 0 || c->frag_opcode) {
            conn_fail(c, "new message inside a fragmented one", 0);
            return;
        }

        if (f->fin) {
            conn_message(c, f->payload, f->len);
            return;
        }

        c->frag_opcode = (uint8_t) f->opcode;
        buf_append(&c->frag, f->payload, f->len);
        return;

    case 0x0:
        if (!c->frag_opcode) {
            conn_fail(c, "continuation without a message", 0);
            return;
        }

        buf_append(&c->frag, f->payload, f->len);

        if (f->fin) {
            conn_message(c, c->frag.data, c->frag.len);
            c->frag_opcode = 0;
            buf_consume(&c->frag, c->frag.len);
        }
        return;

    default:
        conn_fail(c, "reserved opcode from the server", 0);
    }
}


static void
conn_message(struct conn *c, const uint8_t *p, size_t len)
{
    const uint8_t  *mark;

    if (c->state == CONN_INITIALIZING) {
        if (memmem(p, len, "\"result\"", 8) != NULL) {
            conn_send_frame(c, 0x1, TIDAL_INITIALIZED,
                            sizeof(TIDAL_INITIALIZED) - 1);
            conn_ready(c);
        } else if (memmem(p, len, "\"error\"", 7) != NULL) {
            conn_fail(c, "initialize answered with an error", 0);
        }
        return;
    }

    if (opt.sound > 0 && memmem(p, len, SOUND_METHOD, sizeof(SOUND_METHOD) - 1))
    {
        conn_sound(c, p, len);
        return;
    }

    mark = memmem(p, len, opt.marker, strlen(opt.marker));
    if (mark == NULL) {
        other_frames++;
        return;
    }

    if (phase != PHASE_PUBLISH) {
        early_marked++;
        return;
    }

    conn_delivery(c, p, len, mark);
}


/* a batch of sound: counted when it comes within the window */

static void
conn_sound(struct conn *c, const uint8_t *p, size_t len)
{
    char                buf[32];
    size_t              n;
    double              t, lead, *leads;
    uint64_t            now, events;
    uint32_t            k, low;
    const uint8_t      *at, *end, *first;
    struct timespec     ts;
    struct sound_batch *b;

    now = now_ns();

    if (phase != PHASE_PUBLISH || now < sound_start || now >= sound_end) {
        sound_outside++;
        return;
    }

    end = p + len;
    events = 0;
    first = NULL;

    for (at = p; (at = memmem(at, (size_t) (end - at), SOUND_TIME,
                              sizeof(SOUND_TIME) - 1)) != NULL;
         at += sizeof(SOUND_TIME) - 1)
    {
        if (first == NULL) {
            first = at + sizeof(SOUND_TIME) - 1;
        }

        events++;
    }

    sound_messages++;
    sound_events += events;
    c->delivered++;

    if (first == NULL) {
        return;
    }

    n = (size_t) (end - first) < sizeof(buf) - 1 ? (size_t) (end - first)
                                                 : sizeof(buf) - 1;
    memcpy(buf, first, n);
    buf[n] = '\0';
    t = strtod(buf, NULL);

    clock_gettime(CLOCK_REALTIME, &ts);
    lead = t * 1e3 - ((double) ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);

    if (lead < 0) {
        sound_late++;
    }

    if (sound_nleads == sound_leads_cap) {
        sound_leads_cap = sound_leads_cap ? sound_leads_cap * 2 : 65536;
        leads = realloc(sound_leads, sound_leads_cap * sizeof(double));
        if (leads == NULL) {
            fatal("out of memory");
        }
        sound_leads = leads;
    }

    sound_leads[sound_nleads++] = lead;

    /* the batch: one of the last few, or a new one */

    low = sound_nbatches > 256 ? sound_nbatches - 256 : 0;

    for (k = sound_nbatches; k > low; k--) {
        b = &sound_batches[k - 1];

        if (b->time == t) {
            b->count++;
            return;
        }
    }

    if (sound_nbatches < SOUND_BATCHES) {
        b = &sound_batches[sound_nbatches++];
        b->time = t;
        b->first = now;
        b->count = 1;
    }
}


static void
conn_delivery(struct conn *c, const uint8_t *p, size_t len,
    const uint8_t *mark)
{
    uint64_t        now, index;
    const uint8_t  *d, *end;

    now = now_ns();
    end = p + len;

    /* the index the %N% in the body became; without digits, the order */
    d = mark + strlen(opt.marker);
    if (d < end && *d >= '0' && *d <= '9') {
        index = 0;
        while (d < end && *d >= '0' && *d <= '9' && index < UINT32_MAX) {
            index = index * 10 + (uint64_t) (*d++ - '0');
        }
    } else {
        index = c->next_index;
    }

    deliveries++;
    last_delivery = now;
    c->delivered++;

    if (c->delivered == opt.messages && c->state == CONN_READY) {
        incomplete_ready--;
    }

    if (index >= opt.messages) {
        unknown_index++;
        return;
    }

    if (index != c->next_index) {
        out_of_order++;
    }
    c->next_index = (uint32_t) index + 1;

    if (msg_count[index]++ == 0) {
        msg_first[index] = now;
    }
    msg_last[index] = now;
}


static void
conn_ready(struct conn *c)
{
    c->state = CONN_READY;
    in_flight--;
    ready_count++;

    if (opt.messages > 0) {
        incomplete_ready++;
    }

    if (phase == PHASE_CONNECT) {
        conns_start_more();
    }
}


static void
conn_send(struct conn *c, const void *data, size_t len)
{
    ssize_t  n;

    if (c->fd == -1) {
        return;
    }

    if (c->out.len == 0) {
        n = send(c->fd, data, len, MSG_NOSIGNAL);

        if (n == (ssize_t) len) {
            return;
        }

        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_fail(c, "send", errno);
                return;
            }
            n = 0;
        }

        data = (const uint8_t *) data + n;
        len -= (size_t) n;
    }

    buf_append(&c->out, data, len);

    if (!c->polling_out) {
        epoll_set(c->fd, (uint64_t) (c - conns), EPOLLIN | EPOLLOUT,
                  EPOLL_CTL_MOD);
        c->polling_out = 1;
    }
}


static void
conn_send_frame(struct conn *c, int opcode, const void *payload, size_t len)
{
    size_t          h;
    uint8_t        *frame, mask[4];
    uint32_t        m;
    const uint8_t  *src;

    if (len > sizeof(scratch) - 14) {
        fatal("frame of %zu bytes is too big to send", len);
    }

    frame = scratch;
    h = 0;
    frame[h++] = (uint8_t) (0x80 | opcode);

    if (len < 126) {
        frame[h++] = (uint8_t) (0x80 | len);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (uint8_t) (len >> 8);
        frame[h++] = (uint8_t) len;
    }

    m = rand32();
    memcpy(mask, &m, 4);
    memcpy(frame + h, mask, 4);
    h += 4;

    src = payload;
    for (size_t i = 0; i < len; i++) {
        frame[h + i] = src[i] ^ mask[i & 3];
    }

    conn_send(c, frame, h + len);
}


/*
 * sse: one HTTP/1.1 request on the client's connection - tidal's POSTs
 * (initialize, then notifications/initialized with the session) and the
 * GET that opens the stream (tidal: with the session; nchan: as is).
 */
static void
sse_request(struct conn *c, const char *method, const char *body)
{
    int   n;
    char  req[2048], session[SESSION_ID_MAX + 64];

    session[0] = '\0';
    if (c->session != NULL) {
        snprintf(session, sizeof(session),
                 "Mcp-Session-Id: %s\r\n"
                 "MCP-Protocol-Version: " TIDAL_PROTOCOL "\r\n", c->session);
    }

    if (body == NULL) {
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Accept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n"
                     "%s"
                     "\r\n",
                     opt.url.path, opt.url.hostport, session);
    } else {
        n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\n"
                     "%s"
                     "Content-Length: %zu\r\n"
                     "\r\n"
                     "%s",
                     method, opt.url.path, opt.url.hostport, session,
                     strlen(body), body);
    }

    if (n < 0 || (size_t) n >= sizeof(req)) {
        fatal("sse: request too long");
    }

    conn_send(c, req, (size_t) n);
}


static void
sse_bytes(struct conn *c, const uint8_t *data, size_t len)
{
    ssize_t  used;

    if (c->in.len == 0 && c->state == CONN_READY) {
        /* the common case: the stream straight from the read buffer */
        used = sse_stream(c, data, len);
        if (used >= 0 && c->fd != -1 && (size_t) used < len) {
            buf_append(&c->in, data + used, len - (size_t) used);
        }
        return;
    }

    buf_append(&c->in, data, len);

    while (c->fd != -1 && c->state != CONN_READY) {
        if (!sse_response(c)) {
            return;
        }
    }

    if (c->fd == -1 || c->in.len == 0) {
        return;
    }

    used = sse_stream(c, c->in.data, c->in.len);
    if (used > 0 && c->fd != -1) {
        buf_consume(&c->in, (size_t) used);
    }
}


/*
 * sse, before the stream: reads the answer the state waits for from c->in
 * and sends the next request; 1 when it moved on, 0 when it needs more
 * bytes or failed.
 */
static int
sse_response(struct conn *c)
{
    int       status, close_after, done;
    char     *head, value[SESSION_ID_MAX + 1], line[64];
    size_t    used;
    uint8_t  *end;

    if (c->state == CONN_OPENING) {
        end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
        if (end == NULL) {
            if (c->in.len > MAX_HEAD) {
                conn_fail(c, "response headers too long", 0);
            }
            return 0;
        }
        used = (size_t) (end - c->in.data) + 4;
        status = 0;
        close_after = 0;
    } else {
        done = http_response(&c->in, &status, &used, &close_after);
        if (done == 0) {
            return 0;
        }
        if (done < 0) {
            conn_fail(c, "unreadable answer", 0);
            return 0;
        }
    }

    head = http_head(&c->in);
    if (c->state == CONN_OPENING) {
        status = strncmp(head, "HTTP/1.", 7) == 0 && strlen(head) > 12
                 ? atoi(head + 9) : 0;
    }

    if (status < 200 || status > 299) {
        snprintf(line, sizeof(line), "%s: %.*s",
                 c->state == CONN_OPENING ? "GET"
                 : c->state == CONN_INITIALIZING ? "POST initialize"
                 : "POST notifications/initialized",
                 (int) strcspn(head, "\r\n"), head);
        free(head);
        conn_fail(c, line, 0);
        return 0;
    }

    switch (c->state) {

    case CONN_INITIALIZING:
        if (!header_value(head, "Mcp-Session-Id", value, sizeof(value))
            || memmem(c->in.data, used, "\"result\"", 8) == NULL)
        {
            free(head);
            conn_fail(c, "initialize: no result or no Mcp-Session-Id", 0);
            return 0;
        }
        c->session = strdup(value);
        if (c->session == NULL) {
            fatal("out of memory");
        }
        c->state = CONN_NOTIFYING;
        sse_request(c, "POST", TIDAL_INITIALIZED);
        break;

    case CONN_NOTIFYING:
        c->state = CONN_OPENING;
        sse_request(c, "GET", NULL);
        break;

    default: /* CONN_OPENING */
        c->chunked = header_value(head, "Transfer-Encoding", value,
                                  sizeof(value))
                     && strcasecmp(value, "chunked") == 0;
        free(c->session);
        c->session = NULL;
        close_after = 0;    /* a stream ends with its connection anyway */
        conn_ready(c);
        break;
    }

    free(head);
    buf_consume(&c->in, used);

    if (close_after && c->fd != -1) {
        conn_fail(c, "the server closed the connection after a POST", 0);
        return 0;
    }

    return c->fd != -1;
}


/* sse: the stream's bytes, chunked or not; returns how many were used */
static ssize_t
sse_stream(struct conn *c, const uint8_t *p, size_t len)
{
    size_t          off, n, data;
    uint64_t        size;
    const uint8_t  *eol, *d;

    if (!c->chunked) {
        sse_data(c, p, len);
        return (ssize_t) len;
    }

    off = 0;

    while (off < len && c->fd != -1) {
        if (c->chunk_left == 0) {
            eol = memmem(p + off, len - off, "\r\n", 2);
            if (eol == NULL) {
                if (len - off > 64) {
                    conn_fail(c, "bad chunk size line", 0);
                    return -1;
                }
                break;
            }

            size = 0;
            for (d = p + off; d < eol; d++) {
                if (*d >= '0' && *d <= '9') {
                    size = size * 16 + (uint64_t) (*d - '0');
                } else if ((*d | 0x20) >= 'a' && (*d | 0x20) <= 'f') {
                    size = size * 16 + (uint64_t) ((*d | 0x20) - 'a' + 10);
                } else {
                    break;      /* chunk extensions */
                }
                if (size > MAX_FRAME) {
                    conn_fail(c, "chunk too big", 0);
                    return -1;
                }
            }

            off = (size_t) (eol - p) + 2;

            if (size == 0) {
                conn_fail(c, "the server ended the stream", 0);
                return -1;
            }

            c->chunk_left = (uint32_t) size + 2;     /* and its CRLF */
            continue;
        }

        n = len - off;
        if (n > c->chunk_left) {
            n = c->chunk_left;
        }

        data = c->chunk_left > 2 ? c->chunk_left - 2 : 0;
        if (data > n) {
            data = n;
        }

        if (data > 0) {
            sse_data(c, p + off, data);
        }

        off += n;
        c->chunk_left -= (uint32_t) n;
    }

    return (ssize_t) off;
}


/* sse: the event stream's text, in lines (a partial one waits in frag) */
static void
sse_data(struct conn *c, const uint8_t *p, size_t len)
{
    const uint8_t  *end, *nl;

    end = p + len;

    while (p < end && c->fd != -1) {
        nl = memchr(p, '\n', (size_t) (end - p));

        if (nl == NULL) {
            if (c->frag.len + (size_t) (end - p) > MAX_FRAME) {
                conn_fail(c, "SSE line too long", 0);
                return;
            }
            buf_append(&c->frag, p, (size_t) (end - p));
            return;
        }

        if (c->frag.len > 0) {
            buf_append(&c->frag, p, (size_t) (nl - p));
            sse_line(c, c->frag.data, c->frag.len);
            buf_consume(&c->frag, c->frag.len);
        } else {
            sse_line(c, p, (size_t) (nl - p));
        }

        p = nl + 1;
    }
}


/*
 * sse: one line: "data:" lines make the event's data (joined by "\n"), a
 * blank line dispatches it; id:, event:, retry: and comments are skipped.
 */
static void
sse_line(struct conn *c, const uint8_t *p, size_t len)
{
    if (len > 0 && p[len - 1] == '\r') {
        len--;
    }

    if (len == 0) {
        if (c->event.len > 0) {
            conn_message(c, c->event.data, c->event.len - 1);
            buf_consume(&c->event, c->event.len);
        }
        return;
    }

    if (len < 5 || memcmp(p, "data:", 5) != 0) {
        return;
    }

    p += 5;
    len -= 5;

    if (len > 0 && *p == ' ') {
        p++;
        len--;
    }

    buf_append(&c->event, p, len);
    buf_append(&c->event, "\n", 1);
}


/* >0: the frame's length; 0: incomplete; -1: not a valid server frame */
static ssize_t
ws_frame_parse(const uint8_t *p, size_t len, struct ws_frame *f)
{
    size_t    h;
    uint64_t  plen;

    if (len < 2) {
        return 0;
    }

    if ((p[0] & 0x70) || (p[1] & 0x80)) {
        return -1;      /* RSV bits without an extension, or masked */
    }

    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    plen = p[1] & 0x7f;
    h = 2;

    if (plen == 126) {
        if (len < 4) {
            return 0;
        }
        plen = (uint64_t) p[2] << 8 | p[3];
        h = 4;

    } else if (plen == 127) {
        if (len < 10) {
            return 0;
        }
        plen = 0;
        for (int i = 2; i < 10; i++) {
            plen = plen << 8 | p[i];
        }
        h = 10;
    }

    if (plen > MAX_FRAME) {
        return -1;
    }

    if (len - h < plen) {
        return 0;
    }

    f->payload = p + h;
    f->len = (size_t) plen;

    return (ssize_t) (h + plen);
}


static void
ws_key(char key[25])
{
    uint8_t  raw[16];

    for (int i = 0; i < 4; i++) {
        uint32_t  r = rand32();
        memcpy(raw + 4 * i, &r, 4);
    }

    EVP_EncodeBlock((unsigned char *) key, raw, 16);
}


static void
ws_accept(const char *key, char accept[29])
{
    char     text[24 + sizeof(WS_GUID)];
    uint8_t  digest[SHA_DIGEST_LENGTH];

    snprintf(text, sizeof(text), "%s%s", key, WS_GUID);
    SHA1((const unsigned char *) text, strlen(text), digest);
    EVP_EncodeBlock((unsigned char *) accept, digest, SHA_DIGEST_LENGTH);
}


/* head is the status line and headers, NUL-terminated */
static int
header_value(const char *head, const char *name, char *out, size_t size)
{
    size_t       nlen, vlen;
    const char  *line, *v;

    nlen = strlen(name);
    line = strstr(head, "\r\n");

    while (line != NULL && line[2] != '\0') {
        line += 2;

        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            v = line + nlen + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }

            vlen = strcspn(v, "\r\n");
            while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
                vlen--;
            }

            if (vlen >= size) {
                return 0;
            }

            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 1;
        }

        line = strstr(line, "\r\n");
    }

    return 0;
}


/* a failure ends the publishing, not the run: the report still comes */
static int
pub_connect(void)
{
    int  fd, one;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        fatal("socket: %s", strerror(errno));
    }

    if (connect(fd, (struct sockaddr *) &opt.publish.addr,
                sizeof(opt.publish.addr)) == -1)
    {
        note("connect to the publisher %s: %s", opt.publish.hostport,
             strerror(errno));
        close(fd);
        pub.aborted = 1;
        return -1;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    pub.fd = fd;
    epoll_set(fd, ID_PUBLISHER, EPOLLIN, EPOLL_CTL_ADD);

    return 0;
}


static void
pub_send(void)
{
    int          head_len;
    char         head[1024], index[16];
    size_t       off, len;
    ssize_t      n;
    struct buf   req = { 0 }, body = { 0 };
    const char  *p, *q;

    if (pub.fd == -1 && pub_connect() != 0) {
        return;
    }

    /* the body with %N% as this message's index */
    snprintf(index, sizeof(index), "%u", pub.next);
    for (p = opt.body; (q = strstr(p, "%N%")) != NULL; p = q + 3) {
        buf_append(&body, p, (size_t) (q - p));
        buf_append(&body, index, strlen(index));
    }
    buf_append(&body, p, strlen(p));

    head_len = snprintf(head, sizeof(head),
                        "POST %s HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "\r\n",
                        opt.publish.path, opt.publish.hostport, body.len);

    buf_append(&req, head, (size_t) head_len);
    buf_append(&req, body.data, body.len);
    buf_free(&body);

    pub.sent_at = now_ns();
    msg_sent[pub.next] = pub.sent_at;

    /* a blocking socket: the request is small and must go out whole */
    for (off = 0, len = req.len; off < len; off += (size_t) n) {
        n = send(pub.fd, req.data + off, len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }
            note("message %u: POST: %s", pub.next, strerror(errno));
            pub.aborted = 1;
            buf_free(&req);
            return;
        }
    }

    buf_free(&req);
    pub.busy = 1;
    pub.next++;
}


static void
pub_readable(void)
{
    int       status, close_after, done;
    size_t    used;
    ssize_t   n;
    uint64_t  now;

    n = recv(pub.fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }
        note("publisher: recv: %s", strerror(errno));
        n = 0;
    }

    if (n == 0) {
        if (pub.busy) {
            note("message %u: the publisher's connection closed without "
                 "an answer", pub.next - 1);
            pub.errors++;
            pub.busy = 0;
        }
        close(pub.fd);
        pub.fd = -1;
        buf_free(&pub.in);
        return;
    }

    buf_append(&pub.in, rbuf, (size_t) n);

    done = http_response(&pub.in, &status, &used, &close_after);
    if (done < 0) {
        note("message %u: unreadable answer to the POST", pub.next - 1);
        pub.aborted = 1;
        pub.busy = 0;
        return;
    }

    if (!done) {
        return;
    }

    now = now_ns();
    msg_rtt[pub.next - 1] = now - pub.sent_at;

    if (status >= 200 && status < 300) {
        pub.ok++;
    } else {
        pub.errors++;
        if (pub.errors <= MAX_ERRORS_SHOWN) {
            note("message %u: the POST got \"%.*s\"", pub.next - 1,
                 (int) strcspn((const char *) pub.in.data, "\r\n"),
                 pub.in.data);
        }
    }

    buf_consume(&pub.in, used);
    pub.busy = 0;

    if (close_after) {
        close(pub.fd);
        pub.fd = -1;
        buf_free(&pub.in);
    }
}


/* a copy of b's status line and headers, NUL-terminated, for header_value() */
static char *
http_head(const struct buf *b)
{
    char        *copy;
    const char  *end;

    end = memmem(b->data, b->len, "\r\n\r\n", 4);

    copy = strndup((const char *) b->data,
                   end ? (size_t) (end - (const char *) b->data) + 2 : b->len);
    if (copy == NULL) {
        fatal("out of memory");
    }

    return copy;
}


/* 1: a whole response of `used` bytes is in b; 0: not yet; -1: garbage */
static int
http_response(const struct buf *b, int *status, size_t *used,
    int *close_after)
{
    char         value[64];
    size_t       head_len, pos, size;
    const char  *head, *end, *body;

    if (b->len == 0) {
        return 0;
    }

    head = (const char *) b->data;
    end = memmem(head, b->len, "\r\n\r\n", 4);
    if (end == NULL) {
        return b->len > MAX_HEAD ? -1 : 0;
    }

    head_len = (size_t) (end - head) + 4;

    if (strncmp(head, "HTTP/1.", 7) != 0 || head_len < 13) {
        return -1;
    }

    *status = atoi(head + 9);

    char *copy = http_head(b);

    *close_after = header_value(copy, "Connection", value, sizeof(value))
                   && strcasecmp(value, "close") == 0;

    if (header_value(copy, "Transfer-Encoding", value, sizeof(value))
        && strcasecmp(value, "chunked") == 0)
    {
        free(copy);
        pos = head_len;

        for ( ;; ) {
            body = (const char *) b->data + pos;
            end = memmem(body, b->len - pos, "\r\n", 2);
            if (end == NULL) {
                return 0;
            }

            size = strtoul(body, NULL, 16);
            pos += (size_t) (end - body) + 2;

            if (size == 0) {
                /* no trailers from nginx: the blank line ends it */
                if (b->len - pos < 2) {
                    return 0;
                }
                *used = pos + 2;
                return 1;
            }

            if (b->len - pos < size + 2) {
                return 0;
            }
            pos += size + 2;
        }
    }

    size = 0;
    if (header_value(copy, "Content-Length", value, sizeof(value))) {
        size = strtoul(value, NULL, 10);
    }
    free(copy);

    if (b->len < head_len + size) {
        return 0;
    }

    *used = head_len + size;
    return 1;
}


static void
signal_readable(void)
{
    struct signalfd_siginfo  si;

    while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            go_signals++;
        } else {
            stop_signal = (int) si.ssi_signo;
        }
    }
}


static void
loop_once(int timeout_ms)
{
    int                  n;
    uint64_t             id;
    struct conn         *c;
    struct epoll_event   events[EPOLL_BATCH];

    n = epoll_wait(ep, events, EPOLL_BATCH, timeout_ms);
    if (n == -1) {
        if (errno == EINTR) {
            return;
        }
        fatal("epoll_wait: %s", strerror(errno));
    }

    for (int i = 0; i < n; i++) {
        id = events[i].data.u64;

        if (id == ID_SIGNAL) {
            signal_readable();
            continue;
        }

        if (id == ID_PUBLISHER) {
            if (pub.fd != -1) {
                pub_readable();
            }
            continue;
        }

        c = &conns[id];
        if (c->fd == -1) {
            continue;   /* closed earlier in this batch */
        }

        if (events[i].events & EPOLLOUT) {
            conn_writable(c);
        }

        if (c->fd != -1
            && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        {
            if (c->state == CONN_CONNECTING) {
                conn_writable(c);   /* the refused connect shows as ERR */
            } else {
                conn_readable(c);
            }
        }
    }
}


static int
cmp_u64(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return (x > y) - (x < y);
}


static double
median_ms(uint64_t *v, size_t n)
{
    if (n == 0) {
        return -1;
    }

    qsort(v, n, sizeof(uint64_t), cmp_u64);

    return (n % 2 ? (double) v[n / 2]
                  : ((double) v[n / 2 - 1] + (double) v[n / 2]) / 2) / 1e6;
}


static void
report(uint64_t t_first, uint64_t t_end, double cpu)
{
    size_t     n_lat, n_rtt;
    uint32_t   missed, unseen;
    uint64_t  *lat, *first, *rtt, expected;
    double     elapsed, lat_max, first_max, rtt_max;

    lat = calloc(opt.messages + 1, sizeof(uint64_t));
    first = calloc(opt.messages + 1, sizeof(uint64_t));
    rtt = calloc(opt.messages + 1, sizeof(uint64_t));
    if (lat == NULL || first == NULL || rtt == NULL) {
        fatal("out of memory");
    }

    n_lat = 0;
    n_rtt = 0;
    unseen = 0;

    for (uint32_t k = 0; k < opt.messages && k < pub.next; k++) {
        if (msg_rtt[k]) {
            rtt[n_rtt++] = msg_rtt[k];
        }

        if (msg_count[k] == 0) {
            unseen++;
            continue;
        }

        lat[n_lat] = msg_last[k] - msg_sent[k];
        first[n_lat] = msg_first[k] - msg_sent[k];
        n_lat++;
    }

    lat_max = 0;
    first_max = 0;
    rtt_max = 0;
    for (size_t k = 0; k < n_lat; k++) {
        if (lat[k] / 1e6 > lat_max) lat_max = lat[k] / 1e6;
        if (first[k] / 1e6 > first_max) first_max = first[k] / 1e6;
    }
    for (size_t k = 0; k < n_rtt; k++) {
        if (rtt[k] / 1e6 > rtt_max) rtt_max = rtt[k] / 1e6;
    }

    missed = 0;
    for (uint32_t i = 0; i < opt.clients; i++) {
        if (conns[i].state == CONN_READY
            && conns[i].delivered < opt.messages)
        {
            missed++;
        }
    }

    if (last_delivery > t_first) {
        elapsed = secs(last_delivery - t_first);
    } else {
        elapsed = secs(t_end - t_first);
    }

    expected = (uint64_t) ready_count * pub.next;

    printf("result {\"mode\":\"%s\",\"transport\":\"%s\","
           "\"clients\":%u,\"ready\":%u,"
           "\"messages\":%u,\"published\":%u,\"publish_errors\":%u,"
           "\"publish_aborted\":%s,"
           "\"deliveries\":%llu,\"expected\":%llu,\"complete\":%s,"
           "\"elapsed\":%.6f,\"deliveries_per_sec\":%.1f,"
           "\"latency_median_ms\":%.3f,\"latency_max_ms\":%.3f,"
           "\"first_delivery_median_ms\":%.3f,"
           "\"first_delivery_max_ms\":%.3f,"
           "\"publish_rtt_median_ms\":%.3f,\"publish_rtt_max_ms\":%.3f,"
           "\"messages_unseen\":%u,"
           "\"connect_failures\":%u,\"closed\":%u,\"missed\":%u,"
           "\"failures\":%u,\"out_of_order\":%llu,\"unknown_index\":%llu,"
           "\"early_marked\":%llu,\"other_frames\":%llu,"
           "\"client_cpu_seconds\":%.3f}\n",
           opt.mode == MODE_TIDAL ? "tidal" : "nchan",
           opt.transport == TRANSPORT_SSE ? "sse" : "ws",
           opt.clients, ready_count, opt.messages, pub.ok, pub.errors,
           pub.aborted ? "true" : "false",
           (unsigned long long) deliveries, (unsigned long long) expected,
           (deliveries == expected && missed == 0 && closed_count == 0
            && failed_count == 0 && pub.next == opt.messages && !pub.aborted)
               ? "true" : "false",
           elapsed, elapsed > 0 ? (double) deliveries / elapsed : 0.0,
           median_ms(lat, n_lat), lat_max,
           median_ms(first, n_lat), first_max,
           median_ms(rtt, n_rtt), rtt_max,
           unseen, failed_count, closed_count, missed,
           failed_count + closed_count + missed,
           (unsigned long long) out_of_order,
           (unsigned long long) unknown_index,
           (unsigned long long) early_marked,
           (unsigned long long) other_frames, cpu);
    fflush(stdout);

    free(lat);
    free(first);
    free(rtt);
}


static double
cpu_seconds(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);

    return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}


static int
cmp_u32(const void *a, const void *b)
{
    uint32_t  x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/*
 * The window's sound: messages and events, per client, and the batches
 * first seen away from the window's edges, each of which every ready
 * client should have got: what they did not is "missing".
 */

static void
sound_report(double cpu)
{
    double     window;
    uint32_t   i, n, judged, *per;
    uint64_t   missing, got;

    window = secs(sound_end - sound_start);

    per = calloc(opt.clients, sizeof(uint32_t));
    if (per == NULL) {
        fatal("out of memory");
    }

    for (i = 0, n = 0; i < opt.clients; i++) {
        if (conns[i].state == CONN_READY) {
            per[n++] = conns[i].delivered;
        }
    }

    qsort(per, n, sizeof(uint32_t), cmp_u32);

    judged = 0;
    missing = 0;
    got = 0;

    for (i = 0; i < sound_nbatches; i++) {
        if (sound_batches[i].first < sound_start + SOUND_EDGE_NS
            || sound_batches[i].first + SOUND_EDGE_NS >= sound_end)
        {
            continue;
        }

        judged++;
        got += sound_batches[i].count;
        missing += sound_batches[i].count < ready_count
                   ? ready_count - sound_batches[i].count : 0;
    }

    qsort(sound_leads, sound_nleads, sizeof(double), cmp_double);

    printf("sound {\"mode\":\"tidal\",\"transport\":\"%s\","
           "\"clients\":%u,\"ready\":%u,\"window_seconds\":%.3f,"
           "\"sound_messages\":%llu,\"sound_events\":%llu,"
           "\"messages_per_sec\":%.1f,\"events_per_sec\":%.1f,"
           "\"per_client_messages_min\":%u,"
           "\"per_client_messages_median\":%u,"
           "\"per_client_messages_max\":%u,"
           "\"batches\":%u,\"batches_judged\":%u,"
           "\"batch_deliveries_judged\":%llu,\"batch_deliveries_missing\":%llu,"
           "\"lead_median_ms\":%.1f,\"lead_min_ms\":%.1f,"
           "\"late_messages\":%llu,\"outside_window\":%llu,"
           "\"connect_failures\":%u,\"closed\":%u,\"other_frames\":%llu,"
           "\"client_cpu_seconds\":%.3f}\n",
           opt.transport == TRANSPORT_SSE ? "sse" : "ws",
           opt.clients, ready_count, window,
           (unsigned long long) sound_messages,
           (unsigned long long) sound_events,
           window > 0 ? sound_messages / window : 0.0,
           window > 0 ? sound_events / window : 0.0,
           n ? per[0] : 0, n ? per[n / 2] : 0, n ? per[n - 1] : 0,
           sound_nbatches, judged, (unsigned long long) got,
           (unsigned long long) missing,
           sound_nleads ? sound_leads[sound_nleads / 2] : -1.0,
           sound_nleads ? sound_leads[0] : -1.0,
           (unsigned long long) sound_late,
           (unsigned long long) sound_outside, failed_count, closed_count,
           (unsigned long long) other_frames, cpu);
    fflush(stdout);

    free(per);
}
