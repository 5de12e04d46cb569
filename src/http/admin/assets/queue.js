// The outbound queue: depth and the oldest waiting message's age per connection and priority
// (GET /v1/queue), the dead letters (failed and uncertain sends) with requeue and cancel, and
// the inbound dead letters with replay. Read again on message and alert events and every few
// seconds.

import { age, badge, every, h, replace, when } from './dom.js';
import { t } from './i18n.js';
import { get, post } from './api.js';

const REFRESH_MS = 5000;

function table(headers, rows) {
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows)));
}

export function mount(el, ctx) {
  const depth = h('div', { id: 'queue-depth' });
  const dead = h('div', { id: 'dead-letters' });
  const inbound = h('div', { id: 'inbound-dead-letters' });
  const notice = h('p', { class: 'notice', role: 'status' });
  replace(el,
    h('h2', {}, t('queue')),
    h('h3', {}, t('depth')), depth,
    h('h3', {}, t('deadLetters')), notice, dead,
    h('h3', {}, t('inboundDeadLetters')), inbound);

  const act = async (fn) => {
    notice.textContent = '';
    try { await fn(); } catch (e) { notice.textContent = `${t('error')}: ${e.message}`; }
    stop.now();
  };

  const depthRow = (d) => h('tr', { 'data-connection': d.connection_id, 'data-priority': d.priority },
    h('td', {}, d.connection_id.slice(0, 8), ' ', h('span', { class: 'muted' }, d.connection_type || '')),
    h('td', {}, d.priority),
    h('td', { class: 'num' }, String(d.pending)),
    h('td', { class: 'num' }, String(d.scheduled)),
    h('td', { class: 'num' }, String(d.sending)),
    h('td', { class: 'num' }, age(d.oldest_age_secs)));

  const deadRow = (m) => h('tr', { 'data-dead': m.id, class: m.uncertain ? 'uncertain' : '' },
    h('td', {}, when(m.updated_at || m.created_at)),
    h('td', {}, m.to || '—'),
    h('td', {}, m.type || m.tipo),
    h('td', {}, m.uncertain ? [badge('uncertain'), h('div', { class: 'muted' }, t('uncertainHint'))]
      : badge(m.queue_state || m.estado)),
    h('td', { class: 'num' }, String(m.attempts)),
    h('td', {}, [m.last_code, m.last_error || m.error].filter((x) => x !== null && x !== undefined).join(' ')),
    h('td', { class: 'actions' },
      h('button', { type: 'button', class: 'requeue',
        onclick: () => act(() => post(`/v1/messages/${m.id}/requeue`)) }, t('requeue')),
      h('button', { type: 'button', class: 'cancel',
        onclick: () => act(() => post(`/v1/messages/${m.id}/cancel`)) }, t('cancel'))));

  const inboundRow = (d) => h('tr', { 'data-inbound': d.id },
    h('td', {}, when(d.created_at)),
    h('td', {}, d.source),
    h('td', {}, d.connection_id ? d.connection_id.slice(0, 8) : '—'),
    h('td', {}, d.reason),
    h('td', { class: 'actions' }, d.replayed_at ? when(d.replayed_at)
      : h('button', { type: 'button', class: 'replay',
        onclick: () => act(() => post(`/v1/inbound/${d.id}/replay`)) }, t('replay'))));

  const stop = every(REFRESH_MS, async () => {
    const [q, m, i] = await Promise.allSettled([
      get('/v1/queue'), get('/v1/messages/dead-letter?limit=100'), get('/v1/inbound/dead-letter?limit=100')]);
    const show = (box, r, headers, render) => {
      if (r.status === 'rejected') { replace(box, h('p', { class: 'error' }, r.reason.message)); return; }
      const items = r.value.items;
      replace(box, items.length ? table(headers, items.map(render)) : h('p', { class: 'muted' }, t('none')));
    };
    show(depth, q, [t('connection'), t('priority'), t('waiting'), t('scheduled'), t('sending'), t('oldest')], depthRow);
    show(dead, m, [t('when'), t('to'), t('type'), t('state'), t('attempts'), t('lastErrorTitle'), ''], deadRow);
    show(inbound, i, [t('when'), t('source'), t('connection'), t('reason'), ''], inboundRow);
  });
  const off = ctx.on((ev) => {
    if (ev.type && (ev.type.startsWith('message.status') || ev.type.startsWith('alert'))) stop.now();
  });
  return () => { stop(); off(); };
}
