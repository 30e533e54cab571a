// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A performer who joins by URL: the official SDK's
// StreamableHTTPClientTransport against real nginx and GHCi plays a
// pattern that is heard on the OSC port, sees the room's events on its
// GET stream, keeps every event through nginx -s reload and a killed
// worker (the SDK reconnects with Last-Event-ID), and ends with DELETE.
// A call from a client without a GET stream is answered as an event
// stream that carries the events it caused.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Room } from './lib/room.mjs';
import { waitFor, SLOW } from './lib/nginx.mjs';
import { ACCEPT_BOTH, httpUrl, openSession, openStream, post } from './lib/http.mjs';

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } =
    await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { CallToolResultSchema } = await import('@modelcontextprotocol/sdk/types.js');

const T = { timeout: 180000 * SLOW };
const EVENTS = { experimental: { 'tidal/events': {} } };

let room;

before(async () => {
    room = await Room.start({ name: 'http-room', workers: 2 });
});

after(async () => {
    await room?.stop();
});


async function httpPerformer(name) {
    const notes = [];
    const client = new Client({ name, version: '1.0.0' },
                              { capabilities: { experimental: { 'tidal/events': {} } } });
    client.fallbackNotificationHandler = async (n) => { notes.push(n); };
    const transport = new StreamableHTTPClientTransport(new URL(httpUrl(room.ngx)), {
        reconnectionOptions: {
            initialReconnectionDelay: 200, maxReconnectionDelay: 2000,
            reconnectionDelayGrowFactor: 1.5, maxRetries: 20,
        },
    });
    await client.connect(transport);
    return { client, transport, notes };
}

const seqs = (notes) => notes.map((n) => n.params?.seq).filter((s) => typeof s === 'number'
                                                                      && s > 0);


test('tidal_eval over Streamable HTTP is heard, and its events arrive on the GET stream', T, async () => {
    const p = await httpPerformer('http-performer');
    const since = Date.now();
    const r = await p.client.callTool({ name: 'tidal_eval',
                                        arguments: { channel: 'd1', pattern: 'sound "bd*2"' } },
                                      CallToolResultSchema, { timeout: 60000 });
    assert.equal(r.isError, false, JSON.stringify(r));
    await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival >= since,
                            { what: 'bd from the HTTP client', timeoutMs: 15000 });
    await waitFor(() => p.notes.some((n) => n.method === 'notifications/tidal/pattern_update'
                                            && n.params.channel === 'd1'
                                            && n.params.who === 'http-performer'),
                  { what: 'pattern_update on the GET stream' });

    // a mistake is GHCi's, with its line and column, and d1 plays on
    const bad = await p.client.callTool({ name: 'tidal_eval',
                                          arguments: { channel: 'd1', pattern: 'sound "bd" #' } },
                                        CallToolResultSchema, { timeout: 60000 });
    assert.equal(bad.isError, true);
    const after = Date.now();
    await room.dirt.waitFor((e) => e.s === 'bd' && e.arrival >= after, { what: 'd1 still playing' });

    const sid = p.transport.sessionId;
    await p.transport.terminateSession();
    await p.client.close();
    const gone = await post(httpUrl(room.ngx), { jsonrpc: '2.0', id: 1, method: 'ping' },
                            { session: sid });
    assert.equal(gone.status, 404);
});


test('every event reaches the SDK client exactly once through nginx -s reload and a killed worker', T, async () => {
    const p = await httpPerformer('http-listener');
    // a WebSocket performer plays: room.client, a new one after each cut
    const play = async (n) => {
        const r = await room.call('tidal_eval', { channel: 'd2', pattern: `sound "hh*${n}"` });
        assert.equal(r.isError, false, r.text);
    };
    const sent = [];
    const record = async (n) => {
        await play(n);
        sent.push(n);
    };

    await record(1);
    await waitFor(() => p.notes.some((n) => n.params?.pattern === 'sound "hh*1"'),
                  { what: 'the first d2 event over HTTP' });

    const oldPids = room.ngx.workerPids();
    await room.reload();
    await room.clientAfterReload('ws-after-reload', oldPids).then((c) => { room.client = c; });
    await record(2);
    await record(3);

    room.ngx.expectLogLines(/exited on signal 9/);
    for (const pid of room.ngx.workerPids()) {
        process.kill(pid, 'SIGKILL');
    }
    await waitFor(async () => {
        try {
            room.client = await room.client2('ws-after-kill');
            return true;
        } catch {
            return false;
        }
    }, { what: 'new workers', timeout: 30000 });
    await room.ready();
    await play(4).then(() => sent.push(4));

    const patterns = () => p.notes.filter((n) => n.method === 'notifications/tidal/pattern_update'
                                                 && n.params.channel === 'd2')
        .map((n) => n.params.pattern);
    await waitFor(() => patterns().includes('sound "hh*4"'),
                  { what: 'the last d2 event over HTTP', timeout: 30000 });
    assert.deepEqual(patterns(), sent.map((n) => `sound "hh*${n}"`),
                     'each pattern_update once, in order');
    const s = seqs(p.notes.filter((n) => n.method?.startsWith('notifications/tidal/')
                                         && n.method !== 'notifications/tidal/metrics'));
    assert.deepEqual(s, [...new Set(s)], 'no event twice');
    await p.transport.terminateSession().catch(() => {});
    await p.client.close();
});


test('a call answered later comes as an event stream with the events it caused, when no GET stream is open', T, async () => {
    const url = httpUrl(room.ngx);
    const session = await openSession(url, { name: 'no-get', capabilities: EVENTS });
    const call = (pattern, id) => fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: ACCEPT_BOTH,
                   'mcp-session-id': session },
        body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
                               params: { name: 'tidal_eval',
                                         arguments: { channel: 'd3', pattern } } }),
    });

    const res = await call('sound "cp"', 11);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const events = parseSse(await res.text());
    const answer = events.at(-1);
    assert.equal(answer.json.id, 11, 'the answer comes last');
    assert.equal(answer.json.result.isError, false);
    const update = events.find((e) => e.json.method === 'notifications/tidal/pattern_update'
                                      && e.json.params.pattern === 'sound "cp"');
    assert.ok(update, `the event the call caused: ${JSON.stringify(events.map((e) => e.json.method))}`);
    assert.equal(update.id, String(update.json.params.seq));

    // a GET stream opened after it starts after what the POST carried
    const stream = await openStream(url, session);
    await call('sound "cp*2"', 12).then((r) => r.text());
    const again = await stream.next((e) => e.json.params?.pattern === 'sound "cp*2"');
    assert.ok(!stream.events.some((e) => Number(e.id) <= Number(update.id)), 'nothing twice');
    assert.ok(Number(again.id) > Number(update.id));

    // with the GET stream open, answers are JSON and the events go there
    const json = await call('sound "cp*3"', 13);
    assert.equal(json.headers.get('content-type'), 'application/json');
    assert.equal((await json.json()).id, 13);
    await stream.next((e) => e.json.params?.pattern === 'sound "cp*3"');
    stream.close();
});


function parseSse(text) {
    return text.split('\n\n').filter((b) => /^data: /m.test(b)).map((b) => {
        const id = /^id: (.*)$/m.exec(b)?.[1] ?? null;
        const data = /^data: (.*)$/m.exec(b)[1];
        return { id, json: JSON.parse(data) };
    });
}
