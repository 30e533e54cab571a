// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause

// The room's page: editors per channel, the room's events live, tempo,
// chat, history, metrics, and its sound in the browser.

import { TidalClient } from '../../html/tidal-client.js';
import { ChannelEditor } from './editor.js';
import { Player, measureOffset } from './audio.js';

const $ = (sel, root = document) => root.querySelector(sel);
const CHANNELS = Array.from({ length: 16 }, (_, i) => `d${i + 1}`);
const query = new URLSearchParams(location.search);

const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (k === 'class') {
            e.className = v;
        } else if (k.startsWith('on')) {
            e.addEventListener(k.slice(2), v);
        } else {
            e.setAttribute(k, v);
        }
    }
    e.append(...kids);
    return e;
};
const time = (ms) => new Date(ms ?? Date.now()).toLocaleTimeString();

// ---- connection --------------------------------------------------------------

const endpoint = query.get('mcp') || new URL('mcp', location.href).href.replace(/^http/, 'ws');
const storeKey = `ngx_tidal:${endpoint}`;
const kept = JSON.parse(sessionStorage.getItem(storeKey) || 'null') || {};
const myName = query.get('name') || localStorage.getItem('ngx_tidal:name') || 'web';

const client = new TidalClient(endpoint, {
    name: myName,
    version: '1.0.0',
    session: kept.session ?? null,
    lastSeq: kept.lastSeq ?? null,
    experimental: query.get('sound') === '0' ? {} : { 'tidal/sound': {} },
});

const ui = {
    client, channels: new Map(), events: [], role: null, player: new Player(),
    clock: { offset: 0, rtt: null, supported: null }, statuses: [],
    sounds: 0,
};
window.tidalUI = ui;
ui.onEvent = (ev) => onEvent(ev);   // tests feed synthetic events here

function keep() {
    sessionStorage.setItem(storeKey, JSON.stringify({ session: client.session, lastSeq: client.lastSeq }));
}

client.addEventListener('status', (e) => {
    const s = e.detail;
    ui.statuses.push({ ...s, at: Date.now() });
    const st = $('#status');
    st.dataset.state = s.state;
    st.textContent = s.state === 'open' ? (s.resumed ? 'connected (resumed)' : 'connected')
        : s.state === 'connecting' ? (s.attempt ? `reconnecting (try ${s.attempt + 1})` : 'connecting')
            : 'closed';
    st.title = `session ${s.session ?? '-'}, last event ${s.lastSeq ?? '-'}${s.reason ? `, ${s.reason}` : ''}`;
    if (s.state === 'open') {
        keep();
        setRole(client.role);
        if (!s.resumed) {
            loadState();     // a fresh session: what happened while away is not replayed
        }
        loadHistory();
        loadMembers();
        syncClock();
    }
});
client.addEventListener('error', (e) => notice(`client: ${e.detail.message}`));
client.addEventListener('event', (e) => {
    const ev = e.detail;
    ui.events.push(ev);
    if (ui.events.length > 5000) {
        ui.events.splice(0, 2500);
    }
    onEvent(ev);
    if (ev.type !== 'metrics' && ev.type !== 'sound') {
        keep();
    }
});

function notice(text) {
    $('#history').prepend(el('li', { class: 'notice' }, `${time()} ${text}`));
}

// ---- roles ---------------------------------------------------------------

function setRole(role) {
    ui.role = role;
    const ro = role === 'listener' || role === null;
    document.body.classList.toggle('read-only', ro);
    $('#me').textContent = `${myName} · ${role ?? 'no role'}`;
    for (const b of document.querySelectorAll('.perform')) {
        b.disabled = ro;
    }
    for (const ch of ui.channels.values()) {
        ch.editor.setReadOnly(ro);
        for (const b of ch.card.querySelectorAll('button.perform')) {
            b.disabled = ro;
        }
    }
    seen(myName, role, 'you');
}

// ---- channels ------------------------------------------------------------

