// Copyright (C) ngx_tidal authors
// SPDX-License-Identifier: BSD-2-Clause
//
// Bundles the room's page (src/) into one directory nginx serves:
// index.html, app.js, app.css.  `node build.mjs [OUTDIR]`, default dist/.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, 'dist'));

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const result = await esbuild.build({
    metafile: true,
    entryPoints: [path.join(here, 'src/main.js')],
    bundle: true,
    format: 'esm',
    target: ['es2022'],
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    outfile: path.join(out, 'app.js'),
    logLevel: 'warning',
});

// the licences of the npm packages bundled into app.js, shipped beside it
const pkgs = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) {
        pkgs.add(m[1]);
    }
}
let notices = 'app.js bundles these npm packages (ui/package-lock.json):\n';
for (const name of [...pkgs].sort()) {
    const dir = path.join(here, 'node_modules', name);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const file = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    notices += `\n==== ${name} ${pkg.version} (${pkg.license})\n\n`
        + (file ? fs.readFileSync(path.join(dir, file), 'utf8') : `${pkg.license}\n`);
}
fs.writeFileSync(path.join(out, 'THIRD-PARTY-LICENSES.txt'), notices);

for (const f of ['index.html', 'app.css']) {
    fs.copyFileSync(path.join(here, 'src', f), path.join(out, f));
}
console.log(`ui: ${out}`);
