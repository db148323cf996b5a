// The boids page in a real browser (Debian's chromium through playwright-core): it loads, the
// boids move between two screenshots, a slider's change reaches the simulation, the button adds a
// boid. Run by boids_page.sh, which starts the server; the first argument is its URL, the second
// a folder for the screenshots.
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const fail = (message) => { console.error(`FAIL: ${message}`); process.exit(1); };
const state = async () => (await fetch(`${url}/state`)).json();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  // playwright gives the browser a fresh profile of its own.
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const response = await page.goto(url);
  if (!response.ok()) fail(`GET / answered ${response.status()}`);
  if ((await page.title()) !== "hdm boids") fail(`title ${await page.title()}`);

  // It draws: the canvas has its step, and the status line names 30 boids.
  await page.waitForFunction(() => document.getElementById("field").dataset.step !== undefined);
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("30 boids"));

  // The boids move between two screenshots of the canvas.
  const canvas = page.locator("#field");
  const first = await canvas.screenshot();
  const step1 = Number(await canvas.getAttribute("data-step"));
  await page.waitForTimeout(500);
  const second = await canvas.screenshot();
  const step2 = Number(await canvas.getAttribute("data-step"));
  writeFileSync(join(shots, "first.png"), first);
  writeFileSync(join(shots, "second.png"), second);
  if (first.equals(second)) fail("the two screenshots are the same");
  if (!(step2 > step1)) fail(`the drawn step did not advance (${step1}, ${step2})`);

  // The sight slider, moved with the keyboard as a user would: 100 -> 110 reaches the simulation.
  const slider = page.locator("#sight");
  if ((await slider.inputValue()) !== "100") fail(`the slider starts at ${await slider.inputValue()}`);
  await slider.focus();
  for (let i = 0; i < 10; i++) await page.keyboard.press("ArrowRight");
  await page.waitForFunction(() => document.getElementById("sight-value").textContent === "110");
  let s;
  for (let i = 0; i < 50 && (s = await state()).sight !== 110; i++) await page.waitForTimeout(100);
  if (s.sight !== 110) fail(`the simulation's sight radius is ${s.sight}, not 110`);
  // The avoidance slider dragged with the mouse to its left end: 0.
  const avoid = page.locator("#avoid");
  const box = await avoid.boundingBox();
  await page.mouse.click(box.x + 1, box.y + box.height / 2);
  for (let i = 0; i < 50 && (s = await state()).avoid !== 0; i++) await page.waitForTimeout(100);
  if (s.avoid !== 0) fail(`the simulation's avoidance distance is ${s.avoid}, not 0`);

  // The button adds a boid; the sight circles are drawn when asked for.
  await page.click("#add");
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("31 boids"));
  if ((await state()).boids.length !== 4 * 31) fail("the simulation does not have 31 boids");
  await page.check("#show-sight");
  await page.waitForTimeout(200);
  writeFileSync(join(shots, "sight.png"), await canvas.screenshot());

  if (errors.length) fail(`errors in the page: ${errors.join("; ")}`);
  console.log(`ok: loaded, moved (steps ${step1} -> ${step2}), sight 110 and avoid 0 reached the simulation, 31 boids`);
} finally {
  await browser.close();
}
