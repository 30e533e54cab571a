// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// OSC 1.0 over UDP, enough to stand in for SuperDirt: a decoder for the
// bundles Tidal sends (#bundle, NTP timetag, /dirt/play messages with
// string, int and float arguments) and a listener on a free loopback port
// that keeps every /dirt/play event with its timetag and arrival time.

import dgram from 'node:dgram';

// seconds between 1900-01-01 (NTP) and 1970-01-01 (Unix)
const NTP_EPOCH = 2208988800;

function readString(buf, off) {
    const end = buf.indexOf(0, off);
    if (end === -1) {
        throw new Error(`OSC string at ${off} is not terminated`);
    }
    const s = buf.toString('utf8', off, end);
    return { value: s, next: off + Math.ceil((end - off + 1) / 4) * 4 };
}

function decodeMessage(buf) {
    const address = readString(buf, 0);
    if (!address.value.startsWith('/')) {
        throw new Error(`OSC address ${JSON.stringify(address.value)} does not start with /`);
    }
    let off = address.next;
    let tags = ',';
    if (off < buf.length) {
        const t = readString(buf, off);
        tags = t.value;
        off = t.next;
    }
    if (!tags.startsWith(',')) {
        throw new Error(`OSC type tags ${JSON.stringify(tags)} do not start with ,`);
    }
    const args = [];
    for (const tag of tags.slice(1)) {
        switch (tag) {
        case 'i': args.push(buf.readInt32BE(off)); off += 4; break;
        case 'f': args.push(buf.readFloatBE(off)); off += 4; break;
        case 'd': args.push(buf.readDoubleBE(off)); off += 8; break;
        case 'h': args.push(Number(buf.readBigInt64BE(off))); off += 8; break;
        case 's':
        case 'S': {
            const s = readString(buf, off);
            args.push(s.value);
            off = s.next;
            break;
        }
        case 'b': {
            const n = buf.readInt32BE(off);
            args.push(buf.subarray(off + 4, off + 4 + n));
            off += 4 + Math.ceil(n / 4) * 4;
            break;
        }
        case 'T': args.push(true); break;
        case 'F': args.push(false); break;
        case 'N': args.push(null); break;
        default:
            throw new Error(`OSC type tag ${tag} is not supported`);
        }
    }
    if (off > buf.length) {
        throw new Error('OSC message is shorter than its arguments');
    }
    return { address: address.value, args };
}

// NTP 32.32 fixed point -> milliseconds since the Unix epoch; 1 means
// "immediately"
export function timetagToMs(seconds, fraction) {
    if (seconds === 0 && fraction === 1) {
        return null;
    }
    return (seconds - NTP_EPOCH) * 1000 + (fraction / 2 ** 32) * 1000;
}

// A packet -> its messages, each with the timetag (ms, or null) of the
// innermost bundle holding it.
export function decodePacket(buf, timetag = null) {
    if (buf.length >= 16 && buf.toString('latin1', 0, 8) === '#bundle\0') {
        const tt = timetagToMs(buf.readUInt32BE(8), buf.readUInt32BE(12));
        const out = [];
        let off = 16;
        while (off < buf.length) {
            const n = buf.readInt32BE(off);
            if (n <= 0 || off + 4 + n > buf.length) {
                throw new Error(`OSC bundle element of ${n} bytes at ${off} does not fit`);
            }
            out.push(...decodePacket(buf.subarray(off + 4, off + 4 + n), tt));
            off += 4 + n;
        }
        return out;
    }
    return [{ ...decodeMessage(buf), timetag }];
}

// /dirt/play's arguments are name, value pairs
export function playParams(args) {
    const o = {};
    for (let i = 0; i + 1 < args.length; i += 2) {
        o[args[i]] = args[i + 1];
    }
    return o;
}


// A UDP listener on 127.0.0.1 standing in for SuperDirt.  events holds
// every /dirt/play as { ...params, timetag, arrival } (ms since the
// epoch); bad packets are kept in errors.
export class DirtListener {
    constructor() {
        this.socket = dgram.createSocket('udp4');
        this.events = [];
        this.others = [];
        this.errors = [];
        this.waiters = new Set();
        this.socket.on('message', (msg) => this._packet(msg));
    }

    static async start() {
        const d = new DirtListener();
        await new Promise((resolve, reject) => {
            d.socket.once('error', reject);
            d.socket.bind(0, '127.0.0.1', resolve);
        });
        d.port = d.socket.address().port;
        return d;
    }

    _packet(msg) {
        const arrival = Date.now();
        let messages;
        try {
            messages = decodePacket(msg);
        } catch (e) {
            this.errors.push(e.message);
            return;
        }
        for (const m of messages) {
            if (m.address === '/dirt/play') {
                this.events.push({ ...playParams(m.args), timetag: m.timetag, arrival });
            } else {
                this.others.push({ ...m, arrival });
            }
        }
        for (const w of [...this.waiters]) {
            w.check();
        }
    }

    // resolves with the first event e (arrived at or after since, ms)
    // for which pred(e) holds; rejects after timeoutMs
    waitFor(pred, { since = 0, timeoutMs = 10000, what = 'an OSC event' } = {}) {
        return new Promise((resolve, reject) => {
            const w = {
                check: () => {
                    const e = this.events.find((ev) => ev.arrival >= since && pred(ev));
                    if (e) {
                        clearTimeout(w.timer);
                        this.waiters.delete(w);
                        resolve(e);
                    }
                },
            };
            w.timer = setTimeout(() => {
                this.waiters.delete(w);
                const last = this.events.slice(-3).map((e) => JSON.stringify(e)).join('\n  ');
                reject(new Error(`no ${what} within ${timeoutMs} ms `
                    + `(${this.events.length} events, last:\n  ${last || 'none'})`));
            }, timeoutMs);
            this.waiters.add(w);
            w.check();
        });
    }

    // the events that arrived at or after since
    after(since) {
        return this.events.filter((e) => e.arrival >= since);
    }

    close() {
        for (const w of this.waiters) {
            clearTimeout(w.timer);
        }
        this.waiters.clear();
        try {
            this.socket.close();
        } catch {
            // already closed
        }
    }
}
