// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// bench/supervision.mjs: how long d1 goes silent when another channel's
// pattern fails, or the playing GHCi is killed or stopped from outside,
// for this tree's tidal-helper against the helper before issue 7's
// supervision (the peer), in one run on the same machine.
//
// Each trial starts a fresh `tidal-helper --stdio` (t/lib/helper.mjs)
// with its OSC going to a UDP listener (t/lib/osc.mjs), plays d1
// `sound "bd*8"` at 2 cps (an event every 62.5 ms), lets it play, then
// makes one thing happen (the classes below) and watches d1's events
// arrive until it has played steadily again for a while, or until the
// cap.  Trials alternate between the two helpers, so a drift in the
// machine's load weighs on both alike.
//
// Run from the repository's root (`make bench-supervision` builds both
// helpers first):
//     node bench/supervision.mjs [--trials 3] [--classes 1,2,3,4,5,6,7]
//         [--helpers new,peer] [--new PATH] [--peer PATH]
//         [--peer-commit 232bfc2] [--cap 60] [--watch 8] [--settle 3]
//         [--results bench/supervision.md] [--keep DIR]
// --keep writes each trial's OSC events and helper log to DIR as JSON.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const CPS = 2;
const PERIOD = 1000 / (8 * CPS);   // d1's bd*8: ms between two events
const HORIZON = 16;                // cycles the new helper checks a pattern for
const STEADY_GAP = 500;            // a gap longer than this is not steady play
const PRE_MS = 2000;               // undisturbed play measured before the event

const USAGE = `node bench/supervision.mjs [--trials 3] [--classes 1,2,3,4,5,6,7]
        [--helpers new,peer] [--new PATH] [--peer PATH] [--peer-commit REV]
        [--cap 60] [--watch 8] [--settle 3] [--results bench/supervision.md]
        [--keep DIR]`;

const opts = {
    trials: 3,
    classes: '1,2,3,4,5,6,7',
    helpers: 'new,peer',
    new: path.join(REPO, 'build/helper/tidal-helper'),
    peer: null,
    peerCommit: '232bfc2',
    cap: 60,
    watch: 8,
    settle: 3,
    results: path.join(REPO, 'bench/supervision.md'),
    keep: null,
};

const OPTION_NAMES = {
    '--trials': ['trials', Number], '--classes': ['classes', String],
    '--helpers': ['helpers', String], '--new': ['new', String],
    '--peer': ['peer', String], '--peer-commit': ['peerCommit', String],
    '--cap': ['cap', Number], '--watch': ['watch', Number],
    '--settle': ['settle', Number], '--results': ['results', String],
    '--keep': ['keep', String],
};

for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === '-h' || a === '--help') {
        console.log(USAGE);
        process.exit(0);
    }
    const o = OPTION_NAMES[a];
    if (!o || i + 1 >= process.argv.length) {
        console.error(`supervision: unknown option or missing value: ${a}\n${USAGE}`);
        process.exit(2);
    }
    opts[o[0]] = o[1](process.argv[++i]);
    if (typeof opts[o[0]] === 'number' && !(opts[o[0]] > 0)) {
        console.error(`supervision: ${a} wants a positive number`);
        process.exit(2);
    }
}
opts.peer = opts.peer
    || path.join(REPO, `build/bench/peer-${opts.peerCommit}/build/helper/tidal-helper`);

