// The web app in real headless Chromium against real castmesh nodes, driven by
// tests/tests/web_app.rs. Usage: node webapp.mjs SCENARIO '{"nodes": [...], ...}'
// Prints one JSON line: what happened, for the Rust test to check.
import { mkdirSync } from 'node:fs';
import {
  launch, publish, until, signUp, logIn, playerState, sleep, createStream, chatLines, postChat, chatNote,
} from './lib.mjs';

const [scenario, json] = process.argv.slice(2);
const args = JSON.parse(json);
const shots = args.screenshots;
mkdirSync(shots, { recursive: true });

const SCENARIOS = {
  // Sign up, create a stream in the studio, publish with the key the page shows,
  // see it LIVE in the directory, watch it (the watch page was opened before it went
  // live), stop it in the studio, see "ended".
  async 'one-node'(browser) {
    const base = args.nodes[0].http;
    const report = {};
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const studio = await context.newPage();
    await signUp(studio, base, { name: 'Ada', email: 'ada@example.com', password: 'correct horse battery' }, '/studio');
    await studio.getByLabel('Title').first().fill('Launch day');
    await studio.getByLabel('Description').first().fill('First light from the new studio.');
    await studio.getByRole('button', { name: 'Create stream' }).click();
    await studio.locator('#key-panel').waitFor({ state: 'visible' });
    const server = await studio.locator('#key-server').inputValue();
    const key = await studio.locator('#key-value').inputValue();
    const id = await studio.locator('#streams tbody tr').first().getAttribute('data-stream');
    report.id = id;
    report.server = server;
    report.key_masked = (await studio.locator('#key-value').getAttribute('type')) === 'password';
    report.key = key;
    await studio.screenshot({ path: `${shots}/studio.png`, fullPage: true });

    const directory = await context.newPage();
    await directory.goto(`${base}/`);
    const watch = await context.newPage();
    await watch.goto(`${base}/watch/${id}`);
    report.before_live = await playerState(watch);

    const publisher = publish(args.sample, `${server}/${key}`);
    try {
      const listed = await until('the stream LIVE in the directory',
        () => directory.locator(`#live li[data-stream="${id}"]`).count(), 20000);
      report.directory_live_ms = listed.ms;
      report.directory_card = await directory.locator(`#live li[data-stream="${id}"]`).innerText();
      report.directory_href = await directory.locator(`#live li[data-stream="${id}"] a`).getAttribute('href');

      const playing = await until('the watch page to play',
        async () => (await playerState(watch)).currentTime > 0.5, 30000);
      report.play_started_ms = playing.ms;
      const first = await playerState(watch);
      await sleep(7000);
      const later = await playerState(watch);
      report.played = later.currentTime - first.currentTime;
      report.fatal = later.fatal;
      report.live_status = later.status;
      report.viewers_text = later.viewers;
      // Chat is open while live: a line now, to find it again after the end.
      await until('chat to open', () => watch.locator('#chat-form').isVisible(), 10000);
      await postChat(watch, 'hello from the studio');
      await until('the line shown', async () => (await chatLines(watch)).includes('Ada: hello from the studio'), 5000);
      await watch.screenshot({ path: `${shots}/watch.png` });
      await directory.screenshot({ path: `${shots}/directory.png` });

      // Restream: a destination added in the studio shows its state as it changes and
      // why it failed, never its key. (An internal address: refused without a try.)
      await studio.locator(`button[data-action="restream"][data-id="${id}"]`).click();
      const form = studio.locator('#destination-form');
      await form.getByLabel('Name').fill('In-house ingest');
      await form.getByLabel('Platform').selectOption('custom');
      await form.getByLabel('Server URL').fill('rtmp://10.255.255.1/live');
      await form.getByLabel('Stream key').fill('studio-dest-key-7777');
      await form.getByRole('button', { name: 'Add' }).click();
      const refused = await until('the destination in error', async () => {
        const rows = studio.locator('#destinations tbody tr');
        if (await rows.count() === 0) return null;
        const text = await rows.first().innerText();
        // The badge is upper-cased by CSS, which innerText reflects.
        return text.toLowerCase().includes('error') ? text : null;
      }, 10000);
      report.restream_row = refused.value;
      report.restream_key_shown = (await studio.locator('#restream-dialog').innerText()).includes('studio-dest-key-7777');
      report.restream_key_field = await form.getByLabel('Stream key').getAttribute('type');
      await studio.screenshot({ path: `${shots}/studio-restream.png` });
      await studio.locator('#restream-close').click();

      await studio.locator('#key-done').click();
      await studio.locator(`button[data-action="stop"][data-id="${id}"]`).click();
      const ended = await until('the watch page to say ended',
        async () => {
          const s = await playerState(watch);
          return s.status === 'ended' && s.overlay.includes('ended') ? s : null;
        }, 15000);
      report.ended_ms = ended.ms;
      report.ended = ended.value;

      // After the end the chat is closed and its history stays readable, also on a
      // fresh page.
      await sleep(2000);
      const again = await context.newPage();
      await again.goto(`${base}/watch/${id}`);
      await until('the ended chat', async () => (await chatNote(again)).includes('ended'), 10000);
      report.after_end = { note: await chatNote(again), lines: await chatLines(again), form: await again.locator('#chat-form').isVisible() };
    } finally {
      publisher.kill('SIGKILL');
    }

    // Errors in words: a wrong password.
    const stranger = await browser.newContext();
    const login = await stranger.newPage();
    await login.goto(`${base}/login`);
    await login.getByLabel('Email').fill('ada@example.com');
    await login.getByLabel('Password').fill('not the password');
    await login.getByRole('button', { name: 'Log in' }).click();
    await login.locator('#error').waitFor({ state: 'visible' });
    report.login_error = await login.locator('#error').textContent();

    // Phone width: no page is wider than the screen.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    await phone.addCookies(await context.cookies());
    const small = await phone.newPage();
    report.phone_overflow = {};
    for (const path of ['/', `/watch/${id}`, '/studio', '/login', '/signup']) {
      await small.goto(`${base}${path}`);
      await sleep(500);
      report.phone_overflow[path] = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    }
    await small.goto(`${base}/watch/${id}`);
    await small.screenshot({ path: `${shots}/watch-phone.png`, fullPage: true });
    return report;
  },

  // Three nodes: the stream published to node 2, watched and chatted about on nodes 1
  // and 3; moderation by its owner; a ban that holds on every node; markup shown as
  // text; a flood muted.
  async 'cluster-chat'(browser) {
    const [n1, n2, n3] = args.nodes;
    const report = {};
    const owner = await browser.newContext();
    const viewer = await browser.newContext();
    const flooder = await browser.newContext();
    const ownerPage = await owner.newPage();
    await signUp(ownerPage, n1.http, { name: 'Olga', email: 'olga@example.com', password: 'owner password 1' }, '/studio');
    const stream = await createStream(ownerPage, n1.http, 'Cluster chat');
    report.id = stream.id;
    const vic = { name: 'Vic', email: 'vic@example.com', password: 'viewer password 1' };
    const viewerPage = await viewer.newPage();
    await signUp(viewerPage, n3.http, vic);
    const flooderPage = await flooder.newPage();
    await signUp(flooderPage, n2.http, { name: 'Flo', email: 'flo@example.com', password: 'flood password 1' });

    const publisher = publish(args.sample, `${n2.rtmp}/${stream.key}`);
    try {
      await ownerPage.goto(`${n1.http}/watch/${stream.id}`);
      await viewerPage.goto(`${n3.http}/watch/${stream.id}`);
      for (const [name, page] of [['node1', ownerPage], ['node3', viewerPage]]) {
        await until(`the page on ${name} to play`, async () => (await playerState(page)).currentTime > 3, 40000);
      }
      report.fatal = [...(await playerState(ownerPage)).fatal, ...(await playerState(viewerPage)).fatal];
      await until('chat to open on both pages',
        async () => (await ownerPage.locator('#chat-form').isVisible()) && (await viewerPage.locator('#chat-form').isVisible()), 10000);

      // Posted from both nodes at once: both pages show the same lines in the same order.
      await Promise.all([
        (async () => { for (const t of ['o1', 'o2', 'o3']) await postChat(ownerPage, t); })(),
        (async () => { for (const t of ['v1', 'v2', 'v3']) { await postChat(viewerPage, t); await sleep(300); } })(),
      ]);
      await until('six lines on both pages', async () =>
        (await chatLines(ownerPage)).length === 6 && (await chatLines(viewerPage)).length === 6, 10000);
      report.lines_node1 = await chatLines(ownerPage);
      report.lines_node3 = await chatLines(viewerPage);

      // The owner deletes one of the viewer's lines: gone from both pages.
      const deleteButton = ownerPage.locator('#messages li', { hasText: 'v2' }).getByRole('button', { name: 'Delete' });
      const deleted = Date.now();
      await deleteButton.click();
      await until('v2 gone from both pages', async () =>
        !(await chatLines(ownerPage)).includes('Vic: v2') && !(await chatLines(viewerPage)).includes('Vic: v2'), 5000, 20);
      report.delete_ms = Date.now() - deleted;

      // Markup is text (posted after the rate window, so as not to be muted).
      await sleep(2100);
      const markup = '<img src=x onerror="window.pwned=1"><b>bold</b>';
      await postChat(viewerPage, markup);
      await until('the markup line on node 1', async () => (await chatLines(ownerPage)).includes(`Vic: ${markup}`), 5000);
      report.markup_images = await ownerPage.locator('#messages img, #messages b').count();
      report.pwned = await ownerPage.evaluate(() => window.pwned === 1);
      await ownerPage.screenshot({ path: `${shots}/watch-chat.png` });

      // Banned by the owner on node 1: the viewer's next post is refused on every node.
      await ownerPage.locator('#messages li', { hasText: 'v1' }).getByRole('button', { name: 'Ban' }).click();
      await until('the ban notice', async () => (await chatNote(ownerPage)).includes('Banned'), 5000);
      report.after_ban = {};
      const block = (route) => route.abort();
      for (const [name, node] of [['node3', n3], ['node2', n2], ['node1', n1]]) {
        const page = name === 'node3' ? viewerPage : await viewer.newPage();
        if (name !== 'node3') {
          await page.route('**/hls/**', block);
          await logIn(page, node.http, vic, `/watch/${stream.id}`);
          await until(`chat to open on ${name}`, () => page.locator('#chat-form').isVisible(), 10000);
        }
        await postChat(page, `after ban via ${name}`);
        let note = '';
        const refused = await until(`a refusal on ${name}`, async () => {
          note = await chatNote(page);
          return note.includes('banned') ? note : null;
        }, 5000).catch((e) => { throw new Error(`${e.message}; the chat says ${JSON.stringify(note)}`); });
        report.after_ban[name] = refused.value;
      }
      await sleep(500);
      report.lines_after_ban = await chatLines(ownerPage);

      // A flood: the fourth message within 2 s mutes for 10 s, with a notice.
      await flooderPage.route('**/hls/**', block);
      await flooderPage.goto(`${n2.http}/watch/${stream.id}`);
      await until('chat to open for the flooder', () => flooderPage.locator('#chat-form').isVisible(), 10000);
      for (let i = 1; i <= 5; i++) await postChat(flooderPage, `flood ${i}`);
      const muted = await until('the mute notice', async () => {
        const note = await chatNote(flooderPage);
        return note.includes('too fast') ? note : null;
      }, 5000);
      report.mute_notice = muted.value;
      await sleep(500);
      report.flood_lines = (await chatLines(ownerPage)).filter((l) => l.startsWith('Flo:'));
    } finally {
      publisher.kill('SIGKILL');
    }
    return report;
  },

  // Viewer counts: five watch pages, each its own browser (own cookies), spread over
  // the nodes, show 5; after four close the last shows 1.
  async viewers(browser) {
    const report = {};
    const owner = await browser.newContext();
    const page = await owner.newPage();
    const base = args.nodes[0].http;
    await signUp(page, base, { name: 'Cam', email: 'cam@example.com', password: 'camera password' }, '/studio');
    const stream = await createStream(page, base, 'Counting');
    const publisher = publish(args.sample, `${args.nodes[1].rtmp}/${stream.key}`);
    try {
      const contexts = [];
      const pages = [];
      for (let i = 0; i < 5; i++) {
        const context = await browser.newContext();
        contexts.push(context);
        const watch = await context.newPage();
        await watch.goto(`${args.nodes[i % args.nodes.length].http}/watch/${stream.id}`);
        pages.push(watch);
      }
      for (const [i, watch] of pages.entries()) {
        await until(`page ${i} to play`, async () => (await playerState(watch)).currentTime > 1, 40000);
      }
      const counted = await until('every page to show 5 viewers', async () => {
        const texts = await Promise.all(pages.map((p) => p.locator('#viewers').textContent()));
        return texts.every((t) => t === '5 viewers') ? texts : null;
      }, 30000, 250);
      report.five_ms = counted.ms;
      report.five = counted.value;
      for (const context of contexts.slice(1)) await context.close();
      const dropped = await until('the last page to show 1 viewer', async () =>
        (await pages[0].locator('#viewers').textContent()) === '1 viewer', 60000, 250);
      report.one_ms = dropped.ms;
      report.fatal = (await playerState(pages[0])).fatal;
    } finally {
      publisher.kill('SIGKILL');
    }
    return report;
  },
};

const browser = await launch();
try {
  const report = await SCENARIOS[scenario](browser);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
