// The panel's shell: the login (an API key, checked with GET /v1/me and kept in this tab's
// sessionStorage), the navigation between views (the URL's hash), the stream's state, and
// the live events every view may listen to (the last 500 are kept for the feed).

import { h, replace } from './dom.js';
import { t } from './i18n.js';
import { ApiError, Stream, get, session } from './api.js';
import * as tree from './tree.js';
import * as lite from './lite.js';
import * as business from './business.js';
import * as queue from './queue.js';
import * as alerts from './alerts.js';
import * as events from './events.js';
import * as users from './users.js';

const FEED_SIZE = 500;
const VIEWS = [
  ['tree', tree, true],
  ['lite', lite, false],
  ['business', business, false],
  ['queue', queue, false],
  ['alerts', alerts, false],
  ['events', events, false],
  ['users', users, false],
];

const root = document.getElementById('app');
const listeners = new Set();
const feed = [];
let stream = null;
let unmount = null;
let me = null;

const ctx = {
  get me() { return me; },
  /** Calls `fn` with every live event until the returned function is called. */
  on(fn) { listeners.add(fn); return () => listeners.delete(fn); },
  /** The events received since login, newest first. */
  feed() { return feed; },
};

function onEvent(ev) {
  feed.unshift(ev);
  if (feed.length > FEED_SIZE) feed.length = FEED_SIZE;
  for (const fn of listeners) {
    try { fn(ev); } catch (e) { console.error(e); }
  }
}

function showLogin(error) {
  document.documentElement.lang = t('lang');
  const input = h('input', { id: 'login-key', type: 'password', autocomplete: 'off',
    required: true, spellcheck: 'false' });
  replace(root, h('form', { id: 'login-form', class: 'login', onsubmit: (e) => {
    e.preventDefault();
    const key = input.value.trim();
    input.value = '';
    if (key) { session.set(key); start(); }
  } },
  h('h1', {}, t('title')),
  h('label', { for: 'login-key' }, t('apiKey')),
  input,
  h('button', { type: 'submit' }, t('login')),
  h('p', { class: 'muted' }, t('keyKept')),
  error ? h('p', { class: 'error', role: 'alert' }, error) : null));
  input.focus();
}

function logout(why) {
  session.clear();
  if (stream) stream.close();
  stream = null;
  if (unmount) unmount();
  unmount = null;
  me = null;
  feed.length = 0;
  listeners.clear();
  showLogin(typeof why === 'string' ? why : undefined);
}

window.addEventListener('sincro:unauthorized', () => { if (me) logout(t('badKey')); });

async function start() {
  try {
    me = await get('/v1/me');
  } catch (e) {
    session.clear();
    showLogin(e instanceof ApiError && e.status === 401 ? t('badKey') : e.message);
    return;
  }
  const views = VIEWS.filter(([, , adminOnly]) => !adminOnly || me.admin);
  const state = h('span', { id: 'stream-state', class: 'badge b-connecting', 'data-state': 'connecting' },
    t('connecting'));
  const nav = h('nav', {}, views.map(([name]) =>
    h('a', { href: `#/${name}`, id: `nav-${name}`, 'data-view': name }, t(name))));
  const main = h('main', { id: 'view' });
  replace(root,
    h('header', { class: 'top' },
      h('strong', {}, t('title')),
      h('span', { class: 'who' }, me.email || me.nombre || me.id, me.admin ? ` · ${t('admin')}` : ''),
      state,
      h('button', { type: 'button', id: 'logout', onclick: () => logout() }, t('logout'))),
    nav,
    main);
  stream = new Stream(onEvent, (s) => {
    state.dataset.state = s;
    state.className = `badge b-${s}`;
    state.textContent = t(s);
  });
  stream.open();
  const show = () => {
    const wanted = location.hash.replace(/^#\//, '');
    const found = views.find(([name]) => name === wanted) || views[0];
    for (const a of nav.querySelectorAll('a')) {
      a.classList.toggle('active', a.dataset.view === found[0]);
    }
    if (unmount) unmount();
    main.dataset.view = found[0];
    unmount = found[1].mount(main, ctx) || null;
  };
  window.onhashchange = show;
  show();
}

document.documentElement.lang = t('lang');
if (session.key) start(); else showLogin();
