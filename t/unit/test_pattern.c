/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The pattern sandbox: ordinary Tidal passes, every way out of the
 * wrapper is refused with its line:column, the wrapper is exactly what
 * GHCi gets, and GHCi's positions map back to the pattern.
 */

#include "unit.h"
#include "tidal_pattern.h"


static char  err[256];


static int
ok(const char *pattern)
{
    int  rc;

    rc = tidal_pattern_check(pattern, strlen(pattern), err, sizeof(err));

    if (rc != 0) {
        printf("    refused: %s\n    because: %s\n", pattern, err);
    }

    return rc == 0;
}


/* refused, and the reason contains want (the token and its position) */
static int
refused(const char *pattern, const char *want)
{
    int  rc;

    rc = tidal_pattern_check(pattern, strlen(pattern), err, sizeof(err));

    if (rc == 0) {
        printf("    accepted: %s\n", pattern);
        return 0;
    }

    if (strstr(err, want) == NULL) {
        printf("    refused: %s\n    because: %s\n    expected: %s\n",
               pattern, err, want);
        return 0;
    }

    if (strchr(err, '\n') != NULL) {
        printf("    the reason is more than one line: %s\n", err);
        return 0;
    }

    return 1;
}


UNIT_TEST(ordinary_tidal_passes)
{
    CHECK(ok("sound \"bd*4 sn\""));
    CHECK(ok("sound \"bd:3 sn:1\""));
    CHECK(ok("sound \"bd\" :: ControlPattern"));
    CHECK(ok("d1 $ sound \"bd\""));
    CHECK(ok("sound \"bd*2\" # speed 2 # n \"1 2\""));
    CHECK(ok("(1/8) <~ sound \"hh*4\""));
    CHECK(ok("every 4 (fast 2) $ sound \"bd sn\""));
    CHECK(ok("jux rev $ sound \"bd sn\""));
    CHECK(ok("whenmod 4 2 (# speed 2) $ sound \"bd sn\""));
    CHECK(ok("stack [sound \"bd*2\",\n       sound \"hh*4\" # gain 0.8,\n"
             "       sound \"~ sn\"]"));
    CHECK(ok("let x = \"bd*2\" in sound x"));
    CHECK(ok("let x = sound \"bd*2\"\n    y = sound \"sn\"\nin stack [x, y]"));
    CHECK(ok("sound \"bd\" # n (irand 8)"));
    CHECK(ok("n (range 1 5 sine) # sound \"arpy\""));
    CHECK(ok("n (segment 4 $ range 1 5 rand) # sound \"arpy\""));
    CHECK(ok("sound \"bd\" # n (\"0 .. 7\")"));
    CHECK(ok("n ([0, 2, 4] !! 1) # s \"x\""));
    CHECK(ok("sound (\"bd\" :: Pattern String)"));
    CHECK(ok("sound \"bd\" -- a comment ; import { }"));
    CHECK(ok("{- a {- nested -} comment ; :} -} sound \"bd\""));
    CHECK(ok("sound \"a;b{c}d\\\"e\""));
    CHECK(ok("n (fromIntegral (fromEnum ';')) # s \"x\""));
    CHECK(ok("n (fromIntegral (fromEnum '\\'')) # s \"x\""));
    CHECK(ok("n (fromIntegral (fromEnum '\\n')) # s \"x\""));
    CHECK(ok("n (fromIntegral (fromEnum '\\^A')) # s \"x\""));
    CHECK(ok("n (fromIntegral (fromEnum '\\x41')) # s \"x\""));
    CHECK(ok("n (fromIntegral (fromEnum '\"')) # s \"x\""));
    CHECK(ok("let f' x' = x' in f' (sound \"bd\")"));
    CHECK(ok("sound \"bd\" # speed (1.5e-1 + 0x1F + 0o17)"));
    CHECK(ok("sound \"bd\" # n (Data.List.genericLength [1, 2])"));
    CHECK(ok("sound (Data.Maybe.fromMaybe \"bd\" Nothing)"));
    CHECK(ok("sound \"bd\" # n (Prelude.fromIntegral (3 :: Int))"));
    CHECK(ok("Sound.Tidal.Context.fast 2 $ sound \"bd\""));
    CHECK(ok("sound \"caf\xc3\xa9 \xe2\x99\xab\""));
    CHECK(ok("sound \"bd\" {- \xc3\xa9 -}"));
    CHECK(ok("sound \"bd\"\n\t# speed 2"));
    CHECK(ok("sound \"bd\" |-- n 1"));
    CHECK(ok("sound \"bd\" # n (1 --> 2)"));
    CHECK(ok("sound \"bd\" ---- just a comment"));
    CHECK(ok("sound \"a\\\n   \\b\""));
    CHECK(ok("sound \"\\^\\\""));
    CHECK(ok("(# speed 2) $ sound \"bd\""));
    CHECK(ok("sound \"bd\"\n\n"));
    CHECK(ok("  \n  sound \"bd\""));
    CHECK(ok("if True then sound \"bd\" else silence"));
    CHECK(ok("case 1 of\n  1 -> sound \"bd\"\n  _ -> silence"));
    CHECK(ok("do\n  sound \"bd\""));
    CHECK(ok("n \"1\" + n \"<0 3>\" # s \"superpiano\" # legato 1"));
    CHECK(ok("sometimesBy 0.3 (# crush 4) $ sound \"bd*8\""));
    CHECK(ok("(\\x -> x) (sound \"bd\")"));
    CHECK(ok("fix (fast 2) (s \"hh\") $ s \"bd hh\""));
    CHECK(ok("off 0.125 (|+ n 12) $ n \"c e g\" # s \"superpiano\""));
}


