// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper's command line: every option's value is checked before
// anything starts, a mistake names the option and ends with the usage on
// stderr and exit status 2; --help and --version answer on stdout.  A
// valid line is seen in the helper's first log line (its GHCi is
// /bin/false and stdin is closed at once, so nothing boots).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { HELPER_BIN } from './lib/helper.mjs';

const T = { timeout: 30000 };

function helper(args, env = {}) {
    const r = spawnSync(HELPER_BIN, args, {
        input: '', encoding: 'utf8', timeout: 10000,
        env: { ...process.env, ...env },
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
}

const USAGE = /usage: tidal-helper --stdio \[options\]/;

const REJECTED = [
    [[], /--stdio, --socket or --play, one of them/],
    [['--stdio', '--socket', '/tmp/x.sock', '--master-pid', '2'], /--stdio, --socket or --play, one of them/],
    [['--stdio', '--connect', 'ws://127.0.0.1/mcp', '--play', '127.0.0.1:57120'], /--stdio, --socket or --play, one of them/],
    [['--play', '127.0.0.1:57120'], /--play needs --connect/],
    [['--connect', 'ws://127.0.0.1/mcp', '--play', '57120'], /--play wants HOST:PORT, not "57120"/],
    [['--connect', 'ws://127.0.0.1/mcp', '--play', '127.0.0.1:0'], /--play wants HOST:PORT/],
    [['--connect', 'ws://127.0.0.1/mcp', '--play', '127.0.0.1:57120', '--latency', '10001'], /--latency wants 0 \.\. 10000 ms/],
    [['--connect', 'ws://127.0.0.1/mcp', '--play', '127.0.0.1:57120', '--latency', '0.1'], /--latency wants 0 \.\. 10000 ms/],
    [['--stdio', '--latency', '19'], /--latency wants 20 \.\. 10000 ms/],
    [['--connect', 'ws://127.0.0.1/mcp'], /--stdio, --socket or --play, one of them/],
    [['--stdio', '--bogus'], /unknown option or missing value: --bogus/],
    [['--bogus', 'x', '--stdio'], /unknown option --bogus/],
    [['--stdio', 'stdio'], /unknown option or missing value: stdio/],
    [['stdio', '--stdio'], /unknown option or missing value: stdio/],
    [['--stdio', '--eval-timeout'], /unknown option or missing value: --eval-timeout/],
    [['--stdio', '--eval-timeout', '99'], /--eval-timeout wants 100 \.\. 600000 ms/],
    [['--stdio', '--eval-timeout', '600001'], /--eval-timeout wants 100 \.\. 600000 ms/],
    [['--stdio', '--eval-timeout', '5s'], /--eval-timeout wants 100 \.\. 600000 ms/],
    [['--stdio', '--health-interval', '3600001'], /--health-interval wants 0 \.\. 3600000 ms/],
    [['--stdio', '--health-interval', '-1'], /--health-interval wants 0 \.\. 3600000 ms/],
    [['--stdio', '--stall-after', '499'], /--stall-after wants 0 or 500 \.\. 600000 ms/],
    [['--stdio', '--stall-after', '600001'], /--stall-after wants 0 or 500 \.\. 600000 ms/],
    [['--stdio', '--dirt-rate', '1000001'], /--dirt-rate wants 0 \.\. 1000000 a second/],
    [['--stdio', '--dirt-rate', '-1'], /--dirt-rate wants 0 \.\. 1000000 a second/],
    [['--stdio', '--dirt', 'localhost'], /--dirt wants HOST:PORT, not "localhost"/],
    [['--stdio', '--dirt', ':57120'], /--dirt wants HOST:PORT, not ":57120"/],
    [['--stdio', '--dirt', '127.0.0.1:0'], /--dirt wants HOST:PORT, not "127\.0\.0\.1:0"/],
    [['--stdio', '--dirt', '127.0.0.1:65536'], /--dirt wants HOST:PORT/],
    [['--stdio', '--dirt', `${'h'.repeat(256)}:1`], /--dirt wants HOST:PORT/],
    [['--stdio', '--tempo-port', '0'], /--tempo-port wants a port/],
    [['--stdio', '--ctrl-port', '65536'], /--ctrl-port wants a port/],
    [['--stdio', '--ghci-memory', 'lots'], /--ghci-memory wants a size such as 512m or 2g, or off/],
    [['--stdio', '--ghci-memory', '2gb'], /--ghci-memory wants a size such as 512m or 2g, or off/],
    [['--stdio', '--ghci-memory', '1'.repeat(33)], /--ghci-memory wants a size/],
    [['--socket', '/tmp/x.sock'], /--socket needs --master-pid/],
    [['--socket', '/tmp/x.sock', '--master-pid', '1'], /--master-pid wants a pid/],
    [['--stdio', '--generation', '12x'], /--generation wants a number/],
    [['--stdio', '--role', 'god'], /--role is performer, admin or listener/],
    [['--stdio', '--header', 'A: b'], /--header goes with --connect/],
    [['--stdio', '--reconnect'], /--reconnect goes with --connect/],
    [['--stdio', '--ghci', '   '], /--ghci wants a command of at most 64 words/],
    [['--stdio', '--ghci', Array(65).fill('w').join(' ')], /--ghci wants a command of at most 64 words/],
    [['--stdio', '--header-env', 'TIDAL_TEST_NO_SUCH_VAR'], /--header-env: the environment has no TIDAL_TEST_NO_SUCH_VAR/],
    [['--stdio', '--connect', 'http://127.0.0.1/mcp'], /--connect wants ws:\/\/HOST\[:PORT\]/],
    [['--stdio', '--connect', 'ws://127.0.0.1/mcp', '--header', 'nocolon'], /--header wants "Name: value"/],
    [['--stdio', '--connect', 'ws://127.0.0.1/mcp', '--ca-file', '/nonexistent.pem'], /--ca-file: cannot read "\/nonexistent\.pem"/],
];

for (const [args, re] of REJECTED) {
    test(`tidal-helper ${args.join(' ').slice(0, 70)}: exit status 2, the reason, then the usage`, T, () => {
        const r = helper(args);
        assert.equal(r.code, 2, r.err);
        assert.match(r.err.split('\n')[0], re);
        assert.match(r.err, USAGE);
        assert.equal(r.out, '');
    });
}

test('--help and -h print the usage on stdout, --version the version; exit status 0', T, () => {
    for (const flag of ['--help', '-h']) {
        const r = helper([flag]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, USAGE);
        assert.match(r.out, /--eval-timeout MS/);
    }
    const v = helper(['--version', '--stdio']);
    assert.equal(v.code, 0, v.err);
    assert.match(v.out, /^tidal-helper \d+\.\d+\.\d+\n$/);
});

test('valid options: the helper starts with them (its first lines say so)', T, () => {
    let r = helper(['--stdio', '--ghci', '/bin/false', '--boot', '/nonexistent/Boot.hs', '--dirt', '127.0.0.1:9',
        '--role', 'admin', '--eval-timeout', '100', '--health-interval', '0', '--stall-after', '0',
        '--dirt-rate', '0', '--ghci-memory', 'off', '--tempo-port', '65535', '--ctrl-port', '0',
        '--generation', '7', '--config', 'x', '--verbose', '--allow-raw']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /info: stdio MCP server, role admin, SuperDirt at 127\.0\.0\.1:9, boot file \/nonexistent\/Boot\.hs/);
    assert.match(r.err, /debug: stdin closed/, '--verbose logs debugging details');

    r = helper(['--stdio', '--ghci', '/bin/false', '--dirt', 'localhost:57121', '--ghci-memory', '512M',
        '--stall-after', '500', '--eval-timeout', '600000', '--health-interval', '3600000',
        '--dirt-rate', '1000000']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /role performer, SuperDirt at localhost:57121,/);
    assert.doesNotMatch(r.err, /debug:/);

    r = helper(['--stdio', '--ghci', '/bin/false', '--role', 'listener', '--header-env', 'TIDAL_TEST_HDR'],
        { TIDAL_TEST_HDR: 'X-A: b' });
    assert.equal(r.code, 2, 'a header without --connect is refused even from the environment');
    assert.match(r.err, /--header goes with --connect/);

    r = helper(['--stdio', '--ghci', '/bin/false', '--role', 'listener']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /role listener, SuperDirt at 127\.0\.0\.1:57120, boot file \S*BootTidal\.hs/);

    // nothing listens on port 9: --play says what it would do, then fails
    r = helper(['--connect', 'ws://127.0.0.1:9/mcp', '--play', 'localhost:57121', '--latency', '0']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /info: playing the room at ws:\/\/127\.0\.0\.1:9\/mcp on SuperDirt at localhost:57121, latency 0 ms/);
    r = helper(['--connect', 'ws://127.0.0.1:9/mcp', '--play', '127.0.0.1:57120']);
    assert.match(r.err, /SuperDirt at 127\.0\.0\.1:57120, latency 100 ms/);
});
