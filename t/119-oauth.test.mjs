// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The authorization recipe, conf-examples/oauth.conf as shipped (only its
// ports, log paths and the helper changed): auth_request to a token
// introspection endpoint (here a Node one that knows a performer's and a
// listener's token), the role from the token's scope, 401 with
// WWW-Authenticate naming the RFC 9728 metadata, which is served; no token
// in any log.  Over WebSocket and Streamable HTTP (TRANSPORTS).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx, loadModuleLine, SLOW } from './lib/nginx.mjs';
import { TidalWs, ALL_TOOLS, LISTENER_TOOLS } from './lib/tidal.mjs';
import { handshake, httpRequest } from './lib/ws.mjs';
import { httpUrl, initializeMessage, joinHttp, post } from './lib/http.mjs';

const T = { timeout: 30000 * SLOW };

const EXAMPLE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'conf-examples', 'oauth.conf');
const RESOURCE = 'https://tidal.example.org';
const METADATA_URL = `${RESOURCE}/.well-known/oauth-protected-resource`;
const CHALLENGE = `Bearer resource_metadata="${METADATA_URL}"`;
// what oauth.conf's proxy_set_header Authorization sends
const SERVER_CREDENTIALS = `Basic ${Buffer.from('tidal-rs:change-me').toString('base64')}`;

// base64url with the "/" and padding a b64token may have
const token = () => `${crypto.randomBytes(24).toString('base64url')}/x==`;
const TOKENS = {
    [token()]: 'tidal:perform',
    [token()]: 'tidal:listen',
    [token()]: 'openid profile',
    // a "+" would reach the endpoint as a space: refused, never sent on
    [`${token()}+p`]: 'tidal:perform',
};
const [PERFORMER, LISTENER, NO_TIDAL_SCOPE, WITH_PLUS] = Object.keys(TOKENS);

// An RFC 7662 endpoint speaking what auth_request reads: 200 and
// X-Tidal-Scope for an active token, 401 for any other; the JSON body is
// RFC 7662's.  It refuses callers without the resource server's
// credentials, and keeps every request for the test to look at.
class Introspection {
    static async start() {
        const s = new Introspection();
        s.requests = [];
        s.server = http.createServer((req, res) => {
            let body = '';
            req.on('data', (d) => { body += d; });
            req.on('end', () => {
                const form = new URLSearchParams(body);
                s.requests.push({ method: req.method, url: req.url, headers: req.headers, form });
                const scope = req.method === 'POST' && req.url === '/introspect'
                    && req.headers.authorization === SERVER_CREDENTIALS
                    && /^application\/x-www-form-urlencoded/.test(req.headers['content-type'] || '')
                    ? TOKENS[form.get('token')] : undefined;
                if (scope === undefined) {
                    res.writeHead(401, { 'Content-Type': 'application/json' });
                    res.end('{"active":false}');
                    return;
                }
                res.writeHead(200, { 'Content-Type': 'application/json', 'X-Tidal-Scope': scope });
                res.end(JSON.stringify({ active: true, scope, token_type: 'Bearer' }));
            });
        });
        await new Promise((resolve) => s.server.listen(0, '127.0.0.1', resolve));
        s.port = s.server.address().port;
        return s;
    }

    close() {
        return new Promise((resolve) => this.server.close(resolve));
    }
}

// oauth.conf with the test's ports, logs in the nginx dir, no GHCi; each
// change must find its line, so the file and the test cannot drift apart
function exampleConf({ dir, port }, introspectionPort) {
    let conf = fs.readFileSync(EXAMPLE, 'utf8');
    const swaps = [
        ['load_module modules/ngx_tidal_module.so;\n', loadModuleLine()],
        ['worker_processes auto;', 'worker_processes 2;'],
        // info whatever TIDAL_LOG_LEVEL says: at debug nginx logs every header
        ['error_log logs/error.log notice;', `error_log ${dir}/error.log info;`],
        ['access_log logs/access.log tidal_oauth;', `access_log ${dir}/access.log tidal_oauth;`],
        ['listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`],
        ['http://127.0.0.1:9090/introspect', `http://127.0.0.1:${introspectionPort}/introspect`],
        ['tidal_zone tidal 8m;', 'tidal_zone tidal 8m;\n    tidal_helper off;'],
    ];
    for (const [from, to] of swaps) {
        assert.equal(conf.split(from).length, 2, `oauth.conf has "${from.trim()}" once`);
        conf = conf.replace(from, to);
    }
    fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true, mode: 0o755 });
    return conf;
}

let ngx;
let introspection;

before(async () => {
    introspection = await Introspection.start();
    ngx = await startNginx({ conf: (at) => exampleConf(at, introspection.port) });
});

after(async () => {
    await ngx?.stop();
    await introspection?.close();
});

const bearer = (t) => ({ Authorization: `Bearer ${t}` });