UNIT_TEST(ghci_commands_are_refused)
{
    CHECK(refused(":! touch /tmp/x", "1:1: \":!\" starts a line"));
    CHECK(refused("sound \"bd\"\n:! touch /tmp/x", "2:1: \":!\""));
    CHECK(refused("sound \"bd\"\n  :}\n:! id", "2:3: \":}\""));
    CHECK(refused("sound \"bd\"\n\t:}", "2:2: \":}\""));
    CHECK(refused("sound \"bd\"\n:set -XUnsafe", "2:1: \":set\""));
    CHECK(refused("{- \n:! id\n -} sound \"bd\"", "2:1: \":!\""));
    CHECK(refused("sound \"bd\"\n:}\nwriteFile \"/tmp/x\" \"x\"\n:{\n",
                  "2:1: \":}\""));
    CHECK(refused(": sound", "1:1"));

    /* GHCi strips Unicode spaces too before it compares with ":}" */
    CHECK(refused("sound \"bd\" {-\n\xc2\xa0:}\nwriteFile \"/tmp/x\" \"x\"\n-}",
                  "2:2: \":}\""));
    CHECK(refused("sound \"bd\" {-\n\xe3\x80\x80:}\n-}", "2:2: \":}\""));
    CHECK(refused("sound \"bd\" {-\n\xe2\x80\xa8 :}\n-}", "2:3: \":}\""));
}


