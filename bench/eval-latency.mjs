// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// bench/eval-latency.mjs: the measuring half of bench/eval-latency (which
// installs, builds and cleans up): tools/call tidal_eval through nginx
// against the same GHCi block typed into a bare GHCi, interleaved, in one
// Node process with one clock (process.hrtime.bigint()).
//
// Probes, one of each per round, the order rotating from round to round:
//   ghci   a bare GHCi started and booted as tidal-helper does it: write the
//          helper's block for d1 and its marker line, wait for the marker
//          on stdout and stderr
//   eval   tools/call tidal_eval over one WebSocket to nginx, which hands it
//          to the helper, which hands the same block to its GHCi
//   state  tools/call tidal_get_state: worker -> helper -> worker, no GHCi
//   ping   MCP ping: answered by the worker itself
// state and ping are the floors that say where the added time goes.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WebSocket = createRequire(path.join(REPO, 't', 'package.json'))('ws');
const { startNginx, sleep, MODULE_SO, NGINX_BIN } = await import('../t/lib/nginx.mjs');

const GHCI_C = path.join(REPO, 'src/helper/tidal_ghci.c');
const BOOT_FILE = path.join(REPO, 'src/helper/BootTidal.hs');
const WRAP_BIN = path.join(REPO, 'build/bench/pattern-wrap');
const TARGET_MS = 2;

const USAGE = `bench/eval-latency [--runs 200] [--warmup 20] [--gap MS]
        [--pattern 'sound "bd*4 sn"'] [--workers 2] [--ghci ghci]
        [--ghci-memory 2g] [--log-level notice] [--quiet-wait 30]
        [--results bench/eval-latency.md] [--no-build]`;

const opts = {
    runs: 200, warmup: 20, gap: 5, pattern: 'sound "bd*4 sn"', channel: 'd1',
    workers: 2, ghci: 'ghci', ghciMemory: '2g', logLevel: 'notice',
    quietWait: 30, results: path.join(REPO, 'bench/eval-latency.md'),
    command: process.env.EVAL_LATENCY_COMMAND || 'bench/eval-latency',
    pids: process.env.EVAL_LATENCY_PIDS || '',
};

const OPTION_NAMES = {
    '--runs': ['runs', Number], '--warmup': ['warmup', Number], '--gap': ['gap', Number],
    '--pattern': ['pattern', String], '--workers': ['workers', Number],
    '--ghci': ['ghci', String], '--ghci-memory': ['ghciMemory', String],
    '--log-level': ['logLevel', String], '--quiet-wait': ['quietWait', Number],
    '--results': ['results', String],
};

for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === '--no-build') {
        continue;       // the driver's
    }
    if (a === '-h' || a === '--help') {
        console.log(USAGE);
        process.exit(0);
    }
    const o = OPTION_NAMES[a];
    if (!o || i + 1 >= process.argv.length) {
        console.error(`eval-latency: unknown option or missing value: ${a}\n${USAGE}`);
        process.exit(2);
    }
    opts[o[0]] = o[1](process.argv[++i]);
    if (typeof opts[o[0]] === 'number' && !(opts[o[0]] >= 0)) {
        console.error(`eval-latency: ${a} wants a number`);
        process.exit(2);
    }
}

if (opts.runs < 1) {
    console.error('eval-latency: --runs must be at least 1');
    process.exit(2);
}

function log(msg) {
    process.stderr.write(`${new Date().toTimeString().slice(0, 8)} eval-latency: ${msg}\n`);
}

const now = () => process.hrtime.bigint();
const us = (ns) => Number(ns) / 1000;


// -- what the helper sends, from the helper's own sources ---------------------

