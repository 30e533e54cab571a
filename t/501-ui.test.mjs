// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The room's web page (ui/) in Debian's chromium, driven by playwright-core,
// served by the room's own nginx next to /mcp: two performer pages, a
// listener page and an SDK client in one room with GHCi and a UDP listener.
// Runs once, in `make browser` (TIDAL_BROWSER=1), not per nginx version.
// Screenshots go to the test's temp dir (printed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Room } from './lib/room.mjs';
import { waitFor, SLOW } from './lib/nginx.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const UI_DIR = process.env.TIDAL_UI_DIR || path.join(here, '..', 'ui', 'dist');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

const skip = process.env.TIDAL_BROWSER !== '1'
    ? 'browser tests run once, in `make browser` (TIDAL_BROWSER=1)'
    : !fs.existsSync(path.join(UI_DIR, 'index.html')) ? `no built page in ${UI_DIR} (make ui)`
        : !fs.existsSync(CHROMIUM) ? `no ${CHROMIUM} (make browser-deps)` : false;

const T = { timeout: 300000 * SLOW, skip };

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'];

// the page at / and /listen/ (whose /listen/mcp gives the listener role)
const TYPES = `types {
                text/html html;
                text/css css;
                text/javascript js;
                application/json json map;
            }`;

const SERVER = `
        location / {
            ${TYPES}
            root ${UI_DIR};
            index index.html;
        }

        location /listen/ {
            ${TYPES}
            alias ${UI_DIR}/;
            index index.html;
        }

        location = /listen/mcp {
            tidal_mcp;
            tidal_role listener;
        }

        location = /publish {
            tidal_publish;
        }`;

const OUT = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-ui-'));

async function launch() {
    const { chromium } = await import('playwright-core');
    const userData = fs.mkdtempSync(path.join(OUT, 'profile-'));
    // a fresh profile: launchPersistentContext takes the directory
    return chromium.launchPersistentContext(userData, {
        executablePath: CHROMIUM, headless: true, args: ARGS,
        viewport: { width: 1280, height: 800 },
    });
}

async function openPage(ctx, url, errors) {
    const page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(`${url}: ${e.message}`));
    page.on('console', (m) => {
        if (m.type() === 'error') {
            errors.push(`${url}: console: ${m.text()}`);
        }
    });
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    await page.goto(url);
    try {
        await page.waitForFunction(() => window.tidalUI?.client.state === 'open', null, { timeout: 30000 });
    } catch (e) {
        const status = await page.evaluate(() => JSON.stringify(window.tidalUI?.statuses ?? 'no tidalUI'));
        throw new Error(`${url} did not connect: ${e.message}\nstatuses ${status}\n${[...errors, ...logs].join('\n')}`);
    }
    return page;
}

// select the whole d1 editor of a page and type text there
async function typeInto(page, channel, text) {
    await page.click(`#ch-${channel} .cm-content`);
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText(text);
}

const editorText = (page, channel) => page.$eval(`#ch-${channel} .cm-content`,
    (e) => e.cmView?.view?.state.doc.toString() ?? e.innerText);

async function shoot(page, name) {
    const file = path.join(OUT, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`# screenshot: ${file}`);
    if (process.env.TIDAL_UI_SCREENSHOT_DIR) {
        fs.copyFileSync(file, path.join(process.env.TIDAL_UI_SCREENSHOT_DIR, `${name}.png`));
    }
    return file;
}

const seqsOf = (page) => page.evaluate(() => window.tidalUI.events
    .filter((e) => Number.isInteger(e.seq) && e.type !== 'metrics' && e.type !== 'session_restore')
    .map((e) => e.seq));

function contiguous(seqs) {
    for (let i = 1; i < seqs.length; i++) {
        if (seqs[i] !== seqs[i - 1] + 1) {
            return `gap or repeat between ${seqs[i - 1]} and ${seqs[i]}`;
        }
    }
    return null;
}


