// The watch page: the player (hls.js in low-latency mode, native HLS where hls.js
// cannot run, e.g. Safari on iOS) and the watch socket, which tells the page when the
// stream goes live or ends and how many are watching. The player starts by itself
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
const player = { hls: null, wanted: false, fatal: [], recoveries: 0, mediaRecoveries: 0 };
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
  say('Starting…');
  while (player.wanted && !(await playlistReady())) await sleep(1000);
  if (player.wanted) attach();
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
  setTimeout(() => { if (player.wanted && !player.hls) attach(); }, 2000);
}

function stop() {
  player.wanted = false;
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
  if (!player.hls && player.wanted) setTimeout(() => { if (player.wanted) attach(); }, 2000);
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

// The watch socket; reconnects with growing pauses while the page is open.
let retryMs = 1000;
function connect() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${window.location.host}/api/v1/streams/${encodeURIComponent(streamId)}/live`;
  const socket = new WebSocket(url);
  socket.addEventListener('open', () => { retryMs = 1000; });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'status') showStatus(message);
  });
  socket.addEventListener('close', () => {
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  });
}

showStatus({ status: page.dataset.status });
connect();