UNIT_TEST(escaping_the_expression_is_refused)
{
    CHECK(refused("sound \"bd\")\nwriteFile \"/tmp/x\" \"x\"",
                  "1:11: \")\" closes a bracket"));
    CHECK(refused("sound \"bd\" :: ControlPattern)\n"
                  "main = writeFile \"/tmp/x\" \"x\"\n(",
                  "1:29: \")\""));
    CHECK(refused("sound \"bd\"]", "1:11: \"]\""));
    CHECK(refused("(sound \"bd\"]", "1:12: \"]\" does not match"));
    CHECK(refused("(sound \"bd\"", "1:1: \"(\" is never closed"));
    CHECK(refused("sound \"bd\"; writeFile \"/tmp/x\" \"x\"", "1:11: \";\""));
    CHECK(refused("let { x = 1 } in sound \"bd\"", "1:5: \"{\""));
    CHECK(refused("sound \"bd\" }", "1:12: \"}\""));
    CHECK(refused("sound \"bd\" -}", "1:13: \"}\""));
    CHECK(refused("sound \"bd\" {- )", "1:12: \"{-\" opens a comment"));
    CHECK(refused("sound \"bd)", "1:7: \"\"\" starts a string"));
    CHECK(refused("sound \"bd\n\")", "1:7"));
    CHECK(refused("sound \"a\\ x\" )", "1:9: \"\\\" starts a string gap"));
    CHECK(refused("sound \"\\^", "1:8"));
    CHECK(refused("n 'ab' # s \"x\")", "1:3: \"'\""));
    CHECK(refused("n ''' # s \"x\")", "1:3"));
    CHECK(refused("sound \"bd\" {-# LANGUAGE TemplateHaskell #-}",
                  "1:12: \"{-#\" pragmas"));
    CHECK(refused("{- {-# LINE 1 \"x\" #-} -} sound \"bd\"", "1:4: \"{-#\""));
    CHECK(refused("sound \"bd\" --\xc3\xa9)", "1:14: a non-ASCII"));
    CHECK(refused("sound \"bd\" # n (1 \xe2\x88\x98 2)", "1:19: a non-ASCII"));
    CHECK(refused("Prelude.-- )", "1:1: \"Prelude.--\" is a qualified"));
    CHECK(refused("1.--)", "1:5: \")\""));
    CHECK(refused("n [1..]--)\n)", "2:1: \")\""));
    CHECK(refused("x--|)", "1:5: \")\""));
    CHECK(refused("0import", "1:2: \"import\""));
    CHECK(refused("1where", "1:2: \"where\""));
    CHECK(refused("", "the pattern is empty"));
    CHECK(refused("  \n\t", "the pattern is empty"));
    CHECK(refused("-- only a comment", "the pattern is empty"));
}


UNIT_TEST(declarations_are_refused)
{
    CHECK(refused("import System.IO.Unsafe", "1:1: \"import\" is a keyword"));
    CHECK(refused("sound \"bd\"\nimport System.Process", "2:1: \"import\""));
    CHECK(refused("sound x where x = \"bd\"", "1:9: \"where\""));
    CHECK(refused("sound x\n  where x = \"bd\"", "2:3: \"where\""));
    CHECK(refused("foreign import ccall \"system\" c :: Int", "1:1"));
    CHECK(refused("let data X = X in silence", "1:5: \"data\""));
    CHECK(refused("let type X = Int in silence", "1:5: \"type\""));
    CHECK(refused("let newtype X = X Int in silence", "\"newtype\""));
    CHECK(refused("let class C a in silence", "\"class\""));
    CHECK(refused("let instance C Int in silence", "\"instance\""));
    CHECK(refused("silence deriving Show", "\"deriving\""));
    CHECK(refused("let infixl 5 +++ in silence", "\"infixl\""));
    CHECK(refused("let infixr 5 +++ in silence", "\"infixr\""));
    CHECK(refused("let infix 5 +++ in silence", "\"infix\""));
    CHECK(refused("default (Int) silence", "\"default\""));
    CHECK(refused("module X", "\"module\""));
    CHECK(refused("Prelude.where", "\"Prelude.where\" is a keyword"));
}


