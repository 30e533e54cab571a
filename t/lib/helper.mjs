// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper --stdio under test: spawned by the official SDK's
// StdioClientTransport with its OSC going to a DirtListener on a free
// loopback port; every notification it sends and everything it logs is
// kept.  Whatever a test leaves running (helper, GHCi) is killed when the
// test file ends, even on failure.  TIDAL_HELPER_BIN runs another build
// (e.g. one with -fsanitize=address,undefined, whose reports fail stop()).

import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { DirtListener } from './osc.mjs';
import { EVENTS_CAPABILITIES } from './ws.mjs';
import { waitFor } from './nginx.mjs';
import { until } from './until.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const HELPER_BIN = process.env.TIDAL_HELPER_BIN
    || path.join(REPO, 'build/helper/tidal-helper');

export const BOOT_FILE = path.join(REPO, 'src/helper/BootTidal.hs');

// the helper does not involve nginx: the ASan pass need not run it again
export const SKIP = process.env.TIDAL_ASAN === '1'
    ? 'the helper tests run in the plain integration pass' : false;

// the tools tidal-helper --stdio offers: the module's, without chat
export const HELPER_TOOLS = [
    'tidal_get_state', 'tidal_get_history', 'tidal_eval', 'tidal_hush',
    'tidal_silence', 'tidal_solo', 'tidal_unsolo', 'tidal_mute',
    'tidal_unmute', 'tidal_set_tempo',
];

const live = new Set();

// a zombie (exited, not yet reaped by whoever inherited it) is not alive
export function alive(pid) {
    try {
        process.kill(pid, 0);
    } catch {
        return false;
    }
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
        return false;
    }
}

function killLeftovers() {
    for (const h of [...live]) {
        h.killAll();
    }
}

process.on('exit', killLeftovers);


export class Helper {
    constructor(dirt, args, name) {
        this.dirt = dirt;
        this.notes = [];
        this.log = '';
        this.waiters = new Set();
        this.ghciPids = new Set();
        this.transport = new StdioClientTransport({
            command: HELPER_BIN,
            args: ['--stdio', '--dirt', `127.0.0.1:${dirt.port}`, ...args],
            stderr: 'pipe',
        });
        this.transport.stderr.on('data', (chunk) => {
            this.log += chunk.toString();
            for (const m of this.log.matchAll(/started GHCi \(pid (\d+)\)/g)) {
                this.ghciPids.add(Number(m[1]));
            }
            this._wake();
        });
        // the tests watch the room's events: asked for as the module's
        this.client = new Client({ name, version: '1.0.0' },
            { capabilities: EVENTS_CAPABILITIES });
        this.client.fallbackNotificationHandler = async (n) => {
            this.notes.push({ ...n, arrival: Date.now() });
            this._wake();
        };
    }

    // args: extra command line options; dirt: a DirtListener to share
    static async start({ args = [], dirt = null, name = 'helper-test' } = {}) {
        const d = dirt || await DirtListener.start();
        const h = new Helper(d, args, name);
        h.ownDirt = !dirt;
        live.add(h);
        try {
            await h.client.connect(h.transport);
        } catch (e) {
            await h.stop();
            throw new Error(`${e.message}\nhelper log:\n${h.log}`);
        }
        h.pid = h.transport.pid;
        return h;
    }

    _wake() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    // a tools/call; the result is checked against the SDK's schema
    async call(name, args = {}, { timeout = 60000 } = {}) {
        const r = await this.client.callTool({ name, arguments: args },
            CallToolResultSchema, { timeout });
        r.text = r.content.map((c) => c.text).join('\n');
        return r;
    }

    async ok(name, args = {}) {
        const r = await this.call(name, args);
        if (r.isError) {
            throw new Error(`${name} ${JSON.stringify(args)} failed: ${r.text}\nhelper log:\n${this.log.slice(-3000)}`);
        }
        return r;
    }

    // the first notification (after index from) for which pred holds
    waitNote(pred, { from = 0, timeout = 15000, what = 'a notification' } = {}) {
        return this._until(() => this.notes.slice(from).find(pred), timeout,
            () => `${what}; got ${JSON.stringify(this.notes.slice(from)).slice(0, 1500)}`);
    }

    waitLog(re, { timeout = 15000 } = {}) {
        return this._until(() => this.log.match(re), timeout,
            () => `${re} in the helper's log:\n${this.log.slice(-3000)}`);
    }

    _until(fn, timeout, describe) {
        return until(this.waiters, fn, timeout, describe);
    }

    events(type, from = 0) {
        return this.notes.slice(from)
            .filter((n) => n.method === `notifications/tidal/${type}`)
            .map((n) => n.params);
    }

    // the pid of the GHCi that plays now, from the helper's log
    ghciPid() {
        const all = [...this.log.matchAll(/the player is GHCi pid (\d+)/g)];
        return all.length ? Number(all[all.length - 1][1]) : null;
    }

    async waitGhci() {
        await this.waitLog(/Tidal is ready/);
        return this.ghciPid();
    }

    killAll() {
        for (const pid of [this.pid, ...this.ghciPids]) {
            if (pid && alive(pid)) {
                try {
                    process.kill(pid, 'SIGKILL');
                } catch {
                    // gone meanwhile
                }
            }
        }
        live.delete(this);
    }

    // ends the helper the way an MCP client does (stdin closed, then
    // signals) and checks that no GHCi is left behind
    async stop() {
        try {
            await this.client.close();
        } catch {
            // the transport may already be closed
        }
        try {
            await waitFor(() => [...this.ghciPids, this.pid].every((p) => !p || !alive(p)),
                { timeout: 10000, what: 'the helper and its GHCi to exit' });
        } finally {
            this.killAll();
            if (this.ownDirt) {
                this.dirt.close();
            }
        }
        // a helper built with sanitizers (TIDAL_HELPER_BIN) reports here
        if (/AddressSanitizer|LeakSanitizer|runtime error:/.test(this.log)) {
            throw new Error(`the helper reported a sanitizer error:\n${this.log.slice(-6000)}`);
        }
    }
}


// a path in the temp dir that must never come to exist
export function escapePath() {
    return path.join('/tmp', `tidal-escape-${process.pid}-${Math.random().toString(36).slice(2)}`);
}

export function exists(file) {
    return fs.existsSync(file);
}

// a UDP port free right now (for Tidal's tempo server)
export async function freeUdpPort() {
    const s = dgram.createSocket('udp4');
    await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.bind(0, '0.0.0.0', resolve);
    });
    const { port } = s.address();
    await new Promise((resolve) => s.close(resolve));
    return port;
}
