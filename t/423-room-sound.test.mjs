// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The room's sound as a stream (docs/collaboration.md, "The room's sound"):
// a client that asks for tidal/sound in initialize gets each /dirt/play the
// UDP listener (SuperDirt's stand-in) receives, with the same timetag, in
// about one notification a Tidal frame; others get none; a client that
// stops reading loses sound, counted, but not its events; tidal_latency
// moves the timetags; tidal/clock answers over WebSocket and HTTP; sound
// reaches an SSE event stream (Streamable HTTP) that asked for it too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Room } from './lib/room.mjs';
import { SKIP } from './lib/helper.mjs';
import { SLOW, sleep } from './lib/nginx.mjs';
import { TidalWs } from './lib/tidal.mjs';
import { connectRaw, INIT_PARAMS, rpc } from './lib/ws.mjs';
import { httpUrl, openSession, openStream, post } from './lib/http.mjs';

const T = { timeout: 240000 * SLOW, skip: SKIP };

const SOUND_PARAMS = {
    ...INIT_PARAMS,
    capabilities: { experimental: { 'tidal/events': {}, 'tidal/sound': {} } },
};

let room;

before(async () => {
    if (SKIP) {
        return;
    }
    // a small send buffer, so that a client that stops reading falls
    // behind within seconds
    room = await Room.start({ name: 'sound-test', listen: 'sndbuf=8k' });
});

after(async () => {
    await room?.stop();
});


function now() {
    return performance.timeOrigin + performance.now();
}


async function listener(label, params = SOUND_PARAMS) {
    const c = await TidalWs.open(room.url, { label });
    const r = await c.request('initialize', params);
    assert.ok(r.result, `${label}: initialize failed: ${JSON.stringify(r)}`);
    c.send(rpc('notifications/initialized'));
    return c;
}


function soundNotes(c, from = 0) {
    return c.log.slice(from).filter(({ m }) => m.method === 'notifications/tidal/sound');
}


test('a client with tidal/sound hears what SuperDirt gets, a notification a frame; one without gets none', T, async () => {
    const ears = await listener('ears');
    const deaf = await listener('deaf', { ...INIT_PARAMS });
    try {
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*16" # n 3 # gain 1.1' });
        await room.ok('tidal_eval', { channel: 'd3', pattern: 'sound "hh*8" # speed 1.5 # pan 0.25' });
        await room.dirt.waitFor((e) => e.s === 'hh', { timeoutMs: 20000 * SLOW, what: 'd3 playing' });

        const from = ears.log.length;
        const since = Date.now();
        await sleep(3000);

        const notes = soundNotes(ears, from);
        const events = notes.flatMap(({ m }) => {
            assert.equal(m.params.type, 'sound');
            assert.equal(m.params.seq, undefined, 'sound is not numbered');
            return m.params.events;
        });
        assert.ok(events.length > 40, `${events.length} sound events in 3 s`);

        // every event is one the listener received, same time (1 ms)
        const dirt = room.dirt.after(since - 1000);
        for (const e of events) {
            assert.equal(typeof e.time, 'number');
            assert.equal(e.params.tidalch, undefined, 'tidalch is the channel, not a param');
            const match = dirt.find((d) => d.s === e.params.s && Math.abs(d.timetag - e.time * 1000) < 1
                && `d${d.tidalch}` === e.channel);
            assert.ok(match, `no OSC event like ${JSON.stringify(e)}`);
            assert.equal(e.params.n ?? null, match.n ?? null);
            if (e.params.s === 'bd') {
                assert.equal(e.channel, 'd1');
                assert.equal(e.params.n, 3);
                assert.equal(e.params.gain, 1.1);
            } else {
                assert.equal(e.channel, 'd3');
                assert.equal(e.params.speed, 1.5);
                assert.equal(e.params.pan, 0.25);
            }
        }

        // and every event the listener received meanwhile is there
        const seen = new Set(events.map((e) => `${e.params.s}@${(e.time * 1000).toFixed(0)}`));
        const middle = room.dirt.after(since + 500).filter((d) => d.arrival < since + 2500);
        for (const d of middle) {
            assert.ok(seen.has(`${d.s}@${d.timetag.toFixed(0)}`), `${d.s} at ${d.timetag} was not streamed`);
        }

        // about one notification a frame (1/20 s): each spans less than a
        // frame, and there are not more than frames
        for (const { m } of notes) {
            const times = m.params.events.map((e) => e.time);
            assert.ok(Math.max(...times) - Math.min(...times) < 0.06, `a notification spans ${JSON.stringify(times)}`);
        }
        assert.ok(notes.length <= 3 * 20 * 1.2, `${notes.length} notifications in 3 s`);
        assert.ok(events.length / notes.length > 1.5, `${events.length} events in ${notes.length} notifications`);

        // sent ahead of their time: the notification comes before the sound is due
        for (const { m, at } of notes) {
            assert.ok(at < m.params.events[0].time * 1000, 'a sound arrived after its time');
        }

        assert.equal(soundNotes(deaf).length, 0, 'a client without tidal/sound got sound');
    } finally {
        await room.ok('tidal_hush');
        await ears.close();
        await deaf.close();
    }
});


