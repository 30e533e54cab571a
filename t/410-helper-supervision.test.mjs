// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// nginx supervises the GHCi helper: exactly one per nginx whatever the
// number of workers, running as the worker user with an explicit
// environment behind a 0600 socket; back within 2 s after SIGKILL with
// the room's patterns and tempo; untouched by reloads that keep its
// settings (the music plays on), restarted by a reload that changes them;
// gone with nginx, whether nginx stops or its master is killed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Room, helperPids, ghciPids } from './lib/room.mjs';
import { BOOT_FILE, alive } from './lib/helper.mjs';
import { waitFor, SLOW } from './lib/nginx.mjs';

const T = { timeout: 180000 * SLOW };


function uidOf(pid) {
    const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}

function environOf(pid) {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).sort();
}

function aliveHelpers(room) {
    return helperPids(room.log).filter(alive);
}

// the largest gap, in ms, between consecutive timetags of events with s
function largestGap(events, s) {
    const tags = events.filter((e) => e.s === s).map((e) => e.timetag).sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < tags.length; i++) {
        gap = Math.max(gap, tags[i] - tags[i - 1]);
    }
    return { gap, n: tags.length };
}


test('one helper for four workers, as the worker user, with an explicit environment, behind a 0600 socket', T, async () => {
    const room = await Room.start({ workers: 4 });
    try {
        const helpers = aliveHelpers(room);
        assert.equal(helpers.length, 1, `helpers running: ${helpers.join(' ')}`);
        const [pid] = helpers;
        const workers = room.ngx.workerPids();
        assert.equal(workers.length, 4);
        assert.equal(uidOf(pid), uidOf(workers[0]), 'the helper runs as the workers do');
        assert.notEqual(uidOf(pid), 0, 'not as root');
        assert.equal(uidOf(room.ghciPid()), uidOf(pid));

        const env = environOf(pid);
        assert.deepEqual(env.map((v) => v.split('=')[0]), ['HOME', 'LANG', 'PATH']);
        assert.ok(env.includes('LANG=C.UTF-8'));
        const ghci = fs.readFileSync(`/proc/${room.ghciPid()}/cmdline`, 'utf8').split('\0');
        assert.ok(ghci.includes('-M2g'), `the default heap cap: ${ghci.join(' ')}`);

        const sock = room.ngx.file('tidal/helper.sock');
        const st = fs.statSync(sock);
        assert.ok(st.isSocket());
        assert.equal(st.mode & 0o777, 0o600);
        assert.equal(st.uid, uidOf(pid));
        const dir = fs.statSync(room.ngx.file('tidal'));
        assert.equal(dir.mode & 0o777, 0o700);

        // every worker reaches it: one call per worker answers from GHCi
        const clients = [];
        for (let i = 0; i < 8; i++) {
            clients.push(await room.client2(`c${i}`));
        }
        for (const c of clients) {
            const r = await room.call('tidal_get_state', {}, { client: c });
            assert.equal(r.structuredContent.ghci, 'running');
        }
    } finally {
        await room.stop();
    }
});