// A C string macro of tidal_ghci.c: its literals, concatenated, unescaped.
function cMacro(name) {
    const src = fs.readFileSync(GHCI_C, 'utf8');
    const m = new RegExp(`#define\\s+${name}\\s+((?:[^\\n]*\\\\\\n)*[^\\n]*)`).exec(src);
    if (!m) {
        throw new Error(`no #define ${name} in ${GHCI_C}: has the helper changed?`);
    }
    const lits = [...m[1].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((l) => l[1]);
    if (!lits.length) {
        throw new Error(`#define ${name} in ${GHCI_C} is not a string`);
    }
    return JSON.parse(`"${lits.join('')}"`);
}

// tidal_ghci_send_marker(): tidalMarker "@@tidal:NONCE:ID@@"
function markerLine(mark, nonce, id) {
    return `tidalMarker "${mark}${nonce}:${id}@@"\n`;
}

function helperBlock(channel, pattern) {
    const r = spawnSync(WRAP_BIN, [channel.replace(/^d/, ''), pattern], { encoding: 'utf8' });
    if (r.status !== 0) {
        throw new Error(`${WRAP_BIN}: ${r.stderr || r.error || `status ${r.status}`}`);
    }
    return r.stdout;
}


// -- the bare GHCi -------------------------------------------------------------

class BareGhci {
    constructor({ mark, bootCheck }) {
        this.mark = mark;
        this.bootCheck = bootCheck;
        this.nonce = crypto.randomBytes(8).toString('hex');
        this.nextId = 0;
        this.seen = { out: 0, err: 0 };
        this.partial = { out: '', err: '' };
        this.output = '';
        this.waiter = null;
        this.readCost = 0n;
        this.markerRe = new RegExp(`${mark}${this.nonce}:(\\d+)@@$`);
        this.exited = null;
    }

    // as tidal_ghci_spawn(): argv, environment, working directory, session
    start({ ghci, memory, dirtPort, tempoPort }) {
        const words = ghci.split(' ').filter(Boolean);
        const argv = [...words.slice(1), '-v0', '-ignore-dot-ghci'];
        if (memory !== 'off') {
            argv.push('+RTS', `-M${memory}`, '-RTS');
        }
        this.argv = [words[0], ...argv];
        this.proc = spawn(words[0], argv, {
            cwd: '/',
            detached: true,
            stdio: ['pipe', 'pipe', 'pipe'],
            env: {
                PATH: process.env.PATH || '/usr/local/bin:/usr/bin:/bin',
                HOME: process.env.HOME || '/root',
                LANG: 'C.UTF-8',
                TIDAL_DIRT_HOST: '127.0.0.1',
                TIDAL_DIRT_PORT: String(dirtPort),
                TIDAL_TEMPO_PORT: String(tempoPort),
                TIDAL_CTRL_PORT: '0',
            },
        });
        this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => {
            this.exitInfo = { code, signal };
            if (this.waiter) {
                this.waiter.reject(new Error(`bare GHCi exited (${code ?? signal}); it said:\n${this.output.slice(-2000)}`));
            }
            resolve();
        }));
        this.proc.on('error', (e) => this.waiter && this.waiter.reject(e));
        this.proc.stdin.on('error', () => {});
        this.proc.stdout.on('data', (d) => this._data('out', d));
        this.proc.stderr.on('data', (d) => this._data('err', d));
        return this.proc.pid;
    }

    _data(which, chunk) {
        const t = now();
        const lines = (this.partial[which] + chunk.toString('utf8')).split('\n');
        this.partial[which] = lines.pop();
        for (const line of lines) {
            const m = this.markerRe.exec(line);
            if (m) {
                this.seen[which] = Math.max(this.seen[which], Number(m[1]));
            } else {
                this.output += `${line}\n`;
            }
        }
        const w = this.waiter;
        if (w && Math.min(this.seen.out, this.seen.err) >= w.id) {
            this.waiter = null;
            const end = now();
            this.readCost += end - t;
            w.resolve(end);
        } else {
            this.readCost += now() - t;
        }
    }

    _wait(id, timeoutMs) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.waiter = null;
                reject(new Error(`no marker ${id} from the bare GHCi within ${timeoutMs} ms; it said:\n${this.output.slice(-2000)}`));
            }, timeoutMs);
            this.waiter = {
                id,
                resolve: (v) => { clearTimeout(timer); resolve(v); },
                reject: (e) => { clearTimeout(timer); reject(e); },
            };
        });
    }

    // the boot file, a newline if it lacks one, the scope check, a marker
    async boot() {
        let boot = fs.readFileSync(BOOT_FILE, 'utf8');
        if (boot.length && !boot.endsWith('\n')) {
            boot += '\n';
        }
        const id = ++this.nextId;
        const t0 = now();
        this.proc.stdin.write(boot + this.bootCheck + markerLine(this.mark, this.nonce, id));
        await this._wait(id, 120000);
        if (/error:|\*\*\* Exception/.test(this.output)) {
            throw new Error(`the bare GHCi did not boot:\n${this.output.slice(0, 3000)}`);
        }
        this.output = '';
        return us(now() - t0) / 1000;
    }

    // two writes, as tidal_ghci_next(): the block, then the marker
    async eval(text) {
        const id = ++this.nextId;
        this.readCost = 0n;
        this.output = '';
        const done = this._wait(id, 10000);
        const t0 = now();
        this.proc.stdin.write(text);
        this.proc.stdin.write(markerLine(this.mark, this.nonce, id));
        const t1 = now();
        const end = await done;
        if (/error:|\*\*\* Exception|Interrupted\./.test(this.output)) {
            throw new Error(`the bare GHCi refused the block:\n${this.output.slice(0, 2000)}`);
        }
        return { rtt: us(end - t0), client: us(t1 - t0 + this.readCost) };
    }

    async stop() {
        if (!this.proc || this.exitInfo) {
            return;
        }
        this.proc.stdin.end();
        const timer = setTimeout(() => killGroup(this.proc.pid), 3000);
        await this.exited;
        clearTimeout(timer);
    }
}

