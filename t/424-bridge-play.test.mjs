// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper --connect URL --play HOST:PORT: two listeners play the room
// on their own SuperDirt (a UDP listener each), one of them with its clock
// half a second ahead (faketime).  Both get every /dirt/play the room's own
// SuperDirt gets, with each parameter's OSC type, at the room's time on
// their clock plus --latency: the shifted one's timetags are the other's
// plus the shift, within 2 ms.  A bridge that was stopped drops the events
// it can no longer play in time and counts them; it plays none late.
// Through a reload (--reconnect) the sound goes on.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Room } from './lib/room.mjs';
import { SKIP } from './lib/helper.mjs';
import { SLOW, sleep } from './lib/nginx.mjs';
import { Bridge } from './lib/bridge.mjs';
import { DirtListener } from './lib/osc.mjs';

const T = { timeout: 240000 * SLOW, skip: SKIP };

const SHIFT = 500;              // ms, faketime's
const LATENCY = 100;            // ms, --latency's default
const PLAY_SECONDS = 20;
const SOUNDS = { d1: 'bd', d2: 'sn', d3: 'hh', d4: 'cp' };

let room, plain, shifted, dirtA, dirtB;

function faketimeWorks() {
    try {
        const out = execFileSync('faketime', ['-f', `+${SHIFT / 1000}s`, 'date', '+%s%N'], { encoding: 'utf8' });
        return Math.abs(Number(out) / 1e6 - Date.now() - SHIFT) < 200;
    } catch {
        return false;
    }
}

// a bundle's /dirt/play: each parameter's OSC type tag by its name
function tagsOf(buf) {
    if (buf.toString('latin1', 0, 8) !== '#bundle\0') {
        return null;
    }
    const m = buf.subarray(20, 20 + buf.readInt32BE(16));
    const str = (o) => {
        const end = m.indexOf(0, o);
        return [m.toString('latin1', o, end), o + Math.ceil((end - o + 1) / 4) * 4];
    };
    let [addr, off] = str(0);
    let tags;
    [tags, off] = str(off);
    if (addr !== '/dirt/play') {
        return null;
    }
    const byName = {};
    let name = null;
    for (const t of tags.slice(1)) {
        let v;
        if (t === 's') {
            [v, off] = str(off);
        } else {
            off += (t === 'd' || t === 'h') ? 8 : 4;
        }
        if (name === null) {
            name = v;
        } else {
            byName[name] = t;
            name = null;
        }
    }
    return byName;
}

function rawPackets(dirt) {
    const out = [];
    dirt.socket.on('message', (msg) => out.push(msg));
    return out;
}

// the bridge's event for a server event: same sound, timetag near expected
function match(events, e, expected, tolerance = 20) {
    return events.find((x) => x.s === e.s && Math.abs(x.timetag - expected) < tolerance);
}

