// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The official MCP conformance suite (t/clients, pinned) against the
// tidal_mcp location over Streamable HTTP: every server scenario the suite
// lists runs, one at a time, with Node 22.  A scenario passes as the
// suite's own --expected-failures rule says: no check FAILURE or WARNING.
// Those in t/conformance/expected-failures.txt (they need the suite's
// fixture tools, prompts and resources) must still fail, so that file
// stays honest; every other one must pass.  t/conformance/README.md says
// what each scenario sends and expects.
//
// No GHCi: no scenario that must pass calls a tool, and the fixture tools
// the others call are unknown to the worker, which answers by itself.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx, makeTempDir, SLOW } from './lib/nginx.mjs';
import {
    CONFORMANCE, clientsMissing, conformanceServerScenarios, runNode22,
} from './lib/clients.mjs';

const HERE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'conformance');
const SCENARIO_TIMEOUT = 60000 * SLOW;
const T = { timeout: SCENARIO_TIMEOUT + 10000 };

// "name  # comment" or "name  [versions]" lines; # starts a comment line
function names(file) {
    return fs.readFileSync(path.join(HERE, file), 'utf8').split('\n')
        .map((l) => l.replace(/#.*/, '').trim().split(/\s+/)[0])
        .filter(Boolean);
}

const SCENARIOS = names('scenarios.txt');
const EXPECTED_FAILURES = new Map(fs.readFileSync(path.join(HERE, 'expected-failures.txt'), 'utf8')
    .split('\n').filter((l) => /^[a-z]/.test(l))
    .map((l) => [l.split(/\s+/)[0], l.replace(/^\S+\s*#\s*/, '')]));

let ngx;
let results;

before(async () => {
    const missing = clientsMissing();
    assert.equal(missing, null, missing);
    ngx = await startNginx();
    results = makeTempDir('tidal-conformance-');
});

after(async () => {
    await ngx?.stop();
    if (results && process.env.TIDAL_KEEP !== '1') {
        fs.rmSync(results, { recursive: true, force: true });
    }
});

function mcpUrl() {
    return `http://127.0.0.1:${ngx.port}/mcp`;
}

// one scenario's checks, as the suite wrote them to checks.json
async function runScenario(name) {
    const out = path.join(results, name);
    const r = await runNode22(CONFORMANCE,
        ['server', '--url', mcpUrl(), '--scenario', name, '--output-dir', out],
        { timeout: SCENARIO_TIMEOUT });
    const dirs = fs.existsSync(out) ? fs.readdirSync(out) : [];
    if (dirs.length !== 1) {
        throw new Error(`conformance wrote no result for ${name} (exit ${r.code}):\n`
            + `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    }
    const checks = JSON.parse(fs.readFileSync(path.join(out, dirs[0], 'checks.json'), 'utf8'));
    return { checks, output: `${r.stdout}\n${r.stderr}` };
}

function failedChecks(checks) {
    return checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
}

function describe(checks) {
    return checks.map((c) => `  ${c.status} ${c.id}: ${c.errorMessage || c.description}`
        + (c.details ? `\n    ${JSON.stringify(c.details).slice(0, 600)}` : '')).join('\n');
}


test('t/conformance/scenarios.txt is the pinned suite\'s server scenario list (t/conformance/list-scenarios writes it)', T, async () => {
    const listed = (await conformanceServerScenarios()).map((s) => s.name);
    assert.deepEqual(SCENARIOS, listed);
});

test('every expected failure is a scenario of the suite and names its fixture', () => {
    for (const [name, why] of EXPECTED_FAILURES) {
        assert.ok(SCENARIOS.includes(name), `${name} is not in scenarios.txt`);
        assert.match(why, /^needs fixture /, `${name}: "${why}"`);
    }
});

for (const name of SCENARIOS) {
    const why = EXPECTED_FAILURES.get(name);
    const title = why ? `${name} fails as expected: ${why}` : `${name} passes`;
    test(title, T, async () => {
        const { checks, output } = await runScenario(name);
        const failed = failedChecks(checks);
        if (why) {
            assert.ok(failed.length > 0, `${name} passes now: remove it from `
                + `t/conformance/expected-failures.txt\n${describe(checks)}`);
        } else {
            assert.ok(checks.length > 0, `${name} reported no checks:\n${output.slice(-3000)}`);
            assert.deepEqual(failed, [], `${name} failed:\n${describe(failed)}`);
        }
    });
}
