/* wa.js: runtime of the simulated WhatsApp Web page (sincro-sim web).
 *
 * Owns the surface browser drivers rely on in the real page (WhatsApp Web 2.3000.x):
 *   window.Debug.VERSION, the __d/require module registry with the WAWeb* modules, the Socket/Conn/Cmd state
 *   machine, Backbone-like collections (Msg, Chat, Contact, ...) and their events, sending, acks,
 *   media upload/download, pairing codes, logout and conflict; the legacy DOM (div[data-ref]).
 * Talks to the simulator server over the WebSocket at sim/ws (protocol in socket.rs) and keeps
 * the device token, keys and login in localStorage and its messages in IndexedDB (the browser
 * profile), like the real page: messages survive a reload or a crash, and the page confirms a
 * message or ack to the server (`receipt`) only once it is in IndexedDB, so the server delivers
 * again whatever a crash took before that.
 * Module objects are plain and mutable: drivers may reassign any function on them. */
(function () {
  'use strict';

  var VERSION = '__WA_VERSION__';

  // ------------------------------------------------------------------ the module registry
  // The real page (2.3000.x, Meta's "Comet" build) ships its code as bundles of calls to a global
  // `__d(name, dependencies, factory, flags)`; `require(name)` runs a module's factory on first
  // use and returns its `module.exports`, and throws `Requiring unknown module "X"` for a name
  // nobody defined. Drivers call `window.require('WAWeb…')`; some hook `__d` before the app
  // starts to see each module as it is defined. So the simulated page defines every module it
  // has through `__d` too, and serves them through the same `require`. Factories get
  // (global, require, importDefault, importNamespace, requireLazy, module, exports, ...deps).
  // A registry already on the page (a driver's shim) is used as it is.
  var registry = Object.create(null);
  function defineModule(name, deps, factory, flags) {
    if (registry[name]) return; // the real __d ignores a second definition
    registry[name] = { deps: deps || [], factory: factory, flags: flags || 0, module: null };
  }
  function requireModule(name) {
    var rec = registry[name];
    if (!rec) throw new Error('Requiring unknown module "' + name + '"');
    if (!rec.module) {
      var module = { exports: {} };
      rec.module = module; // set first: a cycle sees the exports filled so far, as in the real one
      var deps = rec.deps.map(function (d) { return requireModule(d); });
      var ret = rec.factory.apply(null, [window, requireModule, importDefault, importNamespace, requireLazy, module, module.exports].concat(deps));
      if (ret !== undefined && module.exports && Object.keys(module.exports).length === 0) module.exports = ret;
    }
    return rec.module.exports;
  }
  function importDefault(name) {
    var m = requireModule(name);
    return m && m.__esModule ? m['default'] : m;
  }
  function importNamespace(name) { return requireModule(name); }
  function requireLazy(names, cb) {
    setTimeout(function () { cb.apply(null, names.map(requireModule)); }, 0);
  }
  if (typeof window.__d !== 'function') window.__d = defineModule;
  if (typeof window.require !== 'function') window.require = requireModule;
  if (typeof window.importDefault !== 'function') window.importDefault = importDefault;
  if (typeof window.importNamespace !== 'function') window.importNamespace = importNamespace;
  if (typeof window.requireLazy !== 'function') window.requireLazy = requireLazy;
  // Shorthand for this file: a module whose factory builds its exports from its dependencies.
  function define(name, deps, build) {
    window.__d(name, deps, function (g, r, iD, iN, rL, module) {
      module.exports = build.apply(null, Array.prototype.slice.call(arguments, 7));
    }, 1);
  }

  // WAWebDebug-like global: drivers read window.Debug.VERSION first (`2.3000.<n>`).
  window.Debug = window.Debug || {};
  window.Debug.VERSION = VERSION;

  // ------------------------------------------------------------------ utilities
  function hidden(obj, name, value) {
    Object.defineProperty(obj, name, { value: value, writable: true, enumerable: false, configurable: true });
  }
  function randomBytes(n) {
    var a = new Uint8Array(n);
    crypto.getRandomValues(a);
    return a;
  }
  function randomHex(n) {
    return Array.from(randomBytes(n), function (b) { return ('0' + b.toString(16)).slice(-2); }).join('').toUpperCase();
  }
  function toBytes(x) {
    if (x instanceof Uint8Array) return x;
    if (x instanceof ArrayBuffer) return new Uint8Array(x);
    if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    if (typeof x === 'string') return new TextEncoder().encode(x);
    return new Uint8Array(0);
  }
  function encodeB64(x) {
    var bytes = toBytes(x), s = '';
    for (var i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }
  function decodeB64(s) {
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  async function sha256B64(buf) {
    if (window.crypto && crypto.subtle) return encodeB64(await crypto.subtle.digest('SHA-256', buf));
    // Not a secure context: no WebCrypto. The server computes real hashes; this is only an id.
    return encodeB64(randomBytes(32));
  }
  function nowSecs() { return Math.floor(Date.now() / 1000); }
  function widStr(w) {
    if (w == null) return undefined;
    if (typeof w === 'string') return w;
    return w._serialized || String(w);
  }

  // ------------------------------------------------------------------ events, models, collections
  class Emitter {
    constructor() { hidden(this, '_events', {}); }
    on(names, cb, ctx) { return this._listen(names, cb, ctx, false); }
    once(names, cb, ctx) { return this._listen(names, cb, ctx, true); }
    _listen(names, cb, ctx, once) {
      if (typeof cb !== 'function') return this;
      String(names).split(/\s+/).filter(Boolean).forEach(function (n) {
        (this._events[n] = this._events[n] || []).push({ cb: cb, ctx: ctx, once: once });
      }, this);
      return this;
    }
    off(names, cb) {
      var keys = names ? String(names).split(/\s+/).filter(Boolean) : Object.keys(this._events);
      keys.forEach(function (n) {
        if (!this._events[n]) return;
        this._events[n] = cb ? this._events[n].filter(function (l) { return l.cb !== cb; }) : [];
      }, this);
      return this;
    }
    listenTo(other, names, cb) { other.on(names, cb, this); return this; }
    stopListening(other, names, cb) { if (other) other.off(names, cb); return this; }
    trigger(name) {
      var args = Array.prototype.slice.call(arguments, 1);
      var list = (this._events[name] || []).slice();
      for (var i = 0; i < list.length; i++) {
        var l = list[i];
        if (l.once) this._events[name] = this._events[name].filter(function (x) { return x !== l; });
        try { l.cb.apply(l.ctx || this, args); } catch (e) { console.error('listener of ' + name + ' failed', e); }
      }
      return this;
    }
    emit() { return this.trigger.apply(this, arguments); }
  }

  function plain(v, depth) {
    depth = depth || 0;
    if (v === null || v === undefined) return v;
    if (typeof v === 'function' || typeof v === 'symbol') return undefined;
    if (typeof v !== 'object') return v;
    if (depth > 5 || v instanceof Collection || v instanceof Blob || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return undefined;
    if (Array.isArray(v)) return v.map(function (x) { return plain(x, depth + 1); });
    var out = {};
    Object.keys(v).forEach(function (k) {
      var p = plain(v[k], depth + 1);
      if (p !== undefined) out[k] = p;
    });
    return out;
  }

  class Model extends Emitter {
    constructor(attrs) {
      super();
      hidden(this, '_collections', []);
      if (attrs) Object.assign(this, attrs);
    }
    get(key) { return this[key]; }
    set(key, value, options) {
      var changes = key;
      if (typeof key !== 'object' || key === null) { changes = {}; changes[key] = value; } else { options = value; }
      var changed = [];
      Object.keys(changes).forEach(function (k) {
        if (this[k] !== changes[k]) { this[k] = changes[k]; changed.push(k); }
      }, this);
      if (!(options && options.silent)) {
        changed.forEach(function (k) { this.trigger('change:' + k, this, this[k]); }, this);
        if (changed.length) this.trigger('change', this);
      }
      return this;
    }
    // Backbone collections re-emit their models' events.
    trigger(name) {
      Emitter.prototype.trigger.apply(this, arguments);
      var args = arguments;
      this._collections.slice().forEach(function (c) { c.trigger.apply(c, args); });
      return this;
    }
    serialize() { return plain(this); }
    toJSON() { return this.serialize(); }
  }

  class Collection extends Emitter {
    constructor(modelClass) {
      super();
      this.modelClass = modelClass || Model;
      this.models = [];
      // Enumerable, as the real one's index: drivers look for the Map among its keys.
      this._index = new Map();
    }
    get length() { return this.models.length; }
    _key(id) {
      if (id === null || id === undefined) return '';
      if (typeof id === 'string') return id;
      if (id._serialized) return id._serialized;
      if (id.id !== undefined && id.id !== id) return this._key(id.id);
      return String(id);
    }
    get(id) { return this._index.get(this._key(id)); }
    has(id) { return this._index.has(this._key(id)); }
    add(input, options) {
      var list = Array.isArray(input) ? input : [input], added = [], all = [];
      list.forEach(function (m) {
        if (!(m instanceof Model)) m = new this.modelClass(m);
        var key = this._key(m.id), existing = this._index.get(key);
        if (existing) {
          if (options && options.merge && existing !== m) existing.set(plain(m));
          all.push(existing);
          return;
        }
        this._index.set(key, m);
        this.models.push(m);
        m._collections.push(this);
        added.push(m);
        all.push(m);
      }, this);
      if (!(options && options.silent)) {
        added.forEach(function (m) { this.trigger('add', m, this, options || {}); }, this);
      }
      return Array.isArray(input) ? all : all[0];
    }
    remove(input, options) {
      var list = Array.isArray(input) ? input : [input], removed = [];
      list.forEach(function (x) {
        var m = this.get(x && x.id !== undefined ? x.id : x);
        if (!m) return;
        this._index.delete(this._key(m.id));
        this.models = this.models.filter(function (y) { return y !== m; });
        m._collections.splice(m._collections.indexOf(this), 1);
        removed.push(m);
        if (!(options && options.silent)) this.trigger('remove', m, this, options || {});
      }, this);
      return Array.isArray(input) ? removed : removed[0];
    }
    getModelsArray() { return this.models.slice(); }
    toArray() { return this.models.slice(); }
    at(i) { return this.models[i < 0 ? this.models.length + i : i]; }
    first() { return this.models[0]; }
    last() { return this.models[this.models.length - 1]; }
    forEach(fn, ctx) { this.models.slice().forEach(fn, ctx); }
    map(fn, ctx) { return this.models.map(fn, ctx); }
    filter(fn, ctx) { return this.models.filter(fn, ctx); }
    some(fn, ctx) { return this.models.some(fn, ctx); }
    where(attrs) {
      return this.models.filter(function (m) {
        return Object.keys(attrs).every(function (k) { return m[k] === attrs[k]; });
      });
    }
    findFirst(fn) { return this.models.find(fn); }
    serialize() { return this.models.map(function (m) { return m.serialize(); }); }
    toJSON() { return this.serialize(); }
  }

  // ------------------------------------------------------------------ ids
  class Wid {
    constructor(s) {
      var str = typeof s === 'string' ? s : (s && (s._serialized || String(s))) || '';
      var at = str.indexOf('@');
      this.server = at >= 0 ? str.slice(at + 1) : 'c.us';
      this.user = at >= 0 ? str.slice(0, at) : str;
      if (this.server === 's.whatsapp.net') this.server = 'c.us';
      this._serialized = this.user + '@' + this.server;
    }
    toString() { return this._serialized; }
    toJid() { return this.user + '@' + (this.server === 'c.us' ? 's.whatsapp.net' : this.server); }
    equals(o) { return !!o && widStr(o) === this._serialized; }
    isUser() { return this.server === 'c.us' || this.server === 'lid'; }
    isLid() { return this.server === 'lid'; }
    isGroup() { return this.server === 'g.us'; }
    isStatus() { return this._serialized === 'status@broadcast'; }
    isBroadcast() { return this.server === 'broadcast'; }
    isNewsletter() { return this.server === 'newsletter'; }
    isServer() { return this.user === 'server' && this.server === 'c.us'; }
    isCompanion() { return false; }
  }
  function createWid(s) { return s instanceof Wid ? s : new Wid(s); }

  class MsgKey {
    constructor(o) {
      o = o || {};
      this.fromMe = o.fromMe !== undefined ? !!o.fromMe : o.selfDir === 'out';
      var remote = o.remote || (this.fromMe ? o.to : o.from);
      this.remote = createWid(remote);
      this.id = o.id || MsgKey.newId();
      if (o.participant) this.participant = createWid(o.participant);
      this._serialized = this.fromMe + '_' + this.remote._serialized + '_' + this.id +
        (this.participant ? '_' + this.participant._serialized : '');
    }
    toString() { return this._serialized; }
    equals(o) { return !!o && widStr(o) === this._serialized; }
    static newId() { return '3EB0' + randomHex(8); }
    static fromString(s) {
      var p = String(s).split('_');
      return new MsgKey({ fromMe: p[0] === 'true', remote: p[1], id: p[2], participant: p[3] });
    }
  }

  // ------------------------------------------------------------------ message, chat, contact models
  class MsgModel extends Model {
    constructor(attrs) {
      super(attrs);
      if (!(this.id instanceof MsgKey)) this.id = new MsgKey(this.id || {});
      if (this.from && !(this.from instanceof Wid)) this.from = createWid(this.from);
      if (this.to && !(this.to instanceof Wid)) this.to = createWid(this.to);
      // A number-change notice names the old and the new id as Wids, as WhatsApp Web does.
      if (this.subtype === 'change_number' && Array.isArray(this.templateParams)) {
        this.templateParams = this.templateParams.map(createWid);
      }
      if (this.ack === undefined) this.ack = 0;
      if (this.t === undefined) this.t = nowSecs();
      if (this.type === undefined) this.type = 'chat';
      if (this.directPath && !this.mediaData) {
        this.mediaData = { mediaStage: 'RESOLVED', type: this.type, mimetype: this.mimetype, size: this.size, filehash: this.filehash };
      }
    }
    async downloadMedia() { if (this.mediaData) this.mediaData.mediaStage = 'RESOLVED'; return true; }
    getRawLinks() { return Linkify.findLinks(this.body || this.caption || ''); }
    getChat() { return Collections.Chat.get(this.id.remote); }
  }
  class MsgCollection extends Collection {
    async getMessagesById(ids) {
      var self = this;
      return { messages: (ids || []).map(function (id) { return self.get(id); }).filter(Boolean) };
    }
  }
  class ChatModel extends Model {
    constructor(attrs) {
      super(attrs);
      this.id = createWid(this.id);
      if (this.unreadCount === undefined) this.unreadCount = 0;
      if (this.archive === undefined) this.archive = false;
      if (this.t === undefined) this.t = nowSecs();
      this.isGroup = this.id.isGroup();
      if (this.formattedTitle === undefined) this.formattedTitle = this.name || this.id.user;
      hidden(this, 'msgs', new MsgCollection(MsgModel));
    }
  }
  class ChatCollection extends Collection {
    async find(id) { return getOrCreateChat(id); }
  }
  class ContactModel extends Model {
    constructor(attrs) {
      super(attrs);
      this.id = createWid(this.id);
      if (this.number === undefined) this.number = this.id.user;
      if (this.isUser === undefined) this.isUser = this.id.isUser();
      if (this.isWAContact === undefined) this.isWAContact = true;
      if (this.isMyContact === undefined) this.isMyContact = false;
      if (this.type === undefined) this.type = 'in';
    }
  }
  class ContactCollection extends Collection {
    async find(id) { return getOrCreateContact(id); }
  }

  var Collections = {
    Msg: new MsgCollection(MsgModel),
    Chat: new ChatCollection(ChatModel),
    Contact: new ContactCollection(ContactModel),
    Label: new Collection(Model),
    GroupMetadata: new Collection(Model),
    Call: new Collection(Model),
    Blocklist: new Collection(Model),
    BusinessProfile: new Collection(Model),
    Status: new Collection(Model),
    Presence: new Collection(Model),
  };

  function getOrCreateContact(id, name) {
    var wid = createWid(id), c = Collections.Contact.get(wid);
    if (!c) c = Collections.Contact.add({ id: wid, name: undefined, pushname: name });
    else if (name && c.pushname !== name) c.set('pushname', name);
    return c;
  }
  function getOrCreateChat(id, name) {
    var wid = createWid(id && id.id instanceof Wid ? id.id : id), chat = Collections.Chat.get(wid);
    if (!chat) chat = Collections.Chat.add({ id: wid, name: name });
    return chat;
  }

  // ------------------------------------------------------------------ socket, conn, cmd, stream
  class SocketModel extends Model {
    takeover() { send({ t: 'takeover' }); return Promise.resolve(); }
    logout() {
      if (ws && ws.readyState === 1) send({ t: 'logout' });
      else doLogout('self');
      return Promise.resolve();
    }
    poke() { return Promise.resolve(); }
  }
  var Socket = new SocketModel({ state: 'OPENING', hasSynced: false, stream: 'DISCONNECTED' });

  class ConnModel extends Model {
    serialize() {
      return plain({
        ref: this.ref, wid: this.wid, pushname: this.pushname, platform: this.platform,
        battery: this.battery, plugged: this.plugged, connected: this.connected,
        phone: this.phone, locales: this.locales, is24h: this.is24h, isResponse: 'true',
      });
    }
  }
  var Conn = new ConnModel({
    ref: null, wid: undefined, pushname: undefined, platform: 'android', battery: 100, plugged: true,
    connected: false, is24h: true, locales: 'en-US', phone: { wa_version: '2.25.1.1', os_version: '14', device_manufacturer: 'Sim', device_model: 'Phone' },
  });

  class CmdEmitter extends Emitter {
    refreshQR() { send({ t: 'refresh_qr' }); return Promise.resolve(); }
  }
  var Cmd = new CmdEmitter();

  class StreamModel extends Model {
    markAvailable() { this.set('available', true); return Promise.resolve(); }
    markUnavailable() { this.set('available', false); return Promise.resolve(); }
  }
  var Stream = new StreamModel({ available: false, mode: 'QR', displayInfo: 'NORMAL', info: 'NORMAL' });

  var OfflineMessageHandler = {
    progress: 100,
    getOfflineDeliveryProgress: function () { return this.progress; },
    isResumeFromRestartComplete: function () { return Socket.hasSynced; },
  };
  function offlineProgress(p) {
    OfflineMessageHandler.progress = p;
    Cmd.trigger('offline_progress_update_from_bridge', p);
    Cmd.trigger('offline_progress_update', p);
    var bar = document.querySelector('#loading progress');
    if (bar) bar.value = p;
  }

  // ------------------------------------------------------------------ profile (localStorage)
  var STORE_KEY = 'sincro-sim-wa-profile';
  function loadProfile() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch (e) { return {}; }
  }
  var profile = loadProfile();
  function saveProfile() { try { localStorage.setItem(STORE_KEY, JSON.stringify(profile)); } catch (e) { /* no storage */ } }
  function clearProfile() {
    profile = {};
    try { localStorage.removeItem(STORE_KEY); } catch (e) { /* no storage */ }
    dropMessages();
  }

  // ------------------------------------------------------------------ messages (IndexedDB)
  var DB_NAME = 'sincro-sim-wa', dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve) {
        var req;
        try { req = indexedDB.open(DB_NAME, 1); } catch (e) { resolve(null); return; }
        req.onupgradeneeded = function () { req.result.createObjectStore('msgs', { keyPath: 'k' }); };
        req.onsuccess = function () { resolve(req.result); };
        req.onerror = function () { resolve(null); };
        req.onblocked = function () { resolve(null); };
      });
    }
    return dbPromise;
  }
  function msgRecord(m) {
    return Object.assign(primitives(m), {
      k: m.id._serialized,
      key: { fromMe: m.id.fromMe, remote: widStr(m.id.remote), id: m.id.id, participant: widStr(m.id.participant) },
      from: widStr(m.from), to: widStr(m.to),
      templateParams: Array.isArray(m.templateParams) ? m.templateParams.map(widStr) : undefined,
    });
  }
  // Resolves once the message is committed to the profile (false: no storage).
  function persistMsg(m) {
    return db().then(function (d) {
      if (!d) return false;
      return new Promise(function (resolve) {
        var tx = d.transaction('msgs', 'readwrite');
        tx.objectStore('msgs').put(msgRecord(m));
        tx.oncomplete = function () { resolve(true); };
        tx.onerror = tx.onabort = function () { resolve(false); };
      });
    });
  }
  // The messages the profile keeps, back into the collections (not new: no isNewMsg).
  function loadMessages() {
    return db().then(function (d) {
      if (!d) return;
      return new Promise(function (resolve) {
        var req = d.transaction('msgs', 'readonly').objectStore('msgs').getAll();
        req.onsuccess = function () {
          (req.result || []).sort(function (a, b) { return (a.t || 0) - (b.t || 0); }).forEach(function (r) {
            var attrs = Object.assign({}, r);
            delete attrs.k;
            delete attrs.key;
            attrs.id = new MsgKey(r.key);
            attrs.isNewMsg = false;
            var msg = new MsgModel(attrs);
            if (Collections.Msg.get(msg.id)) return;
            var chat = getOrCreateChat(msg.id.remote, r.notifyName);
            chat.msgs.add(msg);
            Collections.Msg.add(msg);
            logMsg(msg);
          });
          resolve();
        };
        req.onerror = function () { resolve(); };
      });
    }).catch(function () { /* no storage */ });
  }
  function dropMessages() {
    var pending = dbPromise;
    dbPromise = null;
    (pending || Promise.resolve(null)).then(function (d) {
      if (d) d.close();
      try { indexedDB.deleteDatabase(DB_NAME); } catch (e) { /* no storage */ }
    });
  }
  if (/[?&]post_logout=1/.test(location.search)) clearProfile();
  if (!profile.keys) {
    profile.keys = { noise: encodeB64(randomBytes(32)), identity: encodeB64(randomBytes(32)), adv: encodeB64(randomBytes(32)) };
    saveProfile();
  }

  // ------------------------------------------------------------------ the module table
  var DEVICE_PLATFORM = 'WEB';

  var Linkify = {
    findLinks: function (text) {
      var re = /\b((?:https?:\/\/|www\.)[^\s<]+)/gi, out = [], m;
      while ((m = re.exec(String(text || '')))) {
        var url = m[1].indexOf('www.') === 0 ? 'http://' + m[1] : m[1];
        out.push({ url: url, href: url, index: m.index, isSuspicious: false, domain: url.replace(/^https?:\/\//, '').split('/')[0] });
      }
      return out;
    },
    findLink: function (text) { return Linkify.findLinks(text)[0] || null; },
  };

  // Media: opaque data → prep → media object → upload, as processMediaData chains them.
  var blobsByHash = new Map();
  var mediaObjects = new Map();
  class OpaqueData {
    constructor(blob, type) { hidden(this, '_blob', blob); this.type = type || blob.type; this.size = blob.size; hidden(this, '_url', null); }
    url() { if (!this._url) this._url = URL.createObjectURL(this._blob); return this._url; }
    static createFromData(data, mimetype) {
      var blob = data instanceof Blob ? data : new Blob([data], { type: mimetype });
      return Promise.resolve(new OpaqueData(blob, mimetype || blob.type));
    }
    forceToBlob() { return this._blob; }
    formData() { return this._blob; }
    arrayBuffer() { return this._blob.arrayBuffer(); }
    autorelease() { }
    retain() { return this; }
    release() { }
  }
  function msgTypeFor(mimetype, params) {
    params = params || {};
    var m = String(mimetype || '').toLowerCase();
    if (params.asSticker || params.isSticker) return 'sticker';
    if (params.asDocument || params.isDocument) return 'document';
    if (params.isPtt || params.asPtt) return 'ptt';
    if (m === 'image/webp') return 'sticker';
    if (m.indexOf('image/') === 0) return 'image';
    if (m.indexOf('video/') === 0 || params.asGif) return 'video';
    if (m.indexOf('audio/') === 0) return 'audio';
    return 'document';
  }
  class MediaDataModel extends Model {
    toJSON() { var o = {}; Object.keys(this).forEach(function (k) { o[k] = this[k]; }, this); return o; }
  }
  class MediaObject extends Model {
    consolidate(json) { Object.assign(this, json || {}); return this; }
  }
  var InMemoryMediaBlobCache = {
    get: function (hash) { return blobsByHash.get(hash); },
    put: function (hash, blob) { blobsByHash.set(hash, blob); },
    has: function (hash) { return blobsByHash.has(hash); },
    remove: function (hash) { blobsByHash.delete(hash); },
  };
  function blobOf(x) {
    if (!x) return null;
    if (x instanceof Blob) return x;
    if (x instanceof OpaqueData) return x.forceToBlob();
    if (x.mediaBlob) return blobOf(x.mediaBlob);
    return null;
  }
  async function uploadMedia(args) {
    args = args || {};
    var mo = args.mediaObject || {};
    var blob = blobOf(mo) || blobsByHash.get(mo.filehash) || blobOf(args.mediaData) || blobOf(args.blob);
    if (!blob) throw new Error('media-fault: nothing to upload');
    var mimetype = args.mimetype || mo.mimetype || blob.type || 'application/octet-stream';
    var url = new URL('sim/upload', location.href);
    url.search = '';
    url.searchParams.set('mimetype', mimetype);
    if (mo.filename || blob.name) url.searchParams.set('filename', mo.filename || blob.name);
    var res = await fetch(url.href, { method: 'POST', body: blob });
    if (!res.ok) throw new Error('upload failed: HTTP ' + res.status);
    var e = await res.json();
    var mediaEntry = {
      mmsUrl: new URL('sim/media?direct_path=' + encodeURIComponent(e.directPath), location.href).href,
      deprecatedMms3Url: undefined,
      directPath: e.directPath, mediaKey: e.mediaKey, mediaKeyTimestamp: e.mediaKeyTimestamp,
      encFilehash: e.encFilehash, uploadHash: e.encFilehash, filehash: e.filehash, size: e.size,
      sidecar: undefined, firstFrameSidecar: undefined,
    };
    if (mo instanceof MediaObject) mo.consolidate({ mediaEntry: mediaEntry, uploaded: true });
    return { mediaEntry: mediaEntry, mediaObject: mo };
  }
  async function downloadAndMaybeDecrypt(opts) {
    opts = opts || {};
    if (!opts.directPath) throw new Error('media-fault: no directPath');
    var url = new URL('sim/media', location.href);
    url.search = '';
    url.searchParams.set('direct_path', opts.directPath);
    if (opts.mediaKey) url.searchParams.set('media_key', opts.mediaKey);
    var res = await fetch(url.href, { signal: opts.signal });
    if (!res.ok) throw new Error('media-fault: download failed HTTP ' + res.status);
    return res.arrayBuffer();
  }

  var MODULES = {
    WAWebSocketModel: { Socket: Socket },
    WAWebConnModel: { Conn: Conn },
    WAWebCmd: { Cmd: Cmd },
    WAWebOfflineHandler: { OfflineMessageHandler: OfflineMessageHandler },
    WAWebStreamModel: { Stream: Stream },
    WAWebAltDeviceLinkingApi: {
      pairingType: null,
      setPairingType: function (t) { MODULES.WAWebAltDeviceLinkingApi.pairingType = t; return Promise.resolve(); },
      initializeAltDeviceLinking: function () { return Promise.resolve(); },
      initializeQRLinking: function () { MODULES.WAWebAltDeviceLinkingApi.pairingType = 'QR'; return Promise.resolve(); },
      startAltLinkingFlow: function (phone, showNotification) { return rpc({ t: 'pair_request', phone: String(phone), notify: !!showNotification }); },
    },
    WABase64: { encodeB64: encodeB64, decodeB64: decodeB64 },
    WAWebCompanionRegClientUtils: { DEVICE_PLATFORM: DEVICE_PLATFORM },
    // WAWebAdvSignatureApi signs and checks the account's ADV device identity; the secret key
    // itself lives in the user prefs (WAWebUserPrefsMultiDevice), read synchronously.
    WAWebAdvSignatureApi: {
      signDeviceIdentity: function () { return Promise.reject(new Error('ADV signing is done by the server in the simulator')); },
    },
    WAWebUserPrefsMultiDevice: {
      getADVSecretKey: function () { return profile.keys.adv; },
      setADVSecretKey: function (k) { profile.keys.adv = String(k); saveProfile(); },
    },
    WAWebUserPrefsInfoStore: {
      waNoiseInfo: { get: function () { return Promise.resolve({ staticKeyPair: { pubKey: decodeB64(profile.keys.noise), privKey: new ArrayBuffer(32) } }); } },
    },
    WAWebSignalStoreApi: {
      waSignalStore: {
        getRegistrationInfo: function () {
          return Promise.resolve({ registrationId: 1, identityKeyPair: { pubKey: decodeB64(profile.keys.identity), privKey: new ArrayBuffer(32) } });
        },
      },
    },
    WAWebUserPrefsMeUser: {
      getMaybeMePnUser: function () { return Conn.wid || (profile.login ? createWid(profile.login.wid) : undefined); },
      getMaybeMeLidUser: function () { return profile.login && profile.login.lid ? createWid(profile.login.lid) : undefined; },
      getMaybeMeUser: function () { return MODULES.WAWebUserPrefsMeUser.getMaybeMePnUser(); },
      getMeUser: function () {
        var me = MODULES.WAWebUserPrefsMeUser.getMaybeMePnUser();
        if (!me) throw new Error('not logged in');
        return me;
      },
    },
    WAWebMiscBrowserUtils: {
      info: function () {
        var m = /Chrom(?:e|ium)\/([\d.]+)/.exec(navigator.userAgent);
        return { name: 'Chrome', version: m ? m[1] : '0', os: 'Linux', ua: navigator.userAgent };
      },
    },
    WAWebCollections: Collections,
    // The call collection module's export is the collection itself.
    WAWebCallCollection: Collections.Call,
    WAWebWidFactory: {
      createWid: createWid,
      createWidFromWidLike: createWid,
      asUserWidOrThrow: function (w) {
        var x = createWid(w);
        if (!x.isUser()) throw new Error('asUserWidOrThrow: ' + x._serialized + ' is not a user');
        return x;
      },
      toUserWidOrThrow: function (w) { return MODULES.WAWebWidFactory.asUserWidOrThrow(w); },
      createUserWid: function (user, server) { return createWid(String(user) + '@' + (server || 'c.us')); },
      toUserWid: function (w) { return createWid(w); },
      isWidlike: function (w) { return typeof w === 'string' ? w.indexOf('@') > 0 : !!(w && w._serialized); },
    },
    WAWebMsgKey: MsgKey,
    WAWebSendMsgChatAction: { addAndSendMsgToChat: addAndSendMsgToChat },
    WAWebUpdateUnreadChatAction: { sendSeen: sendSeen, markUnread: function (chat) { chatOf(chat).set('unreadCount', -1); return Promise.resolve(); } },
    WAWebFindChatAction: {
      findOrCreateLatestChat: function (wid) {
        var existed = Collections.Chat.has(createWid(wid));
        return Promise.resolve({ chat: getOrCreateChat(wid), created: !existed });
      },
    },
    WAWebChatStateBridge: {
      sendChatStateComposing: function () { return Promise.resolve(); },
      sendChatStateRecording: function () { return Promise.resolve(); },
      sendChatStatePaused: function () { return Promise.resolve(); },
    },
    WAWebGetEphemeralFieldsMsgActionsUtils: { getEphemeralFields: function () { return {}; } },
    WALinkify: Linkify,
    WAWebMsgReply: {},
    // The module's export is the OpaqueData class itself (drivers test `instanceof` against
    // it), with createFromData as a static.
    WAWebMediaOpaqueData: OpaqueData,
    WAWebPrepRawMedia: {
      prepRawMedia: function (opaque, params) {
        var prep = (async function () {
          var blob = blobOf(opaque);
          var buf = await blob.arrayBuffer();
          var filehash = await sha256B64(buf);
          blobsByHash.set(filehash, blob);
          var type = msgTypeFor(opaque.type, params);
          return new MediaDataModel({
            type: type, mimetype: opaque.type || blob.type, size: blob.size, filehash: filehash,
            filename: blob.name || undefined, isGif: !!(params && params.asGif), mediaBlob: opaque,
            mediaStage: 'RESOLVED', preview: undefined,
          });
        })();
        return { waitForPrep: function () { return prep; } };
      },
    },
    WAWebMediaStorage: {
      getOrCreateMediaObject: function (filehash) {
        var mo = mediaObjects.get(filehash);
        if (!mo) { mo = new MediaObject({ filehash: filehash }); mediaObjects.set(filehash, mo); }
        return mo;
      },
    },
    WAWebMmsMediaTypes: {
      msgToMediaType: function (o) { o = o || {}; return o.isGif ? 'gif' : (o.type || 'document'); },
      // Media types of the upload protocol (MMS v4): the message types, with voice notes as audio.
      castToV4: function (t) { return t === 'ptt' ? 'audio' : t; },
    },
    WAWebMediaMmsV4Upload: { uploadMedia: uploadMedia },
    // Whether a media type's blob is kept in the in-memory cache while it uploads (here:
    // images, stickers and videos; documents and audio are read from the media object).
    WAWebMediaDataUtils: {
      shouldUseMediaCache: function (v4type) { return ['image', 'sticker', 'video', 'gif'].indexOf(String(v4type)) >= 0; },
    },
    WAWebMediaInMemoryBlobCache: { InMemoryMediaBlobCache: InMemoryMediaBlobCache },
    WAWebDownloadManager: { downloadManager: { downloadAndMaybeDecrypt: downloadAndMaybeDecrypt } },
    WAWebAddonReactionTableMode: { reactionTableMode: { bulkUpsert: function (rows) { return Promise.resolve(rows); } } },
    WAWebAddonPollVoteTableMode: { pollVoteTableMode: { bulkUpsert: function (rows) { return Promise.resolve(rows); } } },
    WAWebBackendJobsCommon: { mediaTypeFromProtobuf: function () { return null; } },
    WAWebE2EProtoUtils: { typeAttributeFromProtobuf: function () { return 'text'; } },
  };

  // Every module of the table above is defined like the page's own (lazily, through __d).
  Object.keys(MODULES).forEach(function (name) {
    define(name, [], function () { return MODULES[name]; });
  });

  // Getters the real page keeps apart from the models (WAWebChatGetters, WAWebContactGetters,
  // WAWebFrontendContactGetters): drivers read chats and contacts through them.
  define('WAWebChatGetters', ['WAWebWidFactory'], function (W) {
    function wid(chat) { return W.createWid(chat && chat.id ? chat.id : chat); }
    return {
      getIsGroup: function (chat) { return wid(chat).isGroup(); },
      getIsNewsletter: function (chat) { return wid(chat).isNewsletter(); },
      getIsBroadcast: function (chat) { return wid(chat).isBroadcast(); },
      getIsUser: function (chat) { return wid(chat).isUser(); },
      getFormattedTitle: function (chat) { return chat.formattedTitle; },
      getUnreadCount: function (chat) { return chat.unreadCount; },
      getArchive: function (chat) { return !!chat.archive; },
    };
  });
  define('WAWebContactGetters', ['WAWebWidFactory', 'WAWebUserPrefsMeUser'], function (W, Me) {
    function wid(c) { return W.createWid(c.id); }
    return {
      getIsMe: function (c) { var me = Me.getMaybeMePnUser(); return !!me && me.equals(wid(c)); },
      getIsUser: function (c) { return wid(c).isUser(); },
      getIsGroup: function (c) { return wid(c).isGroup(); },
      getIsWAContact: function (c) { return c.isWAContact !== false; },
      getUserid: function (c) { return wid(c).user; },
      getVerifiedName: function (c) { return c.verifiedName; },
      getVerifiedLevel: function (c) { return c.verifiedLevel; },
      getStatusMute: function (c) { return !!c.statusMute; },
      getName: function (c) { return c.name; },
      getShortName: function (c) { return c.shortName; },
      getPushname: function (c) { return c.pushname; },
      getIsEnterprise: function (c) { return !!c.isEnterprise; },
      getIsBusiness: function (c) { return !!c.isBusiness; },
      getFormattedName: function (c) { return c.name || c.pushname || '+' + wid(c).user; },
    };
  });
  define('WAWebFrontendContactGetters', [], function () {
    return { getIsMyContact: function (c) { return !!c.isMyContact; } };
  });
  // Phone number ↔ LID mapping of contacts (WAWebApiContact). The simulator addresses every
  // contact by phone number, so a contact has no other id.
  define('WAWebApiContact', ['WAWebWidFactory'], function (W) {
    return {
      getAlternateUserWid: function () { return null; },
      getCurrentLid: function (w) { return W.createWid(w).isLid() ? W.createWid(w) : null; },
      getPhoneNumber: function (w) { var x = W.createWid(w); return x.isLid() ? null : x; },
    };
  });
  define('WAWebLidMigrationUtils', ['WAWebWidFactory'], function (W) {
    return {
      toPn: function (w) { var x = W.createWid(w); return x.isLid() ? null : x; },
      toLid: function (w) { var x = W.createWid(w); return x.isLid() ? x : null; },
    };
  });
  // The "is this number on WhatsApp" query (usync): answered by the server.
  define('WAWebQueryExistsJob', ['WAWebWidFactory'], function (W) {
    return {
      queryWidExists: function (w) {
        var wid = W.createWid(w);
        return rpc({ t: 'exists', wid: wid._serialized }).then(function (r) {
          return r && r.exists ? { wid: W.createWid(r.wid || wid), biz: false } : null;
        }, function () { return null; });
      },
    };
  });
  define('WAWebContactProfilePicThumbBridge', ['WAWebWidFactory'], function (W) {
    return {
      // Asks the server for the contact's picture: {eurl, tag, id} with a link the browser
      // fetches, or a 404 (no picture, or its privacy hides it) as WhatsApp answers.
      requestProfilePicFromServer: function (w) {
        var wid = W.createWid(w);
        return rpc({ t: 'profile_pic', wid: wid._serialized }).then(function (r) {
          if (r && r.status === 200 && r.eurl) {
            return { eurl: new URL(r.eurl, location.href).href, tag: r.tag, id: wid };
          }
          var e = new Error('item-not-found');
          e.name = 'ServerStatusCodeError';
          e.statusCode = (r && r.status) || 404;
          throw e;
        });
      },
      profilePicResync: function () { return Promise.resolve(); },
    };
  });
  // Feature gates the real page reads at run time; drivers flip some of them.
  define('WAWebSyncGatingUtils', [], function () {
    return { isPlaceholderMessageResendEnabled: function () { return false; } };
  });
  define('WAWebNonMessageDataRequestPlaceholderMessageResendUtils', [], function () {
    return { handlePlaceholderMsgsSeen: function () { return Promise.resolve(); } };
  });
  define('WAWebPresenceChatAction', [], function () {
    return {
      sendPresenceAvailable: function () { return Stream.markAvailable(); },
      sendPresenceUnavailable: function () { return Stream.markUnavailable(); },
    };
  });
  define('WAWebLaunchSocketUtils', [], function () {
    return { refreshQR: function () { return Cmd.refreshQR(); } };
  });
  define('WAWebSetPushnameConnAction', [], function () {
    return { setPushname: function (name) { Conn.set('pushname', String(name)); return Promise.resolve(true); } };
  });
  define('WAWebPhoneUtils', [], function () {
    return { formatPhone: function (s) { return '+' + String(s).replace(/\D/g, ''); } };
  });

  // ------------------------------------------------------------------ sending and seen
  function chatOf(chat) {
    if (chat instanceof ChatModel) return chat;
    return getOrCreateChat(chat && chat.id ? chat.id : chat);
  }
  var pendingSends = new Map(); // serialized id -> {msg, payload, resolve, sent}
  function primitives(m) {
    var o = {};
    Object.keys(m).forEach(function (k) {
      var v = m[k];
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') o[k] = v;
    });
    return o;
  }
  function addAndSendMsgToChat(chatArg, attrs) {
    var chat = chatOf(chatArg);
    var msg = attrs instanceof MsgModel ? attrs : new MsgModel(Object.assign({
      id: new MsgKey({ fromMe: true, remote: chat.id, id: MsgKey.newId() }),
    }, attrs));
    if (msg.isNewMsg === undefined) msg.isNewMsg = true;
    if (!msg.to) msg.to = chat.id;
    if (!msg.from) msg.from = Conn.wid;
    if (msg.local === undefined) msg.local = true;
    if (msg.self === undefined) msg.self = 'out';
    var payload = Object.assign(primitives(msg), {
      id: msg.id.id, serialized: msg.id._serialized, to: widStr(msg.to), from: widStr(msg.from),
    });
    var sendPromise = new Promise(function (resolve) {
      pendingSends.set(msg.id._serialized, { msg: msg, payload: payload, resolve: resolve, sent: false });
    });
    chat.msgs.add(msg);
    Collections.Msg.add(msg);
    chat.set('t', msg.t);
    logMsg(msg);
    persistMsg(msg);
    flushSends();
    return [Promise.resolve(msg), sendPromise];
  }
  function flushSends() {
    if (!ws || ws.readyState !== 1 || Socket.state !== 'CONNECTED') return;
    pendingSends.forEach(function (p) {
      if (!p.sent) { p.sent = true; send({ t: 'send', msg: p.payload }); }
    });
  }
  function sendSeen(arg) {
    var chat = chatOf(arg && arg.chat ? arg.chat : arg);
    chat.set('unreadCount', 0);
    send({ t: 'seen', chat: chat.id._serialized });
    return Promise.resolve(true);
  }

  // ------------------------------------------------------------------ inbound
  // A message from the server (a contact's, or one the account's phone sent): kept in the
  // profile first, then shown; the server hears `receipt` once it is kept. One the page already
  // has (delivered again after a crash) is only confirmed again.
  function addIncoming(raw, sid) {
    var attrs = Object.assign({}, raw);
    attrs.id = new MsgKey({ fromMe: raw.id.fromMe, remote: raw.id.remote, id: raw.id.id, participant: raw.id.participant });
    var known = Collections.Msg.get(attrs.id);
    if (known) { receipt(sid); return; }
    var msg = new MsgModel(attrs);
    persistMsg(msg).then(function () {
      receipt(sid);
      if (Collections.Msg.get(msg.id)) return;
      var chat = getOrCreateChat(msg.id.remote, raw.notifyName);
      if (!msg.id.fromMe) getOrCreateContact(msg.from, raw.notifyName);
      chat.msgs.add(msg);
      chat.set({ t: msg.t, unreadCount: (chat.unreadCount > 0 ? chat.unreadCount : 0) + (msg.id.fromMe ? 0 : 1) });
      Collections.Msg.add(msg);
      // WhatsApp Web fills a number-change notice in after adding it: drivers read it on the
      // model's `change` (whatsapp-web.js's contact_changed listens there, not on `add`).
      if (msg.subtype === 'change_number') msg.trigger('change', msg);
      logMsg(msg);
    });
  }
  function receipt(sid) { if (sid) send({ t: 'receipt', sids: [sid] }); }

  // ------------------------------------------------------------------ the channel
  var ws = null, outbox = [], leaving = false, rpcs = new Map(), nextRid = 1;
  function send(obj) {
    var s = JSON.stringify(obj);
    if (ws && ws.readyState === 1) ws.send(s); else if (obj.t !== 'send') outbox.push(s);
  }
  function rpc(obj) {
    return new Promise(function (resolve, reject) {
      var rid = nextRid++;
      rpcs.set(rid, { resolve: resolve, reject: reject });
      obj.rid = rid;
      send(obj);
    });
  }
  function setState(s) { Socket.set('state', s); render(); }

  function connect() {
    if (leaving) return;
    var url = new URL('sim/ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    url.hash = '';
    var sock = new WebSocket(url.href);
    ws = sock;
    sock.onopen = function () {
      sock.send(JSON.stringify({
        t: 'hello', device: profile.device || null, keys: profile.keys, platform: DEVICE_PLATFORM,
        login: profile.login ? { account: profile.login.account } : null, url: location.href,
        browser: safeInfo(),
      }));
      var queued = outbox;
      outbox = [];
      queued.forEach(function (s) { sock.send(s); });
    };
    sock.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      handle(m);
    };
    sock.onclose = function () {
      if (ws === sock) ws = null;
      if (leaving) return;
      if (Socket.state === 'CONNECTED') setState('TIMEOUT');
      setTimeout(connect, 1000);
    };
  }
  function safeInfo() {
    try { return MODULES.WAWebMiscBrowserUtils.info(); } catch (e) { return null; }
  }

  function doLogout(reason) {
    clearProfile();
    Conn.set({ wid: undefined, connected: false });
    try { Cmd.trigger('logout', reason); } catch (e) { /* listeners are guarded */ }
    leaving = true;
    status('Logged out (' + reason + ')');
    setTimeout(function () {
      if (ws) { try { ws.close(); } catch (e) { /* closing */ } }
      location.assign(location.pathname + '?post_logout=1');
    }, 150);
  }

  function handle(m) {
    switch (m.t) {
      case 'welcome':
        profile.device = m.device;
        saveProfile();
        if (m.status === 'revoked') doLogout('revoked');
        break;
      case 'ref':
        Conn.set('ref', m.ref);
        currentQr = [m.ref, profile.keys.noise, profile.keys.identity, profile.keys.adv, DEVICE_PLATFORM].join(',');
        setState('UNPAIRED');
        break;
      case 'idle':
        setState('UNPAIRED_IDLE');
        break;
      case 'pair_code':
      case 'pair_error': {
        var r = rpcs.get(m.rid);
        if (!r) break;
        rpcs.delete(m.rid);
        if (m.t === 'pair_code') { pairingCode = m.code; r.resolve(m.code); render(); } else r.reject(new Error(m.message));
        break;
      }
      case 'profile_pic_result':
      case 'exists_result': {
        var q = rpcs.get(m.rid);
        if (q) { rpcs.delete(m.rid); q.resolve(m); }
        break;
      }
      case 'pairing':
        setState('PAIRING');
        break;
      case 'linked':
        profile.login = { account: m.account, wid: m.wid, lid: m.lid, pushname: m.pushname };
        saveProfile();
        pairingCode = null;
        currentQr = null;
        Conn.set({ wid: createWid(m.wid), pushname: m.pushname, connected: true });
        Stream.set('mode', 'MAIN');
        if (!Socket.hasSynced) offlineProgress(0);
        setState('CONNECTED');
        flushSends();
        break;
      case 'synced':
        offlineProgress(100);
        if (!Socket.hasSynced) Socket.set('hasSynced', true);
        render();
        break;
      case 'offline':
        offlineProgress(0);
        break;
      case 'offline_done':
        offlineProgress(100);
        break;
      case 'msg':
        addIncoming(m.msg, m.sid);
        break;
      case 'ack': {
        var msg = Collections.Msg.get(m.id);
        if (msg) {
          if (!(msg.ack >= m.ack) || m.ack < 0) { msg.set('ack', m.ack); logAck(msg); }
          if (m.sid) persistMsg(msg).then(function () { receipt(m.sid); });
        } else receipt(m.sid);
        var p = pendingSends.get(m.id);
        if (p) {
          pendingSends.delete(m.id);
          p.resolve(m.ack >= 1 ? { messageSendResult: 'OK', t: nowSecs() } : { messageSendResult: 'ERROR', error: m.error });
        }
        break;
      }
      case 'state':
        setState(m.state);
        if (m.state === 'CONNECTED') flushSends();
        break;
      case 'logout':
        doLogout(m.reason || 'phone');
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ the DOM (legacy contract + demo UI)
  var currentQr = null, pairingCode = null;
  function $(sel) { return document.querySelector(sel); }
  function status(text) { var s = $('#status'); if (s) s.textContent = text; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function drawQr(canvas, text) {
    var ctx = canvas.getContext('2d'), n = 33, size = canvas.width, cell = Math.floor(size / n);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, size, size);
    var h = 2166136261;
    for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    ctx.fillStyle = '#111';
    for (var y = 0; y < n; y++) {
      for (var x = 0; x < n; x++) {
        h ^= h << 13; h >>>= 0; h ^= h >>> 17; h ^= h << 5; h >>>= 0;
        if (h & 1) ctx.fillRect(x * cell, y * cell, cell, cell);
      }
    }
    [[0, 0], [n - 7, 0], [0, n - 7]].forEach(function (p) {
      ctx.fillStyle = '#111'; ctx.fillRect(p[0] * cell, p[1] * cell, 7 * cell, 7 * cell);
      ctx.fillStyle = '#fff'; ctx.fillRect((p[0] + 1) * cell, (p[1] + 1) * cell, 5 * cell, 5 * cell);
      ctx.fillStyle = '#111'; ctx.fillRect((p[0] + 2) * cell, (p[1] + 2) * cell, 3 * cell, 3 * cell);
    });
  }
  function ensureLanding() {
    var landing = $('#landing');
    if (landing.firstChild) return landing;
    var qr = el('div', { 'data-ref': '' });
    qr.appendChild(el('canvas', { width: '264', height: '264', 'aria-label': 'Scan me!' }));
    landing.appendChild(qr);
    var side = el('div');
    side.appendChild(el('div', { 'class': 'qrtext', id: 'qrtext' }));
    var form = el('form', { 'class': 'box', id: 'scanform' });
    form.appendChild(el('div', {}, 'Simulated phone: link this page'));
    form.appendChild(el('input', { id: 'scanphone', placeholder: 'phone digits, e.g. 5511987654321', size: '28' }));
    form.appendChild(el('button', { type: 'submit' }, 'Scan QR'));
    form.appendChild(el('div', { id: 'scanresult' }));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var phone = $('#scanphone').value;
      fetch(new URL('sim/scan', location.href).href.split('?')[0], {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ qr: currentQr || '', phone: phone }),
      }).then(function (r) { return r.json(); }).then(function (j) {
        $('#scanresult').textContent = j.error ? j.error.message : 'scanned';
      });
    });
    side.appendChild(form);
    side.appendChild(el('div', { 'class': 'box', id: 'paircode', hidden: '' }));
    landing.appendChild(side);
    return landing;
  }
  function render() {
    var state = Socket.state;
    var loading = $('#loading'), landing = $('#landing'), main = $('#main');
    if (!loading) return;
    loading.hidden = !(state === 'OPENING' || (state === 'CONNECTED' && !Socket.hasSynced));
    if (state === 'UNPAIRED' || state === 'UNPAIRED_IDLE') {
      main.hidden = true;
      ensureLanding();
      landing.hidden = false;
      var box = landing.querySelector('div[data-ref]');
      var payload = currentQr || '';
      if (box.getAttribute('data-ref') !== payload) {
        box.setAttribute('data-ref', payload);
        drawQr(box.querySelector('canvas'), payload);
      }
      $('#qrtext').textContent = payload;
      var reload = box.querySelector('span');
      if (state === 'UNPAIRED_IDLE' && !reload) {
        var span = el('span');
        var button = el('button', { type: 'button' }, 'Click to reload QR code');
        button.addEventListener('click', function () { Cmd.refreshQR(); });
        span.appendChild(button);
        box.appendChild(span);
      } else if (state !== 'UNPAIRED_IDLE' && reload) {
        reload.remove();
      }
      var pc = $('#paircode');
      pc.hidden = !pairingCode;
      pc.textContent = pairingCode ? 'Pairing code: ' + pairingCode.slice(0, 4) + '-' + pairingCode.slice(4) : '';
      status(state === 'UNPAIRED' ? 'Scan the QR code with the phone' : 'QR code expired');
    } else {
      landing.hidden = true;
      while (landing.firstChild) landing.removeChild(landing.firstChild);
      main.hidden = state !== 'CONNECTED' && state !== 'CONFLICT' && state !== 'TIMEOUT';
      if (state === 'CONNECTED') {
        $('#me').textContent = 'Logged in as +' + (profile.login ? profile.login.account : '?') + (Socket.hasSynced ? '' : ' (syncing...)');
      }
      status(state === 'CONFLICT' ? 'WhatsApp is open on another computer or browser' : state);
    }
  }
  function logMsg(msg) {
    var log = $('#log');
    if (!log) return;
    var text = msg.body || (msg.caption ? '[' + msg.type + '] ' + msg.caption : (msg.type !== 'chat' ? '[' + msg.type + ']' : ''));
    var li = el('li', { 'class': msg.id.fromMe ? 'out' : 'in', 'data-id': msg.id._serialized });
    li.textContent = (msg.id.fromMe ? 'to +' + msg.id.remote.user : '+' + msg.id.remote.user + (msg.notifyName ? ' (' + msg.notifyName + ')' : '')) + ': ' + text + ' ';
    li.appendChild(el('span', { 'class': 'ack' }, ackMark(msg.ack)));
    log.insertBefore(li, log.firstChild);
  }
  function ackMark(a) { return a < 0 ? '!' : ['…', '✓', '✓✓', '✓✓ read', '✓✓ played'][a] || ''; }
  function logAck(msg) {
    var li = document.querySelector('#log li[data-id="' + CSS.escape(msg.id._serialized) + '"] .ack');
    if (li) li.textContent = ackMark(msg.ack);
  }

  function boot() {
    var form = $('#sendform');
    if (form) {
      form.addEventListener('submit', function (ev) {
        ev.preventDefault();
        var to = $('#sendto').value.replace(/\D/g, ''), text = $('#sendtext').value;
        if (!to || !text) return;
        var chat = getOrCreateChat(to + '@c.us');
        addAndSendMsgToChat(chat, {
          id: new MsgKey({ fromMe: true, remote: chat.id, id: MsgKey.newId() }), body: text, type: 'chat',
          t: nowSecs(), from: Conn.wid, to: chat.id, ack: 0, isNewMsg: true, local: true, self: 'out',
        });
        $('#sendtext').value = '';
      });
    }
    render();
    // The page's store loads before it talks to the server, as the real page resumes from its
    // database before the offline messages arrive.
    loadMessages().then(connect, connect);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
})();
