// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// html/tidal-client.js without a server: backoff bounds, initialize _meta,
// and each event delivered once across reconnects, over a stand-in socket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    TidalClient, backoffDelay, initializeParams, sequenceEvent,
    sessionFromInitialize, PROTOCOL_VERSION,
} from '../html/tidal-client.js';

const URL = 'ws://127.0.0.1:8080/mcp';
const SESSION_A = '0123456789abcdef0123456789abcdef';
const SESSION_B = 'fedcba9876543210fedcba9876543210';


// A WebSocket the test drives by hand: it records what the client sends and
// lets the test open it, deliver text frames to it and close it.
class FakeSocket extends EventTarget {
    static made = [];

    constructor(url, protocol) {
        super();
        this.url = url;
        this.protocol = protocol;
        this.readyState = 0;
        this.sent = [];
        this.closedWith = undefined;
        FakeSocket.made.push(this);
    }

    send(text) {
        this.sent.push(JSON.parse(text));
    }

    close(code) {
        if (this.readyState === 3) {
            return;
        }
        this.closedWith = code;
        this.readyState = 3;
        queueMicrotask(() => this.#fire('close', { code: code ?? 1005, reason: '' }));
    }

    open() {
        this.readyState = 1;
        this.#fire('open');
    }

    deliver(msg) {
        this.#fire('message', { data: typeof msg === 'string' ? msg : JSON.stringify(msg) });
    }

    serverClose(code = 1006, reason = '') {
        this.readyState = 3;
        this.#fire('close', { code, reason });
    }

    lastRequest(method) {
        return this.sent.findLast((m) => m.method === method);
    }

    #fire(type, fields = {}) {
        this.dispatchEvent(Object.assign(new Event(type), fields));
    }
}


async function until(what, predicate, ms = 2000) {
    const end = Date.now() + ms;
    while (!predicate()) {
        if (Date.now() > end) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((r) => setTimeout(r, 1));
    }
}


// A client on FakeSocket that records every event and status it emits.
function fakeClient(options = {}) {
    FakeSocket.made = [];
    const c = new TidalClient(URL, {
        name: 'unit', version: '1.2.3', WebSocket: FakeSocket,
        random: () => 0, fetch: null, ...options,
    });
    const seen = { events: [], status: [], errors: [] };
    c.addEventListener('event', (e) => seen.events.push(e.detail));
    c.addEventListener('status', (e) => seen.status.push(e.detail));
    c.addEventListener('error', (e) => seen.errors.push(e.detail));
    return { c, seen };
}


async function nextSocket(n) {
    await until(`socket #${n}`, () => FakeSocket.made.length >= n);
    return FakeSocket.made[n - 1];
}


function initResult(id, meta) {
    return {
        jsonrpc: '2.0', id,
        result: {
            protocolVersion: PROTOCOL_VERSION, capabilities: { tools: {} },
            serverInfo: { name: 'ngx_tidal', version: '0' }, _meta: meta,
        },
    };
}


// Opens the socket, answers its initialize with `meta`, returns its params.
function handshake(ws, meta) {
    ws.open();
    const init = ws.lastRequest('initialize');
    ws.deliver(initResult(init.id, meta));
    return init.params;
}


function ev(type, seq, fields = {}) {
    return {
        jsonrpc: '2.0', method: `notifications/tidal/${type}`,
        params: { type, seq, timestamp: 1764108000000 + seq, ...fields },
    };
}


test('backoffDelay with random 0 is always 0', () => {
    for (let n = 0; n < 40; n++) {
        assert.equal(backoffDelay(n, { random: () => 0 }), 0);
    }
});

test('backoffDelay with random 0.999 is just under min(30000, 1000 * 2^n)', () => {
    const caps = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
    caps.forEach((cap, n) => {
        const d = backoffDelay(n, { random: () => 0.999 });
        assert.ok(d < cap && d >= cap * 0.999 - 1e-9, `attempt ${n}: ${d} vs cap ${cap}`);
    });
    // a long outage must not overflow into NaN or Infinity
    assert.equal(backoffDelay(5000, { random: () => 0.5 }), 15000);
});

test('backoffDelay honours minDelay and maxDelay', () => {
    const opts = { minDelay: 250, maxDelay: 1500, random: () => 0.999 };
    assert.deepEqual([0, 1, 2, 3, 4].map((n) => Math.round(backoffDelay(n, opts))),
                     [250, 500, 999, 1499, 1499]);
});

