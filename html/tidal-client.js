// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// TidalClient: an ngx_tidal MCP client for browsers and Node that reconnects,
// resumes its session and delivers every collaboration event once, in order.

/*
 * import { TidalClient } from './tidal-client.js';
 *
 * const c = new TidalClient('ws://127.0.0.1:8080/mcp', {
 *     name: 'my-ui', version: '1.0.0',   // clientInfo
 *     WebSocket,                         // a constructor (Node: from 'ws');
 *                                        //   default globalThis.WebSocket
 *     fetch,                             // default globalThis.fetch; null:
 *                                        //   never ask why an upgrade failed
 *     minDelay: 1000, maxDelay: 30000,   // reconnect backoff, full jitter
 *     random: Math.random,               // injectable for tests
 *     timeout: 30000,                    // per request, and per handshake
 *     session: null, lastSeq: null,      // resume a session kept elsewhere
 *     experimental: {},                  // more capabilities.experimental,
 *                                        //   e.g. {'tidal/sound': {}}
 * });
 *
 * c.addEventListener('event', e => e.detail);
 *     // params of every notifications/tidal/<type> (session_restore too),
 *     // in server order, each once, also across reconnects
 * c.addEventListener('status', e => e.detail);
 *     // {state: 'connecting'|'open'|'closed', attempt, delay, resumed,
 *     //  session, lastSeq, code, reason}
 * c.addEventListener('error', e => e.detail);
 *     // an Error: junk from the server (detail.raw), or a refused initialize
 *
 * await c.connect();        // after initialize + notifications/initialized
 *                           //   of the next successful connection: it
 *                           //   retries through refusals and 503s, and
 *                           //   rejects only on close() or a refused
 *                           //   initialize
 * await c.call('tidal_say', {text: 'hi'});   // tools/call -> result
 * await c.request('tools/list');             // any request -> result
 * await c.request('ping', undefined, {timeout: 5000});
 * c.session; c.lastSeq; c.role; c.state;
 * c.close();                // no reconnect after this; connect() restarts
 *
 * A JSON-RPC error rejects with an Error carrying .code and .data; a lost
 * connection, a timeout or close() rejects with an Error without .code.
 * A tool that fails (isError: true) resolves: that is a result in MCP.
 * Requests made while not open reject at once rather than queue: a tool
 * call replayed after a reconnect could play a pattern twice.
 *
 * After a socket closes or fails (1001 and 1008 included) the client waits
 * random() * min(maxDelay, minDelay * 2^attempt) ms and reconnects; attempt
 * counts failures since the last successful initialize (status shows it
 * with this failure counted).  It sends its session and lastSeq in
 * initialize's _meta, never in the URL (URLs end up in access logs).  A
 * status 'open' with resumed: false means a fresh session: events from
 * while it was away are lost, so re-read the state (tidal_get_state).  A
 * JSON-RPC error answering initialize is final: the client closes, as a
 * retry would be refused the same way.
 *
 * So is a 403 (a Host or Origin the server does not allow, or no role):
 * browsers do not tell a WebSocket why its upgrade failed, so after a
 * socket that never opened the client GETs the endpoint's http(s) URL
 * without the upgrade; when that answers 403 the client emits an 'error'
 * (status 403, the server's one-line reason) and closes instead of
 * retrying.  ngx_tidal lets any page read its 403s for this.
 */

export const PROTOCOL_VERSION = '2025-11-25';

const EVENT_PREFIX = 'notifications/tidal/';

// WebSocket.OPEN, spelled out so a stand-in socket class needs no constants.
const OPEN = 1;

const DEFAULTS = {
    name: 'tidal-client',
    version: '0.0.0',
    minDelay: 1000,
    maxDelay: 30000,
    random: Math.random,
    timeout: 30000,
    session: null,
    lastSeq: null,
    experimental: null,
};

// Node 18 has EventTarget and Event but CustomEvent only behind a flag.
const DetailEvent = globalThis.CustomEvent ?? class extends Event {
    constructor(type, init = {}) {
        super(type, init);
        this.detail = init.detail ?? null;
    }
};


// Full jitter: clients dropped together by one nginx restart spread over the
// whole window instead of returning in waves at its edges.
export function backoffDelay(attempt, options = {}) {
    const { minDelay, maxDelay, random } = { ...DEFAULTS, ...options };

    return random() * Math.min(maxDelay, minDelay * 2 ** attempt);
}