// the command as typed, or as the Makefile ran it
const COMMAND = process.env.BENCH_COMMAND
    || ['node', 'bench/supervision.mjs', ...process.argv.slice(2)]
        .map((a) => (/^[\w./=,:-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ');

function log(msg) {
    process.stderr.write(`${new Date().toTimeString().slice(0, 8)} supervision: ${msg}\n`);
}


// -- the two helpers ------------------------------------------------------------

// t/lib/helper.mjs reads TIDAL_HELPER_BIN once, when it is evaluated; a
// query string makes a module instance of its own, so each helper gets
// the test suite's Helper class unchanged, bound to its binary.
async function helperClass(bin) {
    process.env.TIDAL_HELPER_BIN = bin;
    const url = new URL(`../t/lib/helper.mjs?bin=${encodeURIComponent(bin)}`, import.meta.url);
    const { Helper } = await import(url.href);
    delete process.env.TIDAL_HELPER_BIN;
    return Helper;
}

// what differs between them: how each tells that it is up and which GHCi
// plays.  The new helper keeps a spare booted; a trial starts once it is.
const VERSIONS = {
    new: {
        label: 'new',
        ready: [/Tidal is ready/, /the spare booted/],
        player: (log) => lastNumber(log, /the player is GHCi pid (\d+)/g),
    },
    peer: {
        label: 'peer',
        ready: [/Tidal is ready/],
        player: (log) => lastNumber(log, /started GHCi \(pid (\d+)\)/g),
    },
};

// Each binary and its boot file (<tree>/build/helper/tidal-helper and
// <tree>/src/helper/BootTidal.hs) copied as they are when the run starts:
// others may rebuild the tree's helper meanwhile.
function snapshot(bin, dir) {
    const boot = path.resolve(path.dirname(bin), '../../src/helper/BootTidal.hs');
    for (const f of [bin, boot]) {
        if (!fs.existsSync(f)) {
            throw new Error(`${f} does not exist: make bench-supervision builds it`);
        }
    }
    fs.mkdirSync(dir);
    const copy = { bin: path.join(dir, 'tidal-helper'), boot: path.join(dir, 'BootTidal.hs') };
    fs.copyFileSync(bin, copy.bin);
    fs.chmodSync(copy.bin, 0o755);
    fs.copyFileSync(boot, copy.boot);
    copy.sha = crypto.createHash('sha256').update(fs.readFileSync(bin)).digest('hex').slice(0, 12);
    return copy;
}

function lastNumber(text, re) {
    const all = [...text.matchAll(re)];
    return all.length ? Number(all[all.length - 1][1]) : null;
}


// -- the classes -----------------------------------------------------------------

// kind: eval (d2's pattern fails while it is evaluated), play (it fails
// only from cycle C on, C beyond the new helper's 16-cycle check: both
// helpers play it), signal (to the playing GHCi).  target: d1's longest
// silence allowed by issue 7, in ms, or 'none' (no gap at all).
const CLASSES = {
    1: { name: 'eval-time loop that never allocates', kind: 'eval', target: 'none',
         args: ['--eval-timeout', '2000'],
         pattern: 'sound "bd" # n (fromIntegral (length (repeat 1)))' },
    2: { name: 'eval-time allocating loop', kind: 'eval', target: 'none',
         args: ['--eval-timeout', '2000'],
         pattern: 'sound "bd" # n (fromIntegral (length [1..]))' },
    3: { name: 'play-time loop that never allocates', kind: 'play', target: 3000,
         f: '# n (fromIntegral (length (repeat 1)))' },
    4: { name: 'play-time allocating loop', kind: 'play', target: 3000,
         f: '# n (fromIntegral (length [1..]))' },
    5: { name: 'play-time runtime error (head [])', kind: 'play', target: 3000,
         f: 'const (head [])' },
    6: { name: 'SIGKILL of the playing GHCi', kind: 'signal', target: 200, signal: 'SIGKILL' },
    7: { name: 'SIGSTOP of the playing GHCi', kind: 'signal', target: 3000, signal: 'SIGSTOP' },
};


// -- d1's sound --------------------------------------------------------------------

// d1's longest silence in [from, to]: the longest time between two of its
// events by arrival at the listener (the idea of longestGap in
// t/lib/supervision-tests.mjs, also saying where the gap lies).  open: d1
// was not heard again before `to`.
function silence(events, from, to) {
    const ts = events.filter((e) => e.s === 'bd' && e.arrival >= from && e.arrival <= to)
        .map((e) => e.arrival);
    let best = { ms: 0, start: from, end: from, open: false };
    let last = from;
    for (const t of ts) {
        if (t - last > best.ms) {
            best = { ms: t - last, start: last, end: t, open: false };
        }
        last = t;
    }
    if (to - last > best.ms) {
        best = { ms: to - last, start: last, end: to, open: true };
    }
    return best;
}

// the same by timetag: the silence SuperDirt would play, over the events
// meant for [from, to] (one sent twice across a switch counts once)
function audibleSilence(events, from, to) {
    const ts = [...new Set(events.filter((e) => e.s === 'bd' && e.timetag >= from
        && e.timetag <= to).map((e) => Math.round(e.timetag)))].sort((a, b) => a - b);
    let gap = 0;
    let last = from;
    for (const t of ts) {
        gap = Math.max(gap, t - last);
        last = t;
    }
    return Math.max(gap, to - last);
}

// d1's events that arrived after their timetag (SuperDirt plays them late),
// and those whose cycle went back from the one before (out of place)
function misplaced(events, from, to) {
    const bd = events.filter((e) => e.s === 'bd' && e.arrival >= from && e.arrival <= to);
    const late = bd.filter((e) => e.timetag && e.arrival > e.timetag);
    let back = 0;
    for (let i = 1; i < bd.length; i++) {
        back += bd[i].cycle < bd[i - 1].cycle ? 1 : 0;
    }
    return {
        late: late.length,
        worst: late.length ? Math.max(...late.map((e) => e.arrival - e.timetag)) : 0,
        back,
    };
}

function lastD1(dirt) {
    for (let i = dirt.events.length - 1; i >= 0; i--) {
        if (dirt.events[i].s === 'bd') {
            return dirt.events[i];
        }
    }
    return null;
}

// when d1 started playing without a gap longer than STEADY_GAP, up to now
function steadySince(dirt, now) {
    const bd = dirt.events.filter((e) => e.s === 'bd');
    if (!bd.length || now - bd[bd.length - 1].arrival > STEADY_GAP) {
        return null;
    }
    let since = bd[bd.length - 1].arrival;
    for (let i = bd.length - 1; i > 0 && bd[i].arrival - bd[i - 1].arrival <= STEADY_GAP; i--) {
        since = bd[i - 1].arrival;
    }
    return since;
}


// -- the machine -------------------------------------------------------------------

function cpuTimes() {       // [busy, total] jiffies over all CPUs
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return [total - idle, total];
}

const busyPercent = (a, b) => (b[1] > a[1] ? (100 * (b[0] - a[0])) / (b[1] - a[1]) : 0);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');

function run(cmd, args) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout || ''}${r.stderr || ''}`.trim();
}

function stoppedGhci(pid) {     // still there, still stopped, still a GHCi
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'T'
            && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('ghc');
    } catch {
        return false;
    }
}


// -- one trial ---------------------------------------------------------------------

async function trial({ Helper, boot }, version, cls, k) {
    const v = VERSIONS[version];
    const c = CLASSES[cls];
    const r = { version, cls, k, notes: [] };
    const stopped = [];
    const cpu0 = cpuTimes();
    r.load = loadavg();

    const t00 = Date.now();
    const h = await Helper.start({ args: ['--boot', boot, ...(c.args || [])],
                                   name: 'bench-supervision' });
    try {
        for (const re of v.ready) {
            await h.waitLog(re, { timeout: 120000 });
        }
        r.bootMs = Date.now() - t00;

        // d1 plays bd*8 at 2 cps, watched by the stall rule
        await h.ok('tidal_set_tempo', { cps: CPS });
        const since = Date.now();
        await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*8"' });
        await h.dirt.waitFor((e) => e.s === 'bd', { since, what: 'd1 playing', timeoutMs: 15000 });
        for (let i = 0; ; i++) {
            const st = (await h.ok('tidal_get_state')).structuredContent;
            if (st.scheduler && st.scheduler.heartbeat_age_ms !== null) {
                break;
            }
            if (i > 100) {
                throw new Error('the heartbeat is not watched after 10 s');
            }
            await sleep(100);
        }
        await sleep(PRE_MS);

        const player = v.player(h.log);
        const from = h.notes.length;
        let tEvent;
        let answered = null;
        let at = null;

        if (c.kind === 'eval') {
            tEvent = Date.now();
            const a = await h.call('tidal_eval', { channel: 'd2', pattern: c.pattern },
                { timeout: opts.cap * 1000 });
            answered = Date.now();
            r.answer = { isError: Boolean(a.isError), ms: answered - tEvent, text: a.text.slice(0, 200) };

        } else if (c.kind === 'play') {
            const e = lastD1(h.dirt);
            at = Math.ceil(e.cycle) + HORIZON + 2;
            const asked = Date.now();
            const a = await h.call('tidal_eval', {
                channel: 'd2', pattern: `whenT (>= ${at}) (${c.f}) $ sound "sn"` },
            { timeout: opts.cap * 1000 });
            r.answer = { isError: Boolean(a.isError), ms: Date.now() - asked, text: a.text.slice(0, 200) };
            if (a.isError) {
                r.notes.push(`d2's eval was refused although it fails only from cycle ${at}`);
            }
            // when d1's first event of cycle `at` would arrive: the moment
            // the scheduler first asks d2 for that cycle
            const last = lastD1(h.dirt);
            tEvent = last.arrival + ((at - last.cycle) / last.cps) * 1000;
            r.at = at;
            await sleep(Math.max(0, tEvent - Date.now()));

        } else {
            if (!player) {
                throw new Error('no playing GHCi pid in the log');
            }
            tEvent = Date.now();
            process.kill(player, c.signal);
            if (c.signal === 'SIGSTOP') {
                stopped.push(player);
            }
        }

        // watch until d1 has played steadily for --settle s, at least
        // --watch s after the event (or the answer), and, for a play-time
        // failure, past cycle `at` in whatever timeline plays now (a
        // restart that begins at cycle 0 meets d2 again if it replays
        // it); or until the cap
        const minEnd = Math.max(tEvent, answered || 0) + opts.watch * 1000;
        const capEnd = tEvent + opts.cap * 1000;
        let tEnd;
        for (;;) {
            const now = Date.now();
            const steady = steadySince(h.dirt, now);
            const e = lastD1(h.dirt);
            const passed = at === null || (e && e.cycle >= at + 1);
            if (now >= capEnd) {
                tEnd = capEnd;
                r.capped = true;
                break;
            }
            if (now >= minEnd && steady !== null && now - steady >= opts.settle * 1000 && passed) {
                tEnd = now;
                break;
            }
            await sleep(100);
        }

        r.pre = silence(h.dirt.events, tEvent - PRE_MS, tEvent - 100).ms;
        const s = silence(h.dirt.events, tEvent - 1000, tEnd);
        r.silence = s.ms;
        r.open = s.open;
        r.gapStart = s.start - tEvent;
        // Tidal sends about 0.1-0.15 s ahead: the events meant for the
        // same stretch of time
        r.audible = audibleSilence(h.dirt.events, tEvent - 500, tEnd - 500);
        r.misplaced = misplaced(h.dirt.events, tEvent - 1000, tEnd);
        r.watched = tEnd - tEvent;
        r.gaps = gapsOver(h.dirt.events, tEvent - 1000, tEnd, 2 * PERIOD - 10);
        r.grid = grid(h.dirt.events, s);
        if (opts.keep) {
            fs.writeFileSync(path.join(opts.keep, `${version}-${cls}-${k}.json`),
                JSON.stringify({ tEvent, tEnd, events: h.dirt.events, log: h.log }));
        }

        const errors = h.events('error', from);
        r.blamed = [...new Set(errors.filter((e) => e.channel).map((e) => e.channel))];
        r.restarts = h.events('ghci_restarted', from).length;
        r.playerChanged = v.player(h.log) !== player;

        // d1 kept: the state still says bd*8 and it was heard at the end
        try {
            const st = (await h.call('tidal_get_state', {}, { timeout: 10000 })).structuredContent;
            r.kept = st.channels?.d1?.pattern === 'sound "bd*8"' && !s.open;
            r.d2 = st.channels?.d2?.pattern ?? null;
        } catch (err) {
            r.kept = false;
            r.notes.push(`tidal_get_state: ${err.message}`);
        }
        r.named = c.kind === 'signal'
            ? r.blamed.length === 0
            : (c.kind === 'eval' ? r.answer.isError : true)
                && r.blamed.every((ch) => ch === 'd2')
                && (c.kind === 'eval' || r.blamed.includes('d2'));
    } catch (err) {
        r.failed = err.message.split('\n')[0];
        r.logTail = h.log.slice(-1500);
    } finally {
        for (const pid of stopped) {
            if (stoppedGhci(pid)) {
                process.kill(pid, 'SIGCONT');
            }
        }
        try {
            await h.stop();
        } catch (err) {
            r.notes.push(`stop: ${err.message.split('\n')[0]}`);
        }
        r.busy = busyPercent(cpu0, cpuTimes());
        r.log = h.log;
    }
    return r;
}

