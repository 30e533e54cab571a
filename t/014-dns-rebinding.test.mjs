// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// DNS rebinding: the Host of every request to the MCP endpoint must be an
// IP literal, localhost, a server_name of the server block or a
// tidal_allow_host name, before anything else (WebSocket upgrade, POST,
// OPTIONS); a refusal is a [warn] naming the value and the directive.
// CORS preflights from allowed origins get the CORS headers.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startNginx, freePort, nginxT, lineOf, waitFor, SLOW } from './lib/nginx.mjs';
import { handshake, httpRequest } from './lib/ws.mjs';

const T = { timeout: 30000 * SLOW };

let named;      // server_name with exact, wildcard and regex names
let catchAll;   // server_name _, and "" with a regex on a second port
let regexPort;

before(async () => {
    named = await startNginx({
        server: `
        server_name music.example *.band.example www.venue.* .club.example
                    ~^re[0-9]+\\.example$;`,
    });
    regexPort = await freePort();
    catchAll = await startNginx({
        http: `
    server {
        listen 127.0.0.1:${regexPort};
        server_name "" ~^music[.]example$;

        location /mcp {
            tidal_mcp;
        }
    }`,
        server: `
        server_name _;

        location /mcp-allowed {
            tidal_mcp;
            tidal_allow_host *.studio.example music.example;
        }`,
    });
});

after(async () => {
    await named?.stop();
    await catchAll?.stop();
});


async function upgradeStatus(port, headers, path = '/mcp') {
    const res = await handshake(port, headers, { path });
    res.socket?.destroy();
    return res.status;
}

async function request(port, method, headers, path = '/mcp') {
    const body = method === 'POST'
        ? JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })
        : undefined;
    return httpRequest(port, {
        method, path, body,
        headers: {
            ...(body ? { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' } : {}),
            ...headers,
        },
    });
}

// a request as an HTTP/1.0 client without Host sends it
function http10(port, lines) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let buf = '';
        s.on('connect', () => s.write(`${lines.join('\r\n')}\r\n\r\n`));
        s.on('data', (d) => { buf += d.toString('latin1'); });
        s.on('end', () => resolve(Number(/^HTTP\/1\.[01] (\d+)/.exec(buf)?.[1])));
        s.on('error', reject);
    });
}

const rebinding = { Host: 'evil.example', Origin: 'http://evil.example' };


test('a rebinding page (Host and Origin evil.example) is refused: WebSocket upgrade', T, async () => {
    assert.equal(await upgradeStatus(named.port, rebinding), 403);
});

test('a rebinding page is refused: POST', T, async () => {
    const res = await request(named.port, 'POST', rebinding);
    assert.equal(res.status, 403);
    assert.match(res.body.toString(), /DNS rebinding/);
});

test('any page may read a refusal of a plain GET (html/tidal-client.js stops on 403)', T, async () => {
    const res = await request(named.port, 'GET', { Origin: 'http://other-2.example' });
    assert.equal(res.status, 403);
    assert.equal(res.headers['access-control-allow-origin'], '*');
});

test('a rebinding page is refused: OPTIONS preflight', T, async () => {
    const res = await request(named.port, 'OPTIONS', {
        ...rebinding, 'Access-Control-Request-Method': 'POST',
    });
    assert.equal(res.status, 403);
    // (a preflight fails on any status but 2xx; the refusal is readable as any refusal is)
    assert.notEqual(res.headers['access-control-allow-origin'], 'https://other.example');
    assert.equal(res.headers['access-control-allow-methods'], undefined);
});

test('a refused Host is a [warn] naming the value and the directives', T, async () => {
    await upgradeStatus(named.port, { Host: 'rebind-1.example:8080' });
    const line = await waitFor(() => named.errorLog().split('\n')
        .find((l) => l.includes('rebind-1.example')), { what: 'the warn line' });
    assert.match(line, /\[warn\]/);
    assert.ok(line.includes('tidal: host "rebind-1.example" not allowed; add it to server_name or tidal_allow_host'), line);
});