function channel(name) {
    let ch = ui.channels.get(name);
    if (ch) {
        return ch;
    }
    // mute and solo toggle: the tool follows the channel's state
    const btn = (label, tool, title) => el('button', {
        class: 'perform small', type: 'button', title, 'data-tool': tool,
        onclick: () => {
            const on = (tool === 'tidal_mute' && ch.state.muted) || (tool === 'tidal_solo' && ch.state.soloed);
            callTool(on ? tool.replace('tidal_', 'tidal_un') : tool, { channel: name }, ch);
        },
    }, label);
    const card = el('article', { class: 'channel', id: `ch-${name}`, 'data-channel': name },
        el('header', {},
            el('b', { class: 'name' }, name),
            el('span', { class: 'state' }, 'silent'),
            btn('mute', 'tidal_mute', 'mute / unmute'),
            btn('solo', 'tidal_solo', 'solo / unsolo'),
            btn('silence', 'tidal_silence', 'silence this channel'),
            el('span', { class: 'last' }, '')),
        el('div', { class: 'lane', title: 'sound events as they play' }),
        el('div', { class: 'editor' }),
        el('div', { class: 'result' }));
    ch = { name, card, state: { muted: false, soloed: false, pattern: null }, lane: null };
    ch.lane = $('.lane', card);
    ch.editor = new ChannelEditor($('.editor', card), {
        readOnly: ui.role === 'listener' || ui.role === null,
        doc: `-- ${name}: Ctrl/Cmd-Enter plays the block under the cursor\n`,
        onEval: (block) => evaluate(ch, block),
    });
    for (const b of card.querySelectorAll('button.perform')) {
        b.disabled = ui.role === 'listener' || ui.role === null;
    }
    ui.channels.set(name, ch);
    const cards = $('#channels');
    const after = [...cards.children].find((c) => CHANNELS.indexOf(c.dataset.channel) > CHANNELS.indexOf(name));
    cards.insertBefore(card, after ?? null);
    fillAdd();
    return ch;
}

function fillAdd() {
    const sel = $('#add-channel');
    sel.replaceChildren(...CHANNELS.filter((c) => !ui.channels.has(c)).map((c) => el('option', { value: c }, c)));
}

function showChannel(ch, st) {
    Object.assign(ch.state, st);
    const s = ch.state;
    const playing = !!s.pattern && s.pattern !== 'silence';
    const parts = [playing ? 'playing' : 'silent'];
    if (s.muted) {
        parts.push('muted');
    }
    if (s.soloed) {
        parts.push('soloed');
    }
    $('.state', ch.card).textContent = parts.join(', ');
    ch.card.classList.toggle('muted', !!s.muted);
    ch.card.classList.toggle('soloed', !!s.soloed);
    ch.card.classList.toggle('playing', playing);
    $('[data-tool="tidal_mute"]', ch.card).textContent = s.muted ? 'unmute' : 'mute';
    $('[data-tool="tidal_solo"]', ch.card).textContent = s.soloed ? 'unsolo' : 'solo';
}

function lastChange(ch, who, ms, what) {
    const last = $('.last', ch.card);
    last.textContent = `${what} by ${who ?? '?'} at ${time(ms)}`;
    last.dataset.who = who ?? '';
}

async function callTool(name, args, ch) {
    try {
        const r = await client.call(name, args);
        const text = (r.content ?? []).map((c) => c.text).join('\n');
        if (ch) {
            $('.result', ch.card).textContent = r.isError ? text : '';
        }
        if (r.isError && name !== 'tidal_eval') {
            notice(`${name}: ${text}`);
        }
        return r;
    } catch (e) {
        notice(`${name}: ${e.message}`);
        return null;
    }
}

async function evaluate(ch, block) {
    const result = $('.result', ch.card);
    result.textContent = 'evaluating…';
    ch.card.classList.add('evaluating');
    const r = await callTool('tidal_eval', { channel: ch.name, pattern: block.text }, null);
    ch.card.classList.remove('evaluating');
    if (!r) {
        result.textContent = 'not sent: not connected';
        return;
    }
    const text = (r.content ?? []).map((c) => c.text).join('\n');
    if (r.isError) {
        const pos = ch.editor.showError(block, text);
        result.textContent = pos ? `line ${pos.line}, column ${pos.column}: ${text}` : text;
        ch.card.dataset.error = text;
    } else {
        result.textContent = '';
        delete ch.card.dataset.error;
        ch.mine = block.text;
    }
}

