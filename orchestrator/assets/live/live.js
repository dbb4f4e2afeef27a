// Parley live captions viewer. Loaded with `defer`, so the DOM is ready.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const titleEl = $('title');
  const statusEl = $('status');
  const list = $('captions');
  const empty = $('empty');
  const jump = $('jump');
  const notice = $('notice');
  const summaryEl = $('summary');
  const summaryText = $('summary-text');
  const summaryModel = $('summary-model');
  const summaryLists = [$('summary-actions'), $('summary-highlights'), $('summary-questions')];
  const recordingsList = $('summary-recordings');

  const GONE_TEXT = "This captions link has been turned off by the meeting's owner.";
  const STATUS_TEXT = {
    connecting: 'Connecting…',
    waiting: 'Waiting for the bot to join',
    live: 'Live',
    ended: 'Meeting ended',
    failed: 'The bot could not join',
    reconnecting: 'Reconnecting…',
    revoked: GONE_TEXT,
  };
  const FROM_MEETING = {
    scheduled: 'waiting', joining: 'waiting', in_progress: 'live', ended: 'ended', failed: 'failed',
  };
  const PALETTE_SIZE = 8; // matches the --spk-N colours in live.css
  const BOTTOM_SLACK_PX = 40;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const CLOSE_GONE = 4404;
  const SUMMARY_RETRY_MS = 2000;
  // The built-in summary is written within a second of the end; an LLM summary of a long meeting
  // can take minutes. Past this, a reload finds it.
  const SUMMARY_WAIT_MS = 10 * 60 * 1000;

  let cursor = null;
  let ws = null;
  let status = 'connecting';
  let gone = false;
  let backoff = BACKOFF_MIN_MS;
  let retryTimer = 0;
  let sawMeeting = false;
  let summaryShown = false;
  let summaryPoll = null; // AbortController of the running summary poll
  const lines = new Map(); // segment_id -> { seg, li }

  // ---- status -------------------------------------------------------------

  function setStatus(next) {
    status = next;
    statusEl.dataset.status = next;
    // Rewriting identical text would make screen readers announce it again.
    if (statusEl.textContent !== STATUS_TEXT[next]) statusEl.textContent = STATUS_TEXT[next];
  }

  // ---- segments -----------------------------------------------------------

  const cmpStr = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const order = (a, b) =>
    a.start_ms - b.start_ms || cmpStr(a.speaker, b.speaker) || cmpStr(a.segment_id, b.segment_id);
  // (final, version) compared lexicographically: a final never loses to a partial,
  // so late or duplicated partials cannot regress a finished line.
  const supersedes = (inc, cur) =>
    inc.final !== cur.final ? inc.final : inc.version >= cur.version;

  function normalise(raw) {
    if (!raw || typeof raw.segment_id !== 'string') return null;
    return {
      segment_id: raw.segment_id,
      speaker: String(raw.speaker ?? ''),
      speaker_name: String(raw.speaker_name || raw.speaker || 'Speaker'),
      start_ms: Number(raw.start_ms) || 0,
      text: String(raw.text ?? ''),
      final: raw.final === true,
      version: Number(raw.version) || 0,
    };
  }

  function speakerClass(key) {
    // FNV-1a: stable across reloads and viewers, so a person keeps their colour.
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    return `spk-${(h >>> 0) % PALETTE_SIZE}`;
  }

  function clock(ms) {
    const t = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60, s = t % 60;
    const p2 = (n) => String(n).padStart(2, '0');
    return { text: h ? `${h}:${p2(m)}:${p2(s)}` : `${p2(m)}:${p2(s)}`, iso: `PT${h}H${m}M${s}S` };
  }

  function setText(el, value) {
    // Untouched nodes stay quiet in the aria-live region.
    if (el.textContent !== value) el.textContent = value;
  }

  function createLine(segmentId) {
    const li = document.createElement('li');
    li.id = `seg-${segmentId}`; // the summary's items link here
    const speaker = document.createElement('span');
    speaker.className = 'speaker';
    const time = document.createElement('time');
    const text = document.createElement('span');
    text.className = 'text';
    li.append(speaker, time, text);
    return li;
  }

  function render(li, seg) {
    li.className = `line ${seg.final ? 'final' : 'partial'} ${speakerClass(seg.speaker)}`;
    li.dataset.segmentId = seg.segment_id;
    li.dataset.speaker = seg.speaker;
    const [speaker, time, text] = li.children;
    setText(speaker, seg.speaker_name);
    const c = clock(seg.start_ms);
    setText(time, c.text);
    time.dateTime = c.iso;
    setText(text, seg.text);
  }

  function regroup(li) {
    if (!li) return;
    const prev = li.previousElementSibling;
    li.classList.toggle('cont', !!prev && prev.dataset.speaker === li.dataset.speaker);
  }

  // Walk back from the end: new captions almost always belong there.
  function place(rec) {
    let after = list.lastElementChild;
    while (after && (after === rec.li || order(lines.get(after.dataset.segmentId).seg, rec.seg) > 0)) {
      after = after.previousElementSibling;
    }
    const ref = after ? after.nextElementSibling : list.firstElementChild;
    if (ref !== rec.li) {
      const oldNext = rec.li.parentNode ? rec.li.nextElementSibling : null;
      list.insertBefore(rec.li, ref);
      regroup(oldNext);
    }
    regroup(rec.li);
    regroup(rec.li.nextElementSibling);
  }

  function upsert(seg, force) {
    let rec = lines.get(seg.segment_id);
    if (rec && !force && !supersedes(seg, rec.seg)) return;
    if (!rec) {
      rec = { seg, li: createLine(seg.segment_id) };
      lines.set(seg.segment_id, rec);
    }
    rec.seg = seg; // the same <li> is updated in place when a partial turns final
    render(rec.li, seg);
    place(rec);
  }

  function applySnapshot(raw) {
    const next = new Map();
    for (const r of Array.isArray(raw) ? raw : []) {
      const seg = normalise(r);
      const cur = seg && next.get(seg.segment_id);
      if (seg && (!cur || supersedes(seg, cur))) next.set(seg.segment_id, seg);
    }
    // Reuse surviving <li>s so a resync does not re-announce the whole history.
    for (const [id, rec] of lines) {
      if (!next.has(id)) { rec.li.remove(); lines.delete(id); }
    }
    for (const seg of next.values()) upsert(seg, true);
    for (const li of list.children) regroup(li);
  }

  // ---- scrolling ----------------------------------------------------------

  let follow = true; // the reader wants to stay at the latest caption
  let jumping = false; // a smooth jump is in flight; its scroll events are not the reader's

  const atBottom = () =>
    window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - BOTTOM_SLACK_PX;
  const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

  function scrollToBottom(smooth) {
    window.scrollTo({ top: document.documentElement.scrollHeight, behavior: smooth && !reducedMotion.matches ? 'smooth' : 'auto' });
  }

  function onScroll() {
    if (jumping) {
      if (!atBottom()) return;
      jumping = false;
    }
    follow = atBottom();
    jump.hidden = follow;
  }

  function changed(fn) {
    fn();
    empty.hidden = lines.size > 0;
    if (follow) scrollToBottom(false);
    else jump.hidden = atBottom(); // a short transcript opened after the meeting needs no button
  }

  window.addEventListener('scroll', onScroll, { passive: true });
  window.addEventListener('resize', () => { if (follow) scrollToBottom(false); });
  // Any reader input cancels a jump, so an interrupted smooth scroll cannot leave `follow` stuck on.
  for (const ev of ['wheel', 'touchstart', 'keydown', 'pointerdown']) {
    window.addEventListener(ev, (e) => { if (e.target !== jump) jumping = false; }, { passive: true });
  }
  jump.addEventListener('click', () => {
    follow = true;
    jumping = true;
    jump.hidden = true;
    // Hiding the focused button would drop focus to <body>; keep keyboard users in the captions.
    list.focus({ preventScroll: true });
    scrollToBottom(true);
  });

  // ---- summary ------------------------------------------------------------

  const str = (v) => (typeof v === 'string' ? v : '');

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function timeEl(text, iso) {
    const t = el('time', text);
    t.dateTime = iso;
    return t;
  }

  function captionLink(item) {
    const c = clock(Number(item.start_ms) || 0);
    const time = timeEl(c.text, c.iso);
    if (!str(item.segment_id)) return time;
    const a = el('a', '', 'at');
    a.href = `#seg-${item.segment_id}`;
    a.setAttribute('aria-label', `Caption at ${c.text}`);
    a.append(time);
    return a;
  }

  function actionBody(item) {
    const body = el('span', '', 'what');
    if (str(item.owner)) body.append(el('strong', item.owner), ': ');
    body.append(str(item.task));
    const due = str(item.due), date = str(item.due_date);
    if (due || date) {
      const span = el('span', due ? `due ${due}` : 'due', 'due');
      if (date) span.append(due ? ', ' : ' ', timeEl(date, date));
      body.append(' (', span, ')');
    }
    return body;
  }

  function pointBody(item) {
    const body = el('span', str(item.text), 'what');
    if (str(item.speaker)) body.append(' ', el('span', `— ${item.speaker}`, 'who'));
    return body;
  }

  function fillList(ul, items, body) {
    const lis = (Array.isArray(items) ? items : [])
      .filter((item) => item && typeof item === 'object')
      .map((item) => {
        const li = el('li');
        li.append(captionLink(item), body(item));
        return li;
      });
    ul.replaceChildren(...lis);
    ul.parentElement.hidden = lis.length === 0;
  }

  // One player per speaker track; nothing loads until the reader presses play.
  function fillRecordings(items) {
    const lis = (Array.isArray(items) ? items : [])
      .filter((item) => item && typeof item.url === 'string')
      .map((item) => {
        const li = el('li');
        const audio = el('audio');
        audio.controls = true;
        audio.preload = 'none';
        audio.src = item.url;
        audio.setAttribute('aria-label', `Recording of ${str(item.speaker_name)}`);
        li.append(el('span', str(item.speaker_name), 'what'), audio);
        return li;
      });
    recordingsList.replaceChildren(...lis);
    recordingsList.parentElement.hidden = lis.length === 0;
  }

  function byline(model) {
    if (model === 'builtin') return 'Written by the built-in summarizer';
    const name = str(model).startsWith('llm:') ? model.slice(4) : '';
    return name ? `Written by ${name}` : '';
  }

  function showSummary(data) {
    summaryText.textContent = str(data.summary);
    summaryText.hidden = !summaryText.textContent;
    const [actions, highlights, questions] = summaryLists;
    fillList(actions, data.action_items, actionBody);
    fillList(highlights, data.highlights, pointBody);
    fillList(questions, data.open_questions, pointBody);
    fillRecordings(data.recordings);
    summaryModel.textContent = byline(data.model);
    summaryModel.hidden = !summaryModel.textContent;
    summaryEl.hidden = false;
    summaryShown = true;
    if (follow) scrollToBottom(false);
  }

  function stopSummaryPoll() {
    if (summaryPoll) summaryPoll.abort();
    summaryPoll = null;
  }

  function clearSummary() {
    stopSummaryPoll();
    summaryShown = false;
    summaryEl.hidden = true;
    summaryText.textContent = '';
    summaryModel.textContent = '';
    for (const ul of [...summaryLists, recordingsList]) ul.replaceChildren();
  }

  // The owner shares captions and the transcript only: there is no summary to wait for.
  const UNSHARED = 'unshared';

  // null until there is a summary: 404 before it is written, and any other failure is retried too.
  async function fetchSummary(url, signal) {
    try {
      const res = await fetch(url, { signal, cache: 'no-store', headers: { Accept: 'application/json' } });
      if (res.status === 403) return UNSHARED;
      if (!res.ok) return null;
      const data = await res.json();
      return data && typeof data === 'object' ? data : null;
    } catch (_) {
      return null;
    }
  }

  const pause = (ms, signal) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

  async function pollSummary() {
    if (gone || summaryShown || summaryPoll) return;
    const poll = new AbortController();
    summaryPoll = poll;
    const url = `${location.pathname.replace(/\/+$/, '')}/summary`;
    const deadline = Date.now() + SUMMARY_WAIT_MS;
    for (;;) {
      const data = await fetchSummary(url, poll.signal);
      if (poll.signal.aborted) return;
      if (data === UNSHARED) break;
      if (data) { showSummary(data); break; }
      if (Date.now() + SUMMARY_RETRY_MS > deadline) break;
      await pause(SUMMARY_RETRY_MS, poll.signal);
      if (poll.signal.aborted) return;
    }
    summaryPoll = null;
  }

  // ---- connection ---------------------------------------------------------

  function shutDown() {
    gone = true;
    clearTimeout(retryTimer);
    setStatus('revoked');
    // The owner turned sharing off, so stop showing what was shared.
    lines.clear();
    list.replaceChildren();
    empty.hidden = true;
    jump.hidden = true;
    clearSummary();
    notice.textContent = GONE_TEXT;
    notice.hidden = false;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  function handle(msg) {
    switch (msg.type) {
      case 'meeting':
        if (typeof msg.title === 'string') {
          setText(titleEl, msg.title);
          document.title = `${msg.title} · Live captions`;
        }
        if (FROM_MEETING[msg.status]) setStatus(FROM_MEETING[msg.status]);
        // Opened after the meeting, the page is a record: start at the summary, not the last line.
        if (!sawMeeting && msg.status === 'ended') follow = false;
        sawMeeting = true;
        if (msg.status === 'ended') pollSummary();
        else stopSummaryPoll();
        break;
      case 'snapshot':
        changed(() => applySnapshot(msg.segments));
        break;
      case 'segment': {
        const seg = normalise(msg.segment);
        if (seg) changed(() => upsert(seg, false));
        break;
      }
      case 'revoked':
        shutDown();
        return;
      default:
        return; // unknown types are ignored so the server can add some later
    }
    if ((msg.type === 'snapshot' || msg.type === 'segment') && typeof msg.cursor === 'string') {
      cursor = msg.cursor;
    }
  }

  function scheduleReconnect() {
    setStatus('reconnecting');
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  }

  function connect() {
    retryTimer = 0;
    if (gone) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = location.pathname.replace(/\/+$/, '');
    const query = cursor !== null ? `?after=${encodeURIComponent(cursor)}` : '';
    let sock;
    try {
      sock = new WebSocket(`${proto}//${location.host}${path}/ws${query}`);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    // Handlers check `sock === ws` so a stale socket can never touch the page.
    sock.onmessage = (ev) => {
      if (sock !== ws || gone) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (!msg || typeof msg !== 'object') return;
      backoff = BACKOFF_MIN_MS;
      handle(msg);
    };
    sock.onclose = (ev) => {
      if (sock !== ws || gone) return;
      if (ev.code === CLOSE_GONE) shutDown();
      else scheduleReconnect();
    };
  }

  // Coming back online should not wait out a long backoff.
  window.addEventListener('online', () => {
    if (retryTimer && !gone) { clearTimeout(retryTimer); connect(); }
  });

  window.parleyLive = Object.freeze({
    get cursor() { return cursor; },
    get ws() { return ws; },
    get status() { return status; },
    get summaryShown() { return summaryShown; },
  });

  setStatus('connecting');
  connect();
})();
