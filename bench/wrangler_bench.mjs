// wrangler dev 4.86.0 (bench/.cache/wrangler) on bench/wrangler-project, offline as in the reference
// (wrangler-dev-observed.md §1): `node bench/wrangler_bench.mjs WORKDIR REPS CLI_REPS`.
// Figures: dev start → first 200 on /health; idle RSS of the process tree; per trivial step (in-worker
// create → unsafeWaitForStatus complete, n=100 minus n=10, ÷ 90); a `wrangler workflows ... --local` command.
import { spawn, execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const [work, repsArg, cliRepsArg] = process.argv.slice(2);
const reps = Number(repsArg || 5), cliReps = Number(cliRepsArg || 5);
const WR = path.join(BENCH, ".cache", "wrangler");
const BIN = path.join(WR, "node_modules", ".bin", "wrangler");

function emit(result) { process.stdout.write("\nRESULT " + JSON.stringify(result) + "\n"); }
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });

if (!fs.existsSync(BIN)) {
  fs.mkdirSync(WR, { recursive: true });
  const r = spawnSync("sh", ["-c", "[ -f package.json ] || npm init -y >/dev/null; npm install --no-audit --no-fund wrangler@4.86.0"], { cwd: WR, encoding: "utf8" });
  if (!fs.existsSync(BIN)) { emit({ error: "npm install wrangler@4.86.0 failed: " + (r.stderr || "").slice(-500) }); process.exit(0); }
}

const proj = path.join(work, "project");
fs.mkdirSync(work, { recursive: true });
fs.cpSync(path.join(BENCH, "wrangler-project"), proj, { recursive: true });
const tmp = path.join(proj, "tmp");
fs.mkdirSync(path.join(tmp, "update-check"), { recursive: true });
fs.mkdirSync(path.join(proj, "logs"), { recursive: true });
fs.writeFileSync(path.join(tmp, "update-check", "wrangler-latest.json"), JSON.stringify({ latest: "4.86.0", lastUpdate: 9999999999999 }));
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1", CLOUDFLARE_CF_FETCH_ENABLED: "false",
  TMPDIR: tmp, XDG_CONFIG_HOME: path.join(tmp, "xdg-config"), WRANGLER_LOG_PATH: path.join(proj, "logs", "wrangler-debug") };

function tree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const t of safe(() => fs.readdirSync(`/proc/${out[i]}/task`), [])) {
      const kids = safe(() => fs.readFileSync(`/proc/${out[i]}/task/${t}/children`, "utf8"), "").split(/\s+/).filter(Boolean);
      out.push(...kids.map(Number));
    }
  }
  return out;
}
function safe(f, d) { try { return f(); } catch { return d; } }
function rssMB(pid) {
  let kb = 0;
  for (const p of tree(pid)) {
    const m = safe(() => fs.readFileSync(`/proc/${p}/status`, "utf8"), "").match(/VmRSS:\s+(\d+)/);
    if (m) kb += Number(m[1]);
  }
  return kb / 1024;
}

async function startDev(port) {
  const inspector = await freePort();
  const t0 = performance.now();
  const log = fs.openSync(path.join(proj, "logs", `dev-${port}.log`), "w");
  const child = spawn(BIN, ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector)],
    { cwd: proj, env, detached: true, stdio: ["ignore", log, log] });
  for (;;) {
    if (child.exitCode !== null) throw new Error("wrangler dev exited: " + fs.readFileSync(path.join(proj, "logs", `dev-${port}.log`), "utf8").slice(-1000));
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) break;
    } catch {}
    if (performance.now() - t0 > 60000) throw new Error("wrangler dev did not answer in 60 s");
    await sleep(5);
  }
  return { child, ms: performance.now() - t0 };
}
function stopDev(child) { try { process.kill(-child.pid, "SIGKILL"); } catch {} }

const result = { reps, cli_reps: cliReps };
try {
  const starts = [];
  let dev = null, port = 0;
  for (let r = 0; r < reps; r++) {
    if (dev) stopDev(dev.child);
    await sleep(300);
    port = await freePort();
    dev = await startDev(port);
    starts.push(dev.ms);
  }
  result.dev_start_ms = starts;
  result.dev_start_median_ms = median(starts);
  await sleep(5000);
  result.idle_rss_mb = rssMB(dev.child.pid);
  const base = `http://127.0.0.1:${port}`;
  const bench = async (n) => (await (await fetch(`${base}/bench?n=${n}`, { method: "POST" })).json());
  for (let i = 0; i < 3; i++) { await bench(10); await bench(100); }
  const t10 = [], t100 = [];
  let lastId = null;
  for (let i = 0; i < Math.max(reps, 3); i++) {
    t10.push((await bench(10)).ms);
    const b = await bench(100);
    t100.push(b.ms);
    lastId = b.id;
  }
  result.n10_ms = t10; result.n100_ms = t100;
  result.per_step_ms = (median(t100) - median(t10)) / 90;
  const cli = [];
  for (let i = 0; i < cliReps; i++) {
    const t0 = performance.now();
    execFileSync(BIN, ["workflows", "instances", "describe", "bench-workflow", lastId, "--local", "--port", String(port)],
      { cwd: proj, env, stdio: ["ignore", "pipe", "pipe"] });
    cli.push(performance.now() - t0);
  }
  result.cli_ms = cli;
  result.cli_median_ms = median(cli);
  stopDev(dev.child);
  result.wrangler = JSON.parse(fs.readFileSync(path.join(WR, "node_modules", "wrangler", "package.json"))).version;
} catch (e) {
  result.error = String(e && e.stack || e).slice(0, 1500);
}
emit(result);
process.exit(0);
