// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper --stdio as a standalone MCP server, spoken to by the
// official SDK over stdio, with real GHCi and Tidal sending OSC to a UDP
// listener (the tests themselves are t/lib/music-tests.mjs; t/401 runs
// them through nginx).

import { Helper, HELPER_TOOLS, SKIP } from './lib/helper.mjs';
import { musicTests } from './lib/music-tests.mjs';

musicTests({
    start: () => Helper.start({ name: 'stdio-test' }),
    who: 'stdio-test',
    serverName: 'tidal-helper',
    toolNames: HELPER_TOOLS,
    toolsNote: ', without chat or raw eval',
    skip: SKIP,
});
