// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The music tests, the same over stdio (tidal-helper --stdio) and over
// WebSocket (nginx with the helper it starts): eval is heard, hush is
// silence, a mistake comes back as GHCi's own message while the old
// pattern plays on, and mute, solo, silence and tempo have Tidal's own
// effect on the OSC stream.  start() returns a Helper or a Room (same
// interface); who is the client's name as events report it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';


export function musicTests({ start, who, serverName, toolNames, toolsNote = '', skip = false }) {
    const T = { timeout: 120000, skip };

    let h;

    before(async () => {
        if (skip) {
            return;
        }
        h = await start();
        // two cycles a second keeps every wait short
        await h.ok('tidal_set_tempo', { cps: 2 });
    });

    after(async () => {
        await h?.stop();
    });


    // resolves once sample s is heard on channel orbit o (Tidal's dN is
    // orbit N-1 for d1 .. d12) in an event that arrived at or after since
    function heard(s, { since = Date.now(), timeoutMs = 10000 } = {}) {
        return h.dirt.waitFor((e) => e.s === s, { since, timeoutMs, what: `a /dirt/play with s=${s}` });
    }

    // no event for which pred holds arrives in a window of ms, starting
    // margin ms after now (events Tidal already scheduled may still come:
    // they are sent oLatency + one frame ahead)
    async function silentFor(pred, ms, margin = 400) {
        const start = Date.now() + margin;
        await new Promise((r) => setTimeout(r, margin + ms));
        const late = h.dirt.after(start).filter(pred);
        assert.deepEqual(late.map((e) => e.s), [], `heard after ${margin} ms: ${JSON.stringify(late.slice(0, 3))}`);
    }


    test(`initialize and tools/list: the music tools of the shared table${toolsNote}`, T, async () => {
        const info = h.client.getServerVersion();
        assert.equal(info.name, serverName);
        const { tools } = await h.client.listTools();
        assert.deepEqual(tools.map((t) => t.name).sort(), [...toolNames].sort());
        const evalTool = tools.find((t) => t.name === 'tidal_eval');
        assert.deepEqual(evalTool.inputSchema.required, ['channel', 'pattern']);
        assert.equal(evalTool.inputSchema.properties.channel.pattern, '^d([1-9]|1[0-6])$');
        const tempo = tools.find((t) => t.name === 'tidal_set_tempo');
        assert.deepEqual(Object.keys(tempo.inputSchema.properties).sort(), ['bpm', 'cps']);
    });

    test('tidal_eval: sound "bd*4 sn" is heard as /dirt/play with s=bd and s=sn', T, async () => {
        const from = h.notes.length;
        const since = Date.now();
        const r = await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4 sn"' });
        assert.equal(r.structuredContent.channel, 'd1');
        assert.equal(r.structuredContent.ok, true);
        const bd = await heard('bd', { since });
        const sn = await heard('sn', { since });
        assert.equal(bd.orbit, 0, 'd1 plays on orbit 0');
        assert.ok(bd.timetag > since - 1000, `a real OSC timetag: ${bd.timetag}`);
        assert.equal(sn.cps, 2, 'the tempo set before is in every event');
        assert.deepEqual(h.dirt.errors, [], 'every packet decodes as OSC');

        const upd = await h.waitNote((n) => n.method === 'notifications/tidal/pattern_update', { from });
        assert.equal(upd.params.type, 'pattern_update');
        assert.equal(upd.params.channel, 'd1');
        assert.equal(upd.params.pattern, 'sound "bd*4 sn"');
        assert.equal(upd.params.who, who);
        assert.ok(Number.isSafeInteger(upd.params.seq) && upd.params.seq > 0);
        assert.ok(Math.abs(upd.params.timestamp - Date.now()) < 60000, 'timestamp: ms since the epoch');
        const ev = await h.waitNote((n) => n.method === 'notifications/tidal/pattern_eval', { from });
        assert.equal(ev.params.ok, true);
        assert.equal(ev.params.error, null);
        assert.equal(ev.params.seq, upd.params.seq + 1);
    });

    test('a mistake: isError with GHCi\'s message at the line and column of the pattern; the old pattern plays on', T, async () => {
        await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
        const from = h.notes.length;
        const r = await h.call('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4 sn"\n  # speed (foo 2)' });
        assert.equal(r.isError, true);
        // foo is on the pattern's second line, column 12
        assert.match(r.text, /^d1:2:12: error:/);
        assert.match(r.text, /Variable not in scope: foo/);
        assert.equal(r.structuredContent.ok, false);
        const ev = await h.waitNote((n) => n.method === 'notifications/tidal/pattern_eval', { from });
        assert.equal(ev.params.ok, false);
        assert.match(ev.params.error, /Variable not in scope: foo/);

        const after = Date.now();
        await heard('bd', { since: after });
        await silentFor((e) => e.s === 'sn', 1000);

        const parse = await h.call('tidal_eval', { channel: 'd1', pattern: 'sound "bd"\n  # speed = 2' });
        assert.equal(parse.isError, true);
        assert.match(parse.text, /^d1:2:11: error: parse error on input .=./);

        const typed = await h.call('tidal_eval', { channel: 'd1', pattern: 'n "1 2"\n\t# sound 3' });
        assert.equal(typed.isError, true);
        assert.match(typed.text, /d1:2:/, 'a tab-indented line keeps its position');
    });

    test('a multi-line pattern plays every line', T, async () => {
        const since = Date.now();
        await h.ok('tidal_eval', {
            channel: 'd2',
            pattern: 'stack [sound "hh*2",\n       sound "cp"\n         # speed 2\n      ]',
        });
        const hh = await heard('hh', { since });
        const cp = await heard('cp', { since });
        assert.equal(hh.orbit, 1, 'd2 plays on orbit 1');
        assert.equal(cp.speed, 2);
        await h.ok('tidal_silence', { channel: 'd2' });
        await silentFor((e) => e.s === 'hh' || e.s === 'cp', 1000);
    });

    test('tidal_hush: every channel stops for at least two whole cycles', T, async () => {
        const since = Date.now();
        await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
        await h.ok('tidal_eval', { channel: 'd3', pattern: 'sound "arpy*2"' });
        await heard('bd', { since });
        await heard('arpy', { since });
        const from = h.notes.length;
        const r = await h.ok('tidal_hush');
        assert.match(r.text, /Hushed/);
        // two cycles at 2 cps
        await silentFor(() => true, 1000);
        const states = h.events('channel_state', from);
        assert.deepEqual(states.map((s) => s.channel).sort(), ['d1', 'd3']);
        for (const s of states) {
            assert.equal(s.state.pattern, null);
        }
        const st = await h.ok('tidal_get_state');
        assert.deepEqual(st.structuredContent.channels, {});
    });

    test('mute, solo and silence act on the OSC stream as in Tidal', T, async () => {
        let since = Date.now();
        await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2"' });
        await h.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh*2"' });
        await heard('bd', { since });
        await heard('hh', { since });

        let r = await h.ok('tidal_mute', { channel: 'd1' });
        assert.deepEqual(r.structuredContent.state, { pattern: 'sound "bd*2"', muted: true, soloed: false });
        await silentFor((e) => e.s === 'bd', 1000);
        since = Date.now();
        await h.ok('tidal_unmute', { channel: 'd1' });
        await heard('bd', { since });

        await h.ok('tidal_solo', { channel: 'd2' });
        await silentFor((e) => e.s === 'bd', 1000);
        assert.ok(h.dirt.after(Date.now() - 1000).some((e) => e.s === 'hh'), 'the soloed channel plays on');
        since = Date.now();
        r = await h.ok('tidal_unsolo', { channel: 'd2' });
        assert.equal(r.structuredContent.state.soloed, false);
        await heard('bd', { since });

        await h.ok('tidal_silence', { channel: 'd1' });
        await silentFor((e) => e.s === 'bd', 1000);
        assert.ok(h.dirt.after(Date.now() - 1000).some((e) => e.s === 'hh'), 'd2 is not silenced');
        await h.ok('tidal_hush');
    });

    test('hush keeps mute as Tidal does: a muted channel stays muted with a new pattern', T, async () => {
        await h.ok('tidal_eval', { channel: 'd6', pattern: 'sound "cp*2"' });
        await h.ok('tidal_mute', { channel: 'd6' });
        await h.ok('tidal_hush');
        let st = await h.ok('tidal_get_state');
        assert.deepEqual(st.structuredContent.channels.d6, { pattern: 'silence', muted: true, soloed: false });
        const r = await h.ok('tidal_eval', { channel: 'd6', pattern: 'sound "cp*2"' });
        assert.match(r.text, /\(muted\)/);
        await silentFor((e) => e.s === 'cp', 1000);
        const since = Date.now();
        await h.ok('tidal_unmute', { channel: 'd6' });
        await heard('cp', { since });
        await h.ok('tidal_hush');
        st = await h.ok('tidal_get_state');
        assert.deepEqual(st.structuredContent.channels, {});
    });

    test('tidal_set_tempo: bpm is cps * 240, heard in the events, announced as tempo_change', T, async () => {
        const from = h.notes.length;
        let r = await h.ok('tidal_set_tempo', { bpm: 360 });
        assert.deepEqual({ cps: r.structuredContent.cps, bpm: r.structuredContent.bpm }, { cps: 1.5, bpm: 360 });
        const ev = await h.waitNote((n) => n.method === 'notifications/tidal/tempo_change', { from });
        assert.deepEqual([ev.params.cps, ev.params.bpm], [1.5, 360]);
        const since = Date.now();
        await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' });
        const e = await h.dirt.waitFor((x) => x.s === 'bd' && x.cps === 1.5, { since, what: 'bd at 1.5 cps' });
        assert.equal(e.cps, 1.5);
        const st = await h.ok('tidal_get_state');
        assert.deepEqual(st.structuredContent.tempo, { cps: 1.5, bpm: 360 });
        r = await h.ok('tidal_set_tempo', { cps: 2 });
        assert.equal(r.structuredContent.bpm, 480);
        await h.ok('tidal_hush');
    });

    test('tidal_get_state and tidal_get_history tell what plays and who did what, errors included', T, async () => {
        await h.ok('tidal_eval', { channel: 'd4', pattern: 'sound "sn:3"' });
        await h.ok('tidal_mute', { channel: 'd4' });
        await h.call('tidal_eval', { channel: 'd5', pattern: 'sound nope' });
        const st = await h.ok('tidal_get_state');
        assert.deepEqual(st.structuredContent.channels.d4, { pattern: 'sound "sn:3"', muted: true, soloed: false });
        assert.equal(st.structuredContent.channels.d5, undefined, 'a failed eval changes nothing');
        assert.equal(st.structuredContent.ghci, 'running');
        assert.ok(st.structuredContent.seq >= 1);
        assert.deepEqual(JSON.parse(st.text), st.structuredContent);

        const hist = await h.ok('tidal_get_history', { limit: 3 });
        const entries = hist.structuredContent.history;
        assert.equal(entries.length, 3);
        assert.deepEqual(entries.map((e) => e.type), ['pattern_eval', 'channel_state', 'pattern_eval']);
        assert.equal(entries[0].pattern, 'sound "sn:3"');
        assert.equal(entries[2].ok, false);
        assert.match(entries[2].error, /Variable not in scope: nope/);
        assert.equal(entries[2].who, who);
        assert.ok(entries[0].seq < entries[1].seq && entries[1].seq < entries[2].seq);

        const res = await h.client.readResource({ uri: 'tidal://channel/d4' });
        assert.deepEqual(JSON.parse(res.contents[0].text), { pattern: 'sound "sn:3"', muted: true, soloed: false });
        await h.ok('tidal_unmute', { channel: 'd4' });
        await h.ok('tidal_hush');
    });

    test('wrong arguments: isError naming the argument, nothing evaluated', T, async () => {
        const cases = [
            ['tidal_eval', { channel: 'd17', pattern: 'silence' }, /"channel": "d17" is not one of d1 \.\. d16/],
            ['tidal_eval', { channel: 1, pattern: 'silence' }, /"channel"/],
            ['tidal_eval', { pattern: 'silence' }, /"channel": required/],
            ['tidal_eval', { channel: 'd1' }, /"pattern"/],
            ['tidal_eval', { channel: 'd1', pattern: 42 }, /"pattern"/],
            ['tidal_eval', { channel: 'd1', pattern: 'silence', chanel: 'd2' }, /Unknown argument "chanel"/],
            ['tidal_eval', { channel: 'd1', pattern: 'x'.repeat(65537) }, /longer than 65536 bytes/],
            ['tidal_silence', {}, /"channel": required/],
            ['tidal_mute', { channel: 'D1' }, /"channel"/],
            ['tidal_set_tempo', {}, /"cps".*"bpm".*required/],
            ['tidal_set_tempo', { cps: 1, bpm: 240 }, /not both/],
            ['tidal_set_tempo', { cps: -1 }, /"cps": a number greater than 0/],
            ['tidal_set_tempo', { cps: 'fast' }, /"cps"/],
            ['tidal_set_tempo', { bpm: 0 }, /"bpm"/],
            ['tidal_get_history', { limit: 0 }, /"limit"/],
            ['tidal_get_history', { limit: 'all' }, /"limit"/],
            ['tidal_get_history', { limit: 3, since: 1 }, /Unknown argument "since"/],
            ['tidal_get_state', { x: 1 }, /Unknown argument "x"/],
            ['tidal_hush', { now: true }, /Unknown argument "now"/],
        ];
        const before = (await h.ok('tidal_get_state')).structuredContent;
        for (const [tool, args, re] of cases) {
            const r = await h.call(tool, args);
            assert.equal(r.isError, true, `${tool} ${JSON.stringify(args).slice(0, 80)}`);
            assert.match(r.text, re, `${tool} ${JSON.stringify(args).slice(0, 80)}`);
        }
        const now = (await h.ok('tidal_get_state')).structuredContent;
        assert.deepEqual(now.channels, before.channels);
        assert.deepEqual(now.tempo, before.tempo);
    });

    // one table checks every call, so stdio (t/301) and nginx (t/401)
    // refuse with the same words
    test('unknown arguments are refused word for word alike, the read-only tools included', T, async () => {
        const cases = [
            ['tidal_get_history', { limit: 3, since: 1 }, 'Unknown argument "since"'],
            ['tidal_get_history', { limit: 0 }, 'Invalid argument "limit": an integer from 1 to 1000'],
            ['tidal_get_state', { verbose: true }, 'Unknown argument "verbose"'],
            ['tidal_silence', { chanel: 'd1' }, 'Unknown argument "chanel"'],
            ['tidal_mute', { channel: 'd0' }, 'Invalid argument "channel": "d0" is not one of d1 .. d16'],
            ['tidal_set_tempo', { cps: 1, bpm: 240 }, 'Invalid arguments: give "cps" or "bpm", not both'],
        ];
        for (const [tool, args, text] of cases) {
            const r = await h.call(tool, args);
            assert.equal(r.isError, true, `${tool} ${JSON.stringify(args)}`);
            assert.equal(r.text, text, `${tool} ${JSON.stringify(args)}`);
            assert.equal(r.structuredContent, undefined);
        }
    });
}
