/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The supervisor: which GHCi plays, which checks, which waits; what
 * happens when one is lost, hangs or a pattern fails.
 */


#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_helper_log.h"
#include "tidal_pattern.h"
#include "tidal_super.h"


#define TIDAL_SUPER_CPS          0.5625    /* Tidal's at boot */
#define TIDAL_SUPER_STALL_BEATS  3         /* heartbeats missed: a hang */
#define TIDAL_SUPER_BEAT_FIRST   10000     /* ms to the first one */
#define TIDAL_SUPER_CHECK_US     1000000   /* a cycle's time at a check */
#define TIDAL_SUPER_PLAY_MIN     1000      /* ms a checked play may wait */
#define TIDAL_SUPER_SUSPECT_MS   600       /* a suspect's check, in all */
#define TIDAL_SUPER_SUSPECT_US   200000    /* a cycle's time in it */
#define TIDAL_SUPER_SUSPECT_CYCLES  3
#define TIDAL_SUPER_IN_A_ROW     60000     /* ms: hangs further apart are
                                              not in a row */
#define TIDAL_SUPER_BACKOFF_MAX  30000
#define TIDAL_SUPER_MESSAGE_MAX  65536


typedef struct {
    tidal_super_t        *s;
    tidal_super_op_e      op;
    int                   channel;
    char                 *pattern;       /* CHECK_PLAY, PLAY */
    size_t                len;
    uint64_t              token;
    int64_t               deadline;      /* the caller's */
    unsigned              suspect:1;     /* a check of who hung */
    tidal_super_done_pt   done;
    void                 *data;
} tidal_super_job_t;


struct tidal_super_s {
    tidal_ghci_conf_t      conf;
    tidal_super_handler_t  handler;
    tidal_relay_t         *relay;

    tidal_ghci_t          *g[TIDAL_RELAY_SOURCES];
    int                    player;       /* indices into g */
    int                    spare;
    int                    checker;
    int64_t                restart_at[TIDAL_RELAY_SOURCES];
    int                    restarts[TIDAL_RELAY_SOURCES];

    uint64_t               token;
    uint64_t               playing[17];  /* the token each channel plays */
    uint64_t               starting[17]; /* of a play under way */
    char                  *early[17];    /* its failure, before it was done */

    int64_t                since;        /* the player plays since */
    double                 tempo;        /* set by the helper's tools ... */
    int64_t                tempo_at;     /* ... then */
    uint64_t               beats;        /* of the players before */
    unsigned               beat_warned:1;
    unsigned               cold:1;       /* the player boots as one */
    unsigned               first:1;      /* the first player was ready */
    unsigned               announced:1;  /* "Tidal is ready" was said */
    unsigned               spare_synced:1; /* on the room's timeline */
    char                  *reason;       /* why a player is replaced */

    /* the room's timeline, as the player's last heartbeat gave it */
    unsigned               timeline:1;
    double                 time;
    double                 cycle;
    double                 cps;

    /* who hung: suspects checked one by one, the newest pattern first */
    unsigned               identifying:1;
    int                    suspects[16];
    int                    nsuspects;
    int                    next_suspect;
    char                   hang[300];

    uint32_t               strikes;      /* channels at the last hang */
    int64_t                strike_at;
};


static tidal_super_job_t *tidal_super_job(tidal_super_t *s,
    tidal_super_op_e op, int channel, tidal_super_done_pt done,
    void *data);
static void tidal_super_job_free(tidal_super_job_t *job);
static int tidal_super_send(tidal_super_t *s, int slot, const char *text,
    size_t len, uint64_t token, int timeout, int64_t expires, int urgent,
    tidal_ghci_done_pt done, tidal_super_job_t *job);
static int tidal_super_statement(tidal_super_t *s, tidal_super_job_t *job,
    int slot, const char *stmt, size_t len, int urgent);
static void tidal_super_do(tidal_super_t *s, int slot, const char *stmt,
    int urgent);
static int tidal_super_check(tidal_super_t *s, tidal_super_job_t *job,
    double from, int cycles, int us, int timeout, int urgent);
static int tidal_super_play(tidal_super_t *s, tidal_super_job_t *job,
    int urgent);
static void tidal_super_checked(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len);
static void tidal_super_played(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len);
static void tidal_super_answer(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len);
static void tidal_super_ready(tidal_ghci_t *g);
static void tidal_super_lost(tidal_ghci_t *g, tidal_ghci_loss_e how,
    const char *why);
static void tidal_super_report(tidal_ghci_t *g, const char *line,
    size_t len);
static void tidal_super_watch(tidal_super_t *s, int64_t now);
static int64_t tidal_super_watch_at(tidal_super_t *s);
static int64_t tidal_super_stall_after(tidal_super_t *s);
static void tidal_super_hung(tidal_super_t *s, const char *why);
static void tidal_super_suspect(tidal_super_t *s);
static void tidal_super_suspected(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len);
static void tidal_super_unsure(tidal_super_t *s);
static void tidal_super_switch(tidal_super_t *s, const char *reason);
static void tidal_super_continue(tidal_super_t *s, int slot);
static void tidal_super_keep_timeline(tidal_super_t *s);
static void tidal_super_restart(tidal_super_t *s, int slot, int backoff);
static void tidal_super_name(tidal_super_t *s);
static int tidal_super_slot(tidal_super_t *s, tidal_ghci_t *g);
static char *tidal_super_failure(int channel, long long cycle,
    const char *msg, const char *end, const char *what, const char *then);
