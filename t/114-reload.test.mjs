// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// nginx -s reload keeps the shared zone: a client that was away (or was
// closed by the reload) resumes its session and gets the events published
// meanwhile, and the state is still there.  A reload that changes the zone
// size starts a fresh zone, reseeded from tidal_state_file, and says so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startNginx, waitPidsGone, SLOW } from './lib/nginx.mjs';
import { TidalWs, PUBLISH_AND_STATUS, publish, tidalStatus, streamProblems } from './lib/tidal.mjs';
import { SEEDED_STATE, stateDir, writeState, assertSeededState } from './lib/state.mjs';

const T = { timeout: 60000 * SLOW };

// an error_log line saying the zone was made anew
const zoneRecreated = (l) => /zone/i.test(l) && /(anew|recreat|reseed|fresh|new zone|size chang)/i.test(l);

let ngx;
let state;

before(async () => {
    state = stateDir();
    writeState(state.file, SEEDED_STATE);
    ngx = await startNginx({
        zone: 'tidal_zone tidal 8m;',
        http: `tidal_state_file ${state.file};`,
        server: PUBLISH_AND_STATUS,
    });
});

after(async () => {
    await ngx?.stop();
    fs.rmSync(state.dir, { recursive: true, force: true });
});


test('after a reload, a client that was away and one closed by the reload resume and get what they missed', T, async () => {
    const away = await TidalWs.join(ngx.url, { name: 'away' });
    const seen = await publish(ngx.port, { id: 'seen' });
    await away.untilCustom('seen');
    await away.close();
    const missed1 = await publish(ngx.port, { id: 'missed-1' });

    const through = await TidalWs.join(ngx.url, { name: 'through' });
    const logBefore = ngx.errorLog().length;
    const { oldPids } = await ngx.reload();
    assert.equal((await through.closed).code, 1001);
    await waitPidsGone(oldPids);
    assert.deepEqual(ngx.errorLog().slice(logBefore).split('\n').filter(zoneRecreated), [],
        'a reload with the same zone size keeps the zone');
    const missed2 = await publish(ngx.port, { id: 'missed-2' });

    const back = await TidalWs.join(ngx.url, { name: 'away', session: away.session, lastSeq: seen });
    const again = await TidalWs.join(ngx.url, { name: 'through', session: through.session, lastSeq: through.joinSeq });
    try {
        for (const [c, before] of [[back, away], [again, through]]) {
            assert.equal(c.meta['tidal/resumed'], true, `${c.label}: ${JSON.stringify(c.meta)}`);
            assert.equal(c.session, before.session);
        }
        await back.untilCustom('missed-2');
        await again.untilCustom('missed-2');
        const live = await publish(ngx.port, { id: 'live' });
        await Promise.all([back, again].map((c) => c.untilCustom('live')));
        assert.deepEqual(back.stream().map((e) => [e.data?.id, e.seq]), [['missed-1', missed1], ['missed-2', missed2], ['live', live]]);
        assert.deepEqual(again.stream().map((e) => [e.data?.id, e.seq]), [['missed-2', missed2], ['live', live]]);
        assert.deepEqual(streamProblems(back.stream(), seen), []);

        assertSeededState(await back.state());
    } finally {
        await back.close();
        await again.close();
    }
});

test('a reload that changes the zone size starts a fresh zone reseeded from the state file, and error_log says so', T, async () => {
    const c = await TidalWs.join(ngx.url, { name: 'before-resize' });
    await publish(ngx.port, { id: 'before-resize' });
    await c.untilCustom('before-resize');
    await c.close();
    const logBefore = ngx.errorLog().length;

    const { oldPids } = await ngx.reload({ zone: 'tidal_zone tidal 16m;' });
    await waitPidsGone(oldPids);

    const added = ngx.errorLog().slice(logBefore);
    assert.ok(added.split('\n').some(zoneRecreated),
        `error_log should say the zone was recreated; it got:\n${added}`);
    const s = await tidalStatus(ngx.port);
    assert.equal(s.zone.size, 16 * 1024 * 1024, JSON.stringify(s.zone));

    const back = await TidalWs.join(ngx.url, { name: 'before-resize', session: c.session, lastSeq: c.joinSeq });
    try {
        assert.equal(back.meta['tidal/resumed'], false, 'sessions lived in the old zone');
        assert.notEqual(back.session, c.session);
        assertSeededState(await back.state());
    } finally {
        await back.close();
    }
});