// ---- events ----------------------------------------------------------------

function onEvent(ev) {
    switch (ev.type) {
    case 'pattern_update': {
        const ch = channel(ev.channel);
        showChannel(ch, { pattern: ev.pattern ?? null });
        if (ev.pattern && ev.pattern !== 'silence') {
            ch.editor.setText(ev.pattern);
        }
        lastChange(ch, ev.who, ev.timestamp, ev.pattern ? 'set' : 'silenced');
        seen(ev.who);
        break;
    }
    case 'pattern_eval': {
        const ch = channel(ev.channel);
        if (!ev.ok) {
            lastChange(ch, ev.who, ev.timestamp, 'refused pattern');
        }
        addHistory(ev);
        seen(ev.who);
        break;
    }
    case 'channel_state': {
        const ch = channel(ev.channel);
        const st = ev.state ?? {};
        showChannel(ch, typeof st === 'object' ? st : {});
        lastChange(ch, ev.who, ev.timestamp, 'changed');
        addHistory(ev);
        seen(ev.who);
        break;
    }
    case 'tempo_change':
        showTempo(ev);
        addHistory(ev);
        seen(ev.who);
        break;
    case 'chat':
        $('#chat').append(el('li', { 'data-seq': ev.seq }, el('time', {}, time(ev.timestamp)), ' ', el('b', {}, ev.who), ': ', ev.text));
        $('#chat').lastChild.scrollIntoView({ block: 'nearest' });
        seen(ev.who);
        break;
    case 'error':
        addHistory(ev);
        if (ev.channel) {
            $('.result', channel(ev.channel).card).textContent = `stopped: ${ev.message}`;
        }
        break;
    case 'ghci_restarted':
        addHistory(ev);
        break;
    case 'session_restore':
        applyState(ev.channels ?? {}, ev.tempo);
        break;
    case 'metrics':
        metrics(ev);
        break;
    case 'sound':
        sound(ev);
        break;
    default:
        addHistory(ev);
    }
}

function applyState(channels, tempo) {
    for (const [name, st] of Object.entries(channels)) {
        const ch = channel(name);
        showChannel(ch, { pattern: st.pattern ?? null, muted: !!st.muted, soloed: !!st.soloed });
        if (st.pattern && st.pattern !== 'silence') {
            ch.editor.setText(st.pattern);
        }
    }
    if (tempo) {
        showTempo(tempo);
    }
}

async function loadState() {
    const r = await callTool('tidal_get_state', {});
    const s = r?.structuredContent;
    if (s) {
        applyState(s.channels ?? {}, s.tempo);
    }
}

function showTempo({ cps, bpm, who }) {
    if (Number.isFinite(cps)) {
        $('#cps').value = String(Math.round(cps * 10000) / 10000);
        $('#bpm').textContent = `${Math.round((bpm ?? cps * 240) * 100) / 100} bpm`;
        $('#bpm').title = who ? `set by ${who}` : '';
    }
}

function describe(ev) {
    switch (ev.type) {
    case 'pattern_eval':
        return `${ev.who} ${ev.ok ? 'played' : 'was refused'} ${ev.channel}: ${ev.pattern}${ev.ok ? '' : ` — ${ev.error ?? ''}`}`;
    case 'channel_state':
        return `${ev.who} changed ${ev.channel}: ${stateWords(ev.state)}`;
    case 'tempo_change':
        return `${ev.who} set the tempo to ${ev.cps} cps (${ev.bpm} bpm)`;
    case 'error':
        return `error${ev.channel ? ` in ${ev.channel}` : ''}: ${ev.message}`;
    case 'ghci_restarted':
        return `GHCi restarted: ${ev.reason}`;
    case 'custom':
        return `custom: ${JSON.stringify(ev.data)}`;
    default:
        return `${ev.type}`;
    }
}

function stateWords(st) {
    if (!st || typeof st !== 'object') {
        return String(st);
    }
    const w = [st.pattern && st.pattern !== 'silence' ? 'playing' : 'silent'];
    if (st.muted) {
        w.push('muted');
    }
    if (st.soloed) {
        w.push('soloed');
    }
    return w.join(', ');
}