test('initializeParams has _meta only when there is a session', () => {
    assert.deepEqual(initializeParams({ name: 'ui', version: '1.0.0' }), {
        protocolVersion: '2025-11-25',
        capabilities: { experimental: { 'tidal/events': {} } },
        clientInfo: { name: 'ui', version: '1.0.0' },
    });
    assert.deepEqual(initializeParams({ name: 'ui', version: '1.0.0', session: SESSION_A, lastSeq: 41 }), {
        protocolVersion: '2025-11-25',
        capabilities: { experimental: { 'tidal/events': {} } },
        clientInfo: { name: 'ui', version: '1.0.0' },
        _meta: { 'tidal/session': SESSION_A, 'tidal/last_seq': 41 },
    });
});

test('sequenceEvent drops seq <= lastSeq and lets metrics through without advancing', () => {
    assert.deepEqual(sequenceEvent(null, 'chat', 5), { deliver: true, lastSeq: 5 });
    assert.deepEqual(sequenceEvent(5, 'chat', 5), { deliver: false, lastSeq: 5 });
    assert.deepEqual(sequenceEvent(5, 'chat', 4), { deliver: false, lastSeq: 5 });
    assert.deepEqual(sequenceEvent(5, 'metrics', 5), { deliver: true, lastSeq: 5 });
    assert.deepEqual(sequenceEvent(5, 'metrics', 9), { deliver: true, lastSeq: 5 });
    assert.deepEqual(sequenceEvent(5, 'session_restore', 9), { deliver: true, lastSeq: 9 });
});

test('sessionFromInitialize: resumed keeps the highest seq, a fresh session takes the server\'s', () => {
    const prev = { session: SESSION_A, lastSeq: 50 };
    assert.deepEqual(
        sessionFromInitialize(prev, { _meta: { 'tidal/session': SESSION_A, 'tidal/seq': 40, 'tidal/resumed': true, 'tidal/role': 'admin' } }),
        { session: SESSION_A, lastSeq: 50, role: 'admin', resumed: true });
    // a restarted nginx with a new zone counts from 0 again
    assert.deepEqual(
        sessionFromInitialize(prev, { _meta: { 'tidal/session': SESSION_B, 'tidal/seq': 3, 'tidal/resumed': false, 'tidal/role': 'listener' } }),
        { session: SESSION_B, lastSeq: 3, role: 'listener', resumed: false });
    // a server that says resumed with another id has not resumed ours
    assert.equal(sessionFromInitialize(prev, { _meta: { 'tidal/session': SESSION_B, 'tidal/resumed': true } }).resumed, false);
});