function offsetOf(bridge) {
    const m = [...bridge.log.matchAll(/the room's clock is ([-+]\d+\.\d+) ms from ours \(round trip (\d+\.\d+) ms\)/g)];
    return m.length ? { offset: Number(m[0][1]), rtt: Number(m[0][2]) } : null;
}

const ENABLED = !SKIP && faketimeWorks();

before(async () => {
    if (!ENABLED) {
        return;
    }
    room = await Room.start({ name: 'play-test' });
    dirtA = await DirtListener.start();
    dirtB = await DirtListener.start();
    plain = new Bridge(['--connect', room.url, '--play', `127.0.0.1:${dirtA.port}`, '--reconnect', '--verbose'],
                       { stdio: false });
    shifted = new Bridge(['--connect', room.url, '--play', `127.0.0.1:${dirtB.port}`],
                         { stdio: false, wrap: ['faketime', '-f', `+${SHIFT / 1000}s`] });
    for (const b of [plain, shifted]) {
        await b.until(() => offsetOf(b), 'the clock offset');
    }
});

after(async () => {
    plain?.kill();
    shifted?.kill();
    await room?.stop();
    dirtA?.close();
    dirtB?.close();
});


test('faketime shifts the helper\'s clock: the measured offset is the shift', { ...T, skip: !ENABLED }, () => {
    const a = offsetOf(plain);
    const b = offsetOf(shifted);
    console.log(`# offsets: plain ${a.offset} ms (round trip ${a.rtt} ms), shifted ${b.offset} ms (${b.rtt} ms)`);
    assert.ok(Math.abs(a.offset) < 2, `unshifted offset ${a.offset} ms`);
    assert.ok(Math.abs(b.offset + SHIFT) < 2, `shifted offset ${b.offset} ms`);
    assert.match(plain.log, /joined the room as a listener/);
});


test('two --play listeners get every event of four busy channels, in time, the shifted one by the shift', { ...T, skip: !ENABLED }, async () => {
    const rawServer = rawPackets(room.dirt);
    const rawA = rawPackets(dirtA);
    const rawB = rawPackets(dirtB);
    const from = { server: room.dirt.events.length, a: dirtA.events.length, b: dirtB.events.length };
    const start = Date.now();

    for (const [ch, s] of Object.entries(SOUNDS)) {
        await room.ok('tidal_eval', { channel: ch, pattern: `sound "${s}*16"` });
    }
    await sleep(PLAY_SECONDS * 1000);
    await room.ok('tidal_hush');
    // the last events: sent ahead by Tidal's latency, played after ours
    await sleep(1500);

    const server = room.dirt.events.slice(from.server).filter((e) => e.timetag >= start - 1000);
    const a = dirtA.events.slice(from.a);
    const b = dirtB.events.slice(from.b);
    const channels = new Set(server.map((e) => e.s));
    assert.deepEqual([...channels].sort(), Object.values(SOUNDS).sort());
    assert.ok(server.length > PLAY_SECONDS * 4 * 16 / 2, `${server.length} events at the room's SuperDirt`);

    const missing = { a: 0, b: 0 };
    const diffs = [];
    for (const e of server) {
        const ea = match(a, e, e.timetag + LATENCY);
        const eb = match(b, e, e.timetag + LATENCY + SHIFT);
        missing.a += ea ? 0 : 1;
        missing.b += eb ? 0 : 1;
        if (ea && eb) {
            diffs.push(eb.timetag - ea.timetag - SHIFT);
            // tidalch, the boot file's stamp, is the room's: the channel
            for (const k of ['s', 'orbit', '_id_', 'cps', 'delta']) {
                assert.equal(ea[k], e[k], `${k} of ${JSON.stringify(e)}`);
                assert.equal(eb[k], e[k], `${k} of ${JSON.stringify(e)}`);
            }
            assert.ok(Math.abs(ea.cycle - e.cycle) < 1e-3, `cycle ${ea.cycle} for ${e.cycle}`);
        }
    }
    const maxDiff = Math.max(...diffs.map(Math.abs));
    const maxA = Math.max(...server.map((e) => {
        const ea = match(a, e, e.timetag + LATENCY);
        return ea ? Math.abs(ea.timetag - e.timetag - LATENCY) : 0;
    }));
    console.log(`# ${server.length} events; missing: plain ${missing.a}, shifted ${missing.b}; `
        + `max |shifted - plain - ${SHIFT} ms| = ${maxDiff.toFixed(3)} ms; `
        + `max |plain - room - ${LATENCY} ms| = ${maxA.toFixed(3)} ms`);
    assert.equal(missing.a, 0, 'the plain bridge played every event');
    assert.equal(missing.b, 0, 'the shifted bridge played every event');
    assert.equal(a.length, server.length, 'and no other');
    assert.equal(b.length, server.length, 'and no other');
    assert.ok(maxDiff <= 2, `timetags within 2 ms of the shift: ${maxDiff} ms`);

    // each event arrived before its time at both
    for (const x of a) {
        assert.ok(x.arrival <= x.timetag, `plain: arrived ${x.arrival - x.timetag} ms late`);
    }
    for (const x of b) {
        assert.ok(x.arrival + SHIFT <= x.timetag, `shifted: arrived ${x.arrival + SHIFT - x.timetag} ms late`);
    }

    // every parameter has the OSC type the room's SuperDirt got
    const types = (raw) => raw.map(tagsOf).filter(Boolean);
    const want = types(rawServer)[0];
    assert.ok(want && want.s === 's', JSON.stringify(want));
    delete want.tidalch;
    for (const got of [...types(rawA), ...types(rawB)]) {
        assert.deepEqual(got, want);
    }
});


test('a stopped bridge drops what it can no longer play in time, counts it, plays nothing late', { ...T, skip: !ENABLED }, async () => {
    const from = { server: room.dirt.events.length, a: dirtA.events.length };
    await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*16"' });
    await sleep(2000);
    process.kill(plain.pid, 'SIGSTOP');
    const stopped = Date.now();
    await sleep(1500);
    process.kill(plain.pid, 'SIGCONT');
    await sleep(2000);
    await room.ok('tidal_hush');
    await sleep(1500);

    const server = room.dirt.events.slice(from.server);
    const a = dirtA.events.slice(from.a);
    const lost = server.filter((e) => !match(a, e, e.timetag + LATENCY));
    assert.ok(lost.length > 5, `${lost.length} events not played`);
    for (const e of lost) {
        assert.ok(e.timetag > stopped - 500 && e.timetag < stopped + 2000,
            `only events of the stop are missing: ${e.timetag - stopped} ms after it`);
    }
    for (const x of a) {
        assert.ok(x.arrival <= x.timetag + 5, `played ${x.arrival - x.timetag} ms late`);
    }

    const log = await plain.until(() => plain.log.match(/dropped (\d+) late events \((\d+) in all\)/), 'the report of drops', 15000 * SLOW);
    assert.equal(Number(log[2]), lost.length, `every dropped event counted: ${log[0]}`);
});


test('--reconnect: through a reload the session is resumed and the sound goes on', { ...T, skip: !ENABLED }, async () => {
    await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*8"' });
    await dirtA.waitFor((e) => e.s === 'bd', { since: Date.now() + 500, what: 'bd before the reload' });
    await room.reload();
    await plain.until(() => /the session was resumed|the session was not resumed/.test(plain.log), 'a reconnect');
    const t = Date.now();
    await dirtA.waitFor((e) => e.s === 'bd' && e.timetag > t + 1000, { since: t, timeoutMs: 15000 * SLOW,
                                                                      what: 'bd after the reload' });
    assert.match(plain.log, /the session was resumed/);
    const r = await shifted.exitStatus();
    assert.equal(r.code, 1, 'without --reconnect the other ended with the connection');
});
