/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The supervisor: three GHCis and the OSC relay.  The player plays the
 * room; the checker computes every new pattern's next cycles before the
 * player gets it, and tells which channel hangs when the player does;
 * the spare is booted and waiting, and takes over the room's timeline
 * when the player is lost.  No decision here is taken from text or
 * values a pattern controls: verdicts come from the boot file's report
 * pipe, heartbeats from the relay's check of each GHCi's secret.
 */

#ifndef _TIDAL_SUPER_H_INCLUDED_
#define _TIDAL_SUPER_H_INCLUDED_


#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "tidal_ghci.h"
#include "tidal_relay.h"


#define TIDAL_SUPER_NFDS  (3 * TIDAL_GHCI_NFDS + TIDAL_RELAY_NFDS)


typedef struct tidal_super_s  tidal_super_t;


typedef enum {
    TIDAL_SUPER_CHECK_PLAY = 0,  /* a new pattern: checked, then played */
    TIDAL_SUPER_PLAY,            /* a pattern played again (a replay) */
    TIDAL_SUPER_DO,              /* a statement of the helper's */
    TIDAL_SUPER_RAW              /* GHCi input as typed (admins) */
} tidal_super_op_e;


/*
 * The answer to a submitted job, once (output NUL-terminated: GHCi's
 * messages, a check's report, or why it was not done).
 */
typedef void (*tidal_super_done_pt)(tidal_super_t *s, void *data,
    tidal_ghci_status_e status, const char *output, size_t len);


typedef struct {
    /*
     * A player is ready: the first (reason NULL) or a new one, which
     * plays nothing of the room's yet: replay the state now (urgent
     * jobs go before everything that waits).
     */
    void         (*ready)(tidal_super_t *s, const char *reason);

    /* the player could not be booted, or another problem of the room's */
    void         (*error)(tidal_super_t *s, const char *message);

    /*
     * Channel N's pattern failed while playing and is silent now; it must
     * not be replayed.  Called before the replay a restart asks for.
     */
    void         (*failed)(tidal_super_t *s, int channel, const char *why);

    /* channel N's pattern when the scheduler plays it now, else NULL */
    const char  *(*audible)(tidal_super_t *s, int channel);

    /*
     * The OSC relay began to drop /dirt/play over conf->dirt_rate a
     * second, most of them channel's (0: not known); once a burst.  Its
     * first argument is data.
     */
    void         (*dropped)(void *data, int channel, unsigned rate);

    /*
     * A batch of the room's sound (tidal_relay.h), its first argument
     * data; NULL: the relay gathers none.
     */
    void         (*sound)(void *data, const char *text, size_t len);

    void          *data;
} tidal_super_handler_t;


tidal_super_t *tidal_super_create(const tidal_ghci_conf_t *conf,
    const tidal_super_handler_t *handler);

/* starts the three GHCis */
void tidal_super_start(tidal_super_t *s);

/*
 * A job for the room: text is the pattern (CHECK_PLAY, PLAY; channel 1
 * .. 16), a statement (DO) or GHCi input (RAW).  done is called exactly
 * once, maybe before this returns; -1 without memory (done not called).
 */
int tidal_super_submit(tidal_super_t *s, tidal_super_op_e op, int channel,
    const char *text, size_t len, int urgent, tidal_super_done_pt done,
    void *data);

/*
 * The room's tempo was set to cps (tidal_set_tempo, a replay): until a
 * heartbeat at that tempo comes, the stall deadline allows for it.
 */
void tidal_super_tempo(tidal_super_t *s, double cps);

int tidal_super_pollfds(tidal_super_t *s, struct pollfd *pfd);
int tidal_super_timeout(tidal_super_t *s);
void tidal_super_process(tidal_super_t *s, struct pollfd *pfd, int n);

/*
 * The player's heartbeat: beats seen since the helper started, ms since
 * the player's last one (-1: none), after how many ms without one it
 * counts as stalled now, and the tempo it plays at (0: not known).
 */
void tidal_super_heartbeat(tidal_super_t *s, uint64_t *beats, int64_t *age,
    int64_t *deadline, double *cps);

/* the player's: "running", "booting", "restarting", "not running: ..." */
const char *tidal_super_status(tidal_super_t *s);

int tidal_super_pid(tidal_super_t *s);
void *tidal_super_data(tidal_super_t *s);
void tidal_super_destroy(tidal_super_t *s);


#endif /* _TIDAL_SUPER_H_INCLUDED_ */
