import { isMap, type YAMLMap } from 'yaml';
import { z } from 'zod';
import { ANNOTATION } from './names.ts';
import { instrumentationStatusSchema } from './instrumentation.ts';
import { podCustodySchema } from './pod-custody.ts';
import { annotationOf, dropIfEmpty, ensure, mapAt, type Doc } from './tree.ts';
import { inputError, type Path, type Where } from './where.ts';

// The status annotation records what inject added to an object, so that uninject removes
// exactly that, and a second inject can first take the first one back (idempotence).

/** Collections inject created (and so removes again once empty), by label. */
const created = z.array(z.string()).default([]);
/** Of those, the ones that replaced a null value: its source text, to write back. */
const nulls = z.record(z.string(), z.string()).optional();

export const podStatusSchema = z.object({
  version: z.string(),
  container: z.string(),
  native: z.boolean(),
  agent: z.string(),
  env: z.array(z.string()),
  volume: z.string(),
  /** Credential custody, when the workload has it. */
  credentials: podCustodySchema.optional(),
  /** Zero-code instrumentation, when the workload asked for it. */
  instrumentation: instrumentationStatusSchema.optional(),
  created,
  nulls,
});
export type PodStatus = z.infer<typeof podStatusSchema>;

export const serviceStatusSchema = z.object({
  version: z.string(),
  /** `raw`: the targetPort's source text (its quotes), to write back exactly. */
  ports: z.array(z.object({ index: z.number().int().nonnegative(), targetPort: z.union([z.string(), z.number(), z.null()]), raw: z.string().optional() })),
  created,
  nulls,
});
export type ServiceStatus = z.infer<typeof serviceStatusSchema>;

export const generatedSchema = z.object({ version: z.string(), generated: z.literal(true), joined: z.enum(['\n', '\r\n']).optional() });

/** The raw status annotation of `owner` (an object or pod template), if any. */
export const rawStatus = (owner: YAMLMap): string | undefined => annotationOf(owner, ANNOTATION.status);

/** Parses the status annotation with `schema`; a status that does not parse is an error, never guessed at. */
export function readStatus<T>(w: Where, owner: YAMLMap, path: Path, schema: z.ZodType<T>): T | undefined {
  const raw = rawStatus(owner);
  return raw === undefined ? undefined : parseStatus(w, [...path, 'metadata', 'annotations', ANNOTATION.status], raw, schema);
}

/** A status's JSON text checked against `schema`; `at` names the field for the error. */
export function parseStatus<T>(w: Where, at: Path, raw: string, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    json = undefined;
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw inputError('SIDECAR_INJECT_INVALID', w, at, 'not a status this version of agent-sidecar wrote; remove it and what it describes by hand');
  }
  return parsed.data;
}

/** True when `raw` is the status of a document inject generated (a ConfigMap). */
export function isGenerated(raw: string | undefined): boolean {
  return generatedStatus(raw) !== undefined;
}

/** The status of a document inject generated, or undefined. */
export function generatedStatus(raw: string | undefined): z.infer<typeof generatedSchema> | undefined {
  if (raw === undefined) return undefined;
  try {
    const parsed = generatedSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the status annotation, creating metadata and annotations as needed (and recording that). */
export function writeStatus(
  doc: Doc,
  w: Where,
  owner: YAMLMap,
  path: Path,
  status: { created: string[]; nulls?: Record<string, string> | undefined } & Record<string, unknown>,
): void {
  const nulls = { ...status.nulls };
  const meta = ensure(doc, owner, 'metadata', mapAt(w, owner, 'metadata', path), 'map', status.created, 'metadata', nulls);
  const ann = ensure(doc, meta, 'annotations', mapAt(w, meta, 'annotations', [...path, 'metadata']), 'map', status.created, 'annotations', nulls);
  if (Object.keys(nulls).length > 0) status.nulls = nulls;
  ann.set(ANNOTATION.status, JSON.stringify(status));
}

/** Removes the status annotation, and metadata or annotations when inject had created them. */
export function removeStatus(owner: YAMLMap, createdLabels: readonly string[], nulls: Readonly<Record<string, string>> = {}): void {
  const meta = owner.get('metadata', true);
  if (!isMap(meta)) return;
  const ann = meta.get('annotations', true);
  if (isMap(ann)) ann.delete(ANNOTATION.status);
  if (createdLabels.includes('annotations')) dropIfEmpty(meta as YAMLMap, 'annotations', nulls.annotations);
  if (createdLabels.includes('metadata')) dropIfEmpty(owner, 'metadata', nulls.metadata);
}
