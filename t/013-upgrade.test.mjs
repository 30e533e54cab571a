// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// After the 101 the client's request is freed, as nginx frees one for an
// idle keep-alive connection, by code that copies nginx's own
// (src/nginx/ngx_http_tidal_internals.c): the access log has the 101 line
// while the client is still open, frames sent right behind the request
// are answered, and a request another module holds (limit_conn's slot)
// is kept until the connection ends, then logged and let go.  With an
// nginx built --with-debug the internals' debug lines show each step.
// `make integration` runs this against Debian's nginx and mainline.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { startNginx, waitFor, NGINX_BIN, SLOW } from './lib/nginx.mjs';
import {
    RawWs, connectRaw, newKey, acceptFor, textFrame, pingFrame, rpc, describeEvent, INIT_PARAMS,
} from './lib/ws.mjs';

const T = { timeout: 60000 * SLOW };

const V = spawnSync(NGINX_BIN, ['-V'], { encoding: 'utf8' });
const WITH_DEBUG = `${V.stdout}${V.stderr}`.includes('--with-debug');

// one worker: every line of the story is in one process's log
const OPTS = { workers: 1, main: 'error_log debug.log debug;' };

function read(ngx, name) {
    try {
        return fs.readFileSync(ngx.file(name), 'utf8');
    } catch {
        return '';
    }
}

const accessLines101 = (ngx) => read(ngx, 'access.log').split('\n').filter((l) => / 101 /.test(l));

// the debug lines of the internals, in order, without their prefixes
function internalsLog(ngx) {
    return read(ngx, 'debug.log').split('\n')
        .map((l) => /\] \d+#\d+: (?:\*\d+ )?(tidal (?:upgrade|detach|close|lingering)[^,]*?(?::|$).*|tidal: (?:graceful|wake-up).*)$/.exec(l)?.[1])
        .filter(Boolean);
}


// The upgrade request and a WebSocket frame or two in one TCP write;
// resolves { head, ws } once the 101 has arrived.
function upgradeWith(port, frames) {
    return new Promise((resolve, reject) => {
        const key = newKey();
        const socket = net.connect({ host: '127.0.0.1', port });
        let buf = Buffer.alloc(0);
        const onData = (d) => {
            buf = Buffer.concat([buf, d]);
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) {
                return;
            }
            socket.off('data', onData);
            const head = buf.subarray(0, end).toString('latin1');
            if (!/^HTTP\/1\.1 101 /.test(head) || !head.includes(`Sec-WebSocket-Accept: ${acceptFor(key)}`)) {
                socket.destroy();
                reject(new Error(`not a 101 for this key: ${head}`));
                return;
            }
            resolve({ head, ws: new RawWs(socket, buf.subarray(end + 4)) });
        };
        socket.on('data', onData);
        socket.once('error', reject);
        socket.once('connect', () => socket.write(Buffer.concat([
            Buffer.from(`GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n`
                + `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`
                + 'Sec-WebSocket-Protocol: mcp\r\n\r\n'),
            ...frames,
        ])));
    });
}


test('the request is freed after the 101: the access log has its line while the client is open', T, async () => {
    const ngx = await startNginx(OPTS);
    try {
        const ws = await connectRaw(ngx.port);
        try {
            await waitFor(() => accessLines101(ngx).length === 1, { what: 'the 101 in the access log' });
            await ws.initialize();
            assert.deepEqual((await ws.request('ping', undefined, 'p')).result, {});
        } finally {
            ws.destroy();
        }
    } finally {
        await ngx.stop();
    }
});

