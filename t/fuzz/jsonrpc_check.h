/*
 * Copyright (C) ngx_tidal authors
 * SPDX-License-Identifier: BSD-2-Clause
 */

/* Checks that a text the server sends is one valid JSON-RPC 2.0 message. */

#ifndef _JSONRPC_CHECK_H_INCLUDED_
#define _JSONRPC_CHECK_H_INCLUDED_


#include <string.h>
#include <jansson.h>


/*
 * Returns NULL when text (len bytes, NUL-terminated) is a response
 * {"jsonrpc":"2.0", "id": string|integer|null, and exactly one of
 * "result" (object) or "error" ({"code": integer, "message": string,
 * "data"?})} or a notification {"jsonrpc":"2.0", "method": string,
 * "params"?: object}, with no other members; otherwise why it is not.
 */
static const char *
jsonrpc_check(const char *text, size_t len)
{
    const char    *why, *key;
    json_t        *msg, *version, *id, *result, *error, *method, *params,
                  *value;
    json_error_t   err;

    if (text == NULL) {
        return "no text";
    }

    if (strlen(text) != len) {
        return "length differs from the NUL-terminated text";
    }

    msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (msg == NULL) {
        return "not JSON";
    }

    why = NULL;

    version = json_object_get(msg, "jsonrpc");
    id = json_object_get(msg, "id");
    result = json_object_get(msg, "result");
    error = json_object_get(msg, "error");
    method = json_object_get(msg, "method");
    params = json_object_get(msg, "params");

    if (!json_is_object(msg)) {
        why = "not an object";

    } else if (!json_is_string(version)
               || strcmp(json_string_value(version), "2.0") != 0)
    {
        why = "jsonrpc is not \"2.0\"";

    } else if (method != NULL) {
        if (!json_is_string(method)) {
            why = "notification method is not a string";

        } else if (id != NULL || result != NULL || error != NULL) {
            why = "notification with id, result or error";

        } else if (params != NULL && !json_is_object(params)) {
            why = "notification params is not an object";
        }

    } else if (id == NULL) {
        why = "response without id";

    } else if (!json_is_string(id) && !json_is_integer(id)
               && !json_is_null(id))
    {
        why = "id is not a string, an integer or null";

    } else if ((result == NULL) == (error == NULL)) {
        why = "not exactly one of result and error";

    } else if (result != NULL && !json_is_object(result)) {
        why = "result is not an object";

    } else if (result != NULL && json_is_null(id)) {
        why = "result with id null";

    } else if (error != NULL
               && (!json_is_object(error)
                   || !json_is_integer(json_object_get(error, "code"))
                   || !json_is_string(json_object_get(error, "message"))))
    {
        why = "error is not {code: integer, message: string}";
    }

    if (why == NULL && json_is_object(error)) {
        json_object_foreach(error, key, value) {
            if (strcmp(key, "code") != 0 && strcmp(key, "message") != 0
                && strcmp(key, "data") != 0)
            {
                why = "unexpected member in error";
            }
        }
    }

    if (why == NULL) {
        json_object_foreach(msg, key, value) {
            if (strcmp(key, "jsonrpc") != 0 && strcmp(key, "id") != 0
                && strcmp(key, "result") != 0 && strcmp(key, "error") != 0
                && strcmp(key, "method") != 0 && strcmp(key, "params") != 0)
            {
                why = "unexpected member";
            }
        }
    }

    json_decref(msg);

    return why;
}


#endif /* _JSONRPC_CHECK_H_INCLUDED_ */
