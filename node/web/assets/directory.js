// The directory: live streams first, then upcoming, then recently ended, refreshed
// every few seconds from the API without reloading the page.
'use strict';

const REFRESH_MS = 4000;
// One page of each kind; the listing is in id order, so the most recent ended ones are
// picked from it by their end time.
const LISTS = [
  { id: 'live', query: 'status=live&limit=200', order: (a, b) => (b.viewers || 0) - (a.viewers || 0) },
  { id: 'upcoming', query: 'status=scheduled&limit=200', order: (a, b) => (a.scheduled_at || '').localeCompare(b.scheduled_at || '') },
  { id: 'ended', query: 'status=ended&limit=200', order: (a, b) => (b.ended_at || '').localeCompare(a.ended_at || ''), keep: 12 },
];

function card(stream, kind) {
  const { el } = cm;
  const title = stream.title || stream.id;
  const owner = stream.owner ? stream.owner.display_name : '';
  let detail;
  if (kind === 'live') {
    detail = [
      el('span', { className: 'badge', dataset: { status: 'live' } }, 'LIVE'),
      el('span', { className: 'viewers' }, cm.plural(stream.viewers || 0, 'viewer', 'viewers')),
      stream.started_at ? el('span', {}, `since ${cm.when(stream.started_at)}`) : null,
    ];
  } else if (kind === 'upcoming') {
    detail = [el('span', {}, stream.scheduled_at ? `starts ${cm.when(stream.scheduled_at)}` : 'not scheduled yet')];
  } else {
    detail = [el('span', {}, stream.ended_at ? `ended ${cm.when(stream.ended_at)}` : 'ended')];
  }
  return el('li', { className: 'card', dataset: { stream: stream.id } },
    el('a', { href: `/watch/${encodeURIComponent(stream.id)}` },
      el('strong', { className: 'title' }, title),
      owner ? el('span', { className: 'owner' }, owner) : null,
      el('span', { className: 'detail' }, ...detail)));
}

async function refresh() {
  try {
    const pages = await Promise.all(LISTS.map((l) => cm.api('GET', `/api/v1/streams?${l.query}`)));
    LISTS.forEach((list, i) => {
      const streams = pages[i].streams.sort(list.order).slice(0, list.keep || undefined);
      document.getElementById(list.id).replaceChildren(...streams.map((s) => card(s, list.id)));
      document.getElementById(`${list.id}-empty`).hidden = streams.length > 0;
    });
    document.getElementById('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
    cm.clearError();
  } catch (e) {
    cm.showError(`The list could not be updated: ${e.message} Retrying…`);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  refresh();
  setInterval(refresh, REFRESH_MS);
});
