// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal_state_file: the state (channels, tempo, history) is read when
// nginx starts, so a full restart keeps it; a torn or corrupt file is
// reported in error_log and skipped, and nginx starts with an empty state.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { TidalWs, PUBLISH_AND_STATUS } from './lib/tidal.mjs';
import { SEEDED_STATE, stateDir, writeState, assertSeededState } from './lib/state.mjs';

const T = { timeout: 60000 * SLOW };

const dirs = [];

after(() => {
    dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
});

function withStateFile(content) {
    const s = stateDir();
    dirs.push(s.dir);
    if (content !== undefined) {
        writeState(s.file, content);
    }
    return s;
}

function start(file) {
    return startNginx({
        zone: 'tidal_zone tidal 8m;',
        http: `tidal_state_file ${file};`,
        server: PUBLISH_AND_STATUS,
    });
}

async function stateOf(ngx) {
    const c = await TidalWs.join(ngx.url, { name: 'reader' });
    try {
        return await c.state();
    } finally {
        await c.close();
    }
}


test('nginx starts with the state from the file, and a full restart keeps it', T, async () => {
    const s = withStateFile(SEEDED_STATE);
    let ngx = await start(s.file);
    try {
        assertSeededState(await stateOf(ngx));
    } finally {
        await ngx.stop();
    }
    // whatever nginx wrote on the way out is a whole, valid state
    const written = JSON.parse(fs.readFileSync(s.file, 'utf8'));
    assert.equal(written.version, 1);
    assert.equal(written.channels?.d1?.pattern, SEEDED_STATE.channels.d1.pattern);

    ngx = await start(s.file);
    try {
        assertSeededState(await stateOf(ngx));
    } finally {
        await ngx.stop();
    }
    const leftovers = fs.readdirSync(s.dir).filter((f) => f !== 'tidal.state' && f !== 'logs');
    assert.deepEqual(leftovers, [], 'no temporary file is left next to the state file');
});

test('a temporary file left by a writer that died is removed at start; one of a living process stays', T, async () => {
    const s = withStateFile(SEEDED_STATE);
    const dead = spawnSync('true').pid;
    fs.writeFileSync(`${s.file}.tmp.${dead}`, '{"version":1,"chan');
    fs.writeFileSync(`${s.file}.tmp.${process.pid}`, '{}');
    const ngx = await start(s.file);
    try {
        assertSeededState(await stateOf(ngx));
        assert.ok(!fs.existsSync(`${s.file}.tmp.${dead}`), 'the dead writer\'s file is gone');
        assert.ok(fs.existsSync(`${s.file}.tmp.${process.pid}`), 'a living process\'s file stays');
        assert.match(ngx.errorLog(), new RegExp(`removed ".*\\.tmp\\.${dead}", a state file process ${dead} did not finish writing`));
    } finally {
        await ngx.stop();
    }
});

test('without a state file yet nginx starts with an empty state', T, async () => {
    const s = withStateFile(undefined);
    const ngx = await start(s.file);
    try {
        assert.deepEqual((await stateOf(ngx)).channels, {});
    } finally {
        await ngx.stop();
    }
});

const corrupt = [
    ['a torn file (truncated JSON)', JSON.stringify(SEEDED_STATE).slice(0, 57)],
    ['binary garbage', Buffer.concat([Buffer.from([0, 0xff, 0xfe, 0x7b]), crypto.randomBytes(2048)])],
    ['an empty file', ''],
    ['JSON that is not a state', '[1, 2, 3]'],
];

for (const [what, content] of corrupt) {
    test(`with ${what} as the state file nginx starts, reports it in error_log and has an empty state`, T, async () => {
        const s = withStateFile(content);
        const ngx = await start(s.file);
        try {
            const log = ngx.errorLog();
            assert.ok(log.split('\n').some((l) => l.includes(s.file) && /\[(warn|error|crit)\]/.test(l)),
                `error_log should report the state file as a warning or an error; it has:\n${log}`);
            assert.deepEqual((await stateOf(ngx)).channels, {});
        } finally {
            await ngx.stop();
        }
    });
}
