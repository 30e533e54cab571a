/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * A tiny unit test runner; each t/unit/test_*.c is its own executable.
 *
 *     #include "unit.h"
 *
 *     UNIT_TEST(adds_up)
 *     {
 *         CHECK(1 + 1 == 2);                   any true/false expression
 *         CHECK_EQ(strlen("ab"), 2);           integers, both values shown
 *         CHECK_MEM(buf, "\x81\x05", 2);       bytes, both dumped in hex
 *         CHECK_STR(name, "ws");               NUL-terminated strings
 *     }
 *
 *     int
 *     main(void)
 *     {
 *         UNIT_RUN(adds_up);
 *         return unit_done("ws");
 *     }
 *
 * A failed check prints file:line and the expression and the test goes on,
 * so one run shows every failure.  A test passes when none of its checks
 * failed.  unit_done() prints, as the last line, "<name>: N passed,
 * N failed" (counting tests; t/tools/run-unit adds these lines up) and
 * returns the exit status: 0 only when nothing failed.
 */

#ifndef _TIDAL_UNIT_H_INCLUDED_
#define _TIDAL_UNIT_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char  *unit_current;
static int          unit_test_failed;
static long         unit_checks;
static int          unit_passed;
static int          unit_failed;


#define UNIT_TEST(name)  static void unit_test_##name(void)

#define UNIT_RUN(name)   unit_run(#name, unit_test_##name)

#define CHECK(cond)                                                          \
    unit_check((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

#define CHECK_EQ(a, b)                                                       \
    unit_check_eq((long long) (a), (long long) (b), __FILE__, __LINE__,      \
                  #a, #b)

#define CHECK_MEM(a, b, n)                                                   \
    unit_check_mem((const void *) (a), (const void *) (b), (size_t) (n),     \
                   __FILE__, __LINE__, #a, #b)

#define CHECK_STR(a, b)                                                      \
    unit_check_str((a), (b), __FILE__, __LINE__, #a, #b)


/* counts a check; on failure starts the report line, the caller ends it */
static inline int
unit_count(int ok, const char *file, int line)
{
    unit_checks++;

    if (!ok) {
        unit_test_failed = 1;
        printf("FAIL %s:%d: %s: ", file, line, unit_current);
    }

    return ok;
}


static inline int
unit_check(int ok, const char *file, int line, const char *expr)
{
    if (!unit_count(ok, file, line)) {
        printf("%s\n", expr);
        fflush(stdout);
    }

    return ok;
}


static inline int
unit_check_eq(long long a, long long b, const char *file, int line,
    const char *ea, const char *eb)
{
    if (!unit_count(a == b, file, line)) {
        printf("%s == %s: %lld != %lld\n", ea, eb, a, b);
        fflush(stdout);
        return 0;
    }

    return 1;
}


static inline void
unit_dump(const char *label, const unsigned char *p, size_t n)
{
    size_t  i;

    printf("    %s:", label);

    for (i = 0; i < n && i < 64; i++) {
        printf(" %02x", p[i]);
    }

    printf("%s\n", (n > 64) ? " ..." : "");
}


static inline int
unit_check_mem(const void *a, const void *b, size_t n, const char *file,
    int line, const char *ea, const char *eb)
{
    int  ok;

    ok = (a != NULL && b != NULL) ? memcmp(a, b, n) == 0 : (n == 0);

    if (!unit_count(ok, file, line)) {
        printf("%s == %s (%zu bytes)\n", ea, eb, n);

        if (a != NULL && b != NULL) {
            unit_dump(ea, a, n);
            unit_dump(eb, b, n);
        }

        fflush(stdout);
    }

    return ok;
}


static inline int
unit_check_str(const char *a, const char *b, const char *file, int line,
    const char *ea, const char *eb)
{
    int  ok;

    ok = (a != NULL && b != NULL) ? strcmp(a, b) == 0 : (a == b);

    if (!unit_count(ok, file, line)) {
        printf("%s == %s: \"%s\" != \"%s\"\n", ea, eb,
               a ? a : "(null)", b ? b : "(null)");
        fflush(stdout);
    }

    return ok;
}


static inline void
unit_run(const char *name, void (*test)(void))
{
    unit_current = name;
    unit_test_failed = 0;

    test();

    if (unit_test_failed) {
        unit_failed++;
        printf("not ok %s\n", name);

    } else {
        unit_passed++;
        printf("ok %s\n", name);
    }

    fflush(stdout);
}


static inline int
unit_done(const char *name)
{
    printf("%ld checks\n", unit_checks);
    printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
    fflush(stdout);

    return unit_failed ? 1 : 0;
}


#endif /* _TIDAL_UNIT_H_INCLUDED_ */
