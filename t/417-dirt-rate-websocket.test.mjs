// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal_dirt_rate: nginx passes the cap on /dirt/play to the helper it
// starts; the flood is held back and reported to the room (the tests of
// t/308, through nginx).

import { Room } from './lib/room.mjs';
import { rateTests } from './lib/rate-tests.mjs';

rateTests({
    start: (rate) => Room.start({ name: 'rate-test', helper: `tidal_dirt_rate ${rate};` }),
});
