// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The MCP Inspector CLI (t/clients, 2.12, run with Node 22), as README
// shows it, against a room with GHCi: tools/list, tools/call
// (tidal_get_state, and tidal_eval heard on the OSC listener) and
// resources/list.  Over Streamable HTTP (`--cli URL --transport http`),
// and over stdio through the bridge (`tidal-helper --stdio --connect`),
// as Claude Desktop runs it.  Each call is one inspector process: it
// connects, calls, prints the result as JSON and exits.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Room } from './lib/room.mjs';
import { makeTempDir, SLOW } from './lib/nginx.mjs';
import { HELPER_BIN } from './lib/helper.mjs';
import { ALL_TOOLS } from './lib/tidal.mjs';
import { INSPECTOR, clientsMissing, runNode22 } from './lib/clients.mjs';

const T = { timeout: 120000 * SLOW };

let room;
let home;

before(async () => {
    const missing = clientsMissing();
    assert.equal(missing, null, missing);
    home = makeTempDir('tidal-inspector-');
    room = await Room.start({ name: 'inspector-test' });
    // two cycles a second keeps the wait for a sound short
    await room.ok('tidal_set_tempo', { cps: 2 });
});

after(async () => {
    await room?.stop();
    if (home) {
        fs.rmSync(home, { recursive: true, force: true });
    }
});

// the inspector's target arguments, per transport
const TARGETS = {
    'Streamable HTTP': () => [`http://127.0.0.1:${room.ngx.port}/mcp`, '--transport', 'http'],
    'stdio bridge': () => [HELPER_BIN, '--stdio', '--connect', room.url],
};

// `inspector --cli TARGET... ARGS...`: its stdout parsed as JSON
async function inspect(target, args) {
    const r = await runNode22(INSPECTOR, ['--cli', ...TARGETS[target](), ...args], {
        timeout: 60000 * SLOW,
        // its catalog (written when missing) goes here, not to ~
        env: { HOME: home, MCP_CATALOG_PATH: path.join(home, 'mcp.json') },
    });
    assert.equal(r.code, 0, `inspector ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    try {
        return JSON.parse(r.stdout);
    } catch {
        throw new Error(`inspector ${args.join(' ')} printed no JSON:\n${r.stdout}\n${r.stderr}`);
    }
}

for (const target of Object.keys(TARGETS)) {
    test(`${target}: inspector --method tools/list lists every tool with its schema`, T, async () => {
        const r = await inspect(target, ['--method', 'tools/list']);
        assert.deepEqual(r.tools.map((t) => t.name).sort(), [...ALL_TOOLS].sort());
        for (const t of r.tools) {
            assert.equal(t.inputSchema?.type, 'object', t.name);
            assert.ok(t.description, t.name);
        }
    });

    test(`${target}: inspector --method tools/call --tool-name tidal_get_state shows GHCi running`, T, async () => {
        const r = await inspect(target, ['--method', 'tools/call', '--tool-name', 'tidal_get_state']);
        assert.equal(r.isError, false, JSON.stringify(r));
        assert.equal(r.structuredContent.ghci, 'running');
        assert.equal(typeof r.structuredContent.seq, 'number');
    });

    test(`${target}: inspector --method tools/call --tool-name tidal_eval plays, heard on the OSC port`, T, async () => {
        const sound = target === 'stdio bridge' ? 'arpy' : 'cp';
        const since = Date.now();
        const r = await inspect(target, ['--method', 'tools/call', '--tool-name', 'tidal_eval',
            '--tool-arg', 'channel=d3', `pattern=sound "${sound}*2"`]);
        try {
            assert.notEqual(r.isError, true, JSON.stringify(r));
            await room.dirt.waitFor((e) => e.s === sound, { since, timeoutMs: 10000 * SLOW, what: `s=${sound}` });
        } finally {
            await room.ok('tidal_silence', { channel: 'd3' });
        }
    });

    test(`${target}: inspector --method resources/list lists the channels`, T, async () => {
        const r = await inspect(target, ['--method', 'resources/list']);
        const uris = r.resources.map((x) => x.uri);
        for (let i = 1; i <= 16; i++) {
            assert.ok(uris.includes(`tidal://channel/d${i}`), `tidal://channel/d${i} in ${uris.join(' ')}`);
        }
    });
}
