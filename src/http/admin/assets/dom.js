// The one way the panel builds its page: elements from a tag, attributes and children, where
// every string child becomes a text node. Nothing is ever parsed as HTML (no markup sinks), so
// what a contact, a user or the daemon wrote shows as the characters it is.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A duration in seconds, short: 42s, 5m 3s, 2h 10m, 3d 4h. */
export function age(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '—';
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** An RFC 3339 time in the browser's locale, or a dash. */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** A definition list from [label, value] pairs, skipping empty values. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A status badge; its class names the value for colouring. */
export function badge(value) {
  const v = String(value ?? '—');
  return h('span', { class: `badge b-${v.toLowerCase().replace(/[^a-z0-9]+/g, '-')}` }, v);
}

/**
 * A button for an action that cannot be undone: the first click asks (the label becomes
 * `ask`), a second click within 5 s runs `action`.
 */
export function confirmButton(label, ask, action, attrs = {}) {
  let armed = null;
  const b = h('button', { type: 'button', class: 'danger', ...attrs, onclick: () => {
    if (armed) {
      clearTimeout(armed);
      armed = null;
      b.textContent = label;
      action();
      return;
    }
    b.textContent = ask;
    armed = setTimeout(() => { armed = null; b.textContent = label; }, 5000);
  } }, label);
  return b;
}

/** Runs `load` now and every `ms` until the returned function is called; one run at a time. */
export function every(ms, load) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;
  const run = async () => {
    if (stopped) return;
    if (running) { again = true; return; }
    running = true;
    clearTimeout(timer);
    try { await load(); } finally {
      running = false;
      if (!stopped) {
        if (again) { again = false; run(); } else timer = setTimeout(run, ms);
      }
    }
  };
  run();
  const stop = () => { stopped = true; clearTimeout(timer); };
  stop.now = run;
  return stop;
}