// the helper exits with the nginx master and ends its GHCi: wait for
// that, then end whichever of them is still there (checked by name)
async function reap(procs) {
    const alive = ([pid, name]) => {
        try {
            return pid && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(name);
        } catch {
            return false;
        }
    };
    for (let i = 0; i < 100 && procs.some(alive); i++) {
        await sleep(100);
    }
    for (const p of procs.filter(alive)) {
        log(`${p[1]} ${p[0]} outlived nginx: SIGKILL`);
        killGroup(p[0]);
    }
}

function killGroup(pid) {
    for (const target of [-pid, pid]) {
        try {
            process.kill(target, 'SIGKILL');
        } catch { /* gone */ }
    }
}


// -- the MCP client over WebSocket ---------------------------------------------

class McpClient {
    static async connect(url) {
        const c = new McpClient();
        c.ws = new WebSocket(url, 'mcp', { perMessageDeflate: false });
        c.ws.on('message', (data) => c._message(data));
        c.closed = new Promise((resolve) => c.ws.once('close', (code) => {
            c.closeCode = code;
            for (const p of c.pending.values()) {
                p.reject(new Error(`the WebSocket closed (${code})`));
            }
            c.pending.clear();
            resolve();
        }));
        await new Promise((resolve, reject) => {
            c.ws.once('open', resolve);
            c.ws.once('error', reject);
        });
        c.ws.on('error', (e) => log(`WebSocket error: ${e.message}`));
        return c;
    }

    constructor() {
        this.nextId = 0;
        this.pending = new Map();
        this.readCost = 0n;
        this.notifications = 0;
    }

    _message(data) {
        const t = now();
        const msg = JSON.parse(data.toString('utf8'));
        const end = now();
        this.readCost += end - t;
        const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (p) {
            this.pending.delete(msg.id);
            p.resolve({ msg, end });
        } else {
            this.notifications++;
        }
    }

