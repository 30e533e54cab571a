// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// MCP Streamable HTTP on the tidal_mcp location: the official SDK's
// StreamableHTTPClientTransport joins by URL; the wire, by hand: statuses
// and JSON-RPC error bodies, sessions, the event stream with its ids and
// Last-Event-ID, through a dropped stream, a reload and a killed worker,
// and the same events in the same order as a WebSocket client's.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startNginx, waitFor, SLOW } from './lib/nginx.mjs';
import {
    ACCEPT_BOTH, httpUrl, initializeMessage, post, openSession, openStream, say,
} from './lib/http.mjs';

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } =
    await import('@modelcontextprotocol/sdk/client/streamableHttp.js');

const T = { timeout: 60000 * SLOW };
const EVENTS = { experimental: { 'tidal/events': {} } };

let ngx;
let url;

before(async () => {
    ngx = await startNginx({
        workers: 2,
        location: 'tidal_max_message_size 4k; tidal_heartbeat_interval 1s;',
    });
    url = httpUrl(ngx);
});

after(async () => {
    await ngx?.stop();
});


test('the SDK joins by URL: initialize, tools, a call, its event on the GET stream, DELETE', T, async () => {
    const client = new Client({ name: 'sdk-http', version: '1.0.0' }, { capabilities: EVENTS });
    const transport = new StreamableHTTPClientTransport(new URL(url));
    const events = [];
    const errors = [];
    client.fallbackNotificationHandler = async (n) => { events.push(n); };
    client.onerror = (e) => errors.push(e);

    await client.connect(transport);
    assert.match(transport.sessionId, /^[0-9a-f]{32}$/);
    assert.equal(client.getServerVersion().name, 'ngx_tidal');

    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'tidal_eval'));

    await client.ping();

    const r = await client.callTool({ name: 'tidal_say', arguments: { text: 'over http' } });
    assert.equal(r.isError, false);
    const seq = r.structuredContent.seq;

    await waitFor(() => events.some((n) => n.params?.seq === seq),
                  { what: 'the chat event on the GET stream' });
    const ev = events.find((n) => n.params?.seq === seq);
    assert.equal(ev.method, 'notifications/tidal/chat');
    assert.equal(ev.params.text, 'over http');

    const sid = transport.sessionId;
    await transport.terminateSession();
    await client.close();

    const after = await post(url, { jsonrpc: '2.0', id: 9, method: 'ping' }, { session: sid });
    assert.equal(after.status, 404);
    assert.equal(after.json.error.code, -32001);
    assert.deepEqual(errors.filter((e) => !/abort/i.test(String(e))), []);
});


