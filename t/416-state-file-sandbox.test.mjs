// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A pattern restored from tidal_state_file passes the sandbox as a new
// one does: a file written by hand (or by a version whose sandbox let
// more through) with a pattern the sandbox refuses brings back every other
// channel, while the refused one never reaches GHCi, leaves the state and
// is reported in an error event naming it and in error.log.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Room, readJson } from './lib/room.mjs';
import { escapePath, exists } from './lib/helper.mjs';
import { waitFor, SLOW } from './lib/nginx.mjs';
import { stateDir, writeState } from './lib/state.mjs';

const T = { timeout: 180000 * SLOW };

const dirs = [];

after(() => {
    dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
});


test('a refused pattern in the state file is dropped and reported; the good channel plays', T, async () => {
    const s = stateDir();
    dirs.push(s.dir);
    const escape = [escapePath(), escapePath()];
    writeState(s.file, {
        version: 1,
        tempo: { cps: 2 },
        channels: {
            d1: { pattern: 'sound "bd*2"', muted: false, soloed: false },
            // a GHCi command on a line of its own
            d2: { pattern: `sound "hh*2"\n:! touch ${escape[0]}`, muted: false, soloed: false },
            // leaving Safe Haskell through a qualified name
            d3: {
                pattern: `sound "cp*2" # n (System.IO.Unsafe.unsafePerformIO (writeFile "${escape[1]}" "x" >> return 1))`,
                muted: true,
                soloed: false,
            },
        },
        history: [],
    });

    const since = Date.now();
    const room = await Room.start({ http: `tidal_state_file ${s.file};` });
    try {
        const bd = await room.dirt.waitFor((e) => e.s === 'bd', { since, timeoutMs: 30000, what: 'd1 restored' });
        assert.equal(bd.orbit, 0);

        const hist = (await room.ok('tidal_get_history')).structuredContent.history;
        const errors = hist.filter((e) => e.type === 'error');
        assert.deepEqual(errors.map((e) => e.channel).sort(), ['d2', 'd3'], JSON.stringify(errors));
        for (const e of errors) {
            assert.match(e.message, new RegExp(`^${e.channel} was not restored and is silent: the sandbox refuses`));
        }

        const st = (await room.ok('tidal_get_state')).structuredContent;
        assert.deepEqual(Object.keys(st.channels), ['d1']);
        await waitFor(() => {
            const saved = readJson(s.file);
            return saved && Object.keys(saved.channels).join() === 'd1';
        }, { what: 'the state file without d2 and d3' });

        assert.match(room.log, /d2 is not restored: the sandbox refuses its saved pattern/);
        assert.match(room.log, /d3 is not restored: the sandbox refuses its saved pattern/);

        // a few cycles at 2 cps: d1 plays on, the refused ones never did
        const later = Date.now();
        await room.dirt.waitFor((e) => e.s === 'bd', { since: later + 1500, timeoutMs: 10000, what: 'd1 still playing' });
        assert.deepEqual(room.dirt.after(since).filter((e) => e.s === 'hh' || e.s === 'cp'), []);
        assert.ok(!exists(escape[0]) && !exists(escape[1]), 'nothing ran');
    } finally {
        await room.stop();
    }
});
