// Conformance of the WhatsApp Web simulator (`sim web`) with a driver written against the real
// page: whatsapp-web.js, pinned in package.json, logs in to the simulator served as
// https://web.whatsapp.com/ and goes through six stages:
//   1 qr          the driver builds a QR from the page's modules and emits `qr`
//   2 scan        the simulated phone scans it (POST /sim/scan) and the driver emits `authenticated`
//   3 ready       the driver injects its helpers and emits `ready`
//   4 message     a contact's message (POST /sim/messages) reaches `message`
//   5 sent        client.sendMessage() is seen by the server (GET /sim/sent)
//   6 ack         a read receipt (POST /sim/acks) reaches `message_ack`
// Prints `N of 6` and exits 0 only when all six pass. No internet: the page comes from the
// simulator through a local TLS front that Chromium reaches for web.whatsapp.com.
//
// Environment: SIM_BIN (the sincro-whatsapp binary, required), CHROMIUM_PATH
// (default /usr/bin/chromium), NODE_PATH-style lookup through CONFORMANCE_MODULES (the
// node_modules directory where the pinned package is installed), STAGE_TIMEOUT_MS (default 30000).
'use strict';

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const tls = require('tls');

const modules = process.env.CONFORMANCE_MODULES || path.join(__dirname, 'node_modules');
const wwebjs = require(path.join(modules, 'whatsapp-web.js'));
const { Client, LocalAuth } = wwebjs;

const SIM_BIN = process.env.SIM_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const STAGE_TIMEOUT_MS = Number(process.env.STAGE_TIMEOUT_MS || 30000);
const ACCOUNT = '5511987650001';
const CONTACT = '5511912340002';
const STAGES = ['qr', 'scan accepted', 'ready', 'message received', 'message sent', 'ack'];

const passed = [];
const cleanups = [];
function log(...a) { console.log('[conformance]', ...a); }
function pass(i, detail) {
  passed.push(STAGES[i]);
  log(`stage ${i + 1} ${STAGES[i]}: ok${detail ? ' (' + detail + ')' : ''}`);
}

function waitFor(what, register) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STAGE_TIMEOUT_MS);
    register((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

// The simulator binary on a free port; resolves with its base URL once it prints it.
function startSim() {
  if (!SIM_BIN) throw new Error('SIM_BIN is not set');
  const child = spawn(SIM_BIN, ['sim', 'web', '--bind', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill('SIGTERM'));
  child.stderr.on('data', (d) => { if (process.env.CONFORMANCE_VERBOSE) process.stderr.write(d); });
  return waitFor('the simulator to start', (resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`simulator exited (${code})`)));
  });
}

