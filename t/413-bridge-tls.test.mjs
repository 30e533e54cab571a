// tidal-helper --stdio --connect wss://...: the bridge over TLS, to nginx
// listening with `ssl` and a certificate from a CA made for the test.
// With --ca-file of that CA the SDK's stdio client is in the room (tools,
// a tool call, chat back, a 3 MiB message out) and the server's close
// reaches it; without it, or for a host name the certificate does not
// name, the bridge exits 1 and says why in OpenSSL's words, and nothing
// reaches stdout.  So does a port without TLS; --ca-file is checked early.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, EmptyResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { startNginx, makeTempDir, pidAlive, waitFor, SLOW } from './lib/nginx.mjs';
import { HELPER_BIN } from './lib/helper.mjs';
import { makeCertificates } from './lib/tls.mjs';
import { until } from './lib/until.mjs';

const T = { timeout: 30000 * SLOW };

const SANITIZER = /AddressSanitizer|LeakSanitizer|runtime error:/;

let certDir;
let certs;                   // { ca, certificate, key }
let ca;
let ngx;
const live = new Set();      // the bridges' pids


function killLive() {
    for (const pid of [...live]) {
        if (pidAlive(pid)) {
            process.kill(pid, 'SIGKILL');
        }
        live.delete(pid);
    }
}


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
    killLive();
    await ngx?.stop();
    if (certDir) {
        fs.rmSync(certDir, { recursive: true, force: true });
    }
});

process.on('exit', killLive);


// the bridge spawned with stdin open; r.exited: its exit status, stderr
// and stdout, once it ends by itself; r.until(re): a line of stderr
function spawnBridge(args) {
    const r = { log: '', out: '', waiters: new Set() };
    const proc = spawn(HELPER_BIN, ['--stdio', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(proc.pid);
    proc.stdin.on('error', () => {});   // EPIPE once it is gone
    proc.stderr.on('data', (d) => {
        r.log += d.toString();
        r.waiters.forEach((w) => w());
    });
    proc.stdout.on('data', (d) => { r.out += d.toString(); });
    r.until = (re) => until(r.waiters, () => re.test(r.log), 10000 * SLOW, () => `${re}; log:\n${r.log}`);
    r.exited = new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            proc.kill('SIGKILL');
            reject(new Error(`the bridge did not exit within ${10000 * SLOW} ms; log:\n${r.log}`));
        }, 10000 * SLOW);
        proc.once('close', (code, signal) => {
            clearTimeout(timer);
            live.delete(proc.pid);
            if (SANITIZER.test(r.log)) {
                reject(new Error(`a sanitizer report:\n${r.log}`));
                return;
            }
            resolve({ code, signal, log: r.log, out: r.out });
        });
    });
    return r;
}


function runBridge(args) {
    return spawnBridge(args).exited;
}


test('with --ca-file the SDK\'s stdio client reaches the room through wss://: tools, a tool call, chat back and a 3 MiB message', T, async () => {
    assert.match(ngx.url, /^wss:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const transport = new StdioClientTransport({
        command: HELPER_BIN,
        args: ['--stdio', '--connect', ngx.url, '--ca-file', ca, '--verbose'],
        stderr: 'pipe',
    });
    const client = new Client({ name: 'over-tls', version: '1.0.0' });
    const notes = [];
    const waiters = new Set();
    let log = '';
    transport.stderr.on('data', (d) => {
        log += d.toString();
    });
    client.fallbackNotificationHandler = async (n) => {
        notes.push(n);
        waiters.forEach((w) => w());
    };
    try {
        await client.connect(transport);
        assert.equal(client.getServerVersion().name, 'ngx_tidal', 'initialize went through nginx');
        assert.match(log, /connected to wss:\/\/127\.0\.0\.1:\d+\/mcp/);
        assert.match(log, /debug: TLSv1\.[23], /, log);

        const { tools } = await client.listTools();
        assert.ok(tools.some((t) => t.name === 'tidal_get_state'), tools.map((t) => t.name).join(' '));
        const st = await client.callTool({ name: 'tidal_get_state', arguments: {} }, CallToolResultSchema);
        assert.notEqual(st.isError, true, JSON.stringify(st));
        assert.ok(st.structuredContent.channels, JSON.stringify(st));

        const text = 'over TLS \u{1F512}';
        const r = await client.callTool({ name: 'tidal_say', arguments: { text } }, CallToolResultSchema);
        assert.notEqual(r.isError, true, JSON.stringify(r));
        const heard = await until(waiters, () => notes.find((n) => n.method === 'notifications/tidal/chat'
            && n.params.text === text), 10000 * SLOW, () => `the chat back; log:\n${log}`);
        assert.equal(heard.params.who, 'over-tls');

        // more than the socket takes at once: TLS writes that must wait
        const pad = 'x'.repeat(3 * 1024 * 1024);
        assert.deepEqual(await client.request({ method: 'ping', params: { pad } }, EmptyResultSchema), {});
        assert.deepEqual(await client.ping(), {});
    } finally {
        const pid = transport.pid;
        if (pid) {
            live.add(pid);
        }
        await client.close().catch(() => {});
        if (pid) {
            await waitFor(() => !pidAlive(pid), { timeout: 10000, what: `the bridge (pid ${pid}) to exit` });
        }
    }
    assert.doesNotMatch(log, SANITIZER, log);
    assert.match(log, /stdin closed/);
    assert.match(log, /closed \(1000\)/, log);
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
        const b = spawnBridge(['--connect', other.url, '--ca-file', ca]);
        await b.until(/connected to wss:/);
        await other.quit();
        const r = await b.exited;
        assert.equal(r.code, 1, r.log);
        assert.match(r.log, /error: the server closed the connection: 1001/, r.log);
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
