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
      window.location.assign(form.dataset.next || '/');
    } catch (e) {
      cm.showError(e);
      button.disabled = false;
    }
  });
});