test('two pages, a listener page and an SDK client play one room', T, async () => {
    const room = await Room.start({ name: 'sdk', server: SERVER, workers: 2 });
    const errors = [];
    const ctx = await launch();
    try {
        const base = `http://127.0.0.1:${room.ngx.port}`;
        const a = await openPage(ctx, `${base}/?name=alice`, errors);
        const b = await openPage(ctx, `${base}/?name=bob`, errors);
        const l = await openPage(ctx, `${base}/listen/?name=lee`, errors);
        assert.equal(await a.evaluate(() => window.tidalUI.role), 'performer');
        assert.equal(await l.evaluate(() => window.tidalUI.role), 'listener');

        // B's room panel lists A and the listener (tidal_who), with their roles
        await b.waitForFunction(() => document.querySelector('#people li.member[data-who="alice"]')
            && document.querySelector('#people li.member[data-who="lee"]'), null, { timeout: 15000 * SLOW });
        assert.equal(await b.getAttribute('#people li.member[data-who="alice"]', 'data-role'), 'performer');
        assert.equal(await b.getAttribute('#people li.member[data-who="lee"]', 'data-role'), 'listener');
        assert.equal(await b.getAttribute('#people li.member[data-who="lee"]', 'data-connected'), 'true');
        assert.match(await b.textContent('#people li.member[data-who="lee"]'), /lee · listener/);
        assert.match(await b.textContent('#people li.me'), /^bob \(you\) · performer/);

        // typing in page A and Ctrl-Enter: heard, and seen in B and by the SDK client
        const from = room.notes.length;
        const since = Date.now();
        await typeInto(a, 'd1', 'sound "bd*2 arpy"');
        await a.keyboard.press('Control+Enter');
        await a.waitForSelector('#ch-d1 .cm-flash', { timeout: 2000 });
        await room.dirt.waitFor((e) => e.s === 'arpy', { since, timeoutMs: 20000 * SLOW, what: 'arpy from page A' });
        const upd = await room.waitNote((n) => n.method === 'notifications/tidal/pattern_update'
            && n.params.channel === 'd1', { from, what: 'pattern_update at the SDK client' });
        assert.equal(upd.params.who, 'alice');
        assert.equal(upd.params.pattern, 'sound "bd*2 arpy"');
        for (const p of [b, l]) {
            await p.waitForFunction(() => document.querySelector('#ch-d1 .last')?.dataset.who === 'alice');
            assert.equal(await editorText(p, 'd1'), 'sound "bd*2 arpy"');
            assert.match(await p.textContent('#ch-d1 .state'), /playing/);
        }

        // a mistake: inline at its line and column in A; the old pattern plays on
        await typeInto(a, 'd1', 'sound "bd*2 arpy"\n  # speed "1"\n  # nosuchparam 3');
        await a.keyboard.press('Control+Enter');
        await a.waitForSelector('#ch-d1 .cm-lintRange-error', { timeout: 30000 * SLOW });
        const err = await a.getAttribute('#ch-d1', 'data-error');
        assert.match(err, /nosuchparam/);
        const marked = await a.$eval('#ch-d1 .cm-lintRange-error', (e) => e.closest('.cm-line').textContent);
        assert.match(marked, /nosuchparam/, `the error is marked on its line (${err})`);
        assert.match(await a.textContent('#ch-d1 .result'), /^line 3, column 5: .*nosuchparam/s);
        const st = await room.ok('tidal_get_state');
        assert.equal(st.structuredContent.channels.d1.pattern, 'sound "bd*2 arpy"');
        const after = Date.now();
        await room.dirt.waitFor((e) => e.s === 'arpy', { since: after, what: 'the old pattern still playing' });
        await shoot(a, 'page-a-error');

        // the listener: read-only editors, disabled buttons, no eval
        assert.equal(await l.getAttribute('#ch-d1 .cm-content', 'contenteditable'), 'false');
        for (const sel of ['#hush', '#tempo-set', '#ch-d1 [data-tool=tidal_mute]', '#chat-text']) {
            assert.equal(await l.isDisabled(sel), true, `${sel} disabled for a listener`);
        }
        const beforeL = await editorText(l, 'd1');
        await l.click('#ch-d1 .cm-content');
        await l.keyboard.type('xyz');
        await l.keyboard.press('Control+Enter');
        assert.equal(await editorText(l, 'd1'), beforeL, 'a listener cannot edit');
        const refused = await l.evaluate(() => window.tidalUI.client
            .call('tidal_eval', { channel: 'd1', pattern: 'silence' }).then(() => 'ok', (e) => `${e.code} ${e.message}`));
        assert.match(refused, /-32602.*role/);

        // the room live in B: tempo, chat, mute from A
        await a.fill('#cps', '0.75');
        await a.click('#tempo-set');
        await b.waitForFunction(() => document.querySelector('#bpm').textContent.startsWith('180'));
        await a.fill('#chat-text', 'hello from alice');
        await a.press('#chat-text', 'Enter');
        await b.waitForFunction(() => document.querySelector('#chat').textContent.includes('hello from alice'));
        await a.click('#ch-d1 [data-tool=tidal_mute]');
        await b.waitForFunction(() => document.querySelector('#ch-d1').classList.contains('muted'));
        await a.click('#ch-d1 [data-tool=tidal_mute]');
        await b.waitForFunction(() => !document.querySelector('#ch-d1').classList.contains('muted'));
        await b.waitForFunction(() => window.tidalUI.events.some((e) => e.type === 'metrics'), null, { timeout: 10000 });
        await b.waitForFunction(() => document.querySelector('#history').children.length > 2);

        // nginx -s reload: B resumes and misses nothing, also what was
        // published while it was away
        const seqBefore = await seqsOf(b);
        const { oldPids } = await room.reload();
        const published = [];
        for (let i = 0; i < 3; i++) {
            const r = await fetch(`${base}/publish`, { method: 'POST', body: JSON.stringify({ i }) });
            published.push((await r.json()).seq);
        }
        const sdk = await room.clientAfterReload('sdk2', oldPids);
        await room.call('tidal_say', { text: 'after the reload' }, { client: sdk });
        await b.waitForFunction(() => document.querySelector('#chat').textContent.includes('after the reload'),
            null, { timeout: 60000 * SLOW });
        const statuses = await b.evaluate(() => window.tidalUI.statuses);
        const reopened = statuses.filter((s) => s.state === 'open');
        assert.ok(reopened.length >= 2, 'B reconnected');
        assert.equal(reopened[reopened.length - 1].resumed, true, 'B resumed its session');
        const seqAfter = await seqsOf(b);
        assert.equal(contiguous(seqAfter), null, `B's events are each once, in order: ${seqAfter.join(' ')}`);
        assert.ok(seqAfter.length > seqBefore.length);
        for (const s of published) {
            assert.ok(seqAfter.includes(s), `B got event ${s}, published during the reload`);
        }
        assert.equal(await b.evaluate(() => window.tidalUI.client.state), 'open');

        await shoot(a, 'page-a');
        await shoot(b, 'page-b');
        await shoot(l, 'page-listener');
        assert.deepEqual(errors.filter((e) => !/WebSocket|ERR_CONNECTION|503|Failed to load resource/.test(e)), []);
    } finally {
        await ctx.close().catch(() => {});
        await room.stop();
    }
});