static int tidal_super_parse(const char *line, size_t len,
    uint64_t *token, int *channel, long long *cycle, const char **msg);


tidal_super_t *
tidal_super_create(const tidal_ghci_conf_t *conf,
    const tidal_super_handler_t *handler)
{
    int                    i;
    char                   err[512];
    tidal_super_t         *s;
    tidal_ghci_handler_t   gh;

    s = calloc(1, sizeof(tidal_super_t));
    if (s == NULL) {
        return NULL;
    }

    s->conf = *conf;
    s->handler = *handler;

    /* every GHCi sends to the relay, which sends one's on to SuperDirt */

    s->relay = tidal_relay_create(conf->dirt_host, conf->dirt_port, err,
                                  sizeof(err));
    if (s->relay == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "%s", err);
        free(s);
        return NULL;
    }

    s->conf.relay_port = s->relay->port;

    if (handler->sound) {
        tidal_relay_sound(s->relay, handler->sound, handler->data);
    }

    tidal_relay_limit(s->relay, conf->dirt_rate, handler->dropped,
                      handler->data);

    gh.ready = tidal_super_ready;
    gh.lost = tidal_super_lost;
    gh.report = tidal_super_report;
    gh.data = s;

    for (i = 0; i < TIDAL_RELAY_SOURCES; i++) {
        s->g[i] = tidal_ghci_create(&s->conf, &gh, "GHCi");

        if (s->g[i] == NULL) {
            tidal_super_destroy(s);
            return NULL;
        }
    }

    s->player = 0;
    s->spare = 1;
    s->checker = 2;
    tidal_super_name(s);
    tidal_relay_play(s->relay, s->player);

    return s;
}


/* the player and the checker first; the spare once the player is up */

void
tidal_super_start(tidal_super_t *s)
{
    s->since = tidal_helper_msec();

    tidal_super_restart(s, s->player, 0);
    tidal_super_restart(s, s->checker, 0);
}


int
tidal_super_submit(tidal_super_t *s, tidal_super_op_e op, int channel,
    const char *text, size_t len, int urgent, tidal_super_done_pt done,
    void *data)
{
    int                 rc;
    tidal_super_job_t  *job;

    job = tidal_super_job(s, op, channel, done, data);
    if (job == NULL) {
        return -1;
    }

    switch (op) {

    case TIDAL_SUPER_CHECK_PLAY:
    case TIDAL_SUPER_PLAY:
        job->pattern = malloc(len + 1);
        if (job->pattern == NULL) {
            tidal_super_job_free(job);
            return -1;
        }

        memcpy(job->pattern, text, len);
        job->pattern[len] = '\0';
        job->len = len;

        /* a new one from the room's cycle now, as far as the horizon */

        rc = (op == TIDAL_SUPER_PLAY)
             ? tidal_super_play(s, job, urgent)
             : tidal_super_check(s, job, s->timeline ? floor(s->cycle) : 0,
                                 s->conf.check_cycles, TIDAL_SUPER_CHECK_US,
                                 0, urgent);
        break;

    case TIDAL_SUPER_DO:
        rc = tidal_super_statement(s, job, s->player, text, len, urgent);
        break;

    default:
        rc = tidal_super_send(s, s->player, text, len, 0, 0, job->deadline,
                              urgent, tidal_super_answer, job);
    }

    if (rc != 0) {
        tidal_super_job_free(job);
    }

    return rc;
}


void
tidal_super_tempo(tidal_super_t *s, double cps)
{
    s->tempo = cps;
    s->tempo_at = tidal_helper_msec();
    s->spare_synced = 0;
}


int
tidal_super_pollfds(tidal_super_t *s, struct pollfd *pfd)
{
    int  i, n;

    n = 0;

    for (i = 0; i < TIDAL_RELAY_SOURCES; i++) {
        n += tidal_ghci_pollfds(s->g[i], pfd + n);
    }

    n += tidal_relay_pollfds(s->relay, pfd + n);

    return n;
}


int
tidal_super_timeout(tidal_super_t *s)
{
    int      i, t, best;
    int64_t  now, at;

    best = -1;
    now = tidal_helper_msec();

    for (i = 0; i < TIDAL_RELAY_SOURCES; i++) {
        t = tidal_ghci_timeout(s->g[i]);

        if (t >= 0 && (best < 0 || t < best)) {
            best = t;
        }

        if (s->restart_at[i]) {
            t = s->restart_at[i] <= now ? 0 : (int) (s->restart_at[i] - now);

            if (best < 0 || t < best) {
                best = t;
            }
        }
    }

    t = tidal_relay_timeout(s->relay);

    if (t >= 0 && (best < 0 || t < best)) {
        best = t;
    }

    at = tidal_super_watch_at(s);

    if (at) {
        t = at <= now ? 0 : (int) (at - now);

        if (best < 0 || t < best) {
            best = t;
        }
    }

    return best;
}