// each silence of d1 longer than ms: [start, length], from the event
function gapsOver(events, from, to, ms) {
    const ts = events.filter((e) => e.s === 'bd' && e.arrival >= from && e.arrival <= to)
        .map((e) => e.arrival);
    const out = [];
    const t0 = from + 1000;     // the event
    for (let i = 1; i < ts.length; i++) {
        if (ts[i] - ts[i - 1] > ms) {
            out.push([ts[i - 1] - t0, ts[i] - ts[i - 1]]);
        }
    }
    if (ts.length && to - ts[ts.length - 1] > ms) {
        out.push([ts[ts.length - 1] - t0, to - ts[ts.length - 1]]);
    }
    return out;
}


// Across the longest silence: how far the cycle jumped and how far d1's
// first event after it lies off the grid of the last one before it (the
// issue wants the cycles to go on rising, on the same grid within 10 ms)
function grid(events, s) {
    const bd = events.filter((e) => e.s === 'bd');
    const before = bd.filter((e) => e.arrival <= s.start).pop();
    const after = bd.find((e) => e.arrival >= s.end && e.arrival > s.start);
    if (s.open || !before || !after || !before.timetag || !after.timetag) {
        return null;
    }
    const predicted = before.timetag + ((after.cycle - before.cycle) / before.cps) * 1000;
    return { from: before.cycle, to: after.cycle, off: after.timetag - predicted };
}

