// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The helper's socket is nginx's worker user's alone: 0600 in a 0700
// directory.  Should its mode ever be opened up, the helper still refuses
// a peer whose uid (SO_PEERCRED) is neither its own nor root's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HELPER_BIN, SKIP, alive } from './lib/helper.mjs';
import { waitFor, SLOW } from './lib/nginx.mjs';

const T = { timeout: 60000 * SLOW };
const NOBODY = 65534;

// connects to sock as uid NOBODY; resolves to "closed" when the helper
// hangs up on it, "open" if it is still connected after a while
function connectAsNobody(sock) {
    const script = `
        const c = require('node:net').connect(${JSON.stringify(sock)});
        const t = setTimeout(() => { console.log('open'); process.exit(0); }, ${10000 * SLOW});
        c.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
        c.on('close', () => { clearTimeout(t); console.log('closed'); process.exit(0); });`;
    const p = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups',
        process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    return new Promise((resolve) => p.on('exit', () => resolve(out.trim())));
}


test('a peer that is neither the helper\'s user nor root is refused, whatever the socket\'s mode', {
    ...T, skip: SKIP || (process.getuid() !== 0 && 'needs root to connect as another user'),
}, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-peer-'));
    fs.chmodSync(dir, 0o755);
    const sock = path.join(dir, 'helper.sock');
    // no GHCi is needed to answer a connection
    const helper = spawn(HELPER_BIN, ['--socket', sock, '--master-pid', String(process.pid),
        '--ghci', 'false', '--health-interval', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    helper.stderr.on('data', (d) => { log += d; });
    try {
        await waitFor(() => fs.existsSync(sock), { what: 'the helper\'s socket' });
        assert.equal(fs.statSync(sock).mode & 0o777, 0o600);

        fs.chmodSync(sock, 0o666);
        assert.equal(await connectAsNobody(sock), 'closed');
        await waitFor(() => log.includes(`refused a connection from uid ${NOBODY}`),
            { what: `the refusal in the helper's log:\n${log}` });
        assert.ok(alive(helper.pid), 'the helper serves on');
    } finally {
        helper.kill('SIGTERM');
        await waitFor(() => helper.exitCode !== null || helper.signalCode !== null,
            { timeout: 10000, what: 'the helper to exit' }).catch(() => helper.kill('SIGKILL'));
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
