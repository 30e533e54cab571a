// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal_who: who is in the room, over either transport.  Each session is a
// member, named as chat names it (tidal_name, else clientInfo.name) with the
// role it joined with; "connected" while a connection or a request holds
// it.  A closed client stays until tidal_session_timeout, a DELETEd HTTP
// session goes at once; names are a client's text, escaped and cut.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { TidalWs, closeAll, randomHex } from './lib/tidal.mjs';
import { httpUrl, joinHttp } from './lib/http.mjs';

const T = { timeout: 60000 * SLOW };

let ngx;
let open = [];

before(async () => {
    ngx = await startNginx({
        zone: 'tidal_zone tidal 8m;',
        server: `
        location /listen {
            tidal_mcp;
            tidal_role listener;
        }
        location /mcp-named {
            tidal_mcp;
            tidal_name $http_x_display_name;
        }`,
    });
});

after(async () => {
    await closeAll(open);
    await ngx?.stop();
});


async function join(path, opts) {
    const c = await TidalWs.join(ngx.url.replace('/mcp', path), opts);
    open.push(c);
    return c;
}

// the whole answer, checked: structured and text agree, one line a member
async function who(c) {
    const r = await c.call('tidal_who', {});
    const result = r.result ?? r;
    assert.ok(result && result.isError !== true, `tidal_who failed: ${JSON.stringify(r)}`);
    const { members, count } = result.structuredContent;
    assert.ok(Array.isArray(members), JSON.stringify(result));
    assert.equal(typeof count, 'number');
    const lines = result.content[0].text.split('\n');
    assert.equal(lines.length, members.length + 1, result.content[0].text);
    members.forEach((m, i) => {
        assert.deepEqual(Object.keys(m).sort(), ['connected', 'role', 'who']);
        assert.equal(lines[i + 1], `${m.who} (${m.role}, ${m.connected ? 'connected' : 'away'})`);
    });
    return { members, count, text: result.content[0].text };
}

const named = (members, name) => members.filter((m) => m.who === name);


test('two WebSocket clients and an HTTP client are in the room with their roles, for anyone who asks', T, async () => {
    const tag = randomHex(4);
    const alice = await join('/mcp', { name: `alice-${tag}` });
    const bob = await join('/listen', { name: `bob-${tag}` });
    const carol = await joinHttp(httpUrl(ngx), { name: `carol-${tag}` });
    try {
        for (const asker of [alice, bob, carol]) {
            const { members, count } = await who(asker);
            assert.ok(count >= 3 && count === members.length, `count ${count}, ${members.length} listed`);
            assert.deepEqual(named(members, `alice-${tag}`), [{ who: `alice-${tag}`, role: 'performer', connected: true }]);
            assert.deepEqual(named(members, `bob-${tag}`), [{ who: `bob-${tag}`, role: 'listener', connected: true }]);
            assert.equal(named(members, `carol-${tag}`).length, 1);
            assert.equal(named(members, `carol-${tag}`)[0].role, 'performer');
        }
        // an HTTP session is connected while a request (this one) holds it
        assert.equal(named((await who(carol)).members, `carol-${tag}`)[0].connected, true);
    } finally {
        await carol.close();
    }
});

test('a client that closes is away, not gone, until tidal_session_timeout; a DELETEd HTTP session is gone', T, async () => {
    const tag = randomHex(4);
    const stays = await join('/mcp', { name: `stays-${tag}` });
    const leaves = await join('/mcp', { name: `leaves-${tag}` });
    const http = await joinHttp(httpUrl(ngx), { name: `deleted-${tag}` });
    assert.equal(named((await who(stays)).members, `deleted-${tag}`).length, 1);

    await leaves.close();
    await http.close();

    // the session is released as the worker sees the close: ask until it is
    let members;
    for (let i = 0; i < 50; i++) {
        ({ members } = await who(stays));
        if (named(members, `leaves-${tag}`)[0]?.connected === false) {
            break;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(named(members, `leaves-${tag}`), [{ who: `leaves-${tag}`, role: 'performer', connected: false }]);
    assert.deepEqual(named(members, `deleted-${tag}`), []);
    assert.deepEqual(named(members, `stays-${tag}`), [{ who: `stays-${tag}`, role: 'performer', connected: true }]);

    // resumed with another role, the member is that connection now
    const back = await join('/listen', { name: `leaves-${tag}`, session: leaves.session, lastSeq: 0 });
    assert.equal(back.meta['tidal/resumed'], true);
    ({ members } = await who(stays));
    assert.deepEqual(named(members, `leaves-${tag}`), [{ who: `leaves-${tag}`, role: 'listener', connected: true }]);
});

test('names are a client\'s text: escaped, cut to 63 bytes, "anonymous" when there is none', T, async () => {
    const tag = randomHex(4);
    const ctl = await join('/mcp', { name: `ctl\n\u0007${tag}${'x'.repeat(300)}` });
    // tidal_name from a header: a byte that is not UTF-8, and too long
    const raw = await join('/mcp-named', {
        name: 'ignored', headers: { 'X-Display-Name': `caf\xff${tag}${'y'.repeat(200)}` },
    });
    const nameless = await join('/mcp-named', { name: '' });
    const { members, text } = await who(ctl);

    const c = members.find((m) => m.who.startsWith(`ctl??${tag}`));
    assert.ok(c, `no ctl member in ${JSON.stringify(members)}`);
    assert.ok(Buffer.byteLength(c.who) <= 63, c.who);
    assert.match(c.who, /^ctl\?\?[0-9a-f]+x+\.\.\.$/);

    const r = members.find((m) => m.who.startsWith(`caf\\xff${tag}`));
    assert.ok(r, `no tidal_name member in ${JSON.stringify(members)}`);
    assert.ok(Buffer.byteLength(r.who) <= 63, r.who);
    assert.match(r.who, /^caf\\xff[0-9a-f]+y+$/);

    assert.ok(members.some((m) => m.who === 'anonymous' && m.connected), JSON.stringify(members));
    assert.ok(!/[\x00-\x09\x0b-\x1f]/.test(text), 'no control character but the line breaks');
    await closeAll([raw, nameless]);
});

test('at most 100 members are listed; count is all of them and the text says so', T, async () => {
    const url = httpUrl(ngx);
    const extra = [];
    for (let i = 0; i < 11; i++) {
        extra.push(...await Promise.all(Array.from({ length: 10 }, (_, k) => joinHttp(url, { name: `crowd-${i}-${k}` }))));
    }
    const asker = await join('/listen', { name: 'counter' });
    const { members, count, text } = await who(asker);
    assert.equal(members.length, 100);
    assert.ok(count >= 111, `count ${count}`);
    assert.match(text.split('\n')[0], new RegExp(`^${count} in the room, the first 100 listed:$`));
    await Promise.all(extra.map((c) => c.close()));
});
