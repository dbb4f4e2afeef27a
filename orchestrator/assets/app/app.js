// Parley web app: one page, routed by the address's fragment, talking to the JSON API with the
// session cookie. Writes carry the session's CSRF token. Loaded with `defer`.
'use strict';

(() => {
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const announcer = document.getElementById('announce');
  let csrf = null;
  let me = null;
  // Work of the page on screen (polls, event streams) stops when another page opens.
  let leave = [];

  // ---- helpers --------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'class') node.className = v;
      else if (v === true) node.setAttribute(k, '');
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function announce(text) {
    announcer.textContent = '';
    // A fresh text node makes screen readers speak it even when it repeats.
    setTimeout(() => { announcer.textContent = text; }, 50);
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
    const res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (res.status === 401 && me && path !== '/session') {
      me = null; csrf = null; go('#/signin');
    }
    if (!res.ok) throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`);
    return data;
  }

  const go = (hash) => { if (location.hash === hash) route(); else location.hash = hash; };

  function localTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function timeNode(iso) {
    return h('time', { datetime: iso }, localTime(iso));
  }

  const clock = (ms) => window.ParleyCaptions.clock(Number(ms) || 0).text;

  // A form whose submit runs `act(values)`, showing its error in words and keeping its inputs.
  function form(label, fields, submitText, act) {
    const error = h('p', { class: 'error', role: 'alert' });
    const button = h('button', { type: 'submit' }, submitText);
    const f = h('form', { 'aria-label': label }, fields, error, button);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      button.disabled = true;
      try {
        await act(Object.fromEntries(new FormData(f)), f);
      } catch (e) {
        error.textContent = e.message || String(e);
      } finally {
        button.disabled = false;
      }
    });
    return f;
  }

  const field = (label, attrs) => h('label', {}, label, h('input', attrs));

  const STATUS_WORDS = {
    scheduled: 'Scheduled', joining: 'Bot joining', in_progress: 'In the meeting',
    ended: 'Ended', failed: 'Failed',
  };

  function statusBadge(m) {
    if (m.status === 'in_progress' && m.capture_stalled_since) {
      return h('span', { class: 'badge status-failed' }, 'In the meeting, no audio since ', timeNode(m.capture_stalled_since));
    }
    return h('span', { class: `badge status-${m.status}` }, STATUS_WORDS[m.status] || m.status);
  }

  function show(...nodes) {
    main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
    main.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }

  // ---- signing in -------------------------------------------------------------

  async function loadSession() {
    try {
      const s = await api('GET', '/session');
      csrf = s.csrf_token; me = s.user;
    } catch (_) {
      csrf = null; me = null;
    }
  }

  function signInPage() {
    show(h('section', { class: 'card narrow' },
      h('h1', {}, 'Sign in'),
      form('Sign in', [
        field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true }),
        field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
      ], 'Sign in', async (v) => {
        const s = await api('POST', '/session', { email: v.email, password: v.password });
        csrf = s.csrf_token; me = s.user;
        announce(`Signed in as ${me.name}`);
        go('#/meetings');
      }),
      h('p', {}, h('a', { href: '#/signup' }, 'Create an account'), ' · ',
        h('a', { href: '#/forgot' }, 'Forgot your password?'))));
  }

  function signUpPage() {
    const done = h('p', { role: 'status' });
    show(h('section', { class: 'card narrow' },
      h('h1', {}, 'Create an account'),
      form('Create an account', [
        field('Name', { name: 'name', autocomplete: 'name', required: true, maxlength: 200 }),
        field('Email', { name: 'email', type: 'email', autocomplete: 'email', required: true }),
        field('Password (at least 8 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
      ], 'Create account', async (v, f) => {
        await api('POST', '/register/user', v);
        f.reset();
        done.textContent = 'Account created. We mailed you a link: open it to verify your address, then sign in.';
      }),
      done,
      h('p', {}, h('a', { href: '#/signin' }, 'Sign in instead'))));
  }

  function forgotPage() {
    const done = h('p', { role: 'status' });
    show(h('section', { class: 'card narrow' },
      h('h1', {}, 'Reset your password'),
      form('Reset your password', [
        field('Email', { name: 'email', type: 'email', autocomplete: 'email', required: true }),
      ], 'Mail me a reset token', async (v) => {
        await api('POST', '/password/reset', v);
        done.textContent = 'If the address has an account, a reset token is on its way.';
      }),
      done,
      h('h2', {}, 'Set a new password'),
      form('Set a new password', [
        field('Token from the mail', { name: 'token', required: true, autocomplete: 'off' }),
        field('New password', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
      ], 'Set password', async (v) => {
        await api('POST', '/password/reset/confirm', v);
        announce('Password changed. Sign in with it.');
        go('#/signin');
      })));
  }

  async function signOut() {
    try { await api('DELETE', '/session'); } catch (_) { /* signed out either way */ }
    csrf = null; me = null;
    announce('Signed out');
    go('#/signin');
  }

  // ---- meetings ----------------------------------------------------------------

  function meetingRow(m) {
    const when = m.status === 'scheduled' && m.start_time
      ? h('span', {}, timeNode(m.start_time), ' · the bot joins as it starts')
      : m.start_time ? timeNode(m.start_time) : timeNode(m.created_at);
    return h('li', { class: 'meeting' },
      h('a', { href: `#/meetings/${m.meeting_id}` }, m.title || 'Untitled meeting'),
      ' ', statusBadge(m), h('span', { class: 'when' }, when));
  }

  function meetingList(title, items, emptyText) {
    return h('section', { class: 'card' }, h('h2', {}, title),
      items.length ? h('ul', { class: 'meetings' }, items.map(meetingRow)) : h('p', { class: 'muted' }, emptyText));
  }

  async function meetingsPage() {
    const holder = h('div', { class: 'lists' }, h('p', {}, 'Loading meetings…'));
    const results = h('div', { 'aria-live': 'polite' });
    const unverified = me && !me.email_verified
      ? h('p', { class: 'notice' }, 'Verify your address to send bots and add calendars: follow the link we mailed you. ',
        h('button', { type: 'button', class: 'link', onclick: async () => {
          try { await api('POST', '/me/verification'); announce('A new link is on its way'); } catch (e) { announce(e.message); }
        } }, 'Mail a new link'))
      : null;
    show(
      h('h1', {}, 'Meetings'),
      unverified,
      h('section', { class: 'card' }, h('h2', {}, 'Send a bot now'),
        form('Send a bot now', [
          field('Title', { name: 'title', required: true, maxlength: 200, value: 'Meeting' }),
          field('Meeting link', { name: 'url', required: true, placeholder: 'https://meet.google.com/…', autocomplete: 'off' }),
        ], 'Send bot', async (v) => {
          const m = await api('POST', '/meetings', { title: v.title, url: v.url });
          announce('Bot sent');
          go(`#/meetings/${m.meeting_id}`);
        })),
      h('section', { class: 'card' }, h('h2', {}, 'Search'),
        form('Search meetings', [
          field('Title or words said', { name: 'q', type: 'search', required: true }),
        ], 'Search', async (v) => {
          const q = v.q.trim();
          const [list, said] = await Promise.all([
            api('GET', '/meetings'),
            api('GET', `/meetings/search?q=${encodeURIComponent(q)}`),
          ]);
          const byTitle = list.meetings.filter((m) => (m.title || '').toLowerCase().includes(q.toLowerCase()));
          const hits = (said && said.results) || [];
          results.replaceChildren(
            h('h3', {}, `Titles (${byTitle.length})`),
            byTitle.length ? h('ul', { class: 'meetings' }, byTitle.map(meetingRow)) : h('p', { class: 'muted' }, 'No title matches.'),
            h('h3', {}, `Words said (${hits.length})`),
            hits.length ? h('ul', { class: 'hits' }, hits.map((r) => h('li', {},
              h('a', { href: `#/meetings/${r.meeting_id}` }, r.title || 'Meeting'), ' ',
              h('span', { class: 'speaker' }, r.speaker_name || r.speaker || ''), ' ',
              h('q', {}, r.text || '')))) : h('p', { class: 'muted' }, 'Nobody said that.'));
        }),
        results),
      holder);
    const refresh = async () => {
      const { meetings } = await api('GET', '/meetings');
      const live = meetings.filter((m) => m.status === 'joining' || m.status === 'in_progress');
      const upcoming = meetings.filter((m) => m.status === 'scheduled')
        .sort((a, b) => String(a.start_time).localeCompare(String(b.start_time)));
      const past = meetings.filter((m) => m.status === 'ended' || m.status === 'failed');
      holder.replaceChildren(
        meetingList('Live now', live, 'No bot is in a meeting.'),
        meetingList('Upcoming', upcoming, 'Nothing scheduled. Add a calendar or send a bot.'),
        meetingList('Past', past, 'No meetings yet.'));
    };
    await refresh();
    const timer = setInterval(() => refresh().catch(() => {}), 5000);
    leave.push(() => clearInterval(timer));
  }

  // Live captions from the meeting's event stream, in the captions page's caption list: the
  // stored transcript first, then each segment as it is spoken, a partial replaced by its final.
  function captions(id, onStatus, onParticipants) {
    const ol = h('ol', { id: 'captions', class: 'captions', 'aria-live': 'polite', 'aria-relevant': 'additions text', 'aria-label': 'Live captions' });
    const lines = window.ParleyCaptions.list(ol);
    // EventSource reconnects by itself, resuming after the last event id it saw.
    const source = new EventSource(`/meetings/${id}/events`);
    const on = (type, fn) => source.addEventListener(type, (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg && typeof msg === 'object') fn(msg);
    });
    on('segment', (msg) => lines.upsert(msg.segment));
    on('status', (msg) => onStatus(msg.status));
    on('participants', (msg) => onParticipants(msg.participants));
    on('participant', () => {
      api('GET', `/meetings/${id}`).then((m) => onParticipants(m.participants)).catch(() => {});
    });
    on('end', (msg) => { source.close(); onStatus(msg.status || 'ended'); });
    leave.push(() => source.close());
    return ol;
  }

  function summarySection(s) {
    const items = (title, arr, body) => (Array.isArray(arr) && arr.length
      ? [h('h3', {}, title), h('ul', {}, arr.map((i) => h('li', {}, h('span', { class: 'at' }, clock(i.start_ms)), ' ', body(i))))]
      : []);
    return h('section', { class: 'card', id: 'summary', 'aria-labelledby': 'summary-h' },
      h('h2', { id: 'summary-h' }, 'Summary'),
      h('p', { id: 'summary-text' }, s.summary || ''),
      items('Action items', s.action_items, (i) => h('span', { class: 'action' },
        i.owner ? h('strong', {}, `${i.owner}: `) : null, i.task,
        i.due || i.due_date ? h('span', { class: 'due' }, ` (due ${i.due || ''}${i.due_date ? ` ${i.due_date}` : ''})`) : null)),
      items('Highlights', s.highlights, (i) => h('span', {}, i.text, h('span', { class: 'muted' }, ` — ${i.speaker}`))),
      items('Open questions', s.open_questions, (i) => h('span', {}, i.text, h('span', { class: 'muted' }, ` — ${i.speaker}`))));
  }

  async function meetingPage(id) {
    let m;
    try {
      m = await api('GET', `/meetings/${encodeURIComponent(id)}`);
    } catch (e) {
      show(h('h1', {}, 'Meeting not found'), h('p', {}, e.status === 404 ? 'No meeting of yours has this address.' : e.message),
        h('p', {}, h('a', { href: '#/meetings' }, 'Back to meetings')));
      return;
    }
    const status = h('p', { id: 'meeting-status', role: 'status' }, statusBadge(m), m.status_reason ? ` ${m.status_reason}` : '');
    const people = h('ul', { id: 'participants', class: 'people' });
    const setPeople = (list) => people.replaceChildren(...(Array.isArray(list) ? list : [])
      .map((p) => h('li', {}, p.display_name || p.speaker_key, p.left_ms ? h('span', { class: 'muted' }, ' (left)') : null)));
    setPeople(m.participants);
    const after = h('div', { id: 'after' });
    let ended = m.status === 'ended' || m.status === 'failed';
    const actions = h('div', { class: 'actions' });
    const setActions = () => {
      actions.replaceChildren(
        m.status === 'scheduled' || m.status === 'joining' || m.status === 'in_progress'
          ? h('button', { type: 'button', onclick: async () => {
            try { await api('POST', `/meetings/${m.meeting_id}/end`); announce(m.status === 'scheduled' ? 'Bot cancelled' : 'Bot asked to leave'); } catch (e) { announce(e.message); }
          } }, m.status === 'scheduled' ? 'Cancel bot' : 'End meeting') : null,
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!window.confirm('Delete this meeting, its transcript, summary and recordings?')) return;
          try { await api('DELETE', `/meetings/${m.meeting_id}`); announce('Meeting deleted'); go('#/meetings'); } catch (e) { announce(e.message); }
        } }, 'Delete meeting'));
    };
    setActions();
    const onStatus = (s) => {
      if (!s || s === m.status) return;
      m.status = s;
      status.replaceChildren(statusBadge(m));
      announce(STATUS_WORDS[s] || s);
      setActions();
      if ((s === 'ended' || s === 'failed') && !ended) { ended = true; loadAfter(); }
    };
    const share = h('div', { id: 'share' });
    const renderShare = () => {
      share.replaceChildren(
        m.live_url ? h('p', {}, h('a', { href: m.live_url, id: 'share-link', rel: 'noreferrer' }, 'Live captions link'), ' ',
          h('button', { type: 'button', onclick: async () => {
            try { await navigator.clipboard.writeText(m.live_url); announce('Link copied'); } catch (_) { announce('Copy the link from the page'); }
          } }, 'Copy')) : h('p', { class: 'muted' }, 'Sharing is off.'),
        h('button', { type: 'button', onclick: async () => {
          try { const r = await api('POST', `/meetings/${m.meeting_id}/live`); m.live_url = r.live_url; renderShare(); announce('New link made; the old one stopped working'); } catch (e) { announce(e.message); }
        } }, m.live_url ? 'Make a new link' : 'Turn sharing on'),
        m.live_url ? h('button', { type: 'button', onclick: async () => {
          try { await api('DELETE', `/meetings/${m.meeting_id}/live`); m.live_url = null; renderShare(); announce('Sharing turned off'); } catch (e) { announce(e.message); }
        } }, 'Turn sharing off') : null);
    };
    renderShare();
    const downloads = h('p', { class: 'downloads' }, 'Download the transcript: ',
      ['txt', 'srt', 'vtt', 'json'].map((f) => [h('a', { href: `/meetings/${m.meeting_id}/transcript?format=${f}`, download: `${m.title || 'meeting'}.${f}`, id: `download-${f}` }, f.toUpperCase()), ' ']));
    async function loadAfter() {
      const parts = [];
      for (let i = 0; i < 60; i++) {
        try {
          parts.push(summarySection(await api('GET', `/meetings/${m.meeting_id}/summary`)));
          break;
        } catch (e) {
          if (e.status !== 404 || m.status === 'failed') break;
          await new Promise((r) => setTimeout(r, 2000));
          if (!main.contains(after)) return;
        }
      }
      try {
        const { recordings } = await api('GET', `/meetings/${m.meeting_id}/recordings`);
        if (recordings.length) {
          parts.push(h('section', { class: 'card' }, h('h2', {}, 'Recordings'), h('ul', { class: 'recordings' },
            recordings.map((r) => h('li', {}, h('span', {}, r.speaker_name || r.speaker || r.name),
              h('audio', { controls: true, preload: 'none', src: r.url, 'aria-label': `Recording of ${r.speaker_name || r.name}` }))))));
        }
      } catch (_) { /* recordings are optional */ }
      after.replaceChildren(...parts);
    }
    // The event stream tells status changes; a stalled capture is read with the meeting.
    const poll = setInterval(async () => {
      if (ended) return;
      try {
        const fresh = await api('GET', `/meetings/${m.meeting_id}`);
        if (Boolean(fresh.capture_stalled_since) !== Boolean(m.capture_stalled_since)) {
          m.capture_stalled_since = fresh.capture_stalled_since;
          status.replaceChildren(statusBadge(m));
          announce(m.capture_stalled_since ? 'The bot hears no audio' : 'Audio is back');
        }
      } catch (_) { /* the stream reports what matters */ }
    }, 5000);
    leave.push(() => clearInterval(poll));
    show(
      h('p', {}, h('a', { href: '#/meetings' }, '← Meetings')),
      h('h1', {}, m.title || 'Meeting'),
      status,
      h('p', { class: 'muted' }, [m.start_time ? ['Starts ', timeNode(m.start_time)] : null, m.url ? h('span', { class: 'link-text' }, m.url) : null]
        .filter(Boolean).flatMap((part, i) => (i ? [' · ', part] : [part]))),
      actions,
      h('section', { class: 'card' }, h('h2', {}, 'Transcript'), captions(m.meeting_id, onStatus, setPeople), downloads),
      after,
      h('section', { class: 'card' }, h('h2', {}, 'Participants'), people),
      h('section', { class: 'card' }, h('h2', {}, 'Share'), share));
    if (ended) loadAfter();
  }

  // ---- calendars ---------------------------------------------------------------

  async function calendarsPage() {
    const list = h('ul', { class: 'calendars' });
    const refresh = async () => {
      const { calendars } = await api('GET', '/calendars');
      list.replaceChildren(...(calendars.length ? calendars.map((c) => h('li', {},
        h('span', { class: 'link-text' }, c.url), ' ',
        c.last_error ? h('span', { class: 'error' }, `The last ${c.failures > 1 ? `${c.failures} reads` : 'read'} failed: ${c.last_error}`)
          : c.last_read_at ? h('span', { class: 'ok' }, 'Read ', timeNode(new Date(c.last_read_at).toISOString()))
            : h('span', { class: 'muted' }, 'Not read yet'), ' ',
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await api('DELETE', `/calendars/${c.calendar_id}`); announce('Calendar removed'); await refresh(); } catch (e) { announce(e.message); }
        } }, 'Remove'))) : [h('li', { class: 'muted' }, 'No calendars yet.')]));
    };
    show(h('h1', {}, 'Calendars'),
      h('section', { class: 'card' }, h('h2', {}, 'Your calendars'), list),
      h('section', { class: 'card' }, h('h2', {}, 'Add a calendar'),
        h('p', { class: 'muted' }, 'An ICS feed (https:// or webcal://) or a CalDAV calendar. Events with a meeting link in the next 14 days get a bot.'),
        form('Add a calendar', [
          field('Address', { name: 'url', required: true, autocomplete: 'off' }),
          field('User name (optional)', { name: 'username', autocomplete: 'off' }),
          field('Password (optional)', { name: 'password', type: 'password', autocomplete: 'off' }),
        ], 'Add calendar', async (v, f) => {
          const body = { url: v.url };
          if (v.username) body.username = v.username;
          if (v.password) body.password = v.password;
          await api('POST', '/calendars', body);
          f.reset();
          announce('Calendar added');
          await refresh();
        })));
    await refresh();
    const timer = setInterval(() => refresh().catch(() => {}), 5000);
    leave.push(() => clearInterval(timer));
  }

  // ---- settings ----------------------------------------------------------------

  async function settingsPage() {
    const sessions = h('ul', { class: 'sessions' });
    const keys = h('ul', { class: 'keys' });
    const hooks = h('ul', { class: 'hooks' });
    const shownKey = h('p', { role: 'status', class: 'secret' });
    const refresh = async () => {
      const [{ sessions: ss }, { api_keys: ks }, { webhooks: ws }] = await Promise.all([
        api('GET', '/me/sessions'), api('GET', '/api-keys'), api('GET', '/webhooks'),
      ]);
      sessions.replaceChildren(...ss.map((x) => h('li', {},
        h('span', {}, 'Signed in ', timeNode(x.created_at), ', until ', timeNode(x.expires_at)), ' ',
        x.current ? h('strong', {}, 'this browser') : h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await api('DELETE', `/me/sessions/${x.id}`); announce('Session ended'); await refresh(); } catch (e) { announce(e.message); }
        } }, 'Sign it out'))));
      keys.replaceChildren(...(ks.length ? ks.map((k) => h('li', {}, h('strong', {}, k.name), ` ${(k.scopes || []).join(', ')} `,
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await api('DELETE', `/api-keys/${k.id}`); announce('Key revoked'); await refresh(); } catch (e) { announce(e.message); }
        } }, 'Revoke'))) : [h('li', { class: 'muted' }, 'No API keys.')]));
      hooks.replaceChildren(...(ws.length ? ws.map((w) => h('li', {}, h('span', { class: 'link-text' }, w.url), ` ${(w.events || []).join(', ')} `,
        w.disabled_at ? h('span', { class: 'error' }, 'turned off after failing deliveries ') : null,
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await api('DELETE', `/webhooks/${w.id}`); announce('Webhook removed'); await refresh(); } catch (e) { announce(e.message); }
        } }, 'Remove'))) : [h('li', { class: 'muted' }, 'No webhooks.')]));
    };
    const scopes = ['meetings:read', 'meetings:write', 'bots:write', 'webhooks:write'];
    const events = ['bot.status', 'participant.joined', 'participant.left', 'transcript.final', 'meeting.ended', 'summary.ready', 'recording.ready'];
    const checks = (name, values, checked) => h('fieldset', {}, h('legend', {}, name === 'scope' ? 'Scopes' : 'Events'),
      values.map((v) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name, value: v, checked: checked.includes(v) }), v)));
    const picked = (f, name) => Array.from(f.querySelectorAll(`input[name="${name}"]:checked`)).map((i) => i.value);
    show(h('h1', {}, 'Settings'),
      h('section', { class: 'card' }, h('h2', {}, 'Account'),
        h('p', {}, `${me.name} · ${me.email} · `, me.email_verified ? 'address verified' : 'address not verified yet')),
      h('section', { class: 'card' }, h('h2', {}, 'Password'),
        form('Change password', [
          field('Current password', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true }),
          field('New password', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
        ], 'Change password', async (v, f) => {
          await api('POST', '/me/password', v);
          f.reset();
          announce('Password changed; your other sessions ended');
        })),
      h('section', { class: 'card' }, h('h2', {}, 'Sessions'), sessions,
        h('button', { type: 'button', onclick: async () => {
          try { await api('POST', '/logout/all'); } catch (_) { /* this session ends too */ }
          csrf = null; me = null; go('#/signin');
        } }, 'Sign out everywhere')),
      h('section', { class: 'card' }, h('h2', {}, 'API keys'), keys, shownKey,
        form('Make an API key', [
          field('Name', { name: 'name', required: true, maxlength: 100 }),
          checks('scope', scopes, ['meetings:read']),
        ], 'Make key', async (v, f) => {
          const k = await api('POST', '/api-keys', { name: v.name, scopes: picked(f, 'scope') });
          shownKey.textContent = `Your new key (shown once): ${k.key}`;
          f.reset();
          await refresh();
        })),
      h('section', { class: 'card' }, h('h2', {}, 'Webhooks'), hooks,
        form('Add a webhook', [
          field('Address (https://…)', { name: 'url', required: true, autocomplete: 'off' }),
          checks('event', events, ['summary.ready']),
        ], 'Add webhook', async (v, f) => {
          const w = await api('POST', '/webhooks', { url: v.url, events: picked(f, 'event') });
          shownKey.textContent = `The webhook's signing secret (shown once): ${w.secret}`;
          f.reset();
          await refresh();
        })));
    await refresh();
  }

  // ---- admin -------------------------------------------------------------------

  async function adminPage() {
    const users = h('tbody');
    const bots = h('tbody');
    const queue = h('p', { id: 'queue' });
    const settings = h('div');
    const refreshFleet = async () => {
      const f = await api('GET', '/admin/fleet');
      queue.textContent = `Launcher: ${f.launcher}. Queue: ${Object.entries(f.queue || {}).filter(([, v]) => v !== null).map(([k, v]) => `${k.replaceAll('_', ' ')} ${v}`).join(', ')}.`;
      bots.replaceChildren(...(f.bots.length ? f.bots.map((b) => h('tr', {},
        h('td', {}, b.worker_id), h('td', {}, b.state),
        h('td', {}, (b.meetings || []).map((id) => [h('a', { href: `#/meetings/${id}` }, id.slice(0, 8)), ' '])),
        h('td', {}, `${b.meetings ? b.meetings.length : 0} / ${b.max_meetings}`),
        h('td', {}, clock((b.uptime_s || 0) * 1000)))) : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No bots running.'))]));
      return f.settings;
    };
    const refreshUsers = async () => {
      const { users: list } = await api('GET', '/admin/users');
      users.replaceChildren(...list.map((u) => h('tr', {},
        h('td', {}, u.name), h('td', {}, u.email),
        h('td', {}, h('select', { 'aria-label': `Role of ${u.email}`, onchange: async (ev) => {
          try { await api('PUT', `/admin/users/${u.user_id}/role`, { role: ev.target.value }); announce('Role changed'); } catch (e) { announce(e.message); await refreshUsers(); }
        } }, ['user', 'admin'].map((r) => h('option', { value: r, selected: u.role === r }, r)))),
        h('td', {}, h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: !!u.disabled, onchange: async (ev) => {
          try { await api('PUT', `/admin/users/${u.user_id}/disabled`, { disabled: ev.target.checked }); announce(ev.target.checked ? 'Account disabled' : 'Account enabled'); } catch (e) { announce(e.message); await refreshUsers(); }
        } }), 'disabled')))));
    };
    if (!me || me.role !== 'admin') {
      show(h('h1', {}, 'Admin'), h('p', {}, 'This page is for administrators.'));
      return;
    }
    show(h('h1', {}, 'Admin'),
      h('section', { class: 'card' }, h('h2', {}, 'Fleet'), settings, queue,
        h('table', { class: 'bots' }, h('caption', {}, 'Bots'),
          h('thead', {}, h('tr', {}, ['Worker', 'State', 'Meetings', 'Load', 'Uptime'].map((t) => h('th', { scope: 'col' }, t)))), bots)),
      h('section', { class: 'card' }, h('h2', {}, 'Users'),
        h('table', { class: 'users' }, h('thead', {}, h('tr', {}, ['Name', 'Email', 'Role', 'Account'].map((t) => h('th', { scope: 'col' }, t)))), users)));
    const s = await refreshFleet();
    settings.replaceChildren(form('Fleet settings', [
      field('Free places kept warm', { name: 'min_idle', type: 'number', min: 0, value: s.min_idle, required: true }),
      field('Most bots at once', { name: 'max_bots', type: 'number', min: 1, max: 10000, value: s.max_bots, required: true }),
      field('Most bots per user', { name: 'per_user', type: 'number', min: 1, value: s.per_user, required: true }),
    ], 'Save fleet settings', async (v) => {
      await api('PUT', '/admin/fleet', { min_idle: Number(v.min_idle), max_bots: Number(v.max_bots), per_user: Number(v.per_user) });
      announce('Fleet settings saved');
    }));
    await refreshUsers();
    const timer = setInterval(() => refreshFleet().catch(() => {}), 2000);
    leave.push(() => clearInterval(timer));
  }

  // ---- routing -----------------------------------------------------------------

  const PUBLIC = { signin: signInPage, signup: signUpPage, forgot: forgotPage };

  async function route() {
    for (const stop of leave) stop();
    leave = [];
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
    const page = parts[0] || 'meetings';
    if (me === null && !PUBLIC[page]) await loadSession();
    nav.hidden = !me;
    document.getElementById('nav-admin').hidden = !me || me.role !== 'admin';
    for (const a of nav.querySelectorAll('a')) {
      if (a.getAttribute('href') === `#/${page}`) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    try {
      if (PUBLIC[page]) return PUBLIC[page]();
      if (!me) return go('#/signin');
      if (page === 'meetings' && parts[1]) return await meetingPage(parts[1]);
      const pages = { meetings: meetingsPage, calendars: calendarsPage, settings: settingsPage, admin: adminPage };
      if (pages[page]) return await pages[page]();
      show(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/meetings' }, 'Go to your meetings')));
    } catch (e) {
      show(h('h1', {}, 'Something went wrong'), h('p', { role: 'alert' }, e.message || String(e)));
    } finally {
      document.title = `${main.querySelector('h1') ? main.querySelector('h1').textContent : 'Parley'} · Parley`;
    }
  }

  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  route();
})();
