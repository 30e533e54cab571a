// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The Debian package, installed on this machine (`make test-deb`, the last
// step of `make test`, as root): `apt-get install ./….deb` puts the module,
// its load_module snippet (enabled as other libnginx-mod-* packages are),
// the helper and the boot file in system paths; the system nginx loads the
// installed module (TIDAL_MODULE_SO) with its packaged defaults and plays
// a pattern through the packaged helper as www-data; `apt-get purge`
// takes it all away again.  Not named *.test.mjs: the suites of `make
// integration` must not install anything.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { Room } from '../lib/room.mjs';
import { NGINX_BIN, MODULE_SO, SLOW } from '../lib/nginx.mjs';

const T = { timeout: 180000 * SLOW };

const DEB = process.env.TIDAL_DEB;
const PACKAGE = 'libnginx-mod-http-tidal';

const FILES = {
    module: '/usr/lib/nginx/modules/ngx_tidal_module.so',
    snippet: '/usr/share/nginx/modules-available/mod-http-tidal.conf',
    enabled: '/etc/nginx/modules-enabled/50-mod-http-tidal.conf',
    helper: '/usr/libexec/nginx-tidal/tidal-helper',
    boot: '/usr/share/nginx-tidal/BootTidal.hs',
    page: '/usr/share/nginx-tidal/html/index.html',
    pageScript: '/usr/share/nginx-tidal/html/app.js',
    example: `/usr/share/doc/${PACKAGE}/examples/tidal.conf`,
};

// the packaged default of tidal_helper_socket
const SOCKET_DIR = '/run/nginx-tidal';


function run(cmd, args) {
    const r = spawnSync(cmd, args, {
        encoding: 'utf8',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        timeout: 300000,
    });
    return { code: r.status, output: `${r.stdout || ''}${r.stderr || ''}` };
}

function purge() {
    const r = run('apt-get', ['purge', '-y', '-q', PACKAGE]);
    fs.rmSync(SOCKET_DIR, { recursive: true, force: true });
    return r;
}

function ownerName(uid) {
    const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n')
        .find((l) => l.split(':')[2] === String(uid));
    return line ? line.split(':')[0] : String(uid);
}

function procUid(pid) {
    const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}


before(() => {
    assert.ok(DEB && fs.existsSync(DEB), `TIDAL_DEB=${DEB} is not a file (make test-deb builds it)`);
    assert.equal(MODULE_SO, FILES.module, 'TIDAL_MODULE_SO must be the installed module');
    const r = run('apt-get', ['install', '-y', '-q', '--no-install-recommends', DEB]);
    assert.equal(r.code, 0, `apt-get install ${DEB} failed:\n${r.output}`);
});

after(() => {
    purge();
});


test('the package installs the module, its enabled snippet, the helper, the boot file and the docs', T, () => {
    for (const [what, file] of Object.entries(FILES)) {
        assert.ok(fs.existsSync(file), `${what}: ${file} is missing`);
    }
    assert.equal(fs.readFileSync(FILES.snippet, 'utf8').trim(), 'load_module modules/ngx_tidal_module.so;');
    assert.equal(fs.realpathSync(FILES.enabled), FILES.snippet, 'modules-enabled links to modules-available');
    fs.accessSync(FILES.helper, fs.constants.X_OK);
});

test('the stock /etc/nginx/nginx.conf loads the module through modules-enabled', T, () => {
    const r = run(NGINX_BIN, ['-t', '-c', '/etc/nginx/nginx.conf']);
    assert.equal(r.code, 0, `nginx -t failed:\n${r.output}`);
    const m = run(NGINX_BIN, ['-T', '-c', '/etc/nginx/nginx.conf']);
    assert.match(m.output, /load_module modules\/ngx_tidal_module\.so;/);
});

test('the installed module plays a pattern through the packaged helper, as www-data, with no path set', T, async () => {
    // no tidal_zone, tidal_helper, tidal_helper_socket or tidal_boot: the
    // packaged defaults; only Tidal's OSC goes to the test's listener
    const room = await Room.start({ name: 'packaged', zone: '', main: 'user www-data;' });
    try {
        const worker = room.ngx.workerPids()[0];
        assert.match(fs.readFileSync(`/proc/${worker}/maps`, 'utf8'), /\/usr\/lib\/nginx\/modules\/ngx_tidal_module\.so/,
            'the worker maps the installed module');

        const helper = room.helperPid();
        assert.ok(helper, `no helper in the log:\n${room.log.slice(-2000)}`);
        assert.equal(fs.readlinkSync(`/proc/${helper}/exe`), FILES.helper);
        assert.equal(ownerName(procUid(helper)), 'www-data');
        assert.equal(ownerName(fs.statSync(`${SOCKET_DIR}/helper.sock`).uid), 'www-data');

        const since = Date.now();
        await room.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd*2 sn"' });
        const ev = await room.dirt.waitFor((e) => e.s === 'sn', { since, timeoutMs: 15000 * SLOW, what: '/dirt/play with s=sn' });
        assert.equal(ev.s, 'sn');
        await room.ok('tidal_hush');
    } finally {
        await room.stop();
    }
});

test('apt-get purge removes the module, the snippet and its link, and the helper', T, () => {
    const r = purge();
    assert.equal(r.code, 0, `apt-get purge failed:\n${r.output}`);
    for (const [what, file] of Object.entries(FILES)) {
        assert.ok(!fs.existsSync(file), `${what}: ${file} is still there`);
    }
    let dangling = true;
    try {
        fs.lstatSync(FILES.enabled);
    } catch {
        dangling = false;
    }
    assert.equal(dangling, false, `${FILES.enabled} is left behind`);
});
