// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The sandbox tests, the same over stdio and through nginx: ordinary
// Tidal (colons in strings, :: annotations, $, #, <~, multi-line layouts,
// tabs) evaluates in real GHCi, while every way to run something else is
// refused and leaves no trace: the file it tries to write is never
// written.  start() returns a Helper or a Room.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { escapePath, exists } from './helper.mjs';


export function sandboxTests({ start, skip = false }) {
    const T = { timeout: 180000, skip };

    let h;
    let player;

    before(async () => {
        if (skip) {
            return;
        }
        h = await start();
        player = await h.waitGhci();
        await h.ok('tidal_set_tempo', { cps: 2 });
    });

    after(async () => {
        await h?.stop();
    });


    const LEGIT = [
        'sound "bd*4 sn"',
        'sound "bd:3 sn:1 hh:2"',
        'sound "bd" :: ControlPattern',
        'sound ("bd sn" :: Pattern String)',
        'sound "bd*2" # speed 2 # n "1 2" # gain 0.9',
        '(1/8) <~ sound "hh*4"',
        '0.25 ~> sound "bd sn"',
        'every 4 (fast 2) $ sound "bd sn"',
        'jux rev $ sound "bd sn hh"',
        'whenmod 4 2 (# speed 2) $ sound "bd sn"',
        'stack [sound "bd*2",\n       sound "hh*4" # gain 0.8,\n       sound "~ sn"]',
        'let x = "bd*2" in sound x',
        'let x = sound "bd*2"\n    y = sound "sn"\nin stack [x, y]',
        'let\n        x = sound "bd"\n\ty = sound "sn"\nin stack [x, y]',
        'sound "bd*8" # n (irand 8)',
        'sound "arpy*4" # n (range 1 5 sine)',
        'sound "arpy*4" # speed (segment 4 $ range 1 5 rand)',
        'n (segment 4 $ range 1 5 rand) # sound "arpy"',
        'sound "bd" -- a comment with ; { } and :}',
        '{- a {- nested -} comment -} sound "bd"',
        'sound "bd" # n (fromIntegral (fromEnum \';\'))',
        'sound "bd" # n (fromIntegral (length ("a;b{c}d:e" :: String)))',
        'sound "bd" # vowel "a" -- ) ] ;',
        'case 1 of\n  1 -> sound "bd"\n  _ -> silence',
        'if True then sound "bd" else silence',
        'sometimesBy 0.3 (# crush 4) $ sound "bd*8"',
        'off 0.125 (|+ n 12) $ n "0 4 7" # sound "superpiano"',
        'sound "bd" # n (Data.List.genericLength [1, 2, 3])',
        'sound (Data.Maybe.fromMaybe "bd" Nothing)',
        'Sound.Tidal.Context.fast 2 $ sound "bd"',
        'sound "caf\u00e9"',
        'silence',
    ];

    test('ordinary Tidal evaluates in real GHCi through the sandbox', T, async () => {
        for (const pattern of LEGIT) {
            const r = await h.call('tidal_eval', { channel: 'd1', pattern });
            assert.equal(r.isError, false, `${JSON.stringify(pattern)} was refused: ${r.text}`);
        }
        const st = await h.ok('tidal_get_state');
        assert.equal(st.structuredContent.channels.d1?.pattern, undefined, 'the last one was silence');
        const since = Date.now();
        await h.ok('tidal_eval', { channel: 'd1', pattern: LEGIT[1] });
        await h.dirt.waitFor((e) => e.s === 'bd' && e.n === 3, { since, what: 'bd:3 (s bd, n 3)' });
        await h.ok('tidal_hush');
    });


    // f: the file each attempt tries to create
    const ESCAPES = (f) => [
        // GHCi commands
        [`:! touch ${f}`, /1:1: ":!" starts a line/],
        [`sound "bd"\n:! touch ${f}`, /2:1: ":!"/],
        [`sound "bd"\n   :!touch ${f}`, /2:4: ":!touch"/],
        [`:set -XTemplateHaskell`, /":set"/],
        // closing the wrapper and starting statements
        [`sound "bd" :: ControlPattern)\n:}\n:! touch ${f}\n:{\nd1 (sound "bd"`, /2:1: ":}" starts a line/],
        [`silence)\nwriteFile "${f}" "x"\nd1 (silence`, /1:8: "\)" closes a bracket/],
        [`silence] ++ [writeFile "${f}" "x"`, /"\]"/],
        [`silence; writeFile "${f}" "x"`, /";" is not allowed/],
        [`let { x = writeFile "${f}" "x" } in silence`, /"\{" is not allowed/],
        [`sound "bd" {-\n:}\nwriteFile "${f}" "x"\n-}`, /2:1: ":}"/],
        [`sound "bd" {-\n\u00a0:}\nwriteFile "${f}" "x"\n-}`, /2:2: ":}"/],
        [`sound "bd" {-\n\u3000:}\nwriteFile "${f}" "x"\n-}`, /2:2: ":}"/],
        [`sound "a\\ \\" ) >> writeFile "${f}" "x" >> return (silence`, /"\)" closes a bracket/],
        [`n (fromEnum '"') # sound "x" ) >> writeFile "${f}" "x" >> return (silence`, /"\)" closes a bracket/],
        [`sound "bd" |-- n 1 ) >> writeFile "${f}" "x" >> return (silence`, /"\)" closes a bracket/],
        [`sound "bd" --\u2192 ) >> writeFile "${f}" "x" >> return (silence`, /non-ASCII character right after "--"/],
        [`sound "bd" {- unclosed`, /"\{-" opens a comment that is never closed/],
        // declarations
        ['import System.Process', /1:1: "import" is a keyword/],
        ['sound "bd"\nimport System.IO.Unsafe', /2:1: "import"/],
        [`sound x where x = unsafePerformIO (writeFile "${f}" "x") \`seq\` "bd"`, /"where" is a keyword/],
        ['foreign import ccall "system" c_system :: Int', /"foreign" is a keyword/],
        ['let data X = X in silence', /"data" is a keyword/],
        ['let instance Show Int in silence', /"instance" is a keyword/],
        // unsafe and qualified IO
        [`System.IO.Unsafe.unsafePerformIO (writeFile "${f}" "x") \`seq\` silence`, /names module System\.IO\.Unsafe|"unsafe/],
        [`unsafePerformIO (writeFile "${f}" "x") \`seq\` silence`, /"unsafePerformIO" is not allowed/],
        [`sound (System.IO.Unsafe.unsafePerformIO (System.Process.callCommand "touch ${f}" >> return "bd"))`, /System\.IO\.Unsafe/],
        [`System.IO.writeFile "${f}" "x"`, /names module System\.IO,/],
        [`System.Process.callCommand "touch ${f}" \`seq\` silence`, /names module System\.Process/],
        [`Foreign.Marshal.Alloc.malloc \`seq\` silence`, /names module Foreign\.Marshal\.Alloc/],
        [`GHC.IO.unsafePerformIO (writeFile "${f}" "x") \`seq\` silence`, /"GHC\.IO\.unsafePerformIO" is not allowed/],
        ['Control.Exception.throw (userError "x")', /names module Control\.Exception/],
        ['Debug.Trace.trace "x" silence', /names module Debug\.Trace/],
        [`TidalIO.writeFile "${f}" "x" \`seq\` silence`, /names module TidalIO/],
        ['Data.IORef.newIORef 1 `seq` silence', /names module Data\.IORef/],
        ['silence Prelude.>> silence', /"Prelude\.>>" is a qualified operator/],
        // Template Haskell and pragmas
        [`{-# LANGUAGE TemplateHaskell #-}\n$(runIO (writeFile "${f}" "x") >> [| silence |])`, /"\{-#" pragmas are not allowed/],
        [`{-# OPTIONS_GHC -XUnsafe #-} silence`, /pragmas are not allowed/],
        // bytes
        [`sound "bd"\r\n:! touch ${f}`, /control character U\+000D/],
        [`sound "bd\u001b[2J"`, /control character U\+001B/],
    ];

    test('every escape is refused with the token and its line:column, and nothing happens', T, async () => {
        for (let i = 0; i < ESCAPES('').length; i++) {
            const f = escapePath();
            const [pattern, re] = ESCAPES(f)[i];
            const from = h.notes.length;
            const r = await h.call('tidal_eval', { channel: 'd1', pattern });
            assert.equal(r.isError, true, `accepted: ${JSON.stringify(pattern)}`);
            assert.match(r.text, re, `for ${JSON.stringify(pattern)}`);
            assert.equal(r.text.split('\n').length, 1, `one line: ${r.text}`);
            assert.equal(r.structuredContent.refused, 'sandbox');
            assert.equal(exists(f), false, `${f} was written by ${JSON.stringify(pattern)}`);
            const ev = await h.waitNote((n) => n.method === 'notifications/tidal/pattern_eval', { from });
            assert.equal(ev.params.ok, false);
        }
    });

    test('what passes the sandbox but is not a ControlPattern fails in GHCi and runs nothing', T, async () => {
        const attempts = (f) => [
            `writeFile "${f}" "x"`,
            `silence\nwriteFile "${f}" "x"`,
            `writeFile "${f}" "x" >> return silence`,
            `d1 $ sound "bd"`,
            `hush`,
            `streamHush tidal`,
            `(writeFile "${f}" "x" :: IO ()) \`seq\` sound "bd"`,
        ];
        for (let i = 0; i < attempts('').length; i++) {
            const f = escapePath();
            const pattern = attempts(f)[i];
            const r = await h.call('tidal_eval', { channel: 'd1', pattern });
            if (i === attempts('').length - 1) {
                // an IO action that is only forced, never run: a valid pattern
                assert.equal(r.isError, false, r.text);
            } else {
                assert.equal(r.isError, true, `accepted: ${JSON.stringify(pattern)}`);
                assert.match(r.text, /^d1:\d+:\d+: error:/, r.text);
            }
            assert.equal(exists(f), false, `${f} was written by ${JSON.stringify(pattern)}`);
        }
        await h.ok('tidal_hush');
    });

    test('after all that, the same GHCi still plays', T, async () => {
        assert.equal(h.ghciPid(), player, 'the player was never replaced');
        assert.deepEqual(h.events('ghci_restarted'), []);
        const since = Date.now();
        await h.ok('tidal_eval', { channel: 'd1', pattern: 'sound "bd"' });
        await h.dirt.waitFor((e) => e.s === 'bd', { since });
        await h.ok('tidal_hush');
    });
}
