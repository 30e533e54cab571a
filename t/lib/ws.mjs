// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// WebSocket on the wire: raw HTTP and handshake over node:net, a builder for
// any client frame (valid or not), a reader that checks every server frame
// and every JSON-RPC message in it, and a thin wrapper around the 'ws' client.

import crypto from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';
import { SLOW } from './nginx.mjs';

export const OP = {
    CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa,
};

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const DEFAULT_TIMEOUT = 5000 * SLOW;

export const LATEST_VERSION = '2025-11-25';

// what a client asks for to get notifications/tidal/* (docs/collaboration.md)
export const EVENTS_CAPABILITIES = { experimental: { 'tidal/events': {} } };

// the tests' clients watch the room's events, so they ask for them
export const INIT_PARAMS = {
    protocolVersion: LATEST_VERSION,
    capabilities: EVENTS_CAPABILITIES,
    clientInfo: { name: 'ngx_tidal-tests', version: '0.0.0' },
};

// a generic MCP client: standard notifications only
export const GENERIC_INIT_PARAMS = { ...INIT_PARAMS, capabilities: {} };


export function acceptFor(key) {
    return crypto.createHash('sha1').update(key + GUID).digest('base64');
}


export function newKey() {
    return crypto.randomBytes(16).toString('base64');
}


// -- JSON-RPC validation ---------------------------------------------------

// The official SDK's schema, applied to every message the server sends.
// One allowance: JSON-RPC 2.0 (section 5) requires "id": null on an error
// whose request id could not be read, while the SDK's schema (following MCP
// 2025-11-25) only knows an absent id there; both spellings are accepted.
export function validateJsonRpc(msg) {
    let candidate = msg;
    if (msg && typeof msg === 'object' && !Array.isArray(msg)
            && msg.id === null && 'error' in msg && !('result' in msg)
            && !('method' in msg)) {
        candidate = { ...msg };
        delete candidate.id;
    }
    const r = JSONRPCMessageSchema.safeParse(candidate);
    if (!r.success) {
        throw new Error(`server sent an invalid JSON-RPC message: ${JSON.stringify(msg).slice(0, 300)}\n`
            + `${JSON.stringify(r.error.issues).slice(0, 600)}`);
    }
    return msg;
}


const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// Parses one text message from the server and validates it.
export function parseServerMessage(bytes) {
    let text;
    try {
        text = strictUtf8.decode(bytes);
    } catch {
        throw new Error('server sent a text message that is not valid UTF-8');
    }
    let json;
    try {
        json = JSON.parse(text);
    } catch {
        throw new Error(`server sent a text message that is not JSON: ${text.slice(0, 200)}`);
    }
    return { text, json: validateJsonRpc(json) };
}


// -- a queue of events with timed waits ------------------------------------

class EventQueue {
    constructor(describe) {
        this.items = [];
        this.waiters = [];
        this.failure = null;
        this.describe = describe;
    }

    push(item) {
        const w = this.waiters.shift();
        if (w) {
            w.resolve(item);
        } else {
            this.items.push(item);
        }
    }

    fail(err) {
        if (!this.failure) {
            this.failure = err;
        }
        for (const w of this.waiters.splice(0)) {
            w.reject(err);
        }
    }

    shift(timeout = DEFAULT_TIMEOUT, what = 'an event') {
        if (this.items.length) {
            return Promise.resolve(this.items.shift());
        }
        if (this.failure) {
            return Promise.reject(this.failure);
        }
        return new Promise((resolve, reject) => {
            const w = {};
            const timer = setTimeout(() => {
                this.waiters.splice(this.waiters.indexOf(w), 1);
                reject(new Error(`timed out after ${timeout} ms waiting for ${what} (${this.describe()})`));
            }, timeout);
            w.resolve = (v) => { clearTimeout(timer); resolve(v); };
            w.reject = (e) => { clearTimeout(timer); reject(e); };
            this.waiters.push(w);
        });
    }
}


function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}


// -- client frames ---------------------------------------------------------

function toBuffer(payload) {
    if (payload === undefined || payload === null) {
        return Buffer.alloc(0);
    }
    if (typeof payload === 'string') {
        return Buffer.from(payload, 'utf8');
    }
    if (typeof payload === 'object' && !Buffer.isBuffer(payload) && !(payload instanceof Uint8Array)) {
        return Buffer.from(JSON.stringify(payload), 'utf8');
    }
    return Buffer.from(payload);
}


