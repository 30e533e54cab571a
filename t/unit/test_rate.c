/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The relay's token bucket (src/helper/tidal_rate.c): a flood passes at
 * the rate, with at most a tenth of a second's burst on top; steady
 * traffic below the rate always passes; a refused take counts nothing.
 */

#include <stdint.h>

#include "unit.h"
#include "tidal_rate.h"


UNIT_TEST(no_cap)
{
    int           i, passed;
    tidal_rate_t  r;

    tidal_rate_init(&r, 0, 0);
    passed = 0;

    for (i = 0; i < 100000; i++) {
        passed += tidal_rate_take(&r, 100, 0);
    }

    CHECK_EQ(passed, 100000);
}


UNIT_TEST(burst_then_rate)
{
    int           i, passed;
    tidal_rate_t  r;

    tidal_rate_init(&r, 50, 1000);

    /* a tenth of a second's worth at once, then nothing */

    passed = 0;

    for (i = 0; i < 20; i++) {
        passed += tidal_rate_take(&r, 1, 1000);
    }

    CHECK_EQ(passed, 5);

    /* one more every 20 ms */

    CHECK_EQ(tidal_rate_take(&r, 1, 1019), 0);
    CHECK_EQ(tidal_rate_take(&r, 1, 1020), 1);
    CHECK_EQ(tidal_rate_take(&r, 1, 1020), 0);

    /* a refused take of more than there is counts nothing */

    CHECK_EQ(tidal_rate_take(&r, 2, 1040), 0);
    CHECK_EQ(tidal_rate_take(&r, 1, 1040), 1);

    /* a long pause fills it to the burst, no more */

    passed = 0;

    for (i = 0; i < 20; i++) {
        passed += tidal_rate_take(&r, 1, 1000000);
    }

    CHECK_EQ(passed, 5);
}


/* a flood of 20 events every ms for 10 s, in windows of one second */

UNIT_TEST(flood_passes_at_the_rate)
{
    int           i, k, win, passed[10];
    int64_t       t;
    unsigned      rates[] = { 1, 7, 50, 1000, 5000 };
    tidal_rate_t  r;

    for (k = 0; k < 5; k++) {
        tidal_rate_init(&r, rates[k], 0);
        memset(passed, 0, sizeof(passed));

        for (t = 0; t < 10000; t++) {
            win = (int) (t / 1000);

            for (i = 0; i < 20; i++) {
                passed[win] += tidal_rate_take(&r, 1, t);
            }
        }

        /* the first second has the burst on top, later ones the rate */

        CHECK(passed[0] <= (int) (rates[k] + (rates[k] + 9) / 10) + 1);

        for (win = 1; win < 10; win++) {
            CHECK(passed[win] <= (int) rates[k] + 1);
            CHECK(passed[win] >= (int) rates[k] - 1);
        }
    }
}


UNIT_TEST(steady_traffic_below_the_rate_passes)
{
    int           refused;
    int64_t       t;
    tidal_rate_t  r;

    /* 64 events each 50 ms frame, 1280 a second, under a cap of 1500 */

    tidal_rate_init(&r, 1500, 0);
    refused = 0;

    for (t = 0; t < 60000; t += 50) {
        refused += !tidal_rate_take(&r, 64, t + (t / 50) % 7);
    }

    CHECK_EQ(refused, 0);
}


UNIT_TEST(a_take_larger_than_the_burst)
{
    tidal_rate_t  r;

    tidal_rate_init(&r, 1, 0);

    /* passes when full, then the bucket owes two events */

    CHECK_EQ(tidal_rate_take(&r, 3, 0), 1);
    CHECK_EQ(tidal_rate_take(&r, 1, 1999), 0);
    CHECK_EQ(tidal_rate_take(&r, 1, 2999), 0);
    CHECK_EQ(tidal_rate_take(&r, 1, 3000), 1);

    /* not when it is not full */

    CHECK_EQ(tidal_rate_take(&r, 3, 3500), 0);
    CHECK_EQ(tidal_rate_take(&r, 3, 4000), 1);
}


UNIT_TEST(clock_going_back)
{
    tidal_rate_t  r;

    tidal_rate_init(&r, 10, 5000);

    CHECK_EQ(tidal_rate_take(&r, 1, 5000), 1);
    CHECK_EQ(tidal_rate_take(&r, 1, 1000), 0);
    CHECK_EQ(tidal_rate_take(&r, 1, 5099), 0);
    CHECK_EQ(tidal_rate_take(&r, 1, 5100), 1);
}


int
main(void)
{
    UNIT_RUN(no_cap);
    UNIT_RUN(burst_then_rate);
    UNIT_RUN(flood_passes_at_the_rate);
    UNIT_RUN(steady_traffic_below_the_rate_passes);
    UNIT_RUN(a_take_larger_than_the_burst);
    UNIT_RUN(clock_going_back);

    return unit_done("rate");
}
