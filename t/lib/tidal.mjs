// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The collaboration side of ngx_tidal as a user sees it: MCP clients that
// keep every event they are sent, tidal_publish and tidal_status over HTTP,
// and the checks every event stream must pass (consecutive seq numbers).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
    CallToolResultSchema, InitializeResultSchema, ListToolsResultSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { SLOW, waitFor } from './nginx.mjs';
import { DEFAULT_TIMEOUT, INIT_PARAMS, parseServerMessage, rpc } from './ws.mjs';

// the locations most collaboration tests add next to /mcp
export const PUBLISH_AND_STATUS = `
        location = /publish {
            tidal_publish;
        }
        location = /tidal-status {
            tidal_status;
        }`;

export const SESSION_ID = /^[0-9a-f]{32}$/;

export const ALL_TOOLS = [
    'tidal_get_state', 'tidal_get_history', 'tidal_who', 'tidal_say',
    'tidal_eval', 'tidal_hush', 'tidal_silence', 'tidal_solo', 'tidal_unsolo',
    'tidal_mute', 'tidal_unmute', 'tidal_set_tempo',
];

export const LISTENER_TOOLS = ['tidal_get_state', 'tidal_get_history', 'tidal_who'];


function schemaCheck(schema, value, what) {
    const r = schema.safeParse(value);
    if (!r.success) {
        throw new Error(`${what} does not match the SDK's schema: ${JSON.stringify(value).slice(0, 300)}\n`
            + `${JSON.stringify(r.error.issues).slice(0, 600)}`);
    }
    return value;
}


// -- an MCP client over 'ws' that keeps every message ----------------------

