// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Text from patterns is data, the same over stdio and through nginx: GHCi's
// message about a pattern quotes the pattern, so a pattern can put
// newlines and a line that looks like nginx's [emerg] into it; the log
// keeps it on one line, escaped.  A message of 20 KB reaches the caller
// whole, while the pattern_eval event and the history keep 4 KB of it
// and the length of the rest.  start() returns a Helper or a Room; its
// log is the helper's stderr or nginx's error.log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

// what an event keeps of a longer text, in bytes, and the note after it
export const EVENT_TEXT_MAX = 4096;
const NOTE = / \u2026 \((\d+) more bytes\)$/;

// a date no real line of the log has
const FORGED = '2001/01/01 00:00:00 [emerg] 1#1: forged';


export function textTests({ start, skip = false, expectLog = () => {} }) {
    const T = { timeout: 120000, skip };

    let h;

    before(async () => {
        if (skip) {
            return;
        }
        h = await start();
        // the forged line is in the log on purpose, escaped on the helper's
        expectLog(h, new RegExp(`^tidal-helper\\[\\d+\\]: .*\\\\n${FORGED.replace(/[[\]]/g, '\\$&')}`));
    });

    after(async () => {
        await h?.stop();
    });


    test('a pattern\'s newlines stay in its log line: no line of the log starts with the forged text', T, async () => {
        const from = h.notes.length;
        const r = await h.call('tidal_eval', {
            channel: 'd1',
            pattern: `sound "bd" # n (error "x\\n${FORGED}\\r\\x1b[2Kgone")`,
        });
        assert.equal(r.isError, true, r.text);
        assert.match(r.text, new RegExp(`x\\n${FORGED.replace(/[[\]]/g, '\\$&')}`),
            'the caller gets GHCi\'s message as it is');
        const ev = await h.waitNote((n) => n.method === 'notifications/tidal/pattern_eval'
            && n.params.ok === false, { from, what: 'the failed pattern_eval' });
        assert.match(ev.params.error, /forged/);

        const line = await h.waitLog(/^.*pattern failed: .*forged.*$/m);
        const log = h.log;
        assert.match(line[0], /\\n2001\/01\/01 00:00:00 \[emerg\] 1#1: forged\\r\\x1b\[2Kgone/,
            'escaped on the helper\'s own line');
        const forged = log.split('\n').filter((l) => /^\S*\s*2001\/01\/01/.test(l) || l.startsWith('[2Kgone'));
        assert.deepEqual(forged, [], 'no line of its own');
        assert.ok(!/\x1b/.test(log), 'no terminal escape reaches the log');
    });

    test('GHCi\'s 20 KB message: the caller gets all of it, the event and the history 4 KB and the length of the rest', T, async () => {
        const from = h.notes.length;
        const r = await h.call('tidal_eval', { channel: 'd2', pattern: 'sound "bd" # n (error (replicate 20000 \'x\'))' });
        assert.equal(r.isError, true);
        assert.ok(r.text.includes('x'.repeat(20000)), `the whole message in the answer (${r.text.length} chars)`);
        assert.ok(r.structuredContent.error.includes('x'.repeat(20000)), 'and in its structured content');

        const ev = await h.waitNote((n) => n.method === 'notifications/tidal/pattern_eval'
            && n.params.channel === 'd2', { from, what: 'd2\'s pattern_eval' });
        assertCapped(ev.params.error, r.structuredContent.error);

        const hist = (await h.ok('tidal_get_history', { limit: 20 })).structuredContent.history;
        const kept = hist.filter((e) => e.type === 'pattern_eval' && e.channel === 'd2');
        assert.equal(kept.length, 1);
        assertCapped(kept[0].error, r.structuredContent.error);
    });
}


// text is full cut to EVENT_TEXT_MAX bytes and a note of how many more
export function assertCapped(text, full) {
    const m = text.match(NOTE);
    assert.ok(m, `the note at the end: ...${text.slice(-80)}`);
    const kept = Buffer.from(text.slice(0, m.index));
    assert.ok(kept.length <= EVENT_TEXT_MAX && kept.length > EVENT_TEXT_MAX - 4,
        `${kept.length} bytes kept`);
    assert.equal(kept.length + Number(m[1]), Buffer.byteLength(full), 'kept + more = all');
    assert.ok(full.startsWith(kept.toString()), 'what is kept is the start');
}
