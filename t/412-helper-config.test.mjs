// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Configuration of the GHCi helper: nginx -t accepts the documented
// settings and rejects what the helper could not run with, naming the
// directive - before any worker starts a helper with it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nginxT, lineOf, SLOW } from './lib/nginx.mjs';
import { BOOT_FILE, HELPER_BIN } from './lib/helper.mjs';

const T = { timeout: 30000 * SLOW };

const DOCUMENTED = `tidal_helper ${HELPER_BIN};
    tidal_helper_socket tidal/helper.sock;
    tidal_ghci ghci;
    tidal_boot ${BOOT_FILE};
    tidal_dirt_address 127.0.0.1:57120;
    tidal_dirt_rate 1000;
    tidal_eval_timeout 5s;
    tidal_health_interval 5s;
    tidal_ghci_memory 2g;
    tidal_allow_raw off;`;

function emerg(r) {
    assert.notEqual(r.code, 0, `nginx -t should reject the config:\n${r.output}\n--- config:\n${r.conf}`);
    const line = r.output.split('\n').find((l) => l.includes('[emerg]'));
    assert.ok(line, `no [emerg] line in:\n${r.output}`);
    assert.doesNotMatch(line, /unknown directive/);
    return line;
}


test('the documented helper settings are accepted, and so is tidal_helper off', T, () => {
    for (const helper of [DOCUMENTED, 'tidal_helper off;', 'tidal_ghci_memory off; tidal_health_interval 0;',
        'tidal_dirt_rate 0;']) {
        const r = nginxT({ helper });
        assert.equal(r.code, 0, `nginx -t should accept:\n${helper}\n${r.output}`);
    }
});

const REJECTED = [
    ['tidal_dirt_address 127.0.0.1;', /tidal_dirt_address "127\.0\.0\.1" is not HOST:PORT/],
    ['tidal_dirt_address :57120;', /tidal_dirt_address ":57120" is not HOST:PORT/],
    ['tidal_dirt_address 127.0.0.1:70000;', /is not HOST:PORT/],
    ['tidal_ghci_memory lots;', /tidal_ghci_memory "lots" is neither a size/],
    ['tidal_dirt_rate 2000000;', /"tidal_dirt_rate" directive must be at most 1000000 a second \(0: no cap\)/],
    ['tidal_dirt_rate lots;', /"tidal_dirt_rate" directive invalid number/],
    ['tidal_dirt_rate -1;', /"tidal_dirt_rate" directive invalid number/],
    ['tidal_eval_timeout 10ms;', /"tidal_eval_timeout" directive must be 100ms \.\. 10m/],
    ['tidal_eval_timeout soon;', /"tidal_eval_timeout" directive invalid value/],
    ['tidal_health_interval 2h;', /"tidal_health_interval" directive must be at most 1h/],
    ['tidal_allow_raw maybe;', /invalid value "maybe" in "tidal_allow_raw" directive, it must be "on" or "off"/],
    ['tidal_helper /nonexistent/tidal-helper;', /tidal_helper "\/nonexistent\/tidal-helper" cannot be run/],
    ['tidal_helper off; tidal_helper off;', /"tidal_helper" directive is duplicate/],
    [`tidal_helper_socket /tmp/${'x'.repeat(100)}.sock;`, /tidal_helper_socket ".*" is too long for a unix socket/],
];

for (const [helper, re] of REJECTED) {
    test(`"${helper.slice(0, 60)}" is rejected by nginx -t, naming the directive and its line`, T, () => {
        const r = nginxT({ helper });
        const line = emerg(r);
        assert.match(line, re);
        assert.ok(line.endsWith(`nginx.conf:${lineOf(r.conf, helper)}`), `the directive's line in: ${line}\n${r.conf}`);
    });
}

test('the helper settings are http-level: one helper per nginx', T, () => {
    assert.match(emerg(nginxT({ server: 'tidal_eval_timeout 5s;' })),
        /"tidal_eval_timeout" directive is not allowed here/);
});
