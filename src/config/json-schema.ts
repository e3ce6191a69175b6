import { z } from 'zod';
import { configSchema } from './schema.ts';

/** The configuration schema as JSON Schema (draft 2020-12), for editors and CI linting. */
export function configJsonSchema(): string {
  const schema = z.toJSONSchema(configSchema, { io: 'input', target: 'draft-2020-12' });
  return `${JSON.stringify(schema, null, 2)}\n`;
}
