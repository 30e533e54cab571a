/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The pattern sandbox.  A lexer that agrees with GHC's wherever the
 * difference could matter (where a literal or a comment ends, what a
 * bracket is) and refuses whatever it is not sure about, so that a
 * pattern it accepts stays inside "dN ((" ... ") :: ControlPattern)".
 */


#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_pattern.h"
#include "tidal_utf8.h"


#define TIDAL_PATTERN_TOKEN_SHOW  48


typedef struct {
    const unsigned char  *start;
    const unsigned char  *end;
    char                 *err;
    size_t                errlen;
} tidal_pattern_lex_t;


static int tidal_pattern_refuse(tidal_pattern_lex_t *lx,
    const unsigned char *at, size_t toklen, const char *fmt, ...);
static int tidal_pattern_bytes(tidal_pattern_lex_t *lx);
static int tidal_pattern_line_starts(tidal_pattern_lex_t *lx);
static const unsigned char *tidal_pattern_comment(tidal_pattern_lex_t *lx,
    const unsigned char *p);
static const unsigned char *tidal_pattern_string(tidal_pattern_lex_t *lx,
    const unsigned char *p);
static const unsigned char *tidal_pattern_char(tidal_pattern_lex_t *lx,
    const unsigned char *p);
static const unsigned char *tidal_pattern_name(tidal_pattern_lex_t *lx,
    const unsigned char *p);
static const unsigned char *tidal_pattern_number(const unsigned char *p,
    const unsigned char *end);
static int tidal_pattern_symbol(int c);
static int tidal_pattern_ident(int c);
static int tidal_pattern_keyword(const unsigned char *p, size_t n);
static int tidal_pattern_module_allowed(const unsigned char *p, size_t n);
static long tidal_pattern_column(long col);
static const char *tidal_pattern_decimal(const char *p, const char *end,
    long *v);
static int tidal_pattern_position(const char *p, const char *end,
    int channel, long n[4], const char **after);


static const char  *tidal_pattern_keywords[] = {
    "import", "where", "foreign", "module", "class", "instance", "data",
    "newtype", "type", "deriving", "default", "infix", "infixl", "infixr"
};

static const char  *tidal_pattern_modules[] = {
    "Prelude", "Data.List", "Data.Maybe", "Data.Char"
};

#define tidal_pattern_nelts(a)  (sizeof(a) / sizeof((a)[0]))


