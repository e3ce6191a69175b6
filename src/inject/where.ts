import { SidecarError, type SidecarErrorCode } from '../errors/index.ts';

/** A path inside a document, as the yaml package takes it (keys and sequence indexes). */
export type Path = ReadonlyArray<string | number>;

/** spec.template.spec.containers[0].ports, the way kubectl names fields. */
export function fieldName(path: Path): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out || '(document)';
}

/**
 * One Kubernetes object (or compose file) in the input: which document it is, what it is
 * called, and how to find the line of a field for messages. `prefix` is the object's path
 * inside its document (['items', 3] in a List).
 */
export interface Where {
  /** The input's name for messages (a file name, or "stdin"). */
  source: string;
  /** 1-based, as a reader counts documents. */
  doc: number;
  kind: string | undefined;
  name: string | undefined;
  prefix: Path;
  /** The line of the deepest existing node on the path, if known. */
  line(path: Path): number | undefined;
}

export function describe(w: Where): string {
  const what = [w.kind, w.name].filter((s) => s !== undefined).join('/');
  return `document ${w.doc}${what === '' ? '' : ` (${what})`}`;
}

/** One line of the report on stderr: which document and field, and what changed. */
export interface Change {
  where: string;
  field: string;
  what: string;
}

export function change(w: Where, path: Path, what: string): Change {
  return { where: describe(w), field: fieldName([...w.prefix, ...path]), what };
}

export function formatChange(c: Change): string {
  return `${c.where}: ${c.field}: ${c.what}`;
}

/**
 * An error naming the document, the field and the line: "in.yaml:14: document 2
 * (Deployment/agent): spec.template.spec.containers[0].ports: …".
 */
export function inputError(code: SidecarErrorCode, w: Where, path: Path, problem: string): SidecarError {
  const full = [...w.prefix, ...path];
  const line = w.line(full);
  const field = fieldName(full);
  return new SidecarError(code, {
    message: `${w.source}${line === undefined ? '' : `:${line}`}: ${describe(w)}: ${field}: ${problem}`,
    details: { document: w.doc, kind: w.kind, name: w.name, field, line },
  });
}
