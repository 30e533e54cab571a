// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper relays Tidal's OSC to SuperDirt and watches a heartbeat
// the boot file plays on a pattern of its own (what happens when it
// stops: t/lib/supervision-tests.mjs).  A quiet room (hush, a sparse
// pattern, solo of a silent channel, mute, a slow tempo) is not a stall,
// and the heartbeat never reaches SuperDirt.

// start({ evalTimeout }) (ms) returns a Helper (stdio) or a Room (nginx).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './nginx.mjs';


export function stallTests({ start, skip = false }) {
    const T = { timeout: 120000, skip };


    // the heartbeat's sound: the prefix and each GHCi's secret
    const isBeat = (e) => String(e.s).startsWith('tidal-helper-heartbeat');


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


    test('a quiet room is not a stall: hush, a sparse pattern, a runtime error, solo of a silent channel, mute, a slow tempo', T, async () => {
        const h = await start();
        try {
            await h.ok('tidal_set_tempo', { cps: 2 });
            await heartbeatWatched(h);
            const pid = await h.waitGhci();
            const sched = await scheduler(h);
            assert.equal(sched.stall_after_ms, 1000, 'at 2 cps: the floor of 1000 ms');

            let since = Date.now();
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 playing' });
            await h.ok('tidal_hush');
            await noStall(h, 'after hush');

            // one event every 4 cycles: 2 s apart at 2 cps
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'slow 4 $ sound "bd"' });
            await noStall(h, 'a sparse pattern');

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

            // a slower tempo: the deadline allows for it at once, and
            // follows the heartbeat that comes at it
            await h.ok('tidal_set_tempo', { cps: 0.25 });
            assert.equal((await scheduler(h)).stall_after_ms, 1500, '3 heartbeats of 0.5 s');
            await h.ok('tidal_set_tempo', { cps: 0.1 });
            assert.equal((await scheduler(h)).stall_after_ms, 3750, '3 heartbeats of 1.25 s');
            await noStall(h, 'a slow tempo');
            assert.equal((await scheduler(h)).stall_after_ms, 3750);

            assert.equal(h.ghciPid(), pid, 'the same GHCi all along');
            assert.deepEqual(h.dirt.events.filter(isBeat), [], 'no heartbeat reached SuperDirt');
        } finally {
            await h.stop();
        }
    });
}