int
tidal_pattern_check(const char *pattern, size_t len, char *err,
    size_t errlen)
{
    int                   c;
    size_t                depth, tokens;
    unsigned char         open[TIDAL_PATTERN_DEPTH];
    const unsigned char  *p, *q, *r, *opened[TIDAL_PATTERN_DEPTH];
    tidal_pattern_lex_t   lx;

    lx.start = (const unsigned char *) pattern;
    lx.end = lx.start + len;
    lx.err = err;
    lx.errlen = errlen;

    if (errlen) {
        err[0] = '\0';
    }

    if (len > TIDAL_PATTERN_MAX) {
        return tidal_pattern_refuse(&lx, NULL, 0, "the pattern is longer "
                                    "than %d bytes", TIDAL_PATTERN_MAX);
    }

    if (tidal_pattern_bytes(&lx) != 0
        || tidal_pattern_line_starts(&lx) != 0)
    {
        return -1;
    }

    depth = 0;
    tokens = 0;
    p = lx.start;

    while (p < lx.end) {
        c = *p;

        if (c == ' ' || c == '\t' || c == '\n') {
            p++;
            continue;
        }

        if (c == '{' && p + 1 < lx.end && p[1] == '-') {
            p = tidal_pattern_comment(&lx, p);
            if (p == NULL) {
                return -1;
            }

            continue;
        }

        tokens++;

        if (c == '"') {
            p = tidal_pattern_string(&lx, p);

        } else if (c == '\'') {
            p = tidal_pattern_char(&lx, p);

        } else if (isalpha(c) || c == '_') {
            p = tidal_pattern_name(&lx, p);

        } else if (isdigit(c)) {
            p = tidal_pattern_number(p, lx.end);

        } else if (tidal_pattern_symbol(c)) {

            for (q = p; q < lx.end && tidal_pattern_symbol(*q); q++) {
                /* void */
            }

            for (r = p; r < q && *r == '-'; r++) {
                /* void */
            }

            if (q - p >= 2 && r == q) {
                /* only dashes: a line comment, as in GHC */

                if (q < lx.end && *q >= 0x80) {
                    return tidal_pattern_refuse(&lx, q, 0, "a non-ASCII "
                                                "character right after "
                                                "\"--\"");
                }

                tokens--;

                while (q < lx.end && *q != '\n') {
                    q++;
                }
            }

            p = q;

        } else if (c == '(' || c == '[') {

            if (depth == TIDAL_PATTERN_DEPTH) {
                return tidal_pattern_refuse(&lx, p, 1, "opens brackets "
                                            "nested deeper than %d",
                                            TIDAL_PATTERN_DEPTH);
            }

            open[depth] = (unsigned char) c;
            opened[depth++] = p++;

        } else if (c == ')' || c == ']') {

            if (depth == 0) {
                return tidal_pattern_refuse(&lx, p, 1, "closes a bracket "
                                            "the pattern did not open");
            }

            if (open[depth - 1] != (c == ')' ? '(' : '[')) {
                return tidal_pattern_refuse(&lx, p, 1, "does not match "
                                            "the \"%c\" it closes",
                                            open[depth - 1]);
            }

            depth--;
            p++;

        } else if (c == ';' || c == '{' || c == '}') {
            return tidal_pattern_refuse(&lx, p, 1, "is not allowed outside "
                                        "a string: a pattern is one "
                                        "expression");

        } else if (c == ',' || c == '`') {
            p++;

        } else {
            return tidal_pattern_refuse(&lx, p, 0, "a non-ASCII character "
                                        "outside a string or a comment");
        }

        if (p == NULL) {
            return -1;
        }
    }

    if (depth) {
        return tidal_pattern_refuse(&lx, opened[depth - 1], 1,
                                    "is never closed");
    }

    if (tokens == 0) {
        return tidal_pattern_refuse(&lx, NULL, 0, "the pattern is empty");
    }

    return 0;
}


/* control characters and UTF-8, anywhere in the text */

static int
tidal_pattern_bytes(tidal_pattern_lex_t *lx)
{
    size_t                used;
    tidal_utf8_t          u;
    const unsigned char  *p;

    for (p = lx->start; p < lx->end; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f) {
            return tidal_pattern_refuse(lx, p, 0, "control character "
                                        "U+%04X is not allowed", *p);
        }
    }

    tidal_utf8_init(&u);

    if (tidal_utf8_scan(&u, lx->start, (size_t) (lx->end - lx->start),
                        &used)
        != 0)
    {
        return tidal_pattern_refuse(lx, lx->start + (used ? used - 1 : 0),
                                    0, "invalid UTF-8");
    }

    if (!tidal_utf8_complete(&u)) {
        return tidal_pattern_refuse(lx, lx->end, 0, "invalid UTF-8 "
                                    "(truncated character)");
    }

    return 0;
}


/*
 * GHCi ends a ":{" block at a line that is ":}" once Haskell's isSpace
 * characters are stripped (Unicode spaces such as U+00A0 included), and
 * reads a line starting with ':' after it as a command, inside a comment
 * or not: judged on the raw lines, skipping every non-ASCII character as
 * if it were a space.
 */

static int
tidal_pattern_line_starts(tidal_pattern_lex_t *lx)
{
    size_t                n;
    const unsigned char  *p;

    p = lx->start;

    while (p < lx->end) {

        while (p < lx->end && (*p == ' ' || *p == '\t' || *p >= 0x80)) {
            p++;
        }

        if (p < lx->end && *p == ':') {
            for (n = 1; p + n < lx->end && p[n] != ' ' && p[n] != '\t'
                        && p[n] != '\n';
                 n++)
            {
                /* void */
            }

            return tidal_pattern_refuse(lx, p, n, "starts a line: a line "
                                        "starting with ':' is a GHCi "
                                        "command");
        }

        while (p < lx->end && *p != '\n') {
            p++;
        }

        if (p < lx->end) {
            p++;
        }
    }

    return 0;
}


/* a nested {- -} comment starting at p; returns what follows it */

