// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// What an HTTP client can grow is bounded: an event stream that stops
// reading is ended once its queue passes tidal_message_queue_bytes while a
// reading one gets everything; event streams count against
// tidal_max_connections (503 past it), POSTs do not; a flood of
// initialize requests cannot take the sessions of clients in use.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startNginx, waitFor, SLOW } from './lib/nginx.mjs';
import { publish } from './lib/tidal.mjs';
import { httpUrl, initializeMessage, openSession, openStream, post } from './lib/http.mjs';

const T = { timeout: 180000 * SLOW };
const EVENTS = 60;
const EVENT_BYTES = 200 * 1024;
const EVENTS_CAP = { experimental: { 'tidal/events': {} } };

let ngx;
let url;

before(async () => {
    ngx = await startNginx({
        zone: 'tidal_zone tidal 64m;',
        http: 'tidal_max_connections 3;',
        location: `
            tidal_message_queue_bytes 1m;
            tidal_metrics_interval off;`,
        server: `
        location = /publish {
            tidal_publish;
        }`,
    });
    url = httpUrl(ngx);
});

after(async () => {
    await ngx?.stop();
});


// a GET event stream on a raw socket, which the test can stop reading
function rawStream(session) {
    return new Promise((resolve, reject) => {
        const s = net.connect(ngx.port, '127.0.0.1', () => {
            s.write(`GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${ngx.port}\r\n`
                    + `Accept: text/event-stream\r\nMcp-Session-Id: ${session}\r\n\r\n`);
        });
        let head = '';
        const onData = (d) => {
            head += d;
            if (head.includes('retry:')) {
                s.off('data', onData);
                resolve(s);
            }
        };
        s.on('data', onData);
        s.once('error', reject);
    });
}


test('a stream that stops reading is ended at tidal_message_queue_bytes; a reading one gets every event', T, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const slowSession = await openSession(url, { capabilities: EVENTS_CAP });
    const fastSession = await openSession(url, { capabilities: EVENTS_CAP });
    const slow = await rawStream(slowSession);
    const ended = new Promise((res) => slow.once('close', res));
    slow.pause();
    const fast = await openStream(url, fastSession);

    for (let i = 0; i < EVENTS; i++) {
        await publish(ngx.port, { id: `big-${i}`, pad: String(i % 10).repeat(EVENT_BYTES) }, { agent });
    }
    await waitFor(() => /send queue full/.test(ngx.errorLog()),
                  { what: 'the slow stream ended for its queue', timeout: 30000 });
    slow.resume();           // lets the socket see the end
    await ended;
    await waitFor(() => fast.events.filter((e) => e.json.params?.type === 'custom').length === EVENTS,
                  { what: 'every event on the reading stream', timeout: 60000 });
    const ids = fast.events.filter((e) => e.json.params?.type === 'custom')
        .map((e) => e.json.params.data.id);
    assert.deepEqual(ids, Array.from({ length: EVENTS }, (_, i) => `big-${i}`));
    fast.close();
    agent.destroy();
});


test('event streams count against tidal_max_connections, POSTs do not', T, async () => {
    // the earlier test's streams may still be closing
    await waitFor(async () => {
        const r = await fetch(`http://127.0.0.1:${ngx.port}/status`);
        return /Active connections: 1\b/.test(await r.text());
    }, { what: 'a quiet server', timeout: 20000 });

    const sessions = [];
    for (let i = 0; i < 4; i++) {
        sessions.push(await openSession(url));
    }
    const streams = [];
    for (let i = 0; i < 3; i++) {
        const s = await openStream(url, sessions[i]);
        assert.equal(s.status, 200);
        streams.push(s);
    }
    const over = await openStream(url, sessions[3]);
    assert.equal(over.status, 503);
    assert.match(ngx.errorLog(), /tidal_max_connections \(3\) reached/);

    // POSTs still work: they hold no connection slot
    const ping = await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { session: sessions[3] });
    assert.equal(ping.status, 200);

    streams[0].close();
    await waitFor(async () => {
        const s = await openStream(url, sessions[3]);
        const ok = s.status === 200;
        if (ok) {
            streams.push(s);
        }
        return ok;
    }, { what: 'a slot freed by a closed stream', timeout: 20000 });
    for (const s of streams) {
        s.close();
    }
});


test('a flood of initialize requests leaves sessions in use alone', T, async () => {
    const mine = await openSession(url, { name: 'in-use' });
    const stream = await openStream(url, mine);
    const flood = [];
    for (let i = 0; i < 2000; i++) {
        flood.push(post(url, initializeMessage(i, { name: `flood-${i}` })).then((r) => r.status));
        if (flood.length % 100 === 0) {
            await Promise.all(flood.slice(-100));
        }
    }
    const statuses = await Promise.all(flood);
    assert.ok(statuses.every((s) => s === 200 || s === 503), [...new Set(statuses)].join(' '));
    const r = await post(url, { jsonrpc: '2.0', id: 7, method: 'ping' }, { session: mine });
    assert.equal(r.status, 200, 'the session with a stream open is kept');
    stream.close();
});
