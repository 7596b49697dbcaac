// Build the UI into src/medlabel/server/static: our own modules as they are, plus the
// NiiVue ES module (self-contained) and its licence from node_modules. No bundler needed.
import { cpSync, existsSync, mkdirSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "medlabel", "server", "static");
const niivue = join(here, "node_modules", "@niivue", "niivue");

if (!existsSync(join(niivue, "dist", "index.js"))) {
  console.error("build: @niivue/niivue is not installed; run `npm ci` in web/ first");
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "vendor"), { recursive: true });
cpSync(join(here, "src"), out, { recursive: true });
cpSync(join(niivue, "dist", "index.js"), join(out, "vendor", "niivue.js"));
const pkg = JSON.parse(readFileSync(join(niivue, "package.json"), "utf8"));
// The npm package ships no LICENSE file: state its BSD-2-Clause terms and list the
// licences of the dependencies bundled into dist/index.js.
const bsd2 = `BSD 2-Clause License

Copyright (c) the NiiVue authors (https://github.com/niivue/niivue)

Redistribution and use in source and binary forms, with or without modification, are
permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials
   provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS
OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE
COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE
GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED
AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED
OF THE POSSIBILITY OF SUCH DAMAGE.
`;
const deps = [];
for (const name of Object.keys(pkg.dependencies || {})) {
  const file = join(here, "node_modules", name, "package.json");
  if (existsSync(file)) {
    const dep = JSON.parse(readFileSync(file, "utf8"));
    deps.push(`  ${dep.name} ${dep.version}: ${dep.license || "see its package"}`);
  }
}
writeFileSync(
  join(out, "vendor", "NIIVUE-LICENSE.txt"),
  `@niivue/niivue ${pkg.version} (${pkg.license})\n\n${bsd2}\n` +
    `Dependencies bundled into NiiVue's ES module, with their licences:\n${deps.join("\n")}\n`,
);
console.log(`build: UI written to ${out} (NiiVue ${pkg.version})`);