test('bad requests get the spec\'s status and a JSON-RPC error body', T, async () => {
    const session = await openSession(url);
    const cases = [
        ['no session', { jsonrpc: '2.0', id: 1, method: 'ping' }, {}, 400, -32600],
        ['unknown session', { jsonrpc: '2.0', id: 1, method: 'ping' },
         { session: '0123456789abcdef0123456789abcdef' }, 404, -32001],
        ['not a session id', { jsonrpc: '2.0', id: 1, method: 'ping' },
         { session: 'nope' }, 400, -32600],
        ['bad JSON', '{"jsonrpc": "2.0", "id": 1, "method"', { session }, 400, -32700],
        ['a batch', '[{"jsonrpc":"2.0","id":1,"method":"ping"}]', { session }, 400, -32600],
        ['a JSON string', '"ping"', { session }, 400, -32600],
        ['an unsupported MCP-Protocol-Version', { jsonrpc: '2.0', id: 1, method: 'ping' },
         { session, headers: { 'mcp-protocol-version': '1999-01-01' } }, 400, -32600],
        ['text/plain', { jsonrpc: '2.0', id: 1, method: 'ping' },
         { session, headers: { 'content-type': 'text/plain' } }, 415, -32000],
        ['Accept without text/event-stream', { jsonrpc: '2.0', id: 1, method: 'ping' },
         { session, headers: { accept: 'application/json' } }, 406, -32000],
        ['too large', { jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(5000) } },
         { session }, 413, -32600],
        ['initialize with a session', initializeMessage(), { session }, 400, -32600],
    ];
    for (const [what, msg, opts, status, code] of cases) {
        const r = await post(url, msg, opts);
        assert.equal(r.status, status, `${what}: ${r.text}`);
        assert.equal(r.headers.get('content-type'), 'application/json', what);
        assert.equal(r.json.jsonrpc, '2.0', what);
        assert.equal(r.json.id, null, what);
        assert.equal(r.json.error.code, code, what);
    }

    // the versions this server speaks, and an unknown method
    for (const v of ['2025-11-25', '2025-06-18', '2025-03-26']) {
        const r = await post(url, { jsonrpc: '2.0', id: 2, method: 'ping' },
                             { session, headers: { 'mcp-protocol-version': v } });
        assert.equal(r.status, 200, v);
        assert.deepEqual(r.json, { jsonrpc: '2.0', id: 2, result: {} });
    }
    const unknown = await post(url, { jsonrpc: '2.0', id: 3, method: 'no/such' }, { session });
    assert.equal(unknown.status, 200);
    assert.equal(unknown.json.error.code, -32601);

    // notifications and responses are accepted without a body
    const note = await post(url, { jsonrpc: '2.0', method: 'notifications/cancelled',
                                   params: { requestId: 99 } }, { session });
    assert.equal(note.status, 202);
    assert.equal(note.text, '');
    const resp = await post(url, { jsonrpc: '2.0', id: 'x', result: {} }, { session });
    assert.equal(resp.status, 202);

    // other methods, and GET without text/event-stream
    const put = await fetch(url, { method: 'PUT', body: '{}' });
    assert.equal(put.status, 405);
    assert.match(put.headers.get('allow'), /POST/);
    const get = await fetch(url, { headers: { accept: 'application/json', 'mcp-session-id': session } });
    assert.equal(get.status, 426, 'a GET that takes no event stream is told what the endpoint takes');
    assert.match(await get.text(), /WebSocket upgrade.*Streamable HTTP/);
    const noSession = await fetch(url, { headers: { accept: 'text/event-stream' } });
    assert.equal(noSession.status, 400);
    const badId = await fetch(url, { headers: { accept: 'text/event-stream',
                                                'mcp-session-id': session, 'last-event-id': 'x1' } });
    assert.equal(badId.status, 400);

    // the session still works after all that
    const ok = await post(url, { jsonrpc: '2.0', id: 4, method: 'ping' }, { session });
    assert.equal(ok.status, 200);
});


test('the event stream: ids are seqs, retry, comments, and Last-Event-ID replays exactly what was missed', T, async () => {
    const session = await openSession(url, { capabilities: EVENTS });
    const first = await openStream(url, session);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-type'), 'text/event-stream');
    assert.equal(first.headers.get('cache-control'), 'no-cache');

    const a = await say(url, session, 'one');
    const evA = await first.next((e) => e.json.params?.seq === a);
    assert.equal(evA.id, String(a));
    assert.ok(first.retry > 0, 'a retry field');
    await waitFor(() => first.comments > 0, { what: 'a heartbeat comment' });

    // dropped: events published meanwhile come back on the next stream
    first.close();
    const missed = [];
    for (let i = 0; i < 5; i++) {
        missed.push(await say(url, session, `missed ${i}`, 200 + i));
    }
    const second = await openStream(url, session, { lastEventId: a });
    for (const seq of missed) {
        await second.next((e) => e.json.params?.seq === seq);
    }
    const got = second.events.map((e) => Number(e.id));
    assert.deepEqual(got.slice(0, missed.length), missed, 'each missed event once, in order');

    // an id from the future, or one that left the ring, gets a snapshot
    const future = await openStream(url, session, { lastEventId: 1e15 });
    const snap = await future.next((e) => e.json.method === 'notifications/tidal/session_restore');
    assert.equal(Number(snap.id), snap.json.params.seq);
    future.close();
    second.close();
});


test('a session\'s newest stream gets the events; the older one ends', T, async () => {
    const session = await openSession(url, { capabilities: EVENTS });
    const older = await openStream(url, session);
    const a = await say(url, session, 'to the older');
    await older.next((e) => e.json.params?.seq === a);

    const newer = await openStream(url, session);
    const b = await say(url, session, 'to the newer');
    await newer.next((e) => e.json.params?.seq === b);
    await older.closed;
    assert.ok(!older.events.some((e) => e.json.params?.seq === b), 'each event on one stream');
    newer.close();
});


test('a stream without Last-Event-ID starts after its session\'s initialize, or where the last stream stopped', T, async () => {
    const session = await openSession(url, { capabilities: EVENTS });
    const early = await say(url, session, 'before any stream');
    const s1 = await openStream(url, session);
    await s1.next((e) => e.json.params?.seq === early);
    s1.close();
    await s1.closed;
    // the server notices the close at its next write: the heartbeat (1s)
    await new Promise((r) => setTimeout(r, 2500));
    const late = await say(url, session, 'between streams');
    const s2 = await openStream(url, session);
    await s2.next((e) => e.json.params?.seq === late);
    assert.ok(!s2.events.some((e) => Number(e.id) <= early), 'nothing twice');
    s2.close();
});