function addHistory(ev) {
    const h = $('#history');
    if (ev.seq && h.querySelector(`[data-seq="${ev.seq}"]`)) {
        return;
    }
    h.prepend(el('li', { 'data-seq': ev.seq ?? '', class: ev.type }, el('time', {}, time(ev.timestamp)), ' ', describe(ev)));
    while (h.children.length > 200) {
        h.lastChild.remove();
    }
}

async function loadHistory() {
    const r = await callTool('tidal_get_history', {});
    const list = r?.structuredContent?.history;
    if (Array.isArray(list)) {
        for (const ev of list) {
            addHistory(ev);
        }
    }
}

// ---- who is here ---------------------------------------------------------

// The room's members are tidal_who's (refreshed every few seconds and on
// each (re)connect): name, role, connected.  Your own entry comes first,
// as before; the events say when each name last acted.  A server without
// tidal_who leaves the list to you and everyone seen acting.

const MEMBERS_EVERY = 4000;
const people = new Map();
const room = { members: null, count: 0 };

function seen(who, role, note) {
    if (!who) {
        return;
    }
    const p = people.get(who) ?? { who };
    p.last = Date.now();
    if (role) {
        p.role = role;
    }
    if (note) {
        p.note = note;
    }
    people.set(who, p);
    showPeople();
}

function showPeople() {
    const me = people.get(myName);
    const rows = me ? [person(me, { class: 'me' })] : [];
    if (room.members === null) {
        for (const p of people.values()) {
            if (p !== me) {
                rows.push(person(p));
            }
        }
    } else {
        // the first connected entry like yours is yours
        let mine = !me;
        for (const m of room.members) {
            if (!mine && m.who === myName && m.role === ui.role && m.connected) {
                mine = true;
                continue;
            }
            rows.push(person({ ...m, last: people.get(m.who)?.last }, {
                class: m.connected ? 'member' : 'member away',
                'data-connected': String(m.connected),
            }));
        }
        if (room.count > room.members.length) {
            rows.push(el('li', { class: 'more' }, `and ${room.count - room.members.length} more`));
        }
    }
    $('#people').replaceChildren(...rows);
}

function person(x, attrs = {}) {
    return el('li', { 'data-who': x.who, ...(x.role ? { 'data-role': x.role } : {}), ...attrs },
        el('b', {}, x.who), x.note ? ` (${x.note})` : '', x.role ? ` · ${x.role}` : '',
        x.connected === false ? ' · away' : '',
        x.last ? el('time', {}, ` last seen ${time(x.last)}`) : '');
}

async function loadMembers() {
    if (client.state !== 'open') {
        return;
    }
    let r;
    try {
        r = await client.call('tidal_who', {});
    } catch {
        return;     // not connected now, or an older server: keep the list
    }
    const sc = r?.structuredContent;
    if (!r?.isError && Array.isArray(sc?.members)) {
        room.members = sc.members;
        room.count = sc.count ?? sc.members.length;
        ui.members = room.members;
        showPeople();
    }
}

// ---- metrics ---------------------------------------------------------------

const series = { cpu: [], mem: [], clients: [], eps: [] };
let lastCpu = null;

function metrics(m) {
    const cpuSeconds = (m.nginx?.cpu_seconds ?? 0) + (m.ghci?.cpu_seconds ?? 0);
    const now = Date.now();
    if (lastCpu) {
        const pct = Math.max(0, 100 * (cpuSeconds - lastCpu.s) / ((now - lastCpu.t) / 1000));
        push('cpu', pct, `${pct.toFixed(0)} %`);
    }
    lastCpu = { s: cpuSeconds, t: now };
    const rss = (m.nginx?.rss_bytes ?? 0) + (m.ghci?.rss_bytes ?? 0);
    push('mem', rss / 1048576, `${(rss / 1048576).toFixed(0)} MB`);
    push('clients', m.connections ?? 0, String(m.connections ?? 0));
    push('eps', m.events_per_second ?? 0, String(Math.round((m.events_per_second ?? 0) * 10) / 10));
    seen(myName);
}