UNIT_TEST(unsafe_and_foreign_names_are_refused)
{
    CHECK(refused("System.IO.Unsafe.unsafePerformIO (return silence)",
                  "1:1: \"System.IO.Unsafe"));
    CHECK(refused("unsafePerformIO (return silence)",
                  "1:1: \"unsafePerformIO\" is not allowed"));
    CHECK(refused("sound (unsafeCoerce 1)", "1:8: \"unsafeCoerce\""));
    CHECK(refused("System.IO.writeFile \"/tmp/x\" \"x\"",
                  "1:1: \"System.IO.writeFile\" names module System.IO"));
    CHECK(refused("sound \"bd\" # n (System.Process.system \"id\")",
                  "1:17: \"System.Process.system\""));
    CHECK(refused("Foreign.Marshal.Alloc.malloc", "module Foreign.Marshal"));
    CHECK(refused("GHC.IO.unsafePerformIO x", "GHC.IO"));
    CHECK(refused("Control.Exception.throw x", "module Control.Exception"));
    CHECK(refused("Data.IORef.newIORef 1", "module Data.IORef"));
    CHECK(refused("Debug.Trace.trace \"x\" silence", "module Debug.Trace"));
    CHECK(refused("Unsafe.Coerce.unsafeCoerce 1", "\"Unsafe"));
    CHECK(refused("sound \"bd\" # n (Data.Map.size x)", "module Data.Map"));
    CHECK(refused("System.Exit.exitFailure", "module System.Exit"));
    CHECK(refused("TidalIO.putStrLn \"x\"", "module TidalIO"));
    CHECK(refused("TidalEnv.getEnv \"HOME\"", "module TidalEnv"));
    CHECK(refused("silence Prelude.>> silence", "\"Prelude.>>\""));
    CHECK(refused("[LT..GT]", "\"LT..\" is a qualified operator"));
    CHECK(refused("Just.id", "module Just"));
    CHECK(refused("n \"1\" # unsafe' 1", "1:9: \"unsafe'\""));
}


UNIT_TEST(bytes_are_refused)
{
    char  big[TIDAL_PATTERN_MAX + 2];

    CHECK(tidal_pattern_check("sound \"bd\0\"", 11, err, sizeof(err)) == -1);
    CHECK(strstr(err, "1:10: control character U+0000") != NULL);

    CHECK(refused("sound \"bd\"\r\n", "1:11: control character U+000D"));
    CHECK(refused("sound \"bd\x1b[2J\"", "control character U+001B"));
    CHECK(refused("sound \"bd\x7f\"", "U+007F"));
    CHECK(refused("sound \"\xff\"", "1:8: invalid UTF-8"));
    CHECK(refused("sound \"\xc3", "invalid UTF-8"));

    memset(big, ' ', sizeof(big));
    memcpy(big, "silence", 7);
    CHECK(tidal_pattern_check(big, TIDAL_PATTERN_MAX, err, sizeof(err)) == 0);
    CHECK(tidal_pattern_check(big, TIDAL_PATTERN_MAX + 1, err, sizeof(err))
          == -1);
    CHECK(strstr(err, "longer than 65536 bytes") != NULL);
}


UNIT_TEST(deep_nesting_is_refused)
{
    int   i;
    char  p[2 * TIDAL_PATTERN_DEPTH + 16];

    for (i = 0; i < TIDAL_PATTERN_DEPTH; i++) {
        p[i] = '(';
        p[TIDAL_PATTERN_DEPTH + 7 + i] = ')';
    }

    memcpy(p + TIDAL_PATTERN_DEPTH, "silence", 7);
    p[2 * TIDAL_PATTERN_DEPTH + 7] = '\0';
    CHECK(ok(p));

    memmove(p + 1, p, strlen(p) + 1);
    p[0] = '[';
    strcat(p, "]");
    CHECK(refused(p, "nested deeper than 256"));
}


UNIT_TEST(small_error_buffers_are_safe)
{
    char  tiny[8];

    CHECK(tidal_pattern_check("import X", 8, tiny, sizeof(tiny)) == -1);
    CHECK(strlen(tiny) == 7);
    CHECK(tidal_pattern_check("import X", 8, tiny, 0) == -1);
    CHECK(tidal_pattern_check("silence", 7, NULL, 0) == 0);
}


