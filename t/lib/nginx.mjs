// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Runs a real nginx with ngx_tidal loaded, in a private temp dir on a free
// 127.0.0.1 port, and guarantees it is gone when the test file ends.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const NGINX_BIN = process.env.NGINX_BIN || '/usr/sbin/nginx';

// Unset: the module built by `make build`; empty: compiled into NGINX_BIN.
// TIDAL_KEEP=1 keeps every nginx temp dir (config, logs) for a post-mortem.
export const MODULE_SO = process.env.TIDAL_MODULE_SO !== undefined
    ? process.env.TIDAL_MODULE_SO
    : path.join(REPO, 'build/nginx-dev/objs/ngx_tidal_module.so');

export const ASAN = process.env.TIDAL_ASAN === '1';

// Sanitizer builds are slow to start and to run.
export const SLOW = ASAN ? 3 : 1;

const BAD_LOG_PATTERNS = [
    'AddressSanitizer', 'runtime error:', '[alert]', '[emerg]',
    'exited on signal',
];

// Every nginx started and not yet stopped.  The child is unref'ed, so a test
// that forgets one (or times out) cannot keep the file's process alive;
// whatever is left is killed, master and workers, when the process ends.
const live = new Set();

function killLeftovers() {
    for (const n of [...live]) {
        n._killAll();
        process.stderr.write(`nginx left running by a test was killed; kept ${n.dir}\n`);
    }
}

process.on('exit', killLeftovers);
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
        killLeftovers();
        process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    });
}


// Whether the module under test knows an http-level directive: asks
// `nginx -t` once per directive and process.
const knownCache = new Map();
export function moduleKnows(directive, args = '') {
    if (!knownCache.has(directive)) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-probe-'));
        const file = path.join(dir, 'nginx.conf');
        fs.writeFileSync(file, `${loadModuleLine()}error_log stderr;
events {}
http { ${directive} ${args}; }
`);
        const r = spawnSync(NGINX_BIN, ['-t', '-p', `${dir}/`, '-e', 'stderr', '-c', file], {
            encoding: 'utf8', timeout: 30000 * SLOW,
        });
        fs.rmSync(dir, { recursive: true, force: true });
        knownCache.set(directive, !`${r.stdout}${r.stderr}`.includes(`unknown directive "${directive}"`));
    }
    return knownCache.get(directive);
}

// The shared zone most tests name; a test passes zone: '' to leave it out
// (the implicit zone, t/117), or its own tidal_zone line.
export const DEFAULT_ZONE = 'tidal_zone tidal 8m;';

function defaultZone() {
    return moduleKnows('tidal_zone', 'tidal 1m') ? DEFAULT_ZONE : '';
}

// Tests about other things run without GHCi; a test of the music passes
// helper: '' (the defaults) or its own tidal_* helper directives.
function defaultHelper() {
    return moduleKnows('tidal_helper', 'off') ? 'tidal_helper off;' : '';
}


export function loadModuleLine() {
    return MODULE_SO ? `load_module ${MODULE_SO};\n` : '';
}


export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}


