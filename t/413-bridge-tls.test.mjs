// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper --stdio --connect wss://...: the bridge over TLS, to nginx
// listening with `ssl` and a certificate from a CA made for the test.
// With --ca-file of that CA the SDK's stdio client is in the room (tools,
// a tool call, chat back, a 3 MiB message out) and the server's close
// reaches it; without it, or for a host name the certificate does not
// name, the bridge exits 1 and says why in OpenSSL's words, and nothing
// reaches stdout.  So does a port without TLS; --ca-file is checked early.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CallToolResultSchema, EmptyResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { startNginx, makeTempDir, SLOW } from './lib/nginx.mjs';
import { makeCertificates } from './lib/tls.mjs';
import { Bridge, sdkClient, gone, killBridges } from './lib/bridge.mjs';

const T = { timeout: 30000 * SLOW };

let certDir;
let certs;                   // { ca, certificate, key }
let ca;
let ngx;


before(async () => {
    certDir = makeTempDir('tidal-tls-');
    certs = makeCertificates(certDir);
    ca = certs.ca;
    ngx = await startNginx({
        ssl: certs,
        location: 'tidal_max_message_size 4m;',
    });
});

after(async () => {
    killBridges();
    await ngx?.stop();
    if (certDir) {
        fs.rmSync(certDir, { recursive: true, force: true });
    }
});


// the bridge run to its end, stdin open: its status, stderr and stdout
async function runBridge(args) {
    const b = new Bridge(args);
    try {
        const { code, signal } = await b.exitStatus();
        return { code, signal, log: b.log, out: b.partial + b.lines.map((m) => JSON.stringify(m)).join('\n') };
    } finally {
        b.kill();
    }
}


test('with --ca-file the SDK\'s stdio client reaches the room through wss://: tools, a tool call, chat back and a 3 MiB message', T, async () => {
    assert.match(ngx.url, /^wss:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const c = await sdkClient(['--connect', ngx.url, '--ca-file', ca, '--verbose'], 'over-tls');
    const { client } = c;
    try {
        assert.equal(client.getServerVersion().name, 'ngx_tidal', 'initialize went through nginx');
        assert.match(c.log, /connected to wss:\/\/127\.0\.0\.1:\d+\/mcp/);
        assert.match(c.log, /debug: TLSv1\.[23], /, c.log);

        const { tools } = await client.listTools();
        assert.ok(tools.some((t) => t.name === 'tidal_get_state'), tools.map((t) => t.name).join(' '));
        const st = await client.callTool({ name: 'tidal_get_state', arguments: {} }, CallToolResultSchema);
        assert.notEqual(st.isError, true, JSON.stringify(st));
        assert.ok(st.structuredContent.channels, JSON.stringify(st));

        const text = 'over TLS \u{1F512}';
        const r = await client.callTool({ name: 'tidal_say', arguments: { text } }, CallToolResultSchema);
        assert.notEqual(r.isError, true, JSON.stringify(r));
        const heard = await c.until(() => c.notes.find((n) => n.method === 'notifications/tidal/chat'
            && n.params.text === text), 'the chat back');
        assert.equal(heard.params.who, 'over-tls');

        // more than the socket takes at once: TLS writes that must wait
        const pad = 'x'.repeat(3 * 1024 * 1024);
        assert.deepEqual(await client.request({ method: 'ping', params: { pad } }, EmptyResultSchema), {});
        assert.deepEqual(await client.ping(), {});
    } finally {
        await client.close().catch(() => {});
    }
    await gone(c);
    assert.match(c.log, /stdin closed/);
    assert.match(c.log, /closed \(1000\)/, c.log);
});

test('a certificate the bridge cannot verify ends it with status 1 and OpenSSL\'s reason: no --ca-file, or another host name', T, async () => {
    const port = ngx.port;
    const cases = [
        {
            what: 'a CA the system does not trust',
            args: ['--connect', ngx.url],
            reason: /error: cannot verify the certificate of 127\.0\.0\.1: unable to get local issuer certificate\n/,
        },
        {
            what: 'a name the certificate (IP:127.0.0.1 only) does not have',
            args: ['--connect', `wss://localhost:${port}/mcp`, '--ca-file', ca],
            reason: /error: cannot verify the certificate of localhost: hostname mismatch\n/,
        },
    ];
    for (const k of cases) {
        const r = await runBridge(k.args);
        assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, `${k.what}: ${r.log}`);
        assert.match(r.log, k.reason, `${k.what}: ${r.log}`);
        assert.doesNotMatch(r.log, /connected to/, k.what);
        assert.equal(r.out, '', `${k.what}: nothing on stdout`);
    }
});

test('no TLS where wss:// expects it, and TLS where ws:// does not: status 1 and a line that says so', T, async () => {
    const plain = await startNginx({});
    try {
        const r = await runBridge(['--connect', `wss://127.0.0.1:${plain.port}/mcp`, '--ca-file', ca]);
        assert.equal(r.code, 1, r.log);
        assert.match(r.log, new RegExp(`error: TLS handshake with 127\\.0\\.0\\.1:${plain.port} failed: \\S`), r.log);
        assert.equal(r.out, '');
    } finally {
        await plain.stop();
    }

    const r = await runBridge(['--connect', `ws://127.0.0.1:${ngx.port}/mcp`]);
    assert.equal(r.code, 1, r.log);
    assert.match(r.log, /error: handshake failed: "HTTP\/1\.1 400 Bad Request"/, r.log);
});

test('nginx -s quit over TLS: the bridge reports the server\'s close 1001 and exits 1', T, async () => {
    const other = await startNginx({ ssl: certs });
    try {
        const b = new Bridge(['--connect', other.url, '--ca-file', ca]);
        try {
            await b.until(() => /connected to wss:/.test(b.log), 'the connection');
            await other.quit();
            const r = await b.exitStatus();
            assert.equal(r.code, 1, b.log);
            assert.match(b.log, /error: the server closed the connection: 1001/, b.log);
        } finally {
            b.kill();
        }
    } finally {
        await other.stop().catch(() => {});
    }
});

test('--ca-file is checked as an option: an unreadable file, or with ws://, is a usage error', T, async () => {
    let r = await runBridge(['--connect', ngx.url, '--ca-file', path.join(certDir, 'missing.pem')]);
    assert.equal(r.code, 2, r.log);
    assert.match(r.log, /--ca-file: cannot read ".*missing\.pem": No such file or directory/);

    r = await runBridge(['--connect', `ws://127.0.0.1:${ngx.port}/mcp`, '--ca-file', ca]);
    assert.equal(r.code, 2, r.log);
    assert.match(r.log, /--ca-file goes with --connect wss:\/\//);
});