void
tidal_super_process(tidal_super_t *s, struct pollfd *pfd, int n)
{
    int      i;
    int64_t  now;

    /*
     * The relay first, so that heartbeats that came are counted before
     * the watch looks; each GHCi picks its own descriptors from the rest.
     */

    for (i = 0; i < n; i++) {
        if (pfd[i].revents
            && (pfd[i].fd == s->relay->in || pfd[i].fd == s->relay->out))
        {
            tidal_relay_process(s->relay, &pfd[i], 1);
            pfd[i].revents = 0;
        }
    }

    tidal_relay_tick(s->relay);

    for (i = 0; i < TIDAL_RELAY_SOURCES; i++) {
        tidal_ghci_process(s->g[i], pfd, n);
    }

    now = tidal_helper_msec();

    for (i = 0; i < TIDAL_RELAY_SOURCES; i++) {
        if (s->restart_at[i] && now >= s->restart_at[i]) {
            s->restart_at[i] = 0;

            if (tidal_ghci_start(s->g[i]) == 0) {
                tidal_relay_watch(s->relay, i, tidal_ghci_secret(s->g[i]));
            }
        }
    }

    tidal_super_watch(s, now);
}


void
tidal_super_heartbeat(tidal_super_t *s, uint64_t *beats, int64_t *age,
    int64_t *deadline, double *cps)
{
    tidal_relay_source_t  *src;

    src = &s->relay->sources[s->player];

    *beats = s->beats + src->beats;
    *age = -1;
    *deadline = s->conf.stall_after ? tidal_super_stall_after(s) : 0;
    *cps = src->cps;

    if (tidal_ghci_ready(s->g[s->player]) && src->beats) {
        *age = tidal_helper_msec() - src->beat;
    }
}


const char *
tidal_super_status(tidal_super_t *s)
{
    tidal_ghci_t  *g, *c;

    g = s->g[s->player];
    c = s->g[s->checker];

    /* the first boot failed in the checker: that is why nothing plays */

    if (!s->announced && !tidal_ghci_ready(c) && tidal_ghci_pid(c) == 0
        && strncmp(tidal_ghci_status(c), "Tidal did not boot", 18) == 0)
    {
        return tidal_ghci_status(c);
    }

    if (s->identifying || (s->first && !tidal_ghci_ready(g))) {
        return "restarting";
    }

    return tidal_ghci_status(g);
}


int
tidal_super_pid(tidal_super_t *s)
{
    return tidal_ghci_pid(s->g[s->player]);
}


void *
tidal_super_data(tidal_super_t *s)
{
    return s->handler.data;
}


void
tidal_super_destroy(tidal_super_t *s)
{
    int  i;

    for (i = 0; i < TIDAL_RELAY_SOURCES; i++) {
        if (s->g[i]) {
            tidal_ghci_destroy(s->g[i]);
        }
    }

    for (i = 0; i < 17; i++) {
        free(s->early[i]);
    }

    tidal_relay_destroy(s->relay);
    free(s->reason);
    free(s);
}


/* -- jobs -------------------------------------------------------------- */


static tidal_super_job_t *
tidal_super_job(tidal_super_t *s, tidal_super_op_e op, int channel,
    tidal_super_done_pt done, void *data)
{
    tidal_super_job_t  *job;

    job = calloc(1, sizeof(tidal_super_job_t));
    if (job == NULL) {
        return NULL;
    }

    job->s = s;
    job->op = op;
    job->channel = channel;
    job->done = done;
    job->data = data;
    job->deadline = tidal_helper_msec() + s->conf.eval_timeout;

    return job;
}


static void
tidal_super_job_free(tidal_super_job_t *job)
{
    free(job->pattern);
    free(job);
}


/* a GHCi job for slot; -1 without memory (the caller still owns job) */

static int
tidal_super_send(tidal_super_t *s, int slot, const char *text, size_t len,
    uint64_t token, int timeout, int64_t expires, int urgent,
    tidal_ghci_done_pt done, tidal_super_job_t *job)
{
    tidal_ghci_job_t  *gjob;

    gjob = tidal_ghci_job(text, len, done, job);

    if (gjob == NULL) {
        tidal_helper_log(TIDAL_LOG_ERR, "out of memory queueing a job");
        return -1;
    }

    gjob->token = token;
    gjob->timeout = timeout;
    gjob->expires = expires;

    tidal_ghci_submit(s->g[slot], gjob, urgent);

    return 0;
}


/* a statement of the supervisor's own for one GHCi; nobody waits for it */

/*
 * A statement whose verdict is "ok TOKEN" on the report pipe; -1 without
 * memory (the caller still owns job).
 */

static int
tidal_super_statement(tidal_super_t *s, tidal_super_job_t *job, int slot,
    const char *stmt, size_t len, int urgent)
{
    int    rc;
    char  *text;

    job->token = ++s->token;

    if (asprintf(&text, "%.*s >> tidalDone %llu", (int) len, stmt,
                 (unsigned long long) job->token)
        == -1)
    {
        return -1;
    }

    rc = tidal_super_send(s, slot, text, strlen(text), job->token, 0,
                          job->deadline, urgent, tidal_super_answer, job);
    free(text);

    return rc;
}