test('tidal_helper_socket, tidal_boot and tidal_ghci_memory reach the helper and GHCi', T, async () => {
    const dir = fs.mkdtempSync('/tmp/tidal-boot-');
    fs.chmodSync(dir, 0o755);
    const boot = path.join(dir, 'MyBoot.hs');
    fs.copyFileSync(BOOT_FILE, boot);
    fs.chmodSync(boot, 0o644);
    const room = await Room.start({
        helper: `tidal_helper_socket run/h.sock; tidal_boot ${boot}; tidal_ghci_memory 1g;`,
    });
    try {
        const [pid] = aliveHelpers(room);
        const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        assert.equal(args[args.indexOf('--socket') + 1], room.ngx.file('run/h.sock'));
        assert.equal(args[args.indexOf('--boot') + 1], boot);
        assert.ok(fs.statSync(room.ngx.file('run/h.sock')).isSocket());
        const ghci = fs.readFileSync(`/proc/${room.ghciPid()}/cmdline`, 'utf8').split('\0');
        assert.ok(ghci.includes('-M1g'), `GHCi's heap cap: ${ghci.join(' ')}`);
        const since = Date.now();
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' });
        await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival >= since, { what: 'bd from MyBoot.hs' });
    } finally {
        await room.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('after nginx -s reopen the helper writes to the new error log, as nginx does', T, async () => {
    const room = await Room.start();
    const log = room.ngx.file('error.log');
    try {
        const ghci = room.ghciPid();
        fs.renameSync(log, `${log}.1`);
        process.kill(room.ngx.masterPid, 'SIGUSR1');
        await waitFor(() => fs.existsSync(log), { what: 'nginx to open a new error.log' });

        // a restart is something the helper logs
        process.kill(ghci, 'SIGKILL');
        const fresh = await waitFor(() => ghciPids(room.log).find((p) => p !== ghci),
            { timeout: 30000, what: 'the helper to log the new GHCi in the new error.log' });
        assert.notEqual(fresh, ghci);
        assert.ok(!ghciPids(fs.readFileSync(`${log}.1`, 'utf8')).includes(fresh),
            'not in the rotated file');
    } finally {
        // the rotated file names the first helper and GHCi: they must go too
        const before = fs.existsSync(`${log}.1`) ? fs.readFileSync(`${log}.1`, 'utf8') : '';
        const pids = [...helperPids(before), ...ghciPids(before)];
        await room.stop();
        await waitFor(() => pids.every((p) => !alive(p)), { timeout: 10000, what: 'the first helper to exit' });
    }
});

test('the helper killed with SIGKILL is back within 2 s, replays the room, and says so; its GHCi goes too', T, async () => {
    const room = await Room.start();
    try {
        await room.ok('tidal_set_tempo', { cps: 1.5 });
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*4"' });
        await room.dirt.waitFor((e) => e.s === 'bd', { what: 'd1 before' });
        const [old] = aliveHelpers(room);
        const oldGhci = room.ghciPid();
        const from = room.notes.length;

        const killed = Date.now();
        process.kill(old, 'SIGKILL');
        const fresh = await waitFor(() => aliveHelpers(room).find((p) => p !== old),
            { timeout: 5000, interval: 10, what: 'a new helper' });
        const back = Date.now() - killed;
        assert.ok(back <= 2000 * SLOW, `a new helper after ${back} ms`);
        assert.notEqual(fresh, old);
        await waitFor(() => !alive(oldGhci), { timeout: 10000, what: 'the old GHCi to exit' });

        const since = Date.now();
        const bd = await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival >= since,
            { timeoutMs: 20000, what: 'd1 again' });
        assert.equal(bd.cps, 1.5, 'the tempo came back');
        const note = await room.waitNote((n) => n.method === 'notifications/tidal/ghci_restarted',
            { from, timeout: 20000 });
        assert.match(note.params.reason, /started anew/);
        assert.equal(aliveHelpers(room).length, 1);

        const st = await room.ok('tidal_get_state');
        assert.equal(st.structuredContent.channels.d1.pattern, 'sound "bd*4"');
        assert.equal(st.structuredContent.ghci, 'running');
        room.ngx.expectLogLines(/lost the helper/);
    } finally {
        await room.stop();
    }
});

test('bd*8 at 1 cps plays through three reloads with no gap over one cycle; the helper stays', T, async () => {
    const room = await Room.start({ workers: 2 });
    try {
        await room.ok('tidal_set_tempo', { cps: 1 });
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*8"' });
        const start = Date.now();
        await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival >= start, { what: 'bd*8' });
        const [helper] = aliveHelpers(room);
        const ghci = room.ghciPid();

        const old = [];
        old.push(...(await room.reload()).oldPids);
        // a tidal_* directive that is not the helper's
        old.push(...(await room.reload({ location: 'tidal_metrics_interval 5s;' })).oldPids);
        old.push(...(await room.reload()).oldPids);

        // a listener joins the new workers and finds the room as it was
        const c = await room.clientAfterReload('after-reloads', old);
        const st = await room.call('tidal_get_state', {}, { client: c });
        assert.equal(st.structuredContent.channels.d1.pattern, 'sound "bd*8"');
        const end = Date.now();
        await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival >= end + 1000, { what: 'bd*8 after' });

        const { gap, n } = largestGap(room.dirt.events.filter((e) => e.arrival >= start), 'bd');
        assert.ok(n >= 8, `${n} events`);
        assert.ok(gap <= 1000, `a gap of ${gap} ms between timetags`);
        assert.deepEqual(aliveHelpers(room), [helper], 'the same helper');
        assert.equal(room.ghciPid(), ghci, 'the same GHCi');
    } finally {
        await room.stop();
    }
});