export function initializeParams({ name, version, session = null,
                                   lastSeq = null, experimental = null }) {
    const params = {
        protocolVersion: PROTOCOL_VERSION,
        // the room's events, notifications/tidal/* (docs/collaboration.md),
        // and whatever else the caller opts in to (e.g. 'tidal/sound')
        capabilities: {
            experimental: { ...experimental, 'tidal/events': {} },
        },
        clientInfo: { name, version },
    };

    if (session) {
        params._meta = {
            'tidal/session': session,
            'tidal/last_seq': lastSeq ?? 0,
        };
    }

    return params;
}


// What the client knows after an initialize result, given what it knew.
export function sessionFromInitialize(previous, result) {
    const meta = result?._meta ?? {};
    const session = typeof meta['tidal/session'] === 'string'
                    ? meta['tidal/session'] : null;
    const seq = Number.isInteger(meta['tidal/seq']) ? meta['tidal/seq'] : null;
    const role = typeof meta['tidal/role'] === 'string'
                 ? meta['tidal/role'] : null;
    const resumed = meta['tidal/resumed'] === true && session !== null
                    && session === previous.session;

    /*
     * A fresh session takes the server's seq even when it is lower than
     * ours: a restarted nginx with a new zone numbers from 0 again, and
     * keeping the old maximum would drop every event it ever sends.
     */
    const lastSeq = resumed ? maxSeq(previous.lastSeq, seq) : seq;

    return { session, lastSeq, role, resumed };
}


// Whether to deliver an event, and lastSeq after it.  metrics is per client
// and repeats the last seq, so it is always new and never a high-water mark.
export function sequenceEvent(lastSeq, type, seq) {
    if (type === 'metrics' || !Number.isInteger(seq)) {
        return { deliver: true, lastSeq };
    }

    if (lastSeq !== null && seq <= lastSeq) {
        return { deliver: false, lastSeq };
    }

    return { deliver: true, lastSeq: seq };
}


function maxSeq(a, b) {
    if (a === null || a === undefined) {
        return b;
    }

    return b === null || b === undefined ? a : Math.max(a, b);
}


function rpcError(error) {
    const err = new Error(typeof error?.message === 'string'
                          ? error.message : 'JSON-RPC error');

    err.code = error?.code;
    if (error && 'data' in error) {
        err.data = error.data;
    }

    return err;
}


function junk(message, raw) {
    const err = new Error(`tidal: ${message}`);

    err.raw = raw;
    return err;
}


export class TidalClient extends EventTarget {
    #url;
    #options;
    #WebSocket;
    #fetch;

    #ws = null;
    #state = 'closed';
    #stopped = true;          /* by close(), or before the first connect() */
    #attempt = 0;
    #reconnectTimer = null;
    #handshakeTimer = null;
    #socketError = null;      /* why the current socket failed, if known */

    #nextId = 1;
    #pending = new Map();     /* id -> {settle(err, result), timer} */
    #waiters = [];            /* connect() promises */

    #session;
    #lastSeq;
    #role = null;

    constructor(url, options = {}) {
        super();

        this.#url = url;
        this.#options = { ...DEFAULTS, ...options };
        this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
        if (typeof this.#WebSocket !== 'function') {
            throw new TypeError('tidal: no WebSocket here; pass one in '
                                + 'options.WebSocket (Node: from "ws")');
        }

        this.#fetch = options.fetch !== undefined
            ? options.fetch : globalThis.fetch?.bind(globalThis) ?? null;

        this.#session = this.#options.session;
        this.#lastSeq = this.#options.lastSeq;
    }

    get session() {
        return this.#session;
    }

    get lastSeq() {
        return this.#lastSeq;
    }

    get role() {
        return this.#role;
    }

    get state() {
        return this.#state;
    }

    connect() {
        if (this.#state === 'open') {
            return Promise.resolve();
        }

        const ready = new Promise((resolve, reject) => {
            this.#waiters.push({ resolve, reject });
        });

        if (this.#stopped) {
            this.#stopped = false;
            this.#attempt = 0;
            this.#open(0);
        }

        return ready;
    }