static void
tidal_super_do(tidal_super_t *s, int slot, const char *stmt, int urgent)
{
    tidal_super_job_t  *job;

    job = tidal_super_job(s, TIDAL_SUPER_DO, 0, NULL, NULL);

    if (job != NULL
        && tidal_super_statement(s, job, slot, stmt, strlen(stmt), urgent)
           != 0)
    {
        tidal_super_job_free(job);
    }
}


/*
 * The checker computes cycles of the pattern, from `from` on, each
 * within us microseconds: "ok" or the guard's "fail" on the report pipe.
 */

static int
tidal_super_check(tidal_super_t *s, tidal_super_job_t *job, double from,
    int cycles, int us, int timeout, int urgent)
{
    int      rc;
    char    *text, head[160];
    size_t   len;

    job->token = ++s->token;

    snprintf(head, sizeof(head), "tidalCheck %llu %d (%.0f) %d %d (%.17g)",
             (unsigned long long) job->token, job->channel, from, cycles,
             us, s->timeline ? s->cps : TIDAL_SUPER_CPS);

    text = tidal_pattern_wrap(head, job->channel, job->pattern, job->len,
                              &len);
    if (text == NULL) {
        return -1;
    }

    rc = tidal_super_send(s, s->checker, text, len, job->token, timeout,
                          job->deadline, urgent,
                          job->suspect ? tidal_super_suspected
                                       : tidal_super_checked,
                          job);
    free(text);

    return rc;
}


static int
tidal_super_play(tidal_super_t *s, tidal_super_job_t *job, int urgent)
{
    int      rc;
    char    *text, head[64];
    size_t   len;

    job->token = ++s->token;
    s->starting[job->channel] = job->token;

    snprintf(head, sizeof(head), "tidalPlay %llu %d",
             (unsigned long long) job->token, job->channel);

    text = tidal_pattern_wrap(head, job->channel, job->pattern, job->len,
                              &len);
    if (text == NULL) {
        s->starting[job->channel] = 0;
        return -1;
    }

    rc = tidal_super_send(s, s->player, text, len, job->token, 0,
                          job->deadline, urgent, tidal_super_played, job);
    free(text);

    if (rc != 0) {
        s->starting[job->channel] = 0;
    }

    return rc;
}


/* a new pattern was checked: played if it passed, else the caller hears */

static void
tidal_super_checked(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len)
{
    int                 ch;
    char               *msg;
    int64_t             now;
    uint64_t            token;
    long long           cycle;
    const char         *text;
    tidal_super_t      *s;
    tidal_super_job_t  *job;

    job = gjob->data;
    s = job->s;

    if (status == TIDAL_GHCI_OK) {
        now = tidal_helper_msec();

        if (job->deadline < now + TIDAL_SUPER_PLAY_MIN) {
            job->deadline = now + TIDAL_SUPER_PLAY_MIN;
        }

        if (tidal_super_play(s, job, 0) == 0) {
            return;
        }

        status = TIDAL_GHCI_GONE;
        output = "out of memory";
        len = strlen(output);
    }

    msg = NULL;

    if (status == TIDAL_GHCI_FAILED
        && tidal_super_parse(output, len, &token, &ch, &cycle, &text) == 0)
    {
        msg = tidal_super_failure(job->channel, cycle, text, output + len,
                                  "fails", "and was not played");

    } else if (status == TIDAL_GHCI_GONE) {
        if (asprintf(&msg, "d%d: the pattern was not played: it could not "
                     "be checked (%s)", job->channel, output)
            == -1)
        {
            msg = NULL;
        }
    }

    if (job->done) {
        job->done(s, job->data, status, msg ? msg : output,
                  msg ? strlen(msg) : len);
    }

    free(msg);
    tidal_super_job_free(job);
}


static void
tidal_super_played(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len)
{
    int                 ch;
    char               *early;
    tidal_super_t      *s;
    tidal_super_job_t  *job;

    job = gjob->data;
    s = job->s;
    ch = job->channel;
    early = NULL;

    if (s->starting[ch] == job->token) {
        s->starting[ch] = 0;
        early = s->early[ch];
        s->early[ch] = NULL;
    }

    if (status == TIDAL_GHCI_OK && g == s->g[s->player]) {
        s->playing[ch] = early ? 0 : job->token;
    }

    if (job->done) {
        job->done(s, job->data, status, output, len);
    }

    /* it failed at once, before "ok" came: the caller heard it plays */

    if (early && status == TIDAL_GHCI_OK && s->handler.failed) {
        s->handler.failed(s, ch, early);
    }

    free(early);
    tidal_super_job_free(job);
}


static void
tidal_super_answer(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len)
{
    tidal_super_job_t  *job;

    job = gjob->data;

    if (job->done) {
        job->done(job->s, job->data, status, output, len);
    }

    tidal_super_job_free(job);
}


/* -- the GHCis --------------------------------------------------------- */


