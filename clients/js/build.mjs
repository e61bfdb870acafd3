// Builds the SDK (src/index.ts) into the one browser bundle the Python package ships
// (src/static/client/roomcast.js, with socket.io-client inside) and its type
// declarations (roomcast.d.ts beside it), and copies the pages (clients/web, plain
// ES modules) to src/static/web.
//
//   node build.mjs            write both files
//   node build.mjs --check    rebuild in memory; exit 1 if the shipped bytes differ
//   node build.mjs --node F   a Node.js build (socket.io-client left external) at F, for the tests
import { readFileSync, writeFileSync, mkdirSync, rmSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const shipped = join(here, "..", "..", "src", "static");
const web = join(here, "..", "web");
const entry = join(here, "src", "index.ts");
const banner = "/* roomcast browser SDK, built from clients/js by esbuild; includes socket.io-client (MIT). Do not edit. */";

async function browserBundle() {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify: true,
    legalComments: "none",
    banner: { js: banner },
    write: false,
    absWorkingDir: here,
    logLevel: "warning",
  });
  return Buffer.from(result.outputFiles[0].contents);
}

function declarations() {
  const out = join(here, "dist");
  rmSync(out, { recursive: true, force: true });
  execFileSync(process.execPath, [join(here, "node_modules", "typescript", "bin", "tsc"), "-p", here], { stdio: "inherit" });
  return readFileSync(join(out, "index.d.ts"));
}

const args = process.argv.slice(2);
if (args[0] === "--node") {
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "node",
    target: ["node18"],
    packages: "external",
    outfile: args[1],
    absWorkingDir: here,
    logLevel: "warning",
  });
} else {
  const files = { "client/roomcast.js": await browserBundle(), "client/roomcast.d.ts": declarations() };
  for (const name of readdirSync(web).sort()) files[`web/${name}`] = readFileSync(join(web, name));
  if (args[0] === "--check") {
    let stale = false;
    for (const [name, bytes] of Object.entries(files)) {
      let current = null;
      try {
        current = readFileSync(join(shipped, name));
      } catch {}
      if (current === null || !current.equals(bytes)) {
        console.error(`src/static/${name} is not the build of clients/js and clients/web: run \`npm run build\` in clients/js`);
        stale = true;
      }
    }
    for (const name of readdirSync(join(shipped, "web"))) {
      if (!(`web/${name}` in files)) {
        console.error(`src/static/web/${name} has no source in clients/web`);
        stale = true;
      }
    }
    process.exit(stale ? 1 : 0);
  }
  for (const dir of ["client", "web"]) mkdirSync(join(shipped, dir), { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(shipped, name), bytes);
  console.log(`built src/static/client/roomcast.js (${files["client/roomcast.js"].length} bytes), roomcast.d.ts and src/static/web/`);
}