// The browser's player, fed with sound events of the form the room sends
// (notifications/tidal/sound), without the server's part: one voice per
// event at the event's time, and the output is not silent.
test('the page plays sound events at their time and is heard', T, async () => {
    const room = await Room.start({ name: 'sdk', server: SERVER, workers: 1 });
    const ctx = await launch();
    try {
        const page = await openPage(ctx, `http://127.0.0.1:${room.ngx.port}/?name=ears&sound=0`, []);
        await page.click('#listen');
        await page.waitForFunction(() => window.tidalUI.player.running);
        const r = await page.evaluate(async () => {
            const ui = window.tidalUI;
            const now = Date.now() / 1000 + ui.clock.offset / 1000;
            const names = ['bd', 'sn', 'hh', 'cp', 'arpy', 'nosuchsound'];
            const events = [];
            for (let i = 0; i < 24; i++) {
                events.push({ time: now + 0.3 + i * 0.05, channel: `d${1 + (i % 2)}`,
                    params: { s: names[i % names.length], n: i % 3, gain: 1, speed: 1, pan: 0.5, cutoff: 8000 } });
            }
            const first = ui.player.voices.length;
            ui.onEvent({ type: 'sound', events });
            let peak = 0;
            const until = performance.now() + 2000;
            while (performance.now() < until) {
                peak = Math.max(peak, ui.player.level());
                await new Promise((res) => setTimeout(res, 20));
            }
            const voices = ui.player.voices.slice(first);
            return {
                peak, n: voices.length, kinds: voices.map((v) => v.kind),
                errors: voices.map((v) => 1000 * (v.start - v.currentTime) - (v.eventMs - v.offset - v.wall)),
                lanes: document.querySelector('#ch-d1 .lane').dataset.count,
            };
        });
        assert.equal(r.n, 24, 'one voice per sound event');
        assert.ok(r.kinds.includes('click'), 'an unknown name clicks');
        for (const e of r.errors) {
            assert.ok(Math.abs(e) <= 10, `scheduled within 10 ms of the event's time (${e.toFixed(3)} ms)`);
        }
        assert.ok(r.peak > 0.01, `the AnalyserNode hears something (peak ${r.peak})`);
        assert.equal(Number(r.lanes), 12, 'd1 showed its sound events');
    } finally {
        await ctx.close().catch(() => {});
        await room.stop();
    }
});


