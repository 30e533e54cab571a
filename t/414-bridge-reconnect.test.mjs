// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper --stdio --connect URL --reconnect: when the server goes
// away or the connection is lost, the bridge connects again with backoff
// and resumes the session, so the desktop client stays in the room and
// gets the events it missed; a request while there is no connection, or
// one the lost connection took with it, gets a -32000 error at once; a
// close that blames the client still ends the bridge.  The first connect
// is retried too (nothing listens yet, or a proxy answers 502): stdin's
// messages wait for it (at most 64, each at most 30 s).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { startNginx, freePort, waitFor, SLOW } from './lib/nginx.mjs';
import { TidalWs } from './lib/tidal.mjs';
import { INIT_PARAMS } from './lib/ws.mjs';
import { Bridge, sdkClient, gone, killBridges } from './lib/bridge.mjs';

const T = { timeout: 60000 * SLOW };

const SECRET = 'Bearer reconnect-secret-token';
const UNREACHABLE = /the room is unreachable; tidal-helper is reconnecting/;

let ngx;
let roomPort;   // where the proxied room comes up, after the bridge

before(async () => {
    roomPort = await freePort();
    // one worker: killing it cuts the bridge, and the zone (the sessions)
    // outlives it
    ngx = await startNginx({
        workers: 1,
        server: `
        location /mcp-small {
            tidal_mcp;
            tidal_max_message_size 1k;
        }

        location /proxied {
            proxy_pass http://127.0.0.1:${roomPort}/mcp;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }`,
    });
});

after(async () => {
    killBridges();
    await ngx?.stop();
});


function attempts(log) {
    return [...log.matchAll(/info: reconnecting to (\S+) in (\d+) ms \(attempt (\d+)\)/g)]
        .map((m) => ({ url: m[1], ms: Number(m[2]), attempt: Number(m[3]) }));
}


function chatNote(c, text) {
    return c.notes.find((n) => n.method === 'notifications/tidal/chat' && n.params.text === text);
}


test('a lost connection (the worker killed): the request in flight gets -32000, the bridge reconnects, resumes the session and relays the chat it missed', T, async () => {
    const c = await sdkClient(['--connect', ngx.url, '--reconnect', '--header', `Authorization: ${SECRET}`],
        'resuming');
    let direct;
    let again;
    let stopped = null;
    try {
        direct = await TidalWs.join(ngx.url, { name: 'direct' });
        await direct.call('tidal_say', { text: 'before the cut' });
        await c.until(() => chatNote(c, 'before the cut'), 'the chat before the cut');

        // a stopped worker answers nothing: the ping is in flight when it dies
        const [worker] = ngx.workerPids();
        ngx.expectLogLines(new RegExp(`worker process ${worker} exited on signal 9`));
        process.kill(worker, 'SIGSTOP');
        const inFlight = c.client.ping().then(() => null, (e) => e);
        process.kill(worker, 'SIGKILL');

        const err = await inFlight;
        assert.ok(err, 'the ping in flight was answered');
        assert.equal(err.code, -32000, String(err));
        assert.match(err.message, UNREACHABLE);

        // the bridge is in its first wait (at least 500 ms): it stays
        // there, so the room surely goes on without it for a while
        await c.until(() => attempts(c.log).length >= 1, 'the first reconnect attempt');
        process.kill(c.transport.pid, 'SIGSTOP');
        stopped = c.transport.pid;
        const [first] = attempts(c.log);
        assert.equal(first.url, ngx.url);
        assert.equal(first.attempt, 1);
        assert.ok(first.ms >= 500 && first.ms <= 1000, `the first wait: ${first.ms} ms`);
        assert.equal(c.log.match(/connected to ws:/g).length, 1, 'not yet back');

        await waitFor(() => {
            const pids = ngx.workerPids();
            return pids.length === 1 && pids[0] !== worker;
        }, { what: 'the master to start a new worker' });
        again = await TidalWs.join(ngx.url, { name: 'direct' });
        const said = await again.call('tidal_say', { text: 'while you were away' });
        assert.ok(said.result && !said.result.isError, JSON.stringify(said));
        assert.equal(c.log.match(/connected to ws:/g).length, 1, 'the chat came before the bridge was back');
        process.kill(stopped, 'SIGCONT');
        stopped = null;

        await c.until(() => /info: the session was resumed/.test(c.log), 'the session to be resumed');
        const missed = await c.until(() => chatNote(c, 'while you were away'), 'the missed chat');
        const before = chatNote(c, 'before the cut');
        assert.ok(missed.params.seq > before.params.seq, `seq ${missed.params.seq} after ${before.params.seq}`);
        assert.match(c.log, new RegExp(`info: resuming the session after seq ${before.params.seq}\\b`), c.log);
        assert.equal(c.notes.filter((n) => n.params?.text === 'before the cut').length, 1, 'nothing twice');

        // and the room works through the new connection both ways
        const r = await c.client.callTool({ name: 'tidal_say', arguments: { text: 'back again' } },
            CallToolResultSchema);
        assert.notEqual(r.isError, true, JSON.stringify(r));
        await again.untilEvent((e) => e.type === 'chat' && e.text === 'back again', 'the chat from the bridge');
        assert.deepEqual(await c.client.ping(), {});
    } finally {
        if (stopped) {
            process.kill(stopped, 'SIGCONT');
        }
        await c.client.close();
        direct?.terminate();
        again?.terminate();
    }
    await gone(c);
    assert.ok(!c.log.includes(SECRET) && !c.log.includes('reconnect-secret-token'),
        `a header value in the log:\n${c.log}`);
});

