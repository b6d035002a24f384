// What the browser scenarios share: Chromium as this machine runs it, the real ffmpeg
// as publisher, waiting for a condition with a deadline, signing up through the page.
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // The flags this machine needs: no sandbox as root, no background network calls
    // (they are refused here), autoplay without a click.
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

// `ffmpeg -re -stream_loop -1 -i SAMPLE -c copy -f flv URL`, until killed.
export function publish(sample, url) {
  const child = spawn('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1',
    '-i', sample, '-c', 'copy', '-f', 'flv', url,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `check` until it returns something truthy; returns it with the time it took.
export async function until(what, check, timeoutMs, everyMs = 100) {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return { value, ms: Date.now() - started };
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(everyMs);
  }
}

// A new account through the sign-up page; the page lands on `next`.
export async function signUp(page, base, { name, email, password }, next = '/') {
  await page.goto(`${base}/signup?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Name shown to others').fill(name);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel(/^Password/).fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(`${base}${next}`);
}

// Signs in through the log-in page (a session cookie is per node: each node's address
// is its own site), landing on `next`.
export async function logIn(page, base, { email, password }, next = '/') {
  await page.goto(`${base}/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}${next}`);
}

// What the watch page's player did so far.
export function playerState(page) {
  return page.evaluate(() => ({
    currentTime: document.getElementById('video').currentTime,
    fatal: window.castmeshPlayer.fatal,
    recoveries: window.castmeshPlayer.recoveries,
    status: document.getElementById('status').dataset.status,
    overlay: document.getElementById('overlay').hidden ? '' : document.getElementById('overlay').textContent,
    viewers: document.getElementById('viewers').textContent,
  }));
}

// A new stream made in the studio (signed in already); returns its id and the key
// the studio shows once.
export async function createStream(page, base, title) {
  await page.goto(`${base}/studio`);
  await page.getByLabel('Title').first().fill(title);
  await page.getByRole('button', { name: 'Create stream' }).click();
  await page.locator('#key-panel').waitFor({ state: 'visible' });
  const key = await page.locator('#key-value').inputValue();
  const server = await page.locator('#key-server').inputValue();
  const watch = await page.locator('#key-watch').getAttribute('href');
  return { id: decodeURIComponent(watch.split('/').pop()), key, server };
}

// The chat lines a watch page shows, as "name: text".
export function chatLines(page) {
  return page.$$eval('#messages li', (items) => items.map((li) =>
    `${li.querySelector('.author').textContent}: ${li.querySelector('.text').textContent}`));
}

export async function postChat(page, text) {
  await page.locator('#chat-text').fill(text);
  await page.locator('#chat-text').press('Enter');
}

export function chatNote(page) {
  return page.locator('#chat-note').textContent();
}