UNIT_TEST(wrap_is_the_exact_ghci_block)
{
    char    *w;
    size_t   n;

    w = tidal_pattern_wrap("d1", 1, "sound \"bd\"", 10, &n);
    CHECK_STR(w, ":{\nd1 ((\n{-# LINE 1 \"d1\" #-}\n        sound \"bd\"\n"
                 " ) :: ControlPattern)\n:}\n");
    CHECK_EQ(n, strlen(w));
    free(w);

    w = tidal_pattern_wrap("tidalPlay 7 16", 16, "stack [a,\n\n\tb]\n", 15,
                           &n);
    CHECK_STR(w, ":{\ntidalPlay 7 16 ((\n{-# LINE 1 \"d16\" #-}\n        stack [a,\n\n"
                 "        \tb]\n\n ) :: ControlPattern)\n:}\n");
    CHECK_EQ(n, strlen(w));
    free(w);

    CHECK(tidal_pattern_wrap("d1", 0, "x", 1, &n) == NULL);
    CHECK(tidal_pattern_wrap("d1", 17, "x", 1, &n) == NULL);
}


UNIT_TEST(positions_map_back_to_the_pattern)
{
    char        *m;
    const char  *ghci;

    ghci = "\nd1:1:31: error: Variable not in scope: foo\n\n";
    m = tidal_pattern_map_errors(1, ghci, strlen(ghci), NULL);
    CHECK_STR(m, "d1:1:23: error: Variable not in scope: foo");
    free(m);

    ghci = "d1:2:9: error:\n    \xe2\x80\xa2 bad at d1:2:10-14 and "
           "d1:(1,12)-(2,20), not d10:1:20 nor xd1:1:20 nor d1:x\n";
    m = tidal_pattern_map_errors(1, ghci, strlen(ghci), NULL);
    CHECK_STR(m, "d1:2:1: error:\n    \xe2\x80\xa2 bad at d1:2:2-6 and "
                 "d1:(1,4)-(2,12), not d10:1:20 nor xd1:1:20 nor d1:x");
    free(m);

    ghci = "d12:3:2: error: parse error on input \xe2\x80\x98::\xe2\x80\x99";
    m = tidal_pattern_map_errors(12, ghci, strlen(ghci), NULL);
    CHECK_STR(m, "d12:3:1: error: parse error on input "
                 "\xe2\x80\x98::\xe2\x80\x99");
    free(m);

    ghci = "d1:";
    m = tidal_pattern_map_errors(1, ghci, strlen(ghci), NULL);
    CHECK_STR(m, "d1:");
    free(m);

    ghci = "d1:0000000000000000001:0000000000000000020";
    m = tidal_pattern_map_errors(1, ghci, strlen(ghci), NULL);
    CHECK_STR(m, ghci);
    free(m);
}


UNIT_TEST(failure_is_read_from_ghci_output)
{
    const char  *t;

    t = "d1:1:5: error: Variable not in scope: x";
    CHECK(tidal_pattern_failed(t, strlen(t)));
    t = "<no location info>: error:\n    Could not find module";
    CHECK(tidal_pattern_failed(t, strlen(t)));
    t = "*** Exception: boom\nCallStack (from HasCallStack):";
    CHECK(tidal_pattern_failed(t, strlen(t)));
    t = "Interrupted.";
    CHECK(tidal_pattern_failed(t, strlen(t)));
    t = "d1:1:5: warning: [-Wtype-defaults]\n    Defaulting";
    CHECK(!tidal_pattern_failed(t, strlen(t)));
    t = "d1:1:5: warning:\n    x: error: y";
    CHECK(!tidal_pattern_failed(t, strlen(t)));
    CHECK(!tidal_pattern_failed("", 0));
}


int
main(void)
{
    UNIT_RUN(ordinary_tidal_passes);
    UNIT_RUN(ghci_commands_are_refused);
    UNIT_RUN(escaping_the_expression_is_refused);
    UNIT_RUN(declarations_are_refused);
    UNIT_RUN(unsafe_and_foreign_names_are_refused);
    UNIT_RUN(bytes_are_refused);
    UNIT_RUN(deep_nesting_is_refused);
    UNIT_RUN(small_error_buffers_are_safe);
    UNIT_RUN(wrap_is_the_exact_ghci_block);
    UNIT_RUN(positions_map_back_to_the_pattern);
    UNIT_RUN(failure_is_read_from_ghci_output);

    return unit_done("pattern");
}
