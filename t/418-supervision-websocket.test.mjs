// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Issue 7 through nginx: representative cases of t/309 with the helper
// nginx runs, every client of the room hearing which channel was stopped.

import { Room } from './lib/room.mjs';
import { supervisionTests } from './lib/supervision-tests.mjs';

supervisionTests({
    start: ({ evalTimeout, boot } = {}) => Room.start({
        name: 'ws-supervision-test',
        helper: (evalTimeout ? `tidal_eval_timeout ${evalTimeout}ms;` : '')
            + (boot ? `tidal_boot ${boot};` : ''),
    }),
    only: [
        'eval-time loops that never allocate are refused; d1 plays on with no gap',
        'a play-time loop that never allocates: d2 is named and silenced, d1 back within 3 s on the same grid',
    ],
});