export function maskBytes(bytes, key, offset = 0) {
    const out = Buffer.allocUnsafe(bytes.length);
    for (let i = 0; i < bytes.length; i++) {
        out[i] = bytes[i] ^ key[(i + offset) & 3];
    }
    return out;
}


// Builds one client frame, valid or deliberately not.
//   fin (true), rsv (0..7: RSV1=4, RSV2=2, RSV3=1), mask (true),
//   maskKey (random), length (declared payload length; default the real one),
//   lengthBytes (0, 2 or 8 extended length bytes; default the minimal form).
// Returns { bytes, headerLength }: slice bytes to send a frame in parts.
export function buildFrame(opcode, payload, opts = {}) {
    const {
        fin = true, rsv = 0, mask = true,
        maskKey = crypto.randomBytes(4),
    } = opts;
    const data = toBuffer(payload);
    const length = opts.length ?? data.length;
    let lengthBytes = opts.lengthBytes;
    if (lengthBytes === undefined) {
        lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
    }
    const head = [((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f))];
    const maskBit = mask ? 0x80 : 0;
    let ext = Buffer.alloc(0);
    if (lengthBytes === 0) {
        head.push(maskBit | length);
    } else if (lengthBytes === 2) {
        head.push(maskBit | 126);
        ext = Buffer.alloc(2);
        ext.writeUInt16BE(length);
    } else {
        head.push(maskBit | 127);
        ext = Buffer.alloc(8);
        ext.writeBigUInt64BE(BigInt(length));
    }
    const parts = [Buffer.from(head), ext];
    if (mask) {
        parts.push(Buffer.from(maskKey));
        parts.push(maskBytes(data, maskKey));
    } else {
        parts.push(data);
    }
    const headerLength = 2 + ext.length + (mask ? 4 : 0);
    return { bytes: Buffer.concat(parts), headerLength };
}


export function frame(opcode, payload, opts) {
    return buildFrame(opcode, payload, opts).bytes;
}

// the header and the first n payload bytes of a frame
export function framePrefix(opcode, payload, n, opts) {
    const f = buildFrame(opcode, payload, opts);
    return f.bytes.subarray(0, f.headerLength + n);
}

export const textFrame = (payload, opts) => frame(OP.TEXT, payload, opts);
export const contFrame = (payload, opts) => frame(OP.CONT, payload, opts);
export const binaryFrame = (payload, opts) => frame(OP.BINARY, payload, opts);
export const pingFrame = (payload, opts) => frame(OP.PING, payload, opts);
export const pongFrame = (payload, opts) => frame(OP.PONG, payload, opts);

export function closePayload(code, reason = '') {
    if (code === undefined) {
        return Buffer.alloc(0);
    }
    const r = Buffer.from(reason, 'utf8');
    const b = Buffer.alloc(2 + r.length);
    b.writeUInt16BE(code);
    r.copy(b, 2);
    return b;
}

export const closeFrame = (code, reason, opts) => frame(OP.CLOSE, closePayload(code, reason), opts);


export function rpc(method, params, id) {
    const m = { jsonrpc: '2.0' };
    if (id !== undefined) {
        m.id = id;
    }
    m.method = method;
    if (params !== undefined) {
        m.params = params;
    }
    return JSON.stringify(m);
}


// -- server frames ---------------------------------------------------------

const VALID_SERVER_CLOSE = (code) => (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011)
    || (code >= 3000 && code <= 4999);

// Parses the server's frames from a socket into events:
//   { type: 'text', text, json } | { type: 'binary', data } |
//   { type: 'ping'|'pong', data } | { type: 'close', code, reason, payload } |
//   { type: 'eof' } when TCP closed.
// Anything RFC 6455 forbids a server to send (a masked frame, RSV bits, a
// reserved opcode, a bad control frame, frames after close, invalid UTF-8,
// a message that is not valid JSON-RPC) fails the reader.
export class FrameReader {
    constructor(socket, initial = Buffer.alloc(0)) {
        this.socket = socket;
        this.buf = Buffer.alloc(0);
        this.events = new EventQueue(() => `${this.log.length} events so far: ${this.summary()}`);
        this.log = [];
        this.fragments = null;
        this.fragOpcode = 0;
        this.closeSeen = false;
        this.eof = false;
        this.tcpClosed = new Promise((resolve) => { this.resolveTcpClosed = resolve; });
        this.resetSeen = false;

        socket.on('data', (d) => this.onData(d));
        socket.on('end', () => this.onEnd());
        socket.on('close', () => this.onEnd());
        socket.on('error', (e) => {
            if (e.code === 'ECONNRESET' || e.code === 'EPIPE') {
                this.resetSeen = true;
                this.onEnd();
            } else {
                this.events.fail(e);
            }
        });
        if (initial.length) {
            this.onData(initial);
        }
    }

