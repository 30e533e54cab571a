// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The relay's cap on /dirt/play, the same over stdio (--dirt-rate) and
// through nginx (tidal_dirt_rate): a pattern of 1280 events a second
// reaches the UDP listener at the cap with at most its tenth of a second
// of burst on top, in any second; the drop is reported once a burst, in
// an error event and in the log, naming the channel its tidalch says (and
// none when the events carry none).  start(rate) returns a Helper or a
// Room whose cap is rate a second.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

const RATE = 50;
const BURST = RATE / 10;

const REPORT = new RegExp(`^More than ${RATE} sounds a second went to SuperDirt`);


export function rateTests({ start, skip = false }) {
    const T = { timeout: 120000, skip };

    let h;

    before(async () => {
        if (skip) {
            return;
        }
        h = await start(RATE);
    });

    after(async () => {
        await h?.stop();
    });

    // the most events that arrived in any second from since on
    function mostInASecond(events) {
        let most = 0;
        for (let i = 0, j = 0; i < events.length; i++) {
            while (events[i].arrival - events[j].arrival >= 1000) {
                j++;
            }
            most = Math.max(most, i - j + 1);
        }
        return most;
    }

    function reports(from) {
        return h.events('error', from).filter((e) => REPORT.test(e.message));
    }


    test(`a flood reaches SuperDirt at ${RATE} a second; each burst of drops is reported once, with its channel`, T, async () => {
        const from = h.notes.length;
        const since = Date.now();
        await h.ok('tidal_set_tempo', { cps: 10 });
        await h.ok('tidal_eval', { channel: 'd3', pattern: 'sound "bd*128" # pI "tidalch" 3' });

        const first = await h.waitNote((n) => n.method === 'notifications/tidal/error'
            && REPORT.test(n.params.message), { from, what: 'the drop reported' });
        assert.equal(first.params.channel, 'd3');
        assert.match(first.params.message, /most of them d3's/);
        await h.waitLog(new RegExp(`OSC relay: more than ${RATE} /dirt/play a second, most of them d3's: the excess is dropped`));

        // three seconds of the flood, as the listener hears it
        await h.dirt.waitFor((e) => e.s === 'bd', { since: Date.now() + 3000, what: 'bd 3 s on' });
        const heard = h.dirt.after(since).filter((e) => e.s === 'bd');
        const most = mostInASecond(heard);
        assert.ok(most <= RATE + BURST + 2, `${most} events in one second`);
        const last = heard.filter((e) => e.arrival >= heard[heard.length - 1].arrival - 2000);
        assert.ok(last.length >= RATE, `the cap lets ${RATE} a second through: ${last.length} in the last 2 s`);
        assert.equal(reports(from).length, 1, 'one report for the burst');
        assert.equal(h.log.match(/OSC relay: more than \d+ \/dirt\/play a second/g).length, 1);

        // a second without drops ends the burst; the next flood is
        // reported anew, with its own channel
        await h.ok('tidal_hush');
        await h.ok('tidal_eval', { channel: 'd4', pattern: 'sound "hh"' });
        await h.waitLog(/OSC relay: \d+ \/dirt\/play dropped in \d+ ms over 50 a second/);
        await h.ok('tidal_eval', { channel: 'd4', pattern: 'sound "hh*128"' });
        await h.waitNote((n) => n.method === 'notifications/tidal/error'
            && REPORT.test(n.params.message) && n.params.seq > first.params.seq,
        { from, what: 'the second burst reported' });
        const both = reports(from);
        assert.equal(both.length, 2);
        assert.equal(both[1].channel, 'd4', 'the stamp names the new channel');
        await h.ok('tidal_hush');
        await h.ok('tidal_set_tempo', { cps: 0.5625 });
    });
}
