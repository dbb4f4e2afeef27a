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

  // ---- status -------------------------------------------------------------

  function setStatus(next) {
    status = next;
    statusEl.dataset.status = next;
    // Rewriting identical text would make screen readers announce it again.
    if (statusEl.textContent !== STATUS_TEXT[next]) statusEl.textContent = STATUS_TEXT[next];
  }

  // ---- segments -----------------------------------------------------------

  const { clock } = window.ParleyCaptions;
  const lines = window.ParleyCaptions.list(list);

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
          if (titleEl.textContent !== msg.title) titleEl.textContent = msg.title;
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
        changed(() => lines.snapshot(msg.segments));
        break;
      case 'segment':
        changed(() => lines.upsert(msg.segment));
        break;
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