test('frames sent in the same write as the upgrade request are answered, in order, after the 101', T, async () => {
    const ngx = await startNginx(OPTS);
    try {
        const { ws } = await upgradeWith(ngx.port, [
            textFrame(rpc('initialize', INIT_PARAMS, 'early')),
            pingFrame(Buffer.from('behind the request')),
        ]);
        try {
            const first = await ws.next(undefined, 'the initialize answer');
            assert.equal(first.type, 'text', describeEvent(first));
            assert.equal(first.json.id, 'early');
            assert.ok(first.json.result?.protocolVersion, JSON.stringify(first.json));
            const second = await ws.next(undefined, 'the pong');
            assert.equal(second.type, 'pong', describeEvent(second));
            assert.equal(second.data.toString(), 'behind the request');
        } finally {
            ws.destroy();
        }
        if (WITH_DEBUG) {
            await waitFor(() => internalsLog(ngx).some((l) => /^tidal detach: 0 bytes of the 101 unsent, [1-9]\d* bytes after the request/.test(l)),
                { what: 'the detach debug line with the bytes after the request' });
        }
    } finally {
        await ngx.stop();
    }
});

test('a request limit_conn holds is kept until the connection ends, then logged and its slot freed', T, async () => {
    const ngx = await startNginx({
        ...OPTS,
        http: 'limit_conn_zone $binary_remote_addr zone=perip:1m;',
        location: 'limit_conn perip 1;',
    });
    try {
        const first = await connectRaw(ngx.port);
        await first.initialize();
        await assert.rejects(connectRaw(ngx.port), /handshake answered 503/, 'the slot is held by the open client');
        assert.deepEqual(accessLines101(ngx), [], 'a kept request is logged when it ends');
        first.destroy();
        await waitFor(() => accessLines101(ngx).length === 1, { what: 'the 101 in the access log after the close' });
        const again = await connectRaw(ngx.port);
        try {
            await again.initialize();
        } finally {
            again.destroy();
        }
        if (WITH_DEBUG) {
            assert.ok(internalsLog(ngx).includes('tidal detach: request kept, a module holds it until the connection ends'),
                internalsLog(ngx).join('\n'));
        }
    } finally {
        await ngx.stop();
    }
});

test('with nginx built --with-debug, the internals log each handler and state change', {
    ...T, skip: !WITH_DEBUG && `${NGINX_BIN} is built without --with-debug`,
}, async () => {
    const ngx = await startNginx(OPTS);
    try {
        const a = await connectRaw(ngx.port);
        await a.initialize();
        // a client that closes: the server echoes and lingers
        const b = await connectRaw(ngx.port);
        await b.initialize();
        await b.send(Buffer.concat([Buffer.from([0x88, 0x82, 1, 2, 3, 4]), Buffer.from([0x03 ^ 1, 0xe8 ^ 2])]));
        assert.equal((await b.next(undefined, 'the close echo')).type, 'close');
        assert.equal(await b.tcpClosedWithin(), true);

        // a reload: graceful shutdown reaches the open client
        await ngx.reload();
        const ev = await a.next(undefined, 'the 1001 close');
        assert.equal(ev.type, 'close', describeEvent(ev));
        assert.equal(ev.code, 1001);
        a.destroy();

        const wanted = [
            /^tidal: wake-up fd \d+ watched$/,
            /^tidal upgrade: 101 queued, request count 2$/,
            /^tidal upgrade handler: (write|read) event, request count 1$/,
            /^tidal detach: 0 bytes of the 101 unsent, 0 bytes after the request$/,
            /^tidal detach: hc free: \w+, busy: 0$/,
            /^tidal detach: request freed$/,
            /^tidal close: lingering$/,
            /^tidal lingering close: write side shut, reading for up to \d+ ms$/,
            /^tidal lingering close handler: timed out 0, close 0$/,
            /^tidal lingering read: 0$/,
            /^tidal close connection: timed out 0, kept request 0+$/,
            /^tidal: graceful shutdown asks the client to go$/,
        ];
        await waitFor(() => {
            const log = internalsLog(ngx);
            return wanted.every((re) => log.some((l) => re.test(l)));
        }, { what: 'every debug line of the internals', timeout: 15000 }).catch((e) => {
            const log = internalsLog(ngx);
            const missing = wanted.filter((re) => !log.some((l) => re.test(l)));
            throw new Error(`${e.message}\nmissing: ${missing.join(' ')}\nlogged:\n${log.join('\n')}`);
        });
    } finally {
        await ngx.stop();
    }
});
