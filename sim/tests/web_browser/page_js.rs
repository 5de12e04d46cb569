//! The JavaScript a driver runs in the page (as whatsapp-web.js does): building the QR string,
//! recording the events it listens to, sending text and media.

/// The QR string exactly as whatsapp-web.js's AuthStore builds it from the modules.
pub const BUILD_QR: &str = r#"(async () => {
    const R = (n) => window.require(n);
    const reg = { ...R('WAWebCompanionRegClientUtils'), ...R('WAWebAdvSignatureApi'),
                  ...R('WAWebUserPrefsInfoStore'), ...R('WAWebSignalStoreApi') };
    const info = await reg.waSignalStore.getRegistrationInfo();
    const noise = await reg.waNoiseInfo.get();
    const b64 = R('WABase64');
    const adv = R('WAWebUserPrefsMultiDevice').getADVSecretKey();
    const ref = R('WAWebConnModel').Conn.ref;
    return ref + ',' + b64.encodeB64(noise.staticKeyPair.pubKey) + ',' +
        b64.encodeB64(info.identityKeyPair.pubKey) + ',' + adv + ',' + reg.DEVICE_PLATFORM;
})()"#;

/// Records the events a driver listens to into `window.__ev`.
pub const RECORD: &str = r#"(() => {
    window.__ev = [];
    const R = (n) => window.require(n);
    const rec = (e) => window.__ev.push(e);
    R('WAWebSocketModel').Socket.on('change:state', (m, s) => rec('state:' + s));
    R('WAWebSocketModel').Socket.on('change:hasSynced', () => rec('hasSynced'));
    R('WAWebConnModel').Conn.on('change:ref', (m, r) => rec('ref'));
    const Msg = R('WAWebCollections').Msg;
    Msg.on('add', (msg) => { if (msg.isNewMsg) rec('add:' + msg.id._serialized); });
    Msg.on('change:ack', (msg, ack) => rec('ack:' + msg.id._serialized + ':' + ack));
    R('WAWebCmd').Cmd.on('logout', () => sessionStorage.setItem('cmdLogout', '1'));
    return true;
})()"#;

/// Sends a text the way whatsapp-web.js's `sendMessage` does; resolves to the message's ack.
pub fn send_text_js(to: &str, body: &str) -> String {
    format!(
        r#"(async () => {{
    const R = (n) => window.require(n);
    const chatWid = R('WAWebWidFactory').createWid('{to}@c.us');
    let chat = R('WAWebCollections').Chat.get(chatWid);
    if (!chat) chat = (await R('WAWebFindChatAction').findOrCreateLatestChat(chatWid)).chat;
    const Stream = R('WAWebStreamModel').Stream;
    await Stream.markAvailable();
    await R('WAWebUpdateUnreadChatAction').sendSeen({{ chat, threadId: undefined }});
    await Stream.markUnavailable();
    const meUser = R('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const MsgKey = R('WAWebMsgKey');
    const newId = await MsgKey.newId();
    const key = new MsgKey({{ from: meUser, to: chat.id, id: newId, participant: undefined, selfDir: 'out' }});
    const message = {{ id: key, ack: 0, body: {body}, from: meUser, to: chat.id, local: true,
        self: 'out', t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat',
        ...R('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat) }};
    const [addP, sendP] = R('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
    await addP;
    const result = await sendP;
    const msg = R('WAWebCollections').Msg.get(key._serialized);
    return {{ id: key.id, serialized: key._serialized, ack: msg.ack, result }};
}})()"#,
        body = serde_json::to_string(body).unwrap()
    )
}

/// Sends a file through the processMediaData module chain; resolves to the message key.
pub fn send_media_js(to: &str, data_b64: &str, mimetype: &str, filename: &str) -> String {
    format!(
        r#"(async () => {{
    const R = (n) => window.require(n);
    const bin = atob('{data_b64}');
    const buf = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
    const file = new File([new Blob([buf], {{ type: '{mimetype}' }})], '{filename}', {{ type: '{mimetype}' }});
    const opaqueData = await R('WAWebMediaOpaqueData').createFromData(file, file.type);
    const mediaPrep = R('WAWebPrepRawMedia').prepRawMedia(opaqueData, {{ asDocument: true }});
    const mediaData = await mediaPrep.waitForPrep();
    const mediaObject = R('WAWebMediaStorage').getOrCreateMediaObject(mediaData.filehash);
    const mediaType = R('WAWebMmsMediaTypes').msgToMediaType({{ type: mediaData.type, isGif: mediaData.isGif }});
    if (!mediaData.filehash) throw new Error('no filehash');
    mediaData.renderableUrl = mediaData.mediaBlob.url();
    mediaObject.consolidate(mediaData.toJSON());
    mediaData.mediaBlob.autorelease();
    const uploaded = await R('WAWebMediaMmsV4Upload').uploadMedia({{ mimetype: mediaData.mimetype, mediaObject, mediaType }});
    const e = uploaded.mediaEntry;
    mediaData.set({{ clientUrl: e.mmsUrl, directPath: e.directPath, mediaKey: e.mediaKey,
        mediaKeyTimestamp: e.mediaKeyTimestamp, filehash: mediaObject.filehash,
        encFilehash: e.encFilehash, uploadhash: e.uploadHash, size: mediaObject.size }});
    const chat = (await R('WAWebFindChatAction').findOrCreateLatestChat(R('WAWebWidFactory').createWid('{to}@c.us'))).chat;
    const meUser = R('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const MsgKey = R('WAWebMsgKey');
    const key = new MsgKey({{ from: meUser, to: chat.id, id: await MsgKey.newId(), selfDir: 'out' }});
    const message = {{ id: key, ack: 0, body: undefined, caption: 'the doc', from: meUser, to: chat.id,
        local: true, self: 'out', t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat', ...mediaData }};
    const [, sendP] = R('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
    await sendP;
    return {{ id: key.id, type: R('WAWebCollections').Msg.get(key._serialized).type }};
}})()"#
    )
}
