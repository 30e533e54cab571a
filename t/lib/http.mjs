// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// MCP Streamable HTTP by hand, for the tests that look at the wire: POST a
// message, open a session's event stream and read its SSE events.

export const ACCEPT_BOTH = 'application/json, text/event-stream';

export function httpUrl(ngx, path = '/mcp') {
    return `${ngx.opts.ssl ? 'https' : 'http'}://127.0.0.1:${ngx.port}${path}`;
}

export function initializeMessage(id = 1, { name = 'http-test', capabilities = {} } = {}) {
    return {
        jsonrpc: '2.0', id, method: 'initialize',
        params: {
            protocolVersion: '2025-11-25', capabilities,
            clientInfo: { name, version: '1.0.0' },
        },
    };
}

// POSTs one message (an object, or a raw string); resolves to
// { status, headers, text, json }.
export async function post(url, message, { session, headers = {} } = {}) {
    const res = await fetchOnce(url, {
        method: 'POST',
        headers: {
            'content-type': 'application/json',
            accept: ACCEPT_BOTH,
            ...(session ? { 'mcp-session-id': session } : {}),
            ...headers,
        },
        body: typeof message === 'string' ? message : JSON.stringify(message),
    });
    const text = await res.text();
    let json = null;
    try {
        json = text ? JSON.parse(text) : null;
    } catch {
        // left null: the caller asserts on text
    }
    return { status: res.status, headers: res.headers, text, json };
}

// A kept-alive connection that an old worker closed at a reload (or a
// killed one reset) fails: the request is sent again, once, on a new one.
async function fetchOnce(url, init) {
    try {
        return await fetch(url, init);
    } catch (e) {
        if (!['UND_ERR_SOCKET', 'ECONNRESET'].includes(e.cause?.code)) {
            throw e;
        }
        return fetch(url, init);
    }
}

// initialize + notifications/initialized; resolves to the session id.
export async function openSession(url, opts = {}) {
    const init = await post(url, initializeMessage(1, opts));
    if (init.status !== 200) {
        throw new Error(`initialize answered ${init.status}: ${init.text}`);
    }
    const session = init.headers.get('mcp-session-id');
    const ready = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' },
                             { session });
    if (ready.status !== 202) {
        throw new Error(`notifications/initialized answered ${ready.status}`);
    }
    return session;
}

// A GET event stream: stream.events holds { id, data, json } as they come,
// stream.retry the retry field; stream.closed resolves when the server ends
// it.  next(pred) waits for an event, close() drops it.
export async function openStream(url, session, { lastEventId, headers = {} } = {}) {
    const ac = new AbortController();
    const res = await fetch(url, {
        headers: {
            accept: 'text/event-stream',
            'mcp-session-id': session,
            ...(lastEventId !== undefined ? { 'last-event-id': String(lastEventId) } : {}),
            ...headers,
        },
        signal: ac.signal,
    });
    const stream = {
        status: res.status, headers: res.headers, events: [], retry: null,
        comments: 0, ended: false, waiters: [],
        close() {
            ac.abort();
        },
        next(pred = () => true, timeout = 10000) {
            const found = this.events.find(pred);
            if (found) {
                return Promise.resolve(found);
            }
            return new Promise((resolve, reject) => {
                const t = setTimeout(() => reject(new Error('no such SSE event in time; got '
                    + JSON.stringify(this.events.map((e) => e.id)))), timeout);
                this.waiters.push({ pred, resolve: (e) => { clearTimeout(t); resolve(e); } });
            });
        },
    };
    if (res.status !== 200) {
        stream.text = await res.text();
        stream.closed = Promise.resolve();
        return stream;
    }
    stream.closed = (async () => {
        const decoder = new TextDecoder();
        let buf = '';
        try {
            for await (const chunk of res.body) {
                buf += decoder.decode(chunk, { stream: true });
                let at;
                while ((at = buf.indexOf('\n\n')) >= 0) {
                    const block = buf.slice(0, at);
                    buf = buf.slice(at + 2);
                    parseBlock(stream, block);
                }
            }
        } catch {
            // aborted by close(), or the connection went
        }
        stream.ended = true;
    })();
    return stream;
}

function parseBlock(stream, block) {
    const ev = { id: null, data: null };
    let comment = true;
    for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
            continue;
        }
        comment = false;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') {
            ev.id = value;
        } else if (field === 'data') {
            ev.data = ev.data === null ? value : `${ev.data}\n${value}`;
        } else if (field === 'retry') {
            stream.retry = Number(value);
        }
    }
    if (comment) {
        stream.comments++;
        return;
    }
    if (ev.data === null) {
        return;
    }
    ev.json = JSON.parse(ev.data);
    stream.events.push(ev);
    for (const w of [...stream.waiters]) {
        if (w.pred(ev)) {
            stream.waiters.splice(stream.waiters.indexOf(w), 1);
            w.resolve(ev);
        }
    }
}

// tidal_say through a POST: one chat event; resolves to its seq.
export async function say(url, session, text, id = 100) {
    const r = await post(url, {
        jsonrpc: '2.0', id, method: 'tools/call',
        params: { name: 'tidal_say', arguments: { text } },
    }, { session });
    if (r.status !== 200 || r.json?.result?.isError) {
        throw new Error(`tidal_say answered ${r.status}: ${r.text}`);
    }
    return r.json.result.structuredContent.seq;
}


// An MCP client over Streamable HTTP by hand, shaped like TidalWs.join's:
// meta (initialize's _meta), request(), call() (the JSON-RPC answer, with
// .error or the result's fields), listTools() (names), close() (DELETE).
export async function joinHttp(url, { headers = {}, name = 'http-client', capabilities = {} } = {}) {
    const init = await post(url, initializeMessage(1, { name, capabilities }), { headers });
    if (init.status !== 200) {
        throw new Error(`initialize answered ${init.status}: ${init.text}`);
    }
    const session = init.headers.get('mcp-session-id');
    let id = 1;
    const c = {
        session,
        meta: init.json.result._meta,
        async request(method, params = {}) {
            const r = await post(url, { jsonrpc: '2.0', id: ++id, method, params },
                                 { session, headers });
            return r.json;
        },
        async call(tool, args = {}) {
            const r = await c.request('tools/call', { name: tool, arguments: args });
            return r.error ? r : { ...r.result, id: r.id };
        },
        async listTools() {
            return (await c.request('tools/list')).result.tools.map((t) => t.name);
        },
        async close() {
            await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': session, ...headers } });
        },
    };
    await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { session, headers });
    return c;
}
