// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The zone owns the room: the helper tells what happened, the zone
// numbers it.  A history saved by an earlier nginx comes first, each new
// event after it in the order clients saw it, with the params they got;
// the answer to a call names the number its event got in the zone; the
// state file keeps the same.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Room, readJson } from './lib/room.mjs';
import { waitFor, SLOW } from './lib/nginx.mjs';
import { stateDir, writeState } from './lib/state.mjs';

const T = { timeout: 180000 * SLOW };

const dirs = [];

after(() => {
    dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
});


test('new events follow a saved history, numbered by the zone; answers, history and state file agree', T, async () => {
    const s = stateDir();
    dirs.push(s.dir);
    const before = Date.now() - 60000;
    const saved = [
        { type: 'tempo_change', seq: 40, timestamp: before, cps: 1, bpm: 240, who: 'earlier' },
        { type: 'error', seq: 41, timestamp: before + 1, message: 'from before' },
    ];
    writeState(s.file, { version: 1, tempo: { cps: 1 }, channels: {}, history: saved });

    const room = await Room.start({ http: `tidal_state_file ${s.file};`, workers: 2 });
    try {
        const r = await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2"' });
        const ev = await room.waitNote((n) => n.method === 'notifications/tidal/pattern_eval');
        assert.equal(ev.params.seq, r.structuredContent.seq, 'the answer names the zone\'s event');

        const t = await room.ok('tidal_set_tempo', { cps: 1.5 });
        const tc = await room.waitNote((n) => n.method === 'notifications/tidal/tempo_change');
        assert.equal(tc.params.seq, t.structuredContent.seq);
        assert.ok(tc.params.seq > ev.params.seq);

        const m = await room.ok('tidal_mute', { channel: 'd1' });
        const cs = await room.waitNote((n) => n.method === 'notifications/tidal/channel_state'
            && n.params.state.muted);
        assert.equal(cs.params.seq, m.structuredContent.seq);

        const hist = (await room.ok('tidal_get_history')).structuredContent.history;
        assert.deepEqual(hist.slice(0, 2), saved, 'the saved history first, as it was');
        assert.deepEqual(hist.slice(2).map((e) => e.type), ['pattern_eval', 'tempo_change', 'channel_state'],
            JSON.stringify(hist));
        assert.deepEqual(hist.slice(2), [ev.params, tc.params, cs.params],
            'each entry is the event as clients got it');

        const st = (await room.ok('tidal_get_state')).structuredContent;
        assert.equal(st.seq, cs.params.seq);
        assert.deepEqual(st.channels.d1, { pattern: 'sound "bd*2"', muted: true, soloed: false });

        await waitFor(() => readJson(s.file)?.history?.length === 5, { what: 'the state file with five events' });
        const file = readJson(s.file);
        assert.deepEqual(file.history, hist);
        assert.deepEqual(file.tempo, { cps: 1.5 });
        assert.deepEqual(file.channels, { d1: st.channels.d1 });
        await room.ok('tidal_hush');
    } finally {
        await room.stop();
    }
});
