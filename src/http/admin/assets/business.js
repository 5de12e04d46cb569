// Business numbers: status, quality rating, throughput level, and the account's webhook
// subscription as Meta reports it (read per number when the view opens); connecting a number
// (its secrets go in the request body only and the form is emptied at once) and removing one.

import { badge, confirmButton, every, facts, h, replace, when } from './dom.js';
import { t } from './i18n.js';
import { del, get, post } from './api.js';

const REFRESH_MS = 15000;
const FIELDS = [
  ['phone_number_id', 'text'],
  ['waba_id', 'text'],
  ['access_token', 'password'],
  ['app_secret', 'password'],
  ['verify_token', 'password'],
];

export function mount(el, ctx) {
  const list = h('div', { id: 'business-numbers', class: 'cards' });
  const notice = h('p', { class: 'notice', role: 'status' });
  const inputs = Object.fromEntries(FIELDS.map(([name, type]) =>
    [name, h('input', { name, type, required: true, autocomplete: 'off', spellcheck: 'false' })]));

  const connect = async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value.trim()]));
    for (const i of Object.values(inputs)) i.value = '';
    notice.textContent = t('connecting');
    try {
      const r = await post('/v1/business/numbers', body);
      notice.textContent = `${t('connected')}: ${r.display_phone_number || r.id}`
        + (r.webhooks ? ` · ${t('webhooks')}: ${r.webhooks.state}` : '');
    } catch (err) {
      notice.textContent = `${t('error')}: ${err.message}`;
    }
    stop.now();
  };

  replace(el,
    h('h2', {}, t('business')),
    list,
    h('details', { class: 'connect' },
      h('summary', {}, t('connectNumber')),
      h('form', { id: 'business-connect', class: 'stack', onsubmit: connect },
        FIELDS.map(([name]) => h('label', {}, t(name), inputs[name])),
        h('button', { type: 'submit' }, t('connect')))),
    notice);

  async function webhook(id, out) {
    try {
      const n = await get(`/v1/business/numbers/${id}`);
      const w = n.webhook_configuration || {};
      out.textContent = [w.state || '—',
        w.points_here === true ? t('pointsHere') : w.points_here === false ? t('pointsElsewhere') : '']
        .filter(Boolean).join(' · ');
    } catch (e) {
      out.textContent = e.message;
    }
  }

  function card(n) {
    const hook = h('output', { class: 'webhook-state' }, '…');
    webhook(n.id, hook);
    return h('article', { class: 'card', 'data-number': n.id, 'data-status': n.status || '' },
      h('header', {}, h('strong', {}, n.display_phone_number || n.phone || n.id), ' ',
        badge(n.status)),
      facts([
        [t('verifiedName'), n.verified_name],
        [t('quality'), n.quality_rating],
        [t('throughput'), n.throughput_level],
        [t('webhooks'), hook],
        ['phone_number_id', n.phone_number_id],
        ['waba_id', n.waba_id],
        [t('since'), when(n.created_at)],
      ]),
      h('div', { class: 'actions' }, confirmButton(t('remove'), t('sure'), async () => {
        try { await del(`/v1/business/numbers/${n.id}`); } catch (e) { notice.textContent = e.message; }
        stop.now();
      })));
  }

  let shown = null;
  const stop = every(REFRESH_MS, async () => {
    try {
      const { items } = await get('/v1/business/numbers');
      const key = JSON.stringify(items);
      if (key === shown) return;
      shown = key;
      replace(list, items.length ? items.map(card) : h('p', { class: 'muted' }, t('none')));
    } catch (e) {
      shown = null;
      replace(list, h('p', { class: 'error' }, e.message));
    }
  });
  const off = ctx.on((ev) => { if (ev.type && ev.type.startsWith('business.')) stop.now(); });
  return () => { stop(); off(); };
}
