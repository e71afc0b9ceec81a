// Build step after `tsc -p tsconfig.web.json`: the browser apps' style sheets (`src/**/web/*.css`)
// go beside their compiled scripts in `dist/web/`, where the servers read them (the shared
// `src/http/web/base.css` too: the servers put it in front of each page's own sheet).
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';

for (const file of readdirSync('src', { recursive: true })) {
  if (typeof file !== 'string' || !file.endsWith('.css') || !file.split(sep).includes('web')) continue;
  mkdirSync(join('dist/web', dirname(file)), { recursive: true });
  copyFileSync(join('src', file), join('dist/web', file));
}
