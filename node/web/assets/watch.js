// The watch page: the player (hls.js in low-latency mode, native HLS where hls.js
// cannot run, e.g. Safari on iOS), the chat, and the watch socket that carries both
// the chat and the stream's status and viewer count. The player starts by itself
// when the stream goes live and, after a fatal error, builds itself anew.
'use strict';

const page = document.getElementById('watch');
const video = document.getElementById('video');
const overlay = document.getElementById('overlay');
const streamId = page.dataset.stream;
const playlist = page.dataset.playlist;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// What the player did, for the curious (and the browser tests): fatal errors seen and
// how often it recovered.
// `generation` grows at every start and stop: a wait or a retry from before a stop
// does nothing after it.
const player = { hls: null, wanted: false, generation: 0, fatal: [], recoveries: 0, mediaRecoveries: 0 };
window.castmeshPlayer = player;

function say(text) {
  overlay.textContent = text;
  overlay.hidden = !text;
}

async function playlistReady() {
  try {
    return (await fetch(playlist, { cache: 'no-store' })).ok;
  } catch (e) {
    return false;
  }
}

// The stream is live: wait until its playlist answers (the first segment takes a
// moment after the publisher connects), then play.
async function start() {
  if (player.wanted) return;
  player.wanted = true;
  const generation = ++player.generation;
  const current = () => player.wanted && player.generation === generation;
  say('Starting…');
  while (current() && !(await playlistReady())) await sleep(1000);
  if (current() && !player.hls) attach();
}

// Attaches again after `ms`, unless the player was stopped or rebuilt meanwhile.
function retryLater(ms) {
  const generation = player.generation;
  setTimeout(() => {
    if (player.wanted && player.generation === generation && !player.hls) attach();
  }, ms);
}

function attach() {
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({ lowLatencyMode: true, backBufferLength: 30 });
    player.hls = hls;
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      player.fatal.push({ type: data.type, details: data.details, at: Date.now() });
      recover(hls, data);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => say('Press play to watch.')));
    hls.loadSource(playlist);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = playlist;
    video.play().catch(() => say('Press play to watch.'));
  } else {
    say('This browser cannot play HLS video.');
  }
}

// A media error is first handed back to hls.js (it rebuilds its buffers); anything
// else, or media errors that keep coming, gets a new player after a pause.
function recover(hls, data) {
  player.recoveries += 1;
  if (data.type === Hls.ErrorTypes.MEDIA_ERROR && player.mediaRecoveries < 3) {
    player.mediaRecoveries += 1;
    hls.recoverMediaError();
    return;
  }
  hls.destroy();
  player.hls = null;
  say('Reconnecting…');
  retryLater(2000);
}

function stop() {
  player.wanted = false;
  player.generation += 1;
  if (player.hls) {
    player.hls.destroy();
    player.hls = null;
  }
  video.removeAttribute('src');
  video.load();
}

video.addEventListener('playing', () => { say(''); player.mediaRecoveries = 0; });
video.addEventListener('error', () => {
  // Native HLS (no hls.js): try the playlist again.
  if (!player.hls && player.wanted) retryLater(2000);
});

const WAITING = {
  scheduled: () => {
    const at = page.dataset.scheduled;
    return at ? `Not started yet. Starts ${cm.when(at)}.` : 'Not started yet. This page plays it when it starts.';
  },
  ended: () => 'This stream has ended.',
  archived: () => 'This stream has ended.',
  cancelled: () => 'This stream was cancelled.',
};

function showStatus(s) {
  const badge = document.getElementById('status');
  badge.textContent = s.status === 'live' ? 'LIVE' : s.status;
  badge.dataset.status = s.status;
  page.dataset.status = s.status;
  document.getElementById('viewers').textContent =
    s.status === 'live' && s.viewers !== undefined ? cm.plural(s.viewers, 'viewer', 'viewers') : '';
  if (s.status === 'live') {
    start();
  } else {
    stop();
    say((WAITING[s.status] || (() => s.status))());
  }
}

// The chat beside the player: lines as the stream's origin ordered them, posting for
// signed-in viewers, delete and ban for the stream's owner and admins. Text is always
// set as text, never parsed as HTML.
const chat = {
  list: document.getElementById('messages'),
  note: document.getElementById('chat-note'),
  form: document.getElementById('chat-form'),
  input: document.getElementById('chat-text'),
  me: null,
  moderator: false,
  state: 'not_started',
  room: 0,
  socket: null,
  gone: false,
};

function chatNote(text, problem = false) {
  chat.note.textContent = text;
  chat.note.classList.toggle('problem', problem);
}