// Every message the server sends is validated (UTF-8, JSON, the SDK's
// JSONRPCMessageSchema) and kept in order in log, with the time it came;
// replies are matched to requests by id, so waiting for one never skips a
// notification.
export class TidalWs {
    constructor(ws, label) {
        this.ws = ws;
        this.label = label;
        this.log = [];
        this.pending = new Map();
        this.watchers = new Set();
        this.failure = null;
        this.closeInfo = null;
        this.nextId = 1;
        this.meta = null;
        this.closed = new Promise((resolve) => {
            ws.on('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString() };
                this.fail(new Error(`${this.label}: connection closed (${code} ${this.closeInfo.reason})`));
                resolve(this.closeInfo);
            });
        });
        ws.on('message', (data, isBinary) => {
            if (isBinary) {
                this.fail(new Error(`${this.label}: server sent a binary message`));
                return;
            }
            let m;
            try {
                m = parseServerMessage(Buffer.from(data)).json;
            } catch (e) {
                this.fail(new Error(`${this.label}: ${e.message}`));
                return;
            }
            this.log.push({ m, at: Date.now() });
            if (('result' in m || 'error' in m) && this.pending.has(m.id)) {
                const p = this.pending.get(m.id);
                this.pending.delete(m.id);
                p.resolve(m);
            }
            this.check();
        });
        ws.on('error', (e) => this.fail(new Error(`${this.label}: ${e.message}`)));
    }

    // Opens a WebSocket; rejects with the HTTP status when it is refused.
    // ca: the PEM that wss:// trusts (t/lib/tls.mjs's).
    static open(url, { protocol = 'mcp', headers, timeout = DEFAULT_TIMEOUT, label = 'client', ca } = {}) {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(url, protocol ? [protocol] : [], {
                headers, handshakeTimeout: timeout, ...(ca ? { ca: fs.readFileSync(ca) } : {}),
            });
            ws.once('open', () => resolve(new TidalWs(ws, label)));
            ws.once('error', reject);
            ws.once('unexpected-response', (req, res) => {
                const e = new Error(`${label}: handshake answered ${res.statusCode}`);
                e.status = res.statusCode;
                req.destroy();
                reject(e);
            });
        });
    }

    // open + initialize; the result's _meta is kept in meta; events: false
    // for a generic client that does not ask for notifications/tidal/*
    static async join(url, { name = 'tidal-tests', session, lastSeq, meta, headers, label, timeout, ca, events } = {}) {
        const c = await TidalWs.open(url, { headers, label: label || name, timeout, ca });
        try {
            await c.initialize({ name, session, lastSeq, meta, timeout, events });
        } catch (e) {
            c.terminate();
            throw e;
        }
        return c;
    }

    fail(err) {
        if (!this.failure) {
            this.failure = err;
        }
        for (const p of this.pending.values()) {
            p.reject(err);
        }
        this.pending.clear();
        this.check();
    }

    check() {
        for (const w of [...this.watchers]) {
            let ok;
            try {
                ok = w.pred();
            } catch (e) {
                w.reject(e);
                continue;
            }
            if (ok) {
                w.resolve(ok);
            } else if (this.failure) {
                w.reject(new Error(`${this.failure.message}, while waiting for ${w.what}; last messages: ${this.tail()}`));
            }
        }
    }

    tail(n = 5) {
        return this.log.slice(-n).map(({ m }) => JSON.stringify(m).slice(0, 160)).join('\n    ') || 'none';
    }

    // resolves with pred()'s value once it is truthy; pred is tested after
    // every message, so no event can slip by unseen
    until(pred, what = 'a condition', timeout = DEFAULT_TIMEOUT) {
        const now = pred();
        if (now) {
            return Promise.resolve(now);
        }
        if (this.failure) {
            return Promise.reject(new Error(`${this.failure.message}, while waiting for ${what}`));
        }
        return new Promise((resolve, reject) => {
            const w = { pred, what };
            const timer = setTimeout(() => {
                this.watchers.delete(w);
                reject(new Error(`${this.label}: timed out after ${timeout} ms waiting for ${what}; `
                    + `${this.log.length} messages, the last:\n    ${this.tail()}`));
            }, timeout);
            w.resolve = (v) => { clearTimeout(timer); this.watchers.delete(w); resolve(v); };
            w.reject = (e) => { clearTimeout(timer); this.watchers.delete(w); reject(e); };
            this.watchers.add(w);
        });
    }

    send(msg) {
        this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
    }

    request(method, params, { timeout = DEFAULT_TIMEOUT } = {}) {
        if (this.failure) {
            return Promise.reject(this.failure);
        }
        const id = `${this.label}-${this.nextId++}`;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new Error(`${this.label}: no answer to ${method} within ${timeout} ms`));
            }, timeout);
            this.pending.set(id, {
                resolve: (m) => { clearTimeout(timer); resolve(m); },
                reject: (e) => { clearTimeout(timer); reject(e); },
            });
            this.send(rpc(method, params, id));
        });
    }

    // initialize (resuming when session is given) and notifications/initialized;
    // returns the result, after checking it with the SDK's schema
    async initialize({ name = 'tidal-tests', session, lastSeq, meta, timeout, events = true } = {}) {
        const params = { ...INIT_PARAMS, clientInfo: { name, version: '1.0.0' } };
        if (!events) {
            params.capabilities = {};
        }
        if (meta !== undefined) {
            params._meta = meta;
        } else if (session !== undefined) {
            params._meta = { 'tidal/session': session, 'tidal/last_seq': lastSeq };
        }
        const r = await this.request('initialize', params, { timeout });
        if (!r.result) {
            throw new Error(`${this.label}: initialize failed: ${JSON.stringify(r)}`);
        }
        schemaCheck(InitializeResultSchema, r.result, 'the initialize result');
        this.meta = r.result._meta || {};
        this.send(rpc('notifications/initialized'));
        return r.result;
    }

    get session() {
        return this.meta?.['tidal/session'];
    }

    get joinSeq() {
        return this.meta?.['tidal/seq'];
    }

    // tools/call; the whole reply, result checked against the SDK's schema
    async call(name, args = {}, opts) {
        const r = await this.request('tools/call', { name, arguments: args }, opts);
        if (r.result) {
            schemaCheck(CallToolResultSchema, r.result, `the result of ${name}`);
        }
        return r;
    }

    async listTools() {
        const r = await this.request('tools/list', {});
        assert.ok(r.result, `tools/list failed: ${JSON.stringify(r)}`);
        schemaCheck(ListToolsResultSchema, r.result, 'the tools/list result');
        return r.result.tools.map((t) => t.name);
    }

    async state() {
        const r = await this.call('tidal_get_state', {});
        assert.ok(r.result && !r.result.isError, `tidal_get_state failed: ${JSON.stringify(r)}`);
        assert.ok(r.result.structuredContent, `tidal_get_state has no structuredContent: ${JSON.stringify(r.result)}`);
        return r.result.structuredContent;
    }

    // events (the params of notifications/tidal/*), in the order they came;
    // optionally only those of some types
    events(...types) {
        const out = [];
        for (const { m } of this.log) {
            if (isEvent(m) && (!types.length || types.includes(m.params.type))) {
                out.push(m.params);
            }
        }
        return out;
    }

    // the events that carry a seq of their own: all but metrics
    stream() {
        return this.events().filter((e) => e.type !== 'metrics');
    }

    // waits until an event matching pred has come; returns it
    untilEvent(pred, what, timeout) {
        let i = 0;   // the log only grows: look at each message once
        return this.until(() => {
            for (; i < this.log.length; i++) {
                const { m } = this.log[i];
                if (isEvent(m) && pred(m.params)) {
                    return m.params;
                }
            }
            return null;
        }, what, timeout);
    }

    untilCustom(id, timeout) {
        return this.untilEvent((e) => e.type === 'custom' && e.data?.id === id, `the custom event "${id}"`, timeout);
    }

    async close() {
        if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
            this.ws.close(1000);
        }
        let timer;
        return Promise.race([
            this.closed,
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`${this.label}: did not close`)), DEFAULT_TIMEOUT);
            }),
        ]).finally(() => clearTimeout(timer));
    }

    terminate() {
        this.ws.terminate();
    }
}