    summary() {
        return this.log.slice(-6).map((e) => (e.type === 'close' ? `close(${e.code})`
            : e.type === 'text' ? `text(${e.text.slice(0, 60)})` : e.type)).join(', ');
    }

    violation(msg) {
        this.events.fail(new Error(`server protocol violation: ${msg}`));
        this.buf = Buffer.alloc(0);
    }

    emit(ev) {
        this.log.push(ev);
        this.events.push(ev);
    }

    onEnd() {
        if (!this.eof) {
            this.eof = true;
            if (this.buf.length && !this.events.failure) {
                this.violation(`TCP closed in the middle of a frame (${this.buf.length} bytes left)`);
            }
            this.emit({ type: 'eof' });
            this.resolveTcpClosed(true);
        }
    }

    onData(d) {
        if (this.events.failure) {
            return;
        }
        this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
        for (;;) {
            if (this.buf.length < 2) {
                return;
            }
            const b0 = this.buf[0];
            const b1 = this.buf[1];
            const fin = (b0 & 0x80) !== 0;
            const rsv = (b0 >> 4) & 7;
            const opcode = b0 & 0x0f;
            const masked = (b1 & 0x80) !== 0;
            let len = b1 & 0x7f;
            let off = 2;
            if (len === 126) {
                if (this.buf.length < 4) {
                    return;
                }
                len = this.buf.readUInt16BE(2);
                off = 4;
            } else if (len === 127) {
                if (this.buf.length < 10) {
                    return;
                }
                const big = this.buf.readBigUInt64BE(2);
                if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
                    this.violation(`absurd frame length ${big}`);
                    return;
                }
                len = Number(big);
                off = 10;
            }
            if (masked) {
                this.violation('masked server frame');
                return;
            }
            if (rsv) {
                this.violation(`RSV bits ${rsv} set`);
                return;
            }
            if (this.buf.length < off + len) {
                return;
            }
            const payload = Buffer.from(this.buf.subarray(off, off + len));
            this.buf = this.buf.subarray(off + len);
            if (this.closeSeen) {
                this.violation(`frame (opcode ${opcode}) after the close frame`);
                return;
            }
            try {
                this.onFrame(fin, opcode, payload);
            } catch (e) {
                this.events.fail(e);
                return;
            }
        }
    }

    onFrame(fin, opcode, payload) {
        if (opcode >= 0x8) {
            if (!fin || payload.length > 125) {
                throw new Error(`server protocol violation: control frame ${opcode} fin=${fin} len=${payload.length}`);
            }
        }
        switch (opcode) {
        case OP.CONT:
            if (!this.fragments) {
                throw new Error('server protocol violation: continuation without a message');
            }
            this.fragments.push(payload);
            if (fin) {
                this.message(this.fragOpcode, Buffer.concat(this.fragments));
                this.fragments = null;
            }
            return;
        case OP.TEXT:
        case OP.BINARY:
            if (this.fragments) {
                throw new Error('server protocol violation: new message inside a fragmented one');
            }
            if (fin) {
                this.message(opcode, payload);
            } else {
                this.fragments = [payload];
                this.fragOpcode = opcode;
            }
            return;
        case OP.PING:
            this.emit({ type: 'ping', data: payload, at: Date.now() });
            return;
        case OP.PONG:
            this.emit({ type: 'pong', data: payload });
            return;
        case OP.CLOSE: {
            this.closeSeen = true;
            if (payload.length === 1) {
                throw new Error('server protocol violation: 1-byte close payload');
            }
            let code = null;
            let reason = '';
            if (payload.length >= 2) {
                code = payload.readUInt16BE(0);
                if (!VALID_SERVER_CLOSE(code)) {
                    throw new Error(`server protocol violation: close code ${code}`);
                }
                try {
                    reason = strictUtf8.decode(payload.subarray(2));
                } catch {
                    throw new Error('server protocol violation: close reason is not UTF-8');
                }
            }
            this.emit({ type: 'close', code, reason, payload, at: Date.now() });
            return;
        }
        default:
            throw new Error(`server protocol violation: reserved opcode ${opcode}`);
        }
    }

    message(opcode, payload) {
        if (opcode === OP.BINARY) {
            this.emit({ type: 'binary', data: payload });
            return;
        }
        const { text, json } = parseServerMessage(payload);
        this.emit({ type: 'text', text, json, length: payload.length });
    }

    next(timeout = DEFAULT_TIMEOUT, what = 'a server frame') {
        return this.events.shift(timeout, what);
    }
}


