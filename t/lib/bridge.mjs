// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The bridge (tidal-helper --stdio --connect) as tests drive it: spawned
// directly, line by line, or as the server of the SDK's stdio client.
// Every bridge still running when the test file ends is killed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { pidAlive, waitFor, SLOW } from './nginx.mjs';
import { HELPER_BIN } from './helper.mjs';
import { INIT_PARAMS, EVENTS_CAPABILITIES } from './ws.mjs';
import { until } from './until.mjs';

export const SANITIZER = /AddressSanitizer|LeakSanitizer|runtime error:/;

const live = new Set();

export function killBridges() {
    for (const b of [...live]) {
        b.kill();
    }
}

process.on('exit', killBridges);


// the bridge spawned directly: its exit status, stderr and stdout lines;
// stdio: false for --play, wrap: a command that runs it (faketime ...)
export class Bridge {
    constructor(args, { stdio = true, wrap = [] } = {}) {
        this.log = '';
        this.lines = [];
        this.partial = '';
        this.waiters = new Set();
        const argv = [...wrap, HELPER_BIN, ...(stdio ? ['--stdio'] : []), ...args];
        this.proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
        this.pid = this.proc.pid;
        live.add(this);
        this.exited = new Promise((resolve) => {
            this.proc.once('exit', (code, signal) => {
                live.delete(this);
                this.exit = { code, signal };
                this._wake();
                resolve(this.exit);
            });
        });
        this.proc.stdin.on('error', () => {});   // EPIPE once it is gone
        this.proc.stderr.on('data', (d) => {
            this.log += d.toString();
            this._wake();
        });
        this.proc.stdout.on('data', (d) => {
            const parts = (this.partial + d.toString()).split('\n');
            this.partial = parts.pop();
            this.lines.push(...parts.map((l) => JSON.parse(l)));
            this._wake();
        });
    }

    _wake() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    send(obj) {
        this.proc.stdin.write(`${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n`);
    }

    until(fn, what, timeout = 10000 * SLOW) {
        return new Promise((resolve, reject) => {
            const check = () => {
                const v = fn();
                if (v) {
                    clearTimeout(timer);
                    this.waiters.delete(check);
                    resolve(v);
                } else if (this.exit && !fn()) {
                    clearTimeout(timer);
                    this.waiters.delete(check);
                    reject(new Error(`the bridge exited (${JSON.stringify(this.exit)}) before ${what}; log:\n${this.log}`));
                }
            };
            const timer = setTimeout(() => {
                this.waiters.delete(check);
                reject(new Error(`timed out waiting for ${what}; log:\n${this.log}`));
            }, timeout);
            this.waiters.add(check);
            check();
        });
    }

    reply(id) {
        return this.until(() => this.lines.find((m) => m.id === id), `the reply to ${id}`);
    }

    async initialize() {
        this.send({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: INIT_PARAMS });
        const r = await this.reply('init');
        assert.ok(r.result, JSON.stringify(r));
        this.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
        return r.result;
    }

    // the exit, bounded in time; stdin stays open unless the test ends it
    async exitStatus(timeout = 10000 * SLOW) {
        let timer;
        const r = await Promise.race([
            this.exited,
            new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeout); }),
        ]);
        clearTimeout(timer);
        assert.ok(r, `the bridge did not exit within ${timeout} ms; log:\n${this.log}`);
        // a build with sanitizers (TIDAL_HELPER_BIN) reports at exit
        assert.doesNotMatch(this.log, SANITIZER, this.log);
        return r;
    }

    kill() {
        if (!this.exit && pidAlive(this.pid)) {
            this.proc.kill('SIGKILL');
        }
        live.delete(this);
    }
}


// the SDK's stdio client with the bridge as its server
// (events: ask for notifications/tidal/*, as the tests' clients do)
export async function sdkClient(args, name = 'bridge-test', env = undefined,
                                { events = true } = {}) {
    const transport = new StdioClientTransport({
        command: HELPER_BIN,
        args: ['--stdio', ...args],
        stderr: 'pipe',
        env,
    });
    const c = {
        transport, log: '', notes: [], waiters: new Set(), closed: false,
        client: new Client({ name, version: '1.0.0' },
            events ? { capabilities: EVENTS_CAPABILITIES } : undefined),
    };
    const wake = () => c.waiters.forEach((w) => w());
    transport.stderr.on('data', (d) => {
        c.log += d.toString();
        wake();
    });
    c.client.fallbackNotificationHandler = async (n) => {
        c.notes.push(n);
        wake();
    };
    c.client.onclose = () => {
        c.closed = true;
        wake();
    };
    c.until = (fn, what, timeout = 10000 * SLOW) => until(c.waiters, fn, timeout,
        () => `${what}; bridge log:\n${c.log}`);
    const kill = () => {
        const pid = transport.pid;
        if (pid && pidAlive(pid)) {
            process.kill(pid, 'SIGKILL');
        }
    };
    live.add({ kill });
    try {
        await c.client.connect(transport);
    } catch (e) {
        kill();
        throw new Error(`${e.message}\nbridge log:\n${c.log}`);
    }
    c.pid = transport.pid;
    return c;
}


export async function gone(c) {
    await waitFor(() => !pidAlive(c.pid), { timeout: 10000, what: `the bridge (pid ${c.pid}) to exit` });
    assert.doesNotMatch(c.log, SANITIZER, c.log);
}
