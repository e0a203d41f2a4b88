/**
 * The package as npm users get it (SPEC §15): `npm pack` in a clean copy of the repo builds
 * first and ships what runs; the tarball installs into an empty prefix, and `npx agent-cron`
 * answers --version and a stdio tools/list. server.json follows the MCP registry's schema.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, removeDir } from "../helpers/server.js";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));

describe("the npm package", () => {
  const work = mkdtempSync(path.join(os.tmpdir(), "agent-cron-pack-"));
  afterAll(() => removeDir(work));

  it("npm pack in a clean copy builds first and ships dist, README, LICENSE, docs and server.json, and no source maps", { timeout: 240_000 }, async () => {
    // A clean copy: what git tracks, no dist/ (the copy's `prepare` must build it).
    const clone = path.join(work, "clone");
    const { stdout: tracked } = await run("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: ROOT });
    for (const file of tracked.split("\n").filter(Boolean)) {
      cpSync(path.join(ROOT, file), path.join(clone, file), { recursive: true });
    }
    symlinkSync(path.join(ROOT, "node_modules"), path.join(clone, "node_modules"));
    // The package builds into dist/, whatever this test run builds into.
    const { AGENT_CRON_DIST: _elsewhere, ...env } = process.env;
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", work], { cwd: clone, env, maxBuffer: 16 * 1024 * 1024 });
    const [packed] = JSON.parse(stdout) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
    const files = packed.files.map((f) => f.path);
    console.log(`npm pack: ${packed.filename}, ${files.length} files, ${packed.size} bytes packed, ${packed.unpackedSize} unpacked`);
    expect(files).toEqual(expect.arrayContaining(["dist/cli.js", "README.md", "LICENSE", "package.json", "server.json", "docs/executors.md"]));
    // The bundle and its lazily loaded parts: JavaScript only, none of the sources, and the
    // tools/list answer the build prepares (read at start instead of building the schemas).
    expect(files).toContain("dist/tools-list.json");
    expect(files.filter((f) => f.startsWith("dist/") && !f.endsWith(".js") && f !== "dist/tools-list.json")).toEqual([]);
    expect(files.filter((f) => f.endsWith(".map"))).toEqual([]);
    expect(files.filter((f) => f.startsWith("src/") || f.startsWith("test/"))).toEqual([]);

    // Installed into an empty prefix, as `npm install agent-cron` would.
    const prefix = path.join(work, "prefix");
    await run("npm", ["install", "--prefix", prefix, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", path.join(work, packed.filename)], {
      maxBuffer: 16 * 1024 * 1024,
    });
    const { stdout: version } = await run("npx", ["--no-install", "agent-cron", "--version"], { cwd: prefix });
    expect(version.trim()).toBe(pkg.version);
    // The bundle carries what it uses: the install is agent-cron alone (it pulled 144 packages, 55 MB).
    expect(readdirSync(path.join(prefix, "node_modules")).filter((n) => !n.startsWith("."))).toEqual(["agent-cron"]);

    const bin = path.join(prefix, "node_modules", ".bin", "agent-cron");
    const dataDir = path.join(work, "data");
    // No background owner left behind (always_on "client").
    mkdirSync(dataDir);
    writeFileSync(path.join(dataDir, "config.json"), JSON.stringify({ always_on: "client" }));
    const client = new Client({ name: "package-test", version: "1" });
    await client.connect(new StdioClientTransport({ command: bin, args: ["serve", "--data-dir", dataDir], cwd: work, stderr: "ignore" }));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain("add_cron");
    expect(client.getServerVersion()?.version).toBe(pkg.version);
    await client.close();

    // The postgres store's packages are optional peers: without them, a clear sentence, exit 2.
    const pgDir = path.join(work, "pg-data");
    mkdirSync(pgDir);
    writeFileSync(path.join(pgDir, "config.json"), JSON.stringify({ always_on: "client", store: { type: "postgres" } }));
    const refused = await run(bin, ["list", "--data-dir", pgDir], {
      env: { PATH: process.env.PATH, AGENT_CRON_DATABASE_URL: "postgres://u:p@127.0.0.1:1/db" },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(refused.code).toBe(2);
    const [major, minor] = process.versions.node.split(".").map(Number);
    expect(refused.stderr).toMatch(
      major > 22 || (major === 22 && minor >= 12)
        ? /needs the packages pg and pg-boss \(pg(-boss)? is not installed\).*npm install pg@\^8 pg-boss@\^12/
        : /needs Node\.js 22\.12 or newer/,
    );
  });

  it("package.json has the registry's fields, and server.json is valid against the MCP registry schema", () => {
    for (const key of ["repository", "homepage", "keywords", "mcpName", "license"]) expect(pkg[key], key).toBeTruthy();
    expect(pkg.scripts.prepare).toMatch(/build/);
    // The version is the newest the changelog describes.
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    expect(/## Changelog\s+- (\d+\.\d+\.\d+)/.exec(readme)?.[1]).toBe(pkg.version);
    // dist/ bundles every library but the postgres store's, which are optional peers.
    expect(pkg.dependencies ?? {}).toEqual({});
    expect(Object.keys(pkg.peerDependencies)).toEqual(["pg", "pg-boss"]);
    expect(pkg.peerDependenciesMeta).toEqual({ pg: { optional: true }, "pg-boss": { optional: true } });
    const schema = JSON.parse(readFileSync(path.join(ROOT, "test", "fixtures", "server.schema.json"), "utf8"));
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const validate = ajv.compile(schema);
    const server = JSON.parse(readFileSync(path.join(ROOT, "server.json"), "utf8"));
    expect(validate(server), JSON.stringify(validate.errors)).toBe(true);
    expect(server.name).toBe(pkg.mcpName);
    expect(server.version).toBe(pkg.version);
    expect(server.packages[0]).toMatchObject({ registryType: "npm", identifier: pkg.name, version: pkg.version });
    // The check is real: a name without a namespace and a "latest" version are refused.
    expect(validate({ ...server, name: "agent-cron" })).toBe(false);
    expect(validate({ ...server, packages: [{ ...server.packages[0], version: "latest" }] })).toBe(false);
  });
});
