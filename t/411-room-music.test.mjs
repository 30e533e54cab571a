// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The music in a room: every client hears of an eval with the room's
// event number, listeners cannot change the music, channel resources
// raise resources/updated for subscribers, the state file follows every
// change and brings the music back after a full restart, a desktop client
// plays through the stdio bridge, tidal_eval_raw exists only where it is
// allowed and only for admins, and a helper that cannot boot Tidal says
// why while nginx goes on serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Room, readJson } from './lib/room.mjs';
import { HELPER_BIN, alive } from './lib/helper.mjs';
import { DirtListener } from './lib/osc.mjs';
import { waitFor, SLOW } from './lib/nginx.mjs';

const T = { timeout: 180000 * SLOW };

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
const { ResourceUpdatedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');

const ROLES = `
        location /listen {
            tidal_mcp;
            tidal_role listener;
        }

        location /admin {
            tidal_mcp;
            tidal_role admin;
        }`;


test('an eval reaches every client once, numbered by the room; the answer carries that number', T, async () => {
    const room = await Room.start({ name: 'alice', workers: 2 });
    try {
        const others = [];
        const notes = [];
        for (let i = 0; i < 4; i++) {
            notes.push([]);
            others.push(await room.client2(`bob${i}`, { notes: notes[i] }));
        }
        const r = await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd sn"' });
        for (const list of notes) {
            const upd = await waitFor(() => list.find((n) => n.method === 'notifications/tidal/pattern_eval'),
                { what: 'pattern_eval at another client' });
            assert.equal(upd.params.who, 'alice');
            assert.equal(upd.params.seq, r.structuredContent.seq, 'the answer names the room\'s event');
            assert.equal(list.filter((n) => n.method === 'notifications/tidal/pattern_eval').length, 1);
            const pu = list.find((n) => n.method === 'notifications/tidal/pattern_update');
            assert.equal(pu.params.seq, upd.params.seq - 1);
        }
        const hist = (await room.ok('tidal_get_history')).structuredContent.history;
        assert.equal(hist[hist.length - 1].seq, r.structuredContent.seq, 'history carries the room\'s numbers');
    } finally {
        await room.stop();
    }
});

test('a listener sees only state, history and who and cannot hush or eval; the music plays on', T, async () => {
    const room = await Room.start({ server: ROLES });
    try {
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
        const listener = await room.client2('listener', { url: room.url.replace('/mcp', '/listen') });
        const { tools } = await listener.listTools();
        assert.deepEqual(tools.map((t) => t.name).sort(), ['tidal_get_history', 'tidal_get_state', 'tidal_who']);
        for (const [name, args] of [['tidal_hush', {}], ['tidal_eval', { channel: 'd1', pattern: 'silence' }]]) {
            await assert.rejects(room.call(name, args, { client: listener }), /not allowed|listener|role/i);
        }
        const st = await room.call('tidal_get_state', {}, { client: listener });
        assert.equal(st.structuredContent.channels.d1.pattern, 'sound "bd*4"');
        const since = Date.now();
        await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival >= since, { what: 'd1 still playing' });
    } finally {
        await room.stop();
    }
});

test('tidal://channel/dN: read from the zone, resources/updated to subscribers only', T, async () => {
    const room = await Room.start();
    try {
        const updates = [];
        room.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
            updates.push(n.params.uri);
        });
        await room.client.subscribeResource({ uri: 'tidal://channel/d2' });
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' });
        await room.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh"' });
        await waitFor(() => updates.includes('tidal://channel/d2'), { what: 'resources/updated for d2' });
        await room.ok('tidal_mute', { channel: 'd2' });
        await waitFor(() => updates.filter((u) => u === 'tidal://channel/d2').length >= 2,
            { what: 'resources/updated for the mute' });
        assert.ok(!updates.includes('tidal://channel/d1'), 'd1 was not subscribed');
        const res = await room.client.readResource({ uri: 'tidal://channel/d2' });
        assert.deepEqual(JSON.parse(res.contents[0].text), { pattern: 'sound "hh"', muted: true, soloed: false });
    } finally {
        await room.stop();
    }
});