    async request(method, params, timeoutMs = 15000) {
        const id = ++this.nextId;
        this.readCost = 0n;
        const answer = new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new Error(`no answer to ${method} within ${timeoutMs} ms`));
            }, timeoutMs);
            this.pending.set(id, {
                resolve: (v) => { clearTimeout(timer); resolve(v); },
                reject: (e) => { clearTimeout(timer); reject(e); },
            });
        });
        const t0 = now();
        this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
        const t1 = now();
        const { msg, end } = await answer;
        if (msg.error) {
            throw new Error(`${method} failed: ${JSON.stringify(msg.error)}`);
        }
        return { rtt: us(end - t0), client: us(t1 - t0 + this.readCost), result: msg.result };
    }

    notify(method, params = {}) {
        this.ws.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
    }

    async tool(name, args) {
        const r = await this.request('tools/call', { name, arguments: args });
        if (r.result.isError) {
            throw new Error(`${name} ${JSON.stringify(args)} failed: ${JSON.stringify(r.result.content)}`);
        }
        return r;
    }

    async close() {
        if (this.ws.readyState === WebSocket.OPEN) {
            this.ws.close(1000);
            await Promise.race([this.closed, sleep(3000)]);
        }
        this.ws.terminate();
    }
}


// -- the machine ---------------------------------------------------------------

function cpuTimes() {       // [busy, total] jiffies over all CPUs
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return [total - idle, total];
}

function busyPercent(a, b) {
    return b[1] > a[1] ? (100 * (b[0] - a[0])) / (b[1] - a[1]) : 0;
}

function procTicks(pid) {  // utime + stime of every thread
    try {
        const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
        return Number(f[11]) + Number(f[12]);
    } catch {
        return null;
    }
}

const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();

async function waitQuiet(seconds, threshold = 20) {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
        const a = cpuTimes();
        await sleep(1000);
        const busy = busyPercent(a, cpuTimes());
        if (busy < threshold || Date.now() >= deadline) {
            return busy;
        }
    }
}

