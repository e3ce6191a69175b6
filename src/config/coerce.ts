import type { z } from 'zod';

/** What a schema accepts at a key, as far as the text of an environment variable can tell. */
export interface Accepts {
  number: boolean;
  boolean: boolean;
}

type Def = {
  type: string;
  innerType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  options?: readonly z.core.$ZodType[];
  shape?: Record<string, z.core.$ZodType>;
  catchall?: z.core.$ZodType;
  element?: z.core.$ZodType;
  valueType?: z.core.$ZodType;
  left?: z.core.$ZodType;
  right?: z.core.$ZodType;
  getter?: () => z.core.$ZodType;
};

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'catch', 'readonly', 'nonoptional', 'success']);

/**
 * The schemas that may apply at `path` of the input: objects, records and arrays are
 * followed, wrappers, unions and the input side of pipes and transforms looked through.
 * Empty when no schema has that key (a strict object's unknown key).
 */
export function schemasAt(schema: z.core.$ZodType, path: readonly string[]): z.core.$ZodType[] {
  const found: z.core.$ZodType[] = [];
  const visit = (s: z.core.$ZodType | undefined, i: number, budget: number): void => {
    if (s === undefined || budget === 0) return;
    const def = s._zod.def as unknown as Def;
    if (WRAPPERS.has(def.type)) return visit(def.innerType, i, budget - 1);
    if (def.type === 'pipe') return visit(def.in, i, budget - 1);
    if (def.type === 'lazy') return visit(def.getter?.(), i, budget - 1);
    if (def.type === 'union') {
      for (const o of def.options ?? []) visit(o, i, budget - 1);
      return;
    }
    if (def.type === 'intersection') {
      visit(def.left, i, budget - 1);
      visit(def.right, i, budget - 1);
      return;
    }
    if (i === path.length) {
      if (def.type !== 'never') found.push(s);
      return;
    }
    const key = path[i]!;
    if (def.type === 'object') return visit(Object.hasOwn(def.shape ?? {}, key) ? def.shape![key] : def.catchall, i + 1, budget - 1);
    if (def.type === 'record') return visit(def.valueType, i + 1, budget - 1);
    if (def.type === 'array' && /^\d+$/.test(key)) return visit(def.element, i + 1, budget - 1);
  };
  visit(schema, 0, 200);
  return found;
}

/** Whether the schema takes a number or a boolean at `path` of its input. */
export function acceptsAt(schema: z.core.$ZodType, path: readonly string[]): Accepts {
  const types = schemasAt(schema, path).map((s) => (s._zod.def as unknown as Def).type);
  return { number: types.some((t) => t === 'number' || t === 'int' || t === 'bigint'), boolean: types.includes('boolean') };
}

// A decimal number as YAML and JSON write it: 8080, -1, 0.5, 1e6.
const NUMBER = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
// YAML 1.2's spellings of true and false.
const TRUE = /^(true|True|TRUE)$/;
const FALSE = /^(false|False|FALSE)$/;

/**
 * The value of a whole `${env:…}` reference: a number where the schema takes a number and
 * the text is a decimal number, a boolean where it takes a boolean and the text is true or
 * false, else the text itself, unchanged.
 */
export function coerceText(text: string, accepts: Accepts): string | number | boolean {
  const t = text.trim();
  if (accepts.number && NUMBER.test(t)) {
    const n = Number(t);
    if (Number.isFinite(n)) return n;
  }
  if (accepts.boolean) {
    if (TRUE.test(t)) return true;
    if (FALSE.test(t)) return false;
  }
  return text;
}
