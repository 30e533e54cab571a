-- Copyright (C) ngx_tidal authors
-- SPDX-License-Identifier: BSD-2-Clause

-- ngx_tidal's GHCi boot script for Tidal 1.7 (read by tidal-helper).
--
-- The helper sends this file to GHCi's stdin line by line, then checks it
-- with `tidalMarker`.  Ports, addresses and secrets come from the
-- environment the helper gives GHCi:
--   TIDAL_DIRT_HOST, TIDAL_DIRT_PORT  where OSC goes: the helper's relay,
--                     which forwards it to SuperDirt (127.0.0.1:57120)
--   TIDAL_TEMPO_PORT  Tidal's tempo server (UDP); give every instance its
--                     own, or instances share (and change) one tempo
--   TIDAL_CTRL_PORT   Tidal's OSC control listener on 127.0.0.1; 0 or
--                     unset turns it (and the SuperDirt handshake) off
--   TIDAL_BEAT        this GHCi's secret: its heartbeat's sound is
--                     "tidal-helper-heartbeat-SECRET", which a pattern
--                     cannot know, so the relay can tell its packets
--   TIDAL_REPORT_FD   a pipe to the helper (below)
--   TIDAL_LATENCY     ms each event is sent ahead of its time (Tidal's
--                     oLatency, tidal_latency; default 100)
--
-- What the helper decides on never comes from text a pattern controls:
-- every statement the helper sends ends with `tidalDone TOKEN`, which
-- writes "ok TOKEN" to the report pipe, and a pattern that fails while
-- playing is reported there by the channel's own guard as
-- "fail TOKEN CHANNEL CYCLE MESSAGE", the message escaped onto one line.
-- Patterns cannot run IO, so they cannot write to the pipe; the guard's
-- machinery is local to the `do` block that makes the channel functions,
-- so no pattern can name it.
--
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
import qualified System.IO.Unsafe as TidalUnsafe
import qualified System.Environment as TidalEnv
import qualified System.Timeout as TidalTimeout
import qualified System.Posix.IO as TidalPosix
import qualified System.Posix.Types as TidalPosixTypes
import qualified Control.Exception as TidalExc
import qualified Control.DeepSeq as TidalDeep
import qualified Control.Concurrent as TidalConc
import qualified Control.Concurrent.MVar as TidalMVar
import qualified Data.IORef as TidalRef
import qualified Data.Map.Strict as TidalMap
import qualified Sound.Tidal.Tempo as TidalTempo
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
tidalBeatName <- ("tidal-helper-heartbeat-" ++) . Data.Maybe.fromMaybe "" <$> TidalEnv.lookupEnv "TIDAL_BEAT"
tidalReportFd <- tidalEnvInt "TIDAL_REPORT_FD" 0
tidalLatency <- (\n -> fromIntegral n / 1000 :: Double) <$> tidalEnvInt "TIDAL_LATENCY" 100

