// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal_state_file fixtures: a directory the workers may write to (the
// file is replaced by rename) and a seeded state with two channels.

import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { makeTempDir } from './nginx.mjs';

export const SEEDED_STATE = {
    version: 1,
    tempo: { cps: 0.5625 },
    channels: {
        d1: { pattern: 'sound "bd*2"', muted: false, soloed: false },
        d2: { pattern: 'n "0 .. 7" # sound "arpy"', muted: true, soloed: false },
    },
    history: [],
};

// a directory for the state file that nginx's workers (nobody) can write
export function stateDir() {
    const dir = makeTempDir('tidal-state-');
    fs.chmodSync(dir, 0o777);
    return { dir, file: path.join(dir, 'tidal.state') };
}

export function writeState(file, content) {
    fs.writeFileSync(file, typeof content === 'string' || Buffer.isBuffer(content)
        ? content : JSON.stringify(content));
    fs.chmodSync(file, 0o666);
}

// tidal_get_state shows the seeded channels and tempo (135 bpm = 0.5625
// cycles per second at four beats a cycle)
export function assertSeededState(state) {
    for (const [name, ch] of Object.entries(SEEDED_STATE.channels)) {
        const got = state.channels?.[name];
        assert.ok(got, `channel ${name} missing: ${JSON.stringify(state)}`);
        assert.equal(got.pattern, ch.pattern);
        assert.equal(got.muted, ch.muted);
        assert.equal(got.soloed, ch.soloed);
    }
    assert.equal(state.tempo?.cps, 0.5625, `tempo: ${JSON.stringify(state.tempo)}`);
    assert.equal(state.tempo?.bpm, 135, `tempo: ${JSON.stringify(state.tempo)}`);
    assert.ok(Number.isSafeInteger(state.seq), `seq: ${JSON.stringify(state)}`);
}