function run(cmd, args) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout || ''}${r.stderr || ''}`.trim();
}

function machine() {
    const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    const tidal = run('dpkg-query', ['-W', '-f=${Version}', 'libghc-tidal-dev']);
    const commit = run('git', ['-C', REPO, 'describe', '--always', '--dirty']);
    return {
        nproc: os.cpus().length,
        cpu: cpu ? cpu[1] : 'unknown',
        kernel: os.release(),
        memGb: (os.totalmem() / 2 ** 30).toFixed(1),
        nginx: run(NGINX_BIN, ['-v']).replace(/^nginx version: /, ''),
        ghc: run('ghc', ['--numeric-version']),
        tidal,
        node: process.version,
        commit,
    };
}


// -- statistics ----------------------------------------------------------------

function quantile(sorted, q) {  // nearest rank; the median averages the middle two
    if (q === 0.5) {
        const m = sorted.length >> 1;
        return sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }
    return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

function stats(xs) {
    const s = [...xs].sort((a, b) => a - b);
    return {
        n: s.length, min: s[0], p50: quantile(s, 0.5), p90: quantile(s, 0.9),
        p99: quantile(s, 0.99), max: s[s.length - 1],
    };
}

const ms = (x) => (x / 1000).toFixed(3);


// -- the run -------------------------------------------------------------------

const cleanups = [];

async function cleanup() {
    while (cleanups.length) {
        try {
            await cleanups.pop()();
        } catch (e) {
            log(`cleanup: ${e.message}`);
        }
    }
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
        log(`${sig}: stopping`);
        cleanup().finally(() => process.exit(130));
    });
}

function notePid(what, pid) {
    if (opts.pids && pid) {
        fs.appendFileSync(opts.pids, `${what} ${pid}\n`);
    }
}

async function main() {
    const mark = cMacro('TIDAL_GHCI_MARK');
    const bootCheck = cMacro('TIDAL_GHCI_BOOT_CHECK');
    const block = helperBlock(opts.channel, opts.pattern);
    const evalArgs = { channel: opts.channel, pattern: opts.pattern };

    const info = machine();
    log(`module ${MODULE_SO}, commit ${info.commit}`);

    // SuperDirt's stand-in for both Tidals: a UDP port that drops it all
    const sink = dgram.createSocket('udp4');
    sink.on('message', () => {});
    await new Promise((resolve) => sink.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => sink.close());
    const tempo = dgram.createSocket('udp4');
    await new Promise((resolve) => tempo.bind(0, '127.0.0.1', resolve));
    const tempoPort = tempo.address().port;
    tempo.close();

    log(`waiting up to ${opts.quietWait} s for the machine to be under 20 % busy`);
    const busyBefore = await waitQuiet(opts.quietWait);
    const loadBefore = loadavg();
    log(`busy ${busyBefore.toFixed(0)} %, loadavg ${loadBefore}`);

    // the bare GHCi
    const ghci = new BareGhci({ mark, bootCheck });
    cleanups.push(() => ghci.stop());
    const ghciPid = ghci.start({
        ghci: opts.ghci, memory: opts.ghciMemory, dirtPort: sink.address().port, tempoPort,
    });
    notePid('ghci', ghciPid);
    const bootMs = await ghci.boot();
    log(`bare GHCi ${ghciPid} booted in ${bootMs.toFixed(0)} ms: ${ghci.argv.join(' ')}`);

    // nginx, which starts the helper, which starts its GHCi
    process.env.TIDAL_LOG_LEVEL = opts.logLevel;
    const ngx = await startNginx({
        workers: opts.workers,
        helper: `tidal_dirt_address 127.0.0.1:${sink.address().port};`,
    });
    notePid('nginx', ngx.masterPid);
    for (const w of ngx.workerPids()) {
        notePid('nginx-worker', w);
    }
    const helperProcs = [];
    cleanups.push(async () => {
        await ngx.stop();
        await reap(helperProcs);
    });
    log(`nginx ${ngx.masterPid} on ${ngx.url} (${opts.workers} workers), prefix ${ngx.dir}`);

    const mcp = await McpClient.connect(ngx.url);
    cleanups.push(() => mcp.close());
    await mcp.request('initialize', {
        protocolVersion: '2025-11-25', capabilities: {},
        clientInfo: { name: 'eval-latency', version: '1.0.0' },
    });
    mcp.notify('notifications/initialized');

    const readyBy = Date.now() + 120000;
    for (;;) {
        const st = await mcp.tool('tidal_get_state', {});
        if (st.result.structuredContent && st.result.structuredContent.ghci === 'running') {
            break;
        }
        if (Date.now() > readyBy) {
            throw new Error(`GHCi behind nginx not running after 120 s: ${JSON.stringify(st.result.structuredContent)}\n${ngx.errorLog().slice(-3000)}`);
        }
        await sleep(100);
    }
    const logText = ngx.errorLog();
    const helperPid = Number((/tidal-helper\[(\d+)\]: info: serving nginx/.exec(logText) || [])[1]) || null;
    const helperGhciPid = Number((/started GHCi \(pid (\d+)\)/.exec(logText) || [])[1]) || null;
    notePid('helper', helperPid);
    notePid('helper-ghci', helperGhciPid);
    helperProcs.push([helperPid, 'tidal-helper'], [helperGhciPid, 'ghc']);
    log(`helper ${helperPid}, its GHCi ${helperGhciPid}: running`);

    const probes = {
        ghci: () => ghci.eval(block),
        eval: () => mcp.tool('tidal_eval', evalArgs),
        state: () => mcp.tool('tidal_get_state', {}),
        ping: () => mcp.request('ping', {}),
    };
    const names = Object.keys(probes);
    const samples = Object.fromEntries(names.map((n) => [n, []]));

    const watched = {
        'this client (node)': process.pid, 'bare GHCi': ghciPid, 'nginx master': ngx.masterPid,
        ...Object.fromEntries(ngx.workerPids().map((p, i) => [`nginx worker ${i + 1}`, p])),
        'tidal-helper': helperPid, "helper's GHCi": helperGhciPid,
    };

    log(`${opts.warmup} warm-up rounds, then ${opts.runs} measured rounds of ${names.join(', ')}`);
    let cpu0 = null;
    let ticks0 = null;
    const t0 = Date.now();
    for (let r = -opts.warmup; r < opts.runs; r++) {
        if (r === 0) {
            cpu0 = cpuTimes();
            ticks0 = Object.fromEntries(Object.entries(watched).map(([k, p]) => [k, procTicks(p)]));
        }
        for (let i = 0; i < names.length; i++) {
            const name = names[(i + (r + opts.warmup)) % names.length];
            const s = await probes[name]();
            if (r >= 0) {
                samples[name].push({ round: r, rtt: s.rtt, client: s.client });
            }
            if (opts.gap) {
                await sleep(opts.gap);
            }
        }
    }
    const seconds = (Date.now() - t0) / 1000;
    const cpu1 = cpuTimes();
    const busyDuring = busyPercent(cpu0, cpu1);
    const ticks = Object.entries(watched).map(([k, p]) => {
        const a = ticks0[k];
        const b = procTicks(p);
        return [k, p, a === null || b === null ? null : b - a];
    });
    const loadAfter = loadavg();
    const notifications = mcp.notifications;

    await cleanup();

    const st = Object.fromEntries(names.map((n) => [n, {
        rtt: stats(samples[n].map((s) => s.rtt)),
        client: stats(samples[n].map((s) => s.client)),
    }]));
    const paired = stats(samples.eval.map((s, i) => s.rtt - samples.ghci[i].rtt));
    const added = st.eval.rtt.p50 - st.ghci.rtt.p50;

    const blockSize = Math.max(1, Math.round(opts.runs / 8));
    const blocks = [];
    for (let b = 0; b < opts.runs; b += blockSize) {
        const row = { rounds: `${b}-${Math.min(opts.runs, b + blockSize) - 1}` };
        for (const n of names) {
            row[n] = stats(samples[n].slice(b, b + blockSize).map((s) => s.rtt)).p50;
        }
        blocks.push(row);
    }

    const result = {
        date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), command: opts.command, opts, info,
        block, mark, bootMs, busyBefore, busyDuring, loadBefore, loadAfter, seconds, ticks,
        clkTck: Number(run('getconf', ['CLK_TCK'])) || 100, notifications,
        st, paired, added, blocks, names,
    };
    const md = report(result);
    fs.writeFileSync(opts.results, md);
    process.stdout.write(table(result));
    log(`written to ${path.relative(process.cwd(), opts.results) || opts.results}`);
    return added < TARGET_MS * 1000 ? 0 : 3;
}


// -- the report ----------------------------------------------------------------

const LABELS = {
    ghci: 'bare GHCi: the block + marker',
    eval: 'nginx: tools/call tidal_eval',
    state: 'nginx: tools/call tidal_get_state',
    ping: 'nginx: ping',
};

function table(r) {
    const rows = [
        '| probe | median ms | p90 ms | p99 ms | min ms | max ms | client-side median ms |',
        '|---|---:|---:|---:|---:|---:|---:|',
    ];
    for (const n of r.names) {
        const s = r.st[n].rtt;
        rows.push(`| ${LABELS[n]} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.min)} | ${ms(s.max)} | ${ms(r.st[n].client.p50)} |`);
    }
    const verdict = r.added < TARGET_MS * 1000 ? 'met' : '**missed**';
    return `${rows.join('\n')}

