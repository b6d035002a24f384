// Shared by every page: API calls whose errors read as words, the error banner, the
// helpers that build elements (text only: nothing a user typed is ever parsed as
// HTML), times in the reader's locale, and "Log out".
'use strict';

window.cm = (() => {
  // One request to the REST API; resolves with its JSON, rejects with an Error whose
  // message is the API's own sentence (or what went wrong on the way).
  async function api(method, path, body) {
    const init = { method, headers: {}, credentials: 'same-origin' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new Error('The server cannot be reached. Check your connection and try again.');
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const message = json && json.error && json.error.message;
      const error = new Error(message || `The server answered ${response.status}.`);
      error.status = response.status;
      throw error;
    }
    return json;
  }

  const banner = () => document.getElementById('error');

  function showError(error) {
    const b = banner();
    b.textContent = error instanceof Error ? error.message : String(error);
    b.hidden = false;
  }

  function clearError() {
    banner().hidden = true;
  }

  // el('a', { href: '/x', className: 'y' }, 'text', child…): children are nodes or text.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function when(rfc3339) {
    if (!rfc3339) return '';
    const d = new Date(rfc3339);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  document.addEventListener('DOMContentLoaded', () => {
    const logout = document.getElementById('logout');
    if (logout) {
      logout.addEventListener('click', async () => {
        try {
          await api('POST', '/api/v1/auth/logout');
          window.location.assign('/');
        } catch (e) {
          showError(e);
        }
      });
    }
  });

  return { api, showError, clearError, el, when, plural };
})();