test('the state file follows every change and a full restart plays the room again', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-state-'));
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, 'room', 'state.json');
    const dirt = await DirtListener.start();
    try {
        let room = await Room.start({ dirt, http: `tidal_state_file ${file};` });
        try {
            await room.ok('tidal_set_tempo', { cps: 1.25 });
            await room.ok('tidal_eval', { channel: 'd3', pattern: 'sound "arpy*2"' });
            const saved = await waitFor(() => {
                const s = readJson(file);
                return s?.channels?.d3 && s.tempo.cps === 1.25 && s;
            }, { what: 'the state file with d3 and the tempo' });
            assert.equal(saved.channels.d3.pattern, 'sound "arpy*2"');
            assert.ok(saved.history.some((e) => e.type === 'tempo_change'));
            // a worker may still be writing a later change; what matters is that it cleans up
            await waitFor(() => !fs.readdirSync(path.dirname(file)).some((f) => f.includes('.tmp')),
                { what: 'no temporary file left' });
        } finally {
            await room.stop();
        }

        // nobody evaluates anything: the file alone brings the music back
        const since = Date.now();
        room = await Room.start({ dirt, http: `tidal_state_file ${file};` });
        try {
            const e = await dirt.waitFor((x) => x.s === 'arpy' && x.arrival >= since,
                { timeoutMs: 30000, what: 'arpy after the restart' });
            assert.equal(e.cps, 1.25);
            assert.equal(e.orbit, 2, 'on d3');
        } finally {
            await room.stop();
        }
    } finally {
        dirt.close();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('a desktop client that only spawns stdio servers plays through tidal-helper --stdio --connect', T, async () => {
    const room = await Room.start();
    const transport = new StdioClientTransport({
        command: HELPER_BIN, args: ['--stdio', '--connect', room.url], stderr: 'pipe',
    });
    const client = new Client({ name: 'desktop', version: '1.0.0' });
    try {
        await client.connect(transport);
        const since = Date.now();
        const r = await client.callTool({ name: 'tidal_eval', arguments: { channel: 'd4', pattern: 'sound "cp*2"' } });
        assert.equal(r.isError, false, JSON.stringify(r));
        await room.dirt.waitFor((e) => e.s === 'cp' && e.arrival >= since, { what: 'cp from the bridge' });
        const ev = await room.waitNote((n) => n.method === 'notifications/tidal/pattern_eval'
            && n.params.who === 'desktop', { what: 'the eval announced to the room' });
        assert.equal(ev.params.channel, 'd4');
    } finally {
        const pid = transport.pid;
        await client.close().catch(() => {});
        if (pid) {
            await waitFor(() => !alive(pid), { timeout: 10000, what: 'the bridge to exit' });
        }
        await room.stop();
    }
});

test('tidal_eval_raw: only with tidal_allow_raw on, only for admins', T, async () => {
    let room = await Room.start({ server: ROLES });
    try {
        const admin = await room.client2('root', { url: room.url.replace('/mcp', '/admin') });
        const { tools } = await admin.listTools();
        assert.ok(!tools.some((t) => t.name === 'tidal_eval_raw'), 'off by default');
    } finally {
        await room.stop();
    }

    room = await Room.start({ server: ROLES, helper: 'tidal_allow_raw on;' });
    try {
        const { tools } = await room.client.listTools();
        assert.ok(!tools.some((t) => t.name === 'tidal_eval_raw'), 'performers never see it');
        await assert.rejects(room.call('tidal_eval_raw', { code: 'hush' }), /not allowed|role|admin/i);

        const admin = await room.client2('root', { url: room.url.replace('/mcp', '/admin') });
        const raw = (await admin.listTools()).tools.find((t) => t.name === 'tidal_eval_raw');
        assert.match(raw.description, /shell access/);
        const since = Date.now();
        const r = await room.call('tidal_eval_raw', { code: 'd5 $ sound "drum*2"' }, { client: admin });
        assert.equal(r.isError, false, r.text);
        await room.dirt.waitFor((e) => e.s === 'drum' && e.arrival >= since, { what: 'raw code playing' });
        const bad = await room.call('tidal_eval_raw', { code: 'nonsense here' }, { client: admin });
        assert.equal(bad.isError, true);
        assert.match(bad.text, /not in scope/);
        assert.match(room.log, /root evaluates raw code/);
    } finally {
        await room.stop();
    }
});

test('Tidal that cannot boot: the reason in error_log, in an error event and in tidal_get_state; nginx serves on', T, async () => {
    const dirt = await DirtListener.start();
    const { startNginx } = await import('./lib/nginx.mjs');
    const { TidalWs } = await import('./lib/tidal.mjs');
    const ngx = await startNginx({
        helper: `tidal_dirt_address 127.0.0.1:${dirt.port}; tidal_ghci /nonexistent/ghci;`,
    });
    try {
        const c = await TidalWs.join(ngx.url, { name: 'hopeful' });
        const st = await waitFor(async () => {
            const s = (await c.call('tidal_get_state')).result.structuredContent;
            return /did not boot/.test(s.ghci) && s;
        }, { timeout: 30000, what: 'the boot failure in tidal_get_state' });
        assert.match(st.ghci, /cannot run "\/nonexistent\/ghci"/);
        const r = (await c.call('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' })).result;
        assert.equal(r.isError, true);
        assert.match(r.content[0].text, /did not boot/);
        await waitFor(() => /cannot run "\/nonexistent\/ghci"/.test(ngx.errorLog()), { what: 'error_log' });
        const hist = (await c.call('tidal_get_history')).result.structuredContent.history;
        assert.ok(hist.some((e) => e.type === 'error' && /did not boot/.test(e.message)),
            `the error event is in the history: ${JSON.stringify(hist).slice(0, 500)}`);
        assert.equal((await c.call('tidal_say', { text: 'still here' })).result.isError, false);
        await c.close();
    } finally {
        await ngx.stop();
        dirt.close();
    }
});
