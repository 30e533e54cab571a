// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The recovery cases of t/303 through nginx: the helper nginx started
// interrupts, restarts and re-applies exactly as tidal-helper --stdio,
// with tidal_eval_timeout and tidal_health_interval as the settings, and
// every client hears of it through the room's events.

import { Room } from './lib/room.mjs';
import { recoveryTests } from './lib/recovery-tests.mjs';

recoveryTests({
    start: ({ evalTimeout, healthInterval } = {}) => Room.start({
        name: 'ws-recovery-test',
        helper: [
            evalTimeout ? `tidal_eval_timeout ${evalTimeout}ms;` : '',
            healthInterval ? `tidal_health_interval ${healthInterval}ms;` : '',
        ].join(' '),
    }),
});
