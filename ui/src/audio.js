// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The room's sound in the browser: the clock offset to the server (NTP
// style, over the JSON-RPC request tidal/clock), a synthesized kit for the
// common SuperDirt names and sample maps in the strudel.json form.

export const wallNow = () => performance.timeOrigin + performance.now();


// offset = server - client, from the sample with the smallest round trip.
// request(): a promise of {receive, transmit} (server Unix ms).  Returns
// {offset, rtt, supported}; a server without tidal/clock (-32601) gives 0.
export async function measureOffset(request, samples = 8) {
    let best = null;

    for (let i = 0; i < samples; i++) {
        const t0 = wallNow();
        let r;
        try {
            r = await request();
        } catch (e) {
            if (e.code === -32601) {
                return { offset: 0, rtt: null, supported: false };
            }
            throw e;
        }
        const t3 = wallNow();
        if (!Number.isFinite(r?.receive) || !Number.isFinite(r?.transmit)) {
            return { offset: 0, rtt: null, supported: false };
        }
        const rtt = (t3 - t0) - (r.transmit - r.receive);
        const offset = ((r.receive - t0) + (r.transmit - t3)) / 2;
        if (!best || rtt < best.rtt) {
            best = { offset, rtt, supported: true };
        }
    }
    return best;
}


// ---- the kit ---------------------------------------------------------------

function noiseBuffer(ctx, seconds = 1) {
    const b = ctx.createBuffer(1, Math.ceil(ctx.sampleRate * seconds), ctx.sampleRate);
    const d = b.getChannelData(0);
    for (let i = 0; i < d.length; i++) {
        d[i] = Math.random() * 2 - 1;
    }
    return b;
}

function env(ctx, out, t, { attack = 0.002, decay = 0.2, peak = 1 }) {
    const g = ctx.createGain();
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(peak, t + attack);
    g.gain.exponentialRampToValueAtTime(0.0001, t + attack + decay);
    g.connect(out);
    return { node: g, end: t + attack + decay + 0.01 };
}

function osc(ctx, type, freq, t, end, out) {
    const o = ctx.createOscillator();
    o.type = type;
    o.frequency.setValueAtTime(freq, t);
    o.connect(out);
    o.start(t);
    o.stop(end);
    return o;
}

function noise(ctx, kit, t, end, out, filter) {
    const s = ctx.createBufferSource();
    s.buffer = kit.noise;
    const f = ctx.createBiquadFilter();
    f.type = filter.type;
    f.frequency.value = filter.freq;
    if (filter.q) {
        f.Q.value = filter.q;
    }
    s.connect(f).connect(out);
    s.start(t);
    s.stop(end);
    return s;
}

const note = (n, base) => base * 2 ** (n / 12);