export function isEvent(m) {
    return typeof m?.method === 'string' && m.method.startsWith('notifications/tidal/');
}


// Every event is a notification named after its type and carries a seq
// and a timestamp in ms; returns the problems found, empty when none.
export function eventShapeProblems(events) {
    const problems = [];
    for (const e of events) {
        if (!Number.isSafeInteger(e.seq) || e.seq < 0) {
            problems.push(`bad seq: ${JSON.stringify(e).slice(0, 200)}`);
        }
        if (e.type !== 'metrics' && e.type !== 'session_restore'
                && !(Number.isSafeInteger(e.timestamp) && Math.abs(e.timestamp - Date.now()) < 600000)) {
            problems.push(`bad timestamp: ${JSON.stringify(e).slice(0, 200)}`);
        }
    }
    return problems;
}


// Checks a client's stream from its join: each event has the next seq,
// except a session_restore, which moves the client to the snapshot's seq
// (never backwards).  Returns the problems, empty when none.
export function streamProblems(events, fromSeq) {
    const problems = [];
    let last = fromSeq;
    for (const e of events) {
        if (e.type === 'session_restore') {
            if (!(e.seq >= last)) {
                problems.push(`session_restore with seq ${e.seq} after ${last}`);
            }
            last = e.seq;
        } else if (e.seq !== last + 1) {
            problems.push(`${e.type} event with seq ${e.seq} after ${last}${e.seq > last + 1 ? ' (a hole)' : ' (a repeat)'}`);
            last = Math.max(last, e.seq);
        } else {
            last = e.seq;
        }
    }
    return problems;
}


export function assertMethodsMatchTypes(client) {
    for (const { m } of client.log) {
        if (isEvent(m)) {
            assert.equal(m.method, `notifications/tidal/${m.params?.type}`,
                `the method names the event type: ${JSON.stringify(m).slice(0, 200)}`);
        }
    }
}


// -- HTTP: tidal_publish and tidal_status ----------------------------------

