// The live supervision tree (GET /v1/status, admin keys): every actor with its state,
// restarts, uptime and last error, read again every two seconds while the view is open.

import { age, badge, every, h, replace } from './dom.js';
import { t } from './i18n.js';
import { get } from './api.js';

const REFRESH_MS = 2000;

function node(n) {
  return h('li', { 'data-node': n.name, 'data-state': n.state },
    h('div', { class: 'node' },
      badge(n.state), ' ',
      h('strong', {}, n.name), ' ',
      h('span', { class: 'muted' }, n.kind),
      h('span', { class: 'stats' },
        `${t('restarts')}: ${n.restarts} · ${t('uptime')}: ${age(n.uptime_secs)}`),
      n.last_error ? h('div', { class: 'error' }, `${t('lastError')}: `, n.last_error) : null),
    n.children && n.children.length ? h('ul', {}, n.children.map(node)) : null);
}

export function mount(el) {
  const box = h('div', { class: 'tree', id: 'tree' }, h('p', { class: 'muted' }, t('loading')));
  replace(el, h('h2', {}, t('tree')), box);
  return every(REFRESH_MS, async () => {
    try {
      const s = await get('/v1/status');
      replace(box,
        h('p', { class: 'muted' }, `${t('node')}: `, s.node_id, ` · v${s.version}`),
        h('ul', {}, node(s.tree)));
    } catch (e) {
      replace(box, h('p', { class: 'error' }, e.message));
    }
  });
}
