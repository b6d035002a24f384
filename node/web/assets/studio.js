// The studio: my streams (all of them for an admin who asks), create, edit, start,
// stop, cancel, new key, delete; the key shown once with what OBS needs; live state
// and viewers kept current; each stream's restream destinations (added, started,
// stopped, removed; their state kept current; their keys never shown); and, for
// admins, the accounts.
'use strict';

const root = document.getElementById('studio');
const isAdmin = root.dataset.admin === 'true';
const REFRESH_MS = 3000;
let lastListing = '';

// datetime-local inputs speak the reader's local time; the API speaks RFC 3339.
function toRfc3339(local) {
  return local ? new Date(local).toISOString() : null;
}
function toLocalInput(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function revealKey(answer) {
  document.getElementById('key-stream').textContent = answer.title || answer.id;
  document.getElementById('key-server').value = answer.rtmp_server;
  document.getElementById('key-value').value = answer.stream_key;
  const watch = document.getElementById('key-watch');
  watch.href = `/watch/${encodeURIComponent(answer.id)}`;
  watch.textContent = new URL(watch.href, window.location.href).href;
  document.getElementById('key-ffmpeg').textContent =
    'ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 ' +
    '-c:v libx264 -preset veryfast -tune zerolatency -g 60 -c:a aac -f flv ' +
    `'${answer.publish_url}'`;
  const panel = document.getElementById('key-panel');
  panel.hidden = false;
  panel.scrollIntoView({ behavior: 'smooth' });
}

function hideKey() {
  document.getElementById('key-value').value = '';
  document.getElementById('key-ffmpeg').textContent = '';
  document.getElementById('key-panel').hidden = true;
}

async function copy(button) {
  const input = document.getElementById(button.dataset.copy);
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (e) {
    // No clipboard API (a plain-HTTP page on another host): copy the selection.
    const type = input.type;
    input.type = 'text';
    input.select();
    document.execCommand('copy');
    input.type = type;
  }
  const label = button.textContent;
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = label; }, 1500);
}

function when(s) {
  if (s.status === 'live' && s.started_at) return `since ${cm.when(s.started_at)}`;
  if (s.status === 'scheduled') return s.scheduled_at ? `starts ${cm.when(s.scheduled_at)}` : 'not scheduled';
  if (s.ended_at) return `ended ${cm.when(s.ended_at)}`;
  return '';
}

// The actions a stream's state allows (the API refuses the others, in words).
function actions(s) {
  const list = [['edit', 'Edit'], ['restream', 'Restream']];
  if (s.status === 'scheduled') list.push(['cancel', 'Cancel']);
  if (s.accepting && (s.status === 'live' || s.status === 'ended')) list.push(['stop', 'Stop']);
  if (!s.accepting && s.status !== 'cancelled') list.push(['start', 'Allow publishing']);
  list.push(['rotate-key', 'New key'], ['delete', 'Delete']);
  return list;
}

let streams = new Map();

function row(s) {
  const { el } = cm;
  const buttons = actions(s).map(([action, label]) =>
    el('button', { type: 'button', className: action === 'delete' ? 'danger' : '', dataset: { action, id: s.id } }, label));
  return el('tr', { dataset: { stream: s.id } },
    el('td', {}, el('a', { href: `/watch/${encodeURIComponent(s.id)}` }, s.title || s.id),
      el('small', { className: 'muted' }, ` ${s.id}`),
      s.owner && isAdmin ? el('small', {}, ` · ${s.owner.display_name}`) : null),
    el('td', {}, el('span', { className: 'badge', dataset: { status: s.status } }, s.status === 'live' ? 'LIVE' : s.status),
      s.accepting ? null : el('small', { className: 'muted' }, ' key held')),
    el('td', { className: 'viewers' }, s.status === 'live' ? String(s.viewers || 0) : ''),
    el('td', {}, when(s)),
    el('td', { className: 'actions' }, ...buttons));
}