    request(method, params, { timeout = this.#options.timeout } = {}) {
        if (this.#state !== 'open') {
            return Promise.reject(new Error(`tidal: ${method}: not connected`));
        }

        return new Promise((resolve, reject) => {
            this.#send(this.#ws, method, params, timeout, (err, result) => {
                if (err) {
                    reject(err);
                } else {
                    resolve(result);
                }
            });
        });
    }

    call(name, args = {}, options) {
        return this.request('tools/call', { name, arguments: args }, options);
    }

    close() {
        if (this.#stopped) {
            return;
        }

        this.#shutdown(new Error('tidal: client closed'));
    }


    #open(delay) {
        let ws, opened = false;

        this.#reconnectTimer = null;
        this.#socketError = null;
        this.#state = 'connecting';
        this.#status({ delay });
        if (this.#stopped) {
            return;               /* a status listener called close() */
        }

        try {
            ws = new this.#WebSocket(this.#url, 'mcp');
        } catch (err) {
            /* a malformed URL will not get better by retrying */
            this.#fail(err);
            return;
        }

        this.#ws = ws;

        /*
         * The listeners stay for the socket's life and ignore it once it is
         * no longer current: 'ws' throws on an 'error' nobody listens to,
         * and a dropped socket may still report its close much later.
         */
        ws.addEventListener('open', () => {
            opened = true;
            if (ws === this.#ws) {
                this.#initialize(ws);
            }
        });
        ws.addEventListener('message', (ev) => {
            if (ws === this.#ws) {
                this.#receive(ws, ev.data);
            }
        });
        ws.addEventListener('error', (ev) => {
            if (ws === this.#ws) {
                /* browsers say nothing; 'ws' says e.g. "Unexpected server
                   response: 503" */
                this.#socketError = ev.message ?? ev.error?.message ?? null;
            }
        });
        ws.addEventListener('close', (ev) => {
            if (ws === this.#ws && !opened) {
                this.#askWhy();
            }
            this.#lost(ws, ev.code ?? null,
                       ev.reason || this.#socketError || '');
        });

        /* a handshake can hang on a silent network or a stalled server */
        this.#handshakeTimer = setTimeout(() => {
            this.#lost(ws, null, 'handshake timed out');
        }, this.#options.timeout);
    }

    #initialize(ws) {
        const params = initializeParams({
            name: this.#options.name,
            version: this.#options.version,
            session: this.#session,
            lastSeq: this.#lastSeq,
            experimental: this.#options.experimental,
        });

        /*
         * Handled synchronously in the message callback, not after an await:
         * the missed events follow the response in the same read and must
         * be judged against the lastSeq it sets.
         */
        this.#send(ws, 'initialize', params, Infinity, (err, result) => {
            if (err) {
                if (err.code !== undefined) {
                    this.#fail(err);
                }
                /* else the socket is gone and #lost reconnects */
                return;
            }

            const s = sessionFromInitialize(
                { session: this.#session, lastSeq: this.#lastSeq }, result);

            this.#session = s.session;
            this.#lastSeq = s.lastSeq;
            this.#role = s.role;

            clearTimeout(this.#handshakeTimer);
            this.#attempt = 0;
            this.#notify(ws, 'notifications/initialized');

            this.#state = 'open';
            this.#status({ resumed: s.resumed });
            this.#settleWaiters(null);
        });
    }

    #receive(ws, data) {
        let msg;

        if (typeof data !== 'string') {
            this.#emit('error', junk('binary message ignored', data));
            return;
        }

        try {
            msg = JSON.parse(data);
        } catch {
            this.#emit('error', junk('message is not JSON', data));
            return;
        }

        if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
            this.#emit('error', junk('message is not a JSON-RPC object', data));
            return;
        }

        if (typeof msg.method === 'string') {
            if ('id' in msg) {
                this.#answer(ws, msg);
            } else if (msg.method.startsWith(EVENT_PREFIX)) {
                this.#event(msg, data);
            }
            /* other notifications (logging) carry nothing for us */
            return;
        }

        if ('id' in msg && ('result' in msg || 'error' in msg)) {
            this.#response(msg, data);
            return;
        }

        this.#emit('error', junk('message is not a JSON-RPC message', data));
    }

    #response(msg, data) {
        const entry = this.#pending.get(msg.id);

        if (entry === undefined) {
            if (msg.id === null) {
                this.#emit('error', junk('server could not read a request: '
                                         + (msg.error?.message ?? ''), data));
            }
            /* else an answer that came after its timeout */
            return;
        }

        this.#pending.delete(msg.id);
        clearTimeout(entry.timer);

        if ('error' in msg) {
            entry.settle(rpcError(msg.error));
        } else {
            entry.settle(null, msg.result);
        }
    }

    #event(msg, data) {
        const params = msg.params;

        if (params === null || typeof params !== 'object'
            || Array.isArray(params))
        {
            this.#emit('error', junk('event without params object', data));
            return;
        }

        const type = msg.method.slice(EVENT_PREFIX.length);
        const verdict = sequenceEvent(this.#lastSeq, type, params.seq);

        this.#lastSeq = verdict.lastSeq;
        if (verdict.deliver) {
            this.#emit('event', params);
        }
    }

    // MCP servers may ping their clients; anything else we do not offer.
    #answer(ws, msg) {
        const reply = msg.method === 'ping'
            ? { jsonrpc: '2.0', id: msg.id, result: {} }
            : { jsonrpc: '2.0', id: msg.id,
                error: { code: -32601, message: 'Method not found' } };

        try {
            ws.send(JSON.stringify(reply));
        } catch {
            /* the close that follows does the cleanup */
        }
    }

    #send(ws, method, params, timeout, settle) {
        const id = this.#nextId++;
        const entry = { settle, timer: null };
        const msg = { jsonrpc: '2.0', id, method };

        if (params !== undefined) {
            msg.params = params;
        }

        if (Number.isFinite(timeout) && timeout > 0) {
            entry.timer = setTimeout(() => {
                this.#pending.delete(id);
                settle(new Error(
                    `tidal: ${method}: no answer in ${timeout} ms`));
            }, timeout);
        }

        this.#pending.set(id, entry);

        try {
            ws.send(JSON.stringify(msg));
        } catch (err) {
            this.#pending.delete(id);
            clearTimeout(entry.timer);
            settle(err);
        }
    }

    #notify(ws, method) {
        try {
            ws.send(JSON.stringify({ jsonrpc: '2.0', method }));
        } catch {
            /* the close that follows does the cleanup */
        }
    }

    // Every way a socket ends except close() and #fail() comes here, once.
    #lost(ws, code, reason) {
        if (ws !== this.#ws) {
            return;
        }

        this.#drop();
        this.#rejectPending(new Error('tidal: connection lost'
                                      + (reason ? `: ${reason}` : '')));

        const delay = backoffDelay(this.#attempt, this.#options);

        this.#attempt++;
        this.#state = 'closed';
        /* armed before the status: a listener may call close() */
        this.#reconnectTimer = setTimeout(() => this.#open(delay), delay);
        this.#status({ delay, code, reason });
    }

    /*
     * A 403 will not change by retrying.  The answer may come after the
     * next attempt began; it ends that one too, unless it got through.
     */
    async #askWhy() {
        let res, text;

        if (typeof this.#fetch !== 'function') {
            return;
        }

        try {
            res = await this.#fetch(String(this.#url).replace(/^ws/i, 'http'),
                                    { cache: 'no-store' });
            if (res.status !== 403) {
                return;
            }
            text = (await res.text()).split('\n')[0];
        } catch {
            return;               /* down, or a reply the page cannot read */
        }

        if (this.#stopped || this.#state === 'open') {
            return;
        }

        const err = new Error('tidal: the server refused this client (403)'
                              + (text ? `: ${text}` : ''));

        err.status = 403;
        this.#fail(err);
    }

    #fail(err) {
        this.#emit('error', err);
        this.#shutdown(err);
    }

    #shutdown(err) {
        this.#stopped = true;
        clearTimeout(this.#reconnectTimer);
        this.#reconnectTimer = null;
        this.#drop(1000);
        this.#rejectPending(err);
        this.#state = 'closed';
        this.#status({ reason: err.message });
        this.#settleWaiters(err);
    }

    #drop(code) {
        const ws = this.#ws;

        this.#ws = null;
        clearTimeout(this.#handshakeTimer);
        if (ws === null) {
            return;
        }

        /* after a timeout the socket may still be up and hold a server slot */
        try {
            ws.close(code);
        } catch {
            /* already closing */
        }
    }

    #rejectPending(err) {
        const pending = [...this.#pending.values()];

        this.#pending.clear();
        for (const entry of pending) {
            clearTimeout(entry.timer);
            entry.settle(err);
        }
    }

    #settleWaiters(err) {
        const waiters = this.#waiters;

        this.#waiters = [];
        for (const w of waiters) {
            if (err) {
                w.reject(err);
            } else {
                w.resolve();
            }
        }
    }

    #status(fields) {
        this.#emit('status', {
            state: this.#state,
            attempt: this.#attempt,
            delay: null,
            resumed: null,
            session: this.#session,
            lastSeq: this.#lastSeq,
            code: null,
            reason: null,
            ...fields,
        });
    }

    #emit(type, detail) {
        this.dispatchEvent(new DetailEvent(type, { detail }));
    }
}
