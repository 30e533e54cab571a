// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper --dirt-rate: the relay's cap on /dirt/play a second, with
// a UDP listener as SuperDirt (t/lib/rate-tests.mjs; t/417 runs them
// through nginx with tidal_dirt_rate).

import { Helper, SKIP } from './lib/helper.mjs';
import { rateTests } from './lib/rate-tests.mjs';

rateTests({
    start: (rate) => Helper.start({ name: 'rate-test', args: ['--dirt-rate', String(rate)] }),
    skip: SKIP,
});