static const unsigned char *
tidal_pattern_comment(tidal_pattern_lex_t *lx, const unsigned char *p)
{
    size_t                depth;
    const unsigned char  *start;

    start = p;
    depth = 0;

    while (p + 1 < lx->end) {

        if (p[0] == '{' && p[1] == '-') {
            if (p + 2 < lx->end && p[2] == '#') {
                tidal_pattern_refuse(lx, p, 3, "pragmas are not allowed "
                                     "in a pattern");
                return NULL;
            }

            depth++;
            p += 2;
            continue;
        }

        if (p[0] == '-' && p[1] == '}') {
            p += 2;

            if (--depth == 0) {
                return p;
            }

            continue;
        }

        p++;
    }

    tidal_pattern_refuse(lx, start, 2, "opens a comment that is never "
                         "closed");
    return NULL;
}


/*
 * A string literal.  The escapes that matter for where it ends: "\\",
 * "\"", "\^\" (a control character), and gaps "\ ... \" of white space,
 * newlines included; any other escape is a backslash and one character,
 * its remaining letters or digits are ordinary characters here.
 */

static const unsigned char *
tidal_pattern_string(tidal_pattern_lex_t *lx, const unsigned char *p)
{
    const unsigned char  *start, *q;

    start = p++;

    while (p < lx->end) {

        if (*p == '"') {
            return p + 1;
        }

        if (*p == '\n') {
            break;
        }

        if (*p != '\\') {
            p++;
            continue;
        }

        if (p + 1 == lx->end) {
            break;
        }

        if (p[1] == ' ' || p[1] == '\t' || p[1] == '\n') {
            for (q = p + 1;
                 q < lx->end && (*q == ' ' || *q == '\t' || *q == '\n');
                 q++)
            {
                /* void */
            }

            if (q == lx->end || *q != '\\') {
                tidal_pattern_refuse(lx, p, 1, "starts a string gap that "
                                     "does not end with \"\\\"");
                return NULL;
            }

            p = q + 1;
            continue;
        }

        if (p[1] >= 0x80) {
            tidal_pattern_refuse(lx, p, 1, "escapes a non-ASCII character");
            return NULL;
        }

        if (p[1] == '^') {
            if (p + 2 == lx->end || p[2] < '@' || p[2] > '_') {
                tidal_pattern_refuse(lx, p, 2, "is not a control escape");
                return NULL;
            }

            p += 3;
            continue;
        }

        p += 2;
    }

    tidal_pattern_refuse(lx, start, 1, "starts a string that is not closed "
                         "on its line");
    return NULL;
}


/* a character literal: 'c', '\c...' or '\^c' */

static const unsigned char *
tidal_pattern_char(tidal_pattern_lex_t *lx, const unsigned char *p)
{
    const unsigned char  *start;

    start = p++;

    if (p < lx->end && *p == '\\') {
        p++;

        if (p < lx->end && *p == '^') {
            p++;

            if (p < lx->end && *p >= '@' && *p <= '_') {
                p++;
            } else {
                p = lx->end;
            }

        } else if (p < lx->end && *p > ' ' && *p < 0x7f) {
            p++;

            while (p < lx->end && isalnum(*p)) {
                p++;
            }

        } else {
            p = lx->end;
        }

    } else if (p < lx->end && *p != '\'' && *p != '\n') {

        /* one character, maybe several bytes of UTF-8 */

        p++;

        while (p < lx->end && (*p & 0xc0) == 0x80) {
            p++;
        }

    } else {
        p = lx->end;
    }

    if (p < lx->end && *p == '\'') {
        return p + 1;
    }

    tidal_pattern_refuse(lx, start, 1, "does not start a character "
                         "literal such as 'a' or '\\n'");
    return NULL;
}


/*
 * A name, maybe qualified: Con(.Con)* followed by nothing, ".var" or
 * ".op"; or a plain var.  The module of a qualified name must be allowed.
 */

