// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The stall cases of t/305 through nginx: the helper nginx started relays
// Tidal's OSC to tidal_dirt_address, notices a stalled scheduler, and
// every client of the room hears which channel was stopped.

import { Room } from './lib/room.mjs';
import { stallTests } from './lib/stall-tests.mjs';

stallTests({
    start: ({ evalTimeout } = {}) => Room.start({
        name: 'ws-stall-test',
        helper: evalTimeout ? `tidal_eval_timeout ${evalTimeout}ms;` : '',
    }),
});