// A self-signed certificate for web.whatsapp.com, made for this run.
function makeCert(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=web.whatsapp.com', '-addext', 'subjectAltName=DNS:web.whatsapp.com',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}

// TLS in front of the simulator: bytes are passed through as they are (HTTP and WebSocket).
function startFront(simPort, creds) {
  const server = tls.createServer(creds, (client) => {
    const upstream = net.connect(simPort, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const drop = () => { client.destroy(); upstream.destroy(); };
    client.on('error', drop);
    upstream.on('error', drop);
  });
  cleanups.push(() => server.close());
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

async function control(base, method, route, body) {
  const res = await fetch(new URL(route, base), {
    method, headers: body ? { 'content-type': 'application/json' } : undefined,
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sincro-conformance-'));
  cleanups.push(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const base = await startSim();
  const simPort = Number(new URL(base).port);
  const frontPort = await startFront(simPort, makeCert(tmp));
  log(`simulator ${base}, TLS front 127.0.0.1:${frontPort} as https://web.whatsapp.com/`);

  const client = new Client({
    authStrategy: new LocalAuth({ clientId: 'conformance', dataPath: path.join(tmp, 'auth') }),
    webVersionCache: { type: 'none' },
    puppeteer: {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
        '--ignore-certificate-errors',
        `--host-resolver-rules=MAP web.whatsapp.com 127.0.0.1:${frontPort}, EXCLUDE localhost`],
    },
  });
  cleanups.unshift(() => client.destroy().catch(() => {}));
  const events = [];
  for (const ev of ['qr', 'authenticated', 'auth_failure', 'ready', 'disconnected', 'change_state', 'loading_screen']) {
    client.on(ev, (...a) => { events.push(ev); if (process.env.CONFORMANCE_VERBOSE) log('event', ev, ...a.map((x) => String(x).slice(0, 80))); });
  }

  // 1 + 2: the QR, then the phone scans it.
  const qr = waitFor('qr', (resolve) => client.once('qr', resolve));
  const authenticated = waitFor('authenticated', (resolve) => client.once('authenticated', resolve));
  const ready = waitFor('ready', (resolve) => client.once('ready', resolve));
  const failed = new Promise((_, reject) => client.once('auth_failure', (m) => reject(new Error('auth_failure: ' + m))));
  for (const p of [qr, authenticated, ready, failed]) p.catch(() => {});
  client.initialize().catch((e) => log('initialize failed:', e && (e.stack || e.message || e)));
  const qrText = await Promise.race([qr, failed]);
  if (qrText.split(',').length !== 5) throw new Error('QR is not five fields: ' + qrText);
  pass(0, qrText.split(',')[0].slice(0, 12) + '…');
  await control(base, 'POST', 'sim/scan', { qr: qrText, phone: ACCOUNT, name: 'Conformance' });
  await Promise.race([authenticated, failed]);
  pass(1);

  // 3: ready, with the account the phone linked.
  await Promise.race([ready, failed]);
  const me = client.info && client.info.wid && client.info.wid._serialized;
  if (me !== `${ACCOUNT}@c.us`) throw new Error('client.info.wid is ' + me);
  pass(2, me);

  // 4: a contact writes.
  const text = 'hello from the conformance run ' + Date.now();
  const received = waitFor('message', (resolve) => client.on('message', (m) => { if (m.body === text) resolve(m); }));
  await control(base, 'POST', 'sim/messages', { account: ACCOUNT, from: CONTACT, name: 'Contact', text });
  const msg = await received;
  if (msg.from !== `${CONTACT}@c.us` || msg.fromMe) throw new Error('message from ' + msg.from);
  pass(3, msg.id._serialized);

  // 5: the driver answers; the server sees the send.
  const reply = 'reply ' + Date.now();
  const sentMsg = await client.sendMessage(msg.from, reply);
  if (!sentMsg || !sentMsg.id || !sentMsg.id.fromMe) throw new Error('sendMessage returned ' + JSON.stringify(sentMsg && sentMsg.id));
  const onServer = await waitFor('the send on the server', (resolve) => {
    const poll = async () => {
      const sent = await control(base, 'GET', `sim/sent?account=${ACCOUNT}`).catch(() => []);
      const found = (sent || []).find((s) => s.body === reply && s.to === `${CONTACT}@c.us`);
      if (found) resolve(found); else setTimeout(poll, 200);
    };
    poll();
  });
  if (onServer.id !== sentMsg.id.id) throw new Error(`server id ${onServer.id} != driver id ${sentMsg.id.id}`);
  pass(4, onServer.id);

  // 6: the contact reads it.
  const acked = waitFor('message_ack', (resolve) => client.on('message_ack', (m, ack) => {
    if (m.id._serialized === sentMsg.id._serialized && ack === 3) resolve(ack);
  }));
  await control(base, 'POST', 'sim/acks', { id: onServer.id, ack: 3 });
  await acked;
  pass(5, 'read');

  await extras(client, base, msg.from);
}

// Beyond the six stages, checked as well (a failure fails the run): media upload, lookups, a
// contact's number change (contact_changed), and
// which of the modules the driver's code names the page defines (a report, not a check: most
// of them serve features the simulator does not have, such as groups or channels).
async function extras(client, base, to) {
  const { MessageMedia } = wwebjs;
  const pdf = Buffer.from('%PDF-1.4 conformance').toString('base64');
  const sent = await client.sendMessage(to, new MessageMedia('application/pdf', pdf, 'c.pdf'), { caption: 'doc' });
  const onServer = await waitFor('the media on the server', (resolve) => {
    const poll = async () => {
      const list = await control(base, 'GET', `sim/sent?account=${ACCOUNT}`).catch(() => []);
      const found = (list || []).find((s) => s.id === sent.id.id);
      if (found) resolve(found); else setTimeout(poll, 200);
    };
    poll();
  });
  if (!onServer.media || onServer.media.filename !== 'c.pdf' || onServer.media.size !== 20) {
    throw new Error('media on the server: ' + JSON.stringify(onServer));
  }
  log('extra media sent: ok (' + onServer.media.mimetype + ', ' + onServer.media.size + ' bytes)');

  const contact = await client.getContactById(to);
  if (!contact || contact.id._serialized !== to || contact.isMe) throw new Error('getContactById: ' + JSON.stringify(contact && contact.id));
  const numberId = await client.getNumberId(CONTACT);
  if (!numberId || numberId._serialized !== to) throw new Error('getNumberId: ' + JSON.stringify(numberId));
  const pic = await client.getProfilePicUrl(to);
  const state = await client.getState();
  if (state !== 'CONNECTED') throw new Error('getState: ' + state);
  const chats = await client.getChats();
  if (!chats.some((c) => c.id._serialized === to)) throw new Error('getChats misses ' + to);
  log(`extra lookups: ok (contact ${contact.pushname || contact.number}, number id, picture ${pic === undefined ? 'hidden' : pic}, state ${state}, ${chats.length} chat(s))`);

  // The contact changes number: the driver's contact_changed names the old and the new id.
  const moved = '5511912340099@c.us';
  const idOf = (x) => (x && typeof x === 'object' ? x._serialized : x);
  const changed = waitFor('contact_changed', (resolve) => client.on('contact_changed', (m, oldId, newId, isContact) => {
    if (isContact && idOf(newId) === moved) resolve(idOf(oldId));
  }));
  await control(base, 'POST', 'sim/number-change', { account: ACCOUNT, from: CONTACT, to: moved.split('@')[0] });
  const oldId = await changed;
  if (oldId !== to) throw new Error(`contact_changed names ${oldId} as the old id, not ${to}`);
  log(`extra number change: ok (${oldId} -> ${moved})`);

  const names = new Set();
  const src = path.join(modules, 'whatsapp-web.js', 'src');
  const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) => {
    const f = path.join(d, e.name);
    if (e.isDirectory()) walk(f);
    else if (f.endsWith('.js')) for (const m of fs.readFileSync(f, 'utf8').matchAll(/require\(\s*'(WA[A-Za-z0-9]+)'\s*\)/g)) names.add(m[1]);
  });
  walk(src);
  const missing = await client.pupPage.evaluate((list) => list.filter((n) => {
    try { window.require(n); return false; } catch (e) { return true; }
  }), [...names].sort());
  log(`modules named by the driver: ${names.size - missing.length} of ${names.size} defined by the page; not defined: ${missing.join(' ')}`);
}

let failure = null;
main().catch((e) => { failure = e; }).finally(async () => {
  for (const c of cleanups) { try { await c(); } catch (e) { /* best effort */ } }
  if (failure) log('failed' + (passed.length === STAGES.length ? ' after the six stages' : '') + ':', failure.message || failure);
  console.log(`${passed.length} of ${STAGES.length} stages passed${passed.length ? ': ' + passed.join(', ') : ''}`);
  process.exit(passed.length === STAGES.length && !failure ? 0 : 1);
});
