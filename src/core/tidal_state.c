/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/*
 * The channel state document: what tidal_state_file holds and what a
 * session_restore carries.  Anything not exactly as expected is refused
 * with a reason, so a torn or foreign file can never be half-applied.
 */


#include <stdio.h>
#include <string.h>

#include "tidal_state.h"


static int tidal_state_channel_name(const char *name);
static json_t *tidal_state_channels(json_t *channels, char *err,
    size_t errlen);


json_t *
tidal_state_empty(void)
{
    return json_pack("{s:i, s:{s:f}, s:{}, s:[]}",
                     "version", TIDAL_STATE_VERSION,
                     "tempo", "cps", TIDAL_STATE_DEFAULT_CPS,
                     "channels",
                     "history");
}


json_t *
tidal_state_parse(const char *text, size_t len, char *err, size_t errlen)
{
    size_t        n, skip;
    double        cps;
    json_t       *doc, *version, *tempo, *channels, *history, *state, *v;
    json_error_t  jerr;

    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (doc == NULL) {
        snprintf(err, errlen, "not JSON: %s at line %d, column %d",
                 jerr.text, jerr.line, jerr.column);
        return NULL;
    }

    state = NULL;

    if (!json_is_object(doc)) {
        snprintf(err, errlen, "not a JSON object");
        goto done;
    }

    version = json_object_get(doc, "version");

    if (!json_is_integer(version)
        || json_integer_value(version) != TIDAL_STATE_VERSION)
    {
        snprintf(err, errlen, "\"version\" is not %d", TIDAL_STATE_VERSION);
        goto done;
    }

    cps = TIDAL_STATE_DEFAULT_CPS;
    tempo = json_object_get(doc, "tempo");

    if (tempo != NULL) {
        v = json_object_get(tempo, "cps");

        if (!json_is_number(v) || json_number_value(v) <= 0
            || json_number_value(v) > 1000)
        {
            snprintf(err, errlen, "\"tempo.cps\" is not a number "
                     "between 0 and 1000");
            goto done;
        }

        cps = json_number_value(v);
    }

    channels = json_object_get(doc, "channels");

    if (channels == NULL) {
        channels = json_object();

    } else {
        channels = tidal_state_channels(channels, err, errlen);
    }

    if (channels == NULL) {
        goto done;
    }

    history = json_object_get(doc, "history");

    if (history == NULL) {
        history = json_array();

    } else if (!json_is_array(history)) {
        snprintf(err, errlen, "\"history\" is not an array");
        json_decref(channels);
        goto done;

    } else {
        /* keep the newest entries, objects only */

        n = json_array_size(history);
        skip = n > TIDAL_STATE_HISTORY_MAX ? n - TIDAL_STATE_HISTORY_MAX : 0;
        v = history;
        history = json_array();

        for (/* void */; history && skip < n; skip++) {
            if (!json_is_object(json_array_get(v, skip))) {
                snprintf(err, errlen, "\"history\" holds a non-object");
                json_decref(history);
                json_decref(channels);
                goto done;
            }

            json_array_append(history, json_array_get(v, skip));
        }
    }

    state = json_pack("{s:i, s:{s:f}, s:o, s:o*}",
                      "version", TIDAL_STATE_VERSION,
                      "tempo", "cps", cps,
                      "channels", channels,
                      "history", history);

    if (state == NULL) {
        snprintf(err, errlen, "out of memory");
    }

done:

    json_decref(doc);

    return state;
}


static json_t *
tidal_state_channels(json_t *channels, char *err, size_t errlen)
{
    json_t      *out, *ch, *pattern, *muted, *soloed;
    const char  *name;

    if (!json_is_object(channels)) {
        snprintf(err, errlen, "\"channels\" is not an object");
        return NULL;
    }

    out = json_object();
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    json_object_foreach(channels, name, ch) {

        if (!tidal_state_channel_name(name)) {
            snprintf(err, errlen, "unknown channel \"%.16s\"", name);
            goto failed;
        }

        pattern = json_object_get(ch, "pattern");
        muted = json_object_get(ch, "muted");
        soloed = json_object_get(ch, "soloed");

        if (!json_is_object(ch)
            || !json_is_string(pattern)
            || json_string_length(pattern) > TIDAL_STATE_PATTERN_MAX
            || (muted != NULL && !json_is_boolean(muted))
            || (soloed != NULL && !json_is_boolean(soloed)))
        {
            snprintf(err, errlen, "channel \"%s\" is not "
                     "{\"pattern\": text, \"muted\": bool, "
                     "\"soloed\": bool}", name);
            goto failed;
        }

        if (json_object_set_new(out, name,
                json_pack("{s:O, s:b, s:b}", "pattern", pattern,
                          "muted", json_is_true(muted),
                          "soloed", json_is_true(soloed)))
            != 0)
        {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
    }

    return out;

failed:

    json_decref(out);
    return NULL;
}


/* d1 .. d16 */

static int
tidal_state_channel_name(const char *name)
{
    int  n;

    if (name[0] != 'd' || name[1] < '1' || name[1] > '9') {
        return 0;
    }

    n = name[1] - '0';

    if (name[2] == '\0') {
        return 1;
    }

    if (name[2] < '0' || name[2] > '9' || name[3] != '\0') {
        return 0;
    }

    n = n * 10 + name[2] - '0';

    return n <= TIDAL_STATE_CHANNELS;
}