test('nginx stopped: requests get -32000 at once, notifications are dropped, the waits grow; a new nginx on the port is joined with a new session', T, async () => {
    let other = await startNginx({});
    const { port } = other;
    const b = new Bridge(['--connect', other.url, '--reconnect', '--verbose']);
    try {
        await b.initialize();
        await other.stop();
        await b.until(() => attempts(b.log).length >= 1, 'the first reconnect attempt');

        // nothing listens: only the bridge itself can answer
        b.send({ jsonrpc: '2.0', id: 'while-down', method: 'ping' });
        const r = await b.reply('while-down');
        assert.equal(r.error?.code, -32000, JSON.stringify(r));
        assert.match(r.error.message, UNREACHABLE);
        b.send({ jsonrpc: '2.0', id: 7, method: 'tools/list' });
        assert.equal((await b.reply(7)).error?.code, -32000, 'a number id too');
        b.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'x' } });
        await b.until(() => /debug: a message that is no request was dropped/.test(b.log),
            'the notification to be dropped');

        // nothing listens: the next wait is longer
        await b.until(() => attempts(b.log).length >= 2, 'the second reconnect attempt');
        const [, second] = attempts(b.log);
        assert.ok(second.ms >= 1000 && second.ms <= 2000, `the second wait: ${second.ms} ms`);
        assert.match(b.log, /cannot connect to 127\.0\.0\.1:\d+: Connection refused/);
        assert.equal(b.exit, undefined, 'the bridge goes on');

        other = await startNginx({ port });
        await b.until(() => /warn: the session was not resumed/.test(b.log), 'the new session');
        b.send({ jsonrpc: '2.0', id: 'after', method: 'tools/list' });
        const tools = (await b.reply('after')).result?.tools?.map((t) => t.name) || [];
        assert.ok(tools.includes('tidal_say'), tools.join(' '));
        assert.equal(b.lines.filter((m) => typeof m.id === 'string' && m.id.startsWith('tidal-bridge:')).length, 0,
            'the answer to the bridge\'s own initialize is not on stdout');

        b.proc.stdin.end();
        assert.deepEqual(await b.exitStatus(), { code: 0, signal: null }, b.log);
    } finally {
        b.kill();
        await other.stop();
    }
});

test('stdin\'s end while reconnecting ends the bridge with status 0', T, async () => {
    const other = await startNginx({});
    const b = new Bridge(['--connect', other.url, '--reconnect']);
    try {
        await b.initialize();
        await other.stop();
        await b.until(() => attempts(b.log).length >= 1, 'the first reconnect attempt');
        b.proc.stdin.end();
        assert.deepEqual(await b.exitStatus(), { code: 0, signal: null }, b.log);
        assert.match(b.log, /info: stdin closed/);
    } finally {
        b.kill();
    }
});