// name -> (ctx, kit, t, out, {n, speed}) -> voice end time
const KIT = {
    bd(ctx, kit, t, out, { speed }) {
        const e = env(ctx, out, t, { decay: 0.45 });
        const o = osc(ctx, 'sine', 160 * speed, t, e.end, e.node);
        o.frequency.exponentialRampToValueAtTime(45 * speed, t + 0.12);
        return e.end;
    },
    sn(ctx, kit, t, out, { speed }) {
        const e = env(ctx, out, t, { decay: 0.2, peak: 0.8 });
        noise(ctx, kit, t, e.end, e.node, { type: 'highpass', freq: 1200 * speed });
        const e2 = env(ctx, out, t, { decay: 0.1, peak: 0.5 });
        osc(ctx, 'triangle', 185 * speed, t, e2.end, e2.node);
        return e.end;
    },
    hh(ctx, kit, t, out, { speed }) {
        const e = env(ctx, out, t, { decay: 0.05, peak: 0.5 });
        noise(ctx, kit, t, e.end, e.node, { type: 'highpass', freq: 7000 * speed });
        return e.end;
    },
    oh(ctx, kit, t, out, { speed }) {
        const e = env(ctx, out, t, { decay: 0.35, peak: 0.4 });
        noise(ctx, kit, t, e.end, e.node, { type: 'highpass', freq: 6000 * speed });
        return e.end;
    },
    cp(ctx, kit, t, out, { speed }) {
        let end = t;
        for (const dt of [0, 0.012, 0.024]) {
            const e = env(ctx, out, t + dt, { decay: dt === 0.024 ? 0.18 : 0.01, peak: 0.7 });
            noise(ctx, kit, t + dt, e.end, e.node, { type: 'bandpass', freq: 1500 * speed, q: 1.5 });
            end = Math.max(end, e.end);
        }
        return end;
    },
    arpy(ctx, kit, t, out, { n, speed }) {
        const e = env(ctx, out, t, { decay: 0.4, peak: 0.5 });
        osc(ctx, 'sawtooth', note(n, 440) * speed, t, e.end, e.node);
        return e.end;
    },
    bass(ctx, kit, t, out, { n, speed }) {
        const e = env(ctx, out, t, { decay: 0.5, peak: 0.7 });
        const f = ctx.createBiquadFilter();
        f.type = 'lowpass';
        f.frequency.value = 600;
        f.connect(e.node);
        osc(ctx, 'sawtooth', note(n, 55) * speed, t, e.end, f);
        return e.end;
    },
    superpiano(ctx, kit, t, out, { n, speed }) {
        const e = env(ctx, out, t, { decay: 1.2, peak: 0.4 });
        osc(ctx, 'triangle', note(n, 261.63) * speed, t, e.end, e.node);
        osc(ctx, 'sine', note(n, 523.25) * speed, t, e.end, e.node);
        return e.end;
    },
    click(ctx, kit, t, out, { speed }) {
        const e = env(ctx, out, t, { attack: 0.001, decay: 0.015, peak: 0.6 });
        osc(ctx, 'square', 1000 * speed, t, e.end, e.node);
        return e.end;
    },
};
KIT.drum = KIT.bd;
KIT.kick = KIT.bd;
KIT.sd = KIT.sn;
KIT.hc = KIT.hh;
KIT.ho = KIT.oh;
KIT.clap = KIT.cp;
KIT.superpiano = KIT.superpiano;
KIT.pluck = KIT.arpy;
KIT.jvbass = KIT.bass;

export const KIT_NAMES = Object.keys(KIT);


// ---- the player ------------------------------------------------------------

export class Player {
    constructor() {
        this.ctx = null;
        this.offset = 0;          // server - client, ms
        this.samples = {};        // name -> [URLs]
        this.buffers = new Map(); // URL -> AudioBuffer | Promise | null
        this.voices = [];         // the last scheduled voices (tests look)
        this.late = 0;
        this.played = 0;
    }

    get running() {
        return this.ctx !== null && this.ctx.state === 'running';
    }

    async start() {
        if (!this.ctx) {
            this.ctx = new AudioContext({ latencyHint: 'interactive' });
            this.kit = { noise: noiseBuffer(this.ctx) };
            this.master = this.ctx.createGain();
            this.master.gain.value = 0.8;
            this.analyser = this.ctx.createAnalyser();
            this.analyser.fftSize = 2048;
            this.master.connect(this.analyser);
            this.analyser.connect(this.ctx.destination);
        }
        await this.ctx.resume();
    }

    async stop() {
        if (this.ctx) {
            await this.ctx.suspend();
        }
    }

    // the peak of what plays now, 0..1
    level() {
        if (!this.analyser) {
            return 0;
        }
        const d = new Float32Array(this.analyser.fftSize);
        this.analyser.getFloatTimeDomainData(d);
        let peak = 0;
        for (const v of d) {
            peak = Math.max(peak, Math.abs(v));
        }
        return peak;
    }

