// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The recovery tests, the same over stdio and through nginx: an
// evaluation that never ends is interrupted (SIGINT) and GHCi stays
// usable; a GHCi killed or stopped is restarted with every channel, mute
// and the tempo re-applied and a ghci_restarted event; a pattern that
// fails only while playing is reported as an error event naming its
// channel.  start({ evalTimeout, healthInterval }) (ms) returns a Helper
// or a Room whose GHCi is up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alive } from './helper.mjs';
import { waitFor } from './nginx.mjs';


export function recoveryTests({ start, skip = false }) {
    const T = { timeout: 120000, skip };

    test('an evaluation past the eval timeout is interrupted; the old pattern plays on and GHCi stays usable', T, async () => {
        const h = await start({ evalTimeout: 1500 });
        try {
            await h.ok('tidal_set_tempo', { cps: 2 });
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2"' });
            const pid = await h.waitGhci();

            // type-checks, and never finishes computing its first cycle
            const start = Date.now();
            const r = await h.call('tidal_eval', {
                channel: 'd1',
                pattern: 'sound "bd" # n (fromIntegral (length [1..]))',
            });
            const took = Date.now() - start;
            assert.equal(r.isError, true);
            assert.match(r.text, /longer than 1500 ms and was interrupted; d1 keeps playing its previous pattern/);
            assert.ok(took >= 1400 && took < 10000, `answered after ${took} ms`);
            assert.match(h.log, /interrupting GHCi/);

            assert.equal(h.ghciPid(), pid, 'the same GHCi');
            assert.equal(alive(pid), true);
            assert.deepEqual(h.events('ghci_restarted'), []);
            const since = Date.now();
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'the old pattern after the interrupt' });

            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "sn*2"' });
            await h.dirt.waitFor((e) => e.s === 'sn', { since, what: 'a new pattern after the interrupt' });
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

    test('GHCi stopped with SIGSTOP: the health check restarts it and the music comes back', T, async () => {
        const h = await start({ healthInterval: 300, evalTimeout: 1000 });
        let pid;
        try {
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
            pid = await h.waitGhci();
            const from = h.notes.length;

            process.kill(pid, 'SIGSTOP');
            const stopped = Date.now();
            const note = await h.waitNote((n) => n.method === 'notifications/tidal/ghci_restarted',
                { from, timeout: 20000 });
            assert.match(note.params.reason, /did not answer a health check within 1000 ms/);
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

    test('a pattern that fails only while playing: an error event naming its channel; the others play on', T, async () => {
        const h = await start();
        try {
            await h.ok('tidal_set_tempo', { cps: 2 });
            await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2"' });
            await h.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh"' });
            const from = h.notes.length;
            // cycles 2 and 3 of every 4 fail, the first one (checked at eval) does not
            const r = await h.call('tidal_eval', {
                channel: 'd2',
                pattern: 'whenmod 4 2 (# n (error "late")) $ sound "sn"',
            });
            assert.equal(r.isError, false, r.text);
            const err = await h.waitNote((n) => n.method === 'notifications/tidal/error', { from, timeout: 10000 });
            assert.equal(err.params.channel, 'd2');
            assert.match(err.params.message, /late/);
            assert.match(err.params.message, /d2:1:19/, 'the call stack points into the pattern');

            // Tidal went back to the previous pattern; the helper says so
            const st = await waitFor(async () => {
                const s = (await h.ok('tidal_get_state')).structuredContent;
                return s.channels.d2?.pattern === 'sound "hh"' && s;
            }, { what: 'd2 back to its previous pattern' });
            assert.equal(st.channels.d1.pattern, 'sound "bd*2"');

            const since = Date.now();
            await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 still playing' });
            await h.dirt.waitFor((e) => e.s === 'hh', { since, what: 'd2 playing its previous pattern' });
        } finally {
            await h.stop();
        }
    });
}