static void
tidal_super_ready(tidal_ghci_t *g)
{
    int             slot;
    char           *reason;
    tidal_super_t  *s;

    s = tidal_ghci_data(g);
    slot = tidal_super_slot(s, g);

    s->restarts[slot] = 0;

    if (!s->announced && tidal_ghci_ready(s->g[s->player])
        && tidal_ghci_ready(s->g[s->checker]))
    {
        s->announced = 1;
        tidal_helper_log(TIDAL_LOG_INFO, "Tidal is ready: the player is GHCi "
                         "pid %d", tidal_super_pid(s));
    }

    if (slot != s->player) {

        /* it waits unsynchronized, to follow the room's timeline (below) */

        tidal_super_do(s, slot, "tidalStandby", 0);

        if (slot == s->spare) {
            s->spare_synced = 0;
        }

        return;
    }

    s->since = tidal_helper_msec();

    if (!s->first) {
        s->first = 1;

        if (!tidal_ghci_pid(s->g[s->spare]) && !s->restart_at[s->spare]) {
            tidal_super_restart(s, s->spare, 0);
        }

        if (s->handler.ready) {
            s->handler.ready(s, NULL);
        }

        return;
    }

    if (!s->cold) {
        return;
    }

    /* a player booted to replace one, with no spare ready */

    s->cold = 0;
    tidal_helper_log(TIDAL_LOG_INFO, "Tidal is ready: the player is GHCi pid "
                     "%d", tidal_super_pid(s));
    tidal_super_continue(s, s->player);

    reason = s->reason;
    s->reason = NULL;

    if (s->handler.ready) {
        s->handler.ready(s, reason ? reason : "GHCi was restarted");
    }

    free(reason);
}


static void
tidal_super_lost(tidal_ghci_t *g, tidal_ghci_loss_e how, const char *why)
{
    int             slot;
    char            msg[1200];
    tidal_super_t  *s;

    s = tidal_ghci_data(g);
    slot = tidal_super_slot(s, g);

    if (slot != s->player) {
        tidal_super_restart(s, slot, how == TIDAL_GHCI_BOOT ? 2 : 1);
        return;
    }

    if (how == TIDAL_GHCI_BOOT) {
        snprintf(msg, sizeof(msg), "Tidal did not boot: %s", why);

        if (s->handler.error) {
            s->handler.error(s, msg);
        }

        if (tidal_ghci_ready(s->g[s->spare])) {
            tidal_super_switch(s, msg);

        } else {
            s->cold = s->first;
            tidal_super_restart(s, slot, 2);
        }

        return;
    }

    if (how == TIDAL_GHCI_HUNG) {
        tidal_super_hung(s, why);
        return;
    }

    /* it exited or was killed from outside: not a pattern's doing */

    snprintf(msg, sizeof(msg), "GHCi exited: %s", why);
    tidal_super_switch(s, msg);
}


/*
 * "fail TOKEN CHANNEL CYCLE MESSAGE": a channel's guard caught its
 * pattern failing while playing and silenced it.  It counts when it is
 * the player's and the token is the one the channel plays now (older
 * patterns' guards are gone from Tidal, a check's is the checker's).
 */

static void
tidal_super_report(tidal_ghci_t *g, const char *line, size_t len)
{
    int             ch;
    char           *msg;
    uint64_t        token;
    long long       cycle;
    const char     *text;
    tidal_super_t  *s;

    s = tidal_ghci_data(g);

    if (g != s->g[s->player]
        || tidal_super_parse(line, len, &token, &ch, &cycle, &text) != 0
        || token == 0)
    {
        return;
    }

    msg = tidal_super_failure(ch, cycle, text, line + len,
                              "failed while playing", "and was silenced");
    if (msg == NULL) {
        return;
    }

    if (token == s->playing[ch]) {
        s->playing[ch] = 0;

        tidal_helper_log(TIDAL_LOG_WARN, "%s", msg);

        if (s->handler.failed) {
            s->handler.failed(s, ch, msg);
        }

        free(msg);
        return;
    }

    if (token == s->starting[ch] && s->early[ch] == NULL) {
        s->early[ch] = msg;
        return;
    }

    free(msg);
}


/* -- the scheduler's heartbeat ----------------------------------------- */


/*
 * The player's heartbeat comes TIDAL_RELAY_BEATS_A_CYCLE times a cycle
 * at the tempo it really plays (its own `cps`: patterns cannot change
 * it), or at a slower one the helper has just set.  None for
 * TIDAL_SUPER_STALL_BEATS of its periods, at least --stall-after: the
 * player hangs, whatever GHCi still answers.
 */

static void
tidal_super_watch(tidal_super_t *s, int64_t now)
{
    char                   why[160];
    int64_t                last;
    tidal_relay_source_t  *src;

    if (s->conf.stall_after == 0 || s->identifying
        || !tidal_ghci_ready(s->g[s->player]))
    {
        return;
    }

    src = &s->relay->sources[s->player];

    if (src->beats == 0) {
        if (!s->beat_warned && now - s->since >= TIDAL_SUPER_BEAT_FIRST) {
            s->beat_warned = 1;
            tidal_helper_log(TIDAL_LOG_WARN, "no heartbeat from Tidal's "
                             "scheduler within %d ms of the boot (a boot "
                             "file without \"%s\"?): a stalled scheduler "
                             "will go unnoticed", TIDAL_SUPER_BEAT_FIRST,
                             TIDAL_RELAY_BEAT);
        }

        return;
    }

    tidal_super_keep_timeline(s);

    /*
     * The spare follows the room's timeline, so that it takes over
     * without a jump: once it is up, and after each tempo change, once a
     * heartbeat at the new tempo came.
     */

    if (!s->spare_synced && s->timeline && src->beat > s->tempo_at
        && tidal_ghci_ready(s->g[s->spare]))
    {
        s->spare_synced = 1;
        tidal_super_continue(s, s->spare);
    }

    last = src->beat > s->since ? src->beat : s->since;
    last = last > s->tempo_at ? last : s->tempo_at;

    if (now < last + tidal_super_stall_after(s)) {
        return;
    }

    snprintf(why, sizeof(why), "no heartbeat from Tidal's scheduler for "
             "%lld ms", (long long) (now - last));

    tidal_super_hung(s, why);
}


