// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// A pattern is code, sandboxed by construction: ordinary Tidal (colons in
// strings, :: annotations, $, #, <~, multi-line layouts, tabs) evaluates
// in real GHCi, while every way to run something else - GHCi commands,
// leaving the expression, imports, unsafePerformIO, System.*, Foreign.*,
// where clauses, Template Haskell, Unicode tricks - is refused and leaves
// no trace: the file it tries to write is never written.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BOOT_FILE, Helper, SKIP, escapePath, exists, freeUdpPort } from './lib/helper.mjs';
import { sandboxTests } from './lib/sandbox-tests.mjs';
import { DirtListener } from './lib/osc.mjs';

const T = { timeout: 180000, skip: SKIP };

// the cases themselves: t/lib/sandbox-tests.mjs (t/402 runs them through nginx)
sandboxTests({ start: () => Helper.start({ name: 'sandbox-test' }), skip: SKIP });


test('the boot file alone: after it, Safe Haskell refuses unsafe modules even without the sandbox', T, async () => {
    const { spawnSync } = await import('node:child_process');
    const fs = await import('node:fs');
    const f = escapePath();
    // somewhere for Tidal's OSC to go, so it prints no "Failed to send"
    // into the errors this test reads
    const dirt = await DirtListener.start();
    const input = fs.readFileSync(BOOT_FILE, 'utf8') + [
        'd1 (sound "bd" :: ControlPattern)',
        `d1 (System.IO.Unsafe.unsafePerformIO (writeFile "${f}" "x" >> return silence) :: ControlPattern)`,
        'import System.IO.Unsafe',
        `d1 (unsafePerformIO (writeFile "${f}" "x" >> return silence) :: ControlPattern)`,
        'TidalIO.putStrLn "the boot\'s own qualified names stay usable by the helper"',
        'hush',
        '',
    ].join('\n');
    const r = spawnSync('ghci', ['-v0', '-ignore-dot-ghci'], {
        input,
        encoding: 'utf8',
        timeout: 120000,
        env: {
            PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8',
            TIDAL_DIRT_PORT: String(dirt.port), TIDAL_TEMPO_PORT: String(await freeUdpPort()),
            TIDAL_CTRL_PORT: '0',
        },
    });
    assert.equal(r.status, 0, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => /error|Can't be safely/.test(l));
    assert.match(r.stderr, /No module named .System\.IO\.Unsafe. is imported/);
    assert.match(r.stderr, /System\.IO\.Unsafe: Can't be safely imported/);
    assert.match(r.stderr, /Variable not in scope:\s+unsafePerformIO/);
    assert.equal(errors.filter((l) => /^<interactive>:\d+:\d+: error/.test(l)).length, 2,
        `only the two unsafe lines fail:\n${r.stderr}`);
    assert.equal(errors.filter((l) => /^<no location info>: error/.test(l)).length, 1);
    assert.match(r.stdout, /the boot's own qualified names stay usable/);
    assert.equal(exists(f), false);
    dirt.close();
});
