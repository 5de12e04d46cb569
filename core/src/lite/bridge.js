/* bridge.js: injected by sincro-whatsapp into every document of a Lite session's page
 * (Page.addScriptToEvaluateOnNewDocument), before the page's own scripts run.
 *
 * Uses only the module surface of the real WhatsApp Web page (window.Debug.VERSION,
 * window.require('WAWeb...')), never the DOM, and reports to the daemon through the CDP binding
 * named __BINDING__: one JSON object per call, {"t": kind, ...}:
 *   ready {version, url, state, synced, post_logout}  the modules are there (once per document)
 *   state {state}                                      Socket change:state
 *   qr {qr}                                            a new five-part QR string (change:ref)
 *   synced {me}                                        Socket hasSynced: logged in and loaded
 *   logout {}                                          Cmd logout / logout_from_bridge
 *   msg {eid, msg}                                     a new message (Msg add): from a contact, or
 *                                                      msg.fromMe, sent from the account's phone;
 *                                                      also a contact's number-change notice
 *                                                      (Msg add or change)
 *   ack {eid, id, ack}                                 ack change of a message the account sent
 *   error {error}                                      the modules never appeared
 * msg and ack events stay pending here until the daemon confirms their eid (confirm), once it
 * has them durably: pending events are reported again every few seconds and on resend(), and
 * resume(since) reports what the page keeps from `since` on (after a browser restart the
 * daemon asks for what came after the last event it confirmed; it dedupes by message id).
 * The daemon calls window.__sincro.* (send, newId, download/chunk/release, put, confirm,
 * resend, resume, refreshQr, pair, logout, takeover, health, profilePic) with Runtime.evaluate. */
