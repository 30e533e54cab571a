// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Origin checks on the handshake: by default only the request's own host,
// when that host passes the Host check (t/014); tidal_allow_origin adds
// exact origins, or "*" for all.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { handshake, acceptFor } from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx({
        server: `
        tidal_allow_host music.example;

        location /mcp-listed {
            tidal_mcp;
            tidal_allow_origin https://app.example;
        }

        location /mcp-any {
            tidal_mcp;
            tidal_allow_origin *;
        }`,
    });
});

after(async () => {
    await ngx?.stop();
});


async function statusFor(path, headers) {
    const res = await handshake(ngx.port, headers, { path });
    res.socket?.destroy();
    if (res.status === 101) {
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(res.key));
    }
    return res.status;
}

const self = () => `127.0.0.1:${ngx.port}`;

const cases = [
    // [location, description, headers (function of the port), expected status]
    ['/mcp', 'no Origin header', () => ({}), 101],
    ['/mcp', 'Origin equal to http://Host', () => ({ Origin: `http://${self()}` }), 101],
    ['/mcp', 'Origin equal to https://Host (the scheme is not compared)', () => ({ Origin: `https://${self()}` }), 101],
    ['/mcp', 'Origin matching a name-based Host', () => ({ Host: 'music.example', Origin: 'https://music.example' }), 101],
    ['/mcp', 'Origin matching a Host with its port', () => ({ Host: 'music.example:8080', Origin: 'http://music.example:8080' }), 101],
    ['/mcp', 'a foreign Origin', () => ({ Origin: 'http://evil.example' }), 403],
    ['/mcp', 'Origin matching a Host that is not allowed (DNS rebinding)', () => ({ Host: 'evil.example', Origin: 'http://evil.example' }), 403],
    ['/mcp', 'Origin of the same host on another port', () => ({ Origin: `http://127.0.0.1:${ngx.port + 1}` }), 403],
    ['/mcp', 'Origin of the same host without the port', () => ({ Origin: 'http://127.0.0.1' }), 403],
    ['/mcp', 'Origin whose host only starts like the Host', () => ({ Host: 'music.example', Origin: 'http://music.example.evil.example' }), 403],
    ['/mcp', 'Origin "null"', () => ({ Origin: 'null' }), 403],
    ['/mcp', 'the origin listed elsewhere (https://app.example)', () => ({ Origin: 'https://app.example' }), 403],

    ['/mcp-listed', 'the listed origin', () => ({ Origin: 'https://app.example' }), 101],
    ['/mcp-listed', 'the listed origin with another scheme', () => ({ Origin: 'http://app.example' }), 403],
    ['/mcp-listed', 'the listed origin with a port', () => ({ Origin: 'https://app.example:8443' }), 403],
    ['/mcp-listed', 'another origin', () => ({ Origin: 'https://other.example' }), 403],
    ['/mcp-listed', 'a subdomain of the listed origin', () => ({ Origin: 'https://evil.app.example' }), 403],
    ['/mcp-listed', 'the request\'s own host', () => ({ Origin: `http://${self()}` }), 101],
    ['/mcp-listed', 'no Origin header', () => ({}), 101],

    ['/mcp-any', 'any origin', () => ({ Origin: 'https://anything.example' }), 101],
    ['/mcp-any', 'Origin "null"', () => ({ Origin: 'null' }), 101],
    ['/mcp-any', 'no Origin header', () => ({}), 101],
];

for (const [path, what, headers, expected] of cases) {
    test(`${path}: ${what} -> ${expected}`, T, async () => {
        assert.equal(await statusFor(path, headers()), expected);
    });
}
