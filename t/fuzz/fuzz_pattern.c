/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * libFuzzer target for the pattern sandbox: whatever arrives, nothing
 * crashes, and whatever the check accepts can only be one expression in
 * the wrapper - no line of the GHCi block but the first and the last
 * starts with ':', and a second, independent reading of the text finds
 * its brackets balanced and no ';', '{' or '}' outside literals and
 * comments.  The GHCi-message helpers get the same bytes.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidal_pattern.h"


static void
fuzz_fail(const char *why, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_pattern: %s (%zu bytes): %.*s\n", why, size,
            (int) (size > 300 ? 300 : size), (const char *) data);
    abort();
}


static int
fuzz_symbol(int c)
{
    return c != 0 && strchr("!#$%&*+./<=>?@\\^|-~:", c) != NULL;
}


static int
fuzz_ident(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '\'';
}


static int
fuzz_digit(int c, int base)
{
    if (base == 16) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
               || (c >= 'A' && c <= 'F');
    }

    return c >= '0' && c < '0' + base;
}


/* a numeric literal as Haskell 2010 reads it; returns its end */
static size_t
fuzz_number(const uint8_t *p, size_t n, size_t i)
{
    int     base;
    size_t  e;

    base = 0;

    if (p[i] == '0' && i + 2 < n) {
        if (p[i + 1] == 'x' || p[i + 1] == 'X') {
            base = 16;

        } else if (p[i + 1] == 'o' || p[i + 1] == 'O') {
            base = 8;
        }
    }

    if (base && fuzz_digit(p[i + 2], base)) {
        for (i += 2; i < n && fuzz_digit(p[i], base); i++) { /* void */ }
        return i;
    }

    while (i < n && fuzz_digit(p[i], 10)) {
        i++;
    }

    if (i + 1 < n && p[i] == '.' && fuzz_digit(p[i + 1], 10)) {
        for (i++; i < n && fuzz_digit(p[i], 10); i++) { /* void */ }
    }

    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        e = i + 1;

        if (e < n && (p[e] == '-' || p[e] == '+')) {
            e++;
        }

        if (e < n && fuzz_digit(p[e], 10)) {
            for (i = e; i < n && fuzz_digit(p[i], 10); i++) { /* void */ }
        }
    }

    return i;
}


/*
 * The reference reading: where code, literals and comments are, by
 * GHC's rules written out again; returns why the text could leave the
 * wrapper, or NULL.
 */
static const char *
fuzz_reference(const uint8_t *p, size_t n)
{
    char    stack[4096];
    size_t  i, j, depth, nest;

    i = 0;
    depth = 0;

    while (i < n) {

        if (p[i] == '"') {
            for (i++; i < n && p[i] != '"'; i++) {
                if (p[i] == '\n') {
                    return "a string crosses a line";
                }

                if (p[i] != '\\') {
                    continue;
                }

                if (i + 1 < n && (p[i + 1] == ' ' || p[i + 1] == '\t'
                                  || p[i + 1] == '\n'))
                {
                    for (i++; i < n && (p[i] == ' ' || p[i] == '\t'
                                        || p[i] == '\n'); i++)
                    {
                        /* the gap */
                    }

                    if (i == n || p[i] != '\\') {
                        return "a string gap does not end";
                    }

                } else if (i + 1 < n && p[i + 1] == '^') {
                    i += 2;

                } else {
                    i++;
                }
            }

            if (i >= n) {
                return "a string does not end";
            }

            i++;
            continue;
        }

        if (p[i] == '\'') {
            j = i + 1;

            if (j < n && p[j] == '\\') {
                j += (j + 1 < n && p[j + 1] == '^') ? 3 : 2;

                while (j < n && ((p[j] >= '0' && p[j] <= '9')
                                 || (p[j] >= 'a' && p[j] <= 'z')
                                 || (p[j] >= 'A' && p[j] <= 'Z')))
                {
                    j++;
                }

            } else {
                for (j++; j < n && (p[j] & 0xc0) == 0x80; j++) {
                    /* the rest of a UTF-8 character */
                }
            }

            if (j >= n || p[j] != '\'') {
                return "a quote that is not a character literal";
            }

            i = j + 1;
            continue;
        }

        if (p[i] == '{' && i + 1 < n && p[i + 1] == '-') {
            nest = 0;

            while (i + 1 < n) {
                if (p[i] == '{' && p[i + 1] == '-') {
                    nest++;
                    i += 2;

                } else if (p[i] == '-' && p[i + 1] == '}') {
                    i += 2;

                    if (--nest == 0) {
                        break;
                    }

                } else {
                    i++;
                }
            }

            if (nest) {
                return "a comment does not end";
            }

            continue;
        }

        if (fuzz_symbol(p[i])) {
            for (j = i; j < n && fuzz_symbol(p[j]); j++) { /* void */ }

            if (j - i >= 2 && strspn((const char *) p + i, "-") >= j - i) {
                while (j < n && p[j] != '\n') {
                    j++;
                }
            }

            i = j;
            continue;
        }

        if (fuzz_ident(p[i]) && p[i] != '\'') {
            if (p[i] >= '0' && p[i] <= '9') {
                i = fuzz_number(p, n, i);

            } else {
                while (i < n && fuzz_ident(p[i])) {
                    i++;
                }
            }

            continue;
        }

        switch (p[i]) {

        case '(':
        case '[':
            if (depth == sizeof(stack)) {
                return "too deep";
            }

            stack[depth++] = (char) p[i];
            break;

        case ')':
        case ']':
            if (depth == 0) {
                return "a bracket closes below the pattern";
            }

            if (stack[--depth] != (p[i] == ')' ? '(' : '[')) {
                return "brackets do not match";
            }

            break;

        case ';':
        case '{':
        case '}':
            return "a ';', '{' or '}' in code";
        }

        i++;
    }

    return depth ? "a bracket is left open" : NULL;
}


