#!/usr/bin/env node
// The path of one occurrence, from the fleet timer to the delivered result, in figures (issue 20):
// how many steps it takes, through how many files, and how often it returns to a file it left.
//   node scripts/run-path.mjs           a readable report
//   node scripts/run-path.mjs --json    the same as JSON
//   node scripts/run-path.mjs --trace   also every step, in order
//   node scripts/run-path.mjs --src DIR another tree's src/ (an older commit: git archive REV src | tar -x -C DIR)
//
// How: a trace, not a reading. Every file of src/ is transpiled (TypeScript's own transpiler)
// into a temporary folder with one line added at the top of each method and function: a call
// that notes its file and name. Then one occurrence runs in-process on the memory backend: a
// job "in 2s" with a real command executor (`echo`, no sandbox) and an on_complete webhook to
// a node:http receiver on loopback; the trace runs from the moment the fleet timer fires until
// the run's record says its delivery is done.
//
// Three views of the same trace:
// - "path": methods of the runtime's objects (the stages, the ports, the repositories and the
//   sender): where the occurrence is handed on. A pure function that is asked a question and
//   returns (toIsoInZone, afterRun, newRun) is not a step of the path.
// - "core": the path's steps in src/core/ only, where the run path's own logic lives (how often
//   one occurrence goes back and forth between the App, the dispatcher and the scheduler).
// - "every function": methods and module-level functions alike, pure ones included.
// In each, consecutive steps in one file are one visit; a visit to a file seen before is a return.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const srcArg = process.argv.indexOf("--src");
const src = srcArg > 0 ? path.resolve(process.argv[srcArg + 1], "src") : path.join(root, "src");
const out = mkdtempSync(path.join(os.tmpdir(), "agent-cron-run-path-"));

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Adds `globalThis.__runPath?.(file, name, kind)` as the first statement of each method and function. */
function instrument(rel) {
  return (ctx) => {
    const f = ctx.factory;
    const note = (name, kind) =>
      f.createExpressionStatement(
        f.createCallChain(
          f.createPropertyAccessExpression(f.createIdentifier("globalThis"), "__runPath"),
          f.createToken(ts.SyntaxKind.QuestionDotToken),
          undefined,
          [f.createStringLiteral(rel), f.createStringLiteral(name), f.createStringLiteral(kind)],
        ),
      );
    const visit = (node) => {
      node = ts.visitEachChild(node, visit, ctx);
      if ((ts.isMethodDeclaration(node) || ts.isFunctionDeclaration(node)) && node.body && node.name) {
        const owner = ts.isMethodDeclaration(node) && ts.isClassLike(node.parent) ? (node.parent.name?.text ?? "class") : null;
        const name = owner ? `${owner}.${node.name.getText()}` : node.name.getText();
        const kind = owner ? "method" : "function";
        const body = f.updateBlock(node.body, [note(name, kind), ...node.body.statements]);
        return ts.isMethodDeclaration(node)
          ? f.updateMethodDeclaration(
              node,
              node.modifiers,
              node.asteriskToken,
              node.name,
              node.questionToken,
              node.typeParameters,
              node.parameters,
              node.type,
              body,
            )
          : f.updateFunctionDeclaration(node, node.modifiers, node.asteriskToken, node.name, node.typeParameters, node.parameters, node.type, body);
      }
      return node;
    };
    return (sf) => ts.visitNode(sf, visit);
  };
}

for (const file of walk(src)) {
  const rel = path.relative(src, file).split(path.sep).join("/");
  const text = readFileSync(file, "utf8");
  const js = ts.transpileModule(text, {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
    transformers: { before: [instrument(rel)] },
  }).outputText;
  const dest = path.join(out, "src", rel.replace(/\.ts$/, ".js"));
  mkdirSync(path.dirname(dest), { recursive: true });
  writeFileSync(dest, js);
}
writeFileSync(path.join(out, "package.json"), readFileSync(path.join(root, "package.json")));
symlinkSync(path.join(root, "node_modules"), path.join(out, "node_modules"), "dir");

const steps = [];
/** "armed": the job is added, and the trace starts when the fleet timer fires. */
let tracing = "off";
globalThis.__runPath = (file, name, kind) => {
  if (tracing === "armed" && name === "FleetScheduler.fire") tracing = "on";
  if (tracing === "on") steps.push({ file, name, kind });
};