async function listing() {
  const showAll = isAdmin && document.getElementById('show-all').checked;
  const found = [];
  let cursor = '';
  // Pages of 200 until the last (an admin's "all" is bounded at 2,000 here).
  do {
    const query = `limit=200${showAll ? '' : '&owner=me'}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await cm.api('GET', `/api/v1/streams?${query}`);
    found.push(...page.streams);
    cursor = page.next_cursor;
  } while (cursor && found.length < 2000);
  return found;
}

async function refresh() {
  try {
    const found = await listing();
    // Redrawn only when more than viewer counts changed, so that a button is not
    // replaced under the pointer; counts are updated in place.
    const text = JSON.stringify(found.map((s) => ({ ...s, viewers: undefined })));
    if (text === lastListing) {
      for (const s of found) {
        const cell = document.querySelector(`#streams tr[data-stream="${CSS.escape(s.id)}"] td.viewers`);
        if (cell) cell.textContent = s.status === 'live' ? String(s.viewers || 0) : '';
      }
      return;
    }
    lastListing = text;
    streams = new Map(found.map((s) => [s.id, s]));
    document.querySelector('#streams tbody').replaceChildren(...found.map(row));
    document.getElementById('streams-empty').hidden = found.length > 0;
  } catch (e) {
    cm.showError(`Your streams could not be loaded: ${e.message}`);
  }
}

async function act(action, id) {
  const s = streams.get(id);
  const name = (s && s.title) || id;
  if (action === 'edit') return edit(s);
  if (action === 'restream') return restream.open(s);
  if (action === 'delete' && !window.confirm(`Delete “${name}”? Its key stops working and it disappears for viewers.`)) return;
  if (action === 'rotate-key' && !window.confirm(`Make a new key for “${name}”? The old key stops working for new publishes.`)) return;
  const path = `/api/v1/streams/${encodeURIComponent(id)}`;
  const answer = action === 'delete' ? await cm.api('DELETE', path) : await cm.api('POST', `${path}/${action}`);
  if (action === 'rotate-key') revealKey(answer);
  lastListing = '';
  await refresh();
}

function edit(s) {
  const dialog = document.getElementById('edit-dialog');
  const form = document.getElementById('edit-form');
  form.elements.title.value = s.title;
  form.elements.description.value = s.description;
  form.elements.scheduled_at.value = toLocalInput(s.scheduled_at);
  form.dataset.id = s.id;
  document.getElementById('edit-error').hidden = true;
  dialog.showModal();
}

async function saveEdit(event) {
  const form = event.target;
  if (event.submitter && event.submitter.value !== 'save') return;
  event.preventDefault();
  const body = {
    title: form.elements.title.value,
    description: form.elements.description.value,
    scheduled_at: toRfc3339(form.elements.scheduled_at.value),
  };
  try {
    await cm.api('PATCH', `/api/v1/streams/${encodeURIComponent(form.dataset.id)}`, body);
    document.getElementById('edit-dialog').close();
    lastListing = '';
    await refresh();
  } catch (e) {
    const error = document.getElementById('edit-error');
    error.textContent = e.message;
    error.hidden = false;
  }
}

async function create(event) {
  event.preventDefault();
  cm.clearError();
  const form = event.target;
  const body = {
    title: form.elements.title.value,
    description: form.elements.description.value,
  };
  const at = toRfc3339(form.elements.scheduled_at.value);
  if (at) body.scheduled_at = at;
  try {
    revealKey(await cm.api('POST', '/api/v1/streams', body));
    form.reset();
    lastListing = '';
    await refresh();
  } catch (e) {
    cm.showError(e);
  }
}

