// Plays an HLS URL with hls.js (low-latency mode) in real headless Chromium and prints
// what happened as one JSON line. Usage: node play.mjs PLAYLIST_URL SECONDS
import { launch } from './lib.mjs';

const [url, seconds = '8'] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setContent('<video id="v" muted playsinline></video>');
  await page.addScriptTag({
    path: new URL('./node_modules/hls.js/dist/hls.min.js', import.meta.url).pathname,
  });
  const result = await page.evaluate(async ({ url, seconds }) => {
    const video = document.getElementById('v');
    const errors = [];
    const hls = new Hls({ lowLatencyMode: true });
    let parts = 0;
    let segments = 0;
    hls.on(Hls.Events.ERROR, (_, d) => errors.push({ fatal: d.fatal, type: d.type, details: d.details }));
    hls.on(Hls.Events.FRAG_LOADED, (_, d) => { if (d.part) parts++; else segments++; });
    const parsed = new Promise((resolve) => hls.on(Hls.Events.MANIFEST_PARSED, resolve));
    hls.loadSource(url);
    hls.attachMedia(video);
    await parsed;
    await video.play();
    const start = video.currentTime;
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const level = hls.levels[hls.currentLevel] || hls.levels[0];
    return {
      played: video.currentTime - start,
      errors,
      parts,
      segments,
      latency: hls.latency,
      partTarget: level?.details?.partTarget ?? null,
      canBlockReload: level?.details?.canBlockReload ?? null,
      codecs: level?.attrs?.CODECS ?? null,
      width: video.videoWidth,
      height: video.videoHeight,
    };
  }, { url, seconds: Number(seconds) });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