// -- raw HTTP --------------------------------------------------------------

function buildRequest(method, path, headers, body) {
    let s = `${method} ${path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) {
        if (v === null || v === undefined) {
            continue;
        }
        for (const one of Array.isArray(v) ? v : [v]) {
            s += `${k}: ${one}\r\n`;
        }
    }
    s += '\r\n';
    return body ? Buffer.concat([Buffer.from(s), toBuffer(body)]) : Buffer.from(s);
}


function parseHead(head) {
    const lines = head.toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) {
        throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    }
    const headers = {};
    const rawHeaders = [];
    for (const l of lines.slice(1)) {
        if (!l) {
            continue;
        }
        const i = l.indexOf(':');
        const name = l.slice(0, i).trim().toLowerCase();
        const value = l.slice(i + 1).trim();
        rawHeaders.push([name, value]);
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    return { status: Number(m[1]), reason: m[2] || '', headers, rawHeaders };
}


function decodeChunked(buf) {
    const out = [];
    let off = 0;
    for (;;) {
        const eol = buf.indexOf('\r\n', off);
        if (eol < 0) {
            return null;
        }
        const size = parseInt(buf.subarray(off, eol).toString('latin1'), 16);
        if (Number.isNaN(size)) {
            throw new Error('bad chunk size');
        }
        if (size === 0) {
            return buf.indexOf('\r\n\r\n', eol) >= 0 || buf.length >= eol + 4 ? Buffer.concat(out) : null;
        }
        if (buf.length < eol + 2 + size + 2) {
            return null;
        }
        out.push(buf.subarray(eol + 2, eol + 2 + size));
        off = eol + 2 + size + 2;
    }
}


// Sends a request and reads the response head, then the body when the status
// is not 101.  Resolves { status, reason, headers, rawHeaders, body, socket,
// rest } where rest is whatever followed the head of a 101.
function exchange(port, request, { timeout = DEFAULT_TIMEOUT, keepOpen = false } = {}) {
    return new Promise((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.setNoDelay(true);
        let buf = Buffer.alloc(0);
        let res = null;
        let done = false;
        const timer = setTimeout(() => finish(new Error(
            `timed out after ${timeout} ms waiting for an HTTP response; got ${JSON.stringify(buf.toString('latin1').slice(0, 300))}`)),
        timeout);

        function finish(err, value) {
            if (done) {
                return;
            }
            done = true;
            clearTimeout(timer);
            socket.removeListener('data', onData);
            socket.removeListener('end', onEnd);
            socket.removeListener('error', onError);
            if (err) {
                socket.destroy();
                reject(err);
                return;
            }
            if (!keepOpen || value.status !== 101) {
                socket.destroy();
            }
            resolve(value);
        }

        function tryComplete(ended) {
            if (!res) {
                const i = buf.indexOf('\r\n\r\n');
                if (i < 0) {
                    if (ended) {
                        finish(new Error(`connection closed before a complete response head: ${JSON.stringify(buf.toString('latin1'))}`));
                    }
                    return;
                }
                try {
                    res = parseHead(buf.subarray(0, i));
                } catch (e) {
                    finish(e);
                    return;
                }
                res.head = buf.subarray(0, i + 4).toString('latin1');
                buf = buf.subarray(i + 4);
                if (res.status === 101) {
                    socket.pause();
                    finish(null, { ...res, body: Buffer.alloc(0), socket, rest: Buffer.from(buf) });
                    return;
                }
            }
            const cl = res.headers['content-length'];
            if (cl !== undefined) {
                if (buf.length >= Number(cl)) {
                    finish(null, { ...res, body: buf.subarray(0, Number(cl)), socket });
                } else if (ended) {
                    finish(new Error(`connection closed after ${buf.length} of ${cl} body bytes`));
                }
                return;
            }
            if (/chunked/i.test(res.headers['transfer-encoding'] || '')) {
                let body;
                try {
                    body = decodeChunked(buf);
                } catch (e) {
                    finish(e);
                    return;
                }
                if (body) {
                    finish(null, { ...res, body, socket });
                } else if (ended) {
                    finish(new Error('connection closed inside a chunked body'));
                }
                return;
            }
            if (res.status === 204 || res.status === 304 || ended) {
                finish(null, { ...res, body: buf, socket });
            }
        }

        function onData(d) {
            buf = Buffer.concat([buf, d]);
            tryComplete(false);
        }

        function onEnd() {
            tryComplete(true);
        }

        function onError(e) {
            if (e.code === 'ECONNRESET' && buf.length) {
                tryComplete(true);
                if (done) {
                    return;
                }
            }
            finish(e);
        }

        socket.on('data', onData);
        socket.on('end', onEnd);
        socket.on('error', onError);
        socket.on('connect', () => socket.write(request));
    });
}


// A plain HTTP/1.1 request with Connection: close.
export function httpRequest(port, { method = 'GET', path = '/', headers = {}, body, timeout } = {}) {
    const h = {
        Host: `127.0.0.1:${port}`,
        Connection: 'close',
        ...(body !== undefined ? { 'Content-Length': toBuffer(body).length } : {}),
        ...headers,
    };
    return exchange(port, buildRequest(method, path, h, body), { timeout });
}


// The opening handshake.  headers override the defaults (null drops one).
// On 101 the result has ws: a RawWs on the open connection.
export async function handshake(port, headers = {}, { path = '/mcp', method = 'GET', timeout } = {}) {
    const key = newKey();
    const h = {
        Host: `127.0.0.1:${port}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        ...headers,
    };
    const res = await exchange(port, buildRequest(method, path, h), { timeout, keepOpen: true });
    res.key = h['Sec-WebSocket-Key'];
    if (res.status === 101) {
        res.ws = new RawWs(res.socket, res.rest);
        res.socket.resume();
    }
    return res;
}