// How a client meets the endpoint, per transport: the status a request
// with these headers gets before MCP starts, and an MCP client that
// joined.
const TRANSPORTS = {
    websocket: {
        status: async (headers) => {
            const r = await handshake(ngx.port, { 'Sec-WebSocket-Protocol': 'mcp', ...headers });
            r.ws?.destroy?.();
            r.socket?.destroy();
            return r;
        },
        join: (headers, name) => TidalWs.join(ngx.url, { headers, name }),
    },
    'streamable HTTP': {
        status: async (headers) => {
            const r = await post(httpUrl(ngx), initializeMessage(), { headers });
            return { status: r.status, headers: Object.fromEntries(r.headers) };
        },
        join: (headers, name) => joinHttp(httpUrl(ngx), { headers, name }),
    },
};

test('the protected-resource metadata (RFC 9728) is served without a token, at the root and at /mcp\'s path', T, async () => {
    for (const p of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
        const r = await httpRequest(ngx.port, { path: p });
        assert.equal(r.status, 200, p);
        assert.match(r.headers['content-type'], /^application\/json/);
        assert.deepEqual(JSON.parse(r.body.toString()), {
            resource: `${RESOURCE}/mcp`,
            authorization_servers: ['https://auth.example.org'],
            scopes_supported: ['tidal:listen', 'tidal:perform'],
            bearer_methods_supported: ['header'],
            resource_name: 'ngx_tidal',
        });
    }
});

for (const [transport, t] of Object.entries(TRANSPORTS)) {
    for (const [what, headers] of [
        ['no token', {}],
        ['an unknown token', bearer(token())],
        ['a token with "+" (oauth.conf never sends it on)', bearer(WITH_PLUS)],
        ['a token in another scheme', { Authorization: `Basic ${Buffer.from(`x:${PERFORMER}`).toString('base64')}` }],
    ]) {
        test(`${transport}: ${what} gets 401 with WWW-Authenticate naming the metadata`, T, async () => {
            const r = await t.status(headers);
            assert.equal(r.status, 401);
            assert.equal(r.headers['www-authenticate'], CHALLENGE);
        });
    }

    test(`${transport}: a valid token without a tidal scope gets 403`, T, async () => {
        const r = await t.status(bearer(NO_TIDAL_SCOPE));
        assert.equal(r.status, 403);
    });

    test(`${transport}: the tidal:listen token makes a listener, who may not call tidal_eval`, T, async () => {
        const c = await t.join(bearer(LISTENER), 'oauth-listener');
        try {
            assert.equal(c.meta['tidal/role'], 'listener');
            assert.deepEqual((await c.listTools()).sort(), [...LISTENER_TOOLS].sort());
            const r = await c.call('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' });
            assert.equal(r.error?.code, -32602, JSON.stringify(r));
            assert.equal(r.error.message, 'Tool tidal_eval requires role performer');
        } finally {
            await c.close();
        }
    });

    test(`${transport}: the tidal:perform token makes a performer`, T, async () => {
        const c = await t.join(bearer(PERFORMER), 'oauth-performer');
        try {
            assert.equal(c.meta['tidal/role'], 'performer');
            assert.deepEqual((await c.listTools()).sort(), [...ALL_TOOLS].sort());
        } finally {
            await c.close();
        }
    });
}

test('the introspection endpoint got each token in a form body, with the server\'s credentials and none of the client\'s headers', T, () => {
    const asked = introspection.requests.map((r) => r.form.get('token'));
    assert.ok(asked.includes(PERFORMER) && asked.includes(LISTENER), `asked: ${asked.join(' ')}`);
    assert.ok(!asked.some((a) => a.includes(WITH_PLUS.slice(0, 20))), 'the token with "+" was not asked about');
    for (const r of introspection.requests) {
        assert.equal(r.method, 'POST');
        assert.equal(r.headers.authorization, SERVER_CREDENTIALS);
        assert.equal(r.form.get('token_type_hint'), 'access_token');
        assert.equal(r.headers.upgrade, undefined, 'the client\'s headers are not passed on');
        assert.equal(r.headers['sec-websocket-key'], undefined);
    }
});

test('an introspection endpoint that does not answer fails the request with 500, not open', T, async () => {
    await introspection.close();
    introspection = null;
    for (const t of Object.values(TRANSPORTS)) {
        assert.equal((await t.status(bearer(PERFORMER))).status, 500);
    }
});

test('no token appears in access.log or error.log; the access log names the role', T, () => {
    const access = fs.readFileSync(ngx.file('access.log'), 'utf8');
    const error = ngx.errorLog();
    assert.match(access, /"GET \/mcp HTTP\/1\.1" 101 \d+ role=performer/);
    assert.match(access, /"GET \/mcp HTTP\/1\.1" 101 \d+ role=listener/);
    assert.match(access, /"GET \/mcp HTTP\/1\.1" 401 /);
    for (const tok of Object.keys(TOKENS)) {
        for (const [name, text] of [['access.log', access], ['error.log', error]]) {
            for (const piece of [tok, tok.slice(0, 16), encodeURIComponent(tok)]) {
                assert.ok(!text.includes(piece), `${name} contains a token`);
            }
        }
    }
});
