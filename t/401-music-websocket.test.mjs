// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The music tests of t/301 through nginx: the official SDK over
// WebSocket, nginx's workers forwarding the music tools to the GHCi helper
// nginx started, Tidal sending OSC to a UDP listener.  Events carry the
// room's numbers and reach every client.

import { Room } from './lib/room.mjs';
import { ALL_TOOLS } from './lib/tidal.mjs';
import { musicTests } from './lib/music-tests.mjs';

musicTests({
    start: () => Room.start({ name: 'ws-test' }),
    who: 'ws-test',
    serverName: 'ngx_tidal',
    toolNames: ALL_TOOLS,
    toolsNote: ' with chat, without raw eval',
});