const load = (rel) => import(pathToFileURL(path.join(out, "src", rel)).href);
const { parseConfig } = await load("config.js");
const { composeApp } = await load("compose.js");
const { openMemoryBackend } = await load("backends/memory/index.js");

// A receiver for the webhook on loopback.
let received = 0;
const receiver = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    received++;
    res.end("ok");
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${receiver.address().port}/hook`;

// Not the system clock itself: composeApp watches the system clock for sleep and steps, a
// timer that would run beside the occurrence and is no part of its path.
const clock = { now: () => Date.now(), setTimer: (fn, ms) => setTimeout(fn, ms), clearTimer: (t) => clearTimeout(t) };
const config = parseConfig({
  timezone: "UTC",
  default_executor: "sh",
  executors: { sh: { type: "command", command: ["echo", "hello from one occurrence"], sandbox: "none" } },
  webhooks: { allow_private_networks: true },
  always_on: "client",
});
const work = mkdtempSync(path.join(os.tmpdir(), "agent-cron-run-path-work-"));
const backend = openMemoryBackend({ runsPerJob: config.runs_per_job, clock });
const app = await composeApp(
  { ...backend, exclusive: true },
  { dataDir: path.join(work, "data"), config, clock, workRoot: work, env: { PATH: process.env.PATH } },
);
// The App's parts (runtime, jobs) since issue 20's split; an older tree (--src) has one App.
const runtime = app.runtime ?? app;
const add = app.runtime ? (...a) => app.jobs.add(...a) : (...a) => app.addJob(...a);
await runtime.start();
const { job } = await add({ name: "traced", schedule: "in 2s", prompt: "say hello", on_complete: url }, "run-path", { origin: "cli" });
tracing = "armed";

const deadline = Date.now() + 30_000;
let run;
for (;;) {
  // Read from the store's maps, not through the repository: the poll is no part of the path.
  run = backend.store.runs.get(job.id)?.at(-1);
  if (run && run.delivery !== null && run.delivery !== "pending" && received > 0) break;
  if (Date.now() > deadline) {
    console.error(`No delivered run within 30 s (run: ${JSON.stringify(run ?? null)}, webhooks received: ${received}).`);
    process.exitCode = 1;
    break;
  }
  await new Promise((r) => setTimeout(r, 10));
}
tracing = "off";
await runtime.close(0);
receiver.close();
rmSync(out, { recursive: true, force: true });
rmSync(work, { recursive: true, force: true });

/** Visits to files: consecutive steps in one file are one visit. */
function figures(list) {
  const visits = [];
  for (const s of list)
    if (visits.at(-1)?.file !== s.file) visits.push({ file: s.file, steps: [s.name] });
    else visits.at(-1).steps.push(s.name);
  const entered = {};
  for (const v of visits) entered[v.file] = (entered[v.file] ?? 0) + 1;
  const files = Object.keys(entered).length;
  return {
    steps: list.length,
    visits: visits.length,
    files,
    returns: visits.length - files,
    entered: Object.fromEntries(Object.entries(entered).sort((a, b) => b[1] - a[1])),
    route: visits.map((v) => v.file),
    trace: visits,
  };
}

const path_ = figures(steps.filter((s) => s.kind === "method"));
const core = figures(steps.filter((s) => s.kind === "method" && s.file.startsWith("core/")));
const every = figures(steps);
const report = {
  occurrence: run ? { status: run.status, delivery: run.delivery, deliveries: run.deliveries?.length ?? 0 } : null,
  path: path_,
  core,
  every_function: every,
};
if (process.argv.includes("--json")) console.log(JSON.stringify(report, null, 2));
else {
  const show = (title, f) => {
    console.log(`${title}: ${f.steps} steps in ${f.visits} visits to ${f.files} files, returning ${f.returns} times to a file already left`);
    console.log(
      `  entered: ${Object.entries(f.entered)
        .map(([file, n]) => `${file} ${n}`)
        .join(", ")}`,
    );
    if (process.argv.includes("--trace")) for (const v of f.trace) console.log(`    ${v.file}: ${v.steps.join(" → ")}`);
    else console.log(`  route: ${f.route.join(" → ")}`);
  };
  console.log(`One occurrence (${report.occurrence?.status}, delivery ${report.occurrence?.delivery}), from the fleet timer to the delivered result:`);
  show("Path (methods of the runtime's objects)", path_);
  show("Core (the path's steps in src/core/)", core);
  show("Every function (pure ones included)", every);
}