// d1 heard again: the end of the first silence longer than noGap, from
// the event; 0 when it never stopped, null when it never came back
function heardAgain(r, noGap) {
    const g = r.gaps.find(([start, len]) => len > noGap && start + len > 0);
    if (!g) {
        return 0;
    }
    return r.open && g === r.gaps[r.gaps.length - 1] ? null : g[0] + g[1];
}


// -- the table ---------------------------------------------------------------------

const sec = (ms) => (ms / 1000).toFixed(ms < 1000 ? 3 : 2);

function median(xs) {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function summary(results, version, cls, noGap) {
    const rs = results.filter((r) => r.version === version && r.cls === cls && !r.failed);
    if (!rs.length) {
        return null;
    }
    const xs = rs.map((r) => r.silence);
    const backs = rs.map((r) => heardAgain(r, noGap));
    return {
        n: rs.length,
        failed: results.filter((r) => r.version === version && r.cls === cls && r.failed).length,
        median: median(xs),
        max: Math.max(...xs),
        // a trial whose d1 never came back says "at least"
        openMedian: rs.filter((r) => r.open).length * 2 >= rs.length,
        openMax: rs.some((r) => r.open && r.silence === Math.max(...xs)),
        never: rs.filter((r) => r.open).length,
        again: backs.every((b) => b !== null) ? median(backs) : null,
        kept: rs.filter((r) => r.kept).length,
        named: rs.filter((r) => r.named).length,
        restarts: rs.reduce((a, r) => a + r.restarts, 0),
        recurred: rs.filter((r) => r.gaps.filter(([, len]) => len > 1000).length > 1).length,
        pre: Math.max(...rs.map((r) => r.pre)),
        audible: Math.max(...rs.map((r) => r.audible)),
        late: rs.filter((r) => r.misplaced.late).length,
        lateWorst: Math.max(...rs.map((r) => r.misplaced.worst)),
        back: rs.filter((r) => r.misplaced.back).length,
    };
}

function cell(s) {
    if (!s) {
        return '—';
    }
    const ge = (open) => (open ? '≥ ' : '');
    return `${ge(s.openMedian)}${sec(s.median)} (${ge(s.openMax)}${sec(s.max)})`
        + `${s.failed ? `, ${s.failed} failed` : ''}`;
}

function tables(results, classes) {
    // "no gap": d1's longest silence after the event is within its longest
    // undisturbed gap before events in the new helper's trials, plus one
    // event period
    const pres = results.filter((r) => r.version === 'new' && !r.failed).map((r) => r.pre);
    const noGap = (pres.length ? Math.max(...pres) : 2 * PERIOD) + PERIOD;
    const main = [
        '| class | new: median (max) silence, s | peer: median (max), s | ratio new/peer (median) | target | target met (new, max) |',
        '|---|---:|---:|---:|---|---|',
    ];
    const more = [
        '| class (each cell: new / peer) | d1 heard again after, s (median) | longest silence by timetag, s (max) | trials with d1 events late at SuperDirt (worst, ms) | trials where d1\'s cycle went back | d1 kept its pattern | culprit named (eval: refused), no one else blamed | GHCi restarts | trials with a second silence > 1 s |',
        '|---|---:|---:|---:|---:|---|---|---:|---:|',
    ];
    for (const cls of classes) {
        const c = CLASSES[cls];
        const n = summary(results, 'new', cls, noGap);
        const p = summary(results, 'peer', cls, noGap);
        let ratio = '—';
        if (n && p && p.median > 0) {
            const pre = n.openMedian && !p.openMedian ? '≥ ' : (!n.openMedian && p.openMedian ? '≤ ' : '');
            ratio = n.openMedian && p.openMedian ? '—' : `${pre}${(n.median / p.median).toFixed(2)}`;
        }
        const limit = c.target === 'none' ? noGap : c.target;
        const target = c.target === 'none' ? `no gap (≤ ${sec(noGap)})` : `≤ ${sec(c.target)}`;
        const met = n ? (n.max <= limit && !n.never && !n.failed ? 'met' : '**missed**') : '—';
        main.push(`| ${cls}. ${c.name} | ${cell(n)} | ${cell(p)} | ${ratio} | ${target} | ${met} |`);
        const both = (f) => [n, p].map((s) => (s ? f(s) : '—')).join(' / ');
        more.push(`| ${cls} | ${both((s) => (s.never ? `never (${s.never}/${s.n})` : (s.again ? sec(s.again) : 'no gap')))} `
            + `| ${both((s) => sec(s.audible))} | ${both((s) => (s.late ? `${s.late} (${s.lateWorst.toFixed(0)})` : '0'))} `
            + `| ${both((s) => s.back)} | ${both((s) => `${s.kept}/${s.n}`)} | ${both((s) => `${s.named}/${s.n}`)} `
            + `| ${both((s) => s.restarts)} | ${both((s) => s.recurred)} |`);
    }
    return { main: main.join('\n'), more: more.join('\n'), noGap };
}

function trialLine(r, noGap) {
    const c = CLASSES[r.cls];
    if (r.failed) {
        return `- ${r.version} class ${r.cls} #${r.k}: FAILED: ${r.failed}`;
    }
    const ans = r.answer ? `; d2's eval answered in ${sec(r.answer.ms)} s, ${r.answer.isError ? 'isError' : 'ok'}`
        + `${r.answer.isError ? ` (${JSON.stringify(r.answer.text.slice(0, 120))})` : ''}` : '';
    return `- ${r.version} class ${r.cls} #${r.k}: silence ${sec(r.silence)} s${r.open ? ' (d1 never came back)' : ''}`
        + ` from ${sec(r.gapStart)} s after the event${heardAgain(r, noGap) ? `, heard again at ${sec(heardAgain(r, noGap))} s` : ''};`
        + ` by timetag ${sec(r.audible)} s; ${r.misplaced.late} d1 event(s) late${r.misplaced.late ? ` (worst ${r.misplaced.worst.toFixed(0)} ms)` : ''}, cycle went back ${r.misplaced.back} time(s);${r.grid && r.silence > noGap ? ` across it cycle ${r.grid.from} -> ${r.grid.to}, ${r.grid.off.toFixed(1)} ms off the grid;` : ''}`
        + ` silences > 1 s (start, length ms): ${JSON.stringify(r.gaps.filter(([, len]) => len > 1000).map((g) => g.map(Math.round)))};`
        + ` before the event ${sec(r.pre)} s at most${ans}; blamed: ${r.blamed.join(', ') || 'nobody'};`
        + ` restarts ${r.restarts}${r.playerChanged ? ', another GHCi plays' : ''}; d1 kept: ${r.kept}; d2 after: ${r.d2 === null ? 'silent' : JSON.stringify(r.d2)};`
        + `${c.kind === 'play' ? ` fails from cycle ${r.at};` : ''} watched ${sec(r.watched)} s${r.capped ? ' (cap)' : ''};`
        + ` boot ${sec(r.bootMs)} s; machine ${r.busy.toFixed(0)} % busy, loadavg ${r.load}`
        + `${r.notes.length ? `; ${r.notes.join('; ')}` : ''}`;
}


// -- the run -----------------------------------------------------------------------

async function main() {
    const classes = opts.classes.split(',').map(Number);
    for (const c of classes) {
        if (!CLASSES[c]) {
            throw new Error(`no class ${c}: 1..7`);
        }
    }
    const versions = opts.helpers.split(',');
    const helpers = {};
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-bench-supervision-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    for (const v of versions) {
        if (!VERSIONS[v]) {
            throw new Error(`no helper ${v}: new, peer`);
        }
        const copy = snapshot(v === 'new' ? opts.new : opts.peer, path.join(dir, v));
        helpers[v] = { ...copy, Helper: await helperClass(copy.bin) };
    }

    const info = {
        date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        nproc: os.cpus().length,
        cpu: (/model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) || [])[1] || 'unknown',
        kernel: os.release(),
        commit: run('git', ['-C', REPO, 'describe', '--always', '--dirty']),
        ghc: run('ghc', ['--numeric-version']),
        tidal: run('dpkg-query', ['-W', '-f=${Version}', 'libghc-tidal-dev']),
        loadBefore: loadavg(),
        sha: Object.fromEntries(Object.entries(helpers).map(([v, x]) => [v, x.sha])),
    };
    log(`commit ${info.commit}, peer ${opts.peerCommit}; ${opts.trials} trial(s) of classes ${classes.join(',')}; loadavg ${info.loadBefore}`);

    const results = [];
    const cpu0 = cpuTimes();
    const t0 = Date.now();
    for (let k = 1; k <= opts.trials; k++) {
        for (const cls of classes) {
            const order = (k + cls) % 2 ? [...versions].reverse() : versions;
            for (const v of order) {
                const r = await trial(helpers[v], v, cls, k);
                results.push(r);
                log(trialLine(r, 2 * PERIOD).slice(2));
                if (r.failed && r.logTail) {
                    log(`its log ended:\n${r.logTail}`);
                }
            }
        }
    }
    info.seconds = (Date.now() - t0) / 1000;
    info.busy = busyPercent(cpu0, cpuTimes());
    info.loadAfter = loadavg();

    const t = tables(results, classes);
    const text = `${t.main}\n\n${t.more}\n`;
    process.stdout.write(`\n${text}\n`);
    fs.writeFileSync(opts.results, report(info, t, results));
    log(`${info.seconds.toFixed(0)} s; written to ${path.relative(process.cwd(), opts.results)}`);
    return results.some((r) => r.failed) ? 1 : 0;
}

