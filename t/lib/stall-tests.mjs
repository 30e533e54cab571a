// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper relays Tidal's OSC to SuperDirt and watches a heartbeat
// the boot file plays on a pattern of its own: a pattern that diverges
// only while playing stalls Tidal's scheduler while GHCi still answers;
// the helper notices, stops that channel, restarts Tidal with the other
// channels and says so.  A quiet room (hush, a sparse pattern, solo of a
// silent channel, mute, a slow tempo) is not a stall, nor is Tidal's
// revert after a pattern fails while playing, and the heartbeat never
// reaches SuperDirt.

// start({ evalTimeout }) (ms) returns a Helper (stdio) or a Room (nginx).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './nginx.mjs';


export function stallTests({ start, skip = false }) {
    const T = { timeout: 120000, skip };


    const BEAT = 'tidal-helper-heartbeat';

    // the pattern: type-checks, never finishes computing an event
    const DIVERGING = 'sound "bd" # n (fromIntegral (length [1..]))';

    // the same, only in cycles 2 and 3 of every 4: its first cycle (checked
    // at eval) passes, so it reaches the scheduler and stalls it there
    const DIVERGING_LATER = 'whenmod 4 2 (# n (fromIntegral (length [1..]))) $ sound "sn"';


    async function scheduler(h) {
        return (await h.ok('tidal_get_state')).structuredContent.scheduler;
    }

    // resolves once the scheduler's heartbeat is watched (one came after the boot)
    function heartbeatWatched(h) {
        return waitFor(async () => (await scheduler(h)).heartbeat_age_ms !== null,
            { timeout: 15000, what: 'the heartbeat to be watched' });
    }

    // Over a window longer than the stall deadline, the heartbeat keeps
    // coming (its count grows and its age stays under the deadline) and no
    // error or restart is announced.  Bounded by the deadline plus a second.
    async function noStall(h, what) {
        const from = h.notes.length;
        const first = await scheduler(h);
        const end = Date.now() + first.stall_after_ms + 1000;
        let last = first;
        while (Date.now() < end) {
            await new Promise((r) => setTimeout(r, 250));
            const s = await scheduler(h);
            assert.notEqual(s.heartbeat_age_ms, null, `${what}: the heartbeat is watched`);
            assert.ok(s.heartbeat_age_ms < s.stall_after_ms,
                `${what}: the last heartbeat is ${s.heartbeat_age_ms} ms old (deadline ${s.stall_after_ms})`);
            last = s;
        }
        assert.ok(last.heartbeats > first.heartbeats, `${what}: heartbeats kept coming`);
        assert.deepEqual(h.events('error', from), [], `${what}: no error`);
        assert.deepEqual(h.events('ghci_restarted', from), [], `${what}: no restart`);
    }


    test('a pattern that stalls the scheduler: error naming its channel, restart, the others come back, it is not replayed', T, async () => {
        const h = await start({ evalTimeout: 1500 });
        try {
            await h.ok('tidal_set_tempo', { cps: 2 });
            let since = Date.now();
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 playing' });
            await heartbeatWatched(h);
            const pid = h.ghciPid();

            // the pattern fails in its first cycle, at eval time:
            // interrupted, never played, nothing restarted
            const early = await h.call('tidal_eval', { channel: 'd2', pattern: DIVERGING });
            assert.equal(early.isError, true);
            assert.match(early.text, /interrupted/);
            since = Date.now();
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 playing on' });

            // diverging in a later cycle: it plays, then the scheduler stalls
            const from = h.notes.length;
            const r = await h.call('tidal_eval', { channel: 'd2', pattern: DIVERGING_LATER });
            assert.equal(r.isError, false, r.text);

            const err = await h.waitNote((n) => n.method === 'notifications/tidal/error',
                { from, timeout: 20000, what: 'the stall reported' });
            assert.equal(err.params.channel, 'd2');
            assert.match(err.params.message, /^d2 stalled Tidal's scheduler and was stopped; the other channels were restarted/);
            const restarted = await h.waitNote((n) => n.method === 'notifications/tidal/ghci_restarted',
                { from, timeout: 20000, what: 'the restart' });
            assert.match(restarted.params.reason, /scheduler stalled: no heartbeat for \d+ ms while GHCi answered/);
            assert.ok(restarted.params.seq > err.params.seq, 'the error comes first');
            assert.notEqual(h.ghciPid(), pid, 'a new GHCi');
            assert.match(h.log, /d2 stalled Tidal's scheduler/);

            // the channel state announced d2 silent
            const d2 = h.events('channel_state', from).find((s) => s.channel === 'd2');
            assert.equal(d2?.state.pattern, null);

            // d1 comes back; d2 (sn in cycles 0 and 1 of every 4) does not
            since = Date.now();
            const bd = await h.dirt.waitFor((e) => e.s === 'bd', { since, timeoutMs: 15000, what: 'd1 after the restart' });
            assert.equal(bd.cps, 2, 'the tempo came back');
            await heartbeatWatched(h);
            await new Promise((r) => setTimeout(r, 2000));
            assert.deepEqual(h.dirt.after(bd.arrival).filter((e) => e.s === 'sn').length, 0,
                'd2 was not replayed');
            assert.ok(h.dirt.after(bd.arrival).filter((e) => e.s === 'bd').length >= 4, 'd1 plays on');

            const st = (await h.ok('tidal_get_state')).structuredContent;
            assert.equal(st.ghci, 'running');
            assert.deepEqual(Object.keys(st.channels), ['d1']);
            assert.equal(st.channels.d1.pattern, 'sound "bd*4"');
            const hist = (await h.ok('tidal_get_history')).structuredContent.history;
            assert.ok(hist.some((e) => e.type === 'error' && e.channel === 'd2'), 'the stall is in the history');

            // Tidal still works: a new pattern on d2 plays
            since = Date.now();
            await h.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh*2"' });
            await h.dirt.waitFor((e) => e.s === 'hh', { since, what: 'a new d2' });

            // every heartbeat stayed with the helper
            assert.ok((await scheduler(h)).heartbeats > 0);
            assert.deepEqual(h.dirt.events.filter((e) => e.s === BEAT), [], 'no heartbeat reached SuperDirt');
            assert.deepEqual(h.dirt.errors, []);
        } finally {
            await h.stop();
        }
    });

    test('a quiet room is not a stall: hush, a sparse pattern, a runtime error, solo of a silent channel, mute, a slow tempo', T, async () => {
        const h = await start();
        try {
            await h.ok('tidal_set_tempo', { cps: 2 });
            await heartbeatWatched(h);
            const pid = h.ghciPid();
            const sched = await scheduler(h);
            assert.equal(sched.stall_after_ms, 2000, 'at 2 cps: the floor of 2000 ms');

            let since = Date.now();
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 playing' });
            await h.ok('tidal_hush');
            await noStall(h, 'after hush');

            // one event every 4 cycles: 2 s apart at 2 cps
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'slow 4 $ sound "bd"' });
            await noStall(h, 'a sparse pattern');

            // a pattern failing while playing: Tidal sends every pattern back
            // to its previous one, the heartbeat's to itself
            const from = h.notes.length;
            await h.ok('tidal_eval', { channel: 'd3', pattern: 'whenmod 4 2 (# n (error "late")) $ sound "sn"' });
            const err = await h.waitNote((n) => n.method === 'notifications/tidal/error',
                { from, timeout: 10000, what: 'the runtime error' });
            assert.match(err.params.message, /late/);
            await noStall(h, 'after a runtime error');

            // d5 exists but plays nothing; soloing it silences every other channel
            await h.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh*4"' });
            await h.ok('tidal_eval', { channel: 'd5', pattern: 'sound "cp"' });
            await h.ok('tidal_silence', { channel: 'd5' });
            await h.ok('tidal_solo', { channel: 'd5' });
            since = Date.now() + 400;
            await noStall(h, 'solo of a silent channel');
            assert.deepEqual(h.dirt.after(since).map((e) => e.s), [], 'solo silenced the others');
            await h.ok('tidal_unsolo', { channel: 'd5' });
            since = Date.now();
            await h.dirt.waitFor((e) => e.s === 'hh', { since, what: 'd2 after unsolo' });

            await h.ok('tidal_mute', { channel: 'd1' });
            await h.ok('tidal_mute', { channel: 'd2' });
            since = Date.now() + 400;
            await noStall(h, 'every channel muted');
            assert.deepEqual(h.dirt.after(since).map((e) => e.s), [], 'mute silenced them');

            // a slower tempo: the heartbeat slows down, the deadline follows
            await h.ok('tidal_set_tempo', { cps: 0.25 });
            assert.equal((await scheduler(h)).stall_after_ms, 2000);
            await h.ok('tidal_set_tempo', { cps: 0.1 });
            assert.equal((await scheduler(h)).stall_after_ms, 5000, '4 heartbeats of 1.25 s');
            await noStall(h, 'a slow tempo');

            assert.equal(h.ghciPid(), pid, 'the same GHCi all along');
            assert.deepEqual(h.dirt.events.filter((e) => e.s === BEAT), [], 'no heartbeat reached SuperDirt');
        } finally {
            await h.stop();
        }
    });
}
