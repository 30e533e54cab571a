// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// tidal-helper keeps the music going (the cases that also run through
// nginx are t/lib/recovery-tests.mjs; t/403 runs them there): a boot that
// fails says why, and nothing is left running when the helper goes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BOOT_FILE, Helper, SKIP, alive } from './lib/helper.mjs';
import { waitFor } from './lib/nginx.mjs';
import { recoveryTests } from './lib/recovery-tests.mjs';

const T = { timeout: 120000, skip: SKIP };

recoveryTests({
    start: ({ evalTimeout, healthInterval } = {}) => Helper.start({
        args: [
            ...(evalTimeout ? ['--eval-timeout', String(evalTimeout)] : []),
            ...(healthInterval ? ['--health-interval', String(healthInterval)] : []),
        ],
    }),
    skip: SKIP,
});


test('a boot that fails is reported with its reason, and the helper answers meanwhile', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-boot-'));
    const noD1 = path.join(dir, 'NoD1.hs');
    fs.writeFileSync(noD1, fs.readFileSync(BOOT_FILE, 'utf8')
        .replace(/^ {4}d1 = .*\n/m, ''));
    const cases = [
        [['--boot', path.join(dir, 'missing.hs')], /Tidal did not boot: cannot open boot file .*missing\.hs/],
        [['--boot', noD1], /Tidal did not boot: .*Variable not in scope: d1/s],
        [['--ghci', '/nonexistent/ghci'], /Tidal did not boot: GHCi exited.*cannot run "\/nonexistent\/ghci"/s],
    ];
    try {
        for (const [args, re] of cases) {
            const h = await Helper.start({ args });
            try {
                const r = await h.call('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' });
                assert.equal(r.isError, true, `${args.join(' ')}: ${r.text}`);
                assert.match(r.text, re);
                const st = await h.ok('tidal_get_state');
                assert.match(st.structuredContent.ghci, re);
                assert.match(h.log, re);
            } finally {
                await h.stop();
            }
        }
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('the helper killed with SIGKILL leaves no GHCi behind', T, async () => {
    const h = await Helper.start();
    try {
        await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' });
        const pid = await h.waitGhci();
        process.kill(h.pid, 'SIGKILL');
        await waitFor(() => !alive(pid), { timeout: 10000, what: 'GHCi to exit after its helper' });
    } finally {
        await h.stop();
    }
});