function report(info, t, results) {
    return `# Supervision benchmark: d1's silence when something else fails

Written by \`bench/supervision.mjs\` (see [README.md](README.md#supervision-one-channels-failure-and-the-others-silence)).

- date: ${info.date}
- command: \`${COMMAND}\`
- machine: ${info.nproc} CPUs (${info.cpu}), Linux ${info.kernel}; ghc ${info.ghc}, Tidal ${info.tidal}
- helpers: new = ngx_tidal ${info.commit} (\`${path.relative(REPO, opts.new)}\`, sha256 ${info.sha.new || '—'}…),
  peer = commit ${opts.peerCommit} (\`${path.relative(REPO, opts.peer)}\`, sha256 ${info.sha.peer || '—'}…),
  each copied with its boot file at the start, with its own defaults but
  \`--eval-timeout 2000\` in classes 1 and 2
- load: loadavg ${info.loadBefore} before, ${info.loadAfter} after; the machine was
  ${info.busy.toFixed(0)} % busy over the ${info.seconds.toFixed(0)} s of the run (our helpers and
  GHCis included; other engineers' tests ran on it too)
- each trial: a fresh helper (the new one with its spare booted), d1 \`sound "bd*8"\` at
  ${CPS} cps (an event every ${PERIOD} ms), ${PRE_MS / 1000} s of play, the event, then watched until
  d1 had played ${opts.settle} s without a gap over ${STEADY_GAP} ms, at least ${opts.watch} s after
  the event (or d2's answer), past cycle C + 1 for classes 3-5; cap ${opts.cap} s

Silence: d1's longest time between two events arriving at the UDP listener,
from 1 s before the event to the end of the trial; ≥ where d1 was not heard
again before the cap.  ${opts.trials} trial(s) per class and helper, alternating
which goes first.  "No gap" is d1's longest gap in the ${PRE_MS / 1000} s before the
event, over the new helper's trials, plus one event period: ${sec(t.noGap)} s.

${t.main}

${t.more}

## Trials

Times are from the event: d2's eval sent (1, 2), d1's first event of
cycle C as it would have arrived (3-5), the signal (6, 7).

${results.map((r) => trialLine(r, t.noGap)).join('\n')}
`;
}


// Ctrl-C: t/lib/helper.mjs kills what is left (helpers, GHCis, stopped
// ones too) when the process exits
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
        log(`${sig}: stopping`);
        process.exit(130);
    });
}

main().then((code) => {
    process.exitCode = code;
}, (e) => {
    log(`failed: ${e.stack || e.message}`);
    process.exitCode = 1;
});