function lineItem(line) {
  const { el } = cm;
  const tools = [];
  if (chat.moderator && chat.state === 'open') {
    tools.push(el('button', { type: 'button', dataset: { action: 'delete', seq: line.seq }, title: 'Delete this message' }, 'Delete'));
    if (!chat.me || line.user_id !== chat.me.id) {
      tools.push(el('button', { type: 'button', dataset: { action: 'ban', user: line.user_id }, title: `Ban ${line.name} from this chat` }, 'Ban'));
    }
  }
  return el('li', { dataset: { seq: line.seq, user: line.user_id } },
    el('span', { className: 'author' }, line.name),
    el('span', { className: 'text' }, line.text),
    tools.length ? el('span', { className: 'tools' }, ...tools) : null);
}

function nearBottom() {
  return chat.list.scrollHeight - chat.list.scrollTop - chat.list.clientHeight < 40;
}

function showChatState() {
  const signedIn = chat.me !== null;
  chat.form.hidden = !(chat.state === 'open' && signedIn);
  if (chat.state === 'not_started') chatNote('Chat opens when the stream starts.');
  else if (chat.state === 'ended') chatNote('The stream has ended; its chat is closed.');
  else if (!signedIn) {
    chatNote('');
    const next = encodeURIComponent(window.location.pathname);
    chat.note.append('Log in to chat: ', cm.el('a', { href: `/login?next=${next}` }, 'log in'), '.');
  } else chatNote('');
}

const CHAT_EVENTS = {
  hello(m) {
    chat.me = m.user;
    chat.moderator = m.moderator;
    chat.input.maxLength = m.max_chars;
    showChatState();
  },
  status: showStatus,
  chat(m) {
    chat.state = m.state;
    showChatState();
  },
  history(m) {
    // An ended chat whose archive is not written yet (room 0): keep what is shown
    // until it comes.
    if (chat.state === 'ended' && m.room === 0 && chat.list.children.length) return;
    chat.room = m.room;
    chat.list.replaceChildren(...m.lines.map(lineItem));
    chat.list.scrollTop = chat.list.scrollHeight;
  },
  line(m) {
    if (chat.list.querySelector(`li[data-seq="${m.seq}"]`)) return;
    const follow = nearBottom();
    chat.list.append(lineItem(m));
    if (follow) chat.list.scrollTop = chat.list.scrollHeight;
  },
  deleted(m) {
    const item = chat.list.querySelector(`li[data-seq="${m.seq}"]`);
    if (item) item.remove();
  },
  refused(m) {
    chatNote(m.message, true);
  },
  notice(m) {
    chatNote(m.message);
  },
  gone() {
    chat.gone = true;
    stop();
    say('This stream was removed.');
    chat.form.hidden = true;
    chatNote('');
  },
};

chat.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = chat.input.value.trim();
  if (!text) return;
  if (!chat.socket || chat.socket.readyState !== WebSocket.OPEN) {
    chatNote('Reconnecting… your message was not sent.', true);
    return;
  }
  chat.socket.send(JSON.stringify({ type: 'post', text }));
  chat.input.value = '';
  if (chat.note.classList.contains('problem')) chatNote('');
});

chat.list.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button || !chat.socket) return;
  if (button.dataset.action === 'delete') {
    chat.socket.send(JSON.stringify({ type: 'delete', room: chat.room, seq: Number(button.dataset.seq) }));
  } else if (button.dataset.action === 'ban') {
    chat.socket.send(JSON.stringify({ type: 'ban', user_id: Number(button.dataset.user) }));
  }
});

// The watch socket; reconnects with growing pauses while the page is open.
let retryMs = 1000;
function connect() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${window.location.host}/api/v1/streams/${encodeURIComponent(streamId)}/live`;
  const socket = new WebSocket(url);
  chat.socket = socket;
  let opened = false;
  socket.addEventListener('open', () => { opened = true; retryMs = 1000; });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    const handle = CHAT_EVENTS[message.type];
    if (handle) handle(message);
  });
  socket.addEventListener('close', async () => {
    chat.socket = null;
    if (chat.gone) return;
    // Refused before it opened: a deleted stream is not worth reconnecting to.
    if (!opened) {
      const status = await fetch(`/api/v1/streams/${encodeURIComponent(streamId)}/status`).catch(() => null);
      if (status && status.status === 404) {
        CHAT_EVENTS.gone();
        return;
      }
    }
    if (chat.state === 'open') chatNote('Reconnecting…', true);
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  });
}

showStatus({ status: page.dataset.status });
connect();
