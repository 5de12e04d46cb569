// Alerts (GET /v1/alerts?state=open|resolved|all, POST /v1/alerts/{id}/ack): open or resolved,
// acknowledged by whom, read again on `alert*` events. A daemon without the alerts routes
// answers 404: the view says so and the rest of the panel works on.

import { badge, every, facts, h, replace, when } from './dom.js';
import { t } from './i18n.js';
import { get, post } from './api.js';

const REFRESH_MS = 10000;

export function mount(el, ctx) {
  const list = h('div', { id: 'alerts', class: 'cards' });
  const notice = h('p', { class: 'notice', role: 'status' });
  const state = h('select', { id: 'alerts-state', onchange: () => stop.now() },
    ['open', 'resolved', 'all'].map((s) => h('option', { value: s }, t(`alerts_${s}`))));
  replace(el, h('h2', {}, t('alerts')), h('div', { class: 'row' }, state), notice, list);

  const card = (a) => h('article', { class: `card sev-${a.severity}`, 'data-alert': a.id },
    h('header', {}, badge(a.severity), ' ', h('strong', {}, a.kind), ' ',
      h('span', { class: 'muted' }, a.source)),
    h('p', {}, a.message),
    facts([
      [t('when'), when(a.created_at)],
      [t('resolved'), a.resolved_at && when(a.resolved_at)],
      [t('acked'), a.acked_at && `${when(a.acked_at)}${a.acked_by ? ` · ${a.acked_by}` : ''}`],
      [t('connection'), a.connection_id],
    ]),
    a.acked_at ? null : h('div', { class: 'actions' }, h('button', { type: 'button', class: 'ack',
      onclick: async () => {
        try { await post(`/v1/alerts/${a.id}/ack`); } catch (e) { notice.textContent = e.message; }
        stop.now();
      } }, t('ack'))));

  const stop = every(REFRESH_MS, async () => {
    try {
      const r = await get(`/v1/alerts?state=${encodeURIComponent(state.value)}`);
      notice.textContent = '';
      replace(list, r.alerts.length ? r.alerts.map(card) : h('p', { class: 'muted' }, t('none')));
    } catch (e) {
      if (e.status === 404) {
        replace(list, h('p', { class: 'muted', id: 'alerts-unavailable' }, t('alertsUnavailable')));
      } else {
        replace(list, h('p', { class: 'error' }, e.message));
      }
    }
  });
  const off = ctx.on((ev) => { if (ev.type && ev.type.startsWith('alert')) stop.now(); });
  return () => { stop(); off(); };
}