static int64_t
tidal_super_watch_at(tidal_super_t *s)
{
    int64_t                last;
    tidal_relay_source_t  *src;

    if (s->conf.stall_after == 0 || s->identifying
        || !tidal_ghci_ready(s->g[s->player]))
    {
        return 0;
    }

    src = &s->relay->sources[s->player];

    if (src->beats == 0) {
        return s->beat_warned ? 0 : s->since + TIDAL_SUPER_BEAT_FIRST;
    }

    last = src->beat > s->since ? src->beat : s->since;
    last = last > s->tempo_at ? last : s->tempo_at;

    return last + tidal_super_stall_after(s);
}


static int64_t
tidal_super_stall_after(tidal_super_t *s)
{
    double                 cps;
    int64_t                ms;
    tidal_relay_source_t  *src;

    src = &s->relay->sources[s->player];
    cps = src->cps > 0 ? src->cps : TIDAL_SUPER_CPS;

    if (s->tempo > 0 && s->tempo_at >= src->beat && s->tempo < cps) {
        cps = s->tempo;
    }

    ms = llround(TIDAL_SUPER_STALL_BEATS * 1000.0
                 / (TIDAL_RELAY_BEATS_A_CYCLE * cps));

    return ms > s->conf.stall_after ? ms : s->conf.stall_after;
}


/* -- a hung player ----------------------------------------------------- */


/*
 * The player hangs: a pattern computes for ever (GHC cannot interrupt a
 * loop that does not allocate, and its garbage collector then waits for
 * it), or someone stopped it.  It is killed at once; then the checker
 * computes each playing channel's next cycles, in isolation and with a
 * short deadline, to find the one that hangs; then the spare takes over
 * with the others.
 */

static void
tidal_super_hung(tidal_super_t *s, const char *why)
{
    int          ch, i, j, n, stopped, pid;
    char         msg[600];
    const char  *pattern;

    if (s->identifying) {
        return;
    }

    tidal_super_keep_timeline(s);

    pid = tidal_super_pid(s);
    stopped = tidal_ghci_stopped(s->g[s->player]);

    snprintf(s->hang, sizeof(s->hang), "%s", why);
    tidal_helper_log(TIDAL_LOG_ERR, "the player (GHCi pid %d) hangs: %s%s",
                     pid, why, stopped ? "; it was stopped from outside" : "");

    tidal_ghci_stop(s->g[s->player], "GHCi hung and was stopped; nothing "
                    "was changed");

    if (stopped) {

        /* SIGSTOP is not a pattern's doing: no one is suspected */

        snprintf(msg, sizeof(msg), "GHCi (pid %d) was stopped from outside "
                 "(SIGSTOP) and was replaced", pid);
        tidal_super_switch(s, msg);
        return;
    }

    n = 0;

    for (ch = 1; ch <= 16; ch++) {
        pattern = s->handler.audible ? s->handler.audible(s, ch) : NULL;

        if (pattern == NULL) {
            continue;
        }

        /* the newest first: the likeliest, and the quickest found */

        for (i = n; i > 0 && s->playing[s->suspects[i - 1]]
                             < s->playing[ch]; i--)
        {
            s->suspects[i] = s->suspects[i - 1];
        }

        s->suspects[i] = ch;
        n++;
    }

    s->nsuspects = n;
    s->next_suspect = 0;

    if (n == 0 || !tidal_ghci_ready(s->g[s->checker])) {
        tidal_super_unsure(s);
        return;
    }

    for (j = 0; j < n; j++) {
        tidal_helper_log(TIDAL_LOG_DEBUG, "suspect %d: d%d", j,
                         s->suspects[j]);
    }

    s->identifying = 1;
    tidal_super_suspect(s);
}


static void
tidal_super_suspect(tidal_super_t *s)
{
    int                 ch;
    const char         *pattern;
    tidal_super_job_t  *job;

    while (s->next_suspect < s->nsuspects) {
        ch = s->suspects[s->next_suspect++];
        pattern = s->handler.audible(s, ch);

        if (pattern == NULL) {
            continue;
        }

        job = tidal_super_job(s, TIDAL_SUPER_CHECK_PLAY, ch, NULL, NULL);

        if (job == NULL || (job->pattern = strdup(pattern)) == NULL) {
            free(job);
            break;
        }

        job->len = strlen(pattern);
        job->suspect = 1;
        job->deadline = 0;

        if (tidal_super_check(s, job, floor(s->cycle) - 1,
                              TIDAL_SUPER_SUSPECT_CYCLES,
                              TIDAL_SUPER_SUSPECT_US,
                              TIDAL_SUPER_SUSPECT_MS, 1)
            != 0)
        {
            tidal_super_job_free(job);
            break;
        }

        return;
    }

    s->identifying = 0;
    tidal_super_unsure(s);
}