Added latency (median tidal_eval through nginx − median bare GHCi): **${ms(r.added)} ms**
(target < ${TARGET_MS} ms: ${verdict}); median of the per-round differences ${ms(r.paired.p50)} ms,
p90 ${ms(r.paired.p90)} ms.  ${r.opts.runs} rounds after ${r.opts.warmup} warm-up, ${r.seconds.toFixed(1)} s;
machine ${r.busyDuring.toFixed(0)} % busy during the rounds (${r.busyBefore.toFixed(0)} % before);
loadavg before ${r.loadBefore}, after ${r.loadAfter}.
`;
}

function report(r) {
    const i = r.info;
    const ticks = r.ticks.map(([k, p, t]) => `| ${k} | ${p ?? '?'} | ${t === null ? '?' : ((1000 * t) / r.clkTck).toFixed(0)} |`);
    const blocks = [
        `| rounds | ${r.names.map((n) => `${n} ms`).join(' | ')} |`,
        `|---|${r.names.map(() => '---:').join('|')}|`,
        ...r.blocks.map((b) => `| ${b.rounds} | ${r.names.map((n) => ms(b[n])).join(' | ')} |`),
    ];
    const floors = `worker only (ping) ${ms(r.st.ping.rtt.p50)} ms; worker → helper → worker `
        + `(tidal_get_state) ${ms(r.st.state.rtt.p50)} ms, so the helper hop adds `
        + `${ms(r.st.state.rtt.p50 - r.st.ping.rtt.p50)} ms over ping; tidal_eval minus bare GHCi `
        + `minus tidal_get_state leaves ${ms(r.added - r.st.state.rtt.p50)} ms for what only an eval `
        + 'does besides GHCi (sandbox check, wrap, state, history, events)';
    return `# tidal_eval latency: through nginx against a bare GHCi

