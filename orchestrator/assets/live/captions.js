// Parley caption list, shared by the captions page (live.js) and the web app's meeting page
// (app.js): one <li> per segment in time order, a partial replaced in place by its final, a
// speaker's consecutive lines grouped, each speaker in a colour stable across viewers.
'use strict';

window.ParleyCaptions = Object.freeze((() => {
  const PALETTE_SIZE = 8; // matches the --spk-N colours of the style sheets

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

  // The lines of one <ol>: `upsert` a segment, `snapshot` the whole history, `clear`.
  function list(ol) {
    const lines = new Map(); // segment_id -> { seg, li }

    function createLine(segmentId) {
      const li = document.createElement('li');
      li.id = `seg-${segmentId}`; // summaries' items link here
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
      let after = ol.lastElementChild;
      while (after && (after === rec.li || order(lines.get(after.dataset.segmentId).seg, rec.seg) > 0)) {
        after = after.previousElementSibling;
      }
      const ref = after ? after.nextElementSibling : ol.firstElementChild;
      if (ref !== rec.li) {
        const oldNext = rec.li.parentNode ? rec.li.nextElementSibling : null;
        ol.insertBefore(rec.li, ref);
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

    function snapshot(raw) {
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
      for (const li of ol.children) regroup(li);
    }

    function clear() {
      lines.clear();
      ol.replaceChildren();
    }

    return Object.freeze({
      upsert: (raw) => { const seg = normalise(raw); if (seg) upsert(seg, false); },
      snapshot,
      clear,
      get size() { return lines.size; },
    });
  }

  return { list, clock };
})());