    // a strudel.json map: {"_base": URL, name: [files] | file | {note: file}}
    async loadMap(url) {
        const res = await fetch(url);
        if (!res.ok) {
            throw new Error(`${url}: ${res.status}`);
        }
        const map = await res.json();
        const base = new URL(map._base ?? './', new URL(url, location.href)).href;
        let names = 0;
        for (const [name, v] of Object.entries(map)) {
            if (name.startsWith('_')) {
                continue;
            }
            const files = Array.isArray(v) ? v : typeof v === 'string' ? [v]
                : v && typeof v === 'object' ? Object.values(v).flat() : [];
            this.samples[name] = files.map((f) => new URL(f, base).href);
            names++;
        }
        return names;
    }

    buffer(url) {
        const b = this.buffers.get(url);
        if (b === undefined) {
            this.buffers.set(url, fetch(url).then((r) => r.arrayBuffer())
                .then((a) => this.ctx.decodeAudioData(a))
                .then((buf) => { this.buffers.set(url, buf); return buf; })
                .catch(() => { this.buffers.set(url, null); return null; }));
            return null;
        }
        return b instanceof AudioBuffer ? b : null;
    }

    // the audio time of a server Unix time (ms)
    audioTime(eventMs) {
        return this.ctx.currentTime + (eventMs - this.offset - wallNow()) / 1000;
    }

    // one sound event {time (Unix s), channel, params}; returns the audio
    // time it starts at, or null when nothing could play
    play(ev) {
        if (!this.running) {
            return null;
        }
        const p = ev.params ?? {};
        const eventMs = ev.time * 1000;

        // one reading of both clocks: the voice records what it was
        // scheduled from, not clocks read later, after its nodes
        const now = this.ctx.currentTime;
        const wall = wallNow();
        let t = now + (eventMs - this.offset - wall) / 1000;
        if (t < now) {
            this.late++;
            if (t < now - 0.2) {
                return null;      // too late to be part of the music
            }
            t = now;
        }
        const ctx = this.ctx;
        const num = (v, d) => (Number.isFinite(Number(v)) ? Number(v) : d);
        const gain = num(p.gain, 1);
        const speed = num(p.speed, 1);
        const n = num(p.n ?? p.note, 0);
        const pan = Math.min(1, Math.max(0, num(p.pan, 0.5)));
        const s = String(p.s ?? p.sound ?? 'click').split(':')[0];

        // chain: voice -> [cutoff] -> gain -> pan -> master
        const panner = ctx.createStereoPanner();
        panner.pan.value = pan * 2 - 1;
        panner.connect(this.master);
        const g = ctx.createGain();
        g.gain.value = Math.min(gain ** 4, 4) * 0.8;    // SuperDirt's curve, roughly
        g.connect(panner);
        let out = g;
        if (p.cutoff !== undefined && num(p.cutoff, 0) > 0) {
            const f = ctx.createBiquadFilter();
            f.type = 'lowpass';
            f.frequency.value = Math.min(num(p.cutoff, 20000), ctx.sampleRate / 2);
            f.Q.value = num(p.resonance, 0) * 20;
            f.connect(g);
            out = f;
        }

        let kind = 'synth';
        const files = this.samples[s];
        const buf = files?.length ? this.buffer(files[((n % files.length) + files.length) % files.length | 0]) : null;
        if (buf) {
            const src = ctx.createBufferSource();
            src.buffer = buf;
            src.playbackRate.value = Math.abs(speed) || 1;
            src.connect(out);
            src.start(t);
            kind = 'sample';
        } else {
            (KIT[s] ?? KIT.click)(ctx, this.kit, t, out, { n, speed: Math.abs(speed) || 1 });
            if (!KIT[s]) {
                kind = 'click';
            }
        }
        this.played++;
        const ts = ctx.getOutputTimestamp?.() ?? {};
        this.voices.push({
            s, kind, channel: ev.channel, eventMs, start: t,
            currentTime: now, wall, offset: this.offset,
            outContextTime: ts.contextTime, outPerformanceTime: ts.performanceTime,
        });
        if (this.voices.length > 2000) {
            this.voices.splice(0, 1000);
        }
        return t;
    }
}
