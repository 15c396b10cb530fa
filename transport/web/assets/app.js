// The dtmfd web keypad. Keys go to the server through the simulator
// endpoint; everything shown comes back from the server's event stream
// (/events): a snapshot on connect, then one event per call step and per
// variable write. Timers run down here, in the page's own clock.
'use strict';

(() => {
  const MAX_CALLS = 200;
  const MAX_WRITES = 100;
  const KEYS = '0123456789*#ABCD';
  const SVG = 'http://www.w3.org/2000/svg';

  const TIMER_NAMES = {
    noInput: 'no input',
    interDigit: 'inter-digit',
    terminator: 'terminator',
    prompt: 'prompt',
  };
  const REASONS = {
    completed: 'completed',
    no_input: 'no input',
    no_match: 'no match',
  };

  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get('token') || '';

  const state = {
    graph: null,
    // keyOf maps a flow node id to the key of its box in the diagram.
    keyOf: new Map(),
    calls: new Map(),
    selected: null,
    // skew is the page's clock minus the server's, in milliseconds.
    skew: 0,
  };

  // ---------------------------------------------------------------- DOM

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') el.className = v;
      else el.setAttribute(k, v);
    }
    for (const c of children) el.append(c);
    return el;
  }

  function s(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (parent) parent.append(el);
    return el;
  }

  function announce(text) {
    const el = $('announcer');
    el.textContent = '';
    // A fresh text node makes screen readers read a repeated message.
    requestAnimationFrame(() => { el.textContent = text; });
  }

  function showError(text) {
    $('pad-error').textContent = text;
  }

  function setConn(st, text) {
    const el = $('conn');
    el.dataset.state = st;
    el.textContent = text;
  }

  // ------------------------------------------------------- event stream

  function withToken(url) {
    if (!token) return url;
    return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
  }

  let source = null;
  let retryDelay = 1000;

  function connect() {
    setConn('connecting', 'Connecting…');
    source = new EventSource(withToken('events'));
    source.addEventListener('snapshot', (e) => {
      retryDelay = 1000;
      setConn('live', 'Live');
      onSnapshot(JSON.parse(e.data));
    });
    source.addEventListener('flow', (e) => onFlow(JSON.parse(e.data)));
    source.addEventListener('call', (e) => onCall(JSON.parse(e.data)));
    source.addEventListener('write', (e) => onWrite(JSON.parse(e.data)));
    source.addEventListener('error', () => {
      if (source.readyState !== EventSource.CLOSED) {
        setConn('connecting', 'Reconnecting…');
        return;
      }
      // The browser gave up (the server refused us): try again later.
      setConn('down', 'Disconnected; retrying');
      source.close();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }

  function sync(now) {
    if (typeof now === 'number') state.skew = Date.now() - now;
  }

  function onSnapshot(m) {
    sync(m.now);
    setGraph(m.flow);

    const old = state.calls;
    state.calls = new Map();
    for (const c of m.calls || []) state.calls.set(c.id, c);
    for (const [id, c] of old) {
      // Keep calls made here that the server has not heard of yet, and
      // the selected one even if the server forgot it.
      if (!state.calls.has(id) && (c.pending || id === state.selected)) state.calls.set(id, c);
    }

    const list = $('writes');
    list.textContent = '';
    for (const w of m.writes || []) list.prepend(writeItem(w));
    if (!list.children.length) list.append(h('li', { class: 'empty' }, 'No writes yet.'));
    renderAll();
  }

  function onFlow(m) {
    sync(m.now);
    setGraph(m.flow);
    renderAll();
  }

  function onCall(m) {
    sync(m.now);
    const c = m.call;
    const prev = state.calls.get(c.id);
    state.calls.set(c.id, c);
    trimCalls();

    if (c.id === state.selected) describeChange(prev, c);
    else if (c.decision && prev && !prev.decision && prev.local) {
      announce(`Call ${c.id} ended: ${decisionText(c.decision)}`);
    }
    if (prev && prev.local) c.local = true;

    renderCalls();
    if (c.id === state.selected) {
      renderPanel();
      highlight();
    }
  }

  function onWrite(m) {
    sync(m.now);
    const list = $('writes');
    const empty = list.querySelector('.empty');
    if (empty) empty.remove();
    list.prepend(writeItem(m.write));
    while (list.children.length > MAX_WRITES) list.lastElementChild.remove();
  }

  function trimCalls() {
    if (state.calls.size <= MAX_CALLS) return;
    const oldest = [...state.calls.values()]
      .filter((c) => c.id !== state.selected)
      .sort((a, b) => a.started - b.started);
    for (const c of oldest.slice(0, state.calls.size - MAX_CALLS)) state.calls.delete(c.id);
  }

  // Tells a screen reader what changed on the selected call.
  function describeChange(prev, c) {
    if (c.decision && !(prev && prev.decision)) {
      announce(`Call ended at ${c.node}: ${decisionText(c.decision)}`);
      return;
    }
    const key = c.keys && c.keys.length ? c.keys[c.keys.length - 1] : null;
    const pressed = key && (!prev || !prev.keys || prev.keys.length !== c.keys.length);
    if (!prev || prev.node !== c.node) {
      let why = '';
      if (pressed) why = ` after key ${key.key}`;
      else if (c.expired) why = ` after the ${TIMER_NAMES[c.expired] || c.expired} timeout`;
      announce(`Now at ${c.node}${why}.`);
    } else if (pressed && key.outcome !== 'accepted') {
      announce(`Key ${key.key} ${key.outcome === 'noMatch' ? 'not accepted' : 'ignored'} at ${c.node}.`);
    } else if (c.expired) {
      announce(`The ${TIMER_NAMES[c.expired] || c.expired} timer ran out at ${c.node}.`);
    }
  }

  function decisionText(d) {
    const vars = d.variables.map((v) => `${v.name} ${v.value}`).join(', ');
    return `${REASONS[d.reason] || d.reason}${vars ? '; ' + vars : ''}`;
  }

  // --------------------------------------------------------------- keys

  let queue = Promise.resolve();

  function selectedCall() {
    return state.selected ? state.calls.get(state.selected) : null;
  }

  function press(key) {
    let call = selectedCall();
    if (!call) call = newCall();
    if (call.decision) {
      showError(`Call ${call.id} has ended. Press New call to start another.`);
      return;
    }
    showError('');
    flash(key);

    const id = call.id;
    // One request at a time, so keys reach the call in the order pressed.
    queue = queue
      .then(() => send(id, key))
      .catch((err) => showError(`Key ${key} was not sent: ${err.message}`));
  }

  async function send(callId, digit) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch('simulator', {
      method: 'POST',
      headers,
      body: JSON.stringify({ callId, digit }),
    });
    if (res.ok) return;
    let msg = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      if (body.error) msg = body.error;
    } catch (_) {
      // The status line says enough.
    }
    throw new Error(msg);
  }

  function flash(key) {
    const btn = document.querySelector(`.key[data-key="${CSS.escape(key)}"]`);
    if (!btn) return;
    btn.classList.add('pressed');
    setTimeout(() => btn.classList.remove('pressed'), 150);
  }

  function newCall() {
    const bytes = new Uint8Array(4);
    crypto.getRandomValues(bytes);
    const id = 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    const start = startNodeID();
    const call = {
      id,
      pending: true,
      local: true,
      node: start,
      digits: '',
      noInput: 0,
      noMatch: 0,
      timer: null,
      path: start ? [{ node: start, via: 'start' }] : [],
      keys: [],
      decision: null,
      started: Date.now() - state.skew,
    };
    state.calls.set(id, call);
    trimCalls();
    select(id);
    announce(`New call ${id}. Press a key to start it at ${start || 'the first node'}.`);
    return call;
  }

  function startNodeID() {
    const g = state.graph;
    if (!g || !g.start) return '';
    const n = g.nodes.find((x) => x.key === g.start);
    return n ? n.id : '';
  }

  function select(id) {
    state.selected = id;
    showError('');
    renderAll();
  }

  function onKeydown(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (e.key.length !== 1) return;

    const k = e.key.toUpperCase();
    if (k === 'N') {
      e.preventDefault();
      newCall();
    } else if (KEYS.includes(k)) {
      e.preventDefault();
      press(k);
    }
  }

  // ---------------------------------------------------------- rendering

  function renderAll() {
    $('flow-name').textContent = state.graph && state.graph.name ? state.graph.name : 'none';
    renderCalls();
    renderPanel();
    highlight();
  }

  function callStatus(c) {
    if (c.pending) return { cls: 'live', text: 'not started' };
    if (!c.decision) return { cls: 'live', text: 'in progress' };
    const st = c.decision.variables.find((v) => v.name === 'ivr_status');
    return { cls: c.decision.reason, text: 'ended: ' + (st ? st.value : c.decision.reason) };
  }

  function renderCalls() {
    const list = $('calls');
    const calls = [...state.calls.values()].sort((a, b) => a.started - b.started || (a.id < b.id ? -1 : 1));
    const items = new Map([...list.children].map((li) => [li.dataset.id, li]));

    for (const [id, li] of items) {
      if (!state.calls.has(id)) li.remove();
    }
    if (!calls.length) {
      if (!list.querySelector('.empty')) list.append(h('li', { class: 'empty hint' }, 'No calls yet.'));
      return;
    }
    const empty = list.querySelector('.empty');
    if (empty) empty.remove();

    let before = null;
    for (let i = calls.length - 1; i >= 0; i--) {
      const c = calls[i];
      let li = items.get(c.id);
      if (!li || !li.isConnected) {
        li = h('li', {}, h('button', { type: 'button', class: 'call-item' }));
        li.dataset.id = c.id;
        li.firstChild.addEventListener('click', () => select(c.id));
        list.insertBefore(li, before);
      }
      fillCallItem(li.firstChild, c);
      before = li;
    }
  }

  function fillCallItem(btn, c) {
    const st = callStatus(c);
    btn.setAttribute('aria-pressed', String(c.id === state.selected));
    btn.dataset.id = c.id;
    btn.textContent = '';
    btn.append(
      h('span', { class: 'cid' }, c.id),
      h('span', { class: 'where' }, `at ${c.node || '?'}`),
      h('span', { class: `status-badge ${st.cls}` }, st.text),
      h('span', { class: 'digits' }, c.digits ? `digits ${c.digits}` : 'no digits'),
      h('span', { class: 'counters' }, `no input ${c.noInput || 0}, no match ${c.noMatch || 0}`),
    );
    const mini = h('span', { class: 'mini-timer', 'aria-hidden': 'true' });
    if (c.timer) mini.dataset.deadline = String(deadline(c.timer));
    btn.append(mini);
  }

  function renderPanel() {
    const c = selectedCall();
    $('call-id').textContent = c ? c.id : 'none';
    const target = $('pad-target');
    $('keypad').setAttribute('aria-disabled', String(!!(c && c.decision)));

    if (!c) {
      target.textContent = 'No call yet: press New call or any key.';
      const facts = ['call-status', 'call-node', 'call-keys', 'call-digits', 'call-counters', 'call-prompt'];
      for (const id of facts) $(id).textContent = '–';
      $('call-decision').hidden = true;
      tick();
      return;
    }

    target.textContent = c.decision
      ? `Call ${c.id} has ended; press New call for another.`
      : `Keys go to call ${c.id}.`;

    const st = callStatus(c);
    $('call-status').textContent = '';
    $('call-status').append(h('span', { class: `status-badge ${st.cls}` }, st.text));
    if (c.decision) {
      $('call-status').append(` at ${c.decision.end}`);
    }

    $('call-node').textContent = c.node ? `${c.node}${nodeKind(c.node)}` : '–';
    renderKeys(c);
    $('call-digits').textContent = c.digits || '–';
    $('call-counters').textContent = `${c.noInput} / ${c.noMatch}`;
    $('call-prompt').textContent = c.prompt || '–';
    renderDecision(c);
    tick();
  }

  function nodeKind(id) {
    const g = state.graph;
    const n = g && g.nodes.find((x) => x.key === state.keyOf.get(id));
    return n ? ` (${n.detail || n.kind})` : '';
  }

  function renderKeys(c) {
    const dd = $('call-keys');
    dd.textContent = '';
    if (!c.keys || !c.keys.length) {
      dd.textContent = '–';
      return;
    }
    for (const k of c.keys) {
      const ok = k.outcome === 'accepted';
      const cls = 'key-chip' + (ok ? '' : ' rejected');
      const chip = h('span', { class: cls, title: `${k.outcome} at ${k.node}` }, k.key);
      if (!ok) chip.append(h('span', { class: 'visually-hidden' }, ` (${k.outcome})`));
      dd.append(chip);
    }
  }

  function renderDecision(c) {
    const box = $('call-decision');
    if (!c.decision) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const d = c.decision;
    $('call-decision-summary').textContent =
      `Ended at ${d.end} from ${d.from || '?'}: ${REASONS[d.reason] || d.reason}.`;
    const body = $('call-vars');
    body.textContent = '';
    for (const v of d.variables) {
      const row = h('tr', {}, h('th', { scope: 'row' }, v.name), h('td', {}, v.value));
      row.dataset.name = v.name;
      body.append(row);
    }
  }

  function clock(ms) {
    return new Date(ms + state.skew).toLocaleTimeString([], { hour12: false });
  }

  const WRITE_STATUS = {
    accepted: '✓ received',
    delivered: '✓ delivered',
    failed: '✗ failed',
  };

  function writeItem(w) {
    const vars = w.variables.map((v) => `${v.name}=${v.value}`).join('  ');
    const status = WRITE_STATUS[w.status] || (w.ok ? '✓ ok' : '✗ failed');
    const latency = typeof w.latencyMs === 'number' ? `${w.latencyMs.toFixed(1)} ms` : '–';
    const li = h('li', {},
      h('span', { class: 'st ' + (w.ok ? 'ok' : 'failed') }, status),
      h('span', { class: 'iid' }, w.interactionId),
      h('span', { class: 'lat' }, `${clock(w.at)} · `,
        h('span', { class: 'ms', title: 'from the decision' }, latency)),
      h('span', { class: 'vars' }, vars || '(no variables)'),
    );
    if (w.error) li.append(h('span', { class: 'err' }, w.error));
    li.dataset.interaction = w.interactionId;
    li.dataset.ok = String(w.ok);
    li.dataset.status = w.status || '';
    return li;
  }

  // -------------------------------------------------------------- timers

  function deadline(t) {
    return t.at + t.afterMs + state.skew;
  }

  function seconds(ms) {
    return (Math.max(0, ms) / 1000).toFixed(1) + ' s';
  }

  // tick redraws the running timers; it animates, it asks the server
  // nothing.
  function tick() {
    const now = Date.now();
    const c = selectedCall();
    const el = $('call-timer');
    const bar = $('call-timer-bar');

    if (c && c.timer) {
      const left = Math.max(0, deadline(c.timer) - now);
      el.textContent = `${TIMER_NAMES[c.timer.kind] || c.timer.kind} ${seconds(left)}`;
      el.dataset.running = 'true';
      bar.style.width = (c.timer.afterMs > 0 ? (100 * left) / c.timer.afterMs : 0) + '%';
    } else {
      el.dataset.running = 'false';
      bar.style.width = '0%';
      if (c && c.expired) el.textContent = `${TIMER_NAMES[c.expired] || c.expired} ${seconds(0)} (expired)`;
      else if (c && c.decision) el.textContent = 'stopped';
      else el.textContent = '–';
    }

    for (const span of document.querySelectorAll('.mini-timer[data-deadline]')) {
      span.textContent = seconds(Number(span.dataset.deadline) - now);
    }
  }

  // ------------------------------------------------------------- diagram

  const NODE_H = 44;
  const ROW_GAP = 86;
  const COL_GAP = 44;
  const WAY_W = 14;
  const WAY_GAP = 10;
  const MARGIN = 28;

  function setGraph(g) {
    state.graph = g || null;
    state.keyOf = new Map();
    if (g) for (const n of g.nodes) if (n.kind !== 'any' && n.kind !== 'back') state.keyOf.set(n.id, n.key);
    renderGraph();
  }

  // rows gives each node a row: the longest path to it from the start,
  // so every arrow points down except those that close a loop. A walk from
  // the start that follows keys and values first decides which arrows
  // close loops. The "any" and "back" boxes sit in the first row.
  function rows(g) {
    const boxes = new Set(g.nodes.filter((n) => n.kind === 'any' || n.kind === 'back').map((n) => n.key));
    const primary = (e) => e.kind === 'key' || e.kind === 'value';
    const out = new Map();
    for (const e of [...g.edges.filter(primary), ...g.edges.filter((e) => !primary(e))]) {
      if (boxes.has(e.from) || boxes.has(e.to)) continue;
      if (!out.has(e.from)) out.set(e.from, []);
      out.get(e.from).push(e);
    }

    const loops = new Set();
    const seen = new Map();
    const order = [];
    const visit = (k) => {
      seen.set(k, 'open');
      for (const e of out.get(k) || []) {
        const st = seen.get(e.to);
        if (st === 'open') loops.add(e);
        else if (!st) visit(e.to);
      }
      seen.set(k, 'done');
      order.push(k);
    };
    if (g.start) visit(g.start);
    for (const n of g.nodes) if (!seen.has(n.key) && !boxes.has(n.key)) visit(n.key);

    // The reverse of the order the walk finished nodes in puts every
    // node after all that lead to it.
    const depth = new Map();
    for (const k of order.reverse()) {
      if (!depth.has(k)) depth.set(k, 0);
      for (const e of out.get(k) || []) {
        if (!loops.has(e)) depth.set(e.to, Math.max(depth.get(e.to) || 0, depth.get(k) + 1));
      }
    }
    for (const k of boxes) depth.set(k, 0);
    return depth;
  }

  function nodeWidth(n) {
    const chars = Math.max(n.id.length, (n.detail || '').length * 0.85);
    return Math.max(112, Math.round(chars * 7.6 + 28));
  }

  // layout places every node and routes every arrow. Rows come from
  // rows(). An arrow that crosses rows gets a waypoint in each row it
  // crosses, which takes a slot of its own, so it never runs through a
  // node. Each row is ordered by the mean position of what leads to it
  // from the row above, and centred.
  function layout(g) {
    const depth = rows(g);
    const items = new Map();
    g.nodes.forEach((n, i) => {
      items.set(n.key, { key: n.key, row: depth.get(n.key), w: nodeWidth(n), idx: i, node: true });
    });

    const routes = [];
    const links = [];
    g.edges.forEach((e, i) => {
      const a = depth.get(e.from);
      const b = depth.get(e.to);
      if (a === undefined || b === undefined) return;
      const chain = [e.from];
      for (let r = a + 1; r < b; r++) {
        const key = `w${i}.${r}`;
        items.set(key, { key, row: r, w: WAY_W, idx: g.nodes.length + i, node: false });
        chain.push(key);
      }
      chain.push(e.to);
      routes.push({ e, chain, down: b > a });
      if (b > a) for (let j = 1; j < chain.length; j++) links.push([chain[j - 1], chain[j]]);
    });

    const byRow = [];
    for (const it of items.values()) (byRow[it.row] = byRow[it.row] || []).push(it);
    const place = new Map();
    for (const row of byRow) {
      if (!row) continue;
      const score = (it) => {
        const from = links.filter(([f, t]) => t === it.key && place.has(f)).map(([f]) => place.get(f));
        if (!from.length) return 1e6 + it.idx;
        return from.reduce((a, b) => a + b, 0) / from.length;
      };
      const scored = row.map((it) => [score(it), it.idx, it]);
      scored.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      row.length = 0;
      scored.forEach(([, , it], i) => {
        row.push(it);
        place.set(it.key, (i + 0.5) / scored.length);
      });
    }

    const gap = (a, b) => (a.node && b.node ? COL_GAP : WAY_GAP);
    const rowWidth = (row) => (row || []).reduce((w, it, i) => w + it.w + (i ? gap(row[i - 1], it) : 0), 0);
    const widths = byRow.map(rowWidth);
    const width = Math.max(...widths, 200) + 2 * MARGIN + 60;
    const pos = new Map();
    byRow.forEach((row, r) => {
      if (!row) return;
      let x = (width - widths[r]) / 2;
      row.forEach((it, i) => {
        if (i) x += gap(row[i - 1], it);
        pos.set(it.key, { x: x + it.w / 2, y: MARGIN + r * (NODE_H + ROW_GAP), w: it.w, row: r });
        x += it.w;
      });
    });
    const height = MARGIN * 2 + byRow.length * (NODE_H + ROW_GAP) - ROW_GAP;
    return { pos, routes, width, height };
  }

  function renderGraph() {
    const box = $('diagram');
    box.textContent = '';
    const g = state.graph;
    if (!g || !g.nodes.length) {
      box.append(h('p', { class: 'empty' }, 'No flow loaded.'));
      return;
    }

    const { pos, routes, width, height } = layout(g);
    const svg = s('svg', {
      width, height, viewBox: `0 0 ${width} ${height}`,
      role: 'img', 'aria-labelledby': 'dg-title dg-desc',
    }, box);
    s('title', { id: 'dg-title' }, svg).textContent = `Flow ${g.name || ''}`;
    s('desc', { id: 'dg-desc' }, svg).textContent = 'No call selected.';

    const defs = s('defs', {}, svg);
    for (const id of ['arrow', 'arrow-taken']) {
      const m = s('marker', {
        id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9,
        orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse',
      }, defs);
      s('path', { d: 'M0,0 L10,5 L0,10 z' }, m);
    }

    const edges = s('g', { class: 'edges' }, svg);
    const labels = s('g', { class: 'labels' }, svg);
    drawEdges(routes, pos, edges, labels);
    const nodes = s('g', { class: 'nodes' }, svg);
    for (const n of g.nodes) drawNode(n, pos.get(n.key), nodes);
  }

  function drawNode(n, p, parent) {
    const g = s('g', {
      class: `node kind-${n.kind}`, 'data-key': n.key, 'data-id': n.id, 'data-current': 'false',
    }, parent);
    s('title', {}, g).textContent = `${n.id} (${n.detail || n.kind})`;
    const x0 = p.x - p.w / 2;
    const y0 = p.y;
    const w = p.w;
    const hh = NODE_H;
    switch (n.kind) {
      case 'collect':
        s('polygon', {
          class: 'shape',
          points: `${x0 + 10},${y0} ${x0 + w},${y0} ${x0 + w - 10},${y0 + NODE_H} ${x0},${y0 + NODE_H}`,
        }, g);
        break;
      case 'end':
        s('rect', { class: 'shape', x: x0, y: y0, width: w, height: NODE_H, rx: NODE_H / 2 }, g);
        s('rect', { class: 'inner', x: x0 + 4, y: y0 + 4, width: w - 8, height: hh - 8, rx: hh / 2 - 4 }, g);
        break;
      case 'any':
        s('polygon', {
          class: 'shape',
          points: [[12, 0], [w - 12, 0], [w, hh / 2], [w - 12, hh], [12, hh], [0, hh / 2]]
            .map(([x, y]) => `${x0 + x},${y0 + y}`).join(' '),
        }, g);
        break;
      default:
        s('rect', { class: 'shape', x: x0, y: y0, width: w, height: hh, rx: n.kind === 'back' ? 12 : 6 }, g);
    }
    s('text', { class: 'id', x: p.x, y: y0 + 19, 'text-anchor': 'middle' }, g).textContent = n.id;
    const sub = n.sensitive ? `${n.detail}, masked` : n.detail || n.kind;
    s('text', { class: 'sub', x: p.x, y: y0 + 35, 'text-anchor': 'middle' }, g).textContent = sub;
  }

  // drawEdges draws every arrow. Arrows downwards leave a node's bottom
  // and enter a node's top spread over its width, so arrows that share a
  // node stay apart; the others bow out to the right.
  function drawEdges(routes, pos, parent, labels) {
    const down = routes.filter((r) => r.down);
    // spread sets r[prop], where arrow r meets the node at chain index
    // at(r), ordering the arrows by the point they come from or go to.
    const spread = (at, toward, prop) => {
      const groups = new Map();
      for (const r of down) {
        const k = r.chain[at(r)];
        if (!groups.has(k)) groups.set(k, []);
        groups.get(k).push(r);
      }
      for (const [k, list] of groups) {
        const p = pos.get(k);
        list.sort((a, b) => pos.get(a.chain[toward(a)]).x - pos.get(b.chain[toward(b)]).x);
        list.forEach((r, i) => {
          r[prop] = p.x - p.w * 0.3 + ((i + 0.5) * p.w * 0.6) / list.length;
          r[prop + 'i'] = i;
        });
      }
    };
    spread(() => 0, () => 1, 'sx');
    spread((r) => r.chain.length - 1, (r) => r.chain.length - 2, 'tx');

    for (const r of down) {
      const a = pos.get(r.chain[0]);
      const b = pos.get(r.chain[r.chain.length - 1]);
      const pts = [{ x: r.sx, y: a.y + NODE_H }];
      for (const k of r.chain.slice(1, -1)) {
        const w = pos.get(k);
        pts.push({ x: w.x, y: w.y }, { x: w.x, y: w.y + NODE_H });
      }
      pts.push({ x: r.tx, y: b.y });

      let d = `M${pts[0].x},${pts[0].y}`;
      for (let i = 1; i < pts.length; i++) {
        const p = pts[i - 1];
        const q = pts[i];
        const my = (p.y + q.y) / 2;
        d += p.x === q.x ? ` L${q.x},${q.y}` : ` C${p.x},${my} ${q.x},${my} ${q.x},${q.y}`;
      }
      // Labels of neighbouring arrows sit at different heights.
      const t = [0.5, 0.28, 0.72][r.sxi % 3];
      const p = pts[0];
      const q = pts[1];
      const my = (p.y + q.y) / 2;
      drawEdge(r.e, d, cubic(p.x, p.x, q.x, q.x, t), cubic(p.y, my, my, q.y, t), parent, labels);
    }

    const lanes = new Map();
    for (const r of routes.filter((x) => !x.down)) {
      const lane = lanes.get(r.e.from) || 0;
      lanes.set(r.e.from, lane + 1);
      const a = pos.get(r.e.from);
      const b = pos.get(r.e.to);
      if (a === b) {
        const x = a.x + a.w / 2;
        const k = 36 + lane * 14;
        const y = a.y;
        const d = `M${x},${y + 12} C${x + k},${y - 8} ${x + k},${y + NODE_H + 8} ${x},${y + NODE_H - 12}`;
        drawEdge(r.e, d, x + k * 0.75, a.y + NODE_H / 2, parent, labels);
        continue;
      }
      if (a.row === b.row) {
        const right = b.x > a.x;
        const sx = a.x + (right ? a.w / 2 : -a.w / 2);
        const tx = b.x + (right ? -b.w / 2 : b.w / 2);
        const y = a.y + NODE_H / 2 + (lane % 3) * 6 - 6;
        drawEdge(r.e, `M${sx},${y} L${tx},${y}`, (sx + tx) / 2, y - 9, parent, labels);
        continue;
      }
      // Upwards: leave the right side and come back into the target's
      // right side, bowing out further for each arrow from the same node.
      const sx = a.x + a.w / 2;
      const sy = a.y + NODE_H / 2;
      const tx = b.x + b.w / 2;
      const ty = b.y + NODE_H / 2;
      const k = 46 + lane * 20;
      const c1x = Math.max(sx, tx) + k;
      const d = `M${sx},${sy} C${c1x},${sy} ${c1x},${ty} ${tx},${ty}`;
      drawEdge(r.e, d, (sx + 6 * c1x + tx) / 8, (sy + ty) / 2, parent, labels);
    }
  }

  function cubic(a, b, c, d, t) {
    const u = 1 - t;
    return u * u * u * a + 3 * u * u * t * b + 3 * u * t * t * c + t * t * t * d;
  }

  function drawEdge(e, d, lx, ly, parent, labels) {
    const g = s('g', { class: `edge kind-${e.kind}`, 'data-from': e.from, 'data-to': e.to }, parent);
    g.edge = e;
    s('path', { d, 'marker-end': 'url(#arrow)' }, g);

    const lg = s('g', { class: `edge kind-${e.kind}` }, labels);
    const w = e.label.length * 6.2 + 8;
    s('rect', { class: 'label-bg', x: lx - w / 2, y: ly - 8, width: w, height: 15, rx: 3 }, lg);
    s('text', { x: lx, y: ly + 3.5, 'text-anchor': 'middle' }, lg).textContent = e.label;
    g.labelGroup = lg;
  }

  // pickEdge finds the arrow a call followed from one node to the next.
  function pickEdge(svg, from, to, step) {
    const all = [...svg.querySelectorAll('.edges .edge')].map((el) => ({ el, e: el.edge }));
    let cands = all.filter((x) => x.e.from === from && x.e.to === to);
    const hasKey = (x) => x.e.keys && x.e.keys.includes(step.key);
    if (!cands.length && step.via === 'key') {
      // A global key drawn from the "any" box, or a step back.
      cands = all.filter((x) => (x.e.from === 'any' && x.e.to === to && hasKey(x)) ||
        ((x.e.from === from || x.e.from === 'any') && x.e.to === 'back' && hasKey(x)));
    }
    const want = {
      key: (x) => hasKey(x) || x.e.kind === 'value',
      noMatch: (x) => x.e.kind === 'noMatch' || x.e.kind === 'escalation',
      noInput: (x) => x.e.kind === 'noInput' || x.e.kind === 'escalation',
      interDigit: (x) => x.e.kind === 'value' || x.e.kind === 'noMatch' || x.e.kind === 'escalation',
      terminator: (x) => x.e.kind === 'value' || x.e.kind === 'noMatch' || x.e.kind === 'escalation',
    }[step.via];
    return (want && cands.find(want)) || cands[0];
  }

  function highlight() {
    const box = $('diagram');
    const svg = box.querySelector('svg');
    if (!svg) return;

    for (const g of svg.querySelectorAll('.node')) {
      g.classList.remove('current', 'visited');
      g.dataset.current = 'false';
      const here = g.querySelector('.here-tag');
      if (here) here.remove();
    }
    for (const g of svg.querySelectorAll('.edges .edge')) {
      g.classList.remove('taken');
      g.labelGroup.classList.remove('taken');
      g.firstElementChild.setAttribute('marker-end', 'url(#arrow)');
    }

    const c = selectedCall();
    const desc = svg.querySelector('desc');
    if (!c) {
      desc.textContent = 'No call selected.';
      return;
    }

    const path = c.path || [];
    let prev = null;
    for (const step of path) {
      const key = state.keyOf.get(step.node);
      const g = key && svg.querySelector(`.node[data-key="${key}"]`);
      if (g) g.classList.add('visited');
      if (prev && key) {
        const hit = pickEdge(svg, prev, key, step);
        if (hit) {
          hit.el.classList.add('taken');
          hit.el.labelGroup.classList.add('taken');
          hit.el.firstElementChild.setAttribute('marker-end', 'url(#arrow-taken)');
          // Drawn last, so it shows over the arrows it crosses.
          hit.el.parentNode.append(hit.el);
        }
      }
      prev = key || prev;
    }

    const key = state.keyOf.get(c.node);
    const cur = key && svg.querySelector(`.node[data-key="${key}"]`);
    if (cur) {
      cur.classList.add('current');
      cur.dataset.current = 'true';
      tag(cur, c.decision ? 'ENDED' : 'HERE');
      keepInView(box, cur);
    }
    const trail = path.map((p) => p.node).join(' → ');
    const where = `${c.decision ? 'ended' : 'is'} at ${c.node || 'the start'}`;
    desc.textContent = `Call ${c.id} ${where}. Path: ${trail || 'none yet'}.`;
  }

  // tag puts a label above the current node, so it is marked by more than
  // its colour.
  function tag(g, text) {
    const shape = g.querySelector('.shape');
    const b = shape.getBBox();
    const t = s('g', { class: 'here-tag' }, g);
    const w = text.length * 8 + 14;
    s('rect', { x: b.x + b.width - w + 8, y: b.y - 15, width: w, height: 17, rx: 8.5 }, t);
    s('text', { x: b.x + b.width - w / 2 + 8, y: b.y - 2.5, 'text-anchor': 'middle' }, t).textContent = text;
  }

  // keepInView scrolls the diagram, and only the diagram, to show g.
  function keepInView(box, g) {
    const b = g.getBBox();
    const pad = 24;
    const fit = (pos, size, scroll, view) => {
      if (pos - pad < scroll) return Math.max(0, pos - pad);
      if (pos + size + pad > scroll + view) return pos + size + pad - view;
      return scroll;
    };
    box.scrollLeft = fit(b.x, b.width, box.scrollLeft, box.clientWidth);
    box.scrollTop = fit(b.y, b.height, box.scrollTop, box.clientHeight);
  }

  // ---------------------------------------------------------------- start

  function start() {
    for (const btn of document.querySelectorAll('.key')) {
      btn.addEventListener('click', () => press(btn.dataset.key));
    }
    $('new-call').addEventListener('click', () => newCall());
    document.addEventListener('keydown', onKeydown);
    setInterval(tick, 100);
    renderAll();
    connect();
  }

  start();
})();
