// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper relays Tidal's OSC to SuperDirt and watches a heartbeat
// the boot file plays on a pattern of its own: a pattern that diverges
// only while playing stalls Tidal's scheduler while GHCi still answers;
// the helper notices, stops that channel, restarts Tidal with the other
// channels and says so.  A quiet room (hush, a sparse pattern, solo of a
// silent channel, mute, a slow tempo) is not a stall, nor is Tidal's
// revert after a pattern fails while playing, and the heartbeat never
// reaches SuperDirt.

// (The cases are t/lib/stall-tests.mjs; t/405 runs them through nginx.)

import { Helper, SKIP } from './lib/helper.mjs';
import { stallTests } from './lib/stall-tests.mjs';

stallTests({
    start: ({ evalTimeout } = {}) => Helper.start({
        args: evalTimeout ? ['--eval-timeout', String(evalTimeout)] : [],
    }),
    skip: SKIP,
});