test('an SSE event stream (Streamable HTTP) with tidal/sound hears the room; one without gets none', T, async () => {
    const url = httpUrl(room.ngx);
    const earsSession = await openSession(url, { name: 'sse-ears', capabilities: { experimental: { 'tidal/sound': {} } } });
    const deafSession = await openSession(url, { name: 'sse-deaf', capabilities: { experimental: { 'tidal/events': {} } } });
    const ears = await openStream(url, earsSession);
    const deaf = await openStream(url, deafSession);
    try {
        assert.equal(ears.status, 200);
        assert.equal(deaf.status, 200);
        await room.ok('tidal_eval', { channel: 'd2', pattern: 'sound "sn*8" # n 2 # cutoff 1500' });
        await room.dirt.waitFor((e) => e.s === 'sn', { timeoutMs: 20000 * SLOW, what: 'd2 playing' });
        const since = Date.now();
        await sleep(2000);

        const isSound = (ev) => ev.json.method === 'notifications/tidal/sound';
        const notes = ears.events.filter(isSound);
        // sn*8 at 0.5625 cps: 4.5 a second, one a notification
        assert.ok(notes.length >= 6, `${notes.length} sound notifications on the event stream in 2 s`);
        const events = notes.flatMap((ev) => {
            // not in the ring: no id, so no Last-Event-ID resumes to it
            assert.equal(ev.id, null, 'a sound event has no SSE id');
            assert.equal(ev.json.params.type, 'sound');
            return ev.json.params.events;
        });

        // the same sounds the UDP listener got, same timetags (1 ms)
        const dirt = room.dirt.after(since - 3000);
        for (const e of events.filter((x) => x.params.s === 'sn')) {
            assert.equal(e.channel, 'd2');
            assert.equal(e.params.n, 2);
            assert.equal(e.params.cutoff, 1500);
            assert.ok(dirt.find((d) => d.s === 'sn' && Math.abs(d.timetag - e.time * 1000) < 1),
                `no OSC event like ${JSON.stringify(e)}`);
        }
        assert.ok(events.filter((x) => x.params.s === 'sn').length >= 6, `${events.length} events`);

        assert.equal(deaf.events.filter(isSound).length, 0, 'a stream without tidal/sound got sound');
    } finally {
        ears.close();
        deaf.close();
        await room.ok('tidal_hush');
    }
});


test('tidal/clock over WebSocket, before and after initialize, and over HTTP: offset near 0, small round trip', T, async () => {
    async function sample(ask) {
        const t0 = now();
        const r = await ask();
        const t3 = now();
        assert.ok(r.receive <= r.transmit, JSON.stringify(r));
        return {
            offset: ((r.receive - t0) + (r.transmit - t3)) / 2,
            delay: (t3 - t0) - (r.transmit - r.receive),
        };
    }

    function best(samples) {
        return samples.reduce((a, b) => (b.delay < a.delay ? b : a));
    }

    const early = await TidalWs.open(room.url, { label: 'clock-early' });
    const later = await listener('clock-later');
    try {
        for (const c of [early, later]) {
            const samples = [];
            for (let i = 0; i < 8; i++) {
                samples.push(await sample(async () => (await c.request('tidal/clock')).result));
            }
            const b = best(samples);
            assert.ok(Math.abs(b.offset) < 3, `offset ${b.offset} ms over WebSocket (${c.label})`);
            assert.ok(b.delay >= 0 && b.delay < 20, `round trip ${b.delay} ms over WebSocket`);
        }

        const url = httpUrl(room.ngx);
        const samples = [];
        for (let i = 0; i < 8; i++) {
            samples.push(await sample(async () => {
                const r = await post(url, { jsonrpc: '2.0', id: i, method: 'tidal/clock' });
                assert.equal(r.status, 200, r.text);
                return r.json.result;
            }));
        }
        const b = best(samples);
        assert.ok(Math.abs(b.offset) < 5, `offset ${b.offset} ms over HTTP`);
        assert.ok(b.delay >= 0 && b.delay < 50, `round trip ${b.delay} ms over HTTP`);
    } finally {
        early.terminate();
        await later.close();
    }
});