test('with --reconnect a close that blames the client (1009) and a refusal at the start still end the bridge with status 1', T, async () => {
    const b = new Bridge(['--connect', `ws://127.0.0.1:${ngx.port}/mcp-small`, '--reconnect']);
    try {
        await b.initialize();
        b.send({ jsonrpc: '2.0', id: 'big', method: 'ping', params: { pad: 'x'.repeat(2000) } });
        assert.deepEqual(await b.exitStatus(), { code: 1, signal: null }, b.log);
        assert.match(b.log, /the server closed the connection: 1009/);
        assert.deepEqual(attempts(b.log), []);
    } finally {
        b.kill();
    }

    const refused = new Bridge(['--connect', `ws://127.0.0.1:${ngx.port}/nowhere`, '--reconnect']);
    try {
        assert.deepEqual(await refused.exitStatus(), { code: 1, signal: null }, refused.log);
        assert.match(refused.log, /handshake failed: "HTTP\/1\.1 404 Not Found"/);
        assert.deepEqual(attempts(refused.log), []);
    } finally {
        refused.kill();
    }
});


test('the room not up yet: the bridge started first keeps trying, and the SDK client\'s initialize is answered once nginx is up', T, async () => {
    const port = await freePort();
    let room = null;
    const connecting = sdkClient([`--connect`, `ws://127.0.0.1:${port}/mcp`, '--reconnect'], 'early');
    try {
        // the client's initialize waits in the bridge meanwhile
        await new Promise((r) => setTimeout(r, 1500));
        room = await startNginx({ port });
        const c = await connecting;
        assert.match(c.log, /cannot connect to 127\.0\.0\.1:\d+: Connection refused/);
        assert.ok(attempts(c.log).length >= 1, c.log);
        const { tools } = await c.client.listTools();
        assert.ok(tools.some((t) => t.name === 'tidal_say'));
        await c.client.close();
        await gone(c);
    } finally {
        await connecting.then((c) => c.client.close(), () => {});
        await room?.stop();
    }
});

test('a proxy in front answering 502 at the start is waited for; messages wait in order, at most 64, the rest get -32000 at once', T, async () => {
    const b = new Bridge(['--connect', `ws://127.0.0.1:${ngx.port}/proxied`, '--reconnect', '--verbose']);
    let room = null;
    try {
        b.send({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: INIT_PARAMS });
        await b.until(() => /handshake failed: "HTTP\/1\.1 502 Bad Gateway"/.test(b.log), 'the 502');
        await b.until(() => attempts(b.log).length >= 1, 'the first reconnect attempt');
        for (let i = 1; i < 64; i++) {
            b.send({ jsonrpc: '2.0', id: `early-${i}`, method: 'ping' });
        }
        await b.until(() => /debug: a message waits for the first connection \(64 waiting\)/.test(b.log), '64 held');
        b.send({ jsonrpc: '2.0', id: 'one-too-many', method: 'ping' });
        const over = await b.reply('one-too-many');
        assert.equal(over.error?.code, -32000, JSON.stringify(over));
        assert.match(over.error.message, UNREACHABLE);
        assert.equal(b.lines.length, 1, 'the held ones wait');

        room = await startNginx({ port: roomPort });
        const init = await b.reply('init');
        assert.ok(init.result, JSON.stringify(init));
        b.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
        await b.reply('early-63');
        const ids = b.lines.map((m) => m.id);
        assert.deepEqual(ids.slice(1), ['init', ...Array.from({ length: 63 }, (_, i) => `early-${i + 1}`)]);
        assert.ok(b.lines.slice(2).every((m) => m.result), 'the held pings were answered by the room');
        b.proc.stdin.end();
        assert.deepEqual(await b.exitStatus(), { code: 0, signal: null }, b.log);
    } finally {
        b.kill();
        await room?.stop();
    }
});

test('with --reconnect a refused Host or Origin (403) at the start ends the bridge with status 1', T, async () => {
    const b = new Bridge(['--connect', ngx.url, '--reconnect', '--header', 'Origin: http://evil.example']);
    try {
        assert.deepEqual(await b.exitStatus(), { code: 1, signal: null }, b.log);
        assert.match(b.log, /handshake failed: "HTTP\/1\.1 403 Forbidden"/);
        assert.deepEqual(attempts(b.log), []);
    } finally {
        b.kill();
    }
});
