// The web app in real headless Chromium against real castmesh nodes, driven by
// tests/tests/web_app.rs. Usage: node webapp.mjs SCENARIO '{"nodes": [...], ...}'
// Prints one JSON line: what happened, for the Rust test to check.
import { mkdirSync } from 'node:fs';
import { launch, publish, until, signUp, playerState, sleep } from './lib.mjs';

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
      await watch.screenshot({ path: `${shots}/watch.png` });
      await directory.screenshot({ path: `${shots}/directory.png` });

      await studio.locator('#key-done').click();
      await studio.locator(`button[data-action="stop"][data-id="${id}"]`).click();
      const ended = await until('the watch page to say ended',
        async () => {
          const s = await playerState(watch);
          return s.status === 'ended' && s.overlay.includes('ended') ? s : null;
        }, 15000);
      report.ended_ms = ended.ms;
      report.ended = ended.value;
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