test('a refused Origin is a [warn] naming the value and tidal_allow_origin', T, async () => {
    assert.equal(await upgradeStatus(named.port, { Origin: 'http://other-1.example' }), 403);
    const line = await waitFor(() => named.errorLog().split('\n')
        .find((l) => l.includes('other-1.example')), { what: 'the warn line' });
    assert.match(line, /\[warn\]/);
    assert.ok(line.includes('tidal: origin "http://other-1.example" not allowed; add it to tidal_allow_origin'), line);
});

test('a Host that cannot be printed is escaped in the log', T, async () => {
    // newer nginx refuses such a Host itself (400) before any module
    const status = await upgradeStatus(named.port, { Host: 'bad\u0085name.example' });
    assert.ok([400, 403].includes(status), String(status));
    if (status === 400) {
        return;
    }
    const line = await waitFor(() => named.errorLog().split('\n')
        .find((l) => l.includes('name.example" not allowed')), { what: 'the warn line' });
    // (nginx's own ", host: ..." context at the end is not ours to escape)
    assert.ok(line.includes('tidal: host "bad\\xc2\\x85name.example" not allowed'), line);
});


const hosts = [
    // [server, what, Host (function of the port), path, expected upgrade status]
    ['named', 'IPv4 literal with port', (p) => `127.0.0.1:${p}`, '/mcp', 101],
    ['named', 'IPv4 literal without port', () => '10.1.2.3', '/mcp', 101],
    ['named', 'IPv6 literal', (p) => `[::1]:${p}`, '/mcp', 101],
    ['named', 'localhost with port', (p) => `localhost:${p}`, '/mcp', 101],
    ['named', 'LOCALHOST, any case', () => 'LocalHost', '/mcp', 101],
    ['named', 'a name below localhost', () => 'app.localhost', '/mcp', 403],
    ['named', 'an exact server_name', () => 'music.example', '/mcp', 101],
    ['named', 'an exact server_name in upper case, with port', () => 'MUSIC.Example:8080', '/mcp', 101],
    ['named', 'a name only ending like a server_name', () => 'xmusic.example', '/mcp', 403],
    ['named', 'a server_name followed by the attacker\'s domain', () => 'music.example.evil.example', '/mcp', 403],
    ['named', '*.band.example: one level below', () => 'a.band.example', '/mcp', 101],
    ['named', '*.band.example: two levels below', () => 'x.y.band.example', '/mcp', 101],
    ['named', '*.band.example: not band.example itself', () => 'band.example', '/mcp', 403],
    ['named', 'www.venue.*: www.venue.com', () => 'www.venue.com', '/mcp', 101],
    ['named', 'www.venue.*: not venue.com', () => 'venue.com', '/mcp', 403],
    ['named', '.club.example: club.example itself', () => 'club.example', '/mcp', 101],
    ['named', '.club.example: below it', () => 'a.club.example', '/mcp', 101],
    ['named', 'a regex server_name does not count', () => 're1.example', '/mcp', 403],
    ['named', 'an IP-looking name', () => '127.0.0.1.evil.example', '/mcp', 403],

    ['catchAll', 'server_name _: IPv4 literal', (p) => `127.0.0.1:${p}`, '/mcp', 101],
    ['catchAll', 'server_name _: localhost', () => 'localhost', '/mcp', 101],
    ['catchAll', 'server_name _: any name', () => 'music.example', '/mcp', 403],
    ['catchAll', 'server_name _: the name "_"', () => '_', '/mcp', 403],
    ['catchAll', 'tidal_allow_host music.example', () => 'music.example', '/mcp-allowed', 101],
    ['catchAll', 'tidal_allow_host *.studio.example: below', () => 'a.studio.example', '/mcp-allowed', 101],
    ['catchAll', 'tidal_allow_host *.studio.example: not itself', () => 'studio.example', '/mcp-allowed', 403],
    ['catchAll', 'tidal_allow_host: another name', () => 'evil.example', '/mcp-allowed', 403],
    ['catchAll', 'tidal_allow_host: IP literals still pass', (p) => `127.0.0.1:${p}`, '/mcp-allowed', 101],

    ['regex', 'server_name "" and a regex: the regex\'s name', () => 'music.example', '/mcp', 403],
    ['regex', 'server_name "" and a regex: IPv4 literal', (p) => `127.0.0.1:${p}`, '/mcp', 101],
];

