// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The recovery tests, the same over stdio and through nginx: an
// evaluation that never ends is refused by the checker and the player
// plays on; a GHCi killed or stopped is replaced by the spare with every
// channel, mute and the tempo re-applied and a ghci_restarted event; a
// pattern that fails only while playing is silenced and reported as an
// error event naming its channel.  start({ evalTimeout, healthInterval }) (ms) returns a Helper
// or a Room whose GHCi is up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alive } from './helper.mjs';
import { waitFor } from './nginx.mjs';


export function recoveryTests({ start, skip = false }) {
    const T = { timeout: 120000, skip };

    test('an evaluation that never finishes is refused by the checker; the old pattern plays on in the same GHCi', T, async () => {
        const h = await start({ evalTimeout: 1500 });
        try {
            // a call while Tidal boots would be answered at the timeout
            const pid = await h.waitGhci();
            await h.ok('tidal_set_tempo', { cps: 2 });
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2"' });

            // type-checks, and never finishes computing its first cycle
            const start = Date.now();
            const r = await h.call('tidal_eval', {
                channel: 'd1',
                pattern: 'sound "bd" # n (fromIntegral (length [1..]))',
            });
            const took = Date.now() - start;
            assert.equal(r.isError, true);
            assert.match(r.text, /^d1 fails at cycle (\d+) and was not played: computing cycle \1 took longer than 1000 ms/);
            assert.ok(took >= 900 && took < 10000, `answered after ${took} ms`);

            assert.equal(h.ghciPid(), pid, 'the same GHCi plays');
            assert.equal(alive(pid), true);
            assert.deepEqual(h.events('ghci_restarted'), []);
            const since = Date.now();
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'the old pattern after the refusal' });

            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "sn*2"' });
            await h.dirt.waitFor((e) => e.s === 'sn', { since, what: 'a new pattern after the refusal' });
            const st = await h.ok('tidal_get_state');
            assert.equal(st.structuredContent.channels.d1.pattern, 'sound "sn*2"');
        } finally {
            await h.stop();
        }
    });

    test('GHCi killed with SIGKILL: restarted, channels, mute and tempo re-applied, ghci_restarted sent', T, async () => {
        const h = await start();
        try {
            await h.ok('tidal_set_tempo', { cps: 1.5 });
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2"' });
            await h.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh*2"' });
            await h.ok('tidal_eval', { channel: 'd3', pattern: 'sound "arpy*2"' });
            await h.ok('tidal_mute', { channel: 'd3' });
            const pid = await h.waitGhci();
            const from = h.notes.length;

            process.kill(pid, 'SIGKILL');
            const note = await h.waitNote((n) => n.method === 'notifications/tidal/ghci_restarted', { from });
            assert.match(note.params.reason, /GHCi exited \(signal 9, SIGKILL\)/);
            assert.ok(note.params.seq > 0);
            assert.notEqual(h.ghciPid(), pid);

            const since = Date.now();
            const bd = await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 after the restart' });
            await h.dirt.waitFor((e) => e.s === 'hh', { since, what: 'd2 after the restart' });
            assert.equal(bd.cps, 1.5, 'the tempo came back');
            await new Promise((r) => setTimeout(r, 1500));
            assert.deepEqual(h.dirt.after(since).filter((e) => e.s === 'arpy'), [], 'd3 is still muted');

            const st = await h.ok('tidal_get_state');
            assert.equal(st.structuredContent.ghci, 'running');
            assert.deepEqual(Object.keys(st.structuredContent.channels).sort(), ['d1', 'd2', 'd3']);
            assert.equal(st.structuredContent.channels.d3.muted, true);
            const hist = (await h.ok('tidal_get_history')).structuredContent.history;
            assert.ok(hist.some((e) => e.type === 'ghci_restarted'), 'the restart is in the history');
        } finally {
            await h.stop();
        }
    });

    test('GHCi stopped with SIGSTOP: the spare takes over and the music comes back', T, async () => {
        const h = await start({ healthInterval: 300, evalTimeout: 1000 });
        let pid;
        try {
            pid = await h.waitGhci();
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
            const from = h.notes.length;

            process.kill(pid, 'SIGSTOP');
            const stopped = Date.now();
            const note = await h.waitNote((n) => n.method === 'notifications/tidal/ghci_restarted',
                { from, timeout: 20000 });
            assert.match(note.params.reason, /stopped from outside \(SIGSTOP\)/);
            assert.ok(Date.now() - stopped < 10000);
            assert.equal(alive(pid), false, 'the stopped GHCi was killed');

            const since = Date.now();
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 after the restart' });
            const r = await h.ok('tidal_eval', { channel: 'd2', pattern: 'sound "cp"' });
            assert.equal(r.isError, false);
        } finally {
            if (pid && alive(pid)) {
                process.kill(pid, 'SIGCONT');
            }
            await h.stop();
        }
    });

    test('a pattern that fails only while playing: an error event naming its channel and who set it; it is silenced, the others play on', T, async () => {
        const h = await start();
        try {
            await h.ok('tidal_set_tempo', { cps: 4 });
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2"' });
            await h.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh"' });
            const bd = await h.dirt.waitFor((e) => e.s === 'bd', { what: 'd1 playing' });
            const from = h.notes.length;
            // from a cycle beyond the 16 a new pattern is checked for
            const at = Math.ceil(bd.cycle) + 20;
            const r = await h.call('tidal_eval', {
                channel: 'd2',
                pattern: `whenT (>= ${at}) (# n (error "late")) $ sound "sn"`,
            });
            assert.equal(r.isError, false, r.text);
            const err = await h.waitNote((n) => n.method === 'notifications/tidal/error',
                { from, timeout: 30000 });
            assert.equal(err.params.channel, 'd2');
            assert.match(err.params.message, new RegExp(`^d2 failed while playing at cycle ${at} and was silenced: late`));
            assert.ok(err.params.who, 'who set the pattern');

            const st = (await h.ok('tidal_get_state')).structuredContent;
            assert.equal(st.channels.d2, undefined, 'd2 is silent');
            assert.equal(st.channels.d1.pattern, 'sound "bd*2"');
            assert.deepEqual(h.events('ghci_restarted', from), []);

            const since = Date.now();
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 still playing' });
            await new Promise((res) => setTimeout(res, 1000));
            assert.deepEqual(h.dirt.after(since + 200).filter((e) => e.s === 'sn' || e.s === 'hh'), [],
                'd2 plays nothing');
        } finally {
            await h.stop();
        }
    });
}