// Handshake that must succeed with subprotocol mcp (by default).
export async function connectRaw(port, { protocol = 'mcp', headers = {}, path = '/mcp' } = {}) {
    const h = { ...headers };
    if (protocol) {
        h['Sec-WebSocket-Protocol'] = protocol;
    }
    const res = await handshake(port, h, { path });
    if (res.status !== 101) {
        res.socket?.destroy();
        throw new Error(`handshake answered ${res.status}, not 101: ${res.head}${res.body}`);
    }
    if (res.headers['sec-websocket-accept'] !== acceptFor(res.key)) {
        res.ws.destroy();
        throw new Error(`bad Sec-WebSocket-Accept: ${res.headers['sec-websocket-accept']}`);
    }
    return res.ws;
}


// -- a raw client connection -----------------------------------------------

export class RawWs {
    constructor(socket, initial) {
        this.socket = socket;
        this.reader = new FrameReader(socket, initial);
        this.nextId = 1;
    }

    // resolves once the bytes are handed to the kernel
    send(bytes) {
        return new Promise((resolve, reject) => {
            if (this.socket.destroyed) {
                reject(new Error('socket already closed'));
                return;
            }
            this.socket.write(bytes, (err) => (err ? reject(err) : resolve()));
        });
    }

    sendText(text, opts) {
        return this.send(textFrame(text, opts));
    }

    next(timeout, what) {
        return this.reader.next(timeout, what);
    }

    // the next event, which must be of this type
    async expect(type, timeout) {
        const ev = await this.next(timeout, `a ${type} frame`);
        if (ev.type !== type) {
            throw new Error(`expected a ${type} frame, got ${describeEvent(ev)}`);
        }
        return ev;
    }

    // the next JSON-RPC message (server PINGs in between are answered)
    async message(timeout) {
        for (;;) {
            const ev = await this.next(timeout, 'a JSON-RPC message');
            if (ev.type === 'ping') {
                await this.send(pongFrame(ev.data));
                continue;
            }
            if (ev.type !== 'text') {
                throw new Error(`expected a text message, got ${describeEvent(ev)}`);
            }
            return ev.json;
        }
    }

    // sends a request and returns the next message, which must answer it
    async request(method, params, id = `r${this.nextId++}`) {
        await this.sendText(rpc(method, params, id));
        const m = await this.message();
        if (m.id !== id) {
            throw new Error(`expected the answer to ${method} (id ${JSON.stringify(id)}), got ${JSON.stringify(m)}`);
        }
        return m;
    }

    async initialize(params = INIT_PARAMS) {
        const r = await this.request('initialize', params);
        if (!r.result) {
            throw new Error(`initialize failed: ${JSON.stringify(r)}`);
        }
        await this.sendText(rpc('notifications/initialized'));
        return r.result;
    }

