// Lite sessions: status, phone, since when, the QR while one is shown (fetched with the key as
// an image and shown from a blob: URL, replaced as it rotates), start, stop, logout, start
// again, and linking with a pairing code. The list is read again on every `session.*` event
// and every few seconds.

import { badge, confirmButton, every, facts, h, replace, when } from './dom.js';
import { t } from './i18n.js';
import { del, get, post } from './api.js';

const REFRESH_MS = 5000;
const ACTIVE = ['STARTING', 'SCAN_QR_CODE', 'WORKING'];

const mib = (bytes) => (bytes ? `${Math.round(bytes / 1048576)} MiB` : '—');

export function mount(el, ctx) {
  const list = h('div', { id: 'lite-sessions', class: 'cards' });
  const notice = h('p', { class: 'notice', role: 'status' });
  const name = h('input', { id: 'lite-name', placeholder: t('sessionName'), maxlength: 100 });
  /** session id → { qr, url }: the QR shown and its image. */
  const qrs = new Map();

  const act = async (fn, done) => {
    notice.textContent = '';
    try {
      const r = await fn();
      if (done) notice.textContent = done(r);
    } catch (e) {
      notice.textContent = `${t('error')}: ${e.message}`;
    }
    stop.now();
  };

  replace(el,
    h('h2', {}, t('lite')),
    h('form', { class: 'row', onsubmit: (e) => {
      e.preventDefault();
      const n = name.value.trim();
      name.value = '';
      act(() => post('/v1/lite/sessions', n ? { name: n } : {}));
    } }, name, h('button', { id: 'lite-start', type: 'submit' }, t('startSession'))),
    notice,
    list);

  async function showQr(id, img) {
    const cached = qrs.get(id);
    if (cached) { img.src = cached.url; img.dataset.qr = cached.qr; }
    try {
      const j = await get(`/v1/lite/sessions/${id}/qr`);
      if (!cached || cached.qr !== j.qr) {
        const blob = await get(`/v1/lite/sessions/${id}/qr.svg`);
        const url = URL.createObjectURL(blob);
        if (cached) URL.revokeObjectURL(cached.url);
        qrs.set(id, { qr: j.qr, url });
      }
      const now = qrs.get(id);
      img.src = now.url;
      img.dataset.qr = now.qr;
    } catch (e) {
      if (e.code !== 'qr_not_available') img.alt = e.message;
    }
  }

  function pairing(s) {
    const phone = h('input', { type: 'tel', placeholder: t('phone'), class: 'pair-phone' });
    const out = h('output', { class: 'pairing-code' });
    return h('form', { class: 'row', onsubmit: (e) => {
      e.preventDefault();
      out.textContent = '';
      post(`/v1/lite/sessions/${s.id}/pairing-code`, { phone: phone.value.trim() })
        .then((r) => { out.textContent = `${t('pairingCode')}: ${r.code}`; })
        .catch((err) => { out.textContent = `${t('error')}: ${err.message}`; });
    } }, phone, h('button', { type: 'submit' }, t('getPairingCode')), out);
  }

  function card(s) {
    const active = ACTIVE.includes(s.status);
    let qr = null;
    if (s.status === 'SCAN_QR_CODE') {
      const img = h('img', { class: 'qr', alt: t('qrAlt'), width: 240, height: 240 });
      showQr(s.id, img);
      qr = h('figure', { class: 'qr-box' }, img, h('figcaption', {}, t('scanHint')), pairing(s));
    } else if (qrs.has(s.id)) {
      URL.revokeObjectURL(qrs.get(s.id).url);
      qrs.delete(s.id);
    }
    return h('article', { class: 'card', 'data-session': s.id, 'data-status': s.status },
      h('header', {}, h('strong', {}, s.name || s.id.slice(0, 8)), ' ', badge(s.status)),
      facts([
        [t('phone'), s.phone],
        [t('memory'), h('span', { class: 'mem' }, mib(s.memory_bytes))],
        [t('workingSince'), s.working_since && when(s.working_since)],
        [t('reason'), s.status_reason],
        [t('lastDisconnect'), s.last_disconnect_reason
          && `${s.last_disconnect_reason} (${when(s.last_disconnect_at)})`],
        [t('snapshot'), s.profile_snapshot_at && when(s.profile_snapshot_at)],
        ['id', s.id],
      ]),
      qr,
      h('div', { class: 'actions' },
        active
          ? [h('button', { type: 'button', class: 'stop', onclick: () =>
            act(() => del(`/v1/lite/sessions/${s.id}`)) }, t('stop')),
          confirmButton(t('logoutDevice'), t('sure'),
            () => act(() => del(`/v1/lite/sessions/${s.id}?logout=true`)), { class: 'danger logout' })]
          : h('button', { type: 'button', class: 'restart', onclick: () =>
            act(() => post('/v1/lite/sessions', { id: s.id })) }, t('startAgain'))));
  }

  // Rendered again only when something shown changed, so a half-typed phone survives.
  let shown = null;
  const stop = every(REFRESH_MS, async () => {
    try {
      const { items } = await get('/v1/lite/sessions');
      const key = JSON.stringify(items.map((s) => ({ ...s, updated_at: null,
        memory_bytes: null, memory_measured_at: null })));
      if (key === shown) {
        // Only the memory readings changed: written in place.
        for (const s of items) {
          const mem = [...list.querySelectorAll('article[data-session]')]
            .find((a) => a.dataset.session === s.id)?.querySelector('.mem');
          if (mem) mem.textContent = mib(s.memory_bytes);
        }
        return;
      }
      shown = key;
      replace(list, items.length ? items.map(card) : h('p', { class: 'muted' }, t('none')));
    } catch (e) {
      shown = null;
      replace(list, h('p', { class: 'error' }, e.message));
    }
  });
  const off = ctx.on((ev) => {
    if (ev.type === 'session.qr' && ev.data) {
      // A rotation: only the image changes.
      const img = [...list.querySelectorAll('article[data-session]')]
        .find((a) => a.dataset.session === ev.data.session_id)?.querySelector('img.qr');
      if (img) { showQr(ev.data.session_id, img); return; }
    }
    if (ev.type && ev.type.startsWith('session.')) stop.now();
  });
  return () => {
    stop();
    off();
    for (const { url } of qrs.values()) URL.revokeObjectURL(url);
  };
}
