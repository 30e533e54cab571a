/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The pattern sandbox: whether a performer's text can only be one
 * Haskell expression inside the helper's wrapper, the GHCi block that
 * plays it on a channel, and GHCi's messages mapped back to the text the
 * performer sent.  Pure C: bytes in, results out.
 */

#ifndef _TIDAL_PATTERN_H_INCLUDED_
#define _TIDAL_PATTERN_H_INCLUDED_


#include <stddef.h>


#define TIDAL_PATTERN_MAX       65536    /* bytes */
#define TIDAL_PATTERN_DEPTH     256      /* nested brackets */

/*
 * Every line of a pattern is shifted right by this many spaces inside
 * the wrapper: a multiple of 8, so that tab stops (every 8 columns for
 * GHC) shift by the same amount and the layout is exactly the
 * performer's.
 */
#define TIDAL_PATTERN_INDENT    8


/*
 * 0 when pattern (len bytes, need not be NUL-terminated) can only be one
 * expression in the wrapper; -1 otherwise, with one line in err naming
 * the offending token and its line:column in the pattern.  Refused:
 * more than TIDAL_PATTERN_MAX bytes, invalid UTF-8, control characters
 * other than \n and \t, a line whose first non-blank character is ':'
 * (GHCi commands, ":}"), unterminated literals and comments, "{-#"
 * pragmas, ';' '{' '}' outside literals and comments, a bracket closed
 * that was not opened here (or by another kind), brackets left open or
 * nested deeper than TIDAL_PATTERN_DEPTH, non-ASCII text outside
 * literals and comments, the keywords that start declarations (import,
 * where, foreign, module, class, instance, data, newtype, type,
 * deriving, default, infix, infixl, infixr), names starting with
 * "unsafe"/"Unsafe", qualified operators and qualified names of modules
 * other than Prelude, Data.List, Data.Maybe, Data.Char and Sound.Tidal.*,
 * and a pattern with no token at all.
 */
int tidal_pattern_check(const char *pattern, size_t len, char *err,
    size_t errlen);

/*
 * The GHCi input that applies head (a function of a ControlPattern, e.g.
 * "d1" or "tidalPlay 7 1") to a checked pattern for channel dN (N
 * 1..16):
 *
 *     :{
 *     HEAD ((
 *     {-# LINE 1 "dN" #-}
 *             <each line of the pattern, after TIDAL_PATTERN_INDENT spaces>
 *      ) :: ControlPattern)
 *     :}
 *
 * so GHCi reports positions in the pattern as "dN:LINE:COLUMN" with
 * LINE counted from the pattern's first line (the closing line is the
 * pattern's last line + 1, column 1).  The pattern has brackets of its
 * own, so that it may end with its own "::" annotation, and the closing
 * line is less indented than any line of the pattern, so that it ends
 * every layout block the pattern opened.  malloc'ed and
 * NUL-terminated; NULL for another channel or without memory.
 */
char *tidal_pattern_wrap(const char *head, int channel, const char *pattern,
    size_t len, size_t *outlen);

/*
 * GHCi's message about channel dN with every position in the wrapped
 * pattern ("dN:L:C", "dN:L:C-C", "dN:(L,C)-(L,C)") made relative to the
 * pattern itself, and blank lines at both ends removed.  malloc'ed and
 * NUL-terminated; NULL without memory.
 */
char *tidal_pattern_map_errors(int channel, const char *text, size_t len,
    size_t *outlen);

/*
 * 1 when GHCi's output of an evaluation says it failed: a diagnostic
 * "...: error:", an exception ("*** Exception: ...") or an interrupt
 * ("Interrupted."); warnings alone are not a failure.
 */
int tidal_pattern_failed(const char *text, size_t len);


#endif /* _TIDAL_PATTERN_H_INCLUDED_ */