    // Reads until the server's close frame.  With reply (default) answers it
    // with a close frame echoing the code, as a client should, then waits for
    // TCP to close.  Returns { code, reason, payload, before, tcpClosed }.
    async readUntilClose({ timeout = DEFAULT_TIMEOUT, reply = true, tcpTimeout = 15000 * SLOW } = {}) {
        const before = [];
        let ev;
        for (;;) {
            ev = await this.next(timeout, 'the server\'s close frame');
            if (ev.type === 'close') {
                break;
            }
            if (ev.type === 'eof') {
                throw new Error(`TCP closed without a close frame; before it: ${before.map(describeEvent).join(', ') || 'nothing'}`);
            }
            before.push(ev);
        }
        if (reply && !this.socket.destroyed) {
            const echo = ev.code === null ? Buffer.alloc(0) : closePayload(ev.code);
            this.socket.write(frame(OP.CLOSE, echo));
        }
        const tcpClosed = await this.tcpClosedWithin(tcpTimeout);
        return { code: ev.code, reason: ev.reason, payload: ev.payload, before, tcpClosed, at: ev.at };
    }

    // true once the server has closed TCP, false if it has not within timeout
    tcpClosedWithin(timeout = 15000 * SLOW) {
        return Promise.race([
            this.reader.tcpClosed,
            new Promise((resolve) => setTimeout(() => resolve(false), timeout).unref()),
        ]);
    }

    destroy() {
        this.socket.destroy();
    }
}


export function describeEvent(ev) {
    switch (ev.type) {
    case 'text':
        return `text ${ev.text.slice(0, 200)}`;
    case 'close':
        return `close(${ev.code}${ev.reason ? ` "${ev.reason}"` : ''})`;
    case 'ping':
    case 'pong':
        return `${ev.type}(${ev.data.length} bytes)`;
    default:
        return ev.type;
    }
}


// -- the 'ws' package client, every message validated ----------------------

export class WsClient {
    constructor(ws) {
        this.ws = ws;
        this.queue = new EventQueue(() => `state ${ws.readyState}`);
        this.pings = 0;
        this.nextId = 1;
        this.closed = new Promise((resolve) => {
            ws.on('close', (code, reason) => {
                const r = { code, reason: reason.toString() };
                this.closeInfo = r;
                this.queue.fail(new Error(`connection closed (${code} ${r.reason})`));
                resolve(r);
            });
        });
        ws.on('message', (data, isBinary) => {
            if (isBinary) {
                this.queue.fail(new Error('server sent a binary message'));
                return;
            }
            try {
                this.queue.push(parseServerMessage(Buffer.from(data)).json);
            } catch (e) {
                this.queue.fail(e);
            }
        });
        ws.on('ping', () => { this.pings++; });
        ws.on('error', (e) => this.queue.fail(e));
    }

    static open(url, { protocol = 'mcp', headers, timeout = DEFAULT_TIMEOUT } = {}) {
        return withTimeout(new Promise((resolve, reject) => {
            const ws = new WebSocket(url, protocol ? [protocol] : [], { headers });
            ws.once('open', () => resolve(new WsClient(ws)));
            ws.once('error', reject);
            ws.once('unexpected-response', (req, res) => {
                reject(new Error(`handshake answered ${res.statusCode}`));
                req.destroy();
            });
        }), timeout, `WebSocket open of ${url}`);
    }

    send(msg) {
        this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
    }

    message(timeout) {
        return this.queue.shift(timeout, 'a JSON-RPC message');
    }

    // the next message that is a reply (it has an id, possibly null), so
    // server-initiated notifications cannot be mistaken for one
    async reply(timeout) {
        for (;;) {
            const m = await this.message(timeout);
            if ('id' in m || 'error' in m || 'result' in m) {
                return m;
            }
        }
    }

    async request(method, params, id = `w${this.nextId++}`) {
        this.send(rpc(method, params, id));
        const m = await this.reply();
        if (m.id !== id) {
            throw new Error(`expected the answer to ${method} (id ${JSON.stringify(id)}), got ${JSON.stringify(m)}`);
        }
        return m;
    }

    async initialize(params = INIT_PARAMS) {
        const r = await this.request('initialize', params);
        if (!r.result) {
            throw new Error(`initialize failed: ${JSON.stringify(r)}`);
        }
        this.send(rpc('notifications/initialized'));
        return r.result;
    }

    async close() {
        if (this.ws.readyState === WebSocket.OPEN) {
            this.ws.close(1000);
        }
        return withTimeout(this.closed, DEFAULT_TIMEOUT, 'the WebSocket to close');
    }

    terminate() {
        this.ws.terminate();
    }
}
