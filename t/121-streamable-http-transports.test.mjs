// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Streamable HTTP over what nginx speaks: HTTP/2 without TLS (curl
// --http2-prior-knowledge) and with it (curl --http2), HTTP/1.1 behind an
// nginx reverse proxy, and browsers' CORS; a generic SDK client (no tidal
// events asked for) gets log lines, no notifications/tidal/* and no
// warnings.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startNginx, waitFor, makeTempDir, SLOW } from './lib/nginx.mjs';
import { makeCertificates } from './lib/tls.mjs';
import { httpUrl, initializeMessage, post, openSession, openStream, say } from './lib/http.mjs';

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } =
    await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { LoggingMessageNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');

const T = { timeout: 60000 * SLOW };
const EVENTS = { experimental: { 'tidal/events': {} } };
const live = [];

after(async () => {
    for (const p of live.filter((x) => x.kill)) {
        p.kill('SIGKILL');
    }
    for (const n of live.filter((x) => x.stop)) {
        await n.stop();
    }
});


function curl(args) {
    return new Promise((resolve) => {
        const p = spawn('curl', ['-sS', '--max-time', '20', ...args]);
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => { out += d; });
        p.stderr.on('data', (d) => { err += d; });
        p.on('close', (code) => resolve({ code, out, err }));
    });
}

// curl -i: the status line, the headers (lower-case names) and the body
function parseResponse(out) {
    const at = out.indexOf('\r\n\r\n');
    const head = out.slice(0, at).split('\r\n');
    const headers = {};
    for (const line of head.slice(1)) {
        const c = line.indexOf(':');
        headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
    }
    return { status: Number(head[0].split(' ')[1]), version: head[0].split(' ')[0],
             headers, body: out.slice(at + 4) };
}

// The whole flow with curl speaking HTTP/2: initialize, the event stream
// held open by a curl in the background, a call, its event on the stream.
async function h2Flow(base, flags) {
    const json = ['-H', 'content-type: application/json',
                  '-H', 'accept: application/json, text/event-stream'];
    const init = parseResponse((await curl([...flags, '-i', ...json,
        '--data', JSON.stringify(initializeMessage(1, { name: 'curl-h2', capabilities: EVENTS })),
        base])).out);
    assert.equal(init.version, 'HTTP/2');
    assert.equal(init.status, 200);
    const session = init.headers['mcp-session-id'];
    assert.match(session, /^[0-9a-f]{32}$/);

    const ready = parseResponse((await curl([...flags, '-i', ...json, '-H', `mcp-session-id: ${session}`,
        '--data', '{"jsonrpc":"2.0","method":"notifications/initialized"}', base])).out);
    assert.equal(ready.status, 202);

    const stream = spawn('curl', [...flags, '-sS', '-N', '-i', '--max-time', '30',
                                  '-H', 'accept: text/event-stream',
                                  '-H', `mcp-session-id: ${session}`, base]);
    live.push(stream);
    let got = '';
    stream.stdout.on('data', (d) => { got += d; });
    const ended = new Promise((res) => stream.on('close', res));
    await waitFor(() => /retry: \d+/.test(got), { what: 'the stream\'s retry field over HTTP/2' });
    assert.match(got, /^HTTP\/2 200/);
    assert.match(got, /content-type: text\/event-stream/i);

    const call = parseResponse((await curl([...flags, '-i', ...json, '-H', `mcp-session-id: ${session}`,
        '--data', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call',
                                   params: { name: 'tidal_say', arguments: { text: 'h2' } } }),
        base])).out);
    assert.equal(call.status, 200);
    const seq = JSON.parse(call.body).result.structuredContent.seq;
    await waitFor(() => got.includes(`id: ${seq}\n`), { what: `event ${seq} over HTTP/2` });
    assert.match(got, new RegExp(`id: ${seq}\\ndata: \\{[^\\n]*"text":"h2"`));

    return { session, stream, ended, text: () => got };
}


test('HTTP/2 without TLS (--http2-prior-knowledge): messages, the event stream, and its end at a reload', T, async () => {
    const ngx = await startNginx({ workers: 2, http2: true });
    live.push(ngx);
    const base = httpUrl(ngx);
    const flow = await h2Flow(base, ['--http2-prior-knowledge']);

    // an HTTP/2 connection is never idle while it streams: the module
    // ends its streams itself when the worker is told to go
    await ngx.reload();
    await Promise.race([flow.ended, new Promise((_, rej) => setTimeout(
        () => rej(new Error('the HTTP/2 stream outlived its worker')), 10000))]);

    const del = parseResponse((await curl(['--http2-prior-knowledge', '-i', '-X', 'DELETE',
                                           '-H', `mcp-session-id: ${flow.session}`, base])).out);
    assert.equal(del.status, 204);
    await ngx.stop();
});