static void
tidal_super_suspected(tidal_ghci_t *g, tidal_ghci_job_t *gjob,
    tidal_ghci_status_e status, const char *output, size_t len)
{
    int                 ch, n;
    char               *msg, reason[700];
    uint64_t            token;
    long long           cycle;
    const char         *text;
    tidal_super_t      *s;
    tidal_super_job_t  *job;

    job = gjob->data;
    s = job->s;
    ch = job->channel;

    if (status == TIDAL_GHCI_OK) {
        tidal_super_job_free(job);
        tidal_super_suspect(s);
        return;
    }

    /* it fails or hangs where the player hung, alone: the culprit */

    if (status == TIDAL_GHCI_FAILED
        && tidal_super_parse(output, len, &token, &n, &cycle, &text) == 0)
    {
        msg = tidal_super_failure(ch, cycle, text, output + len,
                                  "stopped Tidal's scheduler",
                                  "and was silenced");

    } else if (asprintf(&msg, "d%d stopped Tidal's scheduler at cycle %.0f "
                        "and was silenced: its pattern computes for ever "
                        "there", ch, floor(s->cycle))
               == -1)
    {
        msg = NULL;
    }

    tidal_super_job_free(job);

    s->identifying = 0;
    s->playing[ch] = 0;
    s->strikes &= ~(1u << ch);

    tidal_helper_log(TIDAL_LOG_ERR, "%s", msg ? msg : "out of memory");

    if (s->handler.failed) {
        s->handler.failed(s, ch, msg ? msg : "");
    }

    snprintf(reason, sizeof(reason), "Tidal's scheduler hung (%s); d%d was "
             "the cause and is silent, the other channels play on", s->hang,
             ch);
    free(msg);

    tidal_super_switch(s, reason);
}


/*
 * No check explained the hang.  The channels that also played at the
 * last hang (in a row: not long before) are silenced, so a pattern the
 * checks cannot catch cannot restart the room for ever.
 */

static void
tidal_super_unsure(tidal_super_t *s)
{
    int       ch, i;
    char      msg[300], reason[600];
    int64_t   now;
    uint32_t  mask, both;

    now = tidal_helper_msec();
    mask = 0;

    for (i = 0; i < s->nsuspects; i++) {
        mask |= 1u << s->suspects[i];
    }

    both = 0;

    if (s->strike_at && now - s->strike_at < TIDAL_SUPER_IN_A_ROW) {
        both = mask & s->strikes;
    }

    for (ch = 1; ch <= 16; ch++) {
        if (!(both & (1u << ch))) {
            continue;
        }

        snprintf(msg, sizeof(msg), "d%d played at two hangs of Tidal's "
                 "scheduler in a row that no check explained, and was "
                 "silenced", ch);
        tidal_helper_log(TIDAL_LOG_ERR, "%s", msg);

        s->playing[ch] = 0;

        if (s->handler.failed) {
            s->handler.failed(s, ch, msg);
        }
    }

    s->strikes = mask & ~both;
    s->strike_at = now;

    snprintf(reason, sizeof(reason), "Tidal's scheduler hung (%s) and no "
             "channel's pattern was found to cause it; the channels were "
             "replayed", s->hang);

    tidal_super_switch(s, reason);
}


/* -- switching --------------------------------------------------------- */


/*
 * The player is lost: the spare, booted and waiting, takes over the
 * room's timeline and the owner replays the room into it; without a
 * spare ready, a new player boots and does the same when it is up.
 */

static void
tidal_super_switch(tidal_super_t *s, const char *reason)
{
    int  old;

    old = s->player;

    tidal_super_keep_timeline(s);
    s->beats += s->relay->sources[old].beats;

    tidal_ghci_stop(s->g[old], "GHCi was replaced; nothing was changed");

    memset(s->playing, 0, sizeof(s->playing));
    s->beat_warned = 0;

    if (!tidal_ghci_ready(s->g[s->spare])) {
        free(s->reason);
        s->reason = strdup(reason);
        s->cold = 1;

        tidal_helper_log(TIDAL_LOG_WARN, "no spare GHCi is ready: booting "
                         "a new player (%s)", reason);

        tidal_super_restart(s, old, 1);
        return;
    }

    s->player = s->spare;
    s->spare = old;
    s->since = tidal_helper_msec();

    tidal_super_name(s);
    tidal_relay_play(s->relay, s->player);

    tidal_helper_log(TIDAL_LOG_INFO, "the player is GHCi pid %d now, the "
                     "spare: %s", tidal_super_pid(s), reason);

    /*
     * A spare that follows the room's timeline already plays on its
     * grid; one that does not jumps there, and a frame it computed before
     * the jump could play a replayed pattern at its own old cycle.
     */

    if (!s->spare_synced) {
        tidal_super_continue(s, s->player);
    }

    s->spare_synced = 0;

    if (s->handler.ready) {
        s->handler.ready(s, reason);
    }

    tidal_super_restart(s, old, 0);
}


/* a GHCi goes on with the room's cycles, on the same grid */