:{
tidal <- startTidal
    (superdirtTarget {oLatency = tidalLatency,
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

-- The scheduler's heartbeat: 8 events a cycle with the secret sound name
-- on a pattern of its own.  The helper's OSC relay counts them instead of
-- forwarding them; they stop when the scheduler does, and their `cycle`,
-- `cps` and time tell the helper where the room is in time.  hush, solo
-- and unsolo below do what Tidal's do to d1 .. d16 and leave the
-- heartbeat playing; mute and silence only ever name d1 .. d16.
:{
TidalMVar.modifyMVar_ (sPMapMV tidal) (return . TidalMap.insert
    "tidal-helper-heartbeat"
    (let beat = fast 8 $ pS "s" (pure tidalBeatName)
     in PlayState {pattern = beat, mute = False, solo = False,
                   history = repeat beat}))
:}

-- The channel functions.  A channel plays its pattern behind a guard: each
-- query of the scheduler is computed in full (every value forced) within
-- 200 ms; an exception or a longer computation silences that channel at
-- once (the others play on, nothing reaches Tidal's own error handling)
-- and is reported once.  The guard also drops what would let one channel
-- change the others: `cps` (the room's tempo is set by the helper),
-- stateful and nested values, bus controls that are not integers; and it
-- stamps each event with the channel's number as `tidalch`.
-- tidalCheck computes CYCLES whole cycles from FROM the same way (with
-- the controls the scheduler gives: `_cps`, the tempo), in a GHCi that
-- plays nothing, before the helper lets a pattern near the playing one.
:{
(tidalPlay, tidalCheck, tidalDone) <- do
    let fd = TidalPosixTypes.Fd (fromIntegral tidalReportFd)
    pipe <- if tidalReportFd > 2
                then TidalPosix.fdToHandle fd
                else return TidalIO.stderr
    TidalIO.hSetEncoding pipe TidalIO.utf8
    lock <- TidalMVar.newMVar ()
    let report :: String -> IO ()
        report line = TidalMVar.withMVar lock (\_ -> do
            TidalIO.hPutStrLn pipe line
            TidalIO.hFlush pipe)
        escape :: String -> String
        escape = concatMap (\c -> if c == '\\' then "\\\\"
                                  else if c < ' ' || c == '\DEL'
                                  then '\\' : 'x' : hex (fromEnum c)
                                  else [c])
        hex n = [Data.Char.intToDigit (div n 16), Data.Char.intToDigit (mod n 16)]
        -- an exception's text, as far as it can be shown in time
        describe :: TidalExc.SomeException -> IO String
        describe e = do
            r <- TidalExc.try (TidalTimeout.timeout 100000
                     (TidalExc.evaluate (TidalDeep.force (take 60000 (show e)))))
            return (case r of
                        Right (Just t) -> t
                        Right Nothing -> "(the error's text took too long to show)"
                        Left other -> const "(the error's text could not be shown)"
                                          (other :: TidalExc.SomeException))
        -- a `cps` of any type would set the tempo (processCps reads it
        -- with getF, which takes integers too)
        keep :: String -> Value -> Bool
        keep "cps" _ = False
        keep k v = case v of
            VState _ -> False
            VPattern _ -> False
            VList _ -> False
            VI _ -> True
            _ -> take 1 k /= "^"
        clean :: Int -> ValueMap -> ValueMap
        clean ch = TidalMap.insert "tidalch" (VI ch) . TidalMap.filterWithKey keep
        -- the events of one query, fully computed within us microseconds
        compute :: Int -> Int -> ControlPattern -> State -> IO (Either String [Event ValueMap])
        compute us ch pat st = do
            r <- TidalExc.try (TidalTimeout.timeout us (TidalExc.evaluate
                     (TidalDeep.force (map (fmap (clean ch)) (query pat st)))))
            case r of
                Right (Just es) -> return (Right es)
                Right Nothing -> return (Left ("computing cycle "
                    ++ show (ceiling (stop (arc st)) - 1 :: Integer)
                    ++ " took longer than " ++ show (div us 1000) ++ " ms"))
                Left e -> Left <$> describe e
        -- the last cycle the query's arc touches
        failed :: Integer -> Int -> Rational -> String -> String
        failed token ch c msg = "fail " ++ show token ++ " " ++ show ch ++ " "
            ++ show (ceiling c - 1 :: Integer) ++ " " ++ escape msg
        -- (a frame is 50 ms: a thousand events in one is a flood, not music)
        guarded :: Integer -> Int -> TidalRef.IORef Bool -> ControlPattern -> ControlPattern
        guarded token ch dead pat = Pattern (\st -> TidalUnsafe.unsafePerformIO (do
            let stop' msg = do
                    first <- TidalRef.atomicModifyIORef' dead (\d -> (True, not d))
                    if first then report (failed token ch (stop (arc st)) msg)
                             else return ()
                    return []
            stopped <- TidalRef.readIORef dead
            if stopped then return [] else do
                r <- compute 200000 ch pat st
                case r of
                    Right es | length es <= 1000 -> return es
                             | otherwise -> stop' ("it plays " ++ show (length es)
                                                   ++ " events in one frame, more than 1000")
                    Left msg -> stop' msg))
        play :: Integer -> Int -> ControlPattern -> IO ()
        play token ch pat = do
            dead <- TidalRef.newIORef False
            let pat' = if ch <= 12 then pat |< orbit (pure (ch - 1)) else pat
            streamReplace tidal (fromIntegral ch) (guarded token ch dead pat')
            report ("ok " ++ show token)
        check :: Integer -> Int -> Rational -> Int -> Int -> Double -> ControlPattern -> IO ()
        check token ch from cycles us rate pat = go 0
          where
            controls = TidalMap.singleton "_cps" (VF rate)
            go i | i >= cycles = report ("ok " ++ show token)
                 | otherwise = do
                       let c = from + fromIntegral i
                       r <- compute us ch pat (State (Arc c (c + 1)) controls)
                       case r of
                           Right _ -> go (i + 1)
                           Left msg -> report (failed token ch (c + 1) msg)
        done :: Integer -> IO ()
        done token = report ("ok " ++ show token)
    return (play, check, done)
:}

-- A spare GHCi waits unsynchronized; tidalContinue makes it take over the
-- room's timeline where the last one left it: the cycle CYCLE was due at
-- the OSC time TIME (NTP seconds, as Tidal's clock counts, latency
-- included) at CPS cycles a second.  Tidal's clock jumps to a new tempo
-- without playing the cycles in between only on the first frame after it
-- was unsynchronized, so a GHCi that was not waiting so is made to, for
-- two frames, first.
:{
let tidalStandby :: IO ()
    tidalStandby = TidalMVar.modifyMVar_ (sTempoMV tidal)
                       (\t -> return t {TidalTempo.synched = False})
    tidalContinue :: Double -> Rational -> Double -> IO ()
    tidalContinue time cyc rate = do
        now <- TidalMVar.readMVar (sTempoMV tidal)
        if TidalTempo.synched now
            then tidalStandby >> TidalConc.threadDelay 120000
            else return ()
        TidalMVar.modifyMVar_ (sTempoMV tidal)
            (\t -> return t {TidalTempo.atTime = time - tidalLatency - 1/20,
                             TidalTempo.atCycle = cyc,
                             TidalTempo.cps = rate,
                             TidalTempo.synched = True})
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

:{
let p = streamReplace tidal
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
    setcps r = TidalTempo.setCps (sTempoMV tidal) r >> return ()
    getcps = streamGetcps tidal
    getnow = streamGetnow tidal
    setI = streamSetI tidal
    setF = streamSetF tidal
    setS = streamSetS tidal
    setR = streamSetR tidal
    setB = streamSetB tidal
    d1 = tidalPlay 0 1
    d2 = tidalPlay 0 2
    d3 = tidalPlay 0 3
    d4 = tidalPlay 0 4
    d5 = tidalPlay 0 5
    d6 = tidalPlay 0 6
    d7 = tidalPlay 0 7
    d8 = tidalPlay 0 8
    d9 = tidalPlay 0 9
    d10 = tidalPlay 0 10
    d11 = tidalPlay 0 11
    d12 = tidalPlay 0 12
    d13 = tidalPlay 0 13
    d14 = tidalPlay 0 14
    d15 = tidalPlay 0 15
    d16 = tidalPlay 0 16
:}

:set -XSafe