/* the GHCi block: ":{" first, ":}" last, no other line starting with ':' */
static const char *
fuzz_block(const char *w, size_t len)
{
    size_t       line;
    const char  *p, *end, *nl, *q;

    if (len < 6 || memcmp(w, ":{\n", 3) != 0
        || memcmp(w + len - 3, ":}\n", 3) != 0)
    {
        return "the block is not :{ ... :}";
    }

    p = w + 3;
    end = w + len - 3;
    line = 0;

    while (p < end) {
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL) {
            return "the block does not end with a newline";
        }

        /* the last line, " ) :: ControlPattern)", is the wrapper's */

        for (q = p; q < nl && (*q == ' ' || *q == '\t' || (*q & 0x80)); q++)
        {
            /* GHCi strips Unicode spaces too */
        }

        if (q < nl && *q == ':' && nl + 1 < end) {
            return "a line of the block starts with ':'";
        }

        /* the pattern's lines: indented, or empty */

        if (line >= 2 && nl + 1 < end
            && !(nl == p
                 || (nl - p >= TIDAL_PATTERN_INDENT
                     && strspn(p, " ") >= TIDAL_PATTERN_INDENT)))
        {
            return "a line of the pattern is not indented";
        }

        line++;
        p = nl + 1;
    }

    return NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc, rc2, ch;
    char         err[256], *copy, *w, *m;
    size_t       len, mlen, i;
    const char  *why;

    copy = malloc(size + 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);
    copy[size] = '\0';

    memset(err, 'x', sizeof(err));
    rc = tidal_pattern_check(copy, size, err, sizeof(err));
    rc2 = tidal_pattern_check(copy, size, NULL, 0);

    if (rc != rc2 || (rc != 0 && rc != -1)) {
        fuzz_fail("the check is not deterministic", data, size);
    }

    if (memchr(err, '\0', sizeof(err)) == NULL) {
        fuzz_fail("the reason is not NUL-terminated", data, size);
    }

    if (rc == -1 && (err[0] == '\0' || strchr(err, '\n') != NULL)) {
        fuzz_fail("a refusal without a one-line reason", data, size);
    }

    if (rc == 0) {
        why = fuzz_reference((const uint8_t *) copy, size);
        if (why) {
            fuzz_fail(why, data, size);
        }

        for (i = 0; i < size; i++) {
            if (data[i] == 0 || data[i] == '\r') {
                fuzz_fail("a control character passed", data, size);
            }
        }

        ch = 1 + (size ? data[0] % 16 : 0);

        w = tidal_pattern_wrap("tidalPlay 1 1", ch, copy, size, &len);
        if (w == NULL) {
            fuzz_fail("wrap failed", data, size);
        }

        if (strlen(w) != len) {
            fuzz_fail("the block's length is wrong", data, size);
        }

        why = fuzz_block(w, len);
        if (why) {
            fuzz_fail(why, data, size);
        }

        free(w);
    }

    /* the same bytes as GHCi output */

    ch = 1 + (size ? data[size - 1] % 16 : 0);

    m = tidal_pattern_map_errors(ch, copy, size, &mlen);

    if (m == NULL || m[mlen] != '\0' || mlen > size) {
        fuzz_fail("map_errors grew or lost its text", data, size);
    }

    free(m);

    (void) tidal_pattern_failed(copy, size);

    free(copy);

    return 0;
}