// The room's own sound stream and clock (issue 10, the server's part): runs
// when the server answers tidal/clock and sends notifications/tidal/sound.
test('the room\'s sound: clock offset, Listen, voices at the event time, not silent', T, async (t) => {
    const room = await Room.start({ name: 'sdk', server: SERVER, workers: 2 });
    const ctx = await launch();
    try {
        const page = await openPage(ctx, `http://127.0.0.1:${room.ngx.port}/?name=ears`, []);
        await page.waitForFunction(() => window.tidalUI.clock.supported !== null
            || window.tidalUI.clock.error, null, { timeout: 15000 });
        const clock = await page.evaluate(() => window.tidalUI.clock);
        if (!clock.supported) {
            t.skip(`the server has no tidal/clock yet (${clock.error ?? '-32601'}): the sound stream's server part is not there`);
            return;
        }
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4 hh*4"' });
        const got = await page.waitForFunction(() => window.tidalUI.sounds > 0, null, { timeout: 10000 })
            .then(() => true, () => false);
        if (!got) {
            t.skip('no notifications/tidal/sound within 10 s: the sound stream\'s server part is not there');
            return;
        }
        assert.ok(Math.abs(clock.offset) < 50, `offset to the room's clock on one machine: ${clock.offset} ms`);
        await page.click('#listen');
        await page.waitForFunction(() => window.tidalUI.player.running);
        const r = await page.evaluate(async () => {
            const ui = window.tidalUI;
            const first = ui.player.voices.length;
            const sounds = ui.sounds;
            let peak = 0;
            const until = performance.now() + 3000;
            while (performance.now() < until) {
                peak = Math.max(peak, ui.player.level());
                await new Promise((res) => setTimeout(res, 20));
            }
            const voices = ui.player.voices.slice(first);
            return {
                peak, n: voices.length, events: ui.sounds - sounds, late: ui.player.late,
                errors: voices.map((v) => 1000 * (v.start - v.currentTime) - (v.eventMs - v.offset - v.wall)),
            };
        });
        assert.ok(r.n > 0 && r.n >= r.events - 1, `one voice per sound event (${r.n} voices, ${r.events} events)`);
        const bad = r.errors.filter((e) => e < -0.001 || e > 10);
        assert.deepEqual(bad, [], 'each voice within 10 ms after the event\'s time');
        assert.ok(r.peak > 0.01, `the AnalyserNode hears the room (peak ${r.peak})`);
        console.log(`# browser scheduling: ${r.n} voices, offset ${clock.offset.toFixed(2)} ms (rtt ${clock.rtt.toFixed(2)}), `
            + `max error ${Math.max(...r.errors.map(Math.abs)).toFixed(3)} ms, ${r.late} late`);
    } finally {
        await ctx.close().catch(() => {});
        await room.stop();
    }
});