test('a WebSocket client and an HTTP client see the same events in the same order', T, async () => {
    const session = await openSession(url, { capabilities: EVENTS });
    const stream = await openStream(url, session);

    const ws = new WebSocket(ngx.url, 'mcp');
    const wsEvents = [];
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    ws.on('message', (d) => {
        const m = JSON.parse(d);
        if (m.method?.startsWith('notifications/tidal/') && m.params.type === 'chat') {
            wsEvents.push(m.params.seq);
        }
    });
    ws.send(JSON.stringify(initializeMessage(1, { name: 'ws-peer', capabilities: EVENTS })));
    await new Promise((res) => ws.once('message', res));
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));

    const seqs = [];
    for (let i = 0; i < 10; i++) {
        if (i % 2) {
            ws.send(JSON.stringify({ jsonrpc: '2.0', id: 10 + i, method: 'tools/call',
                                     params: { name: 'tidal_say', arguments: { text: `ws ${i}` } } }));
        } else {
            seqs.push(await say(url, session, `http ${i}`, 300 + i));
        }
    }
    await waitFor(() => wsEvents.length >= 10, { what: 'ten chat events over WebSocket' });
    const httpChats = () => stream.events.filter((e) => e.json.params?.type === 'chat')
        .map((e) => e.json.params.seq);
    await waitFor(() => httpChats().length >= 10, { what: 'ten chat events over HTTP' });
    assert.deepEqual(httpChats(), wsEvents);
    ws.close();
    stream.close();
});


test('resume with Last-Event-ID across nginx -s reload and a killed worker', T, async () => {
    const session = await openSession(url, { capabilities: EVENTS });
    let stream = await openStream(url, session);
    const a = await say(url, session, 'before reload');
    await stream.next((e) => e.json.params?.seq === a);

    await ngx.reload();
    await stream.closed;                       // the old worker ends it
    const last = Number(stream.events.at(-1).id);
    const during = await say(url, session, 'after reload');
    stream = await openStream(url, session, { lastEventId: last });
    await stream.next((e) => e.json.params?.seq === during);
    assert.deepEqual(stream.events.map((e) => Number(e.id)).filter((s) => s > last)[0], during);

    // the worker holding the stream dies: nothing ends it cleanly
    ngx.expectLogLines(/exited on signal 9/);
    const b = await say(url, session, 'before the kill');
    await stream.next((e) => e.json.params?.seq === b);
    const lastSeen = Number(stream.events.at(-1).id);
    for (const pid of ngx.workerPids()) {
        process.kill(pid, 'SIGKILL');
    }
    await stream.closed;
    await waitFor(async () => (await post(url, { jsonrpc: '2.0', id: 5, method: 'ping' },
                                          { session }).catch(() => ({}))).status === 200,
                  { what: 'new workers', timeout: 15000 });
    const c = await say(url, session, 'after the kill');
    const again = await openStream(url, session, { lastEventId: lastSeen });
    await again.next((e) => e.json.params?.seq === c);
    const ids = again.events.map((e) => Number(e.id)).filter((s) => s > lastSeen);
    assert.equal(ids[0], lastSeen + 1, 'from the first missed event');
    assert.deepEqual(ids, [...new Set(ids)].sort((x, y) => x - y));
    again.close();
});


test('an HTTP session carries its role and a display name', T, async () => {
    const r = await post(url, initializeMessage(1, { name: 'carol', capabilities: EVENTS }));
    assert.equal(r.status, 200);
    assert.equal(r.json.result._meta['tidal/role'], 'performer');
    assert.equal(r.json.result._meta['tidal/session'], r.headers.get('mcp-session-id'));
    const session = r.headers.get('mcp-session-id');
    const stream = await openStream(url, session);
    const seq = await say(url, session, 'who am i');
    const ev = await stream.next((e) => e.json.params?.seq === seq);
    assert.equal(ev.json.params.who, 'carol');
    stream.close();

    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json',
                                                              accept: ACCEPT_BOTH },
                                   body: JSON.stringify(initializeMessage(2)) });
    assert.notEqual(res.headers.get('mcp-session-id'), session, 'each initialize a new session');
});