test('a reload that changes a helper setting restarts the helper with it and replays the room', T, async () => {
    const room = await Room.start();
    try {
        await room.ok('tidal_eval', { channel: 'd2', pattern: 'sound "hh*4"' });
        const [old] = aliveHelpers(room);

        const { oldPids } = await room.reload({ helper: 'tidal_eval_timeout 3s;' });
        const fresh = await waitFor(() => aliveHelpers(room).find((p) => p !== old),
            { timeout: 15000, what: 'the helper restarted with the new setting' });
        await waitFor(() => !alive(old), { timeout: 10000, what: 'the old helper to exit' });
        const args = fs.readFileSync(`/proc/${fresh}/cmdline`, 'utf8').split('\0');
        assert.equal(args[args.indexOf('--eval-timeout') + 1], '3000');
        assert.match(room.log, /other helper settings/);

        const since = Date.now();
        await room.dirt.waitFor((e) => e.s === 'hh' && e.arrival >= since,
            { timeoutMs: 20000, what: 'd2 replayed by the new helper' });
        const c = await room.clientAfterReload('after', oldPids);
        await waitFor(async () => (await room.call('tidal_get_state', {}, { client: c }))
            .structuredContent.ghci === 'running', { timeout: 30000, what: 'GHCi running' });
        room.ngx.expectLogLines(/lost the helper/);
    } finally {
        await room.stop();
    }
});

test('the helper and GHCi leave with nginx: on stop, on quit, and when the master is killed', T, async () => {
    let room = await Room.start();
    let pids = [...helperPids(room.log), ...ghciPids(room.log)].filter(alive);
    assert.ok(pids.length >= 3, `the helper, its player and its checker: ${pids}`);
    await room.stop();
    assert.deepEqual(pids.filter(alive), []);

    // nginx -s quit: graceful, the workers finish first
    room = await Room.start();
    pids = [...helperPids(room.log), ...ghciPids(room.log)].filter(alive);
    for (const c of room.clients) {
        await c.close();
    }
    room.clients = [];
    try {
        await room.ngx.quit();
        await waitFor(() => pids.every((p) => !alive(p)),
            { timeout: 10000, what: `the helper and GHCi to exit after quit (${pids.join(' ')})` });
    } finally {
        room.dirt.close();
    }

    room = await Room.start();
    try {
        pids = [...helperPids(room.log), ...ghciPids(room.log)].filter(alive);
        const workers = room.ngx.workerPids();
        process.kill(room.ngx.masterPid, 'SIGKILL');
        for (const w of workers) {
            try {
                process.kill(w, 'SIGKILL');
            } catch {
                // gone
            }
        }
        await waitFor(() => pids.every((p) => !alive(p)),
            { timeout: 10000, what: `the helper and GHCi to exit after the master (${pids.join(' ')})` });
    } finally {
        room.ngx._killAll();
        room.dirt.close();
    }
});
