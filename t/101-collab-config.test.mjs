// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Configuration of the collaboration features: nginx -t accepts the
// documented example and rejects bad values of the new directives, naming
// the directive and the file:line (t/117: a config without tidal_zone).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nginxT, lineOf, SLOW } from './lib/nginx.mjs';

const T = { timeout: 30000 * SLOW };

function assertOk(r) {
    assert.equal(r.code, 0, `nginx -t should accept the config:\n${r.output}\n--- config:\n${r.conf}`);
    assert.match(r.output, /test is successful/);
}

function emergLine(r) {
    assert.notEqual(r.code, 0, `nginx -t should reject the config:\n${r.output}\n--- config:\n${r.conf}`);
    const line = r.output.split('\n').find((l) => l.includes('[emerg]'));
    assert.ok(line, `no [emerg] line in:\n${r.output}`);
    // the module must know the directive and refuse the value
    assert.doesNotMatch(line, /unknown directive/);
    return line;
}

// rejected with an [emerg] that names the directive, at the line of marker
function assertRejected(r, directive, marker) {
    const line = emergLine(r);
    const at = `${r.file}:${lineOf(r.conf, marker)}`;
    assert.ok(line.includes(directive), `the error should name ${directive}: ${line}`);
    assert.ok(line.includes(at), `the error should point at ${at}: ${line}`);
}

const PUBLISH_STATUS = `
        location = /publish {
            tidal_publish;
            allow 127.0.0.1;
            deny all;
        }
        location = /tidal-status {
            tidal_status;
        }`;


test('the documented configuration is accepted', T, () => {
    assertOk(nginxT({
        zone: 'tidal_zone tidal 32m;',
        http: `
    tidal_state_file /tmp/tidal-config-test.state;
    tidal_max_connections 10000;
    tidal_session_timeout 10m;
    map $remote_user $tidal_role_by_user {
        default  listener;
        alice    performer;
        root     admin;
    }`,
        location: `
            tidal_role $tidal_role_by_user;
            tidal_name $remote_user;
            tidal_metrics_interval 1s;`,
        server: PUBLISH_STATUS,
    }));
});

test('tidal_role, tidal_name and tidal_metrics_interval are accepted at http, server and location level', T, () => {
    assertOk(nginxT({
        zone: 'tidal_zone tidal 1m;',
        http: `
    tidal_role listener;
    tidal_name "the room";
    tidal_metrics_interval off;`,
        server: `
        tidal_role admin;
        tidal_name $http_x_name;
        tidal_metrics_interval 250ms;`,
        location: `
            tidal_role performer;
            tidal_metrics_interval 5s;`,
    }));
});

const rejected = [
    ['tidal_zone', 'tidal_zone tidal abc;'],
    ['tidal_zone', 'tidal_zone tidal 0;'],
    ['tidal_zone', 'tidal_zone tidal -8m;'],
    ['tidal_zone', 'tidal_zone tidal;'],
    ['tidal_max_connections', 'tidal_max_connections lots;'],
    ['tidal_max_connections', 'tidal_max_connections -1;'],
    ['tidal_session_timeout', 'tidal_session_timeout whenever;'],
];

for (const [directive, line] of rejected) {
    test(`"${line}" is rejected, naming the directive at its file:line`, T, () => {
        if (directive === 'tidal_zone') {
            assertRejected(nginxT({ zone: line }), directive, line);
        } else {
            assertRejected(nginxT({ http: line }), directive, line);
        }
    });
}

for (const line of ['tidal_metrics_interval soon;', 'tidal_metrics_interval -1s;', 'tidal_metrics_interval 1s 2s;']) {
    test(`"${line}" is rejected, naming the directive at its file:line`, T, () => {
        assertRejected(nginxT({ location: line }), 'tidal_metrics_interval', line);
    });
}

test('tidal_zone inside a server block is rejected (http level only)', T, () => {
    assertRejected(nginxT({ server: 'tidal_zone other 1m;' }), 'tidal_zone', 'tidal_zone other 1m;');
});