test('client: session and last_seq go in initialize _meta, never in the URL; events once across reconnects', async () => {
    const { c, seen } = fakeClient();

    const ready = c.connect();
    const ws1 = await nextSocket(1);
    assert.equal(ws1.url, URL);
    assert.equal(ws1.protocol, 'mcp');
    const p1 = handshake(ws1, { 'tidal/session': SESSION_A, 'tidal/seq': 10, 'tidal/resumed': false, 'tidal/role': 'performer' });
    await ready;
    assert.equal(p1._meta, undefined);
    assert.deepEqual(p1.clientInfo, { name: 'unit', version: '1.2.3' });
    assert.deepEqual(ws1.sent.at(-1), { jsonrpc: '2.0', method: 'notifications/initialized' });
    assert.equal(c.session, SESSION_A);
    assert.equal(c.role, 'performer');
    assert.equal(c.lastSeq, 10);

    ws1.deliver(ev('chat', 10, { who: 'a', text: 'old' }));    // before we joined
    ws1.deliver(ev('chat', 11, { who: 'a', text: 'one' }));
    ws1.deliver(ev('chat', 12, { who: 'a', text: 'two' }));
    ws1.deliver(ev('metrics', 12, { connections: 1 }));
    ws1.deliver(ev('chat', 12, { who: 'a', text: 'two' }));    // duplicate
    assert.equal(c.lastSeq, 12);

    const pending = c.call('tidal_say', { text: 'lost' });
    ws1.serverClose(1001, 'going away');
    await assert.rejects(pending, (err) => err.code === undefined && /connection lost/.test(err.message));

    const ws2 = await nextSocket(2);
    assert.ok(!ws2.url.includes(SESSION_A));
    const p2 = handshake(ws2, { 'tidal/session': SESSION_A, 'tidal/seq': 11, 'tidal/resumed': true, 'tidal/role': 'performer' });
    assert.deepEqual(p2._meta, { 'tidal/session': SESSION_A, 'tidal/last_seq': 12 });
    ws2.deliver(ev('chat', 12, { who: 'a', text: 'two' }));    // replayed again
    ws2.deliver(ev('session_restore', 14, { channels: {}, tempo: {}, history: [] }));
    ws2.deliver(ev('chat', 14, { who: 'b', text: 'three' }));  // inside the snapshot
    ws2.deliver(ev('chat', 15, { who: 'b', text: 'four' }));

    ws2.serverClose(1008, 'too slow');
    const ws3 = await nextSocket(3);
    const p3 = handshake(ws3, { 'tidal/session': SESSION_B, 'tidal/seq': 2, 'tidal/resumed': false, 'tidal/role': 'listener' });
    assert.deepEqual(p3._meta, { 'tidal/session': SESSION_A, 'tidal/last_seq': 15 });
    assert.equal(c.session, SESSION_B);
    assert.equal(c.role, 'listener');
    ws3.deliver(ev('chat', 3, { who: 'c', text: 'fresh zone' }));

    assert.deepEqual(seen.events.map((e) => `${e.type}:${e.seq}`),
                     ['chat:11', 'chat:12', 'metrics:12', 'session_restore:14', 'chat:15', 'chat:3']);
    assert.equal(c.lastSeq, 3);

    const opens = seen.status.filter((s) => s.state === 'open');
    assert.deepEqual(opens.map((s) => [s.resumed, s.session]),
                     [[false, SESSION_A], [true, SESSION_A], [false, SESSION_B]]);
    const closes = seen.status.filter((s) => s.state === 'closed');
    assert.deepEqual(closes.map((s) => [s.code, s.reason]), [[1001, 'going away'], [1008, 'too slow']]);

    c.close();
    assert.equal(ws3.closedWith, 1000);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(FakeSocket.made.length, 3, 'no reconnect after close()');
    assert.deepEqual(seen.status.at(-1).state, 'closed');
    assert.equal(seen.status.at(-1).delay, null);
});

test('client: reconnect delays double up to maxDelay and restart after a successful initialize', async () => {
    const { c, seen } = fakeClient({ minDelay: 1, maxDelay: 8, random: () => 0.999 });
    const ready = c.connect();

    for (let n = 1; n <= 6; n++) {
        (await nextSocket(n)).serverClose(1006);
    }
    handshake(await nextSocket(7), { 'tidal/session': SESSION_A, 'tidal/seq': 0 });
    await ready;
    (await nextSocket(7)).serverClose(1006);
    await nextSocket(8);
    c.close();

    const delays = seen.status.filter((s) => s.state === 'closed' && s.delay !== null)
        .map((s) => [s.attempt, Math.round(s.delay * 1000) / 1000]);
    assert.deepEqual(delays, [[1, 0.999], [2, 1.998], [3, 3.996], [4, 7.992], [5, 7.992], [6, 7.992], [1, 0.999]]);
    assert.equal(seen.status.find((s) => s.state === 'open').attempt, 0);
});

test('client: ids increase, answers match by id, JSON-RPC errors carry code and data', async () => {
    const { c } = fakeClient();
    const ready = c.connect();
    const ws = await nextSocket(1);
    handshake(ws, {});
    await ready;

    const a = c.request('tools/list');
    const b = c.call('tidal_eval', { channel: 'd1', pattern: 's "bd"' });
    const [ra, rb] = ws.sent.slice(-2);
    assert.ok(Number.isInteger(ra.id) && rb.id > ra.id);
    assert.deepEqual(rb.params, { name: 'tidal_eval', arguments: { channel: 'd1', pattern: 's "bd"' } });

    ws.deliver({ jsonrpc: '2.0', id: rb.id, error: { code: -32602, message: 'Tool tidal_eval requires role performer', data: { role: 'listener' } } });
    ws.deliver({ jsonrpc: '2.0', id: ra.id, result: { tools: [] } });
    assert.deepEqual(await a, { tools: [] });
    await assert.rejects(b, (err) => err.code === -32602 && err.data.role === 'listener'
                                     && err.message === 'Tool tidal_eval requires role performer');
    c.close();
});