static const unsigned char *
tidal_pattern_name(tidal_pattern_lex_t *lx, const unsigned char *p)
{
    const unsigned char  *start, *seg, *module_end, *q;

    start = p;
    module_end = NULL;

    for ( ;; ) {
        seg = p;

        while (p < lx->end && tidal_pattern_ident(*p)) {
            p++;
        }

        if ((p - seg >= 6 && strncmp((const char *) seg, "unsafe", 6) == 0)
            || (p - seg >= 6
                && strncmp((const char *) seg, "Unsafe", 6) == 0))
        {
            tidal_pattern_refuse(lx, start, (size_t) (p - start),
                                 "is not allowed: names starting with "
                                 "\"unsafe\" are refused");
            return NULL;
        }

        if (!isupper(*seg)) {

            /* a variable or keyword: ends the name */

            if (tidal_pattern_keyword(seg, (size_t) (p - seg))) {
                tidal_pattern_refuse(lx, start, (size_t) (p - start),
                                     "is a keyword that is not allowed in "
                                     "a pattern");
                return NULL;
            }

            break;
        }

        if (p + 1 < lx->end && p[0] == '.'
            && (isalpha(p[1]) || p[1] == '_'))
        {
            module_end = p;
            p++;
            continue;
        }

        if (p + 1 < lx->end && p[0] == '.' && tidal_pattern_symbol(p[1])) {
            for (q = p + 1; q < lx->end && tidal_pattern_symbol(*q); q++) {
                /* void */
            }

            tidal_pattern_refuse(lx, start, (size_t) (q - start),
                                 "is a qualified operator, not allowed in "
                                 "a pattern (write the operator alone)");
            return NULL;
        }

        break;
    }

    if (module_end != NULL
        && !tidal_pattern_module_allowed(start,
                                         (size_t) (module_end - start)))
    {
        tidal_pattern_refuse(lx, start, (size_t) (p - start),
                             "names module %.*s, which a pattern may not "
                             "use (only Prelude, Data.List, Data.Maybe, "
                             "Data.Char and Sound.Tidal.*)",
                             (int) (module_end - start > 64
                                    ? 64 : module_end - start),
                             start);
        return NULL;
    }

    return p;
}


/*
 * Only what GHC takes into the number: decimal digits with an optional
 * fraction and exponent, 0x and 0o literals; anything after it (letters,
 * dots, dashes) is lexed as the next token, as GHC does.
 */

static const unsigned char *
tidal_pattern_number(const unsigned char *p, const unsigned char *end)
{
    const unsigned char  *q;

    if (p[0] == '0' && p + 2 < end && (p[1] == 'x' || p[1] == 'X')
        && isxdigit(p[2]))
    {
        for (p += 2; p < end && isxdigit(*p); p++) { /* void */ }
        return p;
    }

    if (p[0] == '0' && p + 2 < end && (p[1] == 'o' || p[1] == 'O')
        && p[2] >= '0' && p[2] <= '7')
    {
        for (p += 2; p < end && *p >= '0' && *p <= '7'; p++) { /* void */ }
        return p;
    }

    while (p < end && isdigit(*p)) {
        p++;
    }

    if (p + 1 < end && p[0] == '.' && isdigit(p[1])) {
        for (p += 1; p < end && isdigit(*p); p++) { /* void */ }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        q = p + 1;

        if (q < end && (*q == '+' || *q == '-')) {
            q++;
        }

        if (q < end && isdigit(*q)) {
            for (p = q; p < end && isdigit(*p); p++) { /* void */ }
        }
    }

    return p;
}


/* Haskell's ASCII symbol characters */

static int
tidal_pattern_symbol(int c)
{
    return c != '\0' && strchr("!#$%&*+./<=>?@\\^|-~:", c) != NULL;
}


static int
tidal_pattern_ident(int c)
{
    return (c < 0x80 && isalnum(c)) || c == '_' || c == '\'';
}