// The restream dialog of one stream.
const restream = {
  id: null,
  timer: null,
  path(tail = '') {
    return `/api/v1/streams/${encodeURIComponent(this.id)}/destinations${tail}`;
  },
  open(s) {
    this.id = s.id;
    document.getElementById('restream-stream').textContent = s.title || s.id;
    document.getElementById('restream-error').hidden = true;
    document.getElementById('restream-dialog').showModal();
    this.refresh();
    this.timer = setInterval(() => this.refresh(), 2000);
  },
  close() {
    clearInterval(this.timer);
    this.timer = null;
    document.getElementById('restream-dialog').close();
  },
  error(e) {
    const p = document.getElementById('restream-error');
    p.textContent = e.message || String(e);
    p.hidden = false;
  },
  state(d) {
    const s = d.status;
    if (s.state === 'retrying') return `retrying in ${s.retry_in_s} s`;
    if (s.state === 'live') return `live, ${s.bitrate_kbps} kbit/s`;
    return s.state;
  },
  row(d) {
    const { el } = cm;
    const s = d.status;
    const running = d.wanted;
    const detail = [];
    if (s.last_error) detail.push(el('small', { className: 'error-text' }, `${s.last_error} (${cm.when(s.last_error_at)})`));
    if (s.reconnects) detail.push(el('small', { className: 'muted' }, ` · ${s.reconnects} reconnects`));
    if (s.dropped_frames) detail.push(el('small', { className: 'muted' }, ` · ${s.dropped_frames} frames dropped`));
    return el('tr', { dataset: { destination: String(d.id) } },
      el('td', {}, d.name, el('br'), el('small', { className: 'muted' }, `${d.server_url} · key ••••••`)),
      el('td', {}, el('span', { className: 'badge', dataset: { state: s.state } }, this.state(d)), el('br'), ...detail),
      el('td', {}, `${(s.bytes_sent / 1e6).toFixed(1)} MB`),
      el('td', { className: 'actions' },
        el('button', { type: 'button', dataset: { dest: String(d.id), run: running ? 'stop' : 'start' } }, running ? 'Stop' : 'Start'),
        el('button', { type: 'button', className: 'danger', dataset: { dest: String(d.id), run: 'delete' } }, 'Delete')));
  },
  async refresh() {
    if (!this.id) return;
    try {
      const list = await cm.api('GET', this.path());
      document.querySelector('#destinations tbody').replaceChildren(...list.map((d) => this.row(d)));
      document.getElementById('destinations-empty').hidden = list.length > 0;
    } catch (e) {
      this.error(e);
    }
  },
  async run(dest, what) {
    if (what === 'delete' && !window.confirm('Remove this destination?')) return;
    const path = this.path(`/${dest}`);
    if (what === 'delete') await cm.api('DELETE', path);
    else await cm.api('POST', `${path}/${what}`);
    await this.refresh();
  },
  async add(event) {
    event.preventDefault();
    const form = event.target;
    const body = {
      name: form.elements.name.value,
      platform: form.elements.platform.value,
      stream_key: form.elements.stream_key.value,
      enabled: form.elements.enabled.checked,
    };
    if (form.elements.server_url.value) body.server_url = form.elements.server_url.value;
    try {
      await cm.api('POST', this.path(), body);
      form.reset();
      document.getElementById('restream-error').hidden = true;
      await this.refresh();
    } catch (e) {
      this.error(e);
    }
  },
};

async function users() {
  const { el } = cm;
  try {
    const answer = await cm.api('GET', '/api/v1/users');
    document.querySelector('#users tbody').replaceChildren(...answer.users.map((u) =>
      el('tr', {}, el('td', {}, String(u.id)), el('td', {}, u.display_name), el('td', {}, u.email),
        el('td', {}, u.disabled ? `${u.role} (disabled)` : u.role), el('td', {}, cm.when(u.created_at)))));
  } catch (e) {
    cm.showError(`The accounts could not be loaded: ${e.message}`);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  const createForm = document.getElementById('create-form');
  if (createForm) createForm.addEventListener('submit', create);
  document.getElementById('edit-form').addEventListener('submit', saveEdit);
  document.getElementById('destination-form').addEventListener('submit', (e) => restream.add(e));
  document.getElementById('restream-close').addEventListener('click', () => restream.close());
  document.getElementById('restream-dialog').addEventListener('close', () => clearInterval(restream.timer));
  document.getElementById('destinations').addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (button && button.dataset.run) restream.run(button.dataset.dest, button.dataset.run).catch((e) => restream.error(e));
  });
  document.getElementById('key-done').addEventListener('click', hideKey);
  document.getElementById('key-show').addEventListener('click', (event) => {
    const input = document.getElementById('key-value');
    const shown = input.type === 'text';
    input.type = shown ? 'password' : 'text';
    event.target.textContent = shown ? 'Show' : 'Hide';
    event.target.setAttribute('aria-pressed', String(!shown));
  });
  root.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (!button) return;
    if (button.dataset.copy) copy(button);
    else if (button.dataset.action) {
      cm.clearError();
      act(button.dataset.action, button.dataset.id).catch(cm.showError);
    }
  });
  if (isAdmin) {
    document.getElementById('show-all').addEventListener('change', () => { lastListing = ''; refresh(); });
    users();
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
});
