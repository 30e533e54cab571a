// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// Waiting on events without polling: whoever gets news (a notification,
// a log line, a close) calls every function in a waiter set; until()
// resolves with the first truthy fn() and rejects after timeout ms with
// describe()'s words.

export function until(waiters, fn, timeout, describe) {
    return new Promise((resolve, reject) => {
        const check = () => {
            const v = fn();
            if (v) {
                clearTimeout(timer);
                waiters.delete(check);
                resolve(v);
            }
        };
        const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`timed out after ${timeout} ms waiting for ${describe()}`));
        }, timeout);
        waiters.add(check);
        check();
    });
}