test('client: a request with no answer times out; junk is reported and skipped', async () => {
    const { c, seen } = fakeClient();
    const ready = c.connect();
    const ws = await nextSocket(1);
    handshake(ws, { 'tidal/session': SESSION_A, 'tidal/seq': 0 });
    await ready;

    await assert.rejects(c.request('ping', undefined, { timeout: 5 }), /no answer in 5 ms/);

    ws.deliver('{not json');
    ws.deliver('[1,2]');
    ws.deliver({ jsonrpc: '2.0', method: 'notifications/tidal/chat', params: 'nope' });
    ws.deliver(ev('chat', 1, { who: 'a', text: 'still here' }));
    assert.equal(seen.errors.length, 3);
    assert.equal(seen.errors[0].raw, '{not json');
    assert.deepEqual(seen.events.map((e) => e.text), ['still here']);
    assert.equal(c.state, 'open');

    ws.deliver({ jsonrpc: '2.0', id: 'srv-1', method: 'ping' });
    assert.deepEqual(ws.sent.at(-1), { jsonrpc: '2.0', id: 'srv-1', result: {} });
    c.close();
});

test('client: requests while not open reject; a refused initialize is final', async () => {
    const { c, seen } = fakeClient();
    await assert.rejects(c.call('tidal_say', { text: 'early' }), /not connected/);

    const ready = c.connect();
    const ws = await nextSocket(1);
    ws.open();
    const init = ws.lastRequest('initialize');
    ws.deliver({ jsonrpc: '2.0', id: init.id, error: { code: -32602, message: 'Unsupported protocol version' } });
    await assert.rejects(ready, (err) => err.code === -32602);
    assert.equal(c.state, 'closed');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(FakeSocket.made.length, 1);
    assert.equal(seen.errors.length, 1);
});


// What the client's fetch asked for, and a canned answer.
function fakeFetch(status, body = '') {
    const asked = [];
    const fetch = async (url, init) => {
        asked.push({ url, init });
        return { status, text: async () => body };
    };
    return { fetch, asked };
}

test('client: an upgrade refused with 403 is final (found by a plain GET of the endpoint)', async () => {
    const { fetch, asked } = fakeFetch(403, 'this Host or Origin is not allowed here (DNS rebinding protection); the rest\nmore\n');
    const { c, seen } = fakeClient({ fetch, minDelay: 50, maxDelay: 50 });
    const ready = c.connect();
    (await nextSocket(1)).serverClose(1006);
    await assert.rejects(ready, (err) => err.status === 403 && /DNS rebinding protection\); the rest$/.test(err.message));
    assert.equal(asked.length, 1);
    assert.equal(asked[0].url, 'http://127.0.0.1:8080/mcp');
    assert.equal(seen.errors.length, 1);
    assert.equal(seen.errors[0].status, 403);
    assert.equal(c.state, 'closed');
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(FakeSocket.made.length, 1, 'no reconnect after a 403');
});

test('client: a failed upgrade whose GET is not 403 (or fails) is retried; an opened socket is not probed', async () => {
    for (const fetch of [fakeFetch(426).fetch, async () => { throw new TypeError('fetch failed'); }]) {
        let asked = 0;
        const { c, seen } = fakeClient({ fetch: (...a) => { asked++; return fetch(...a); }, minDelay: 1, maxDelay: 1 });
        const ready = c.connect();
        (await nextSocket(1)).serverClose(1006);
        (await nextSocket(2)).serverClose(1006);
        handshake(await nextSocket(3), { 'tidal/session': SESSION_A, 'tidal/seq': 0 });
        await ready;
        (await nextSocket(3)).serverClose(1001);
        await nextSocket(4);
        c.close();
        assert.equal(asked, 2, 'one GET per socket that never opened');
        assert.equal(seen.errors.length, 0);
    }
});

test('client: wss:// is probed over https://', async () => {
    const { fetch, asked } = fakeFetch(403);
    FakeSocket.made = [];
    const c = new TidalClient('wss://studio.example/mcp', { WebSocket: FakeSocket, fetch, random: () => 0 });
    const ready = c.connect();
    (await nextSocket(1)).serverClose(1006);
    await assert.rejects(ready, (err) => err.status === 403);
    assert.equal(asked[0].url, 'https://studio.example/mcp');
});


test('initializeParams adds the caller\'s experimental capabilities to the events opt-in', () => {
    const p = initializeParams({ name: 'ui', version: '1.0.0', experimental: { 'tidal/sound': {} } });
    assert.deepEqual(p.capabilities, { experimental: { 'tidal/sound': {}, 'tidal/events': {} } });
});