Written by \`bench/eval-latency\` (see [README.md](README.md#eval-latency-tidal_eval-through-nginx-against-a-bare-ghci)).

- date: ${r.date}
- command: \`${r.command}\`
- machine: ${i.nproc} CPUs (${i.cpu}), ${i.memGb} GiB, Linux ${i.kernel}
- load: loadavg before ${r.loadBefore}, after ${r.loadAfter}; the machine was
  ${r.busyBefore.toFixed(0)} % busy in the second before the run, ${r.busyDuring.toFixed(0)} % during
  the ${r.opts.runs} measured rounds (${r.seconds.toFixed(1)} s)
- versions: ${i.nginx}, ngx_tidal ${i.commit}, ghc ${i.ghc}, Tidal ${i.tidal}
  (libghc-tidal-dev), Node ${i.node} with ws
- nginx: worker_processes ${r.opts.workers}, error_log level ${r.opts.logLevel}; one WebSocket client
- rounds: ${r.opts.warmup} warm-up, ${r.opts.runs} measured; one of each probe a round, the order
  rotating each round, ${r.opts.gap} ms between requests
- pattern: \`tidal_eval ${JSON.stringify({ channel: r.opts.channel, pattern: r.opts.pattern })}\`

## Result

${table(r)}
Floors: ${floors}.

Client-side cost is the time this Node client spent in its own code for a
request (for WebSocket: \`JSON.stringify\` + \`ws.send\`, then \`JSON.parse\` of
every frame up to the answer; for GHCi: two pipe writes, then the line
splitting); it is inside the round trips above, on both sides.
${r.notifications} notifications arrived during the run and were parsed and
ignored.

## Medians per block of rounds

${blocks.join('\n')}

## CPU time during the measured rounds

| process | pid | ms |
|---|---:|---:|
${ticks.join('\n')}

## What the bare GHCi was sent

Started as \`${r.opts.ghci} -v0 -ignore-dot-ghci${r.opts.ghciMemory === 'off' ? '' : ` +RTS -M${r.opts.ghciMemory} -RTS`}\` in \`/\`,
environment PATH, HOME, LANG=C.UTF-8, TIDAL_DIRT_HOST/PORT (a UDP sink),
TIDAL_TEMPO_PORT (a free port), TIDAL_CTRL_PORT=0; booted with
src/helper/BootTidal.hs, the helper's scope check and a marker (${r.bootMs.toFixed(0)} ms).
Each round writes the helper's block (from \`tidal_pattern_wrap\`,
built into build/bench/pattern-wrap), then the marker line, and waits for
the marker on stderr and stdout:

\`\`\`
${r.block}${markerLine(r.mark, '<nonce>', '<id>')}\`\`\`
`;
}


main().then((code) => {
    process.exitCode = code;
}, async (e) => {
    log(`failed: ${e.stack || e.message}`);
    await cleanup();
    process.exitCode = 1;
});
