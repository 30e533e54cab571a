/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * One GHCi running Tidal: started, fed blocks whose end it knows
 * (markers on stdout and stderr) and whose verdict it reads from the
 * boot file's report pipe, interrupted when a block runs too long,
 * checked for health.  It never restarts itself: when GHCi is lost it
 * says so and the owner (the supervisor) decides.  Single-threaded: the
 * owner polls the descriptors it asks for and calls back in.
 */

#ifndef _TIDAL_GHCI_H_INCLUDED_
#define _TIDAL_GHCI_H_INCLUDED_


#include <poll.h>
#include <stddef.h>
#include <stdint.h>


#define TIDAL_GHCI_NFDS  4     /* descriptors it may ask to poll */


typedef struct tidal_ghci_s      tidal_ghci_t;
typedef struct tidal_ghci_job_s  tidal_ghci_job_t;


typedef enum {
    TIDAL_GHCI_OK = 0,     /* done: its token was reported, or no error */
    TIDAL_GHCI_FAILED,     /* not done: the output says why */
    TIDAL_GHCI_TIMEOUT,    /* interrupted at its timeout */
    TIDAL_GHCI_GONE        /* GHCi is not running, died or hung meanwhile,
                              or the job waited past its expiry */
} tidal_ghci_status_e;


/* how a GHCi was lost */
typedef enum {
    TIDAL_GHCI_EXITED = 0, /* it exited or was killed from outside */
    TIDAL_GHCI_HUNG,       /* it stopped answering */
    TIDAL_GHCI_BOOT        /* it did not boot */
} tidal_ghci_loss_e;


/*
 * Called once per job with what GHCi wrote to stderr for it, or the
 * guard's report of a failed check (NUL-terminated; for GONE, why).  The
 * job is freed after the call.
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

    /*
     * The job is done when the report pipe says "ok TOKEN"; 0: when
     * GHCi's output shows no error (input as typed, for admins).
     */
    uint64_t             token;
    int                  timeout;   /* ms to run; 0: the eval timeout */
    int64_t              expires;   /* not started by then: GONE; 0: never */
    unsigned             reported:1;
    unsigned             urgent:1;  /* queued before the others */
};


typedef struct {
    /* booted and ready for jobs */
    void    (*ready)(tidal_ghci_t *g);

    /*
     * GHCi is gone (killed if it was not): every job was answered GONE
     * before this; nothing restarts it but tidal_ghci_start().
     */
    void    (*lost)(tidal_ghci_t *g, tidal_ghci_loss_e how,
                    const char *why);

    /* a line of the report pipe no job took ("fail ..."), without \n */
    void    (*report)(tidal_ghci_t *g, const char *line, size_t len);

    void     *data;
} tidal_ghci_handler_t;


typedef struct {
    char           **argv;            /* the ghci command, NULL-ended */
    const char      *boot_file;
    const char      *dirt_host;       /* SuperDirt, behind the relay */
    int              dirt_port;
    int              relay_port;      /* where Tidal sends: the relay */
    int              tempo_port;      /* 0: a free one at every start */
    int              ctrl_port;       /* 0: Tidal's listener off */
    int              eval_timeout;    /* ms */
    int              health_interval; /* ms; 0: no health checks */
    int              boot_timeout;    /* ms */
    int              stall_after;     /* ms without a heartbeat; 0: off */
    int              check_cycles;    /* a new pattern's cycles checked */
    const char      *memory;          /* GHCi's heap cap (+RTS -M) */
    unsigned         dirt_rate;       /* /dirt/play a second; 0: no cap */
    int              latency;         /* ms Tidal sends events ahead */
} tidal_ghci_conf_t;


/* name says what it is for in the logs ("the player", ...) */
tidal_ghci_t *tidal_ghci_create(const tidal_ghci_conf_t *conf,
    const tidal_ghci_handler_t *handler, const char *name);

/*
 * Starts GHCi and its boot with a new secret; 0, or -1 when it could
 * not be started (lost has been called).
 */
int tidal_ghci_start(tidal_ghci_t *g);

/* kills GHCi if it runs; every job is answered GONE with why */
void tidal_ghci_stop(tidal_ghci_t *g, const char *why);

/*
 * Queues a job (owned by the driver from now on, freed after its done
 * callback).  Urgent jobs go after the other urgent ones, before the
 * rest.  A job may wait while GHCi boots, until it expires.
 */
void tidal_ghci_submit(tidal_ghci_t *g, tidal_ghci_job_t *job, int urgent);

/* a job for text (copied), or NULL without memory */
tidal_ghci_job_t *tidal_ghci_job(const char *text, size_t len,
    tidal_ghci_done_pt done, void *data);

void tidal_ghci_job_free(tidal_ghci_job_t *job);

/* fills pfd with what to poll (at most TIDAL_GHCI_NFDS); returns n */
int tidal_ghci_pollfds(tidal_ghci_t *g, struct pollfd *pfd);

/* ms until the driver's next timer, -1 for none */
int tidal_ghci_timeout(tidal_ghci_t *g);

/* handles the revents of the n descriptors it asked for, and timers */
void tidal_ghci_process(tidal_ghci_t *g, struct pollfd *pfd, int n);

/* 1 when booted and not lost */
int tidal_ghci_ready(tidal_ghci_t *g);

/* "running", "booting", "not running" */
const char *tidal_ghci_status(tidal_ghci_t *g);

/* what it is for now, in the logs */
void tidal_ghci_rename(tidal_ghci_t *g, const char *name);

/* the secret of the running GHCi's heartbeat (hex) */
const char *tidal_ghci_secret(tidal_ghci_t *g);

void *tidal_ghci_data(tidal_ghci_t *g);

/* GHCi's pid, 0 when none */
int tidal_ghci_pid(tidal_ghci_t *g);

/* 1 when GHCi's process is stopped (SIGSTOP), as /proc says */
int tidal_ghci_stopped(tidal_ghci_t *g);

/* ends GHCi (EOF on its stdin, then SIGKILL) and frees everything */
void tidal_ghci_destroy(tidal_ghci_t *g);


#endif /* _TIDAL_GHCI_H_INCLUDED_ */
