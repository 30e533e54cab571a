/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The GHCi driver: runs GHCi with Tidal, knows when each block it sent
 * is finished (markers on stdout and stderr), interrupts evaluations that
 * run too long, checks GHCi's health and restarts it.  Single-threaded:
 * the owner polls the descriptors it asks for and calls back in.
 */

#ifndef _TIDAL_GHCI_H_INCLUDED_
#define _TIDAL_GHCI_H_INCLUDED_


#include <poll.h>
#include <stddef.h>
#include <stdint.h>


#define TIDAL_GHCI_NFDS  5     /* descriptors it may ask to poll */


typedef struct tidal_ghci_s      tidal_ghci_t;
typedef struct tidal_ghci_job_s  tidal_ghci_job_t;


typedef enum {
    TIDAL_GHCI_OK = 0,     /* GHCi ran it and reported no error */
    TIDAL_GHCI_FAILED,     /* GHCi reported an error (the output) */
    TIDAL_GHCI_TIMEOUT,    /* interrupted at the eval timeout */
    TIDAL_GHCI_GONE        /* GHCi is not running, or died meanwhile */
} tidal_ghci_status_e;


/*
 * Called once per job with what GHCi wrote to stderr for it (NUL-
 * terminated; for GONE, why).  The job is freed after the call.
 */
typedef void (*tidal_ghci_done_pt)(tidal_ghci_t *g, tidal_ghci_job_t *job,
    tidal_ghci_status_e status, const char *output, size_t len);


struct tidal_ghci_job_s {
    tidal_ghci_job_t    *next;
    char                *text;      /* GHCi input, malloc'ed, owned */
    size_t               len;
    tidal_ghci_done_pt   done;
    void                *data;      /* the owner's */
    uint64_t             id;        /* its marker */
};


typedef struct {
    /*
     * After every successful boot; reason is NULL for the first, else
     * why GHCi was restarted.  Jobs the owner submits here as urgent run
     * before every job that was waiting (to re-apply the state).
     */
    void    (*ready)(tidal_ghci_t *g, const char *reason);

    /*
     * An error outside any job: a failed boot (channel 0) or a runtime
     * error Tidal printed after an evaluation was over (channel: the one
     * its message points into, 0 when it does not say).
     */
    void    (*error)(tidal_ghci_t *g, int channel, const char *message,
                     int boot);

    /*
     * Tidal's scheduler stopped (no heartbeat) while GHCi still answers:
     * why, before GHCi is restarted (ready follows as for any restart).
     */
    void    (*stalled)(tidal_ghci_t *g, const char *why);

    void     *data;
} tidal_ghci_handler_t;


typedef struct {
    char           **argv;            /* the ghci command, NULL-ended */
    const char      *boot_file;
    const char      *dirt_host;       /* SuperDirt, behind the relay */
    int              dirt_port;
    int              tempo_port;      /* 0: a free one at every start */
    int              ctrl_port;       /* 0: Tidal's listener off */
    int              eval_timeout;    /* ms */
    int              health_interval; /* ms; 0: no health checks */
    int              boot_timeout;    /* ms */
    int              stall_after;     /* ms without a heartbeat; 0: off */
    const char      *memory;          /* GHCi's heap cap (+RTS -M) */
} tidal_ghci_conf_t;


tidal_ghci_t *tidal_ghci_create(const tidal_ghci_conf_t *conf,
    const tidal_ghci_handler_t *handler);

/* starts GHCi and its boot; 0, or -1 when it could not be started */
int tidal_ghci_start(tidal_ghci_t *g);

/*
 * Queues a job (owned by the driver from now on, freed after its done
 * callback, which may run before this returns when GHCi is broken).
 * Urgent jobs go after the other urgent ones, before the rest.
 * Returns -1 only without memory (the job is then freed, done not
 * called).
 */
int tidal_ghci_submit(tidal_ghci_t *g, tidal_ghci_job_t *job, int urgent);

/* a job for text (copied), or NULL without memory */
tidal_ghci_job_t *tidal_ghci_job(const char *text, size_t len,
    tidal_ghci_done_pt done, void *data);

/* fills pfd with what to poll (at most TIDAL_GHCI_NFDS); returns n */
int tidal_ghci_pollfds(tidal_ghci_t *g, struct pollfd *pfd);

/* ms until the driver's next timer, -1 for none */
int tidal_ghci_timeout(tidal_ghci_t *g);

/* handles the revents of the n descriptors it asked for, and timers */
void tidal_ghci_process(tidal_ghci_t *g, struct pollfd *pfd, int n);

/*
 * The tempo was set to cps: the heartbeat slows down or speeds up with
 * it, so the stall deadline follows.
 */
void tidal_ghci_tempo(tidal_ghci_t *g, double cps);

/*
 * The scheduler's heartbeat: beats seen since the helper started, ms
 * since the last one (-1: none since GHCi booted), and after how many ms
 * without one the scheduler counts as stalled now.
 */
void tidal_ghci_heartbeat(tidal_ghci_t *g, uint64_t *beats, int64_t *age,
    int64_t *deadline);

/* "running", "booting", "restarting" or "not running: why" */
const char *tidal_ghci_status(tidal_ghci_t *g);

/* the handler's data */
void *tidal_ghci_data(tidal_ghci_t *g);

/* GHCi's pid, 0 when none */
int tidal_ghci_pid(tidal_ghci_t *g);

/* ends GHCi (EOF on its stdin, then SIGKILL) and frees everything */
void tidal_ghci_destroy(tidal_ghci_t *g);

/* the channel function's name is dN; "d1" .. "d16" -> 1 .. 16, else 0 */
int tidal_ghci_channel(const char *name);


#endif /* _TIDAL_GHCI_H_INCLUDED_ */