function push(name, v, label) {
    const s = series[name];
    s.push(v);
    if (s.length > 60) {
        s.shift();
    }
    $(`#v-${name}`).textContent = label;
    const c = $(`#m-${name}`);
    const g = c.getContext('2d');
    const max = Math.max(...s, 1e-9);
    g.clearRect(0, 0, c.width, c.height);
    g.strokeStyle = '#4fc3f7';
    g.lineWidth = 1.5;
    g.beginPath();
    s.forEach((y, i) => {
        const px = (i / 59) * c.width;
        const py = c.height - 2 - (y / max) * (c.height - 4);
        if (i) {
            g.lineTo(px, py);
        } else {
            g.moveTo(px, py);
        }
    });
    g.stroke();
}

// ---- sound -----------------------------------------------------------------

async function syncClock() {
    try {
        ui.clock = await measureOffset(() => client.request('tidal/clock', undefined, { timeout: 5000 }), 8);
    } catch (e) {
        ui.clock = { offset: 0, rtt: null, supported: null, error: e.message };
    }
    ui.player.offset = ui.clock.offset;
    soundInfo();
}

function soundInfo() {
    const c = ui.clock;
    $('#sound-info').textContent = (c.supported ? `offset ${c.offset.toFixed(1)} ms (rtt ${c.rtt.toFixed(1)} ms)`
        : 'no room clock (offset 0)') + (ui.player.running ? ` · ${ui.player.played} played, ${ui.player.late} late` : '');
}

function sound(msg) {
    for (const ev of msg.events ?? []) {
        ui.sounds++;
        const ch = channel(ev.channel ?? 'd1');
        const start = ui.player.play(ev);
        const delay = start !== null ? (start - ui.player.ctx.currentTime) * 1000
            : ev.time * 1000 - ui.clock.offset - Date.now();
        setTimeout(() => {
            const dot = el('i', { title: ev.params?.s ?? '' });
            dot.style.left = `${(Date.now() / 20) % 100}%`;
            ch.lane.append(dot);
            ch.card.classList.add('sounding');
            setTimeout(() => { dot.remove(); ch.card.classList.remove('sounding'); }, 300);
            ch.lane.dataset.count = String((Number(ch.lane.dataset.count) || 0) + 1);
        }, Math.max(0, delay));
    }
    if (ui.player.running) {
        soundInfo();
    }
}

// ---- controls --------------------------------------------------------------

function wire() {
    fillAdd();
    $('#add').addEventListener('click', () => {
        const name = $('#add-channel').value;
        if (name) {
            channel(name).editor.view.focus();
        }
    });
    $('#hush').addEventListener('click', () => callTool('tidal_hush', {}));
    $('#tempo-form').addEventListener('submit', (e) => {
        e.preventDefault();
        const cps = Number($('#cps').value);
        if (cps > 0) {
            callTool('tidal_set_tempo', { cps });
        }
    });
    $('#cps').addEventListener('input', () => {
        $('#bpm').textContent = `${Math.round(Number($('#cps').value) * 240 * 100) / 100} bpm`;
    });
    $('#chat-form').addEventListener('submit', (e) => {
        e.preventDefault();
        const text = $('#chat-text').value.trim();
        if (text) {
            callTool('tidal_say', { text });
            $('#chat-text').value = '';
        }
    });
    $('#history-refresh').addEventListener('click', loadHistory);
    $('#listen').addEventListener('click', async () => {
        const p = ui.player;
        if (p.running) {
            await p.stop();
            $('#listen').textContent = 'Listen';
        } else {
            await p.start();
            $('#listen').textContent = 'Stop listening';
            syncClock();
        }
        soundInfo();
    });
    $('#samples-load').addEventListener('click', async () => {
        const url = $('#samples-url').value.trim();
        if (!url) {
            return;
        }
        try {
            const n = await ui.player.loadMap(url);
            $('#sound-info').textContent = `${n} sample names from ${url}`;
        } catch (e) {
            $('#sound-info').textContent = `samples: ${e.message}`;
        }
    });
    setInterval(() => { if (client.state === 'open') syncClock(); }, 30000);
    setInterval(loadMembers, MEMBERS_EVERY);
    channel('d1');
    setRole(null);
    client.connect().catch((e) => notice(`cannot join: ${e.message}`));
}

wire();