// A sample map in the strudel.json form, loaded from a URL: its names play
// the real samples (decoded by the browser) instead of the built-in kit.
test('a strudel.json sample map from a URL plays its samples', T, async () => {
    const dir = fs.mkdtempSync(path.join(OUT, 'samples-'));
    fs.writeFileSync(path.join(dir, 'kick.wav'), sineWav(110, 0.2));
    fs.writeFileSync(path.join(dir, 'strudel.json'),
                     JSON.stringify({ _base: './', bd: ['kick.wav'], tone: 'kick.wav' }));
    fs.chmodSync(OUT, 0o755);                   // nginx's workers read them
    fs.chmodSync(dir, 0o755);
    const room = await Room.start({
        name: 'sdk', workers: 1,
        server: `${SERVER}
        location /samples/ {
            ${TYPES}
            alias ${dir}/;
        }`,
    });
    const ctx = await launch();
    try {
        const page = await openPage(ctx, `http://127.0.0.1:${room.ngx.port}/?name=sampler&sound=0`, []);
        await page.click('#listen');
        await page.waitForFunction(() => window.tidalUI.player.running);
        await page.fill('#samples-url', `http://127.0.0.1:${room.ngx.port}/samples/strudel.json`);
        await page.click('#samples-load');
        await page.waitForFunction(() => window.tidalUI.player.samples.bd?.length === 1);
        const r = await page.evaluate(async () => {
            const ui = window.tidalUI;
            const play = () => {
                const now = Date.now() / 1000 + ui.clock.offset / 1000;
                ui.onEvent({ type: 'sound', events: [
                    { time: now + 0.2, channel: 'd1', params: { s: 'bd', gain: 1 } },
                    { time: now + 0.3, channel: 'd1', params: { s: 'sn', gain: 1 } },
                ] });
            };
            play();                                // fetches and decodes kick.wav
            const until = performance.now() + 5000;
            while (!ui.player.voices.some((v) => v.kind === 'sample') && performance.now() < until) {
                await new Promise((res) => setTimeout(res, 100));
                play();
            }
            return ui.player.voices.map((v) => `${v.s}:${v.kind}`);
        });
        assert.ok(r.includes('bd:sample'), `bd plays the map's sample: ${r.join(' ')}`);
        assert.ok(r.includes('sn:synth'), 'a name the map lacks keeps the built-in kit');
    } finally {
        await ctx.close().catch(() => {});
        await room.stop();
    }
});


// a mono 16-bit PCM WAV of a sine
function sineWav(freq, seconds, rate = 44100) {
    const n = Math.round(seconds * rate);
    const b = Buffer.alloc(44 + n * 2);
    b.write('RIFF', 0);
    b.writeUInt32LE(36 + n * 2, 4);
    b.write('WAVEfmt ', 8);
    b.writeUInt32LE(16, 16);
    b.writeUInt16LE(1, 20);
    b.writeUInt16LE(1, 22);
    b.writeUInt32LE(rate, 24);
    b.writeUInt32LE(rate * 2, 28);
    b.writeUInt16LE(2, 32);
    b.writeUInt16LE(16, 34);
    b.write('data', 36);
    b.writeUInt32LE(n * 2, 40);
    for (let i = 0; i < n; i++) {
        b.writeInt16LE(Math.round(12000 * Math.sin(2 * Math.PI * freq * i / rate)), 44 + i * 2);
    }
    return b;
}
