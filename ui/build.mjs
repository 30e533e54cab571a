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

await esbuild.build({
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

for (const f of ['index.html', 'app.css']) {
    fs.copyFileSync(path.join(here, 'src', f), path.join(out, f));
}
console.log(`ui: ${out}`);