test('HTTP/2 over TLS (--http2): the same flow', T, async () => {
    const dir = makeTempDir('tidal-h2tls-');
    const certs = makeCertificates(dir);
    const ngx = await startNginx({ workers: 1, http2: true,
                                   ssl: { certificate: certs.certificate, key: certs.key } });
    live.push(ngx);
    const base = httpUrl(ngx);
    const flow = await h2Flow(base, ['--http2', '--cacert', certs.ca ?? certs.certificate]);
    flow.stream.kill();
    await flow.ended;
    await ngx.stop();
});


test('HTTP/1.1 behind an nginx reverse proxy: POST, the event stream unbuffered, Last-Event-ID', T, async () => {
    const ngx = await startNginx({
        workers: 2,
        server: `
        location /proxied/ {
            rewrite ^/proxied(/.*)$ $1 break;
            proxy_pass http://127.0.0.1:$server_port;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Connection "";
            proxy_read_timeout 1h;
        }`,
    });
    live.push(ngx);
    const url = httpUrl(ngx, '/proxied/mcp');
    const session = await openSession(url, { capabilities: EVENTS });
    const stream = await openStream(url, session);
    assert.equal(stream.status, 200);
    const a = await say(url, session, 'through the proxy');
    // nginx buffers a proxied response unless told not to: the module's
    // X-Accel-Buffering: no does it, so the event is not held back
    const ev = await stream.next((e) => e.json.params?.seq === a, 5000);
    assert.equal(ev.id, String(a));
    stream.close();
    const b = await say(url, session, 'missed');
    const again = await openStream(url, session, { lastEventId: a });
    await again.next((e) => e.json.params?.seq === b);
    again.close();
    await ngx.stop();
});


test('browsers: CORS on answers and streams for tidal_allow_origin origins, exposing Mcp-Session-Id', T, async () => {
    const ngx = await startNginx({ workers: 1, location: 'tidal_allow_origin https://app.example;' });
    live.push(ngx);
    const url = httpUrl(ngx);
    const origin = { origin: 'https://app.example' };

    const pre = await fetch(url, { method: 'OPTIONS', headers: {
        ...origin, 'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, mcp-session-id, mcp-protocol-version' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
    assert.match(pre.headers.get('access-control-allow-headers'), /Mcp-Session-Id/i);

    const init = await post(url, initializeMessage(1, { capabilities: EVENTS }), { headers: origin });
    assert.equal(init.status, 200);
    assert.equal(init.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(init.headers.get('access-control-expose-headers'), /Mcp-Session-Id/i);
    const session = init.headers.get('mcp-session-id');

    const stream = await openStream(url, session, { headers: origin });
    assert.equal(stream.headers.get('access-control-allow-origin'), 'https://app.example');
    stream.close();

    const refused = await post(url, initializeMessage(2), { headers: { origin: 'https://evil.example' } });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('mcp-session-id'), null);
    await ngx.stop();
});


test('a generic SDK client gets log lines at its level, resources/updated, no notifications/tidal/* and no warnings', T, async () => {
    const ngx = await startNginx({ workers: 2 });
    live.push(ngx);
    const url = httpUrl(ngx);
    const warnings = [];
    const origWarn = console.warn;
    const origError = console.error;
    console.warn = (...a) => { warnings.push(a.join(' ')); };
    console.error = (...a) => { warnings.push(a.join(' ')); };
    try {
        const client = new Client({ name: 'generic', version: '1.0.0' });
        const lines = [];
        const other = [];
        client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { lines.push(n.params); });
        client.fallbackNotificationHandler = async (n) => { other.push(n); };
        const transport = new StreamableHTTPClientTransport(new URL(url));
        await client.connect(transport);
        await client.setLoggingLevel('info');
        await client.subscribeResource({ uri: 'tidal://chat' });

        const session = await openSession(url, { name: 'dora' });
        await say(url, session, 'hello generic');
        await waitFor(() => lines.some((l) => /hello generic/.test(l.data)),
                      { what: 'the chat as a log line' });
        const line = lines.find((l) => /hello generic/.test(l.data));
        assert.equal(line.logger, 'tidal');
        assert.equal(line.level, 'notice');
        await waitFor(() => other.some((n) => n.method === 'notifications/resources/updated'
                                              && n.params.uri === 'tidal://chat'),
                      { what: 'tidal://chat updated' });

        await client.setLoggingLevel('error');
        await say(url, session, 'below the level');
        await say(url, session, 'flush');
        await new Promise((r) => setTimeout(r, 300));
        assert.ok(!lines.some((l) => /below the level/.test(l.data)), 'nothing under its level');
        assert.deepEqual(other.filter((n) => n.method.startsWith('notifications/tidal/')), []);
        await transport.terminateSession();
        await client.close();
    } finally {
        console.warn = origWarn;
        console.error = origError;
    }
    assert.deepEqual(warnings, []);
    await ngx.stop();
});