const ports = () => ({ named: named.port, catchAll: catchAll.port, regex: regexPort });

for (const [server, what, host, path, expected] of hosts) {
    test(`${server} ${path}: ${what} -> ${expected}`, T, async () => {
        const port = ports()[server];
        assert.equal(await upgradeStatus(port, { Host: host(port) }, path), expected);
        // the same Host with its own Origin: only a Host that passed may be its own origin
        assert.equal(await upgradeStatus(port, { Host: host(port), Origin: `https://${host(port)}` }, path), expected);
    });
}


test('a POST with an allowed Host is not refused by the Host check', T, async () => {
    const res = await request(named.port, 'POST', { Host: 'music.example', Origin: 'http://music.example' });
    assert.notEqual(res.status, 403);
});

test('HTTP/1.0 without Host passes the Host check (a browser always sends Host)', T, async () => {
    assert.equal(await http10(named.port, ['GET /mcp HTTP/1.0']), 426);
});

test('HTTP/1.0 without Host and with an Origin: only a listed origin passes', T, async () => {
    assert.equal(await http10(named.port, ['GET /mcp HTTP/1.0', 'Origin: http://127.0.0.1']), 403);
});


test('a preflight from the page\'s own allowed host gets the CORS headers', T, async () => {
    const res = await request(named.port, 'OPTIONS', {
        Host: 'music.example',
        Origin: 'https://music.example',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type, mcp-session-id',
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], 'https://music.example');
    assert.match(res.headers.vary, /Origin/);
    assert.equal(res.headers['access-control-allow-methods'], 'GET, POST, DELETE, OPTIONS');
    const allowed = res.headers['access-control-allow-headers'].toLowerCase().split(/,\s*/);
    for (const h of ['content-type', 'accept', 'authorization', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id']) {
        assert.ok(allowed.includes(h), `Access-Control-Allow-Headers lacks ${h}: ${allowed}`);
    }
    assert.match(res.headers['access-control-max-age'], /^\d+$/);
    assert.equal(res.body.length, 0);
});

test('a preflight from a refused origin gets 403 and no CORS headers', T, async () => {
    const res = await request(named.port, 'OPTIONS', {
        Origin: 'https://other.example', 'Access-Control-Request-Method': 'POST',
    });
    assert.equal(res.status, 403);
    // (a preflight fails on any status but 2xx; the refusal is readable as any refusal is)
    assert.notEqual(res.headers['access-control-allow-origin'], 'https://other.example');
    assert.equal(res.headers['access-control-allow-methods'], undefined);
});

test('OPTIONS without Origin (not a preflight) answers 204 with Allow', T, async () => {
    const res = await request(named.port, 'OPTIONS', {});
    assert.equal(res.status, 204);
    assert.equal(res.headers.allow, 'GET, POST, DELETE, OPTIONS');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
});


test('nginx -t accepts tidal_allow_host names at http, server and location level', T, () => {
    const r = nginxT({
        http: 'tidal_allow_host *.example.com .example.org;',
        server: 'tidal_allow_host www.example.* localhost;',
        location: 'tidal_allow_host Music.Example studio-1.example;',
    });
    assert.equal(r.code, 0, r.output);
});

for (const bad of ['music.example:8080', '*', '*.', 'a*b.example', 'x.*.example', 'http://music.example',
    'music..example', '.', '"music.example/"']) {
    test(`nginx -t rejects tidal_allow_host ${bad}`, T, () => {
        const r = nginxT({ location: `tidal_allow_host ok.example ${bad}; # marker` });
        assert.notEqual(r.code, 0, r.output);
        const line = r.output.split('\n').find((l) => l.includes('[emerg]'));
        assert.ok(line?.includes('"tidal_allow_host" directive has invalid name'), r.output);
        assert.ok(line.includes(`${r.file}:${lineOf(r.conf, '# marker')}`), line);
    });
}
