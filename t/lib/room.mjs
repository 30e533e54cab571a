// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A room: nginx with ngx_tidal and its GHCi helper, OSC going to a
// DirtListener, spoken to by the official SDK's WebSocketClientTransport.
// It offers what t/lib/helper.mjs's Helper offers (call, ok, notes,
// waitNote, events, log, ghciPid, dirt, stop), so the music tests run the
// same over WebSocket and over stdio.  The log is nginx's error.log, where
// the helper writes too.

import fs from 'node:fs';
import WebSocket from 'ws';
import { DirtListener } from './osc.mjs';
import { startNginx, waitFor, SLOW } from './nginx.mjs';
import { alive } from './helper.mjs';
import { until } from './until.mjs';

// Node 20 has no global WebSocket; the SDK's transport expects one.
globalThis.WebSocket = WebSocket;

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { WebSocketClientTransport } = await import('@modelcontextprotocol/sdk/client/websocket.js');
const { CallToolResultSchema } = await import('@modelcontextprotocol/sdk/types.js');

// the helper is started by nginx on the first worker's first try; GHCi
// boots in well under a second here, slower on a loaded machine
const READY_TIMEOUT = 60000 * SLOW;


// the helper and GHCi pids nginx's error.log names, newest last
export function helperPids(log) {
    return [...log.matchAll(/tidal-helper\[(\d+)\]: info: serving nginx/g)].map((m) => Number(m[1]));
}

export function ghciPids(log) {
    return [...log.matchAll(/started GHCi \(pid (\d+)\)/g)].map((m) => Number(m[1]));
}


export class Room {
    // helper: extra tidal_* directives (http level); opts go to startNginx
    static async start({ dirt = null, name = 'room-test', helper = '', location = '', ...opts } = {}) {
        const r = new Room();
        r.dirt = dirt || await DirtListener.start();
        r.ownDirt = !dirt;
        r.name = name;
        try {
            r.ngx = await startNginx({
                helper: r.helperConf(helper),
                location,
                ...opts,
            });
            await r.connect();
            await r.ready();
        } catch (e) {
            await r.stop().catch(() => {});
            throw e;
        }
        return r;
    }

    constructor() {
        this.notes = [];
        this.waiters = new Set();
        this.clients = [];
    }

    helperConf(extra = '') {
        return `tidal_dirt_address 127.0.0.1:${this.dirt.port};\n    ${extra}`;
    }

    // nginx -s reload, with other helper directives or other options
    async reload({ helper, ...opts } = {}) {
        return this.ngx.reload(helper === undefined ? opts
            : { ...opts, helper: this.helperConf(helper) });
    }

    get log() {
        return this.ngx.errorLog();
    }

    get url() {
        return this.ngx.url;
    }

    // an SDK client of its own (the room's first is this.client)
    async client2(name = this.name, { url = this.url, notes = this.notes } = {}) {
        const transport = new WebSocketClientTransport(new URL(url));
        // the room's events, as notifications/tidal/* (docs/collaboration.md)
        const client = new Client({ name, version: '1.0.0' },
                                  { capabilities: { experimental: { 'tidal/events': {} } } });
        client.fallbackNotificationHandler = async (n) => {
            notes.push({ ...n, arrival: Date.now() });
            this._wake();
        };
        await client.connect(transport);
        this.clients.push(client);
        return client;
    }

    // a client of the workers a reload started: the old ones close theirs
    // with 1001 (go away, reconnect), so it joins once they are gone
    async clientAfterReload(name, oldPids) {
        await waitFor(() => oldPids.every((p) => !alive(p)),
            { timeout: 30000, what: `the old workers to exit (${oldPids.join(' ')})` });
        return this.client2(name);
    }

    async connect() {
        this.client = await this.client2();
    }

    // the helper answers (GHCi is up): tidal_get_state says "running"
    // the player runs and the checker for new patterns is up
    async ready({ timeout = READY_TIMEOUT } = {}) {
        await waitFor(async () => {
            const st = await this.call('tidal_get_state');
            return st.structuredContent.ghci === 'running' && /Tidal is ready/.test(this.log);
        }, { timeout, what: `GHCi running behind nginx; log:\n${this.log.slice(-3000)}` });
    }

    _wake() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    async call(name, args = {}, { timeout = 60000, client = this.client } = {}) {
        const r = await client.callTool({ name, arguments: args }, CallToolResultSchema, { timeout });
        r.text = r.content.map((c) => c.text).join('\n');
        return r;
    }

    async ok(name, args = {}, opts) {
        const r = await this.call(name, args, opts);
        if (r.isError) {
            throw new Error(`${name} ${JSON.stringify(args)} failed: ${r.text}\nlog:\n${this.log.slice(-3000)}`);
        }
        return r;
    }

    waitNote(pred, { from = 0, timeout = 15000, what = 'a notification' } = {}) {
        return this._until(() => this.notes.slice(from).find(pred), timeout,
            () => `${what}; got ${JSON.stringify(this.notes.slice(from)).slice(0, 1500)}`);
    }

    // the log is a file written by other processes: polled
    async waitLog(re, { timeout = 15000 } = {}) {
        return waitFor(() => this.log.match(re), { timeout, what: `${re} in error.log` });
    }

    _until(fn, timeout, describe) {
        return until(this.waiters, fn, timeout * SLOW, describe);
    }

    events(type, from = 0) {
        return this.notes.slice(from)
            .filter((n) => n.method === `notifications/tidal/${type}`)
            .map((n) => n.params);
    }

    helperPid() {
        const all = helperPids(this.log);
        return all.length ? all[all.length - 1] : null;
    }

    // the GHCi that plays now
    ghciPid() {
        const all = [...this.log.matchAll(/the player is GHCi pid (\d+)/g)];
        return all.length ? Number(all[all.length - 1][1]) : null;
    }

    get pid() {
        return this.helperPid();
    }

    get ghciPids() {
        return new Set(ghciPids(this.log));
    }

    async waitGhci() {
        await this.ready();
        return waitFor(() => this.ghciPid(), { what: `the player's pid in the log:\n${this.log.slice(-2000)}` });
    }

    // every helper and GHCi this room ever started
    processes() {
        const log = this.log;
        return [...helperPids(log), ...ghciPids(log)];
    }

    // stops nginx; the helper and GHCi must follow it out
    async stop() {
        for (const c of this.clients) {
            await c.close().catch(() => {});
        }
        const pids = this.ngx ? this.processes() : [];
        try {
            if (this.ngx) {
                await this.ngx.stop();
            }
            await waitFor(() => pids.every((p) => !alive(p)), {
                timeout: 10000, what: `the helper and GHCi to exit with nginx (${pids.join(' ')})`,
            });
        } finally {
            for (const p of pids) {
                if (alive(p)) {
                    try {
                        process.kill(p, 'SIGKILL');
                    } catch {
                        // gone meanwhile
                    }
                }
            }
            if (this.ownDirt) {
                this.dirt.close();
            }
        }
    }
}


export function readJson(file) {
    try {
        return JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
        return null;
    }
}
