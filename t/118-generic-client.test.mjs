// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A generic MCP client, one that does not ask for capabilities.experimental
// ["tidal/events"] in initialize: it sees the room through standard MCP only
// (docs/collaboration.md, "Who gets which notifications"): no
// notifications/tidal/*, one notifications/message line per room event
// from its logging/setLevel level up, notifications/resources/updated for
// the resources it subscribed to, a prompt and completion of its argument.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, SLOW } from './lib/nginx.mjs';
import { TidalWs, PUBLISH_AND_STATUS } from './lib/tidal.mjs';

const T = { timeout: 30000 * SLOW };

let ngx;

before(async () => {
    ngx = await startNginx({ zone: 'tidal_zone tidal 8m;', server: PUBLISH_AND_STATUS });
});

after(async () => {
    await ngx?.stop();
});


function notes(c, method) {
    return c.log.map(({ m }) => m).filter((m) => m.method === method);
}


test('resources/list names the channels, tidal://state, tidal://history and tidal://chat, and each reads as JSON', T, async () => {
    const c = await TidalWs.join(ngx.url, { name: 'generic', events: false });
    try {
        const r = await c.request('resources/list', {});
        const uris = r.result.resources.map((x) => x.uri);
        assert.equal(uris.length, 19);
        assert.deepEqual(uris.slice(16), ['tidal://state', 'tidal://history', 'tidal://chat']);

        const state = await c.request('resources/read', { uri: 'tidal://state' });
        const s = JSON.parse(state.result.contents[0].text);
        assert.ok(s.channels && s.tempo && typeof s.seq === 'number', JSON.stringify(s));

        const history = await c.request('resources/read', { uri: 'tidal://history' });
        assert.ok(Array.isArray(JSON.parse(history.result.contents[0].text).history));
    } finally {
        await c.close();
    }
});


test('prompts/list and prompts/get teach the room; completion/complete completes the prompt\'s channel', T, async () => {
    const c = await TidalWs.join(ngx.url, { name: 'generic', events: false });
    try {
        const init = await TidalWs.open(ngx.url, { label: 'caps' });
        const r0 = await init.request('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } });
        assert.deepEqual(r0.result.capabilities.prompts, { listChanged: false });
        assert.deepEqual(r0.result.capabilities.completions, {});
        await init.close();

        const list = await c.request('prompts/list', {});
        assert.equal(list.result.prompts[0].name, 'tidal_room_guide');
        const got = await c.request('prompts/get', { name: 'tidal_room_guide', arguments: { channel: 'd2' } });
        const text = got.result.messages[0].content.text;
        assert.match(text, /tidal_eval/);
        assert.match(text, /tidal_get_state/);
        assert.match(text, /line and column/);

        const done = await c.request('completion/complete', {
            ref: { type: 'ref/prompt', name: 'tidal_room_guide' },
            argument: { name: 'channel', value: 'd1' },
        });
        assert.deepEqual(done.result.completion.values, ['d1', 'd10', 'd11', 'd12', 'd13', 'd14', 'd15', 'd16']);
    } finally {
        await c.close();
    }
});


// These need the fan-out to honour the opt-in (the nginx side of issue 9).
test('a client without the opt-in gets log lines and resources/updated, never notifications/tidal/*; one with it gets the events and no lines', T, async () => {
    const generic = await TidalWs.join(ngx.url, { name: 'generic', events: false });
    const eventful = await TidalWs.join(ngx.url, { name: 'eventful' });
    try {
        await generic.request('resources/subscribe', { uri: 'tidal://chat' });
        await eventful.call('tidal_say', { text: 'hello room' });

        await eventful.untilEvent((e) => e.type === 'chat' && e.text === 'hello room', 'the chat event');
        const line = await generic.until(() => notes(generic, 'notifications/message')
            .find((m) => m.params.data === 'chat eventful: hello room'), 'the chat as a log line');
        assert.deepEqual(line.params, { level: 'notice', logger: 'tidal', data: 'chat eventful: hello room' });
        await generic.until(() => notes(generic, 'notifications/resources/updated')
            .find((m) => m.params.uri === 'tidal://chat'), 'tidal://chat updated');

        // above its level, no line
        await generic.request('logging/setLevel', { level: 'error' });
        await eventful.call('tidal_say', { text: 'quiet please' });
        await generic.until(() => notes(generic, 'notifications/resources/updated').length >= 2,
            'the second tidal://chat update');

        assert.deepEqual(generic.log.map(({ m }) => m.method).filter((x) => x?.startsWith('notifications/tidal/')), []);
        assert.equal(notes(generic, 'notifications/message').filter((m) => /quiet/.test(m.params.data)).length, 0);
        assert.deepEqual(notes(eventful, 'notifications/message'), []);
    } finally {
        await generic.close();
        await eventful.close();
    }
});
