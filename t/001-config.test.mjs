// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Configuration: nginx -t accepts every tidal_* directive where it belongs
// and rejects bad values, naming the directive and the file:line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nginxT, lineOf, SLOW } from './lib/nginx.mjs';

const T = { timeout: 30000 * SLOW };

function assertOk(r) {
    assert.equal(r.code, 0, `nginx -t should accept the config:\n${r.output}\n--- config:\n${r.conf}`);
    assert.match(r.output, /syntax is ok/);
    assert.match(r.output, /test is successful/);
}

// nginx -t fails, with an [emerg] naming the directive at the line of marker
function assertRejected(r, directive, marker) {
    assert.notEqual(r.code, 0, `nginx -t should reject the config:\n${r.output}\n--- config:\n${r.conf}`);
    const at = `${r.file}:${lineOf(r.conf, marker)}`;
    const line = r.output.split('\n').find((l) => l.includes('[emerg]'));
    assert.ok(line, `no [emerg] line in:\n${r.output}`);
    assert.ok(line.includes(`"${directive}"`), `the error should name "${directive}": ${line}`);
    assert.ok(line.includes(at), `the error should point at ${at}: ${line}`);
}


test('the minimal config (tidal_mcp in a location) is accepted', T, () => {
    assertOk(nginxT({}));
});

test('every directive with a valid value in the location is accepted', T, () => {
    assertOk(nginxT({
        location: `
            tidal_max_message_size 64k;
            tidal_heartbeat_interval 10s;
            tidal_message_queue_size 16;
            tidal_message_queue_bytes 1m;
            tidal_allow_origin https://app.example http://localhost:3000;`,
    }));
});

test('size, heartbeat, queue and origin directives are accepted at http and server level', T, () => {
    assertOk(nginxT({
        http: `
    tidal_max_message_size 2m;
    tidal_heartbeat_interval 1m;
    tidal_message_queue_size 512;
    tidal_message_queue_bytes 16m;
    tidal_allow_origin *;`,
        server: `
        tidal_max_message_size 128k;
        tidal_heartbeat_interval 500ms;
        tidal_message_queue_size 8;
        tidal_message_queue_bytes 512k;
        tidal_allow_origin https://a.example:8443;`,
    }));
});

test('tidal_allow_origin accepts "*"', T, () => {
    assertOk(nginxT({ location: 'tidal_allow_origin *;' }));
});

const rejected = [
    ['tidal_max_message_size', 'tidal_max_message_size abc;'],
    ['tidal_heartbeat_interval', 'tidal_heartbeat_interval xyz;'],
    ['tidal_message_queue_size', 'tidal_message_queue_size 0;'],
    ['tidal_message_queue_size', 'tidal_message_queue_size -1;'],
    ['tidal_message_queue_size', 'tidal_message_queue_size lots;'],
    ['tidal_message_queue_bytes', 'tidal_message_queue_bytes abc;'],
    ['tidal_allow_origin', 'tidal_allow_origin notanorigin;'],
    ['tidal_allow_origin', 'tidal_allow_origin https://ok.example notanorigin;'],
    ['tidal_mcp', 'tidal_mcp on;'],
];

for (const [directive, line] of rejected) {
    test(`"${line}" is rejected with the directive and file:line`, T, () => {
        assertRejected(nginxT({ location: line }), directive, line);
    });
}

test('tidal_mcp at server level is rejected with the directive and file:line', T, () => {
    const r = nginxT({ server: 'tidal_mcp;  # at server level' });
    assertRejected(r, 'tidal_mcp', '# at server level');
    assert.match(r.output, /not allowed here/);
});

test('tidal_max_message_size abc at http level is rejected with file:line', T, () => {
    assertRejected(nginxT({ http: 'tidal_max_message_size abc;' }),
        'tidal_max_message_size', 'tidal_max_message_size abc;');
});
