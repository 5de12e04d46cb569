// The live event feed: every stream event since login, newest first, filtered by type family
// and by any text in it; can be paused. Event data is shown as text (a contact's name with
// markup in it reads as that markup, it is never run).

import { h, replace, when } from './dom.js';
import { t } from './i18n.js';

const FAMILIES = ['', 'message.', 'lead.', 'session.', 'business.', 'template.', 'alert'];
const SHOWN = 200;
const HEADLINE = ['nombre', 'telefono', 'from', 'direction', 'type', 'status', 'estado',
  'session_id', 'connection_id', 'message_id', 'lead_id', 'name', 'reason'];

function headline(ev) {
  const d = ev.data && typeof ev.data === 'object' ? ev.data : {};
  return HEADLINE.filter((k) => d[k] !== undefined && d[k] !== null && typeof d[k] !== 'object')
    .map((k) => `${k}: ${d[k]}`).join(' · ');
}

export function mount(el, ctx) {
  const family = h('select', { id: 'feed-type', onchange: () => render() },
    FAMILIES.map((f) => h('option', { value: f }, f ? `${f}*` : t('allTypes'))));
  const text = h('input', { id: 'feed-text', type: 'search', placeholder: t('filter'),
    oninput: () => render() });
  let paused = false;
  const pause = h('button', { type: 'button', id: 'feed-pause', onclick: () => {
    paused = !paused;
    pause.textContent = paused ? t('resume') : t('pause');
    if (!paused) render();
  } }, t('pause'));
  const list = h('ol', { id: 'feed', class: 'feed' });
  replace(el, h('h2', {}, t('events')), h('div', { class: 'row' }, family, text, pause), list);

  const matches = (ev) => (!family.value || (ev.type || '').startsWith(family.value))
    && (!text.value || JSON.stringify(ev).toLowerCase().includes(text.value.toLowerCase()));
  const item = (ev) => h('li', { 'data-type': ev.type, 'data-seq': ev.seq ?? '' },
    h('div', {}, h('span', { class: 'seq' }, ev.seq === null ? '—' : `#${ev.seq}`), ' ',
      h('strong', {}, ev.type), ' ', h('span', { class: 'muted' }, when(ev.at))),
    h('div', { class: 'headline' }, headline(ev)),
    h('details', {}, h('summary', {}, t('data')), h('pre', {}, JSON.stringify(ev.data, null, 2))));
  function render() {
    const shown = ctx.feed().filter(matches).slice(0, SHOWN);
    replace(list, shown.length ? shown.map(item) : h('li', { class: 'muted' }, t('noEvents')));
  }
  render();
  return ctx.on((ev) => {
    if (paused || !matches(ev)) return;
    if (list.firstChild && list.firstChild.classList.contains('muted')) list.replaceChildren();
    list.prepend(item(ev));
    while (list.children.length > SHOWN) list.lastChild.remove();
  });
}