// Polls fn() until it returns a truthy value; for state that has no event
// (files written by another process, /proc entries), bounded in time.
export async function waitFor(fn, { timeout = 10000, interval = 20, what = 'condition' } = {}) {
    const deadline = Date.now() + timeout * SLOW;
    let delay = interval;
    for (;;) {
        const v = await fn();
        if (v) {
            return v;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeout * SLOW} ms waiting for ${what}`);
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 200);
    }
}


export async function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}


export function makeTempDir(prefix = 'tidal-t-') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    // nginx workers run as nobody and must reach the temp paths inside
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'logs'), { mode: 0o755 });
    return dir;
}


// ssl: { certificate, key } (PEM files) makes the server listen with TLS;
// listen: more parameters of the listen directive (e.g. "sndbuf=4k")
export function buildConf({
    dir, port, http = '', location = '', server = '', workers = 2, main = '', zone = defaultZone(),
    helper = defaultHelper(), ssl = null, http2 = false, listen: more = '',
}) {
    const h2 = (http2 ? ' http2' : '') + (more ? ` ${more}` : '');
    const listen = ssl
        ? `listen 127.0.0.1:${port} ssl${h2};
        ssl_certificate ${ssl.certificate};
        ssl_certificate_key ${ssl.key};`
        : `listen 127.0.0.1:${port}${h2};`;
    return `${loadModuleLine()}worker_processes ${workers};
error_log ${dir}/error.log ${process.env.TIDAL_LOG_LEVEL || "info"};
pid ${dir}/nginx.pid;
${main}
events {
    worker_connections 1024;
}

http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    ${zone}
    ${helper}
${http}
    server {
        ${listen}
${server}
        location = /status {
            stub_status;
        }

        location /mcp {
            tidal_mcp;
${location}
        }
    }
}
`;
}


// 1-based number of the first line of text that contains needle
export function lineOf(text, needle) {
    const i = text.split('\n').findIndex((l) => l.includes(needle));
    if (i < 0) {
        throw new Error(`"${needle}" is not in the config`);
    }
    return i + 1;
}


// `nginx -t` on a config: a string, or the options of startNginx().
// Returns { code, output, file, conf, dir }.
export function nginxT(confOrOpts) {
    const dir = makeTempDir('tidal-conf-');
    const conf = typeof confOrOpts === 'string'
        ? confOrOpts
        : buildConf({ dir, port: 1, ...confOrOpts });
    const file = path.join(dir, 'nginx.conf');
    fs.writeFileSync(file, conf);
    const r = spawnSync(NGINX_BIN, ['-t', '-p', `${dir}/`, '-e', 'stderr', '-c', file], {
        encoding: 'utf8',
        timeout: 30000 * SLOW,
    });
    const output = `${r.stdout || ''}${r.stderr || ''}`;
    fs.rmSync(dir, { recursive: true, force: true });
    return { code: r.status, output, file, conf, dir };
}


function procStat(pid) {
    try {
        const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        // comm may contain spaces and parentheses: fields follow the last ')'
        const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
        return { state: rest[0], ppid: Number(rest[1]) };
    } catch {
        return null;
    }
}


export function pidAlive(pid) {
    const st = procStat(pid);
    return st !== null && st.state !== 'Z' && st.state !== 'X';
}


export function childPids(ppid) {
    const pids = [];
    for (const e of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) {
            continue;
        }
        const st = procStat(e);
        if (st && st.ppid === ppid && st.state !== 'Z' && st.state !== 'X') {
            pids.push(Number(e));
        }
    }
    return pids.sort((a, b) => a - b);
}


export function rssKb(pid) {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
    if (!m) {
        throw new Error(`no VmRSS for ${pid}`);
    }
    return Number(m[1]);
}


// resident anonymous memory of a process (its heap, not shared memory it
// touched), in kB
export function rssAnonKb(pid) {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^RssAnon:\s+(\d+)\s+kB/m.exec(s);
    if (!m) {
        throw new Error(`no RssAnon for ${pid}`);
    }
    return Number(m[1]);
}


// peak resident set size of a process, in kB
export function hwmKb(pid) {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(s);
    if (!m) {
        throw new Error(`no VmHWM for ${pid}`);
    }
    return Number(m[1]);
}


export async function waitPidsGone(pids, timeout = 15000) {
    await waitFor(() => pids.every((p) => !pidAlive(p)), {
        timeout, what: `processes ${pids.join(' ')} to exit`,
    });
}


function connectOnce(port) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.once('connect', () => { s.destroy(); resolve(); });
        s.once('error', (e) => { s.destroy(); reject(e); });
    });
}


class Nginx {
    constructor(opts) {
        this.opts = { workers: 2, ...opts };
        this.dir = makeTempDir();
        this.port = null;
        this.proc = null;
        this.exited = null;
        this.exitInfo = null;
        this.failed = false;
        this.expectedLogLines = [];
    }

    // Log lines matching re are what the test provoked (e.g. the master's
    // alert about a worker the test killed), not problems.
    expectLogLines(re) {
        this.expectedLogLines.push(re);
    }

    get url() {
        return `${this.opts.ssl ? 'wss' : 'ws'}://127.0.0.1:${this.port}/mcp`;
    }

    get masterPid() {
        return this.proc.pid;
    }

    file(name) {
        return path.join(this.dir, name);
    }

    errorLog() {
        try {
            return fs.readFileSync(this.file('error.log'), 'utf8');
        } catch {
            return '';
        }
    }

    stderrLog() {
        try {
            return fs.readFileSync(this.file('stderr.log'), 'utf8');
        } catch {
            return '';
        }
    }

    workerPids() {
        return childPids(this.proc.pid);
    }

    rssKb(pid) {
        return rssKb(pid);
    }

    workerStarts() {
        return (this.errorLog().match(/start worker process \d+/g) || []).length;
    }

    // opts.conf({ dir, port }): a whole config of the test's own (e.g. one
    // of conf-examples/ adapted), instead of buildConf()'s
    writeConf() {
        const at = { dir: this.dir, port: this.port };
        fs.writeFileSync(this.file('nginx.conf'), this.opts.conf
            ? this.opts.conf(at) : buildConf({ ...at, ...this.opts }));
    }

    // opts.port: that port (e.g. a server started again where another
    // stopped), else a free one
    async start() {
        // the free port may be taken between probe and bind: try again
        for (let attempt = 1; ; attempt++) {
            this.port = this.opts.port || await freePort();
            this.writeConf();
            try {
                await this.spawnAndWait(0);
                return this;
            } catch (e) {
                const inUse = /Address already in use/.test(this.errorLog() + this.stderrLog());
                this._killAll();
                if (!inUse || attempt >= 3) {
                    this.failed = true;
                    throw new Error(`${e.message}\nnginx dir kept: ${this.dir}\n`
                        + `stderr.log:\n${this.stderrLog()}\nerror.log:\n${this.errorLog()}`);
                }
                fs.rmSync(this.file('error.log'), { force: true });
            }
        }
    }

    async spawnAndWait(startsBefore) {
        const out = fs.openSync(this.file('stderr.log'), 'a');
        this.proc = spawn(NGINX_BIN,
            ['-p', `${this.dir}/`, '-e', 'stderr', '-c', this.file('nginx.conf'), '-g', 'daemon off;'],
            { stdio: ['ignore', out, out] });
        fs.closeSync(out);
        this.proc.unref();
        live.add(this);
        this.exited = new Promise((resolve) => {
            this.proc.once('exit', (code, signal) => {
                this.exitInfo = { code, signal };
                resolve(this.exitInfo);
            });
        });

        const deadline = Date.now() + 15000 * SLOW;
        let delay = 10;
        for (;;) {
            if (this.exitInfo) {
                throw new Error(`nginx exited during start (${JSON.stringify(this.exitInfo)})`);
            }
            try {
                await connectOnce(this.port);
                break;
            } catch (e) {
                if (e.code !== 'ECONNREFUSED' || Date.now() > deadline) {
                    throw new Error(`nginx not accepting on ${this.port}: ${e.message}`);
                }
            }
            await sleep(delay);
            delay = Math.min(delay * 2, 100);
        }
        const want = startsBefore + this.opts.workers;
        await waitFor(() => this.exitInfo || this.workerStarts() >= want, {
            timeout: 15000, what: `${want} "start worker process" lines`,
        });
        if (this.exitInfo) {
            throw new Error(`nginx exited during start (${JSON.stringify(this.exitInfo)})`);
        }
    }

    // SIGHUP, optionally with new options; resolves when the new workers run
    // and returns their pids and the old ones (which may still be exiting).
    async reload(newOpts) {
        if (newOpts) {
            this.opts = { ...this.opts, ...newOpts };
            this.writeConf();
        }
        const oldPids = this.workerPids();
        const startsBefore = this.workerStarts();
        process.kill(this.proc.pid, 'SIGHUP');
        await waitFor(() => this.workerStarts() >= startsBefore + this.opts.workers, {
            timeout: 15000, what: 'new worker processes after reload',
        });
        const newPids = await waitFor(() => {
            const fresh = this.workerPids().filter((p) => !oldPids.includes(p));
            return fresh.length >= this.opts.workers ? fresh : null;
        }, { timeout: 15000, what: 'new worker pids after reload' });
        return { oldPids, newPids };
    }

    async signalAndWait(signal, timeout) {
        if (!this.exitInfo) {
            process.kill(this.proc.pid, signal);
        }
        let timer;
        const timedOut = new Promise((resolve) => {
            timer = setTimeout(() => resolve('timeout'), timeout * SLOW);
        });
        const r = await Promise.race([this.exited, timedOut]);
        clearTimeout(timer);
        live.delete(this);
        if (r === 'timeout') {
            const workers = this.workerPids();
            this._killAll();
            return `nginx did not exit within ${timeout * SLOW} ms of ${signal}`
                + ` (workers still running: ${workers.join(' ') || 'none'})`;
        }
        return null;
    }

    // Problems the logs show; empty when clean.
    logProblems() {
        const problems = [];
        for (const [name, text] of [['stderr.log', this.stderrLog()], ['error.log', this.errorLog()]]) {
            const unexpected = text.split('\n')
                .filter((l) => !this.expectedLogLines.some((re) => re.test(l)));
            for (const pat of BAD_LOG_PATTERNS) {
                const lines = unexpected.filter((l) => l.includes(pat));
                if (lines.length) {
                    problems.push(`${name} contains "${pat}":\n  ${lines.slice(0, 5).join('\n  ')}`);
                }
            }
        }
        return problems;
    }

    async finish(signal, timeout) {
        const problems = [];
        const err = await this.signalAndWait(signal, timeout);
        if (err) {
            problems.push(err);
        }
        problems.push(...this.logProblems());
        if (problems.length || this.failed || process.env.TIDAL_KEEP === '1') {
            process.stderr.write(`nginx dir kept: ${this.dir}\n`);
            if (problems.length) {
                throw new Error(`${problems.join('\n')}\n(nginx dir kept: ${this.dir})`);
            }
            return;
        }
        fs.rmSync(this.dir, { recursive: true, force: true });
    }

    // fast shutdown (SIGTERM)
    stop() {
        return this.finish('SIGTERM', 15000);
    }

    // graceful shutdown (SIGQUIT, as `nginx -s quit`)
    quit(timeout = 20000) {
        return this.finish('SIGQUIT', timeout);
    }

    // marks the instance so stop() keeps its dir for a post-mortem
    keep() {
        this.failed = true;
    }

    _killAll() {
        if (!this.proc || this.exitInfo) {
            live.delete(this);
            return;
        }
        const pids = childPids(this.proc.pid);
        try {
            process.kill(this.proc.pid, 'SIGKILL');
        } catch { /* already gone */ }
        for (const p of pids) {
            try {
                process.kill(p, 'SIGKILL');
            } catch { /* already gone */ }
        }
        live.delete(this);
    }
}


export async function startNginx(opts = {}) {
    const n = new Nginx(opts);
    return n.start();
}


// GET /status (stub_status) over a fresh connection; returns the active count.
export async function activeConnections(port) {
    const { httpRequest } = await import('./ws.mjs');
    const r = await httpRequest(port, { path: '/status' });
    const m = /Active connections:\s*(\d+)/.exec(r.body.toString());
    if (!m) {
        throw new Error(`unexpected /status body: ${r.body}`);
    }
    return Number(m[1]);
}
