// Regenerates config/sidecar.schema.json from the one configuration schema.
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../src/config/index.ts';

const target = new URL('../config/sidecar.schema.json', import.meta.url);
writeFileSync(target, configJsonSchema());
process.stdout.write(`wrote ${target.pathname}\n`);
