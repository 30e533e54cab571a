// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The text tests of t/307 through nginx: the helper writes to nginx's
// error.log, where a pattern must not be able to start a line that looks
// like nginx's own; the room's events and history keep 4 KB of a long
// message, the caller gets all of it.

import { Room } from './lib/room.mjs';
import { textTests } from './lib/text-tests.mjs';

textTests({
    start: () => Room.start({ name: 'text-test' }),
    expectLog: (room, re) => room.ngx.expectLogLines(re),
});