static void
tidal_super_continue(tidal_super_t *s, int slot)
{
    char  text[160];

    if (!s->timeline) {
        return;
    }

    /* heartbeats fall on eighths of a cycle; `cycle` came as a float */

    snprintf(text, sizeof(text), "tidalContinue (%.6f) (%lld / %d) (%.17g)",
             s->time,
             (long long) llround(s->cycle * TIDAL_RELAY_BEATS_A_CYCLE),
             TIDAL_RELAY_BEATS_A_CYCLE, s->cps);

    tidal_super_do(s, slot, text, 1);
}


static void
tidal_super_keep_timeline(tidal_super_t *s)
{
    tidal_relay_source_t  *src;

    src = &s->relay->sources[s->player];

    if (src->beats && src->cps > 0 && src->time > 0) {
        s->time = src->time;
        s->cycle = src->cycle;
        s->cps = src->cps;
        s->timeline = 1;
    }
}


/*
 * backoff: 0 now; 1 after a loss (now the first time, then 1, 2, 4 ...
 * s); 2 after a failed boot (1, 2, 4 ... s): a GHCi that cannot boot is
 * not run in a loop.
 */

static void
tidal_super_restart(tidal_super_t *s, int slot, int backoff)
{
    int      delay, n;
    int64_t  now;

    now = tidal_helper_msec();
    delay = 0;
    n = s->restarts[slot] < 6 ? s->restarts[slot] : 6;

    if (backoff == 2) {
        delay = 1000 << n;

    } else if (backoff == 1 && n) {
        delay = 500 << n;
    }

    if (delay > TIDAL_SUPER_BACKOFF_MAX) {
        delay = TIDAL_SUPER_BACKOFF_MAX;
    }

    if (backoff) {
        s->restarts[slot]++;
    }

    s->restart_at[slot] = now + delay;

    if (s->restart_at[slot] == 0) {
        s->restart_at[slot] = 1;
    }
}


static void
tidal_super_name(tidal_super_t *s)
{
    tidal_ghci_rename(s->g[s->player], "the player");
    tidal_ghci_rename(s->g[s->spare], "the spare");
    tidal_ghci_rename(s->g[s->checker], "the checker");
}


static int
tidal_super_slot(tidal_super_t *s, tidal_ghci_t *g)
{
    int  i;

    for (i = 0; i < TIDAL_RELAY_SOURCES; i++) {
        if (s->g[i] == g) {
            return i;
        }
    }

    return 0;
}


/* -- reports ----------------------------------------------------------- */


/*
 * "dN WHAT at cycle C THEN: MESSAGE", malloc'ed, from a report's message
 * (msg .. end) unescaped (the boot file wrote \\ and \xNN for control
 * characters) and cut at TIDAL_SUPER_MESSAGE_MAX bytes.
 */

static char *
tidal_super_failure(int channel, long long cycle, const char *msg,
    const char *end, const char *what, const char *then)
{
    int          hi, lo;
    char        *out, *o;
    const char  *p;

    out = malloc(TIDAL_SUPER_MESSAGE_MAX + 200);
    if (out == NULL) {
        return NULL;
    }

    o = out + snprintf(out, 200, "d%d %s at cycle %lld %s: ", channel, what,
                       cycle, then);
    p = msg;

    while (p < end && o < out + TIDAL_SUPER_MESSAGE_MAX + 190) {
        if (*p != '\\' || end - p < 2) {
            *o++ = *p++;
            continue;
        }

        if (p[1] == 'x' && end - p >= 4) {
            hi = (p[2] >= 'a') ? p[2] - 'a' + 10 : p[2] - '0';
            lo = (p[3] >= 'a') ? p[3] - 'a' + 10 : p[3] - '0';

            if (hi >= 0 && hi < 16 && lo >= 0 && lo < 16) {
                *o++ = (char) (hi * 16 + lo);
                p += 4;
                continue;
            }
        }

        *o++ = p[1];
        p += 2;
    }

    *o = '\0';

    return out;
}


/* "fail TOKEN CHANNEL CYCLE MESSAGE" */

static int
tidal_super_parse(const char *line, size_t len, uint64_t *token,
    int *channel, long long *cycle, const char **msg)
{
    char         buf[80], *p, *end;
    size_t       n;
    long         ch;
    const char  *rest;

    if (len < 5 || memcmp(line, "fail ", 5) != 0) {
        return -1;
    }

    n = len - 5 < sizeof(buf) - 1 ? len - 5 : sizeof(buf) - 1;
    memcpy(buf, line + 5, n);
    buf[n] = '\0';

    errno = 0;
    p = buf;
    *token = strtoull(p, &end, 10);

    if (end == p || *end != ' ' || errno) {
        return -1;
    }

    p = end + 1;
    ch = strtol(p, &end, 10);

    if (end == p || *end != ' ' || ch < 1 || ch > 16 || errno) {
        return -1;
    }

    p = end + 1;
    *cycle = strtoll(p, &end, 10);

    if (end == p || (*end != ' ' && *end != '\0') || errno) {
        return -1;
    }

    *channel = (int) ch;

    rest = line + 5 + (end - buf);
    *msg = (rest < line + len) ? rest + 1 : line + len;

    return 0;
}
