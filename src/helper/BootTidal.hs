-- Copyright (C) ngx_tidal authors
-- SPDX-License-Identifier: BSD-2-Clause

-- ngx_tidal's GHCi boot script for Tidal 1.7 (read by tidal-helper).
--
-- The helper sends this file to GHCi's stdin line by line, then checks it
-- with `tidalMarker`.  Ports and addresses come from the environment the
-- helper gives GHCi:
--   TIDAL_DIRT_HOST, TIDAL_DIRT_PORT  where OSC goes: the helper's relay,
--                     which forwards it to SuperDirt (127.0.0.1:57120)
--   TIDAL_TEMPO_PORT  Tidal's tempo server (UDP); give every instance its
--                     own, or instances share (and change) one tempo
--   TIDAL_CTRL_PORT   Tidal's OSC control listener on 127.0.0.1; 0 or
--                     unset turns it (and the SuperDirt handshake) off
-- Everything a pattern may not reach is imported qualified under a name
-- the helper's sandbox refuses, and `:set -XSafe` comes last: from then
-- on GHCi refuses unsafe modules and qualified names of modules that were
-- not imported.

:set -XOverloadedStrings
:set -fno-warn-orphans
:set -fno-diagnostics-show-caret
:set prompt ""
:set prompt-cont ""

import qualified System.IO as TidalIO
import qualified System.Environment as TidalEnv
import qualified Control.Exception as TidalExc
import qualified Control.Concurrent.MVar as TidalMVar
import qualified Data.Map.Strict as TidalMap
import qualified Data.List
import qualified Data.Maybe
import qualified Data.Char
import Sound.Tidal.Context

TidalIO.hSetEncoding TidalIO.stdout TidalIO.utf8
TidalIO.hSetEncoding TidalIO.stderr TidalIO.utf8

:{
let tidalMarker :: String -> IO ()
    tidalMarker m = do
        TidalIO.hPutStrLn TidalIO.stderr m
        TidalIO.hFlush TidalIO.stderr
        TidalIO.hPutStrLn TidalIO.stdout m
        TidalIO.hFlush TidalIO.stdout
    tidalEnvInt :: String -> Int -> IO Int
    tidalEnvInt name def = do
        v <- TidalEnv.lookupEnv name
        return (case reads (Data.Maybe.fromMaybe "" v) of
                    [(n, "")] | n >= 0 && n < 65536 -> n
                    _ -> def)
:}

tidalDirtHost <- Data.Maybe.fromMaybe "127.0.0.1" <$> TidalEnv.lookupEnv "TIDAL_DIRT_HOST"
tidalDirtPort <- tidalEnvInt "TIDAL_DIRT_PORT" 57120
tidalTempoPort <- (\n -> if n == 0 then 9160 else n) <$> tidalEnvInt "TIDAL_TEMPO_PORT" 9160
tidalCtrlPort <- tidalEnvInt "TIDAL_CTRL_PORT" 0

:{
tidal <- startTidal
    (superdirtTarget {oLatency = 0.1,
                      oAddress = tidalDirtHost,
                      oPort = tidalDirtPort,
                      oHandshake = tidalCtrlPort > 0})
    (defaultConfig {cCtrlListen = tidalCtrlPort > 0,
                    cCtrlAddr = "127.0.0.1",
                    cCtrlPort = tidalCtrlPort,
                    cTempoAddr = "127.0.0.1",
                    cTempoPort = tidalTempoPort,
                    cFrameTimespan = 1/20,
                    cVerbose = False})
:}

-- The scheduler's heartbeat: 8 events a cycle with s "tidal-helper-heartbeat"
-- on a pattern of its own.  The helper's OSC relay counts them instead of
-- forwarding them, and restarts Tidal when they stop while GHCi still
-- answers (a pattern that diverges while playing holds the scheduler).
-- hush, solo and unsolo below do what Tidal's do to d1 .. d16 and leave
-- the heartbeat playing; mute and silence only ever name d1 .. d16.  Its
-- history never ends: a pattern that fails while playing sends every
-- pattern back to its previous one (or silence), the heartbeat to itself.
:{
TidalMVar.modifyMVar_ (sPMapMV tidal) (return . TidalMap.insert
    "tidal-helper-heartbeat"
    (let beat = fast 8 $ s (pure "tidal-helper-heartbeat")
     in PlayState {pattern = beat, mute = False, solo = False,
                   history = repeat beat}))
:}

:{
let tidalIsBeat :: PatId -> Bool
    tidalIsBeat k = k == "tidal-helper-heartbeat"
    tidalHush :: PatId -> PlayState -> PlayState
    tidalHush k ps
        | tidalIsBeat k = ps
        | otherwise = ps {pattern = silence, history = silence : history ps}
    tidalSoloed :: PlayState -> Bool
    tidalSoloed = solo
:}

-- A channel function computes the first cycle of its pattern before it
-- replaces the playing one: an error or a loop there stays in the eval
-- (reported, or interrupted at the helper's timeout) and the previous
-- pattern keeps playing.
:{
let tidalPlay i pat = do
        _ <- TidalExc.evaluate (length (show (queryArc pat (Arc 0 1))))
        streamReplace tidal i pat
    p = streamReplace tidal
    hush = TidalMVar.modifyMVar_ (sPMapMV tidal)
               (return . TidalMap.mapWithKey tidalHush)
    list = streamList tidal
    mute = streamMute tidal
    unmute = streamUnmute tidal
    unmuteAll = streamUnmuteAll tidal
    solo i = streamSolo tidal i >> streamSolo tidal "tidal-helper-heartbeat"
    unsolo i = do
        streamUnsolo tidal i
        pm <- TidalMVar.readMVar (sPMapMV tidal)
        if or [tidalSoloed ps | (k, ps) <- TidalMap.toList pm,
                                not (tidalIsBeat k)]
            then return ()
            else streamUnsolo tidal "tidal-helper-heartbeat"
    unsoloAll = streamUnsoloAll tidal
    once = streamOnce tidal
    first = streamFirst tidal
    asap = once
    nudgeAll = streamNudgeAll tidal
    all = streamAll tidal
    resetCycles = streamResetCycles tidal
    setcps = asap . cps
    getcps = streamGetcps tidal
    getnow = streamGetnow tidal
    setI = streamSetI tidal
    setF = streamSetF tidal
    setS = streamSetS tidal
    setR = streamSetR tidal
    setB = streamSetB tidal
    d1 = tidalPlay 1 . (|< orbit 0)
    d2 = tidalPlay 2 . (|< orbit 1)
    d3 = tidalPlay 3 . (|< orbit 2)
    d4 = tidalPlay 4 . (|< orbit 3)
    d5 = tidalPlay 5 . (|< orbit 4)
    d6 = tidalPlay 6 . (|< orbit 5)
    d7 = tidalPlay 7 . (|< orbit 6)
    d8 = tidalPlay 8 . (|< orbit 7)
    d9 = tidalPlay 9 . (|< orbit 8)
    d10 = tidalPlay 10 . (|< orbit 9)
    d11 = tidalPlay 11 . (|< orbit 10)
    d12 = tidalPlay 12 . (|< orbit 11)
    d13 = tidalPlay 13
    d14 = tidalPlay 14
    d15 = tidalPlay 15
    d16 = tidalPlay 16
:}

:set -XSafe
