// Log in and sign up: posts the form to the API; the answer sets the session cookie,
// then the page goes where it was asked to (a path on this site, checked by the server).
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('auth-form');
  if (!form) return;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    cm.clearError();
    const body = {};
    for (const [name, value] of new FormData(form)) {
      if (value !== '') body[name] = value;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await cm.api('POST', form.dataset.action, body);
      // The server only hands out paths on this site; checked again here.
      const next = new URL(form.dataset.next || '/', window.location.origin);
      window.location.assign(next.origin === window.location.origin ? next.href : '/');
    } catch (e) {
      cm.showError(e);
      button.disabled = false;
    }
  });
});