// One HTTP request on 127.0.0.1; resolves { status, headers, text, json }.
// body: a string, a Buffer or an object (sent as JSON); chunked: send it
// without Content-Length.
export function httpCall(port, { method = 'GET', path = '/', body, headers = {}, agent, chunked = false, timeout = 30000 * SLOW } = {}) {
    const data = body === undefined ? null
        : Buffer.isBuffer(body) ? body
            : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise((resolve, reject) => {
        const h = { ...headers };
        if (data && !chunked) {
            h['Content-Length'] = data.length;
        }
        const req = http.request({
            host: '127.0.0.1', port, method, path, headers: h, agent: agent || false, timeout,
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try {
                    json = JSON.parse(text);
                } catch { /* not JSON */ }
                resolve({ status: res.statusCode, headers: res.headers, text, json });
            });
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no response within ${timeout} ms`)));
        req.on('error', reject);
        if (data && chunked) {
            // two chunks, so it really is chunked
            const half = Math.floor(data.length / 2);
            req.write(data.subarray(0, half));
            req.end(data.subarray(half));
        } else {
            req.end(data || undefined);
        }
    });
}


// POSTs obj to /publish; must answer 200 {"seq": N}; returns N
export async function publish(port, obj, { agent, path = '/publish' } = {}) {
    const r = await httpCall(port, { method: 'POST', path, body: obj, agent, headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 200, `POST ${path} answered ${r.status}: ${r.text.slice(0, 300)}`);
    assert.ok(r.json && Number.isSafeInteger(r.json.seq), `POST ${path} answered ${r.text.slice(0, 300)}, not {"seq": N}`);
    return r.json.seq;
}


export async function tidalStatus(port, path = '/tidal-status') {
    const r = await httpCall(port, { path });
    assert.equal(r.status, 200, `GET ${path} answered ${r.status}: ${r.text.slice(0, 300)}`);
    assert.ok(r.json && typeof r.json === 'object', `GET ${path} is not JSON: ${r.text.slice(0, 300)}`);
    return r.json;
}


// clients per worker pid, from tidal_status
export async function clientsPerWorker(port) {
    const s = await tidalStatus(port);
    return new Map((s.workers || []).map((w) => [w.pid, w.clients]));
}


// Opens clients (join(i) opens and initializes number i) until there are
// at least min and tidal_status shows every worker of ngx with one;
// batch at a time, at most max.  Returns the clients.
export async function joinUntilEveryWorker(ngx, join, { min = 1, batch = 1, max = 400 } = {}) {
    const clients = [];
    try {
        for (;;) {
            const n = Math.min(batch, max - clients.length);
            clients.push(...await Promise.all(Array.from({ length: n }, (_, i) => join(clients.length + i))));
            const per = await waitFor(async () => {
                const m = await clientsPerWorker(ngx.port);
                const total = [...m.values()].reduce((a, b) => a + b, 0);
                return total >= clients.length ? m : null;
            }, { what: `tidal_status to count ${clients.length} clients` });
            if (clients.length >= min && ngx.workerPids().every((p) => per.get(p) > 0)) {
                return clients;
            }
            if (clients.length >= max) {
                throw new Error(`${clients.length} clients and still a worker without any: `
                    + `${JSON.stringify([...per])}, workers ${ngx.workerPids()}`);
            }
        }
    } catch (e) {
        clients.forEach((c) => c.terminate());
        throw e;
    }
}


// opens one client, then asks tidal_status which worker took it
export async function joinAndLocate(ngx, join) {
    const before = await clientsPerWorker(ngx.port);
    const c = await join();
    const pid = await waitFor(async () => {
        const after = await clientsPerWorker(ngx.port);
        const grown = [...after].filter(([p, n]) => n > (before.get(p) || 0));
        return grown.length === 1 ? grown[0][0] : null;
    }, { what: 'tidal_status to show which worker took the new client' });
    return { client: c, pid };
}


export function randomHex(bytes = 16) {
    return crypto.randomBytes(bytes).toString('hex');
}


export async function closeAll(clients) {
    await Promise.all(clients.map((c) => c.close().catch(() => c.terminate())));
}