(function () {
  'use strict';
  if (window.__sincro) return;
  var BINDING = '__BINDING__';
  var MAX_WAIT_MS = 120000;

  function report(ev) {
    try { window[BINDING](JSON.stringify(ev)); } catch (e) { /* binding not there: not our page */ }
  }
  function R(name) { return window.require(name); }
  function wid(w) {
    if (w === null || w === undefined) return undefined;
    if (typeof w === 'string') return w;
    return w._serialized || String(w);
  }

  var RESEND_MS = 3000;
  var api = {
    installed: false, media: new Map(), uploads: new Map(), lastQr: null,
    // eid -> {ev, at}: reported, not yet confirmed by the daemon.
    pending: new Map(),
    // Key ids of the messages the daemon sends itself (not reported as sent from the phone).
    own: new Set(),
  };
  Object.defineProperty(window, '__sincro', { value: api, enumerable: false });

  // ---------------------------------------------------------------- waiting for the modules
  var started = Date.now();
  function modulesReady() {
    if (!(window.Debug && typeof window.Debug.VERSION === 'string' && typeof window.require === 'function')) return false;
    try {
      return !!(R('WAWebSocketModel').Socket && R('WAWebConnModel').Conn && R('WAWebCmd').Cmd && R('WAWebCollections').Msg);
    } catch (e) {
      return false; // modules load lazily on the real page
    }
  }
  function poll() {
    if (modulesReady()) { install(); return; }
    if (Date.now() - started > MAX_WAIT_MS) { report({ t: 'error', error: 'whatsapp web modules not found' }); return; }
    setTimeout(poll, 100);
  }

  // ---------------------------------------------------------------- QR
  async function buildQr() {
    var Conn = R('WAWebConnModel').Conn;
    var ref = Conn.ref;
    if (!ref) return null;
    var b64 = R('WABase64');
    var noise = await R('WAWebUserPrefsInfoStore').waNoiseInfo.get();
    var info = await R('WAWebSignalStoreApi').waSignalStore.getRegistrationInfo();
    // The ADV secret is kept in the user prefs and read synchronously (WAWebUserPrefsMultiDevice).
    var adv = R('WAWebUserPrefsMultiDevice').getADVSecretKey();
    var platform = R('WAWebCompanionRegClientUtils').DEVICE_PLATFORM;
    if (Conn.ref !== ref) return null; // rotated meanwhile; the next change:ref reports it
    return [ref, b64.encodeB64(noise.staticKeyPair.pubKey), b64.encodeB64(info.identityKeyPair.pubKey), adv, platform].join(',');
  }
  function sendQr() {
    buildQr().then(function (qr) {
      if (qr && qr !== api.lastQr) { api.lastQr = qr; report({ t: 'qr', qr: qr }); }
    }, function (e) { report({ t: 'error', error: 'qr: ' + (e && e.message) }); });
  }

  // ---------------------------------------------------------------- messages
  function me() {
    try { return wid(R('WAWebUserPrefsMeUser').getMaybeMePnUser()); } catch (e) { return undefined; }
  }
  // The Click-to-WhatsApp ad a contact came from, when the message model carries one.
  function ctwaOf(m) {
    var c = m.ctwaContext;
    if (!c || typeof c !== 'object') return undefined;
    var out = {};
    ['sourceUrl', 'sourceId', 'sourceType', 'title', 'description', 'mediaType', 'thumbnailUrl', 'ctwaClid']
      .forEach(function (k) { if (typeof c[k] === 'string') out[k] = c[k]; });
    return out;
  }
  function serialize(m) {
    var hasMedia = !!m.directPath;
    return {
      id: m.id.id, serialized: m.id._serialized, remote: wid(m.id.remote), from: wid(m.from),
      author: wid(m.author), type: m.type, body: hasMedia ? undefined : m.body, caption: m.caption,
      t: m.t, notifyName: m.notifyName, mimetype: m.mimetype, filename: m.filename, size: m.size,
      media: hasMedia, lat: m.lat, lng: m.lng, loc: m.loc, quoted: m.quotedStanzaID,
      ctwa: ctwaOf(m), subtype: m.subtype, to: wid(m.to),
      templateParams: Array.isArray(m.templateParams) ? m.templateParams.map(wid) : undefined,
    };
  }
  // WhatsApp Web's notice that a contact changed number (in the old number's chat: `to` is
  // the new id, `templateParams` the old and the new).
  function isNumberChange(m) {
    return !!m && m.type === 'notification_template' && m.subtype === 'change_number';
  }

  // An event the daemon must confirm: reported now, and again until confirmed.
  function reportPending(eid, ev) {
    ev.eid = eid;
    api.pending.set(eid, { ev: ev, at: Date.now() });
    report(ev);
  }
  function reportMsg(m) {
    if (!m || !m.id) return;
    if (m.id.fromMe && api.own.has(m.id.id)) return;
    var ev = serialize(m);
    ev.fromMe = !!m.id.fromMe;
    reportPending('m:' + m.id._serialized, { t: 'msg', msg: ev });
  }
  function reportAck(m, ack) {
    reportPending('a:' + m.id._serialized + ':' + ack, { t: 'ack', id: m.id.id, ack: ack });
  }
  setInterval(function () {
    var now = Date.now();
    api.pending.forEach(function (p) {
      if (now - p.at >= RESEND_MS) { p.at = now; report(p.ev); }
    });
  }, 1000);

  function install() {
    if (api.installed) return;
    api.installed = true;
    var Socket = R('WAWebSocketModel').Socket;
    var Conn = R('WAWebConnModel').Conn;
    var Cmd = R('WAWebCmd').Cmd;
    var Msg = R('WAWebCollections').Msg;

    Socket.on('change:state', function (model, state) {
      report({ t: 'state', state: state });
      if (state === 'UNPAIRED' || state === 'UNPAIRED_IDLE') sendQr();
    });
    Socket.on('change:hasSynced', function (model, synced) {
      if (synced || Socket.hasSynced) report({ t: 'synced', me: me() });
    });
    Conn.on('change:ref', function () { sendQr(); });
    Cmd.on('logout', function () { report({ t: 'logout' }); });
    Cmd.on('logout_from_bridge', function () { report({ t: 'logout' }); });
    Msg.on('add', function (msg) {
      if (!msg || !msg.isNewMsg || !msg.id) return;
      reportMsg(msg);
    });
    // A number-change notice may be filled in after it was added (drivers of the real page
    // watch for it on `change`): reported again then; the daemon keeps one row per id.
    Msg.on('change', function (msg) {
      if (isNumberChange(msg) && msg.id && msg.isNewMsg) reportMsg(msg);
    });
    Msg.on('change:ack', function (msg, ack) {
      if (!msg || !msg.id || !msg.id.fromMe) return;
      reportAck(msg, ack);
    });

    report({
      t: 'ready', version: window.Debug.VERSION, url: location.href, state: Socket.state,
      synced: !!Socket.hasSynced, post_logout: /[?&]post_logout=1/.test(location.search),
    });
    if (Socket.state === 'UNPAIRED' || Socket.state === 'UNPAIRED_IDLE') sendQr();
    if (Socket.hasSynced) report({ t: 'synced', me: me() });
  }

  // ---------------------------------------------------------------- calls from the daemon
  api.health = function () {
    return { installed: api.installed, state: api.installed ? R('WAWebSocketModel').Socket.state : null };
  };
  // The daemon has these events durably.
  api.confirm = function (eids) {
    (eids || []).forEach(function (e) { api.pending.delete(e); });
    return api.pending.size;
  };
  api.resend = function () {
    var now = Date.now();
    api.pending.forEach(function (p) { p.at = now; report(p.ev); });
    return api.pending.size;
  };
  // Reports the messages the page keeps from `since` (unix seconds) on, and the acks of those
  // the account sent: what a daemon that lost its browser may not have.
  api.resume = function (since) {
    var n = 0;
    R('WAWebCollections').Msg.getModelsArray().forEach(function (m) {
      if (!m || !m.id || !(m.t >= since)) return;
      if (!m.id.fromMe || !api.own.has(m.id.id)) { reportMsg(m); n++; }
      if (m.id.fromMe && m.ack > 0) reportAck(m, m.ack);
    });
    return n;
  };
  api.newId = async function () { return await R('WAWebMsgKey').newId(); };
  api.refreshQr = function () { return R('WAWebCmd').Cmd.refreshQR(); };
  api.takeover = function () { return R('WAWebSocketModel').Socket.takeover(); };
  api.logout = function () { return R('WAWebSocketModel').Socket.logout(); };
  api.pair = async function (phone) {
    var A = R('WAWebAltDeviceLinkingApi');
    await A.setPairingType('ALT_DEVICE_LINKING');
    await A.initializeAltDeviceLinking();
    return await A.startAltLinkingFlow(phone, true);
  };

  // Media the daemon downloads: bytes kept here until it has read them in chunks.
  api.download = async function (serialized) {
    var m = R('WAWebCollections').Msg.get(serialized);
    if (!m) throw new Error('unknown message');
    var buf = await R('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt({
      directPath: m.directPath, encFilehash: m.encFilehash, filehash: m.filehash, mediaKey: m.mediaKey,
      mediaKeyTimestamp: m.mediaKeyTimestamp, type: m.type, signal: (new AbortController()).signal,
    });
    var bytes = new Uint8Array(buf);
    api.media.set(serialized, bytes);
    return bytes.length;
  };
  api.chunk = function (serialized, offset, len) {
    var b = api.media.get(serialized);
    if (!b) throw new Error('no downloaded media');
    return R('WABase64').encodeB64(b.subarray(offset, offset + len));
  };
  api.release = function (key) { api.media.delete(key); api.uploads.delete(key); return true; };

  // A contact's profile picture, looked up on the server and fetched by the browser from the
  // link it gives (a CDN link that expires): {mimetype, b64}, or null when the contact has
  // none or hides it (a 404/401 from the server), or when it is larger than maxBytes.
  api.profilePic = async function (digits, maxBytes) {
    var W = R('WAWebWidFactory');
    var info;
    try {
      info = await R('WAWebContactProfilePicThumbBridge').requestProfilePicFromServer(W.createWid(digits + '@c.us'));
    } catch (e) {
      if (e && (e.statusCode === 404 || e.statusCode === 401)) return null;
      throw e;
    }
    if (!info || !info.eurl) return null;
    var res = await fetch(info.eurl, { credentials: 'omit' });
    if (!res.ok) throw new Error('picture fetch: ' + res.status);
    var bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length === 0 || bytes.length > maxBytes) return null;
    var mimetype = (res.headers.get('content-type') || 'image/jpeg').split(';')[0];
    return { mimetype: mimetype, b64: R('WABase64').encodeB64(bytes), tag: info.tag || null };
  };

  // Media the daemon sends: base64 chunks appended under a key, then send({media: {key}}).
  api.put = function (key, b64) {
    var bin = atob(b64), part = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) part[i] = bin.charCodeAt(i);
    var parts = api.uploads.get(key) || [];
    parts.push(part);
    api.uploads.set(key, parts);
    return parts.length;
  };

  async function prepareMedia(media) {
    var parts = api.uploads.get(media.key);
    if (!parts) throw new Error('no uploaded media');
    api.uploads.delete(media.key);
    var file = new File([new Blob(parts, { type: media.mimetype })], media.filename || 'file', { type: media.mimetype });
    var opaque = await R('WAWebMediaOpaqueData').createFromData(file, file.type);
    var prep = R('WAWebPrepRawMedia').prepRawMedia(opaque, { asDocument: !!media.asDocument });
    var mediaData = await prep.waitForPrep();
    var mediaObject = R('WAWebMediaStorage').getOrCreateMediaObject(mediaData.filehash);
    var mediaType = R('WAWebMmsMediaTypes').msgToMediaType({ type: mediaData.type, isGif: mediaData.isGif });
    if (!mediaData.filehash) throw new Error('media has no filehash');
    mediaData.renderableUrl = mediaData.mediaBlob.url();
    mediaObject.consolidate(mediaData.toJSON());
    mediaData.mediaBlob.autorelease();
    var uploaded = await R('WAWebMediaMmsV4Upload').uploadMedia({ mimetype: mediaData.mimetype, mediaObject: mediaObject, mediaType: mediaType });
    var e = uploaded.mediaEntry;
    if (!e) throw new Error('upload failed');
    mediaData.set({
      clientUrl: e.mmsUrl, directPath: e.directPath, mediaKey: e.mediaKey, mediaKeyTimestamp: e.mediaKeyTimestamp,
      filehash: mediaObject.filehash, encFilehash: e.encFilehash, uploadhash: e.uploadHash, size: mediaObject.size,
    });
    return mediaData;
  }

  // o: {to: digits, id?: key id from newId, text?, media?: {key, mimetype, filename, caption, asDocument}, location?: {lat, lng, loc}, timeout_ms}
  api.send = async function (o) {
    var C = R('WAWebCollections');
    var chatWid = R('WAWebWidFactory').createWid(o.to + '@c.us');
    var chat = C.Chat.get(chatWid);
    if (!chat) chat = (await R('WAWebFindChatAction').findOrCreateLatestChat(chatWid)).chat;
    var meUser = R('WAWebUserPrefsMeUser').getMaybeMePnUser();
    if (!meUser) return { status: 'not_logged_in' };
    var MsgKey = R('WAWebMsgKey');
    var keyId = o.id || await MsgKey.newId();
    api.own.add(keyId);
    var key = new MsgKey({ from: meUser, to: chat.id, id: keyId, participant: undefined, selfDir: 'out' });
    var msg = {
      id: key, ack: 0, from: meUser, to: chat.id, local: true, self: 'out',
      t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat',
    };
    Object.assign(msg, R('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat));
    if (o.media) {
      var mediaData = await prepareMedia(o.media);
      Object.assign(msg, mediaData.toJSON ? mediaData.toJSON() : mediaData);
      msg.caption = o.media.caption || undefined;
      msg.body = undefined;
    } else if (o.location) {
      msg.type = 'location';
      msg.lat = o.location.lat;
      msg.lng = o.location.lng;
      msg.loc = o.location.loc || undefined;
      msg.body = '';
    } else {
      msg.body = o.text;
    }
    var pair = R('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, msg);
    await pair[0];
    var result = await Promise.race([
      pair[1],
      new Promise(function (resolve) { setTimeout(function () { resolve({ timeout: true }); }, o.timeout_ms || 20000); }),
    ]);
    var stored = C.Msg.get(key._serialized);
    return { status: 'done', id: key.id, ack: stored ? stored.ack : null, result: result };
  };

  poll();
})();