static int
tidal_pattern_keyword(const unsigned char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < tidal_pattern_nelts(tidal_pattern_keywords); i++) {
        if (strlen(tidal_pattern_keywords[i]) == n
            && memcmp(tidal_pattern_keywords[i], p, n) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static int
tidal_pattern_module_allowed(const unsigned char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < tidal_pattern_nelts(tidal_pattern_modules); i++) {
        if (strlen(tidal_pattern_modules[i]) == n
            && memcmp(tidal_pattern_modules[i], p, n) == 0)
        {
            return 1;
        }
    }

    return n > sizeof("Sound.Tidal.") - 1
           && memcmp(p, "Sound.Tidal.", sizeof("Sound.Tidal.") - 1) == 0;
}


/*
 * Writes "LINE:COLUMN: " for at (NULL: no position), the token of toklen
 * bytes in quotes when toklen > 0, then the reason.  Columns count
 * characters, a tab as one.  Always returns -1.
 */

static int
tidal_pattern_refuse(tidal_pattern_lex_t *lx, const unsigned char *at,
    size_t toklen, const char *fmt, ...)
{
    char                  tok[TIDAL_PATTERN_TOKEN_SHOW + 4];
    size_t                line, col, i, n, len;
    va_list               args;
    const unsigned char  *p;

    if (lx->errlen == 0) {
        return -1;
    }

    len = 0;

    if (at != NULL) {
        line = 1;
        col = 1;

        for (p = lx->start; p < at && p < lx->end; p++) {
            if (*p == '\n') {
                line++;
                col = 1;

            } else if ((*p & 0xc0) != 0x80) {
                col++;
            }
        }

        n = snprintf(lx->err, lx->errlen, "%zu:%zu: ", line, col);
        len = n < lx->errlen ? n : lx->errlen - 1;
    }

    if (at != NULL && toklen > 0 && len < lx->errlen) {
        n = toklen < TIDAL_PATTERN_TOKEN_SHOW ? toklen
                                              : TIDAL_PATTERN_TOKEN_SHOW;

        for (i = 0; i < n && at + i < lx->end; i++) {
            tok[i] = (at[i] >= 0x20 && at[i] < 0x7f) ? (char) at[i] : '?';
        }

        if (i < toklen) {
            memcpy(tok + i, "...", 3);
            i += 3;
        }

        tok[i] = '\0';

        n = snprintf(lx->err + len, lx->errlen - len, "\"%s\" ", tok);
        len += n < lx->errlen - len ? n : lx->errlen - len - 1;
    }

    va_start(args, fmt);
    vsnprintf(lx->err + len, lx->errlen - len, fmt, args);
    va_end(args);

    return -1;
}


char *
tidal_pattern_wrap(const char *head, int channel, const char *pattern,
    size_t len, size_t *outlen)
{
    char        *out, *o;
    size_t       i, lines, size;
    const char  *p, *end;

    if (channel < 1 || channel > 16) {
        return NULL;
    }

    lines = 1;

    for (i = 0; i < len; i++) {
        if (pattern[i] == '\n') {
            lines++;
        }
    }

    size = len + lines * TIDAL_PATTERN_INDENT + strlen(head) + 128;

    out = malloc(size);
    if (out == NULL) {
        return NULL;
    }

    o = out + snprintf(out, size, ":{\n%s ((\n{-# LINE 1 \"d%d\" #-}\n",
                       head, channel);

    p = pattern;
    end = pattern + len;

    while (p <= end) {
        for (i = 0; p + i < end && p[i] != '\n'; i++) {
            /* void */
        }

        if (i > 0) {
            memset(o, ' ', TIDAL_PATTERN_INDENT);
            o += TIDAL_PATTERN_INDENT;
            memcpy(o, p, i);
            o += i;
        }

        *o++ = '\n';
        p += i + 1;
    }

    o += snprintf(o, size - (o - out), " ) :: ControlPattern)\n:}\n");

    if (outlen) {
        *outlen = (size_t) (o - out);
    }

    return out;
}


char *
tidal_pattern_map_errors(int channel, const char *text, size_t len,
    size_t *outlen)
{
    long         n[4];
    char        *out, *o;
    const char  *p, *end, *q;

    end = text + len;

    /* no blank lines at either end */

    for ( ;; ) {
        for (q = text; q < end && (*q == ' ' || *q == '\t'); q++) {
            /* void */
        }

        if (q == end || *q != '\n') {
            break;
        }

        text = q + 1;
    }

    while (end > text
           && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    {
        end--;
    }

    /* a mapped position is never longer than the original */

    out = malloc((size_t) (end - text) + 1);
    if (out == NULL) {
        return NULL;
    }

    o = out;
    p = text;

    while (p < end) {

        if ((p > text && (tidal_pattern_ident((unsigned char) p[-1])
                          || p[-1] == '.'))
            || tidal_pattern_position(p, end, channel, n, &q) == 0)
        {
            *o++ = *p++;
            continue;
        }

        if (n[2] < 0) {
            o += sprintf(o, "d%d:%ld:%ld", channel, n[0],
                         tidal_pattern_column(n[1]));

            if (n[3] >= 0) {
                o += sprintf(o, "-%ld", tidal_pattern_column(n[3]));
            }

        } else {
            o += sprintf(o, "d%d:(%ld,%ld)-(%ld,%ld)", channel, n[0],
                         tidal_pattern_column(n[1]), n[2],
                         tidal_pattern_column(n[3]));
        }

        p = q;
    }

    *o = '\0';

    if (outlen) {
        *outlen = (size_t) (o - out);
    }

    return out;
}


/* a column in the wrapper as a column in the pattern */

static long
tidal_pattern_column(long col)
{
    return col > TIDAL_PATTERN_INDENT ? col - TIDAL_PATTERN_INDENT : 1;
}


/* decimal digits at p (at most 9 of them), or NULL */

static const char *
tidal_pattern_decimal(const char *p, const char *end, long *v)
{
    int  i;

    *v = 0;

    for (i = 0; p < end && isdigit((unsigned char) *p); i++, p++) {
        if (i == 9) {
            return NULL;
        }

        *v = *v * 10 + (*p - '0');
    }

    return i ? p : NULL;
}


/*
 * A position "dN:L:C", "dN:L:C-C" or "dN:(L,C)-(L,C)" at p, with N the
 * channel looked for (0: any): returns N and fills n (line, column, and
 * either -1 and the end column or -1, or the end line and column) and
 * *after; 0 when there is none.
 */

static int
tidal_pattern_position(const char *p, const char *end, int channel,
    long n[4], const char **after)
{
    int  ch;

    if (end - p < 5 || p[0] != 'd' || p[1] < '1' || p[1] > '9') {
        return 0;
    }

    ch = p[1] - '0';
    p += 2;

    if (isdigit((unsigned char) *p)) {
        ch = ch * 10 + *p++ - '0';
    }

    if (ch > 16 || (channel && ch != channel) || p == end || *p++ != ':'
        || p == end)
    {
        return 0;
    }

    n[2] = -1;
    n[3] = -1;

    if (*p != '(') {
        p = tidal_pattern_decimal(p, end, &n[0]);

        if (p == NULL || p == end || *p++ != ':') {
            return 0;
        }

        p = tidal_pattern_decimal(p, end, &n[1]);
        if (p == NULL) {
            return 0;
        }

        if (p + 1 < end && *p == '-' && isdigit((unsigned char) p[1])) {
            p = tidal_pattern_decimal(p + 1, end, &n[3]);
            if (p == NULL) {
                return 0;
            }
        }

        *after = p;
        return ch;
    }

    p = tidal_pattern_decimal(p + 1, end, &n[0]);
    if (p == NULL || p == end || *p++ != ',') {
        return 0;
    }

    p = tidal_pattern_decimal(p, end, &n[1]);
    if (p == NULL || end - p < 3 || memcmp(p, ")-(", 3) != 0) {
        return 0;
    }

    p = tidal_pattern_decimal(p + 3, end, &n[2]);
    if (p == NULL || p == end || *p++ != ',') {
        return 0;
    }

    p = tidal_pattern_decimal(p, end, &n[3]);
    if (p == NULL || p == end || *p++ != ')') {
        return 0;
    }

    *after = p;

    return ch;
}


int
tidal_pattern_failed(const char *text, size_t len)
{
    size_t       n;
    const char  *p, *end, *nl;

    p = text;
    end = text + len;

    while (p < end) {
        nl = memchr(p, '\n', (size_t) (end - p));
        n = nl ? (size_t) (nl - p) : (size_t) (end - p);

        if (n > 0 && p[0] != ' ' && p[0] != '\t') {

            if ((n >= 13 && memcmp(p, "*** Exception", 13) == 0)
                || (n == 12 && memcmp(p, "Interrupted.", 12) == 0))
            {
                return 1;
            }

            /* "file:L:C: error:", "<no location info>: error:" */

            for (nl = p; nl + 8 <= p + n; nl++) {
                if (memcmp(nl, ": error:", 8) == 0) {
                    return 1;
                }
            }
        }

        p += n + 1;
    }

    return 0;
}