test('a client that stops reading loses sound, counted in its metrics, but none of its events', T, async (t) => {
    const slow = await connectRaw(room.ngx.port);
    try {
        await slow.initialize(SOUND_PARAMS);
        await room.ok('tidal_set_tempo', { cps: 4 });
        for (const ch of ['d1', 'd2', 'd3', 'd4']) {
            await room.ok('tidal_eval', {
                channel: ch,
                pattern: 'sound "bd*16" # n (irand 8) # gain 1.05 # speed 1.25 # pan sine # cutoff 2000 # room 0.3 # size 0.8',
            });
        }
        slow.socket.pause();
        await sleep(12000);
        await room.ok('tidal_say', { text: 'still here?' });
        await room.ok('tidal_hush');
        await room.ok('tidal_set_tempo', { cps: 0.5625 });
        await sleep(1500);
        slow.socket.resume();

        const got = [];
        const deadline = Date.now() + 20000 * SLOW;
        let dropped = 0;
        while (Date.now() < deadline) {
            const m = await slow.message(5000 * SLOW);
            got.push(m);
            if (m.method === 'notifications/tidal/metrics' && m.params.sound_dropped > 0) {
                dropped = m.params.sound_dropped;
                if (got.some((x) => x.method === 'notifications/tidal/chat')) {
                    break;
                }
            }
        }
        const metrics = got.filter((x) => x.method === 'notifications/tidal/metrics');
        t.diagnostic(`${got.length} messages, ${got.filter((x) => x.method === 'notifications/tidal/sound').length} sound, `
            + `metrics: ${JSON.stringify(metrics.map((x) => x.params.sound_dropped))}`);
        // a close frame would have thrown in message()
        const chat = got.find((x) => x.method === 'notifications/tidal/chat');
        assert.ok(chat, 'the chat event reached the slow client');
        assert.equal(chat.params.text, 'still here?');
        assert.ok(dropped > 0, 'sound_dropped in its metrics');
    } finally {
        slow.destroy();
        await room.ok('tidal_hush');
    }
});


test('reload keeps sound flowing; tidal_latency moves the timetags', T, async () => {
    async function lead(ms) {
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*8"' });
        const since = Date.now() + 1000;
        await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival > since, { timeoutMs: 20000 * SLOW, what: 'bd' });
        await sleep(1000);
        const evs = room.dirt.after(since).filter((e) => e.s === 'bd');
        const leads = evs.map((e) => e.timetag - e.arrival).sort((a, b) => a - b);
        const median = leads[Math.floor(leads.length / 2)];
        assert.ok(median > ms && median < ms + 80, `events arrive ${median} ms ahead, not ${ms} .. ${ms + 80}`);
        return median;
    }

    const before = await lead(100);
    const pids = room.ngx.workerPids();
    await room.reload({ helper: 'tidal_latency 400ms;' });
    room.client = await room.clientAfterReload('after-reload', pids);
    await room.ready({ timeout: 120000 });
    const ears = await listener('ears-2');
    try {
        const after = await lead(400);
        assert.ok(after - before > 250, `latency 100 ms -> 400 ms moved the lead by ${after - before} ms`);
        await ears.until(() => soundNotes(ears).length > 3, 'sound after the reload', 10000 * SLOW);
        const e = soundNotes(ears).at(-1).m.params.events[0];
        assert.ok(e.time * 1000 - Date.now() > 150, 'sound is sent ahead by the new latency');
    } finally {
        await room.ok('tidal_hush');
        await ears.close();
    }
});
