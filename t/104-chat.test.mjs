// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal_say: a chat line reaches every client on every worker, the sender
// too, signed with a display name (clientInfo.name, or tidal_name when it
// is configured) and never with a session id.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import {
    TidalWs, PUBLISH_AND_STATUS, joinUntilEveryWorker, closeAll, streamProblems, eventShapeProblems,
    assertMethodsMatchTypes,
} from './lib/tidal.mjs';

const T = { timeout: 60000 * SLOW };

let ngx;
let clients = [];

before(async () => {
    ngx = await startNginx({
        zone: 'tidal_zone tidal 8m;',
        server: `${PUBLISH_AND_STATUS}
        location /mcp-named {
            tidal_mcp;
            tidal_name $http_x_display_name;
        }
        location /mcp-fixed-name {
            tidal_mcp;
            tidal_name "the booth";
        }`,
    });
    clients = await joinUntilEveryWorker(ngx, (i) => TidalWs.join(ngx.url, { name: `player-${i}` }), { min: 4, batch: 2 });
});

after(async () => {
    await closeAll(clients);
    await ngx?.stop();
});


function chatFrom(c, text) {
    return c.untilEvent((e) => e.type === 'chat' && e.text === text, `the chat "${text}"`, 10000 * SLOW);
}

function sessionsIn(ev, all) {
    const text = JSON.stringify(ev);
    return all.filter((c) => c.session && text.includes(c.session)).map((c) => c.label);
}


test('a chat line reaches every client on every worker, the sender included, with who = clientInfo.name', T, async () => {
    const sender = clients[clients.length - 1];
    const text = 'drop in 4 \u{1F941}';
    const r = await sender.call('tidal_say', { text });
    assert.ok(r.result, `tidal_say failed: ${JSON.stringify(r)}`);
    assert.notEqual(r.result.isError, true, `tidal_say: ${JSON.stringify(r.result)}`);
    const got = await Promise.all(clients.map((c) => chatFrom(c, text)));
    for (const ev of got) {
        assert.equal(ev.type, 'chat');
        assert.equal(ev.who, sender.label);
        assert.equal(ev.text, text);
        assert.equal(ev.seq, got[0].seq, 'one event, one seq for everyone');
        assert.deepEqual(eventShapeProblems([ev]), []);
        assert.deepEqual(sessionsIn(ev, clients), [], 'no session id in a chat event');
    }
    clients.forEach(assertMethodsMatchTypes);
});

test('chat lines from several senders arrive once and in the same order everywhere', T, async () => {
    const senders = clients.slice(0, 4);
    await Promise.all(senders.map(async (s, i) => {
        for (let k = 0; k < 5; k++) {
            const r = await s.call('tidal_say', { text: `line ${i}.${k}` });
            assert.ok(r.result && r.result.isError !== true, JSON.stringify(r));
        }
    }));
    await Promise.all(clients.map((c) => chatFrom(c, 'line 3.4')));
    await Promise.all(clients.map((c) => Promise.all(senders.map((s, i) => chatFrom(c, `line ${i}.4`)))));
    const orders = clients.map((c) => c.events('chat').filter((e) => e.text.startsWith('line ')).map((e) => `${e.who}:${e.text}`));
    for (const [i, o] of orders.entries()) {
        assert.equal(o.length, 20, `${clients[i].label}: ${o.join(', ')}`);
        assert.deepEqual(o, orders[0], `${clients[i].label} saw another order`);
        assert.deepEqual(streamProblems(clients[i].stream(), clients[i].joinSeq), [], clients[i].label);
    }
    for (const [i, s] of senders.entries()) {
        const mine = orders[0].filter((l) => l.startsWith(`${s.label}:`));
        assert.deepEqual(mine, [0, 1, 2, 3, 4].map((k) => `${s.label}:line ${i}.${k}`), 'each sender\'s lines in its order');
    }
});

test('with tidal_name set to a header, who is that value and not clientInfo.name', T, async () => {
    const named = await TidalWs.join(`ws://127.0.0.1:${ngx.port}/mcp-named`, {
        name: 'client-info-name', headers: { 'X-Display-Name': 'dj-kit' },
    });
    try {
        await named.call('tidal_say', { text: 'from the named one' });
        const evs = await Promise.all([named, ...clients].map((c) => chatFrom(c, 'from the named one')));
        evs.forEach((ev) => assert.equal(ev.who, 'dj-kit'));
        evs.forEach((ev) => assert.deepEqual(sessionsIn(ev, [named, ...clients]), []));
    } finally {
        await named.close();
    }
});

test('with tidal_name set to a fixed string, who is that string', T, async () => {
    const fixed = await TidalWs.join(`ws://127.0.0.1:${ngx.port}/mcp-fixed-name`, { name: 'someone' });
    try {
        await fixed.call('tidal_say', { text: 'from the booth' });
        const evs = await Promise.all([fixed, clients[0]].map((c) => chatFrom(c, 'from the booth')));
        evs.forEach((ev) => assert.equal(ev.who, 'the booth'));
    } finally {
        await fixed.close();
    }
});
