// Keys and users: the key owner's own keys (make one, shown once and never stored by the page;
// revoke), and for admin keys every user with their keys, which an admin may revoke.

import { badge, confirmButton, h, replace, when } from './dom.js';
import { t } from './i18n.js';
import { del, get, post } from './api.js';

const SCOPES = ['read', 'send', 'sessions', 'admin'];

function keyRow(k, revoke) {
  return h('tr', { 'data-key': k.id },
    h('td', {}, k.name || '—'),
    h('td', {}, h('code', {}, `swk_${k.prefix}_…`)),
    h('td', {}, k.scopes.join(', ')),
    h('td', {}, when(k.created_at)),
    h('td', {}, when(k.last_used_at)),
    h('td', {}, k.expires_at ? when(k.expires_at) : '—'),
    h('td', {}, k.revoked_at ? badge('revoked')
      : confirmButton(t('revoke'), t('sure'), revoke, { class: 'danger revoke' })));
}

function keyTable(items, revoke) {
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, [t('name'), t('key'), t('scopes'), t('created'), t('lastUsed'),
      t('expires'), ''].map((x) => h('th', {}, x)))),
    h('tbody', {}, items.map((k) => keyRow(k, () => revoke(k))))));
}

export function mount(el, ctx) {
  const mine = h('div', { id: 'my-keys' });
  const made = h('div', { id: 'new-key', role: 'status' });
  const people = h('div', { id: 'users' });
  const name = h('input', { placeholder: t('name'), maxlength: 100 });
  const boxes = Object.fromEntries(SCOPES.map((s) =>
    [s, h('input', { type: 'checkbox', value: s, checked: s !== 'admin' })]));

  async function loadMine() {
    try {
      const { items } = await get('/v1/keys');
      replace(mine, keyTable(items, async (k) => {
        try { await del(`/v1/keys/${k.id}`); } catch (e) { made.textContent = e.message; }
        loadMine();
      }));
    } catch (e) {
      replace(mine, h('p', { class: 'error' }, e.message));
    }
  }

  const create = async (e) => {
    e.preventDefault();
    const scopes = SCOPES.filter((s) => boxes[s].checked);
    const body = { scopes };
    if (name.value.trim()) body.name = name.value.trim();
    try {
      const k = await post('/v1/keys', body);
      // Shown this once; the page keeps no copy.
      replace(made, h('p', {}, t('newKeyOnce')), h('code', { class: 'secret' }, k.key));
    } catch (err) {
      replace(made, h('p', { class: 'error' }, err.message));
    }
    loadMine();
  };

  async function userKeys(u, box) {
    try {
      const { items } = await get(`/v1/users/${u.id}/keys`);
      replace(box, keyTable(items, async (k) => {
        try { await del(`/v1/users/${u.id}/keys/${k.id}`); } catch (e) { replace(box, e.message); }
        userKeys(u, box);
      }));
    } catch (e) {
      replace(box, h('p', { class: 'error' }, e.message));
    }
  }

  async function loadUsers(cursor) {
    try {
      const r = await get(`/v1/users?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (!cursor) people.replaceChildren();
      for (const u of r.items) {
        const box = h('div', { class: 'user-keys' });
        people.append(h('article', { class: 'card', 'data-user': u.id },
          h('header', {}, h('strong', {}, u.email || u.id), ' ', u.nombre || '',
            u.admin ? [' ', badge('admin')] : ''),
          h('p', { class: 'muted' }, `${t('activeKeys')}: ${u.active_keys} · ${t('lastUsed')}: `
            + `${when(u.last_used_at)} · ${t('created')}: ${when(u.created_at)}`),
          h('button', { type: 'button', onclick: () => userKeys(u, box) }, t('showKeys')),
          box));
      }
      if (r.next_cursor) {
        const more = h('button', { type: 'button', onclick: () => { more.remove(); loadUsers(r.next_cursor); } },
          t('more'));
        people.append(more);
      }
    } catch (e) {
      replace(people, h('p', { class: 'error' }, e.message));
    }
  }

  replace(el,
    h('h2', {}, t('myKeys')),
    h('form', { class: 'row', onsubmit: create }, name,
      SCOPES.map((s) => h('label', { class: 'check' }, boxes[s], s)),
      h('button', { type: 'submit' }, t('makeKey'))),
    made,
    mine,
    ctx.me.admin ? [h('h2', {}, t('users')), people] : null);
  loadMine();
  if (ctx.me.admin) loadUsers(null);
  return () => {};
}
